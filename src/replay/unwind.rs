//! DWARF unwinding of samples that carry `PERF_SAMPLE_REGS_USER` and `PERF_SAMPLE_STACK_USER`
//! (`--call-graph dwarf`, perf's files and rprobe's), at replay time and at record time.
//!
//! Replay (`perf script` 6.1, `thread__resolve_callchain`): a sample's callchain is the kernel
//! callchain the kernel recorded (with `exclude_callchain_user` it holds only kernel frames),
//! then the user frames unwound from the sampled registers and stack copy: the user `ip`, then
//! each caller's return address minus one (libunwind's path in `unwind-libunwind-local.c`),
//! at most `max_stack` (127) of them, none when the copy is empty. [`Unwinders::chain`] gives
//! that chain as callchain bytes (the user frames after a `PERF_CONTEXT_USER` marker), so the
//! writers look frames up and name them exactly as for frame-pointer chains.
//!
//! One [`ProcessUnwinder`] per address space, built from its maps on first use and extended
//! when maps are added; each DSO's file is read once and shared by every address space
//! that maps it (framehop keeps its rule cache per unwinder).
//!
//! Record time ([`StackTrimmer`]): rprobe unwinds each sample as it is drained and cuts the
//! stack copy to the bytes the walk read (the end of the highest word read) and one word
//! more. perf's reader (`evsel__parse_sample`) takes the copy's `size` from the record
//! itself, not from `attr.sample_stack_user`, and only requires `dyn_size <= size`; its
//! unwinders read the stack through the copy's `dyn_size`. A trimmed file therefore still
//! unwinds in `perf script`, to the same frames, and is a fraction of the size.

use super::dso::{DsoKind, FileSource};
use super::machine::{Machine, Map};
use crate::perf::abi::{context, record, sample, EventAttr};
use crate::perf::reader::records::{self, Sample};
use crate::unwind::{reg, user_reg, Image, ProcessUnwinder};
use std::collections::HashMap;
use std::ops::Deref;
use std::rc::Rc;

/// perf's `PERF_MAX_STACK_DEPTH`: the most user frames `perf script` unwinds.
pub const MAX_STACK: usize = 127;

/// Whether samples of `attr` carry what DWARF unwinding needs.
pub fn is_dwarf(attr: &EventAttr) -> bool {
    attr.samples(sample::REGS_USER) && attr.samples(sample::STACK_USER)
}

/// A file read through a [`FileSource`], as framehop bytes.
struct FileBytes(Box<dyn AsRef<[u8]>>);

impl Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

#[derive(Default)]
struct Space {
    unwinder: ProcessUnwinder,
    /// Maps seen when modules were last added.
    seen: usize,
}

/// The unwinders of a session: one per address space, files shared per DSO.
#[derive(Default)]
pub struct Unwinders {
    spaces: HashMap<usize, Space>,
    images: HashMap<u32, Option<Image>>,
    chain: Vec<u8>,
    /// Samples unwound.
    pub unwound: u64,
}

impl std::fmt::Debug for Unwinders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Unwinders({} address spaces)", self.spaces.len())
    }
}

impl Unwinders {
    /// No unwinders yet.
    pub fn new() -> Unwinders {
        Unwinders::default()
    }

    /// The unwinder of address space `maps`, with a module for every file map it has now.
    fn space(&mut self, m: &Machine, maps: usize, files: &dyn FileSource) -> &mut Space {
        let space = self.spaces.entry(maps).or_default();
        let Some(ms) = m.maps.get(maps) else {
            return space;
        };
        if space.seen != ms.len() {
            space.seen = ms.len();
            for map in ms.iter().filter(|mp| !mp.identity) {
                add_map(&mut space.unwinder, &mut self.images, m, map, files);
            }
        }
        space
    }

    /// The user frames of `s` (absolute addresses, leaf first, at most `max`) and the bytes
    /// of its stack copy the walk read; None when the sample has no registers or an empty
    /// copy (perf unwinds nothing then).
    pub fn user_frames(
        &mut self,
        m: &Machine,
        maps: usize,
        attr: &EventAttr,
        s: &Sample<'_>,
        files: &dyn FileSource,
        max: usize,
    ) -> Option<(Vec<u64>, usize)> {
        let (_, regs) = s.regs_user?;
        let stack = s.stack_user.filter(|st| !st.is_empty())?;
        let r = |i| user_reg(attr.sample_regs_user, regs, i);
        let (ip, sp, bp) = (r(reg::IP)?, r(reg::SP)?, r(reg::BP).unwrap_or(0));
        self.unwound += 1;
        let space = self.space(m, maps, files);
        Some(space.unwinder.unwind_extent(ip, sp, bp, stack, max))
    }

    /// The callchain perf resolves for a sample of `attr` in address space `maps`: its
    /// kernel callchain, then `PERF_CONTEXT_USER` and the unwound user frames (at most
    /// [`MAX_STACK`]). None when `attr` has no user registers and stack, or nothing was
    /// unwound: the sample's own callchain stands.
    pub fn chain(
        &mut self,
        m: &Machine,
        maps: usize,
        attr: &EventAttr,
        s: &Sample<'_>,
        files: &dyn FileSource,
    ) -> Option<&[u8]> {
        if !is_dwarf(attr) {
            return None;
        }
        let (frames, _) = self.user_frames(m, maps, attr, s, files, MAX_STACK)?;
        if frames.is_empty() {
            return None;
        }
        self.chain.clear();
        self.chain
            .extend_from_slice(s.callchain.unwrap_or_default());
        self.chain.extend_from_slice(&context::USER.to_ne_bytes());
        for ip in frames.into_iter().filter(|&ip| ip != 0) {
            self.chain.extend_from_slice(&ip.to_ne_bytes());
        }
        Some(&self.chain)
    }
}

/// Adds the file map `map` of `m` to `u` (files are read once per DSO).
fn add_map(
    u: &mut ProcessUnwinder,
    images: &mut HashMap<u32, Option<Image>>,
    m: &Machine,
    map: &Map,
    files: &dyn FileSource,
) {
    let Some(dso) = m.dsos.get(map.dso as usize) else {
        return;
    };
    if !matches!(dso.kind, DsoKind::User | DsoKind::Vdso) || u.has_module_at(map.start) {
        return;
    }
    let image = images.entry(map.dso).or_insert_with(|| {
        if dso.kind == DsoKind::Vdso {
            return vdso_image(dso.build_id.as_deref());
        }
        files
            .read(&dso.name)
            .map(|b| Rc::new(FileBytes(b)) as Image)
    });
    if let Some(img) = image {
        u.add_mapping(&dso.name, img.clone(), map.start, map.end, map.pgoff);
    }
}

/// The `[vdso]` to unwind through (`clock_gettime` runs there): this kernel's, which every
/// process maps, unless the recording names another build id. perf reads its copy from the
/// build-id cache (`~/.debug/[vdso]/ID/vdso`); replay of a file from this kernel finds the same
/// bytes without one.
fn vdso_image(recorded_id: Option<&[u8]>) -> Option<Image> {
    let bytes = crate::sys::own_vdso()?;
    if let Some(want) = recorded_id {
        let ours = object::File::parse(&*bytes).ok().and_then(|f| {
            object::Object::build_id(&f)
                .ok()
                .flatten()
                .map(<[u8]>::to_vec)
        });
        if ours.as_deref().is_some_and(|o| o != want) {
            return None;
        }
    }
    Some(Rc::new(bytes) as Image)
}

/// What trimming did over a recording.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrimStats {
    /// Samples whose stack copy was looked at.
    pub samples: u64,
    /// Bytes of stack the kernel copied (`dyn_size` summed).
    pub copied: u64,
    /// Bytes kept.
    pub kept: u64,
    /// Samples whose walk reached the end of the copy (a larger size would have found more
    /// frames, or the stack is deeper than the copy).
    pub exhausted: u64,
}

/// Record-time unwinding: follows the recorded processes' maps and cuts each sample's stack
/// copy to what its unwind read.
pub struct StackTrimmer<'f> {
    machine: Machine,
    unwinders: Unwinders,
    attr: EventAttr,
    files: &'f dyn FileSource,
    /// Counts so far.
    pub stats: TrimStats,
}

impl std::fmt::Debug for StackTrimmer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StackTrimmer({:?})", self.stats)
    }
}

impl<'f> StackTrimmer<'f> {
    /// A trimmer for samples laid out by `attr` (every sampling attr of an rprobe recording
    /// shares one `sample_type`), reading binaries through `files`.
    pub fn new(attr: EventAttr, files: &'f dyn FileSource) -> StackTrimmer<'f> {
        StackTrimmer {
            machine: Machine::new(),
            unwinders: Unwinders::new(),
            attr,
            files,
            stats: TrimStats::default(),
        }
    }

    /// Learn the maps and tasks of side-band records (MMAP, MMAP2, COMM, FORK).
    pub fn observe(&mut self, records_: &[u8]) {
        for r in crate::perf::ring::records(records_) {
            let body = r.bytes.get(8..).unwrap_or_default();
            match r.type_ {
                record::MMAP | record::MMAP2 => {
                    let mm = if r.type_ == record::MMAP {
                        records::parse_mmap(body, r.misc)
                    } else {
                        records::parse_mmap2(body, r.misc)
                    };
                    if let Some(mm) = mm.filter(|mm| mm.pid != -1) {
                        self.machine.mmap(&mm);
                    }
                }
                record::COMM => {
                    if let Some(c) = records::parse_comm(body) {
                        self.machine.comm(c.pid, c.tid, c.comm);
                    }
                }
                record::FORK => {
                    if let Some(t) = records::parse_task(body) {
                        self.machine.fork(t.pid, t.tid, t.ppid, t.ptid);
                    }
                }
                _ => {}
            }
        }
    }

    /// Appends `records_` to `out` with each sample's stack copy cut to what its unwind read.
    /// Side-band records of the batch are learnt first (a batch holds several CPUs' rings,
    /// so a process's MMAP2 can follow its first sample).
    pub fn process(&mut self, records_: &[u8], out: &mut Vec<u8>) {
        self.observe(records_);
        for r in crate::perf::ring::records(records_) {
            if r.type_ == record::SAMPLE {
                self.trim(r.bytes, out);
            } else {
                out.extend_from_slice(r.bytes);
            }
        }
    }

    /// Appends the sample record `rec` (header included) to `out`, its stack copy trimmed.
    fn trim(&mut self, rec: &[u8], out: &mut Vec<u8>) {
        let body = rec.get(8..).unwrap_or_default();
        let Some(s) = records::parse_sample(&self.attr, body) else {
            out.extend_from_slice(rec);
            return;
        };
        let Some(stack) = s.stack_user.filter(|st| !st.is_empty()) else {
            out.extend_from_slice(rec);
            return;
        };
        let data_off = stack.as_ptr() as usize - body.as_ptr() as usize;
        let Some(size) = data_off
            .checked_sub(8)
            .and_then(|o| crate::perf::abi::u64_at(body, o))
            .map(|v| v as usize)
        else {
            out.extend_from_slice(rec);
            return;
        };
        let maps = self.machine.findnew(s.pid, s.tid).maps;
        let used = self
            .unwinders
            .user_frames(&self.machine, maps, &self.attr, &s, self.files, MAX_STACK)
            .map_or(stack.len(), |(_, used)| used);
        // One word more than the walk read: perf's libunwind `access_mem` takes a word at
        // `addr` from the copy only when `addr + 8 < sp + dyn_size` (`>=` sends it to the
        // maps, which have no stack), so the last word read needs a byte after it.
        let keep = (used + 8).min(stack.len());
        let new_size = keep.div_ceil(8) * 8;
        self.stats.samples += 1;
        self.stats.copied += stack.len() as u64;
        self.stats.kept += keep as u64;
        if used >= stack.len() {
            self.stats.exhausted += 1;
        }
        let tail = body.get(data_off + size + 8..).unwrap_or_default();
        let total = 8 + (data_off - 8) + 8 + new_size + 8 + tail.len();
        let Ok(total16) = u16::try_from(total) else {
            out.extend_from_slice(rec);
            return;
        };
        let start = out.len();
        out.extend_from_slice(&rec[..6]);
        out.extend_from_slice(&total16.to_ne_bytes());
        out.extend_from_slice(&body[..data_off - 8]);
        out.extend_from_slice(&(new_size as u64).to_ne_bytes());
        out.extend_from_slice(&stack[..keep]);
        out.resize(out.len() + (new_size - keep), 0);
        out.extend_from_slice(&(keep as u64).to_ne_bytes());
        out.extend_from_slice(tail);
        debug_assert_eq!(out.len() - start, total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perf::abi::{flag, perf_type};
    use crate::replay::dso::NoFiles;
    use crate::unwind::PERF_REGS_MASK;

    fn attr() -> EventAttr {
        EventAttr {
            type_: perf_type::SOFTWARE,
            sample_type: sample::IDENTIFIER
                | sample::IP
                | sample::TID
                | sample::TIME
                | sample::CALLCHAIN
                | sample::REGS_USER
                | sample::STACK_USER,
            sample_regs_user: PERF_REGS_MASK,
            sample_stack_user: 256,
            flags: flag::SAMPLE_ID_ALL | flag::EXCLUDE_CALLCHAIN_USER,
            ..Default::default()
        }
    }

    /// A sample record: id, ip, pid/tid, time, an empty callchain, regs (ip, sp, bp set),
    /// a stack copy of `size` bytes of which `dyn_size` are filled.
    fn sample_record(size: usize, dyn_size: usize) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [7u64, 0x1234, (42u64 << 32) | 42, 1000, 0, 2] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        let mut regs = [0u64; 20];
        regs[reg::BP as usize] = 0x7000;
        regs[reg::SP as usize] = 0x7000;
        regs[reg::IP as usize] = 0x1234;
        for r in regs {
            b.extend_from_slice(&r.to_ne_bytes());
        }
        b.extend_from_slice(&(size as u64).to_ne_bytes());
        b.extend((0..size).map(|i| i as u8));
        b.extend_from_slice(&(dyn_size as u64).to_ne_bytes());
        let mut rec = Vec::new();
        rec.extend_from_slice(&record::SAMPLE.to_ne_bytes());
        rec.extend_from_slice(&2u16.to_ne_bytes());
        rec.extend_from_slice(&((b.len() + 8) as u16).to_ne_bytes());
        rec.extend_from_slice(&b);
        rec
    }

    #[test]
    fn a_trimmed_sample_keeps_its_fields_and_reads_back_with_the_cut_copy() {
        let a = attr();
        let rec = sample_record(256, 200);
        let mut t = StackTrimmer::new(a, &NoFiles);
        let mut out = Vec::new();
        t.process(&rec, &mut out);
        // No modules: the walk reads the frame-pointer pair at bp (16 bytes) and stops.
        let size = u16::from_ne_bytes([out[6], out[7]]) as usize;
        assert_eq!(size, out.len());
        assert!(out.len() < rec.len());
        let s = records::parse_sample(&a, &out[8..]).expect("parses");
        let orig = records::parse_sample(&a, &rec[8..]).expect("parses");
        assert_eq!(
            (s.ip, s.pid, s.tid, s.time),
            (orig.ip, orig.pid, orig.tid, orig.time)
        );
        assert_eq!(s.regs_user, orig.regs_user);
        let kept = s.stack_user.expect("stack");
        assert_eq!(kept, &orig.stack_user.expect("stack")[..kept.len()]);
        assert_eq!(t.stats.samples, 1);
        assert_eq!(t.stats.copied, 200);
        assert_eq!(t.stats.kept, kept.len() as u64);
        assert_eq!(size % 8, 0);
    }

    #[test]
    fn records_other_than_samples_and_unparsable_samples_pass_unchanged() {
        let a = attr();
        let mut rec = sample_record(256, 0);
        let mut t = StackTrimmer::new(a, &NoFiles);
        let mut out = Vec::new();
        t.process(&rec, &mut out);
        assert_eq!(out, rec, "an empty copy stays as it is");
        rec.truncate(40);
        rec[6..8].copy_from_slice(&40u16.to_ne_bytes());
        out.clear();
        t.process(&rec, &mut out);
        assert_eq!(out, rec);
        assert_eq!(t.stats.samples, 0);
    }

    proptest::proptest! {
        /// Records from the kernel are outside data: any bytes, a sample with any size,
        /// dyn_size or registers, go through without a panic, and each record stays one
        /// record of a size the header states.
        #[test]
        fn any_records_trim_without_panic(
            junk in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            size in 0usize..400,
            dyn_size in 0usize..1000,
            cut in 0usize..900,
        ) {
            let a = attr();
            let mut t = StackTrimmer::new(a, &NoFiles);
            let mut out = Vec::new();
            t.process(&junk, &mut out);
            let mut rec = sample_record(size.div_ceil(8) * 8, dyn_size);
            rec.truncate(cut.max(8).min(rec.len()));
            let n = rec.len() as u16;
            rec[6..8].copy_from_slice(&n.to_ne_bytes());
            out.clear();
            t.process(&rec, &mut out);
            let recs: Vec<_> = crate::perf::ring::records(&out).collect();
            proptest::prop_assert!(recs.len() <= 1);
            for r in recs {
                proptest::prop_assert_eq!(
                    u16::from_ne_bytes([r.bytes[6], r.bytes[7]]) as usize,
                    r.bytes.len()
                );
            }
        }
    }

    #[test]
    fn the_chain_is_the_kernel_part_then_the_user_frames() {
        let a = attr();
        let rec = sample_record(256, 256);
        let s = records::parse_sample(&a, &rec[8..]).expect("parses");
        let mut m = Machine::new();
        let maps = m.findnew(42, 42).maps;
        let mut u = Unwinders::new();
        let chain = u
            .chain(&m, maps, &a, &s, &NoFiles)
            .expect("a chain")
            .to_vec();
        let ips: Vec<u64> = chain
            .chunks_exact(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(ips[0], context::USER);
        assert_eq!(ips[1], 0x1234);
        let mut plain = a;
        plain.sample_type &= !sample::STACK_USER;
        assert!(u.chain(&m, maps, &plain, &s, &NoFiles).is_none());
    }
}

//! User stacks of code built without frame pointers: DWARF CFI unwinding of samples that carry
//! `PERF_SAMPLE_REGS_USER` and `PERF_SAMPLE_STACK_USER` (what `perf record --call-graph dwarf`
//! records), through `framehop` (samply's unwinder: `.eh_frame`/`.eh_frame_hdr`/`.debug_frame`,
//! with prologue/epilogue analysis and a rule cache).
//!
//! One [`ProcessUnwinder`] per address space: its modules are the executable mappings of the
//! process (from MMAP2 records), each with the unwind sections of its ELF file, borrowed from a
//! shared memory map. A sample's stack copy starts at the sampled `sp`; reads outside it end
//! the walk, as in perf.
//!
//! Frames come out as perf's libunwind path reports them (`unwind-libunwind-local.c`): the
//! sampled `ip` first, then each caller's return address minus one (so that the address falls
//! inside the call instruction's line and function, as `dwfl_frame_pc` does for non-activation
//! frames).

use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder};
use object::{Object, ObjectSection, ObjectSegment};
use std::ops::{Deref, Range};
use std::rc::Rc;

/// What a read below the sampled `sp` gives: no stack copy holds it, nor anything near it.
const UNREADABLE: u64 = 1 << 63;

/// A whole file image (a memory map, or bytes read into memory), shared by every process that
/// maps it.
pub type Image = Rc<dyn Deref<Target = [u8]>>;

/// A byte range of a shared file image, handed to framehop without copying.
#[derive(Clone)]
pub struct Bytes {
    data: Image,
    range: Range<usize>,
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bytes({:?})", self.range)
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.data.get(self.range.clone()).unwrap_or_default()
    }
}

/// Index of each register in `sample_regs_user` (`arch/x86/include/uapi/asm/perf_regs.h`).
pub mod reg {
    /// `PERF_REG_X86_BP`.
    pub const BP: u32 = 6;
    /// `PERF_REG_X86_SP`.
    pub const SP: u32 = 7;
    /// `PERF_REG_X86_IP`.
    pub const IP: u32 = 8;
}

/// The registers perf samples for `--call-graph dwarf` on x86_64 (`PERF_REGS_MASK`: every
/// general register, flags, cs and ss; not the ds/es/fs/gs selectors).
pub const PERF_REGS_MASK: u64 = 0xff0fff;

/// The value of register `index` in a REGS_USER block sampled with `mask`.
pub fn user_reg(mask: u64, regs: &[u8], index: u32) -> Option<u64> {
    if mask & (1 << index) == 0 {
        return None;
    }
    let pos = (mask & ((1u64 << index) - 1)).count_ones() as usize;
    regs.get(pos * 8..pos * 8 + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_ne_bytes)
}

/// The most frames [`ProcessUnwinder::unwind`] returns.
pub const MAX_FRAMES: usize = 512;

/// Unwinds the user stacks of one process.
pub struct ProcessUnwinder {
    unwinder: UnwinderX86_64<Bytes>,
    cache: CacheX86_64,
    modules: Vec<Range<u64>>,
}

impl std::fmt::Debug for ProcessUnwinder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProcessUnwinder({} modules)", self.modules.len())
    }
}

impl Default for ProcessUnwinder {
    fn default() -> Self {
        ProcessUnwinder::new()
    }
}

impl ProcessUnwinder {
    /// An unwinder with no modules.
    pub fn new() -> ProcessUnwinder {
        ProcessUnwinder {
            unwinder: UnwinderX86_64::new(),
            cache: CacheX86_64::new(),
            modules: Vec::new(),
        }
    }

    /// Whether a module covers `addr` already.
    pub fn has_module_at(&self, addr: u64) -> bool {
        self.modules.iter().any(|r| r.contains(&addr))
    }

    /// Adds the executable mapping `start..end` of file offset `pgoff` of the ELF image
    /// `file`. Returns false (and adds nothing) when the image is not an ELF file or has no
    /// unwind information, or the mapping matches none of its segments.
    pub fn add_mapping(
        &mut self,
        name: &str,
        file: Image,
        start: u64,
        end: u64,
        pgoff: u64,
    ) -> bool {
        if self.has_module_at(start) {
            return true;
        }
        let Some((info, bias)) = section_info(&file, pgoff, start) else {
            return false;
        };
        let module = Module::new(name.to_owned(), start..end, bias, info);
        self.unwinder.add_module(module);
        self.modules.push(start..end);
        true
    }

    /// The frames of one sample: `ip` first, then each caller's return address minus one,
    /// root last. `stack` is the sampled stack copy starting at `sp`.
    pub fn unwind(&mut self, ip: u64, sp: u64, bp: u64, stack: &[u8]) -> Vec<u64> {
        self.unwind_extent(ip, sp, bp, stack, MAX_FRAMES).0
    }

    /// [`ProcessUnwinder::unwind`], at most `max` frames, and how many bytes of `stack` the
    /// walk used: the end of the highest 8-byte word it read (0 when it read none). A copy
    /// cut to that length unwinds to the same frames.
    pub fn unwind_extent(
        &mut self,
        ip: u64,
        sp: u64,
        bp: u64,
        stack: &[u8],
        max: usize,
    ) -> (Vec<u64>, usize) {
        let mut used = 0usize;
        let mut read_stack = |addr: u64| -> Result<u64, ()> {
            // A register the CFI saved below `sp` (an epilogue after its `pop`): libunwind
            // only fails when the value is used, so the read gives a value whose every use
            // as an address fails too.
            let Some(off) = addr.checked_sub(sp) else {
                return Ok(UNREADABLE);
            };
            let off = off as usize;
            let end = off.checked_add(8).ok_or(())?;
            // perf's `access_mem` refuses the copy's last word (`addr + 8 >= end`).
            if end >= stack.len() {
                return Err(());
            }
            let b = stack.get(off..end).ok_or(())?;
            used = used.max(end);
            Ok(u64::from_ne_bytes(b.try_into().map_err(|_| ())?))
        };
        let mut frames = Vec::new();
        let mut it = self.unwinder.iter_frames(
            ip,
            UnwindRegsX86_64::new(ip, sp, bp),
            &mut self.cache,
            &mut read_stack,
        );
        while let Ok(Some(frame)) = it.next() {
            frames.push(match frame {
                FrameAddress::InstructionPointer(a) => a,
                FrameAddress::ReturnAddress(ra) => ra.get().wrapping_sub(1),
            });
            if frames.len() >= max {
                break;
            }
        }
        (frames, used)
    }
}

/// The unwind sections of an ELF image, and the load bias of its mapping at `start` for file
/// offset `pgoff` (`start - (p_vaddr + pgoff - p_offset)` of the segment holding `pgoff`).
fn section_info(
    file: &Image,
    pgoff: u64,
    start: u64,
) -> Option<(ExplicitModuleSectionInfo<Bytes>, u64)> {
    let data: &[u8] = file;
    let elf = object::File::parse(data).ok()?;
    let seg = elf.segments().find(|s| {
        let (off, size) = s.file_range();
        pgoff >= off && pgoff < off + size.max(1)
    })?;
    let (seg_off, _) = seg.file_range();
    let bias = start.wrapping_sub(seg.address().wrapping_add(pgoff - seg_off));
    let section = |name: &str| -> Option<(Range<u64>, Bytes)> {
        let s = elf.section_by_name(name)?;
        let (off, size) = s.file_range()?;
        let range = off as usize..off.checked_add(size)? as usize;
        data.get(range.clone())?;
        Some((
            s.address()..s.address() + s.size(),
            Bytes {
                data: file.clone(),
                range,
            },
        ))
    };
    let text = section(".text");
    let eh_frame = section(".eh_frame");
    let eh_frame_hdr = section(".eh_frame_hdr");
    let debug_frame = section(".debug_frame");
    if eh_frame.is_none() && debug_frame.is_none() {
        return None;
    }
    let got = elf
        .section_by_name(".got")
        .map(|s| s.address()..s.address() + s.size());
    Some((
        ExplicitModuleSectionInfo {
            base_svma: 0,
            // No code bytes: framehop would analyse the first frame's prologue or epilogue
            // instructions instead of following its CFI, which libunwind does not do.
            text_svma: text.as_ref().map(|t| t.0.clone()),
            text: None,
            got_svma: got,
            eh_frame_svma: eh_frame.as_ref().map(|t| t.0.clone()),
            eh_frame: eh_frame.map(|t| t.1),
            eh_frame_hdr_svma: eh_frame_hdr.as_ref().map(|t| t.0.clone()),
            eh_frame_hdr: eh_frame_hdr.map(|t| t.1),
            debug_frame: debug_frame.map(|t| t.1),
            stubs_svma: None,
            stub_helper_svma: None,
            unwind_info: None,
            text_segment_svma: None,
            text_segment: None,
        },
        bias,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_by_mask_position() {
        let regs: Vec<u8> = (0..24u64).flat_map(|i| (100 + i).to_ne_bytes()).collect();
        // In PERF_REGS_MASK, bits 0..11 then 16..23: IP (bit 8) is the 9th value.
        assert_eq!(user_reg(PERF_REGS_MASK, &regs, reg::IP), Some(108));
        assert_eq!(user_reg(PERF_REGS_MASK, &regs, reg::SP), Some(107));
        assert_eq!(user_reg(PERF_REGS_MASK, &regs, 16), Some(112));
        assert_eq!(user_reg(PERF_REGS_MASK, &regs, 12), None);
        assert_eq!(user_reg(1 << reg::IP, &regs[..8], reg::IP), Some(100));
        assert_eq!(user_reg(PERF_REGS_MASK, &regs[..16], reg::IP), None);
    }

    #[test]
    fn a_non_elf_mapping_adds_nothing_and_no_module_unwinds_only_the_ip() {
        let mut u = ProcessUnwinder::new();
        let junk: Image = Rc::new(vec![0u8; 64]);
        assert!(!u.add_mapping("junk", junk, 0x1000, 0x2000, 0));
        assert_eq!(u.unwind(0x1234, 0x7000, 0, &[0u8; 64]), [0x1234]);
    }
}

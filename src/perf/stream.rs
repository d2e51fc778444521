//! What the recorder learns from the records it copies, without decoding them fully: sample
//! and loss counts, the first and last sample time, and which DSOs the samples hit (for the
//! `BUILD_ID` feature).
//!
//! Offsets rely on the recorder's common layout (see [`super::attr`]): a sample body starts
//! `id, ip, pid/tid, time, cpu`. Maps come from MMAP and MMAP2 records (synthesized or from
//! the kernel); a COMM with COMM_EXEC starts a fresh address space; a FORK of a new process
//! copies its parent's maps. Like perf's build-id pass, a DSO counts as hit when a sample's
//! own ip falls in it (callchain frames do not mark DSOs).

use std::collections::HashMap;

use super::abi::{misc, record, u16_at, u32_at, u64_at};

/// Counts and hits over a stream of records.
#[derive(Debug, Default)]
pub struct StreamStats {
    /// PERF_RECORD_SAMPLE records.
    pub samples: u64,
    /// Sum of `lost` over PERF_RECORD_LOST (and LOST_SAMPLES) records.
    pub lost: u64,
    /// PERF_RECORD_LOST records.
    pub lost_records: u64,
    /// Time of the first and last sample.
    pub first_time: Option<u64>,
    /// See `first_time`.
    pub last_time: u64,
    /// A kernel-mode sample was seen.
    pub kernel_hit: bool,
    dsos: Vec<String>,
    dso_index: HashMap<String, usize>,
    hit: Vec<bool>,
    maps: HashMap<u32, Vec<(u64, u64, usize)>>,
    cache: Option<(u32, u64, u64, usize)>,
}

fn c_str(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

impl StreamStats {
    /// Account for one whole record.
    pub fn add(&mut self, rec: &[u8]) {
        let Some(type_) = u32_at(rec, 0) else { return };
        let m = u16_at(rec, 4).unwrap_or(0);
        match type_ {
            record::SAMPLE => self.sample(rec, m),
            record::LOST => {
                self.lost_records += 1;
                self.lost += u64_at(rec, 16).unwrap_or(0);
            }
            record::LOST_SAMPLES => self.lost += u64_at(rec, 8).unwrap_or(0),
            record::MMAP if m & misc::MMAP_DATA == 0 => {
                if let (Some(pid), Some(addr), Some(len)) =
                    (u32_at(rec, 8), u64_at(rec, 16), u64_at(rec, 24))
                {
                    let name = rec.get(40..).map(c_str).unwrap_or_default();
                    if pid != u32::MAX {
                        self.map(pid, addr, len, name);
                    }
                }
            }
            record::MMAP2 if m & misc::MMAP_DATA == 0 => {
                if let (Some(pid), Some(addr), Some(len), Some(prot)) = (
                    u32_at(rec, 8),
                    u64_at(rec, 16),
                    u64_at(rec, 24),
                    u32_at(rec, 64),
                ) {
                    let name = rec.get(72..).map(c_str).unwrap_or_default();
                    if prot & 4 != 0 {
                        self.map(pid, addr, len, name);
                    }
                }
            }
            record::COMM if m & misc::COMM_EXEC != 0 => {
                if let Some(pid) = u32_at(rec, 8) {
                    self.maps.remove(&pid);
                    self.cache = None;
                }
            }
            record::FORK => {
                if let (Some(pid), Some(ppid)) = (u32_at(rec, 8), u32_at(rec, 12)) {
                    if pid != ppid {
                        if let Some(parent) = self.maps.get(&ppid).cloned() {
                            self.maps.insert(pid, parent);
                            self.cache = None;
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn sample(&mut self, rec: &[u8], m: u16) {
        self.samples += 1;
        if let Some(t) = u64_at(rec, 32) {
            if self.first_time.is_none() {
                self.first_time = Some(t);
            }
            self.first_time = self.first_time.map(|f| f.min(t));
            self.last_time = self.last_time.max(t);
        }
        match m & misc::CPUMODE_MASK {
            misc::KERNEL => self.kernel_hit = true,
            misc::USER => {
                if let (Some(ip), Some(pid)) = (u64_at(rec, 16), u32_at(rec, 24)) {
                    if let Some(d) = self.find(pid, ip) {
                        self.hit[d] = true;
                    }
                }
            }
            _ => {}
        }
    }

    fn find(&mut self, pid: u32, ip: u64) -> Option<usize> {
        if let Some((p, s, e, d)) = self.cache {
            if p == pid && ip >= s && ip < e {
                return Some(d);
            }
        }
        let maps = self.maps.get(&pid)?;
        let i = maps.partition_point(|m| m.0 <= ip);
        let &(s, e, d) = maps.get(i.checked_sub(1)?)?;
        (ip < e).then(|| {
            self.cache = Some((pid, s, e, d));
            d
        })
    }

    fn map(&mut self, pid: u32, addr: u64, len: u64, name: &[u8]) {
        let name = String::from_utf8_lossy(name).into_owned();
        let d = match self.dso_index.get(&name) {
            Some(&d) => d,
            None => {
                self.dsos.push(name.clone());
                self.hit.push(false);
                self.dso_index.insert(name, self.dsos.len() - 1);
                self.dsos.len() - 1
            }
        };
        let end = addr.saturating_add(len);
        let maps = self.maps.entry(pid).or_default();
        maps.retain(|m| m.1 <= addr || m.0 >= end);
        let i = maps.partition_point(|m| m.0 < addr);
        maps.insert(i, (addr, end, d));
        self.cache = None;
    }

    /// Paths of the user DSOs that samples hit, sorted.
    pub fn hit_dsos(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .dsos
            .iter()
            .zip(&self.hit)
            .filter(|(_, h)| **h)
            .map(|(d, _)| d.as_str())
            .collect();
        v.sort_unstable();
        v
    }
}

/// The `NT_GNU_BUILD_ID` descriptor in a run of ELF notes (`/sys/kernel/notes`, or a
/// `PT_NOTE` segment): `{u32 namesz, descsz, type; name (pad 4); desc (pad 4)}*`.
pub fn find_build_id_note(notes: &[u8]) -> Option<Vec<u8>> {
    let mut off = 0usize;
    while off + 12 <= notes.len() {
        let namesz = u32_at(notes, off)? as usize;
        let descsz = u32_at(notes, off + 4)? as usize;
        let type_ = u32_at(notes, off + 8)?;
        let name_at = off + 12;
        let desc_at = name_at.checked_add(namesz.checked_add(3)? & !3)?;
        let next = desc_at.checked_add(descsz.checked_add(3)? & !3)?;
        let name = notes.get(name_at..name_at + namesz)?;
        if type_ == 3 && name == b"GNU\0" {
            return notes.get(desc_at..desc_at + descsz).map(<[u8]>::to_vec);
        }
        off = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perf::synth::{self, parse_maps_line, SampleId};

    fn sample(pid: u32, ip: u64, time: u64, cpumode: u16) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&record::SAMPLE.to_ne_bytes());
        r.extend_from_slice(&cpumode.to_ne_bytes());
        r.extend_from_slice(&48u16.to_ne_bytes());
        for v in [7u64, ip] {
            r.extend_from_slice(&v.to_ne_bytes());
        }
        r.extend_from_slice(&pid.to_ne_bytes());
        r.extend_from_slice(&pid.to_ne_bytes());
        r.extend_from_slice(&time.to_ne_bytes());
        r.extend_from_slice(&[0; 16]);
        r
    }

    #[test]
    fn counts_times_and_hits() {
        let mut s = StreamStats::default();
        let mut rec = Vec::new();
        let libc =
            parse_maps_line("7f0000028000-7f00001ad000 r-xp 00028000 fe:01 13 /usr/lib/libc.so.6")
                .expect("l");
        let exe = parse_maps_line("555500001000-555500002000 r-xp 00001000 fe:01 14 /tmp/app")
            .expect("l");
        synth::mmap2(&mut rec, 10, 10, &libc, &SampleId::default());
        s.add(&rec);
        rec.clear();
        synth::mmap2(&mut rec, 10, 10, &exe, &SampleId::default());
        s.add(&rec);
        s.add(&sample(10, 0x555500001100, 50, misc::USER));
        s.add(&sample(10, 0x555500001200, 20, misc::USER));
        s.add(&sample(11, 0x7f0000030000, 90, misc::USER)); // unknown pid
        s.add(&sample(10, 0xffffffff81000000, 60, misc::KERNEL));
        assert_eq!(s.samples, 4);
        assert_eq!((s.first_time, s.last_time), (Some(20), 90));
        assert!(s.kernel_hit);
        assert_eq!(s.hit_dsos(), vec!["/tmp/app"]);
        // A fork copies the maps; an exec forgets them.
        rec.clear();
        synth::fork(&mut rec, 11, 10, 11, 10, &SampleId::default());
        s.add(&rec);
        s.add(&sample(11, 0x7f0000030000, 91, misc::USER));
        assert_eq!(s.hit_dsos(), vec!["/tmp/app", "/usr/lib/libc.so.6"]);
        let mut lost = Vec::new();
        lost.extend_from_slice(&record::LOST.to_ne_bytes());
        lost.extend_from_slice(&[0, 0, 24, 0]);
        lost.extend_from_slice(&7u64.to_ne_bytes());
        lost.extend_from_slice(&1234u64.to_ne_bytes());
        s.add(&lost);
        assert_eq!((s.lost, s.lost_records), (1234, 1));
        s.add(&[1, 2, 3]);
    }

    #[test]
    fn build_id_note() {
        let mut n = Vec::new();
        // An unrelated note first (Xen), then GNU build id.
        n.extend_from_slice(&4u32.to_ne_bytes());
        n.extend_from_slice(&2u32.to_ne_bytes());
        n.extend_from_slice(&6u32.to_ne_bytes());
        n.extend_from_slice(b"Xen\0");
        n.extend_from_slice(&[1, 2, 0, 0]);
        n.extend_from_slice(&4u32.to_ne_bytes());
        n.extend_from_slice(&20u32.to_ne_bytes());
        n.extend_from_slice(&3u32.to_ne_bytes());
        n.extend_from_slice(b"GNU\0");
        n.extend_from_slice(&[0xab; 20]);
        assert_eq!(find_build_id_note(&n), Some(vec![0xab; 20]));
        for cut in 0..n.len() {
            let _ = find_build_id_note(&n[..cut]);
        }
        assert_eq!(find_build_id_note(&n[..40]), None);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_never_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let mut s = StreamStats::default();
            s.add(&b);
            let _ = find_build_id_note(&b);
        }
    }
}

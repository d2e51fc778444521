//! Synthesized records: what the kernel would have reported for processes and mappings that
//! existed before recording started, built from `/proc` text (pure parsers here; the caller
//! reads the files), plus the perf-tool records (`FINISHED_ROUND`, `FINISHED_INIT`,
//! `HEADER_TRACING_DATA`).
//!
//! Layouts (`include/uapi/linux/perf_event.h`): every kernel-type record ends in the
//! `sample_id_all` trailer of the attrs' common layout; [`SampleId`] writes the one the
//! recorder uses (TID, TIME, CPU, IDENTIFIER: 32 bytes). Synthesized records carry time 0 so
//! that they sort before every kernel record, as perf's do.
//!
//! The kernel map is `MMAP` pid −1, addr = pgoff = `_text`, len = `_etext − _text`, named
//! `[kernel.kallsyms]_text` (what perf 6.1 writes: `[0xffffffff81000000(0x1276988) @
//! 0xffffffff81000000]`); perf symbolizes kernel frames against it with the reading host's
//! kallsyms. Only executable mappings are synthesized (perf's default without `--data`).

use super::abi::{misc, record};

/// The `sample_id_all` trailer: TID, TIME, CPU, IDENTIFIER (the common layout of every attr
/// the recorder writes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SampleId {
    /// pid.
    pub pid: u32,
    /// tid.
    pub tid: u32,
    /// time (0 for synthesized records).
    pub time: u64,
    /// cpu.
    pub cpu: u32,
    /// event id (the tracking event's).
    pub id: u64,
}

/// Size of [`SampleId`] on disk.
pub const SAMPLE_ID_SIZE: usize = 32;

impl SampleId {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.pid.to_ne_bytes());
        out.extend_from_slice(&self.tid.to_ne_bytes());
        out.extend_from_slice(&self.time.to_ne_bytes());
        out.extend_from_slice(&self.cpu.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(&self.id.to_ne_bytes());
    }
}

fn header(out: &mut Vec<u8>, type_: u32, misc: u16) -> usize {
    let start = out.len();
    out.extend_from_slice(&type_.to_ne_bytes());
    out.extend_from_slice(&misc.to_ne_bytes());
    out.extend_from_slice(&0u16.to_ne_bytes());
    start
}

fn finish(out: &mut [u8], start: usize) {
    let size = (out.len() - start) as u16;
    out[start + 6..start + 8].copy_from_slice(&size.to_ne_bytes());
}

/// A NUL-terminated string padded with NULs to a multiple of 8 (at least one NUL).
fn padded_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(s);
    let n = s.len() + 1;
    let padded = n.div_ceil(8) * 8;
    out.resize(out.len() + padded - s.len(), 0);
}

/// A `PERF_RECORD_MMAP` (used for the kernel map).
#[allow(clippy::too_many_arguments)]
pub fn mmap(
    out: &mut Vec<u8>,
    misc_: u16,
    pid: u32,
    tid: u32,
    addr: u64,
    len: u64,
    pgoff: u64,
    filename: &str,
    id: &SampleId,
) {
    let s = header(out, record::MMAP, misc_);
    for v in [pid, tid] {
        out.extend_from_slice(&v.to_ne_bytes());
    }
    for v in [addr, len, pgoff] {
        out.extend_from_slice(&v.to_ne_bytes());
    }
    padded_str(out, filename.as_bytes());
    id.write(out);
    finish(out, s);
}

/// The kernel's map: `[kernel.kallsyms]_text` at `_text`, `_etext - _text` long.
pub fn kernel_mmap(out: &mut Vec<u8>, text: u64, etext: u64, id: &SampleId) {
    let id = SampleId {
        pid: u32::MAX,
        tid: 0,
        ..*id
    };
    mmap(
        out,
        misc::KERNEL,
        u32::MAX,
        0,
        text,
        etext.saturating_sub(text),
        text,
        "[kernel.kallsyms]_text",
        &id,
    );
}

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    /// Start address.
    pub start: u64,
    /// End address (exclusive).
    pub end: u64,
    /// `rwxp`-style permissions.
    pub perms: [u8; 4],
    /// File offset.
    pub pgoff: u64,
    /// Device major.
    pub maj: u32,
    /// Device minor.
    pub min: u32,
    /// Inode.
    pub ino: u64,
    /// Path, `[vdso]`-style name, or empty for anonymous memory.
    pub path: String,
}

impl MapEntry {
    /// Executable.
    pub fn is_exec(&self) -> bool {
        self.perms[2] == b'x'
    }

    /// `PROT_*` from the permissions.
    pub fn prot(&self) -> u32 {
        let mut p = 0;
        if self.perms[0] == b'r' {
            p |= 1;
        }
        if self.perms[1] == b'w' {
            p |= 2;
        }
        if self.perms[2] == b'x' {
            p |= 4;
        }
        p
    }

    /// `MAP_SHARED` (1) or `MAP_PRIVATE` (2).
    pub fn flags(&self) -> u32 {
        if self.perms[3] == b's' {
            1
        } else {
            2
        }
    }
}

// 7f6d0c418000-7f6d0c59d000 r-xp 00028000 fe:01 1311286                    /usr/lib/x86_64-linux-gnu/libc.so.6
/// Parse one `/proc/PID/maps` line; `None` for a line of another shape.
pub fn parse_maps_line(line: &str) -> Option<MapEntry> {
    let mut rest = line;
    let mut field = || {
        let t = rest.trim_start_matches(' ');
        let end = t.find(' ').unwrap_or(t.len());
        let (f, r) = t.split_at(end);
        rest = r;
        f
    };
    let range = field();
    let perms = field();
    let pgoff = field();
    let dev = field();
    let ino = field();
    let path = rest.trim_start_matches(' ').to_string();
    let (start, end) = range.split_once('-')?;
    let (maj, min) = dev.split_once(':')?;
    let p = perms.as_bytes();
    if p.len() != 4 {
        return None;
    }
    Some(MapEntry {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        perms: [p[0], p[1], p[2], p[3]],
        pgoff: u64::from_str_radix(pgoff, 16).ok()?,
        maj: u32::from_str_radix(maj, 16).ok()?,
        min: u32::from_str_radix(min, 16).ok()?,
        ino: ino.parse().ok()?,
        path,
    })
}

/// Every parseable line of a `/proc/PID/maps` text.
pub fn parse_maps(text: &str) -> Vec<MapEntry> {
    text.lines().filter_map(parse_maps_line).collect()
}

/// `PERF_RECORD_MMAP2` for a mapping of `pid`/`tid`. Anonymous executable memory is named
/// `//anon`, as perf names it.
pub fn mmap2(out: &mut Vec<u8>, pid: u32, tid: u32, m: &MapEntry, id: &SampleId) {
    let s = header(out, record::MMAP2, misc::USER);
    for v in [pid, tid] {
        out.extend_from_slice(&v.to_ne_bytes());
    }
    for v in [m.start, m.end.saturating_sub(m.start), m.pgoff] {
        out.extend_from_slice(&v.to_ne_bytes());
    }
    out.extend_from_slice(&m.maj.to_ne_bytes());
    out.extend_from_slice(&m.min.to_ne_bytes());
    out.extend_from_slice(&m.ino.to_ne_bytes());
    out.extend_from_slice(&0u64.to_ne_bytes()); // ino_generation
    out.extend_from_slice(&m.prot().to_ne_bytes());
    out.extend_from_slice(&m.flags().to_ne_bytes());
    let name = if m.path.is_empty() { "//anon" } else { &m.path };
    padded_str(out, name.as_bytes());
    id.write(out);
    finish(out, s);
}

/// `PERF_RECORD_COMM` for `pid`/`tid` (comm cut at 15 bytes, as the kernel keeps it).
pub fn comm(out: &mut Vec<u8>, pid: u32, tid: u32, name: &str, id: &SampleId) {
    let s = header(out, record::COMM, 0);
    for v in [pid, tid] {
        out.extend_from_slice(&v.to_ne_bytes());
    }
    let b = name.as_bytes();
    padded_str(out, &b[..b.len().min(15)]);
    id.write(out);
    finish(out, s);
}

/// `PERF_RECORD_FORK`: `tid` of `pid` was forked from `ptid` of `ppid`.
pub fn fork(out: &mut Vec<u8>, pid: u32, ppid: u32, tid: u32, ptid: u32, id: &SampleId) {
    let s = header(out, record::FORK, 0);
    for v in [pid, ppid, tid, ptid] {
        out.extend_from_slice(&v.to_ne_bytes());
    }
    out.extend_from_slice(&id.time.to_ne_bytes());
    id.write(out);
    finish(out, s);
}

/// `PERF_RECORD_LOST_SAMPLES`: `lost` samples of the event whose id is in `id` (what perf
/// writes at the end from each fd's `PERF_FORMAT_LOST` count; `perf report` sums these as
/// "Total Lost Samples").
pub fn lost_samples(out: &mut Vec<u8>, lost: u64, id: &SampleId) {
    let s = header(out, record::LOST_SAMPLES, 0);
    out.extend_from_slice(&lost.to_ne_bytes());
    id.write(out);
    finish(out, s);
}

/// A header-only perf-tool record (`FINISHED_ROUND`, `FINISHED_INIT`).
pub fn bare(out: &mut Vec<u8>, type_: u32) {
    let s = header(out, type_, 0);
    finish(out, s);
}

/// `PERF_RECORD_HEADER_TRACING_DATA` followed by its payload (padded to 8). The header's
/// `size` is 16 and does not count the payload, which perf reads through the u32 size field
/// (in file mode too: `perf_session__process_user_event` seeks to it and skips it).
pub fn tracing_data(out: &mut Vec<u8>, blob: &[u8]) {
    let padded = blob.len().div_ceil(8) * 8;
    out.extend_from_slice(&record::HEADER_TRACING_DATA.to_ne_bytes());
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&16u16.to_ne_bytes());
    out.extend_from_slice(&(padded as u32).to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(blob);
    out.resize(out.len() + padded - blob.len(), 0);
}

// Name:	bash
// Tgid:	1234
// PPid:	1200
/// `(Name, Tgid, PPid)` from `/proc/PID/task/TID/status`.
pub fn parse_status(text: &str) -> Option<(String, u32, u32)> {
    let mut name = None;
    let mut tgid = None;
    let mut ppid = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("Name:") {
            name = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("Tgid:") {
            tgid = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("PPid:") {
            ppid = v.trim().parse().ok();
        }
    }
    Some((name?, tgid?, ppid?))
}

// 0-1,4,6-7
/// A CPU list such as `/sys/devices/system/cpu/online`.
pub fn parse_cpu_list(text: &str) -> Option<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 65536 {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines() {
        let m = parse_maps_line(
            "7f6d0c418000-7f6d0c59d000 r-xp 00028000 fe:01 1311286                    /usr/lib/x86_64-linux-gnu/libc.so.6",
        )
        .expect("line");
        assert_eq!(
            (m.start, m.end, m.pgoff),
            (0x7f6d0c418000, 0x7f6d0c59d000, 0x28000)
        );
        assert_eq!((m.maj, m.min, m.ino), (0xfe, 1, 1311286));
        assert_eq!(m.path, "/usr/lib/x86_64-linux-gnu/libc.so.6");
        assert!(m.is_exec());
        assert_eq!((m.prot(), m.flags()), (5, 2));
        let v = parse_maps_line(
            "7ffd5a5f1000-7ffd5a5f3000 r-xp 00000000 00:00 0                          [vdso]",
        )
        .expect("vdso");
        assert_eq!(v.path, "[vdso]");
        let a = parse_maps_line("7f0000000000-7f0000001000 rw-s 00000000 00:00 0 ").expect("anon");
        assert_eq!((a.path.as_str(), a.flags(), a.is_exec()), ("", 1, false));
        let d =
            parse_maps_line("55d0-55e0 r-xp 0 08:01 12 /tmp/my prog (deleted)").expect("spaces");
        assert_eq!(d.path, "/tmp/my prog (deleted)");
        for bad in [
            "",
            "zz-1 r-xp 0 0:0 0",
            "1-2 rx 0 0:0 0 /x",
            "1-2 r-xp 0 00 0 /x",
        ] {
            assert_eq!(parse_maps_line(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn mmap2_layout_matches_perf() {
        let m = parse_maps_line(
            "7fa3ae247000-7fa3ae31a000 r-xp 0000a000 00:01 1024 /memfd:x (deleted)",
        )
        .expect("line");
        let mut out = Vec::new();
        let id = SampleId {
            pid: 1105,
            tid: 1105,
            time: 0,
            cpu: 0,
            id: 70,
        };
        mmap2(&mut out, 1105, 1105, &m, &id);
        // header 8 + pid/tid 8 + addr/len/pgoff 24 + maj/min 8 + ino/gen 16 + prot/flags 8
        // + "/memfd:x (deleted)\0" padded to 24 + trailer 32
        assert_eq!(out.len(), 8 + 8 + 24 + 8 + 16 + 8 + 24 + 32);
        assert_eq!(&out[0..8], &[10, 0, 0, 0, 2, 0, out.len() as u8, 0]);
        assert_eq!(u64::from_ne_bytes(out[24..32].try_into().unwrap()), 0xd3000);
        assert_eq!(&out[64..72], &[5, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(&out[72..90], b"/memfd:x (deleted)");
        assert_eq!(
            u64::from_ne_bytes(out[out.len() - 8..].try_into().unwrap()),
            70
        );
    }

    #[test]
    fn kernel_mmap_is_96_bytes_as_perfs() {
        let mut out = Vec::new();
        kernel_mmap(
            &mut out,
            0xffffffff81000000,
            0xffffffff82276988,
            &SampleId::default(),
        );
        assert_eq!(out.len(), 96);
        assert_eq!(&out[0..8], &[1, 0, 0, 0, 1, 0, 96, 0]);
        assert_eq!(&out[8..16], &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        assert_eq!(
            u64::from_ne_bytes(out[24..32].try_into().unwrap()),
            0x1276988
        );
        assert_eq!(&out[40..62], b"[kernel.kallsyms]_text");
    }

    #[test]
    fn comm_is_cut_and_padded() {
        let mut out = Vec::new();
        comm(
            &mut out,
            1,
            2,
            "a-very-long-command-name",
            &SampleId::default(),
        );
        assert_eq!(out.len(), 8 + 8 + 16 + 32);
        assert_eq!(&out[0..8], &[3, 0, 0, 0, 0, 0, 64, 0]);
        assert_eq!(&out[16..32], b"a-very-long-com\0");
    }

    #[test]
    fn tracing_data_record_pads_its_payload() {
        let mut out = Vec::new();
        tracing_data(&mut out, &[1, 2, 3]);
        assert_eq!(out.len(), 24);
        assert_eq!(
            &out[0..16],
            &[66, 0, 0, 0, 0, 0, 16, 0, 8, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn lost_samples_record() {
        let mut out = Vec::new();
        let id = SampleId {
            id: 9,
            ..SampleId::default()
        };
        lost_samples(&mut out, 1234, &id);
        assert_eq!(out.len(), 8 + 8 + 32);
        assert_eq!(&out[0..8], &[13, 0, 0, 0, 0, 0, 48, 0]);
        assert_eq!(u64::from_ne_bytes(out[8..16].try_into().unwrap()), 1234);
        assert_eq!(u64::from_ne_bytes(out[40..48].try_into().unwrap()), 9);
    }

    #[test]
    fn status_and_cpus() {
        let s = "Name:\tkworker/0:1\nUmask:\t0000\nState:\tI (idle)\nTgid:\t12\nNgid:\t0\nPid:\t12\nPPid:\t2\n";
        assert_eq!(parse_status(s), Some(("kworker/0:1".into(), 12, 2)));
        assert_eq!(parse_status("Name:\tx\n"), None);
        assert_eq!(parse_cpu_list("0-1\n"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_list("0,2-3,7"), Some(vec![0, 2, 3, 7]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    proptest::proptest! {
        #[test]
        fn proc_parsers_never_panic(s in "\\PC*") {
            let _ = parse_maps(&s);
            let _ = parse_status(&s);
            let _ = parse_cpu_list(&s);
        }
    }
}

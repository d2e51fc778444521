//! Typed views of the records perf 6.1 writes: SAMPLE (laid out by its attr's `sample_type`),
//! MMAP, MMAP2, COMM, FORK/EXIT, LOST, and the `sample_id_all` trailer of the others.
//!
//! Layouts from `include/uapi/linux/perf_event.h` (`enum perf_event_type`) and the order in
//! which `evsel__parse_sample()` (perf 6.1 `util/evsel.c`) reads a sample:
//!
//! ```text
//! { u64 id;       } && PERF_SAMPLE_IDENTIFIER
//! { u64 ip;       } && PERF_SAMPLE_IP
//! { u32 pid, tid; } && PERF_SAMPLE_TID
//! { u64 time;     } && PERF_SAMPLE_TIME
//! { u64 addr;     } && PERF_SAMPLE_ADDR
//! { u64 id;       } && PERF_SAMPLE_ID
//! { u64 stream_id;} && PERF_SAMPLE_STREAM_ID
//! { u32 cpu, res; } && PERF_SAMPLE_CPU
//! { u64 period;   } && PERF_SAMPLE_PERIOD
//! { struct read_format values; } && PERF_SAMPLE_READ
//! { u64 nr; u64 ips[nr]; } && PERF_SAMPLE_CALLCHAIN
//! { u32 size; char data[size]; } && PERF_SAMPLE_RAW
//! ...                                 (branch stack, regs, user stack: not read here)
//! ```
//!
//! Every parser returns `None` when the record is shorter than its layout; nothing indexes
//! past the body.

use crate::perf::abi::{read_format, sample, u32_at, u64_at, EventAttr};

/// The fields of a SAMPLE record that replay uses; slices point into the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample<'a> {
    /// `PERF_SAMPLE_IDENTIFIER` or `PERF_SAMPLE_ID`.
    pub id: Option<u64>,
    /// `PERF_SAMPLE_IP`.
    pub ip: u64,
    /// `PERF_SAMPLE_TID`: pid (−1 when absent).
    pub pid: i32,
    /// `PERF_SAMPLE_TID`: tid (−1 when absent).
    pub tid: i32,
    /// `PERF_SAMPLE_TIME`.
    pub time: u64,
    /// `PERF_SAMPLE_ADDR`.
    pub addr: u64,
    /// `PERF_SAMPLE_CPU`.
    pub cpu: u32,
    /// `PERF_SAMPLE_PERIOD`.
    pub period: u64,
    /// `PERF_SAMPLE_CALLCHAIN`: the raw ips, context markers included (8 bytes each).
    pub callchain: Option<&'a [u8]>,
    /// `PERF_SAMPLE_RAW`: the tracepoint record (its `size` bytes, padding included).
    pub raw: Option<&'a [u8]>,
    /// `PERF_SAMPLE_REGS_USER`: the ABI (0 none, 1 32-bit, 2 64-bit) and the registers of
    /// `attr.sample_regs_user`, in mask bit order (8 bytes each).
    pub regs_user: Option<(u64, &'a [u8])>,
    /// `PERF_SAMPLE_STACK_USER`: the copied user stack from the sampled `sp` upwards, cut to
    /// the `dyn_size` bytes the kernel actually filled.
    pub stack_user: Option<&'a [u8]>,
}

impl Sample<'_> {
    /// The callchain entries.
    pub fn callchain_ips(&self) -> impl Iterator<Item = u64> + '_ {
        self.callchain
            .unwrap_or(&[])
            .chunks_exact(8)
            .map(|c| u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn u64(&mut self) -> Option<u64> {
        let v = u64_at(self.b, self.at)?;
        self.at += 8;
        Some(v)
    }
    fn u32(&mut self) -> Option<u32> {
        let v = u32_at(self.b, self.at)?;
        self.at += 4;
        Some(v)
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
}

/// Bytes of a `read_format` value block.
fn read_size(rf: u64, body: &[u8], at: usize) -> Option<usize> {
    let extra = [
        read_format::TOTAL_TIME_ENABLED,
        read_format::TOTAL_TIME_RUNNING,
    ]
    .iter()
    .filter(|b| rf & **b != 0)
    .count();
    let per_value =
        1 + usize::from(rf & read_format::ID != 0) + usize::from(rf & read_format::LOST != 0);
    if rf & read_format::GROUP != 0 {
        let nr = usize::try_from(u64_at(body, at)?).ok()?;
        if nr > body.len() / 8 {
            return None;
        }
        Some(8 * (1 + extra + nr * per_value))
    } else {
        Some(8 * (extra + per_value))
    }
}

/// Parse a SAMPLE body (after the 8-byte header) laid out by `attr`.
pub fn parse_sample<'a>(attr: &EventAttr, body: &'a [u8]) -> Option<Sample<'a>> {
    let st = attr.sample_type;
    let mut c = Cursor { b: body, at: 0 };
    let mut s = Sample {
        pid: -1,
        tid: -1,
        ..Sample::default()
    };
    if st & sample::IDENTIFIER != 0 {
        s.id = Some(c.u64()?);
    }
    if st & sample::IP != 0 {
        s.ip = c.u64()?;
    }
    if st & sample::TID != 0 {
        s.pid = c.u32()? as i32;
        s.tid = c.u32()? as i32;
    }
    if st & sample::TIME != 0 {
        s.time = c.u64()?;
    }
    if st & sample::ADDR != 0 {
        s.addr = c.u64()?;
    }
    if st & sample::ID != 0 {
        s.id = Some(c.u64()?);
    }
    if st & sample::STREAM_ID != 0 {
        c.u64()?;
    }
    if st & sample::CPU != 0 {
        s.cpu = c.u32()?;
        c.u32()?;
    }
    if st & sample::PERIOD != 0 {
        s.period = c.u64()?;
    }
    if st & sample::READ != 0 {
        let n = read_size(attr.read_format, body, c.at)?;
        c.bytes(n)?;
    }
    if st & sample::CALLCHAIN != 0 {
        let nr = usize::try_from(c.u64()?).ok()?;
        if nr > body.len() / 8 {
            return None;
        }
        s.callchain = Some(c.bytes(nr * 8)?);
    }
    if st & sample::RAW != 0 {
        let n = c.u32()? as usize;
        s.raw = Some(c.bytes(n)?);
    }
    if st & sample::BRANCH_STACK != 0 {
        // u64 nr; perf_branch_entry (24 bytes) × nr. (No hw_idx: perf 6.1 does not set
        // PERF_SAMPLE_BRANCH_HW_INDEX for what rprobe reads.)
        let nr = usize::try_from(c.u64()?).ok()?;
        c.bytes(nr.checked_mul(24)?)?;
    }
    if st & sample::REGS_USER != 0 {
        let abi = c.u64()?;
        if abi != 0 {
            let n = attr.sample_regs_user.count_ones() as usize;
            s.regs_user = Some((abi, c.bytes(n * 8)?));
        }
    }
    if st & sample::STACK_USER != 0 {
        let size = usize::try_from(c.u64()?).ok()?;
        if size > 0 {
            let data = c.bytes(size)?;
            let dyn_size = usize::try_from(c.u64()?).ok()?;
            s.stack_user = Some(&data[..dyn_size.min(size)]);
        }
    }
    Some(s)
}

/// Where the event id sits in a record, from the attr's `sample_type`: samples count from the
/// start (`id_pos`), other records from the end of the trailer (`is_pos`), in u64 units. As in
/// perf, every attr of a file must agree on these for records to be matched to attrs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdPos {
    /// Index of the id among a sample's leading u64s, when the sample has one.
    pub sample: Option<usize>,
    /// Index of the id counted from the end of a non-sample record, when it has one.
    pub trailer: Option<usize>,
}

impl IdPos {
    /// The positions for `attr` (`evsel__calc_id_pos()`).
    pub fn of(attr: &EventAttr) -> IdPos {
        let st = attr.sample_type;
        let sample_pos = if st & sample::IDENTIFIER != 0 {
            Some(0)
        } else if st & sample::ID != 0 {
            let before = [sample::IP, sample::TID, sample::TIME, sample::ADDR]
                .iter()
                .filter(|b| st & **b != 0)
                .count();
            Some(before)
        } else {
            None
        };
        let trailer_pos = if st & sample::IDENTIFIER != 0 {
            Some(1)
        } else if st & sample::ID != 0 {
            let after = [sample::CPU, sample::STREAM_ID]
                .iter()
                .filter(|b| st & **b != 0)
                .count();
            Some(after + 1)
        } else {
            None
        };
        IdPos {
            sample: sample_pos,
            trailer: trailer_pos,
        }
    }

    /// The id of a SAMPLE body.
    pub fn sample_id(&self, body: &[u8]) -> Option<u64> {
        u64_at(body, self.sample? * 8)
    }

    /// The id of another record's body (with `sample_id_all`).
    pub fn trailer_id(&self, body: &[u8]) -> Option<u64> {
        let from_end = self.trailer? * 8;
        u64_at(body, body.len().checked_sub(from_end)?)
    }
}

/// The `sample_id_all` trailer of a non-sample record: the fields perf uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SampleId {
    /// `PERF_SAMPLE_TID` pid.
    pub pid: Option<i32>,
    /// `PERF_SAMPLE_TID` tid.
    pub tid: Option<i32>,
    /// `PERF_SAMPLE_TIME`.
    pub time: Option<u64>,
    /// `PERF_SAMPLE_CPU`.
    pub cpu: Option<u32>,
}

/// Bytes of the trailer `attr` gives non-sample records (0 without `sample_id_all`).
pub fn trailer_len(attr: &EventAttr) -> usize {
    if !attr.has_flag(crate::perf::abi::flag::SAMPLE_ID_ALL) {
        return 0;
    }
    [
        sample::TID,
        sample::TIME,
        sample::ID,
        sample::STREAM_ID,
        sample::CPU,
        sample::IDENTIFIER,
    ]
    .iter()
    .filter(|b| attr.sample_type & **b != 0)
    .count()
        * 8
}

/// Parse the trailer at the end of a non-sample `body`.
pub fn parse_sample_id(attr: &EventAttr, body: &[u8]) -> Option<SampleId> {
    let len = trailer_len(attr);
    if len == 0 {
        return Some(SampleId::default());
    }
    let start = body.len().checked_sub(len)?;
    let mut c = Cursor { b: body, at: start };
    let st = attr.sample_type;
    let mut s = SampleId::default();
    if st & sample::TID != 0 {
        s.pid = Some(c.u32()? as i32);
        s.tid = Some(c.u32()? as i32);
    }
    if st & sample::TIME != 0 {
        s.time = Some(c.u64()?);
    }
    if st & sample::ID != 0 {
        c.u64()?;
    }
    if st & sample::STREAM_ID != 0 {
        c.u64()?;
    }
    if st & sample::CPU != 0 {
        s.cpu = Some(c.u32()?);
    }
    Some(s)
}

/// The timestamp perf orders a record by: a sample's TIME, or the trailer's TIME of another
/// kernel record; `None` when the record carries none.
pub fn record_time(attr: &EventAttr, type_: u32, body: &[u8]) -> Option<u64> {
    if attr.sample_type & sample::TIME == 0 {
        return None;
    }
    if type_ == crate::perf::abi::record::SAMPLE {
        let before = [sample::IDENTIFIER, sample::IP, sample::TID]
            .iter()
            .filter(|b| attr.sample_type & **b != 0)
            .count();
        return u64_at(body, before * 8);
    }
    parse_sample_id(attr, body)?.time
}

/// `PERF_RECORD_MMAP` and `PERF_RECORD_MMAP2`: a mapping of a file (or anonymous memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mmap<'a> {
    /// Process id (−1 for the kernel).
    pub pid: i32,
    /// Thread id.
    pub tid: i32,
    /// Start address.
    pub addr: u64,
    /// Length.
    pub len: u64,
    /// File offset of `addr` (for the kernel map: the address of `_text`).
    pub pgoff: u64,
    /// `prot` (MMAP2 only; MMAP reads as `PROT_EXEC` unless MMAP_DATA).
    pub prot: u32,
    /// The file name up to its NUL.
    pub filename: &'a [u8],
    /// The build id an MMAP2 carries with `PERF_RECORD_MISC_MMAP_BUILD_ID`.
    pub build_id: Option<&'a [u8]>,
}

fn c_string(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

/// The fields MMAP and MMAP2 start with: `u32 pid, tid; u64 addr, len, pgoff`.
fn mmap_head(c: &mut Cursor<'_>) -> Option<(i32, i32, u64, u64, u64)> {
    Some((
        c.u32()? as i32,
        c.u32()? as i32,
        c.u64()?,
        c.u64()?,
        c.u64()?,
    ))
}

/// Parse an MMAP body: `u32 pid, tid; u64 addr, len, pgoff; char filename[]`.
pub fn parse_mmap(body: &[u8], misc: u16) -> Option<Mmap<'_>> {
    let mut c = Cursor { b: body, at: 0 };
    let (pid, tid, addr, len, pgoff) = mmap_head(&mut c)?;
    let filename = c_string(body.get(c.at..)?);
    let prot = if misc & crate::perf::abi::misc::MMAP_DATA != 0 {
        1
    } else {
        5
    };
    Some(Mmap {
        pid,
        tid,
        addr,
        len,
        pgoff,
        prot,
        filename,
        build_id: None,
    })
}

/// Parse an MMAP2 body: MMAP's fields, then `{u32 maj, min; u64 ino, ino_generation}` or a
/// build id, then `u32 prot, flags; char filename[]`.
pub fn parse_mmap2(body: &[u8], misc: u16) -> Option<Mmap<'_>> {
    let mut c = Cursor { b: body, at: 0 };
    let (pid, tid, addr, len, pgoff) = mmap_head(&mut c)?;
    let ids = c.bytes(24)?;
    let build_id = if misc & crate::perf::abi::misc::MMAP_BUILD_ID != 0 {
        let n = usize::from(ids[0]).min(20);
        Some(&ids[4..4 + n])
    } else {
        None
    };
    let prot = c.u32()?;
    let _flags = c.u32()?;
    let filename = c_string(body.get(c.at..)?);
    Some(Mmap {
        pid,
        tid,
        addr,
        len,
        pgoff,
        prot,
        filename,
        build_id,
    })
}

/// `PERF_RECORD_COMM`: `u32 pid, tid; char comm[]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comm<'a> {
    /// Process id.
    pub pid: i32,
    /// Thread id.
    pub tid: i32,
    /// The new name, up to its NUL.
    pub comm: &'a [u8],
}

/// Parse a COMM body.
pub fn parse_comm(body: &[u8]) -> Option<Comm<'_>> {
    let mut c = Cursor { b: body, at: 0 };
    let pid = c.u32()? as i32;
    let tid = c.u32()? as i32;
    Some(Comm {
        pid,
        tid,
        comm: c_string(body.get(8..)?),
    })
}

/// `PERF_RECORD_FORK` / `PERF_RECORD_EXIT`: `u32 pid, ppid, tid, ptid; u64 time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    /// Process id.
    pub pid: i32,
    /// Parent process id.
    pub ppid: i32,
    /// Thread id.
    pub tid: i32,
    /// Parent thread id.
    pub ptid: i32,
    /// When.
    pub time: u64,
}

/// Parse a FORK or EXIT body.
pub fn parse_task(body: &[u8]) -> Option<Task> {
    let mut c = Cursor { b: body, at: 0 };
    Some(Task {
        pid: c.u32()? as i32,
        ppid: c.u32()? as i32,
        tid: c.u32()? as i32,
        ptid: c.u32()? as i32,
        time: c.u64()?,
    })
}

/// `PERF_RECORD_LOST`: `u64 id, lost`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lost {
    /// The event whose records were lost.
    pub id: u64,
    /// How many.
    pub lost: u64,
}

/// Parse a LOST body.
pub fn parse_lost(body: &[u8]) -> Option<Lost> {
    Some(Lost {
        id: u64_at(body, 0)?,
        lost: u64_at(body, 8)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perf::reader::testfile::tp_attr;

    /// The start of a real 304-byte sched_switch sample body (perf 6.1 `-a -g`, kernel 6.18),
    /// with its callchain cut to 3 entries: id, ip, pid/tid, time, cpu, period, callchain, raw.
    fn body() -> Vec<u8> {
        let mut b = Vec::new();
        for v in [0x20u64, 0xffffffff821facd8] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        b.extend_from_slice(&6101u32.to_ne_bytes());
        b.extend_from_slice(&6101u32.to_ne_bytes());
        b.extend_from_slice(&720308258627u64.to_ne_bytes());
        b.extend_from_slice(&0u64.to_ne_bytes());
        b.extend_from_slice(&1u64.to_ne_bytes());
        for v in [
            3u64,
            0xffffffffffffff80,
            0xffffffff821facd8,
            0xffffffff821fb0c3,
        ] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        b.extend_from_slice(&4u32.to_ne_bytes());
        b.extend_from_slice(&[0x74, 1, 0, 0]);
        b
    }

    #[test]
    fn sample_fields() {
        let a = tp_attr();
        let b = body();
        let s = parse_sample(&a, &b).expect("sample");
        assert_eq!(s.id, Some(0x20));
        assert_eq!(
            (s.pid, s.tid, s.time, s.cpu, s.period),
            (6101, 6101, 720308258627, 0, 1)
        );
        let ips: Vec<u64> = s.callchain_ips().collect();
        assert_eq!(
            ips,
            vec![0xffffffffffffff80, 0xffffffff821facd8, 0xffffffff821fb0c3]
        );
        assert_eq!(s.raw, Some(&[0x74, 1, 0, 0][..]));
        assert_eq!(record_time(&a, 9, &b), Some(720308258627));
        assert_eq!(IdPos::of(&a).sample_id(&b), Some(0x20));
    }

    #[test]
    fn cut_short_samples_are_none() {
        let a = tp_attr();
        let b = body();
        for n in 0..b.len() {
            assert_eq!(parse_sample(&a, &b[..n]), None, "cut at {n}");
        }
        let mut huge = body();
        huge[48..56].copy_from_slice(&u64::MAX.to_ne_bytes());
        assert_eq!(parse_sample(&a, &huge), None);
    }

    #[test]
    fn uprobe_id_positions() {
        // perf 6.1, uprobe per task with -g: IP|TID|TIME|CALLCHAIN|ID|CPU|PERIOD|RAW.
        let a = EventAttr {
            sample_type: 0x5e7,
            flags: crate::perf::abi::flag::SAMPLE_ID_ALL,
            ..EventAttr::default()
        };
        let p = IdPos::of(&a);
        assert_eq!(
            p,
            IdPos {
                sample: Some(3),
                trailer: Some(2)
            }
        );
        assert_eq!(trailer_len(&a), 32);
        // trailer: pid/tid, time, id, cpu
        let mut t = vec![0u8; 8];
        t.extend_from_slice(&5u32.to_ne_bytes());
        t.extend_from_slice(&6u32.to_ne_bytes());
        t.extend_from_slice(&99u64.to_ne_bytes());
        t.extend_from_slice(&44u64.to_ne_bytes());
        t.extend_from_slice(&1u32.to_ne_bytes());
        t.extend_from_slice(&0u32.to_ne_bytes());
        assert_eq!(p.trailer_id(&t), Some(44));
        let id = parse_sample_id(&a, &t).unwrap();
        assert_eq!(
            (id.pid, id.tid, id.time, id.cpu),
            (Some(5), Some(6), Some(99), Some(1))
        );
        assert_eq!(parse_sample_id(&a, &t[..20]), None);
    }

    #[test]
    fn mmap2_comm_task_lost() {
        let mut b = Vec::new();
        b.extend_from_slice(&100u32.to_ne_bytes());
        b.extend_from_slice(&100u32.to_ne_bytes());
        for v in [0x7f00_0000_0000u64, 0x1000, 0x26000] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        b.extend_from_slice(&[0u8; 24]);
        b.extend_from_slice(&5u32.to_ne_bytes());
        b.extend_from_slice(&2u32.to_ne_bytes());
        b.extend_from_slice(b"/usr/lib/libc.so.6\0\0\0\0\0\0");
        let m = parse_mmap2(&b, 2).unwrap();
        assert_eq!(
            (m.addr, m.len, m.pgoff, m.prot),
            (0x7f00_0000_0000, 0x1000, 0x26000, 5)
        );
        assert_eq!(m.filename, b"/usr/lib/libc.so.6");
        for n in 0..56 {
            assert_eq!(parse_mmap2(&b[..n], 2), None, "cut at {n}");
        }
        let c = parse_comm(b"\x05\0\0\0\x06\0\0\0bash\0\0\0\0").unwrap();
        assert_eq!((c.pid, c.tid, c.comm), (5, 6, &b"bash"[..]));
        assert_eq!(parse_comm(b"\x05\0\0"), None);
        let mut t = Vec::new();
        for v in [1u32, 2, 3, 4] {
            t.extend_from_slice(&v.to_ne_bytes());
        }
        t.extend_from_slice(&9u64.to_ne_bytes());
        assert_eq!(parse_task(&t).unwrap().ptid, 4);
        assert_eq!(parse_task(&t[..20]), None);
        let l = parse_lost(&[1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!((l.id, l.lost), (1, 7));
    }
}

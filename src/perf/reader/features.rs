//! Feature sections replay reads (`tools/perf/util/header.c`, perf 6.1): strings (HOSTNAME,
//! OSRELEASE, ...), CMDLINE, EVENT_DESC and BUILD_ID.
//!
//! ```text
//! perf_header_string      = { u32 len; char s[len]; }   len counts the NUL and padding
//! perf_header_string_list = { u32 nr; perf_header_string s[nr]; }
//! EVENT_DESC = { u32 nr, attr_size; { attr[attr_size]; u32 nr_ids; string name; u64 ids[nr_ids]; }[nr] }
//! BUILD_ID   = { header{u32 type; u16 misc; u16 size}; i32 pid; u8 id[20]; u8 size; u8 pad[3];
//!                char filename[]; }*              misc 1 kernel, 2 user; bit 15: `size` is valid
//! ```

use crate::perf::abi::{u16_at, u32_at, u64_at};

fn string_at(b: &[u8], at: usize) -> Option<(String, usize)> {
    let len = u32_at(b, at)? as usize;
    let s = b.get(at + 4..(at + 4).checked_add(len)?)?;
    let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
    Some((
        String::from_utf8_lossy(&s[..end]).into_owned(),
        at + 4 + len,
    ))
}

/// A `perf_header_string` feature (HOSTNAME, OSRELEASE, VERSION, ARCH, CPUDESC, CPUID).
pub fn parse_string(b: &[u8]) -> Option<String> {
    string_at(b, 0).map(|(s, _)| s)
}

/// A `perf_header_string_list` feature (CMDLINE).
pub fn parse_string_list(b: &[u8]) -> Option<Vec<String>> {
    let nr = u32_at(b, 0)? as usize;
    let mut at = 4;
    let mut out = Vec::new();
    for _ in 0..nr {
        let (s, next) = string_at(b, at)?;
        out.push(s);
        at = next;
    }
    Some(out)
}

/// One EVENT_DESC entry: the event's name and the ids it recorded with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDesc {
    /// The name perf prints (`sched:sched_switch`, `cpu-clock`, `probe_libc:malloc`).
    pub name: String,
    /// The event's ids.
    pub ids: Vec<u64>,
}

/// EVENT_DESC, in attr order (perf matches entries to attrs by index).
pub fn parse_event_desc(b: &[u8]) -> Option<Vec<EventDesc>> {
    let nr = u32_at(b, 0)? as usize;
    let attr_size = u32_at(b, 4)? as usize;
    if attr_size == 0 {
        return None;
    }
    let mut at = 8usize;
    let mut out = Vec::new();
    for _ in 0..nr {
        at = at.checked_add(attr_size)?;
        let nr_ids = u32_at(b, at)? as usize;
        let (name, next) = string_at(b, at + 4)?;
        if nr_ids > b.len() / 8 {
            return None;
        }
        let ids = (0..nr_ids)
            .map(|i| u64_at(b, next + i * 8))
            .collect::<Option<Vec<u64>>>()?;
        at = next + nr_ids * 8;
        out.push(EventDesc { name, ids });
    }
    Some(out)
}

/// One BUILD_ID entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildId {
    /// `misc` cpumode: 1 kernel, 2 user.
    pub cpumode: u16,
    /// Process id (−1 for the host).
    pub pid: i32,
    /// The build id bytes (20, or `size` when the entry says).
    pub id: Vec<u8>,
    /// The DSO's path (`[kernel.kallsyms]` for the kernel).
    pub filename: String,
}

/// The BUILD_ID feature: its entries until the payload ends or one does not fit.
pub fn parse_build_ids(b: &[u8]) -> Vec<BuildId> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while let (Some(misc), Some(size)) = (u16_at(b, at + 4), u16_at(b, at + 6)) {
        let size = usize::from(size);
        let Some(rec) = b.get(at..at + size) else {
            break;
        };
        if size < 36 {
            break;
        }
        let pid = u32_at(rec, 8).unwrap_or(0) as i32;
        let n = if misc & (1 << 15) != 0 {
            usize::from(rec[32]).min(20)
        } else {
            20
        };
        let name = &rec[36..];
        let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
        out.push(BuildId {
            cpumode: misc & 7,
            pid,
            id: rec[12..12 + n].to_vec(),
            filename: String::from_utf8_lossy(&name[..end]).into_owned(),
        });
        at += size;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs(s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        while v.len() % 8 != 0 {
            v.push(0);
        }
        let mut b = (v.len() as u32).to_ne_bytes().to_vec();
        b.extend(v);
        b
    }

    #[test]
    fn strings_and_lists() {
        assert_eq!(parse_string(&hs("vm")).as_deref(), Some("vm"));
        let mut l = 2u32.to_ne_bytes().to_vec();
        l.extend(hs("/usr/bin/perf"));
        l.extend(hs("record"));
        assert_eq!(
            parse_string_list(&l),
            Some(vec!["/usr/bin/perf".into(), "record".into()])
        );
        assert_eq!(parse_string_list(&l[..l.len() - 1]), None);
        assert_eq!(parse_string(&[200, 0, 0, 0, b'a']), None);
    }

    #[test]
    fn event_desc() {
        let mut b = 1u32.to_ne_bytes().to_vec();
        b.extend(128u32.to_ne_bytes());
        b.extend([0u8; 128]);
        b.extend(2u32.to_ne_bytes());
        b.extend(hs("sched:sched_switch"));
        b.extend(53u64.to_ne_bytes());
        b.extend(54u64.to_ne_bytes());
        let d = parse_event_desc(&b).unwrap();
        assert_eq!(
            d,
            vec![EventDesc {
                name: "sched:sched_switch".into(),
                ids: vec![53, 54]
            }]
        );
        for n in 0..b.len() {
            assert_eq!(parse_event_desc(&b[..n]), None, "cut at {n}");
        }
    }

    #[test]
    fn build_ids() {
        let mut r = vec![0u8; 8];
        r[4] = 2;
        r[5] = 0x80;
        r.extend((-1i32).to_ne_bytes());
        r.extend((1..=20u8).collect::<Vec<_>>());
        r.extend([20, 0, 0, 0]);
        r.extend(b"/usr/bin/true\0\0\0");
        let size = r.len() as u16;
        r[6..8].copy_from_slice(&size.to_ne_bytes());
        let mut two = r.clone();
        two.extend(&r[..20]);
        let ids = parse_build_ids(&two);
        assert_eq!(ids.len(), 1);
        assert_eq!((ids[0].cpumode, ids[0].pid, ids[0].id.len()), (2, -1, 20));
        assert_eq!(ids[0].filename, "/usr/bin/true");
    }
}

//! `rprobe script --json`: one JSON object per sample, one per line (JSON Lines).
//!
//! ```text
//! {"event":"sched:sched_switch","comm":"perf","pid":17955,"tid":17955,"cpu":0,
//!  "time_ns":684368663000,"period":1,
//!  "fields":{"prev_comm":"perf","prev_pid":17955,...},
//!  "trace":"prev_comm=perf prev_pid=17955 ...",
//!  "frames":[{"addr":"0xffffffff82265908","sym":"__schedule","off":1576,"dso":"[kernel.kallsyms]"},...]}
//! ```
//!
//! `fields` holds the event's own format fields (tracepoints and probes): integers as
//! numbers (by the format's size and signedness), `char[N]` and `__data_loc char[]` as
//! strings, other arrays as arrays of numbers. `frames` are the callchain as `perf script`
//! prints it (`addr` map-relative for user frames with a map); `sym`, `off` and `dso` are
//! null when unknown. `cpu` is null without `PERF_SAMPLE_CPU`.

use super::machine::Machine;
use super::script::Script;
use super::session::Evsel;
use crate::perf::abi::sample as st;
use crate::perf::reader::records::Sample;
use crate::tracefs::format::FormatField;
use std::io::Write;

/// A JSON string literal.
fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\t' => out.extend_from_slice(b"\\t"),
            c if !(0x20..0x7f).contains(&c) => {
                let _ = write!(out, "\\u{:04x}", c);
            }
            c => out.push(c),
        }
    }
    out.push(b'"');
}

fn int_at(raw: &[u8], off: usize, size: usize, signed: bool) -> Option<i128> {
    let b = raw.get(off..off.checked_add(size)?)?;
    let mut v: u64 = 0;
    for (i, x) in b.iter().take(8).enumerate() {
        v |= u64::from(*x) << (8 * i);
    }
    Some(if signed && size < 8 && size > 0 {
        let shift = 64 - 8 * size as u32;
        i128::from(((v << shift) as i64) >> shift)
    } else if signed {
        i128::from(v as i64)
    } else {
        i128::from(v)
    })
}

fn field(out: &mut Vec<u8>, f: &FormatField, raw: &[u8]) {
    let off = f.offset as usize;
    if f.data_loc {
        let loc = int_at(raw, off, 4, false).unwrap_or(0) as u64;
        let (mut start, len) = ((loc & 0xffff) as usize, (loc >> 16) as usize);
        if f.rel_loc {
            start += off + 4;
        }
        let b = raw.get(start..start.saturating_add(len)).unwrap_or(&[]);
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        string(out, &b[..end]);
        return;
    }
    if f.array && (f.type_name == "char" || f.type_name == "unsigned char") {
        let b = raw.get(off..off + f.size as usize).unwrap_or(&[]);
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        string(out, &b[..end]);
        return;
    }
    if let Some(n) = f.elem_count().filter(|n| *n > 0) {
        let elem = (f.size / n) as usize;
        out.push(b'[');
        for i in 0..n as usize {
            if i > 0 {
                out.push(b',');
            }
            let _ = write!(
                out,
                "{}",
                int_at(raw, off + i * elem, elem, f.signed).unwrap_or(0)
            );
        }
        out.push(b']');
        return;
    }
    match int_at(raw, off, (f.size as usize).min(8), f.signed) {
        Some(v) => {
            let _ = write!(out, "{v}");
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// Append one sample's JSON line.
pub fn sample<W: Write>(
    w: &mut Script<'_, W>,
    m: &mut Machine,
    ev: &Evsel,
    idx: usize,
    s: &Sample<'_>,
    out: &mut Vec<u8>,
) {
    let t = m.findnew(s.pid, s.tid);
    let (comm, maps) = (t.comm.clone(), t.maps);
    out.extend_from_slice(b"{\"event\":");
    string(out, ev.name.as_bytes());
    out.extend_from_slice(b",\"comm\":");
    string(out, comm.as_bytes());
    let _ = write!(out, ",\"pid\":{},\"tid\":{}", s.pid, s.tid);
    if ev.attr.samples(st::CPU) {
        let _ = write!(out, ",\"cpu\":{}", s.cpu);
    } else {
        out.extend_from_slice(b",\"cpu\":null");
    }
    let _ = write!(out, ",\"time_ns\":{},\"period\":{}", s.time, s.period);
    if let (Some(raw), Some(fmt)) = (s.raw, ev.format.as_deref()) {
        out.extend_from_slice(b",\"fields\":{");
        for (i, f) in fmt.event_fields().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(out, f.name.as_bytes());
            out.push(b':');
            field(out, f, raw);
        }
        out.extend_from_slice(b"},\"trace\":");
        let mut text = Vec::new();
        w.trace_text(m, idx, raw, &mut text);
        string(out, &text);
    }
    out.extend_from_slice(b",\"frames\":[");
    for (i, (addr, sym, dso)) in w.frames(m, maps, s).into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = write!(out, "{{\"addr\":\"0x{addr:x}\",\"sym\":");
        match &sym {
            Some((name, _)) => string(out, name.as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        match &sym {
            Some((_, off)) => {
                let _ = write!(out, ",\"off\":{off}");
            }
            None => out.extend_from_slice(b",\"off\":null"),
        }
        out.extend_from_slice(b",\"dso\":");
        match &dso {
            Some(d) => string(out, d.as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_ints() {
        let mut o = Vec::new();
        string(&mut o, b"a\"b\\\n\x01");
        assert_eq!(o, b"\"a\\\"b\\\\\\n\\u0001\"");
        assert_eq!(int_at(&[0xff, 0xff, 0xff, 0xff], 0, 4, true), Some(-1));
        assert_eq!(
            int_at(&[0xff, 0xff, 0xff, 0xff], 0, 4, false),
            Some(0xffff_ffff)
        );
        assert_eq!(int_at(&[1], 0, 4, false), None);
    }
}

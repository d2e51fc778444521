//! The `HEADER_TRACING_DATA` feature: the tracefs formats of the recorded tracepoint and
//! probe events, as `perf record` saves them (`tools/perf/util/trace-event-info.c`; read back
//! by `trace-event-read.c`).
//!
//! ```text
//! "\x17\x08\x44" "tracing" "0.6\0"    magic and version ("0.5": no saved_cmdlines)
//! u8 big_endian; u8 long_size; u32 page_size
//! "header_page\0"  u64 len; text       "header_event\0" u64 len; text
//! u32 nr_ftrace { u64 len; text }*      (system "ftrace")
//! u32 nr_systems { "system\0"; u32 nr_events { u64 len; format text }* }*
//! u32 kallsyms_len; text                u32 printk_len; text
//! u64 saved_cmdlines_len; text          (0.6)
//! ```
//!
//! A format that does not parse is kept as an error next to the others (its events print
//! without fields); a blob cut short is an error that names the offset.

use crate::perf::abi::{u32_at, u64_at};
use crate::tracefs::format::{parse_format, EventFormat, FormatError};

/// Why the tracing data cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TracingDataError {
    /// The magic is not `\x17\x08\x44tracing`.
    #[error("tracing data: bad magic (broken or missing trace data)")]
    BadMagic,
    /// A big-endian or non-64-bit recording.
    #[error("tracing data: recorded with big_endian={big_endian}, long_size={long_size}; only little-endian 64-bit data is read")]
    Foreign {
        /// The big_endian byte.
        big_endian: u8,
        /// The long_size byte.
        long_size: u8,
    },
    /// The blob ends inside a part.
    #[error("tracing data: cut short at offset {offset} of {len} while reading {what}")]
    Truncated {
        /// Offset inside the blob.
        offset: usize,
        /// The blob's length.
        len: usize,
        /// What was being read.
        what: &'static str,
    },
}

/// One event format from the tracing data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEvent {
    /// The system (tracefs group): `sched`, `probe_libc`, `ftrace`.
    pub system: String,
    /// The parsed format, or why it did not parse (with the event's text for the message).
    pub format: Result<EventFormat, (FormatError, String)>,
}

/// The parsed tracing data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TracingData {
    /// `"0.6"` or `"0.5"`.
    pub version: String,
    /// `page_size`.
    pub page_size: u32,
    /// Every event format, ftrace's first, then each system's in file order.
    pub events: Vec<TraceEvent>,
    /// The kallsyms text perf once saved (perf ≥ 5.x writes none).
    pub kallsyms: String,
    /// `printk_formats`: `0xADDR : "text"` lines for `const char *` into kernel rodata.
    pub printk: String,
    /// `saved_cmdlines` (0.6).
    pub saved_cmdlines: String,
}

impl TracingData {
    /// The format whose `ID:` is `id` (= `attr.config` of a tracepoint attr).
    pub fn find(&self, id: u64) -> Option<(&str, &EventFormat)> {
        self.events.iter().find_map(|e| match &e.format {
            Ok(f) if u64::from(f.id) == id => Some((e.system.as_str(), f)),
            _ => None,
        })
    }

    /// `printk_formats` as (address, text) pairs.
    pub fn printk_strings(&self) -> Vec<(u64, String)> {
        self.printk
            .lines()
            .filter_map(|l| {
                let (addr, text) = l.split_once(" : ")?;
                let addr = u64::from_str_radix(addr.trim().trim_start_matches("0x"), 16).ok()?;
                let text = text.trim();
                let text = text.strip_prefix('"').unwrap_or(text);
                let text = text.strip_suffix('"').unwrap_or(text);
                Some((addr, text.to_string()))
            })
            .collect()
    }
}

struct Blob<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Blob<'a> {
    fn err(&self, what: &'static str) -> TracingDataError {
        TracingDataError::Truncated {
            offset: self.at,
            len: self.b.len(),
            what,
        }
    }
    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], TracingDataError> {
        let end = self.at.checked_add(n).ok_or_else(|| self.err(what))?;
        let s = self.b.get(self.at..end).ok_or_else(|| self.err(what))?;
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, TracingDataError> {
        let v = u32_at(self.b, self.at).ok_or_else(|| self.err(what))?;
        self.at += 4;
        Ok(v)
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, TracingDataError> {
        let v = u64_at(self.b, self.at).ok_or_else(|| self.err(what))?;
        self.at += 8;
        Ok(v)
    }
    fn cstr(&mut self, what: &'static str) -> Result<&'a [u8], TracingDataError> {
        let rest = self.b.get(self.at..).ok_or_else(|| self.err(what))?;
        let n = rest
            .iter()
            .position(|&c| c == 0)
            .ok_or_else(|| self.err(what))?;
        self.at += n + 1;
        Ok(&rest[..n])
    }
    fn sized_text(&mut self, what: &'static str) -> Result<&'a [u8], TracingDataError> {
        let n = self.u64(what)?;
        let n = usize::try_from(n).map_err(|_| self.err(what))?;
        self.bytes(n, what)
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn parse_one(system: &str, raw: &[u8]) -> TraceEvent {
    let t = text(raw);
    TraceEvent {
        system: system.to_string(),
        format: parse_format(&t).map_err(|e| (e, t)),
    }
}

/// Parse the payload of `HEADER_TRACING_DATA`.
pub fn parse(b: &[u8]) -> Result<TracingData, TracingDataError> {
    let mut r = Blob { b, at: 0 };
    if r.bytes(10, "the magic")
        .map_err(|_| TracingDataError::BadMagic)?
        != b"\x17\x08\x44tracing"
    {
        return Err(TracingDataError::BadMagic);
    }
    let version = text(r.cstr("the version")?);
    let big_endian = r.bytes(1, "big_endian")?[0];
    let long_size = r.bytes(1, "long_size")?[0];
    if big_endian != 0 || long_size != 8 {
        return Err(TracingDataError::Foreign {
            big_endian,
            long_size,
        });
    }
    let page_size = r.u32("page_size")?;
    if r.cstr("header_page")? != b"header_page" {
        return Err(r.err("header_page"));
    }
    r.sized_text("header_page")?;
    if r.cstr("header_event")? != b"header_event" {
        return Err(r.err("header_event"));
    }
    r.sized_text("header_event")?;
    let mut events = Vec::new();
    let nr_ftrace = r.u32("nr_ftrace_formats")?;
    for _ in 0..nr_ftrace {
        let t = r.sized_text("an ftrace format")?;
        events.push(parse_one("ftrace", t));
    }
    let nr_systems = r.u32("nr_systems")?;
    for _ in 0..nr_systems {
        let system = text(r.cstr("a system name")?);
        let n = r.u32("nr_events")?;
        for _ in 0..n {
            let t = r.sized_text("an event format")?;
            events.push(parse_one(&system, t));
        }
    }
    let mut td = TracingData {
        version,
        page_size,
        events,
        ..TracingData::default()
    };
    // The tail is optional in old files; a cut here keeps the formats.
    if let Ok(n) = r.u32("kallsyms") {
        if let Ok(k) = r.bytes(n as usize, "kallsyms") {
            td.kallsyms = text(k);
            if let Ok(n) = r.u32("printk") {
                if let Ok(p) = r.bytes(n as usize, "printk") {
                    td.printk = text(p);
                    if td.version != "0.5" {
                        if let Ok(c) = r.sized_text("saved_cmdlines") {
                            td.saved_cmdlines = text(c);
                        }
                    }
                }
            }
        }
    }
    Ok(td)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const SCHED_SWITCH: &str = "name: sched_switch\nID: 372\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\
\n\
\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\
\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;\n\
\tfield:int prev_prio;\toffset:28;\tsize:4;\tsigned:1;\n\
\tfield:long prev_state;\toffset:32;\tsize:8;\tsigned:1;\n\
\tfield:char next_comm[16];\toffset:40;\tsize:16;\tsigned:0;\n\
\tfield:pid_t next_pid;\toffset:56;\tsize:4;\tsigned:1;\n\
\tfield:int next_prio;\toffset:60;\tsize:4;\tsigned:1;\n\
\n\
print fmt: \"prev_comm=%s prev_pid=%d prev_prio=%d prev_state=%s%s ==> next_comm=%s next_pid=%d next_prio=%d\", REC->prev_comm, REC->prev_pid, REC->prev_prio, (REC->prev_state & ((((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) - 1)) ? __print_flags(REC->prev_state & ((((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) - 1), \"|\", { 0x00000001, \"S\" }, { 0x00000002, \"D\" }, { 0x00000004, \"T\" }, { 0x00000008, \"t\" }, { 0x00000010, \"X\" }, { 0x00000020, \"Z\" }, { 0x00000040, \"P\" }, { 0x00000080, \"I\" }) : \"R\", REC->prev_state & (((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) ? \"+\" : \"\", REC->next_comm, REC->next_pid, REC->next_prio\n";

    const PRINTK: &str = "0xffffffff82a00000 : \"rcu_sched\"\n";

    /// A tracing-data blob as perf 6.1 writes it, holding `formats` of system `sys`.
    pub(crate) fn blob(sys: &str, formats: &[&str]) -> Vec<u8> {
        let mut b = b"\x17\x08\x44tracing0.6\0\0\x08".to_vec();
        b.extend_from_slice(&4096u32.to_ne_bytes());
        for (name, t) in [
            ("header_page", "field: u64 timestamp;"),
            ("header_event", "# compressed entry header"),
        ] {
            b.extend_from_slice(name.as_bytes());
            b.push(0);
            b.extend_from_slice(&(t.len() as u64).to_ne_bytes());
            b.extend_from_slice(t.as_bytes());
        }
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&1u32.to_ne_bytes());
        b.extend_from_slice(sys.as_bytes());
        b.push(0);
        b.extend_from_slice(&(formats.len() as u32).to_ne_bytes());
        for f in formats {
            b.extend_from_slice(&(f.len() as u64).to_ne_bytes());
            b.extend_from_slice(f.as_bytes());
        }
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&(PRINTK.len() as u32).to_ne_bytes());
        b.extend_from_slice(PRINTK.as_bytes());
        b.extend_from_slice(&0u64.to_ne_bytes());
        b
    }

    #[test]
    fn formats_by_id_and_printk() {
        let b = blob("sched", &[SCHED_SWITCH, "garbage"]);
        let td = parse(&b).expect("parse");
        assert_eq!(td.version, "0.6");
        assert_eq!(td.events.len(), 2);
        let (sys, f) = td.find(372).expect("sched_switch");
        assert_eq!((sys, f.name.as_str()), ("sched", "sched_switch"));
        assert!(td.events[1].format.is_err());
        assert_eq!(
            td.printk_strings(),
            vec![(0xffffffff82a00000, "rcu_sched".to_string())]
        );
    }

    #[test]
    fn cut_short_is_an_error_or_keeps_the_formats() {
        let b = blob("sched", &[SCHED_SWITCH]);
        let fmt_end = b.len() - 4 - 4 - PRINTK.len() - 8;
        for n in 0..b.len() {
            match parse(&b[..n]) {
                Ok(td) => assert!(n >= fmt_end && td.find(372).is_some(), "cut at {n}"),
                Err(e) => assert!(n < fmt_end, "cut at {n}: {e}"),
            }
        }
        assert_eq!(
            parse(b"\x17\x08\x44tracinX"),
            Err(TracingDataError::BadMagic)
        );
        let mut be = b.clone();
        be[14] = 1;
        assert!(matches!(parse(&be), Err(TracingDataError::Foreign { .. })));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(at in 0usize..2000, junk: Vec<u8>) {
            let mut b = blob("sched", &[SCHED_SWITCH]);
            let at = at.min(b.len());
            b.splice(at..(at + junk.len()).min(b.len()), junk);
            let _ = parse(&b);
        }
    }
}

//! `rprobe stat`: counts, histograms and latencies of probe specs or existing events, live.
//!
//! Two engines compute the same tables:
//! - **user space** (the default, every kernel): samples stream through the perf rings of
//!   [`super::live`] and are decoded by the replay session; keys and values are read from
//!   the raw record at the event format's offsets, `comm`/`pid`/`tid` from the sample, a
//!   `stack` from its callchain.
//! - **BPF** (`--bpf`, `--bpf=auto`): rprobe emits a program per event
//!   ([`crate::aggregate::bpf`]) that computes the key in the kernel and counts into a hash
//!   map, attached to a counting perf event (no samples, no rings); the maps are read back
//!   into the same tables every interval and at the end. Probe-event fields are computed
//!   from the fetch args the probe was defined with (its `*_events` line), tracepoint fields
//!   from the raw record.
//!
//! Key names: an event's own fields, and `comm`, `pid`, `tid`, `stack` of the current task.
//! An event field of the same name wins (`sched_wakeup`'s `pid` is the woken task's);
//! `$comm`, `$pid`, `$tid` always mean the current task.
//!
//! Latency pairs an entry with the next exit of the same key: the thread for probes, the
//! woken pid for `sched:sched_wakeup*` (exit `sched:sched_switch`'s `next_pid`). In user space
//! the samples of one drain are time-ordered, but a CPU's record can reach a later drain than
//! another CPU's later record; events are therefore paired one drain late, up to the latest
//! time the previous drain saw, which puts every record in order unless a ring's reader falls
//! more than a whole drain behind.

use super::live::{Live, LiveArgs, Step};
use super::script::MappedFiles;
use crate::aggregate::bpf::engine::{Engine, EngineError, LatencyEngine, ProcessFilter};
use crate::aggregate::bpf::prog::{Context as BpfContext, LatencyPlan, Plan, Source};
use crate::aggregate::count::{Counts, KeyPart};
use crate::aggregate::hist::{LinearHist, Log2Hist};
use crate::aggregate::latency::{Latency, Unit};
use crate::perf::abi::{perf_type, EventAttr};
use crate::perf::attr::EventKind;
use crate::probes::fetch::{parse_fetch_arg, FetchArg, FetchType};
use crate::replay::script::Script;
use crate::replay::session::{Event, Evsel};
use crate::tracefs::format::{EventFormat, FormatField};
use crate::tracefs::{ProbeKind, Tracefs};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const EXAMPLES: &str = "\
Examples:
  rprobe stat sched:sched_switch --count prev_comm --top 10       who switches out most
  rprobe stat syscalls:sys_enter_write --hist count --by comm     write sizes per command
  rprobe stat -x ./app 'work size=%di:s64' --hist size --linear 4 -- ./app
  rprobe stat -x ./app --latency work                             work's duration, in usecs
  rprobe stat --latency sched:sched_wakeup,sched:sched_switch -i 1  run-queue latency
  rprobe stat syscalls:sys_enter_openat --count comm --bpf=auto   in the kernel when allowed
  rprobe stat sched:sched_switch --count stack -g --duration 5    the paths into schedule
  rprobe stat syscalls:sys_enter_read --count comm --json -i 1    JSON Lines, one per second

Keys: the event's fields (see events/GROUP/EVENT/format), comm, pid, tid, stack; $comm,
$pid, $tid are always the current task's. Text tables print like bcc (argdist, funclatency,
runqlat); --json prints one object per table, documented in the README.";

/// Count, histogram or time events live, in user space or in the kernel.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct StatArgs {
    #[command(flatten)]
    live: LiveArgs,
    /// Count events by these keys (none: one count per event).
    #[arg(long = "count", value_name = "KEY,...", num_args = 0..=1, default_missing_value = "")]
    count: Option<String>,
    /// Show the N largest counts.
    #[arg(long = "top", value_name = "N")]
    top: Option<usize>,
    /// A log2 histogram of this numeric field.
    #[arg(long = "hist", value_name = "FIELD")]
    hist: Option<String>,
    /// One histogram per value of these keys.
    #[arg(long = "by", value_name = "KEY,...")]
    by: Option<String>,
    /// Linear buckets of this width instead of log2.
    #[arg(long = "linear", value_name = "STEP")]
    linear: Option<u64>,
    /// Time from ENTRY to the next EXIT of the same thread (or woken pid), as a histogram;
    /// a bare function name means FUNC,FUNC%return.
    #[arg(long = "latency", value_name = "ENTRY,EXIT")]
    latency: Option<String>,
    /// Unit of latencies: nsecs, usecs or msecs.
    #[arg(long = "unit", value_name = "UNIT", default_value = "usecs")]
    unit: String,
    /// Print the tables of each interval of this many seconds, with a timestamp.
    #[arg(short = 'i', long = "interval", value_name = "SECS")]
    interval: Option<f64>,
    /// JSON Lines: one object per table.
    #[arg(long = "json")]
    json: bool,
    /// Count in the kernel with BPF; `--bpf=auto` falls back to user space when it cannot.
    #[arg(long = "bpf", value_name = "auto", num_args = 0..=1, require_equals = true, default_missing_value = "on")]
    bpf: Option<String>,
    /// Where a refused BPF program's verifier log goes.
    #[arg(long = "verifier-log", value_name = "FILE")]
    verifier_log: Option<PathBuf>,
    /// Probe specs (as `rprobe add` takes them) or existing events (GROUP:EVENT).
    #[arg(value_name = "SPEC_OR_EVENT")]
    items: Vec<String>,
    /// A command to watch (with its children); counting stops when it exits.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Bytes kept of a string key, NUL included (what the BPF engine reads).
const STRING_CAP: u32 = 64;
/// Keys a BPF map holds.
const MAX_KEYS: u32 = 10240;

/// What to compute.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Count(Vec<String>),
    Hist {
        field: String,
        by: Vec<String>,
        linear: Option<u64>,
    },
    Latency,
}

/// How a key part prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    UInt,
    Hex,
    Str,
}

/// Where a key part comes from.
#[derive(Debug, Clone)]
enum KeySrc {
    Comm,
    Pid,
    Tid,
    Stack,
    Field(FormatField),
}

#[derive(Debug, Clone)]
struct Key {
    src: KeySrc,
    kind: Kind,
    /// The BPF engine's computation (None: user space only, with the reason).
    bpf: std::result::Result<Source, String>,
}

/// One event's keys and value.
#[derive(Debug)]
struct EventPlan {
    name: String,
    id: u64,
    keys: Vec<Key>,
    value: Option<Key>,
    ctx: BpfContext,
}

fn is_ident(s: &str) -> bool {
    let s = s.strip_prefix('$').unwrap_or(s);
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

fn split_keys(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A probe event's fetch args by name, from its `*_events` line.
struct ProbeInfo {
    ctx: BpfContext,
    args: HashMap<String, (FetchArg, FetchType)>,
}

fn probe_info(tracefs: &Tracefs, group: &str, event: &str) -> Option<ProbeInfo> {
    for kind in [ProbeKind::Uprobe, ProbeKind::Kprobe] {
        let Ok(lines) = tracefs.probe_events(kind) else {
            continue;
        };
        let Some(line) = lines
            .into_iter()
            .find(|l| l.group == group && l.event == event)
        else {
            continue;
        };
        let ctx = match kind {
            ProbeKind::Kprobe => BpfContext::Kprobe,
            ProbeKind::Uprobe => {
                let off = line
                    .place
                    .rsplit_once(':')
                    .map(|(_, o)| o.split('(').next().unwrap_or(o))
                    .and_then(|o| u64::from_str_radix(o.trim_start_matches("0x"), 16).ok())?;
                BpfContext::Uprobe { probe_offset: off }
            }
        };
        let args = parse_probe_args(&line.args);
        return Some(ProbeInfo { ctx, args });
    }
    None
}

/// `NAME=FETCHARG[:TYPE]` arguments of a `*_events` line, by name; the kernel's default type
/// (x64) when none is written. Arguments that do not parse are left out (the user-space
/// engine still reads them from the record).
fn parse_probe_args(args: &[String]) -> HashMap<String, (FetchArg, FetchType)> {
    let mut out = HashMap::new();
    for a in args {
        let Some((name, body)) = a.split_once('=') else {
            continue;
        };
        // The type follows the last ':' outside parentheses.
        let (fetch, ty) = match body.rfind(':').filter(|&i| !body[i..].contains(')')) {
            Some(i) => (&body[..i], Some(&body[i + 1..])),
            None => (body, None),
        };
        let Ok(arg) = parse_fetch_arg(fetch, 0) else {
            continue;
        };
        let ty = match ty.map(|t| FetchType::parse(t, 0)) {
            Some(Ok(t)) => t,
            Some(Err(_)) => continue,
            None => FetchType::X(64),
        };
        out.insert(name.to_owned(), (arg, ty));
    }
    out
}

fn field_kind(f: &FormatField, probe_ty: Option<&FetchType>) -> Kind {
    if f.data_loc || f.array {
        Kind::Str
    } else if let Some(t) = probe_ty {
        match t {
            FetchType::X(_) | FetchType::Symbol => Kind::Hex,
            FetchType::S(_) => Kind::Int,
            _ => Kind::UInt,
        }
    } else if f.type_name.contains('*') {
        Kind::Hex
    } else if f.signed {
        Kind::Int
    } else {
        Kind::UInt
    }
}

fn is_char_array(f: &FormatField) -> bool {
    let t = f.type_name.as_str();
    t.contains("char") || t.contains("u8") || t.contains("s8")
}

/// The names a user may give for `event`, for the error that lists them.
fn field_list(format: &EventFormat) -> String {
    let own: Vec<&str> = format
        .event_fields()
        .filter(|f| !f.name.starts_with("__probe"))
        .map(|f| f.name.as_str())
        .collect();
    if own.is_empty() {
        "it has no fields of its own; keys: comm, pid, tid, stack".to_string()
    } else {
        format!("its fields: {}; and comm, pid, tid, stack", own.join(", "))
    }
}

/// Resolves one key name against an event.
fn resolve_key(
    name: &str,
    event: &str,
    format: &EventFormat,
    probe: Option<&ProbeInfo>,
    what: &str,
) -> Result<Key> {
    let pseudo =
        |src: KeySrc, kind: Kind, bpf: std::result::Result<Source, String>| Key { src, kind, bpf };
    let field = if name.starts_with('$') {
        None
    } else {
        format.event_fields().find(|f| f.name == name)
    };
    let Some(f) = field else {
        return match name.trim_start_matches('$') {
            "comm" => Ok(pseudo(KeySrc::Comm, Kind::Str, Ok(Source::Comm))),
            "pid" => Ok(pseudo(KeySrc::Pid, Kind::UInt, Ok(Source::Pid))),
            "tid" => Ok(pseudo(KeySrc::Tid, Kind::UInt, Ok(Source::Tid))),
            "stack" => Ok(pseudo(
                KeySrc::Stack,
                Kind::Str,
                Err("stack keys need the user-space engine".into()),
            )),
            _ => bail!(
                "{what} {name}: {event} has no field '{name}'; {}",
                field_list(format)
            ),
        };
    };
    if f.array && !f.data_loc && !is_char_array(f) {
        bail!(
            "{what} {name}: {event}'s {name} is an array ({}); give a number or a string field ({})",
            f.decl,
            field_list(format)
        );
    }
    let probe_arg = probe.and_then(|p| p.args.get(name));
    let kind = field_kind(f, probe_arg.map(|(_, t)| t));
    let bpf = match (probe, probe_arg) {
        (Some(_), Some((arg, ty))) => Ok(Source::Fetch {
            arg: arg.clone(),
            ty: ty.clone(),
        }),
        (Some(_), None) => Err(format!(
            "the BPF engine cannot read {name} of a probe event (only its fetch args)"
        )),
        (None, _) if f.data_loc => Ok(Source::DataLocStr { offset: f.offset }),
        (None, _) if f.array => Ok(Source::CharArray {
            offset: f.offset,
            len: f.size,
        }),
        (None, _) => Ok(Source::Field {
            offset: f.offset,
            size: f.size,
            signed: f.signed,
        }),
    };
    Ok(Key {
        src: KeySrc::Field(f.clone()),
        kind,
        bpf,
    })
}

// ---------------------------------------------------------------------------------------
// Reading values in user space

fn u64_le(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = bytes.len().min(8);
    b[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(b)
}

fn cut_string(bytes: &[u8], max: usize) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    let bytes = &bytes[..end.min(max)];
    String::from_utf8_lossy(bytes).into_owned()
}

/// A field's value in the raw record, as `kind` says.
fn read_field(f: &FormatField, kind: Kind, raw: &[u8]) -> Option<KeyPart> {
    let at = f.offset as usize;
    let cell = raw.get(at..at + f.size as usize)?;
    if f.data_loc {
        let loc = u64_le(cell.get(..4)?) as u32;
        let mut off = (loc & 0xffff) as usize;
        if f.rel_loc {
            off += at + f.size as usize;
        }
        let len = (loc >> 16) as usize;
        let s = raw.get(off..off + len)?;
        return Some(KeyPart::Str(cut_string(s, STRING_CAP as usize - 1)));
    }
    if f.array {
        let max = (f.size as usize).saturating_sub(1);
        return Some(KeyPart::Str(cut_string(cell, max)));
    }
    let v = u64_le(cell);
    let bits = 8 * cell.len().min(8) as u32;
    if bits == 0 {
        return None;
    }
    Some(match kind {
        Kind::Int => {
            let shift = 64 - bits;
            KeyPart::Int(((v << shift) as i64) >> shift)
        }
        Kind::Hex => KeyPart::Hex(v),
        _ => KeyPart::UInt(v),
    })
}

/// A number for a histogram or a pairing key (two's complement for negative values).
fn as_number(p: &KeyPart) -> u64 {
    match p {
        KeyPart::Int(v) => *v as u64,
        KeyPart::UInt(v) | KeyPart::Hex(v) => *v,
        KeyPart::Str(_) => 0,
    }
}

/// A BPF key part printed as the user-space engine prints it.
fn normalize(p: KeyPart, kind: Kind) -> KeyPart {
    match (p, kind) {
        (KeyPart::Str(s), _) => KeyPart::Str(s),
        (p, Kind::Int) => KeyPart::Int(as_number(&p) as i64),
        (p, Kind::Hex) => KeyPart::Hex(as_number(&p)),
        (p, _) => KeyPart::UInt(as_number(&p)),
    }
}

// ---------------------------------------------------------------------------------------
// Tables

/// Everything a run has counted so far (both engines produce this).
#[derive(Debug, Clone, Default)]
struct Tables {
    counts: Counts,
    log2: BTreeMap<Vec<KeyPart>, Log2Hist>,
    linear: BTreeMap<Vec<KeyPart>, LinearHist>,
    latency: Log2Hist,
    /// Sum of paired latencies in ns (user space only).
    latency_ns: Option<u128>,
    /// Exits with no entry (user space only).
    unpaired: Option<u64>,
}

impl Tables {
    /// What was counted since `prev` (an earlier snapshot of the same run).
    fn since(&self, prev: &Tables) -> Tables {
        let mut counts = Counts::default();
        for (k, n) in self.counts.sorted() {
            let d = n.saturating_sub(prev.counts.get(k));
            if d > 0 {
                counts.add_n(k.to_vec(), d);
            }
        }
        let mut log2 = BTreeMap::new();
        for (k, h) in &self.log2 {
            let mut d = h.clone();
            if let Some(p) = prev.log2.get(k) {
                for (a, b) in d.slots.iter_mut().zip(p.slots.iter()) {
                    *a = a.saturating_sub(*b);
                }
            }
            if d.total() > 0 {
                log2.insert(k.clone(), d);
            }
        }
        let mut linear = BTreeMap::new();
        for (k, h) in &self.linear {
            let mut d = h.clone();
            if let Some(p) = prev.linear.get(k) {
                for (b, n) in d.buckets.iter_mut() {
                    *n = n.saturating_sub(p.buckets.get(b).copied().unwrap_or(0));
                }
                d.buckets.retain(|_, n| *n > 0);
            }
            if d.total() > 0 {
                linear.insert(k.clone(), d);
            }
        }
        let mut latency = self.latency.clone();
        for (a, b) in latency.slots.iter_mut().zip(prev.latency.slots.iter()) {
            *a = a.saturating_sub(*b);
        }
        let sub = |a: Option<u128>, b: Option<u128>| a.map(|a| a.saturating_sub(b.unwrap_or(0)));
        Tables {
            counts,
            log2,
            linear,
            latency,
            latency_ns: sub(self.latency_ns, prev.latency_ns),
            unpaired: self
                .unpaired
                .map(|u| u.saturating_sub(prev.unpaired.unwrap_or(0))),
        }
    }
}

/// How tables print.
struct Printer {
    mode: Mode,
    /// Key column names, `event` first when there are several events.
    names: Vec<String>,
    top: Option<usize>,
    unit: Unit,
    json: bool,
    engine: &'static str,
    value_name: String,
}

fn hhmmss() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let d = secs % 86_400;
    format!("{:02}:{:02}:{:02}", d / 3600, d % 3600 / 60, d % 60)
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_part(out: &mut String, p: &KeyPart) {
    match p {
        KeyPart::Int(v) => {
            let _ = write!(out, "{v}");
        }
        KeyPart::UInt(v) => {
            let _ = write!(out, "{v}");
        }
        KeyPart::Hex(v) => json_str(out, &format!("{v:#x}")),
        KeyPart::Str(s) => json_str(out, s),
    }
}

fn json_key(out: &mut String, key: &[KeyPart]) {
    out.push('[');
    for (i, p) in key.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_part(out, p);
    }
    out.push(']');
}

fn json_log2(out: &mut String, h: &Log2Hist) {
    out.push('[');
    let last = h.slots.iter().rposition(|v| *v > 0).unwrap_or(0);
    for i in 1..=last {
        let low = if i == 1 { 0u128 } else { 1u128 << (i - 1) };
        let high = (1u128 << i) - 1;
        if i > 1 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"low\":{low},\"high\":{high},\"count\":{}}}",
            h.slots[i]
        );
    }
    out.push(']');
}

impl Printer {
    fn render(&self, t: &Tables, interval: bool, elapsed: f64, lost: u64) -> String {
        if self.json {
            self.render_json(t, interval, elapsed, lost)
        } else {
            self.render_text(t, interval)
        }
    }

    fn render_text(&self, t: &Tables, interval: bool) -> String {
        let mut out = String::new();
        if interval {
            let _ = writeln!(out, "[{}]", hhmmss());
        }
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        let key_line = |key: &[KeyPart]| {
            names
                .iter()
                .zip(key)
                .map(|(n, v)| format!("{n} = {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &self.mode {
            Mode::Count(_) => out.push_str(&t.counts.render(&names, self.top)),
            Mode::Hist { linear, .. } => {
                let tables: Vec<(&Vec<KeyPart>, String)> = if linear.is_some() {
                    t.linear
                        .iter()
                        .map(|(k, h)| (k, h.render(&self.value_name)))
                        .collect()
                } else {
                    t.log2
                        .iter()
                        .map(|(k, h)| (k, h.render(&self.value_name)))
                        .collect()
                };
                if tables.is_empty() {
                    out.push_str("(no events)\n");
                }
                for (i, (k, text)) in tables.iter().enumerate() {
                    if i > 0 {
                        out.push('\n');
                    }
                    if !k.is_empty() {
                        let _ = writeln!(out, "{}", key_line(k));
                    }
                    out.push_str(text);
                }
            }
            Mode::Latency => {
                let text = t.latency.render(self.unit.label());
                if text.is_empty() {
                    out.push_str("(no pairs)\n");
                }
                out.push_str(&text);
                let count = t.latency.total();
                match t.latency_ns {
                    Some(ns) if count > 0 => {
                        let scale = |v: u128| match self.unit {
                            Unit::Nsecs => v,
                            Unit::Usecs => v / 1_000,
                            Unit::Msecs => v / 1_000_000,
                        };
                        let _ = writeln!(
                            out,
                            "\navg = {} {u}, total: {} {u}, count: {count}",
                            scale(ns / u128::from(count)),
                            scale(ns),
                            u = self.unit.label()
                        );
                    }
                    _ if count > 0 => {
                        let _ = writeln!(out, "\ncount: {count}");
                    }
                    _ => {}
                }
            }
        }
        out
    }

    fn render_json(&self, t: &Tables, interval: bool, elapsed: f64, lost: u64) -> String {
        let mut o = String::new();
        let kind = match &self.mode {
            Mode::Count(_) => "count",
            Mode::Hist { .. } => "hist",
            Mode::Latency => "latency",
        };
        let _ = write!(
            o,
            "{{\"type\":\"{kind}\",\"time\":\"{}\",\"elapsed\":{elapsed:.3},\"interval\":{interval},\"engine\":\"{}\",\"lost\":{lost},\"keys\":[",
            hhmmss(),
            self.engine
        );
        for (i, n) in self.names.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            json_str(&mut o, n);
        }
        o.push(']');
        match &self.mode {
            Mode::Count(_) => {
                o.push_str(",\"rows\":[");
                let rows = t.counts.sorted();
                let shown = self.top.map_or(rows.len(), |n| n.min(rows.len()));
                for (i, (k, n)) in rows[..shown].iter().enumerate() {
                    if i > 0 {
                        o.push(',');
                    }
                    o.push_str("{\"key\":");
                    json_key(&mut o, k);
                    let _ = write!(o, ",\"count\":{n}}}");
                }
                let _ = write!(
                    o,
                    "],\"total\":{},\"distinct\":{}",
                    t.counts.total(),
                    rows.len()
                );
            }
            Mode::Hist { field, linear, .. } => {
                o.push_str(",\"field\":");
                json_str(&mut o, field);
                match linear {
                    Some(step) => {
                        let _ = write!(o, ",\"scale\":\"linear\",\"step\":{step},\"hists\":[");
                        for (i, (k, h)) in t.linear.iter().enumerate() {
                            if i > 0 {
                                o.push(',');
                            }
                            o.push_str("{\"key\":");
                            json_key(&mut o, k);
                            o.push_str(",\"buckets\":[");
                            for (j, (b, n)) in h.buckets.iter().enumerate() {
                                if j > 0 {
                                    o.push(',');
                                }
                                let low = b * h.step;
                                let _ = write!(
                                    o,
                                    "{{\"low\":{low},\"high\":{},\"count\":{n}}}",
                                    low + h.step - 1
                                );
                            }
                            let _ = write!(o, "],\"total\":{}}}", h.total());
                        }
                    }
                    None => {
                        o.push_str(",\"scale\":\"log2\",\"hists\":[");
                        for (i, (k, h)) in t.log2.iter().enumerate() {
                            if i > 0 {
                                o.push(',');
                            }
                            o.push_str("{\"key\":");
                            json_key(&mut o, k);
                            o.push_str(",\"buckets\":");
                            json_log2(&mut o, h);
                            let _ = write!(o, ",\"total\":{}}}", h.total());
                        }
                    }
                }
                o.push(']');
            }
            Mode::Latency => {
                let _ = write!(o, ",\"unit\":\"{}\",\"buckets\":", self.unit.label());
                json_log2(&mut o, &t.latency);
                let _ = write!(o, ",\"count\":{}", t.latency.total());
                match t.latency_ns {
                    Some(ns) => {
                        let _ = write!(o, ",\"total_ns\":{ns}");
                    }
                    None => o.push_str(",\"total_ns\":null"),
                }
                match t.unpaired {
                    Some(u) => {
                        let _ = write!(o, ",\"unpaired\":{u}");
                    }
                    None => o.push_str(",\"unpaired\":null"),
                }
            }
        }
        o.push_str("}\n");
        o
    }
}

// ---------------------------------------------------------------------------------------
// The command

fn parse_unit(text: &str) -> Result<Unit> {
    match text {
        "nsecs" | "ns" => Ok(Unit::Nsecs),
        "usecs" | "us" => Ok(Unit::Usecs),
        "msecs" | "ms" => Ok(Unit::Msecs),
        _ => bail!("--unit {text}: give nsecs, usecs or msecs"),
    }
}

/// The mode and the items to open, from the arguments.
fn plan_mode(args: &StatArgs, tracefs_has: &dyn Fn(&str) -> bool) -> Result<(Mode, Vec<String>)> {
    let mut items = args.items.clone();
    let mut count = args.count.clone();
    // `--count SPEC` with no keys: clap took the spec as the key list.
    if let Some(c) = &count {
        let keys_like = c.split(',').all(|k| is_ident(k.trim()));
        let pseudo = c.split(',').all(|k| {
            matches!(
                k.trim().trim_start_matches('$'),
                "comm" | "pid" | "tid" | "stack"
            )
        });
        let lone = items.is_empty() && args.latency.is_none() && !pseudo;
        if !c.is_empty() && (!keys_like || lone) {
            items.insert(0, c.clone());
            count = Some(String::new());
        }
    }
    let chosen = [count.is_some(), args.hist.is_some(), args.latency.is_some()];
    if chosen.iter().filter(|c| **c).count() > 1 {
        bail!("--count, --hist and --latency are separate questions; give one of them");
    }
    if args.by.is_some() && args.hist.is_none() {
        bail!("--by KEY needs --hist FIELD (with --count, give the keys to --count)");
    }
    if args.linear.is_some() && args.hist.is_none() {
        bail!("--linear STEP needs --hist FIELD");
    }
    if args.linear == Some(0) {
        bail!("--linear 0: give a bucket width of at least 1");
    }
    if args.top == Some(0) {
        bail!("--top 0: give a number of rows of at least 1");
    }
    if let Some(lat) = &args.latency {
        if !items.is_empty() {
            bail!(
                "--latency {lat}: the events are the two of --latency; drop '{}'",
                items[0]
            );
        }
        let (entry, exit) = match lat.split_once(',') {
            Some((a, b)) => (a.trim().to_owned(), b.trim().to_owned()),
            None if tracefs_has(lat) => bail!(
                "--latency {lat}: unpaired; give the entry and the exit event as ENTRY,EXIT (e.g. sched:sched_wakeup,sched:sched_switch), or a function name for FUNC,FUNC%return"
            ),
            None => {
                let func = lat.split_whitespace().next().unwrap_or(lat);
                if func.contains('%') {
                    bail!("--latency {lat}: unpaired; give ENTRY,EXIT (e.g. 'work,work%return')");
                }
                (lat.clone(), format!("{func}%return"))
            }
        };
        if entry.is_empty() || exit.is_empty() || entry == exit {
            bail!("--latency {lat}: unpaired; give two different events, ENTRY,EXIT (e.g. sched:sched_wakeup,sched:sched_switch)");
        }
        return Ok((Mode::Latency, vec![entry, exit]));
    }
    if items.is_empty() {
        bail!("no event given: name probe specs or existing events (GROUP:EVENT), e.g. rprobe stat sched:sched_switch --count prev_comm");
    }
    let mode = match &args.hist {
        Some(field) => Mode::Hist {
            field: field.clone(),
            by: args.by.as_deref().map(split_keys).unwrap_or_default(),
            linear: args.linear,
        },
        None => Mode::Count(count.as_deref().map(split_keys).unwrap_or_default()),
    };
    Ok((mode, items))
}

/// Which engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    User,
    Bpf,
    Auto,
}

pub fn run(args: &StatArgs, out: &mut dyn Write) -> Result<()> {
    let want = match args.bpf.as_deref() {
        None => Want::User,
        Some("on") => Want::Bpf,
        Some("auto") => Want::Auto,
        Some(o) => {
            bail!("--bpf={o}: give --bpf (BPF or an error) or --bpf=auto (BPF when allowed)")
        }
    };
    let unit = parse_unit(&args.unit)?;
    let interval = match args.interval {
        Some(i) if !(i.is_finite() && i > 0.0) => {
            bail!("-i {i}: give a positive number of seconds")
        }
        i => i.map(Duration::from_secs_f64),
    };
    let tracefs = super::env::open_tracefs()?;
    let has = |name: &str| match name.split_once(':') {
        Some((g, e)) => tracefs.event_exists(g, e),
        None => false,
    };
    let (mode, items) = plan_mode(args, &has)?;
    let stack = match &mode {
        Mode::Count(k) => k.iter().any(|k| k == "stack" || k == "$stack"),
        Mode::Hist { by, .. } => by.iter().any(|k| k == "stack" || k == "$stack"),
        Mode::Latency => false,
    };
    let mut spec = args.live.spec("stat", &items, &args.command)?;
    // A stack key needs callchains: frame pointers unless `--call-graph dwarf` was asked for.
    spec.callchain |= stack && spec.dwarf_stack == 0;
    let mut live = Live::prepare(&spec)?;

    // The events in the order of the items: probes come first in `kinds`, in spec order.
    let mut ordered: Vec<EventKind> = Vec::new();
    let n_probes = live
        .kinds
        .iter()
        .filter(|k| match k {
            EventKind::Tracepoint { group, .. } => group.starts_with("rprobe_"),
            _ => false,
        })
        .count();
    let mut probe_kinds = live.kinds[..n_probes].iter();
    for item in &items {
        if has(item) {
            let (g, e) = item.split_once(':').unwrap_or_default();
            if let Some(k) = live.kinds.iter().find(|k| {
                matches!(k, EventKind::Tracepoint { group, event, .. } if group == g && event == e)
            }) {
                ordered.push(k.clone());
            }
        } else if let Some(k) = probe_kinds.next() {
            ordered.push(k.clone());
        }
    }
    for k in &live.kinds {
        if !ordered.contains(k) {
            ordered.push(k.clone());
        }
    }
    if mode == Mode::Latency && ordered.len() != 2 {
        bail!(
            "--latency {}: ENTRY and EXIT must be one event each; they are {}",
            args.latency.as_deref().unwrap_or_default(),
            ordered
                .iter()
                .map(EventKind::name)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    // Keys and values per event.
    let mut plans = Vec::new();
    for k in &ordered {
        let EventKind::Tracepoint { group, event, id } = k else {
            bail!(
                "{}: rprobe stat counts tracepoints and probe events",
                k.name()
            );
        };
        let name = format!("{group}:{event}");
        let format = live
            .tracefs
            .event_format(group, event)
            .with_context(|| format!("cannot read the format of {name}"))?;
        let probe = probe_info(&live.tracefs, group, event);
        let ctx = probe.as_ref().map_or(BpfContext::Tracepoint, |p| p.ctx);
        let resolve =
            |key: &str, what: &str| resolve_key(key, &name, &format, probe.as_ref(), what);
        let (keys, value) = match &mode {
            Mode::Count(keys) => (
                keys.iter()
                    .map(|k| resolve(k, "--count"))
                    .collect::<Result<Vec<_>>>()?,
                None,
            ),
            Mode::Hist { field, by, .. } => {
                let v = resolve(field, "--hist")?;
                if v.kind == Kind::Str || matches!(v.src, KeySrc::Stack) {
                    let decl = match &v.src {
                        KeySrc::Field(f) => f.decl.clone(),
                        _ => field.clone(),
                    };
                    let numeric: Vec<&str> = format
                        .event_fields()
                        .filter(|f| !f.array && !f.data_loc && !f.name.starts_with("__probe"))
                        .map(|f| f.name.as_str())
                        .collect();
                    bail!(
                        "--hist {field}: {name}'s {field} is not a number ({decl}); histogram a numeric field ({}), or count it: --count {field}",
                        if numeric.is_empty() { "it has none".to_string() } else { numeric.join(", ") }
                    );
                }
                (
                    by.iter()
                        .map(|k| resolve(k, "--by"))
                        .collect::<Result<Vec<_>>>()?,
                    Some(v),
                )
            }
            Mode::Latency => {
                // The pairing key: the woken pid and the next pid for the scheduler pair,
                // the thread otherwise.
                let field = match (group.as_str(), event.as_str()) {
                    ("sched", "sched_wakeup" | "sched_wakeup_new" | "sched_waking") => "pid",
                    ("sched", "sched_switch") => "next_pid",
                    _ => "$tid",
                };
                (vec![resolve(field, "--latency")?], None)
            }
        };
        plans.push(EventPlan {
            name,
            id: u64::from(*id),
            keys,
            value,
            ctx,
        });
    }

    // The engine.
    let bpf_ok: std::result::Result<(), String> = plans
        .iter()
        .flat_map(|p| p.keys.iter().chain(p.value.iter()))
        .try_for_each(|k| k.bpf.as_ref().map(|_| ()).map_err(Clone::clone))
        .and_then(|()| match args.live.filter {
            Some(_) => {
                Err("--filter applies to perf samples; the BPF engine does not see it".into())
            }
            None => Ok(()),
        });
    let mut use_bpf = match (want, &bpf_ok) {
        (Want::User, _) => false,
        (Want::Bpf, Err(why)) => bail!("--bpf: {why}"),
        (Want::Auto, Err(why)) => {
            eprintln!("rprobe stat: counting in user space: {why}");
            false
        }
        (_, Ok(())) => true,
    };
    if use_bpf {
        if let Err(e) = crate::aggregate::bpf::engine::check_bpf() {
            if want == Want::Bpf {
                bail!("--bpf: {e}");
            }
            eprintln!("rprobe stat: counting in user space: {e}");
            use_bpf = false;
        }
    }
    if use_bpf {
        spec.rings = false;
    }
    live.open_target(&spec)?;

    let several = plans.len() > 1 && mode != Mode::Latency;
    let mut names: Vec<String> = Vec::new();
    if several {
        names.push("event".into());
    }
    let key_names: Vec<String> = match &mode {
        Mode::Count(k) => k.clone(),
        Mode::Hist { by, .. } => by.clone(),
        Mode::Latency => Vec::new(),
    };
    names.extend(key_names);
    let value_name = match &mode {
        Mode::Hist { field, .. } => field.clone(),
        _ => String::new(),
    };
    let mut printer = Printer {
        mode: mode.clone(),
        names,
        top: args.top,
        unit,
        json: args.json,
        engine: "user",
        value_name,
    };

    let mut bpf = None;
    if use_bpf {
        let tgids: Vec<u32> = match (live.child_pid(), live.watched()) {
            (Some(p), _) if !args.live.all_cpus => vec![p as u32],
            (_, w) if !w.is_empty() => w.iter().map(|&p| p as u32).collect(),
            _ => Vec::new(),
        };
        // Children of the command (and of -p's processes) are followed through fork.
        // (Latencies pair events of any task: the programs are not filtered.)
        let fork = if tgids.is_empty() || mode == Mode::Latency {
            None
        } else {
            let f = live
                .tracefs
                .event_format("sched", "sched_process_fork")
                .context("the BPF engine follows forks with sched:sched_process_fork")?;
            let off = f
                .find_field("child_pid")
                .map(|c| c.offset)
                .ok_or_else(|| anyhow!("sched:sched_process_fork has no child_pid field"))?;
            Some((u64::from(f.id), off))
        };
        let filter = fork.map(|(id, off)| (tgids.as_slice(), id, off));
        match BpfRun::load(&plans, &mode, unit, filter, several) {
            Ok(b) => {
                printer.engine = "bpf";
                bpf = Some(b);
            }
            Err(e) => {
                let why = explain_bpf(&e, args.verifier_log.as_deref())?;
                if want == Want::Bpf {
                    return Err(anyhow!("--bpf: {why}"));
                }
                eprintln!("rprobe stat: counting in user space: {why}");
                use_bpf = false;
                // Rings were not opened: open the target again with them.
                drop(live);
                spec.rings = true;
                live = Live::prepare(&spec)?;
                live.open_target(&spec)?;
            }
        }
    }
    let _ = use_bpf;
    match bpf {
        Some(b) => run_bpf(live, b, &printer, interval, out),
        None => run_user(live, &plans, &printer, interval, out),
    }
}

/// A refused BPF setup in one line; the verifier's log goes to a file.
fn explain_bpf(e: &EngineError, log_path: Option<&std::path::Path>) -> Result<String> {
    let Some(log) = e.verifier_log() else {
        return Ok(e.to_string());
    };
    let path = log_path.map(PathBuf::from).unwrap_or_else(|| {
        std::env::temp_dir().join(format!("rprobe-stat-{}.verifier.log", std::process::id()))
    });
    std::fs::write(&path, log).with_context(|| format!("cannot write {}", path.display()))?;
    let last = log
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.starts_with("processed"))
        .unwrap_or("")
        .trim();
    Ok(format!(
        "the verifier refused rprobe's program ({last}); its log is in {}",
        path.display()
    ))
}

// ---------------------------------------------------------------------------------------
// The user-space engine

/// One sample's contribution, before latency pairing.
struct UserAgg<'p> {
    plans: &'p [EventPlan],
    /// Evsel index → plan index.
    by_evsel: Vec<Option<usize>>,
    mode: Mode,
    tables: Tables,
    latency: Latency,
    /// (time, entry?, key) not yet paired, and the latest time of the previous drain.
    pending: Vec<(u64, bool, u64)>,
    horizon: u64,
    seen_max: u64,
    events: u64,
    stacks: HashMap<(usize, Vec<u8>), String>,
}

impl UserAgg<'_> {
    fn key_of<W: Write>(
        &mut self,
        keys: &[Key],
        m: &mut crate::replay::machine::Machine,
        ev: &Evsel,
        sample: &crate::perf::reader::records::Sample<'_>,
        script: &mut Script<'_, W>,
    ) -> Option<Vec<KeyPart>> {
        let raw = sample.raw.unwrap_or_default();
        let mut parts = Vec::with_capacity(keys.len() + 1);
        for k in keys {
            let p = match &k.src {
                KeySrc::Comm => {
                    let t = m.findnew(sample.pid, sample.tid);
                    KeyPart::Str(cut_string(t.comm.as_bytes(), 15))
                }
                KeySrc::Pid => KeyPart::UInt(sample.pid as u32 as u64),
                KeySrc::Tid => KeyPart::UInt(sample.tid as u32 as u64),
                KeySrc::Field(f) => read_field(f, k.kind, raw)?,
                KeySrc::Stack => {
                    let maps = m.findnew(sample.pid, sample.tid).maps;
                    // `--call-graph dwarf`: the kernel part and the unwound user frames.
                    let unwound = if crate::replay::unwind::is_dwarf(&ev.attr) {
                        script
                            .unwound_chain(m, maps, ev, sample)
                            .map(<[u8]>::to_vec)
                    } else {
                        None
                    };
                    let mut sample = *sample;
                    if let Some(c) = &unwound {
                        sample.callchain = Some(c);
                    }
                    let chain = sample.callchain.unwrap_or_default();
                    let id = (maps, chain.to_vec());
                    if let Some(s) = self.stacks.get(&id) {
                        KeyPart::Str(s.clone())
                    } else {
                        let frames = script.frames(m, maps, &sample);
                        let names: Vec<String> = frames
                            .iter()
                            .rev()
                            .map(|(addr, sym, _)| match sym {
                                Some((n, _)) => n.to_string(),
                                None => format!("{addr:#x}"),
                            })
                            .collect();
                        let s = if names.is_empty() {
                            "[no stack]".to_string()
                        } else {
                            names.join(";")
                        };
                        self.stacks.insert(id, s.clone());
                        KeyPart::Str(s)
                    }
                }
            };
            parts.push(p);
        }
        Some(parts)
    }

    fn sample<W: Write>(
        &mut self,
        m: &mut crate::replay::machine::Machine,
        ev: &Evsel,
        evsel: usize,
        sample: &crate::perf::reader::records::Sample<'_>,
        script: &mut Script<'_, W>,
    ) {
        let Some(Some(pi)) = self.by_evsel.get(evsel).copied() else {
            return;
        };
        let plan = &self.plans[pi];
        self.events += 1;
        let several = self.plans.len() > 1;
        let Some(mut key) = self.key_of(&plan.keys, m, ev, sample, script) else {
            return;
        };
        match &self.mode {
            Mode::Count(_) => {
                if several {
                    key.insert(0, KeyPart::Str(plan.name.clone()));
                }
                self.tables.counts.add(key);
            }
            Mode::Hist { linear, .. } => {
                let raw = sample.raw.unwrap_or_default();
                let Some(v) = plan.value.as_ref().and_then(|v| match &v.src {
                    KeySrc::Field(f) => read_field(f, v.kind, raw),
                    KeySrc::Pid => Some(KeyPart::UInt(sample.pid as u32 as u64)),
                    KeySrc::Tid => Some(KeyPart::UInt(sample.tid as u32 as u64)),
                    _ => None,
                }) else {
                    return;
                };
                if several {
                    key.insert(0, KeyPart::Str(plan.name.clone()));
                }
                let v = as_number(&v);
                match linear {
                    Some(step) => self
                        .tables
                        .linear
                        .entry(key)
                        .or_insert_with(|| LinearHist::new(*step))
                        .add(v),
                    None => self.tables.log2.entry(key).or_default().add(v),
                }
            }
            Mode::Latency => {
                let k = key.first().map(as_number).unwrap_or(0);
                self.pending.push((sample.time, pi == 0, k));
                self.seen_max = self.seen_max.max(sample.time);
            }
        }
    }

    /// Pairs what is certainly in order (everything when `all`).
    fn settle(&mut self, all: bool) {
        if self.mode != Mode::Latency {
            return;
        }
        // Entries before exits at equal times.
        self.pending.sort_by_key(|(t, entry, _)| (*t, !*entry));
        let upto = if all { u64::MAX } else { self.horizon };
        let n = self.pending.partition_point(|(t, _, _)| *t <= upto);
        for (t, entry, k) in self.pending.drain(..n) {
            if entry {
                self.latency.entry(k, t);
            } else {
                self.latency.exit(k, t);
            }
        }
        self.horizon = self.seen_max;
        self.tables.latency = self.latency.hist.clone();
        self.tables.latency_ns = Some(self.latency.total_ns);
        self.tables.unpaired = Some(self.latency.unpaired_exits);
    }
}

fn run_user(
    mut live: Live,
    plans: &[EventPlan],
    printer: &Printer,
    interval: Option<Duration>,
    out: &mut dyn Write,
) -> Result<()> {
    let file = live.header()?;
    let (mut decoder, sopts, splan) = super::live::decoder(&file)?;
    let files = MappedFiles;
    let mut sink = std::io::sink();
    let mut script = Script::new(&mut sink, &decoder.evsels, splan, sopts, &files);
    let by_evsel = decoder
        .evsels
        .iter()
        .map(|ev| plans.iter().position(|p| p.name == ev.name))
        .collect();
    let mut agg = UserAgg {
        plans,
        by_evsel,
        mode: printer.mode.clone(),
        tables: Tables::default(),
        latency: Latency::new(printer.unit),
        pending: Vec::new(),
        horizon: 0,
        seen_max: 0,
        events: 0,
        stacks: HashMap::new(),
    };
    macro_rules! feed {
        ($bytes:expr) => {
            decoder.feed($bytes, &mut |m, evsels, e| {
                if let Event::Sample { evsel, sample, .. } = e {
                    agg.sample(m, &evsels[evsel], evsel, &sample, &mut script);
                }
                Ok(())
            })
        };
    }
    feed!(&live.synth())?;
    let start = live.start("Counting")?;
    let mut last = Tables::default();
    let mut lost_so_far = 0u64;
    let (outcome, result) = live.run(start, interval, &mut |step| match step {
        Step::Records(buf) => {
            lost_so_far += lost_in(buf);
            feed!(buf)?;
            agg.settle(false);
            Ok(())
        }
        Step::Tick => {
            let now = agg.tables.clone();
            let text = printer.render(
                &now.since(&last),
                true,
                start.elapsed().as_secs_f64(),
                lost_so_far,
            );
            last = now;
            out.write_all(text.as_bytes())?;
            out.flush()
        }
    });
    agg.settle(true);
    drop(script);
    let events = agg.events;
    let closed = live.close();
    let printed = print_end(
        printer,
        out,
        interval,
        &last,
        &agg.tables,
        start,
        outcome.lost,
    );
    eprintln!(
        "rprobe stat: {events} event{}, lost {}{}",
        plural(events),
        outcome.lost,
        outcome.stop.map(|r| format!(" ({r})")).unwrap_or_default()
    );
    closed?;
    result?;
    printed?;
    if outcome.lost > 0 {
        eprintln!("rprobe stat: the kernel lost {} records: counts are short by that many (use a larger -m, or --bpf)", outcome.lost);
    }
    Ok(())
}

/// The end of a run: with `-i`, the last (partial) interval, so that the intervals add up
/// to the total; then the whole run's tables.
fn print_end(
    printer: &Printer,
    out: &mut dyn Write,
    interval: Option<Duration>,
    last: &Tables,
    total: &Tables,
    start: Instant,
    lost: u64,
) -> std::io::Result<()> {
    let elapsed = start.elapsed().as_secs_f64();
    let mut text = String::new();
    if interval.is_some() {
        text.push_str(&printer.render(&total.since(last), true, elapsed, lost));
        if !printer.json {
            let _ = writeln!(text, "Total over {elapsed:.1} s:");
        }
    }
    text.push_str(&printer.render(total, false, elapsed, lost));
    out.write_all(text.as_bytes())?;
    out.flush()
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn lost_in(buf: &[u8]) -> u64 {
    crate::perf::ring::records(buf)
        .filter(|r| r.type_ == crate::perf::abi::record::LOST)
        .filter_map(|r| crate::perf::abi::u64_at(r.bytes, 16))
        .sum()
}

// ---------------------------------------------------------------------------------------
// The BPF engine

enum BpfTables {
    /// An engine per event, with the perf event it rides on (kept open).
    Counts(Vec<(Engine, OwnedFd)>),
    /// The latency programs and their two perf events (kept open).
    Latency(LatencyEngine, #[allow(dead_code)] [OwnedFd; 2]),
}

struct BpfRun {
    tables: BpfTables,
    /// Per engine of `Counts`: the event name and key kinds.
    shapes: Vec<(String, Vec<Kind>)>,
    several: bool,
    /// The process filter and its fork program's event (kept open).
    _filter: Option<(ProcessFilter, OwnedFd)>,
}

fn attached(r: Result<(), crate::sys::SyscallError>) -> Result<(), EngineError> {
    r.map_err(|source| EngineError::Map {
        hint: "PERF_EVENT_IOC_SET_BPF was refused".into(),
        source,
    })
}

/// A counting perf event on tracefs event `id` (CPU 0, every task) for a program to ride on:
/// the kernel runs the program on every hit of the event on every CPU (see `engine`).
fn carrier(id: u64, name: &str) -> Result<OwnedFd, EngineError> {
    let attr = EventAttr {
        type_: perf_type::TRACEPOINT,
        config: id,
        sample_period: 0,
        ..EventAttr::default()
    };
    crate::sys::perf_event::perf_event_open(&attr.encode(128), -1, 0, name).map_err(|source| {
        EngineError::Map {
            hint: "cannot open the event for the BPF program".into(),
            source,
        }
    })
}

impl BpfRun {
    fn load(
        plans: &[EventPlan],
        mode: &Mode,
        unit: Unit,
        filter: Option<(&[u32], u64, u32)>,
        several: bool,
    ) -> Result<BpfRun, EngineError> {
        let src = |k: &Key| k.bpf.clone().unwrap_or(Source::Tid);
        let filter = match filter {
            Some((tgids, fork_id, child_pid_offset)) => {
                let f = ProcessFilter::load(MAX_KEYS, child_pid_offset)?;
                for &t in tgids {
                    f.add(t).map_err(|source| EngineError::Map {
                        hint: "cannot fill the process filter".into(),
                        source,
                    })?;
                }
                let fd = carrier(fork_id, "sched:sched_process_fork")?;
                attached(f.attach(&fd))?;
                Some((f, fd))
            }
            None => None,
        };
        if *mode == Mode::Latency {
            let plan = LatencyPlan {
                entry_key: src(&plans[0].keys[0]),
                entry_ctx: plans[0].ctx,
                exit_key: src(&plans[1].keys[0]),
                exit_ctx: plans[1].ctx,
                unit_ns: match unit {
                    Unit::Nsecs => 1,
                    Unit::Usecs => 1_000,
                    Unit::Msecs => 1_000_000,
                },
            };
            let eng = LatencyEngine::load(&plan, MAX_KEYS)?;
            let a = carrier(plans[0].id, &plans[0].name)?;
            let b = carrier(plans[1].id, &plans[1].name)?;
            attached(eng.attach_entry(&a))?;
            attached(eng.attach_exit(&b))?;
            return Ok(BpfRun {
                tables: BpfTables::Latency(eng, [a, b]),
                shapes: Vec::new(),
                several: false,
                _filter: filter,
            });
        }
        let mut engines = Vec::new();
        let mut shapes = Vec::new();
        for p in plans {
            let plan = Plan {
                key: p.keys.iter().map(src).collect(),
                hist: p.value.as_ref().map(src),
                linear: match mode {
                    Mode::Hist { linear, .. } => *linear,
                    _ => None,
                },
                string_cap: STRING_CAP,
                context: p.ctx,
            };
            let eng = Engine::load_for(plan, MAX_KEYS, filter.as_ref().map(|(f, _)| f))?;
            let fd = carrier(p.id, &p.name)?;
            attached(eng.attach(&fd))?;
            engines.push((eng, fd));
            shapes.push((p.name.clone(), p.keys.iter().map(|k| k.kind).collect()));
        }
        Ok(BpfRun {
            tables: BpfTables::Counts(engines),
            shapes,
            several,
            _filter: filter,
        })
    }

    fn read(&self, mode: &Mode) -> Tables {
        let mut t = Tables::default();
        match &self.tables {
            BpfTables::Latency(eng, _) => t.latency = eng.hist(),
            BpfTables::Counts(engines) => {
                for ((eng, _), (name, kinds)) in engines.iter().zip(&self.shapes) {
                    let fix = |parts: Vec<KeyPart>| {
                        let mut k: Vec<KeyPart> = parts
                            .into_iter()
                            .zip(kinds)
                            .map(|(p, kind)| normalize(p, *kind))
                            .collect();
                        if self.several {
                            k.insert(0, KeyPart::Str(name.clone()));
                        }
                        k
                    };
                    match mode {
                        Mode::Hist {
                            linear: Some(step), ..
                        } => {
                            for (k, h) in eng.linear_hists(*step) {
                                let slot = t
                                    .linear
                                    .entry(fix(k))
                                    .or_insert_with(|| LinearHist::new(*step));
                                for (b, n) in h.buckets {
                                    *slot.buckets.entry(b).or_insert(0) += n;
                                }
                            }
                        }
                        Mode::Hist { .. } => {
                            for (k, h) in eng.hists() {
                                t.log2.entry(fix(k)).or_default().merge(&h);
                            }
                        }
                        _ => {
                            for (k, n) in eng.counts().sorted() {
                                t.counts.add_n(fix(k.to_vec()), n);
                            }
                        }
                    }
                }
            }
        }
        t
    }

    fn events(&self, t: &Tables) -> u64 {
        match &self.tables {
            BpfTables::Latency(..) => t.latency.total(),
            BpfTables::Counts(_) => {
                t.counts.total()
                    + t.log2.values().map(Log2Hist::total).sum::<u64>()
                    + t.linear.values().map(LinearHist::total).sum::<u64>()
            }
        }
    }
}

fn run_bpf(
    mut live: Live,
    bpf: BpfRun,
    printer: &Printer,
    interval: Option<Duration>,
    out: &mut dyn Write,
) -> Result<()> {
    let start: Instant = live.start("Counting (BPF)")?;
    let mut last = Tables::default();
    let (outcome, result) = live.run(start, interval, &mut |step| match step {
        Step::Records(_) => Ok(()),
        Step::Tick => {
            let now = bpf.read(&printer.mode);
            let text = printer.render(&now.since(&last), true, start.elapsed().as_secs_f64(), 0);
            last = now;
            out.write_all(text.as_bytes())?;
            out.flush()
        }
    });
    let tables = bpf.read(&printer.mode);
    let events = bpf.events(&tables);
    // The programs' events close before the probes are removed.
    drop(bpf);
    let closed = live.close();
    let printed = print_end(printer, out, interval, &last, &tables, start, 0);
    eprintln!(
        "rprobe stat: {events} event{} counted in the kernel{}",
        plural(events),
        outcome.stop.map(|r| format!(" ({r})")).unwrap_or_default()
    );
    closed?;
    result?;
    printed?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracefs::format::parse_format;

    const SWITCH: &str = include_str!("../../fixtures/tracefs/sched_switch.format");

    #[test]
    fn unknown_fields_list_the_events_fields() {
        let f = parse_format(SWITCH).expect("format");
        let err =
            resolve_key("nope", "sched:sched_switch", &f, None, "--count").expect_err("unknown");
        let msg = err.to_string();
        assert!(msg.starts_with("--count nope: sched:sched_switch has no field 'nope'; its fields: prev_comm, prev_pid"), "{msg}");
        let k = resolve_key("prev_comm", "sched:sched_switch", &f, None, "--count").expect("key");
        assert_eq!(k.kind, Kind::Str);
        assert!(matches!(
            k.bpf,
            Ok(Source::CharArray { offset: 8, len: 16 })
        ));
        let k = resolve_key("prev_pid", "sched:sched_switch", &f, None, "--count").expect("key");
        assert_eq!(k.kind, Kind::Int);
        assert!(matches!(
            k.bpf,
            Ok(Source::Field {
                offset: 24,
                size: 4,
                signed: true
            })
        ));
        let k = resolve_key("$pid", "x", &f, None, "--count").expect("key");
        assert!(matches!(k.src, KeySrc::Pid));
    }

    #[test]
    fn raw_fields_read_as_their_kind() {
        let f = parse_format(SWITCH).expect("format");
        let mut raw = vec![0u8; 64];
        raw[8..12].copy_from_slice(b"bash");
        raw[24..28].copy_from_slice(&(-5i32).to_le_bytes());
        let comm = f.find_field("prev_comm").expect("field");
        let pid = f.find_field("prev_pid").expect("field");
        assert_eq!(
            read_field(comm, Kind::Str, &raw),
            Some(KeyPart::Str("bash".into()))
        );
        assert_eq!(read_field(pid, Kind::Int, &raw), Some(KeyPart::Int(-5)));
        assert_eq!(read_field(pid, Kind::Int, &raw[..20]), None);
        assert_eq!(
            normalize(KeyPart::UInt(u64::MAX), Kind::Int),
            KeyPart::Int(-1)
        );
        assert_eq!(normalize(KeyPart::UInt(16), Kind::Hex), KeyPart::Hex(16));
    }

    #[test]
    fn probe_lines_give_fetch_args_and_types() {
        let args: Vec<String> = [
            "size=%di:s64",
            "name=+0(%si):ustring",
            "ptr=+8(%dx)",
            "bad=%nosuch:u8",
            "noeq",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let m = parse_probe_args(&args);
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(m["size"], (FetchArg::Reg("di"), FetchType::S(64)));
        assert_eq!(m["name"].1, FetchType::Ustring);
        assert_eq!(m["ptr"].1, FetchType::X(64));
    }

    proptest::proptest! {
        #[test]
        fn probe_args_never_panic(args in proptest::collection::vec("(\\PC|:|=|\\(|\\)|%|\\+){0,40}", 0..6)) {
            let _ = parse_probe_args(&args);
        }

        #[test]
        fn raw_records_never_panic(
            offset in 0u32..80,
            size in 0u32..40,
            flags in 0u8..8,
            raw in proptest::collection::vec(proptest::num::u8::ANY, 0..96),
        ) {
            let f = FormatField {
                decl: String::new(),
                type_name: "u32".into(),
                name: "f".into(),
                offset,
                size,
                signed: flags & 1 != 0,
                data_loc: flags & 2 != 0,
                rel_loc: flags & 4 != 0,
                array: flags & 6 == 4,
                array_len: None,
                common: false,
            };
            for kind in [Kind::Int, Kind::UInt, Kind::Hex, Kind::Str] {
                let _ = read_field(&f, kind, &raw);
            }
        }
    }

    #[test]
    fn intervals_are_differences_of_snapshots() {
        let mut a = Tables::default();
        a.counts.add_n(vec![KeyPart::UInt(1)], 3);
        a.latency.add_n(5, 2);
        let mut b = a.clone();
        b.counts.add_n(vec![KeyPart::UInt(1)], 2);
        b.counts.add_n(vec![KeyPart::UInt(2)], 1);
        b.latency.add_n(5, 1);
        let d = b.since(&a);
        assert_eq!(d.counts.get(&[KeyPart::UInt(1)]), 2);
        assert_eq!(d.counts.get(&[KeyPart::UInt(2)]), 1);
        assert_eq!(d.counts.total(), 3);
        assert_eq!(d.latency.total(), 1);
    }

    #[test]
    fn a_refused_program_leaves_its_log_in_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v.log");
        let e = EngineError::Load {
            source: crate::sys::bpf::LoadError {
                error: crate::sys::SyscallError {
                    call: "bpf(BPF_PROG_LOAD)".into(),
                    source: std::io::Error::from_raw_os_error(libc::EACCES),
                },
                log: "0: (bf) r0 = r2\nR2 !read_ok\nprocessed 1 insns\n".into(),
            },
        };
        let line = explain_bpf(&e, Some(&path)).expect("explained");
        assert_eq!(
            line,
            format!(
                "the verifier refused rprobe's program (R2 !read_ok); its log is in {}",
                path.display()
            )
        );
        assert!(std::fs::read_to_string(&path)
            .expect("log")
            .contains("r0 = r2"));
    }

    #[test]
    fn json_is_one_line_per_table() {
        let mut t = Tables::default();
        t.counts
            .add_n(vec![KeyPart::Str("a\"b".into()), KeyPart::Hex(255)], 4);
        let p = Printer {
            mode: Mode::Count(vec!["comm".into(), "ptr".into()]),
            names: vec!["comm".into(), "ptr".into()],
            top: None,
            unit: Unit::Usecs,
            json: true,
            engine: "user",
            value_name: String::new(),
        };
        let text = p.render(&t, false, 1.5, 0);
        assert_eq!(text.lines().count(), 1);
        let body = text
            .split_once(",\"keys\"")
            .map(|(_, b)| b)
            .unwrap_or_default();
        assert_eq!(
            body,
            ":[\"comm\",\"ptr\"],\"rows\":[{\"key\":[\"a\\\"b\",\"0xff\"],\"count\":4}],\"total\":4,\"distinct\":1}\n"
        );
        assert!(text.starts_with("{\"type\":\"count\",\"time\":\""));
        assert!(
            text.contains("\"elapsed\":1.500,\"interval\":false,\"engine\":\"user\",\"lost\":0")
        );
    }
}

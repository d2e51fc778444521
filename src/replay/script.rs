//! `perf script` 6.1 text (`tools/perf/builtin-script.c`, `util/evsel_fprintf.c`), byte for
//! byte.
//!
//! Per sample: `perf_sample__fprintf_start` (comm `"%s "` when the callchain is printed,
//! else `"%16s "`; tid `"%5d "` or pid/tid `"%5d/%-5d "`; `"[%03d] "`; time `"%12s: "` of
//! `secs.usecs`), period `"%10lu "`, event `"%*s: "` (width: the longest event name in the
//! file), the tracepoint text, then either `"\n"` and one `"\t%16lx sym+0xoff (dso)\n"` per
//! callchain frame, or `" %16lx sym+0xoff (dso)"` of the sample ip; then `"\n"`.
//!
//! Fields are chosen per event *type* as perf does (`output[type]`): the defaults of the type,
//! less those the first event of that type has no sample bit for; tracepoints get
//! ip/sym/symoff/dso when any tracepoint event has callchains. `-F` replaces the defaults for
//! every type (a field an event cannot have is an error, as in perf).
//!
//! Callchain frames (`thread__resolve_callchain_sample`): context markers switch between
//! kernel and user lookups (starting as user) and are not printed; an unknown marker drops
//! the chain; at most 127 frames (`kernel.perf_event_max_stack`). perf 6.1 prints a user
//! frame with a map as its map-relative address (`ip - start + pgoff`), kernel frames and
//! frames without a map as the raw address. A user-mode address with no map that lies in the
//! kernel map is looked up there, as perf does for vsyscalls.
//!
//! Speed: each distinct (map, address) frame is formatted once and its line cached; output
//! goes to one buffer written in blocks of 1 MiB.

use super::dso::FileSource;
use super::hash::FxHashMap;
use super::machine::{Machine, Map};
use super::session::{Event, Evsel};
use super::trace::{KernelSyms, TraceFormatter};
use crate::perf::abi::{context, misc, perf_type, sample};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, Write};

/// An output field of `-F`.
pub mod field {
    /// `comm`.
    pub const COMM: u32 = 1 << 0;
    /// `tid`.
    pub const TID: u32 = 1 << 1;
    /// `pid`.
    pub const PID: u32 = 1 << 2;
    /// `cpu`.
    pub const CPU: u32 = 1 << 3;
    /// `time`.
    pub const TIME: u32 = 1 << 4;
    /// `event`.
    pub const EVNAME: u32 = 1 << 5;
    /// `trace`.
    pub const TRACE: u32 = 1 << 6;
    /// `ip`.
    pub const IP: u32 = 1 << 7;
    /// `sym`.
    pub const SYM: u32 = 1 << 8;
    /// `symoff`.
    pub const SYMOFFSET: u32 = 1 << 9;
    /// `dso`.
    pub const DSO: u32 = 1 << 10;
    /// `period`.
    pub const PERIOD: u32 = 1 << 11;
    /// `addr`.
    pub const ADDR: u32 = 1 << 12;

    /// `-F` names and their bits.
    pub const NAMES: &[(&str, u32)] = &[
        ("comm", COMM),
        ("tid", TID),
        ("pid", PID),
        ("cpu", CPU),
        ("time", TIME),
        ("event", EVNAME),
        ("trace", TRACE),
        ("ip", IP),
        ("sym", SYM),
        ("symoff", SYMOFFSET),
        ("dso", DSO),
        ("period", PERIOD),
        ("addr", ADDR),
    ];
}

/// Number of output types (`output[]` in builtin-script.c: HW, SW, TP, HW_CACHE, RAW,
/// BREAKPOINT, SYNTH, OTHER).
const NTYPES: usize = 8;

fn type_index(t: u32) -> usize {
    if (t as usize) < 6 {
        t as usize
    } else {
        7
    }
}

/// What `rprobe script` prints.
#[derive(Debug, Clone)]
pub struct ScriptOptions {
    /// `-F` fields (None: perf's defaults per event type).
    pub fields: Option<u32>,
    /// `--show-lost-events`.
    pub show_lost: bool,
    /// Print callchains (false: `--no-callchain`/`-G`).
    pub callchain: bool,
    /// `kernel.perf_event_max_stack` (127).
    pub max_stack: usize,
    /// `$HOME`, where perf's build-id cache (`~/.debug`) is.
    pub home: Option<String>,
    /// `--json`: one JSON object per event (see [`super::json`]).
    pub json: bool,
    /// Callchain frames in inlined code name each inlined function (perf's default;
    /// `--no-inline` turns it off). See [`super::inline`].
    pub inline: bool,
    /// `--srcline` (perf's `-F +srcline`): each callchain frame's `file:line` under it.
    pub srcline: bool,
}

impl Default for ScriptOptions {
    fn default() -> Self {
        ScriptOptions {
            fields: None,
            show_lost: false,
            callchain: true,
            max_stack: 127,
            home: None,
            json: false,
            inline: true,
            srcline: false,
        }
    }
}

/// Parse a `-F` list (`comm,tid,ip,sym`); the error names the unknown field.
pub fn parse_fields(list: &str) -> Result<u32, String> {
    let mut bits = 0;
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((_, b)) = field::NAMES.iter().find(|(n, _)| *n == name) else {
            let known: Vec<&str> = field::NAMES.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "-F: unknown field '{name}' (known: {})",
                known.join(",")
            ));
        };
        bits |= b;
    }
    Ok(bits)
}

/// The fields of each output type and the messages perf prints while choosing them.
#[derive(Debug, Clone)]
pub struct Plan {
    fields: [u32; NTYPES],
    use_callchain: bool,
    name_width: usize,
    /// Lines for stderr (perf's "'trace' not valid for ..." warnings).
    pub notes: Vec<String>,
}

const TYPE_NAMES: [&str; NTYPES] = [
    "hardware",
    "software",
    "tracepoint",
    "hardware-cache",
    "unknown",
    "unknown",
    "unknown",
    "unknown",
];

/// Choose fields as `perf_session__check_output_opt` does; Err is perf's message.
pub fn plan(evsels: &[Evsel], opts: &ScriptOptions) -> Result<Plan, String> {
    use field::*;
    let sw_default = COMM | TID | CPU | TIME | EVNAME | IP | SYM | SYMOFFSET | DSO | PERIOD;
    let mut fields = [sw_default; NTYPES];
    fields[perf_type::TRACEPOINT as usize] = COMM | TID | CPU | TIME | EVNAME | TRACE;
    let mut notes = Vec::new();
    let user = opts.fields.is_some();
    if let Some(f) = opts.fields {
        for (t, slot) in fields.iter_mut().enumerate() {
            let mut f = f;
            if t != perf_type::TRACEPOINT as usize && f & TRACE != 0 {
                notes.push(format!(
                    "'trace' not valid for {} events. Ignoring.",
                    TYPE_NAMES[t]
                ));
                f &= !TRACE;
            }
            *slot = f;
        }
    }
    let use_callchain = opts.callchain && evsels.iter().any(Evsel::has_callchain);
    for (t, f) in fields.iter_mut().enumerate() {
        // perf's side-band `dummy` event has no samples and is not what -F is checked against.
        let is_dummy = |e: &Evsel| e.attr.type_ == perf_type::SOFTWARE && e.attr.config == 9;
        let Some(ev) = evsels
            .iter()
            .find(|e| type_index(e.attr.type_) == t && !is_dummy(e))
        else {
            continue;
        };
        if *f == 0 {
            continue;
        }
        let st = ev.attr.sample_type;
        let checks = [
            (IP, sample::IP, "IP", "ip"),
            (ADDR, sample::ADDR, "ADDR", "addr"),
            (TID | PID, sample::TID, "TID", "tid"),
            (TIME, sample::TIME, "TIME", "time"),
            (CPU, sample::CPU, "CPU", "cpu"),
            (PERIOD, sample::PERIOD, "PERIOD", "period"),
        ];
        for (bit, sbit, msg, name) in checks {
            if *f & bit != 0 && st & sbit == 0 {
                if user {
                    return Err(format!(
                        "Samples for '{}' event do not have {msg} attribute set. Cannot print '{name}' field.",
                        ev.name
                    ));
                }
                *f &= !bit;
            }
        }
        if *f & (SYM | DSO) != 0 && st & (sample::IP | sample::ADDR) == 0 {
            if user {
                return Err("Display of symbols requested but neither sample IP nor sample address\navailable. Hence, no addresses to convert to symbols.".into());
            }
            *f &= !(SYM | DSO | SYMOFFSET);
        }
        if *f & SYMOFFSET != 0 && *f & SYM == 0 {
            return Err("Display of offsets requested but symbol is not selected.".into());
        }
    }
    if use_callchain && !user {
        let tp = perf_type::TRACEPOINT as usize;
        if evsels
            .iter()
            .any(|e| e.is_tracepoint() && e.has_callchain())
        {
            fields[tp] |= IP | SYM | SYMOFFSET | DSO;
        }
    }
    let name_width = evsels.iter().map(|e| e.name.len()).max().unwrap_or(0);
    Ok(Plan {
        fields,
        use_callchain,
        name_width,
        notes,
    })
}

impl Plan {
    /// Whether printing `evsels` this way can show a kernel symbol: a printed ip or
    /// callchain, or a `%pS`-style argument in a print fmt. Without one, replay need not read
    /// kallsyms (0.1 s of 122 000 lines).
    pub fn needs_kernel_symbols(&self, evsels: &[Evsel]) -> bool {
        evsels.iter().any(|e| {
            let ip = self.fields[type_index(e.attr.type_)] & (field::IP | field::SYM) != 0;
            let fmt = e.format.as_deref().is_some_and(|f| {
                ["%pS", "%ps", "%pF", "%pf", "%pB"]
                    .iter()
                    .any(|p| f.print_fmt.contains(p))
            });
            ip || fmt
        })
    }
}

/// A fast hasher for (u32, u64) frame keys.
#[derive(Default)]
struct FrameHasher(u64);

impl Hasher for FrameHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

type FrameCache = HashMap<(u32, u64), Box<[u8]>, BuildHasherDefault<FrameHasher>>;

/// The text of whole callchains by (map set, its generation, the kernel maps' generation,
/// printed fields), then by the chain's (cpumode, ip) entries: sched_switch stacks repeat
/// by the thousand.
type ChainCache = FxHashMap<(usize, u64, u64, u32), FxHashMap<Box<[(u16, u64)]>, Box<[u8]>>>;

/// Bytes of callchain text cached at most (then chains are built frame by frame).
const CHAIN_CACHE_MAX: usize = 256 << 20;

/// The frames of a callchain with the cpumode each is looked up in
/// (`thread__resolve_callchain_sample`): markers switch modes (starting as user) and are
/// dropped, at most `max` frames; None when an unknown marker makes perf drop the chain.
fn chain_entries(
    s: &crate::perf::reader::records::Sample<'_>,
    max: usize,
) -> Option<Vec<(u16, u64)>> {
    let mut cpumode = misc::USER;
    let mut v = Vec::new();
    for ip in s.callchain_ips() {
        if v.len() >= max {
            break;
        }
        if ip >= context::MAX {
            cpumode = match ip {
                context::HV => misc::HYPERVISOR,
                context::KERNEL => misc::KERNEL,
                context::USER => misc::USER,
                _ => return None,
            };
            continue;
        }
        v.push((cpumode, ip));
    }
    Some(v)
}

/// A resolved frame: the address as perf prints it, symbol and offset, DSO name.
pub type Frame = (u64, Option<(Box<str>, u64)>, Option<Box<str>>);

/// The sample fields of the line start.
#[derive(Debug, Clone, Copy)]
struct Head {
    pid: i32,
    tid: i32,
    cpu: u32,
    time: u64,
}

/// Where a frame resolved to.
struct Resolved {
    map: Option<Map>,
    /// The DSO-relative address (`al.addr`).
    addr: u64,
}

/// The `perf script` text writer.
pub struct Script<'f, W: Write> {
    w: W,
    out: Vec<u8>,
    plan: Plan,
    opts: ScriptOptions,
    files: &'f dyn FileSource,
    trace: TraceFormatter,
    cache: FrameCache,
    chains: ChainCache,
    chain_bytes: usize,
    unwind: super::unwind::Unwinders,
    chain_buf: Vec<u8>,
    inlines: super::inline::Inlines,
    /// For the sample being written: the index of its first unwound frame.
    unwound_from: Option<usize>,
    /// Samples written.
    pub samples: u64,
}

const FLUSH_AT: usize = 1 << 20;
const KEY_NO_MAP: u32 = u32::MAX;

/// The digits of `v` in `base` (10 or 16), right-aligned in a 20-byte buffer filled with
/// `fill`; returns the buffer and where the digits start.
fn digits<const BASE: u64>(v: u64, fill: u8) -> ([u8; 20], usize) {
    // BASE is a constant so that `%` and `/` compile to a multiplication or a shift.
    let mut buf = [fill; 20];
    let mut i = 20;
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[(v % BASE) as usize];
        v /= BASE;
        if v == 0 {
            break;
        }
    }
    (buf, i)
}

/// `"%lx"`.
fn push_hex(out: &mut Vec<u8>, v: u64) {
    let (buf, i) = digits::<16>(v, b' ');
    out.extend_from_slice(&buf[i..]);
}

/// `"%16lx"`.
fn push_hex16(out: &mut Vec<u8>, v: u64) {
    let (buf, _) = digits::<16>(v, b' ');
    out.extend_from_slice(&buf[4..]);
}

/// `"%lu"`.
fn push_u64(out: &mut Vec<u8>, v: u64) {
    let (buf, i) = digits::<10>(v, b'0');
    out.extend_from_slice(&buf[i..]);
}

/// `"%0*lu"`.
fn push_zero_padded(out: &mut Vec<u8>, v: u64, width: usize) {
    let (buf, i) = digits::<10>(v, b'0');
    out.extend_from_slice(&buf[i.min(20 - width.min(20))..]);
}

fn push_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_u64(out, v.unsigned_abs());
}

/// Right-align what `f` writes in `width` columns (`"%*d"`).
fn push_right(out: &mut Vec<u8>, width: usize, f: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    f(out);
    let n = out.len() - start;
    if n < width {
        let pad = width - n;
        out.resize(out.len() + pad, b' ');
        out.copy_within(start..start + n, start + pad);
        out[start..start + pad].fill(b' ');
    }
}

/// `"%*s"` of bytes whose length is known.
fn push_right_bytes(out: &mut Vec<u8>, width: usize, b: &[u8]) {
    if b.len() < width {
        out.resize(out.len() + width - b.len(), b' ');
    }
    out.extend_from_slice(b);
}

/// Left-align (`"%-*d"`).
fn push_left(out: &mut Vec<u8>, width: usize, f: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    f(out);
    let n = out.len() - start;
    if n < width {
        out.resize(out.len() + width - n, b' ');
    }
}

impl<'f, W: Write> Script<'f, W> {
    /// A writer for a session's events.
    pub fn new(
        w: W,
        evsels: &[Evsel],
        plan: Plan,
        opts: ScriptOptions,
        files: &'f dyn FileSource,
    ) -> Self {
        let trace = TraceFormatter::new(evsels.iter().map(|e| e.format.as_deref()));
        Script {
            w,
            out: Vec::with_capacity(FLUSH_AT + 65536),
            plan,
            opts,
            files,
            trace,
            cache: FrameCache::default(),
            chains: ChainCache::default(),
            chain_bytes: 0,
            unwind: super::unwind::Unwinders::new(),
            chain_buf: Vec::new(),
            inlines: super::inline::Inlines::new(),
            unwound_from: None,
            samples: 0,
        }
    }

    /// The callchain of a sample of `ev` that carries user registers and stack (`--call-graph
    /// dwarf`): its kernel callchain and the unwound user frames, as callchain bytes (see
    /// [`super::unwind`]). None for other samples, whose own callchain stands.
    pub fn unwound_chain(
        &mut self,
        m: &Machine,
        maps: usize,
        ev: &Evsel,
        s: &crate::perf::reader::records::Sample<'_>,
    ) -> Option<&[u8]> {
        // The chain's entries from `recorded` on are unwound frames (inline names apply).
        let recorded = s.callchain_ips().filter(|&ip| ip < context::MAX).count();
        self.unwound_from = None;
        let c = self.unwind.chain(m, maps, &ev.attr, s, self.files)?;
        self.unwound_from = Some(recorded);
        Some(c)
    }

    /// Write what is buffered.
    pub fn flush(&mut self) -> io::Result<()> {
        self.w.write_all(&self.out)?;
        self.out.clear();
        self.w.flush()
    }

    /// Handle one delivered event.
    pub fn event(&mut self, m: &mut Machine, evsels: &[Evsel], e: Event<'_>) -> io::Result<()> {
        // A DWARF sample's callchain is its kernel part and the unwound user frames.
        let mut chain = std::mem::take(&mut self.chain_buf);
        let mut e = e;
        self.unwound_from = None;
        if let Event::Sample { evsel, sample, .. } = &mut e {
            let ev = &evsels[*evsel];
            if self.plan.use_callchain && super::unwind::is_dwarf(&ev.attr) {
                let maps = m.findnew(sample.pid, sample.tid).maps;
                if let Some(c) = self.unwound_chain(m, maps, ev, sample) {
                    chain.clear();
                    chain.extend_from_slice(c);
                    sample.callchain = Some(&chain);
                }
            }
        }
        let r = self.dispatch(m, evsels, e);
        self.unwound_from = None;
        self.chain_buf = chain;
        r
    }

    fn dispatch(&mut self, m: &mut Machine, evsels: &[Evsel], e: Event<'_>) -> io::Result<()> {
        match e {
            Event::Sample { evsel, sample, .. } if self.opts.json => {
                let mut out = std::mem::take(&mut self.out);
                super::json::sample(self, m, &evsels[evsel], evsel, &sample, &mut out);
                self.out = out;
            }
            Event::Sample {
                evsel,
                sample,
                misc,
            } => self.sample(m, &evsels[evsel], evsel, &sample, misc),
            Event::Lost { evsel, lost, id } => {
                if self.opts.show_lost {
                    self.lost(m, evsels, evsel, lost, id);
                }
            }
        }
        if self.out.len() >= FLUSH_AT {
            self.w.write_all(&self.out)?;
            self.out.clear();
        }
        Ok(())
    }

    fn start(out: &mut Vec<u8>, f: u32, comm: &str, callchain_comm: bool, h: Head) {
        use field::*;
        let Head {
            pid,
            tid,
            cpu,
            time,
        } = h;
        if f & COMM != 0 {
            if callchain_comm {
                out.extend_from_slice(comm.as_bytes());
            } else {
                push_right_bytes(out, 16, comm.as_bytes());
            }
            out.push(b' ');
        }
        if f & PID != 0 && f & TID != 0 {
            push_right(out, 5, |o| push_i64(o, pid.into()));
            out.push(b'/');
            push_left(out, 5, |o| push_i64(o, tid.into()));
            out.push(b' ');
        } else if f & PID != 0 {
            push_right(out, 5, |o| push_i64(o, pid.into()));
            out.push(b' ');
        } else if f & TID != 0 {
            push_right(out, 5, |o| push_i64(o, tid.into()));
            out.push(b' ');
        }
        if f & CPU != 0 {
            out.push(b'[');
            push_zero_padded(out, cpu.into(), 3);
            out.extend_from_slice(b"] ");
        }
        if f & TIME != 0 {
            push_right(out, 12, |o| {
                push_u64(o, time / 1_000_000_000);
                o.push(b'.');
                push_zero_padded(o, (time % 1_000_000_000) / 1000, 6);
            });
            out.extend_from_slice(b": ");
        }
    }

    fn sample(
        &mut self,
        m: &mut Machine,
        ev: &Evsel,
        idx: usize,
        s: &crate::perf::reader::records::Sample<'_>,
        rmisc: u16,
    ) {
        use field::*;
        self.samples += 1;
        let f = self.plan.fields[type_index(ev.attr.type_)];
        let thread = m.findnew(s.pid, s.tid);
        let maps = thread.maps;
        let with_chain = f & IP != 0 && ev.has_callchain() && self.plan.use_callchain;
        let head = Head {
            pid: s.pid,
            tid: s.tid,
            cpu: s.cpu,
            time: s.time,
        };
        Self::start(&mut self.out, f, &thread.comm, with_chain, head);
        if f & PERIOD != 0 {
            push_right(&mut self.out, 10, |o| push_u64(o, s.period));
            self.out.push(b' ');
        }
        if f & EVNAME != 0 {
            let w = self.plan.name_width;
            push_right(&mut self.out, w, |o| {
                o.extend_from_slice(ev.name.as_bytes())
            });
            self.out.extend_from_slice(b": ");
        }
        if f & TRACE != 0 {
            if let Some(raw) = s.raw {
                let mut tmp = std::mem::take(&mut self.out);
                self.trace_text(m, idx, raw, &mut tmp);
                self.out = tmp;
            }
        }
        if f & IP != 0 {
            let opts = f & (IP | SYM | SYMOFFSET | DSO);
            if with_chain && s.callchain.is_some() {
                self.out.push(b'\n');
                self.callchain(m, maps, s, opts);
            } else {
                self.out.push(b' ');
                let cpumode = rmisc & misc::CPUMODE_MASK;
                let r = self.resolve(m, maps, cpumode, s.ip);
                push_hex16(&mut self.out, s.ip);
                let _ = self.sym_dso(m, &r, opts);
            }
        }
        self.out.push(b'\n');
    }

    fn kernel_syms<'m>(&'m self, m: &'m Machine) -> KernelSyms<'m> {
        KernelSyms {
            map: m.kernel_symbols(),
            delta: m.kernel_delta,
            printk: Some(&self.trace.printk),
        }
    }

    /// Use the tracing data's `printk_formats` text for `%s` of kernel string pointers.
    pub fn set_printk(&mut self, text: &str) {
        self.trace.printk = super::printfmt::PrintkFormats::parse(text);
    }

    fn lost(
        &mut self,
        m: &mut Machine,
        evsels: &[Evsel],
        evsel: Option<usize>,
        lost: u64,
        id: crate::perf::reader::records::SampleId,
    ) {
        // perf prints the start with output[PERF_RECORD_LOST] = output[2]: tracepoint fields.
        let f = self.plan.fields[perf_type::TRACEPOINT as usize] & !field::PERIOD;
        if let Some(ev) = evsel.and_then(|i| evsels.get(i)) {
            let (pid, tid) = (id.pid.unwrap_or(-1), id.tid.unwrap_or(-1));
            let comm: Box<str> = if tid != -1 {
                m.findnew(pid, tid).comm.clone()
            } else {
                ":-1".into()
            };
            let with_chain = f & field::IP != 0 && ev.has_callchain() && self.plan.use_callchain;
            let head = Head {
                pid,
                tid,
                cpu: id.cpu.unwrap_or(0),
                time: id.time.unwrap_or(0),
            };
            Self::start(&mut self.out, f, &comm, with_chain, head);
        }
        self.out.extend_from_slice(b"PERF_RECORD_LOST lost ");
        push_u64(&mut self.out, lost);
        self.out.push(b'\n');
    }

    /// The frames of a sample as (address as perf prints it, symbol and offset, DSO name),
    /// following the callchain rules above; for JSON, report and flame graphs. After
    /// [`Script::unwound_chain`] gave the sample's chain, its unwound frames in inlined code
    /// come out once per function, innermost first, each inlined one with its own name (and
    /// the frame symbol's offset), as `perf script` prints them.
    pub fn frames(
        &mut self,
        m: &mut Machine,
        maps: usize,
        s: &crate::perf::reader::records::Sample<'_>,
    ) -> Vec<Frame> {
        let mut v = Vec::new();
        let Some(entries) = chain_entries(s, self.opts.max_stack) else {
            return v;
        };
        let unwound_from = self.unwound_from.unwrap_or(usize::MAX);
        for (i, (cpumode, ip)) in entries.into_iter().enumerate() {
            let r = self.resolve(m, maps, cpumode, ip);
            let sym = self.symbol(m, &r, &mut false);
            let dso = r
                .map
                .and_then(|mp| m.dsos.get(mp.dso as usize))
                .map(|d| d.name.clone());
            let names = match (r.map, &sym) {
                (Some(mp), Some(_)) if i >= unwound_from && self.opts.inline => {
                    self.inline_names(m, mp.dso, r.addr)
                }
                _ => std::rc::Rc::from(Vec::new()),
            };
            if names.is_empty() {
                v.push((r.addr, sym, dso));
                continue;
            }
            for n in names.iter() {
                let named = sym.as_ref().map(|(base, off)| {
                    let name = if **base == *n.name {
                        base.clone()
                    } else {
                        n.name.clone()
                    };
                    (name, *off)
                });
                v.push((r.addr, named, dso.clone()));
            }
        }
        v
    }

    /// The inline names of DSO-relative `addr` in user DSO `dso` (none for other DSOs).
    fn inline_names(
        &mut self,
        m: &Machine,
        dso: u32,
        addr: u64,
    ) -> std::rc::Rc<[super::inline::InlineName]> {
        let Some(d) = m
            .dsos
            .get(dso as usize)
            .filter(|d| d.kind == super::dso::DsoKind::User)
        else {
            return std::rc::Rc::from(Vec::new());
        };
        let (files, home) = (self.files, self.opts.home.clone());
        self.inlines.names(
            dso,
            addr,
            &d.name,
            || d.symbol_file(files, home.as_deref()),
            files,
        )
    }

    /// The frames of a sample as (cpumode, ip) in callchain order (callee first), following
    /// the callchain rules above; a sample without a callchain is its own ip in `cpumode`.
    /// Empty when perf would drop the chain.
    pub fn frame_ips(
        &self,
        s: &crate::perf::reader::records::Sample<'_>,
        cpumode: u16,
    ) -> Vec<(u16, u64)> {
        match s.callchain {
            Some(c) if !c.is_empty() => chain_entries(s, self.opts.max_stack).unwrap_or_default(),
            _ => {
                let mode = if cpumode & misc::CPUMODE_MASK == misc::KERNEL {
                    misc::KERNEL
                } else {
                    misc::USER
                };
                vec![(mode, s.ip)]
            }
        }
    }

    /// What a frame prints as, for caching: (DSO index, DSO-relative address), or the raw
    /// address when no map holds it (`u32::MAX` then).
    pub fn frame_key(&self, m: &Machine, maps: usize, cpumode: u16, ip: u64) -> (u32, u64) {
        let r = self.resolve(m, maps, cpumode, ip);
        match r.map {
            Some(mp) => (mp.dso, r.addr),
            None => (KEY_NO_MAP, ip),
        }
    }

    /// A frame's symbol (without offset) and DSO name, and whether the answer may be cached
    /// under its [`Script::frame_key`] (not for the lookup that met perf's failed load).
    fn frame_symbol(
        &self,
        m: &mut Machine,
        r: &Resolved,
    ) -> (Option<Box<str>>, Option<Box<str>>, bool) {
        let mut failed = false;
        let sym = self.symbol(m, r, &mut failed).map(|(n, _)| n);
        let dso = r
            .map
            .and_then(|mp| m.dsos.get(mp.dso as usize))
            .map(|d| d.name.clone());
        (sym, dso, !failed)
    }

    /// The index of the first unwound frame of the sample [`Script::unwound_chain`] gave
    /// the chain of last (`usize::MAX` when it gave none).
    pub fn unwound_from(&self) -> usize {
        self.unwound_from.unwrap_or(usize::MAX)
    }

    /// A frame's symbol and DSO name, for a frame that may be an unwound one: with inline
    /// names on, an unwound frame in inlined code is one (symbol, DSO) per function,
    /// innermost first, as `perf script` prints it: an inlined function's "DSO" is
    /// `inlined`. The flag says whether the answer may be cached under the frame's
    /// [`Script::frame_key`] (not for the lookup that met perf's failed load).
    #[allow(clippy::type_complexity)]
    pub fn frame_symbols(
        &mut self,
        m: &mut Machine,
        maps: usize,
        cpumode: u16,
        ip: u64,
        unwound: bool,
    ) -> (Vec<(Option<Box<str>>, Option<Box<str>>)>, bool) {
        let r = self.resolve(m, maps, cpumode, ip);
        self.resolved_symbols(m, &r, unwound)
    }

    /// Whether a frame resolves through the sample's own maps (else through the kernel's
    /// or nowhere): what [`Script::frame_symbols`] of a frame depends on besides the kernel
    /// maps and symbols.
    pub fn in_user_maps(&self, m: &Machine, maps: usize, cpumode: u16, ip: u64) -> bool {
        cpumode == misc::USER && m.maps.get(maps).is_some_and(|ms| ms.find(ip).is_some())
    }

    /// [`Script::frame_symbols`] of a frame [`Script::in_user_maps`] said no to, from the
    /// kernel maps and symbols as they are now. Replay that names kernel frames after its
    /// pass (so kallsyms can load meanwhile) gets what it would have got at the sample, as
    /// long as the kernel maps did not change between.
    #[allow(clippy::type_complexity)]
    pub fn kernel_frame_symbols(
        &mut self,
        m: &mut Machine,
        cpumode: u16,
        ip: u64,
        unwound: bool,
    ) -> Vec<(Option<Box<str>>, Option<Box<str>>)> {
        let r = Self::resolve_outside_user_maps(m, cpumode, ip);
        self.resolved_symbols(m, &r, unwound).0
    }

    #[allow(clippy::type_complexity)]
    fn resolved_symbols(
        &mut self,
        m: &mut Machine,
        r: &Resolved,
        unwound: bool,
    ) -> (Vec<(Option<Box<str>>, Option<Box<str>>)>, bool) {
        let (sym, dso, cacheable) = self.frame_symbol(m, r);
        let names = match (r.map, &sym) {
            (Some(mp), Some(_)) if unwound && self.opts.inline => {
                self.inline_names(m, mp.dso, r.addr)
            }
            _ => std::rc::Rc::from(Vec::new()),
        };
        if names.is_empty() {
            return (vec![(sym, dso)], cacheable);
        }
        let v = names
            .iter()
            .map(|n| match &sym {
                Some(base) if **base == *n.name => (sym.clone(), dso.clone()),
                _ => (Some(n.name.clone()), Some(Box::from("inlined"))),
            })
            .collect();
        (v, cacheable)
    }

    /// The tracepoint text of a raw record (`trace`).
    pub fn trace_text(&self, m: &Machine, evsel: usize, raw: &[u8], out: &mut Vec<u8>) {
        let ksyms = self.kernel_syms(m);
        self.trace.render(evsel, raw, &ksyms, out);
    }

    /// The symbol and offset of a resolved address; `failed_load` is set when this lookup
    /// loaded a table whose load failed (perf finds nothing then, and the line must not be
    /// cached).
    fn symbol(
        &self,
        m: &mut Machine,
        r: &Resolved,
        failed_load: &mut bool,
    ) -> Option<(Box<str>, u64)> {
        let mp = r.map?;
        let kernel = m
            .dsos
            .get(mp.dso as usize)
            .is_some_and(|d| d.kind == super::dso::DsoKind::Kernel);
        let lookup = if kernel {
            r.addr.wrapping_add(m.kernel_delta)
        } else {
            r.addr
        };
        let home = self.opts.home.as_deref();
        let d = m.dsos.get_mut(mp.dso as usize)?;
        let Some(table) = d.symbols_for_lookup(self.files, home) else {
            *failed_load = true;
            return None;
        };
        let s = table.find(lookup)?;
        Some((Box::<str>::from(s.name()), lookup - s.start))
    }

    /// thread__find_map + map_ip.
    fn resolve(&self, m: &Machine, maps: usize, cpumode: u16, ip: u64) -> Resolved {
        let user = match cpumode {
            misc::USER => m.maps.get(maps).and_then(|ms| ms.find(ip).copied()),
            _ => None,
        };
        match user {
            Some(mp) => Resolved {
                map: Some(mp),
                addr: mp.map_ip(ip),
            },
            None => Self::resolve_outside_user_maps(m, cpumode, ip),
        }
    }

    /// [`Script::resolve`] of a frame the sample's own maps do not hold: through the
    /// kernel's maps (a user-mode ip only when it is a kernel address), or nowhere.
    fn resolve_outside_user_maps(m: &Machine, cpumode: u16, ip: u64) -> Resolved {
        let map = match cpumode {
            misc::KERNEL => m.kernel.find(ip).copied(),
            misc::USER if m.is_kernel_ip(ip) => m.kernel.find(ip).copied(),
            _ => None,
        };
        let addr = map.map_or(ip, |mp| mp.map_ip(ip));
        Resolved { map, addr }
    }

    /// " sym+0xoff (dso)" per the opts bits; false when the text must not be cached (perf's
    /// failed first load of the DSO).
    fn sym_dso(&mut self, m: &mut Machine, r: &Resolved, opts: u32) -> bool {
        use field::*;
        let mut failed_load = false;
        if opts & SYM != 0 {
            self.out.push(b' ');
            let found = self.symbol(m, r, &mut failed_load);
            match found {
                Some((name, off)) => {
                    self.out.extend_from_slice(name.as_bytes());
                    if opts & SYMOFFSET != 0 {
                        self.out.extend_from_slice(b"+0x");
                        push_hex(&mut self.out, off);
                    }
                }
                None => self.out.extend_from_slice(b"[unknown]"),
            }
        }
        if opts & DSO != 0 {
            self.out.extend_from_slice(b" (");
            match r.map.and_then(|mp| m.dsos.get(mp.dso as usize)) {
                Some(d) => self.out.extend_from_slice(d.name.as_bytes()),
                None => self.out.extend_from_slice(b"[unknown]"),
            }
            self.out.push(b')');
        }
        !failed_load
    }

    fn callchain(
        &mut self,
        m: &mut Machine,
        maps: usize,
        s: &crate::perf::reader::records::Sample<'_>,
        opts: u32,
    ) {
        // A corrupt chain (an unknown context marker): perf discards all of it.
        let Some(entries) = chain_entries(s, self.opts.max_stack) else {
            return;
        };
        // perf names inlined functions only in frames of its DWARF unwinder (`unwind_entry`
        // calls `append_inlines`; `add_callchain_ip` for the recorded chain does not).
        let unwound_from = self.unwound_from.unwrap_or(usize::MAX);
        // Whole chains are cached only when no frame comes from the unwinder (inline names
        // and srcline text depend on more than the ips).
        let cache_chain = unwound_from == usize::MAX && !self.opts.srcline;
        let gens = (
            maps,
            m.maps.get(maps).map_or(0, super::machine::Maps::generation),
            m.kernel.generation(),
            opts,
        );
        if cache_chain {
            if let Some(text) = self.chains.get(&gens).and_then(|c| c.get(&entries[..])) {
                self.out.extend_from_slice(text);
                return;
            }
        }
        let start = self.out.len();
        let mut cacheable = true;
        for (i, &(cpumode, ip)) in entries.iter().enumerate() {
            cacheable &= self.frame(m, maps, cpumode, ip, opts, i >= unwound_from);
        }
        let text = &self.out[start..];
        if cache_chain && cacheable && self.chain_bytes < CHAIN_CACHE_MAX {
            self.chain_bytes += text.len() + entries.len() * 16;
            self.chains
                .entry(gens)
                .or_default()
                .insert(entries.into_boxed_slice(), text.into());
        }
    }

    /// One callchain line; false when it must not be cached (see [`Script::sym_dso`]).
    fn frame(
        &mut self,
        m: &mut Machine,
        maps: usize,
        cpumode: u16,
        ip: u64,
        opts: u32,
        unwound: bool,
    ) -> bool {
        let r = self.resolve(m, maps, cpumode, ip);
        let inline = unwound && self.opts.inline;
        let key = match r.map {
            Some(mp) => ((mp.dso << 4) | opts >> 7 | (inline as u32) << 31, r.addr),
            None => (KEY_NO_MAP - (opts >> 7), ip),
        };
        if let Some(line) = self.cache.get(&key) {
            self.out.extend_from_slice(line);
            return true;
        }
        let start = self.out.len();
        let cacheable = if inline || self.opts.srcline {
            self.frame_with_debuginfo(m, &r, opts, inline)
        } else {
            self.out.push(b'\t');
            if opts & field::IP != 0 {
                push_hex16(&mut self.out, r.addr);
            }
            let cacheable = self.sym_dso(m, &r, opts);
            self.out.push(b'\n');
            cacheable
        };
        if cacheable {
            let line: Box<[u8]> = self.out[start..].into();
            self.cache.insert(key, line);
        }
        cacheable
    }
}

impl<W: Write> Script<'_, W> {
    /// A callchain frame as perf 6.1 prints it with inline names and source lines
    /// (`sample__fprintf_callchain` after `append_inlines`): one line per function addr2line
    /// names at the address, innermost first; see [`super::inline`]. Returns false when
    /// the text must not be cached.
    fn frame_with_debuginfo(
        &mut self,
        m: &mut Machine,
        r: &Resolved,
        opts: u32,
        inline: bool,
    ) -> bool {
        let user = r.map.and_then(|mp| {
            let d = m.dsos.get(mp.dso as usize)?;
            (d.kind == super::dso::DsoKind::User).then(|| (mp.dso, d.name.to_string()))
        });
        let mut failed = false;
        let base = self.symbol(m, r, &mut failed);
        let names = match (&user, &base, inline) {
            (Some((dso, _)), Some(_), true) => self.inline_names(m, *dso, r.addr),
            _ => std::rc::Rc::from(Vec::new()),
        };
        // perf's map__fprintf_srcline: every frame with a map gets a line: `??:0` when
        // addr2line knows nothing, `DSO[addr]` for a DSO it cannot read (`[kernel.kallsyms]`,
        // `[vdso]`, perf maps).
        let srcline = match (&user, self.opts.srcline) {
            (None, true) if r.map.is_some() => {
                let name = r
                    .map
                    .and_then(|mp| m.dsos.get(mp.dso as usize))
                    .map(|d| d.name.to_string())
                    .unwrap_or_default();
                let short = name.rsplit('/').next().unwrap_or_default();
                Some(std::rc::Rc::from(format!("{short}[{:x}]", r.addr)))
            }
            (Some((dso, path)), true) => {
                let (files, home) = (self.files, self.opts.home.clone());
                let d = &m.dsos[*dso as usize];
                self.inlines
                    .srcline(
                        *dso,
                        r.addr,
                        path,
                        || d.symbol_file(files, home.as_deref()),
                        files,
                    )
                    .or_else(|| Some(std::rc::Rc::from("??:0")))
            }
            _ => None,
        };
        let dso_name: Option<Box<str>> = r
            .map
            .and_then(|mp| m.dsos.get(mp.dso as usize))
            .map(|d| d.name.clone());
        // One line; `inlined`: the name of an inlined function at the address.
        let one = |out: &mut Vec<u8>, inlined: Option<&str>| {
            out.push(b'\t');
            if opts & field::IP != 0 {
                push_hex16(out, r.addr);
            }
            if opts & field::SYM != 0 {
                out.push(b' ');
                match &base {
                    Some((name, off)) => {
                        out.extend_from_slice(inlined.unwrap_or(name).as_bytes());
                        if opts & field::SYMOFFSET != 0 {
                            out.extend_from_slice(b"+0x");
                            push_hex(out, *off);
                        }
                    }
                    None => out.extend_from_slice(b"[unknown]"),
                }
            }
            if opts & field::DSO != 0 && inlined.is_none() {
                out.extend_from_slice(b" (");
                out.extend_from_slice(dso_name.as_deref().unwrap_or("[unknown]").as_bytes());
                out.push(b')');
            }
            if let Some(l) = &srcline {
                out.extend_from_slice(b"\n  ");
                out.extend_from_slice(l.as_bytes());
            }
            if inlined.is_some() {
                out.extend_from_slice(b" (inlined)");
            }
            out.push(b'\n');
        };
        if names.is_empty() {
            one(&mut self.out, None);
        }
        for n in names.iter() {
            let inlined = base
                .as_ref()
                .filter(|(b, _)| **b != *n.name)
                .map(|_| &*n.name);
            one(&mut self.out, inlined);
        }
        !failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats() {
        let mut o = Vec::new();
        push_hex16(&mut o, 0xee137);
        assert_eq!(o, b"           ee137");
        o.clear();
        push_right(&mut o, 5, |o| push_i64(o, -1));
        push_left(&mut o, 5, |o| push_i64(o, 42));
        assert_eq!(o, b"   -142   ");
        o.clear();
        push_zero_padded(&mut o, 7, 3);
        push_zero_padded(&mut o, 1234, 3);
        push_right(&mut o, 4, |o| o.push(b'x'));
        assert_eq!(o, b"0071234   x");
        o.clear();
        push_hex16(&mut o, u64::MAX);
        assert_eq!(o, b"ffffffffffffffff");
    }

    #[test]
    fn fields_parse() {
        assert_eq!(parse_fields("comm,tid").unwrap(), field::COMM | field::TID);
        assert!(parse_fields("comm,bogus").unwrap_err().contains("'bogus'"));
    }
}

//! Golden comparisons of `replay::printfmt` with perf 6.1's `perf script` on this kernel's
//! event formats: every `events/*/*/format` compiles; perf and rprobe print the same text for
//! synthetic samples of every event (a perf.data file written here, random field values) and
//! for samples perf records from real tracepoints and uprobes on a fixture.
//!
//! Live: needs root (the format files are root-only) and perf. The recording test creates
//! uprobe events and runs `perf record`, so run this file under the machine-wide kernel lock:
//! `flock /tmp/rprobe-kernel.lock cargo test --test golden_printfmt`.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rprobe::replay::printfmt::{Compiled, KernelSymbols, NoSymbols, PrintkFormats};

use rprobe::tracefs::format::{parse_format, EventFormat};

use common::{live_or_skip, Needs, TRACEFS};

/// One event of this kernel: `system/name`, its format text and the parsed format.
struct Event {
    system: String,
    text: String,
    format: EventFormat,
}

impl Event {
    fn full_name(&self) -> String {
        format!("{}:{}", self.system, self.format.name)
    }
}

/// Every `events/SYS/EVT/format` under tracefs, sorted; parse errors are returned by name.
fn tracefs_events() -> (Vec<Event>, Vec<String>) {
    let mut events = Vec::new();
    let mut errors = Vec::new();
    let root = Path::new(TRACEFS).join("events");
    let mut systems: Vec<PathBuf> = fs::read_dir(&root)
        .expect("read events/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    systems.sort();
    for sys in systems {
        let mut evts: Vec<PathBuf> = fs::read_dir(&sys)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        evts.sort();
        for evt in evts {
            let Ok(text) = fs::read_to_string(evt.join("format")) else {
                continue;
            };
            let system = sys.file_name().unwrap().to_string_lossy().into_owned();
            match parse_format(&text) {
                Ok(format) => events.push(Event {
                    system,
                    text,
                    format,
                }),
                Err(e) => errors.push(format!("{}: {e}", evt.display())),
            }
        }
    }
    (events, errors)
}

/// The kinds of print fmt perf 6.1 cannot parse either; anything else falling back is a bug:
/// functions it does not know (`__get_cpumask`, `jiffies_to_msecs`, ...), an operator in a
/// function argument (`__get_dynamic_array_len(x) / 4`), GNU statement expressions `({ ... })`
/// and empty `{ }` symbol lists (a `{` or `}` operator), and `(REC)->field`.
fn justified(why: &str) -> bool {
    why.starts_with("function ")
        || why.contains("does not parse in perf 6.1")
        || why.starts_with("expected `,`")
        || why.starts_with("expected `)`")
        || why == "bad op token {"
        || why == "bad op token }"
        || why == "expected `->`, found `)`"
}

#[test]
fn every_kernel_format_compiles() {
    if !live_or_skip("every_kernel_format_compiles", Needs::Tracefs) {
        return;
    }
    let (events, errors) = tracefs_events();
    assert!(
        errors.is_empty(),
        "format files that do not parse: {errors:#?}"
    );
    let mut fallback = BTreeMap::<String, Vec<String>>::new();
    for event in &events {
        if let Some(why) = Compiled::new(&event.format).failure() {
            fallback
                .entry(why.to_owned())
                .or_default()
                .push(event.full_name());
        }
    }
    let failed: usize = fallback.values().map(Vec::len).sum();
    println!(
        "{} formats: {} evaluated, {} fall back to [FAILED TO PARSE]",
        events.len(),
        events.len() - failed,
        failed
    );
    for (why, names) in &fallback {
        println!("  {why}: {}", names.join(" "));
    }
    let unjustified: Vec<_> = fallback.keys().filter(|w| !justified(w)).collect();
    assert!(
        unjustified.is_empty(),
        "unexpected fallbacks: {unjustified:?}"
    );
    assert!(events.len() > 1000, "only {} events", events.len());
    assert!(failed * 50 < events.len(), "{failed} fallbacks is not rare");
}

// ---------------------------------------------------------------------------------------------
// A small perf.data writer: one tracepoint attr per event, TRACING_DATA, SAMPLE records.
// ---------------------------------------------------------------------------------------------

const SAMPLE_TYPE: u64 = (1 << 1) | (1 << 2) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 16);

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A tracefs file read with one `read(2)`: `events/header_page` answers a read at a nonzero
/// offset with EOF (6.18), so `fs::read`, which starts with a 32-byte probe read on a file of
/// size 0, gets only 32 bytes of it.
fn read_once(path: &Path) -> Vec<u8> {
    use std::io::Read as _;
    let mut buf = vec![0u8; 1 << 16];
    let mut f = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let n = f
        .read(&mut buf)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    buf.truncate(n);
    buf
}

/// The HEADER_TRACING_DATA payload for `events` (perf-data.md §6).
fn tracing_data(events: &[&Event]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"\x17\x08\x44tracing0.6\0");
    out.push(0);
    out.push(8);
    put_u32(&mut out, 4096);
    for name in ["header_page", "header_event"] {
        let text = read_once(&Path::new(TRACEFS).join("events").join(name));
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        put_u64(&mut out, text.len() as u64);
        out.extend_from_slice(&text);
    }
    put_u32(&mut out, 0);
    let mut systems = BTreeMap::<&str, Vec<&Event>>::new();
    for e in events {
        systems.entry(&e.system).or_default().push(e);
    }
    put_u32(&mut out, systems.len() as u32);
    for (sys, evts) in systems {
        out.extend_from_slice(sys.as_bytes());
        out.push(0);
        put_u32(&mut out, evts.len() as u32);
        for e in evts {
            put_u64(&mut out, e.text.len() as u64);
            out.extend_from_slice(e.text.as_bytes());
        }
    }
    put_u32(&mut out, 0);
    put_u32(&mut out, 0);
    put_u64(&mut out, 0);
    out
}

/// A perf.data file with one attr per event and the samples `(event index, time, raw)`.
fn write_perf_data(path: &Path, events: &[&Event], samples: &[Sample]) {
    let n = events.len();
    let ids_at = 104;
    let attrs_at = ids_at + 8 * n;
    let data_at = attrs_at + 144 * n;
    let mut file = vec![0u8; data_at];
    for (i, e) in events.iter().enumerate() {
        let id = 1000 + i as u64;
        file[ids_at + 8 * i..ids_at + 8 * i + 8].copy_from_slice(&id.to_le_bytes());
        let mut attr = Vec::with_capacity(144);
        put_u32(&mut attr, 2);
        put_u32(&mut attr, 128);
        put_u64(&mut attr, u64::from(e.format.id));
        put_u64(&mut attr, 1);
        put_u64(&mut attr, SAMPLE_TYPE);
        put_u64(&mut attr, 0);
        put_u64(&mut attr, 1 << 18);
        attr.resize(128, 0);
        put_u64(&mut attr, (ids_at + 8 * i) as u64);
        put_u64(&mut attr, 8);
        file[attrs_at + 144 * i..attrs_at + 144 * (i + 1)].copy_from_slice(&attr);
    }
    for (index, time, raw) in samples {
        let mut padded = raw.clone();
        while (4 + padded.len()) % 8 != 0 {
            padded.push(0);
        }
        let size = 8 + 8 + 8 + 8 + 8 + 8 + 4 + padded.len();
        put_u32(&mut file, 9);
        file.extend_from_slice(&1u16.to_le_bytes());
        file.extend_from_slice(&(size as u16).to_le_bytes());
        put_u64(&mut file, 1000 + *index as u64);
        put_u32(&mut file, 1);
        put_u32(&mut file, 1);
        put_u64(&mut file, *time);
        put_u64(&mut file, 0);
        put_u64(&mut file, 1);
        put_u32(&mut file, padded.len() as u32);
        file.extend_from_slice(&padded);
    }
    let data_size = file.len() - data_at;
    let tracing = tracing_data(events);
    let table_at = file.len();
    put_u64(&mut file, (table_at + 16) as u64);
    put_u64(&mut file, tracing.len() as u64);
    file.extend_from_slice(&tracing);
    let mut header = Vec::with_capacity(104);
    header.extend_from_slice(b"PERFILE2");
    for v in [
        104,
        144,
        attrs_at as u64,
        (144 * n) as u64,
        data_at as u64,
        data_size as u64,
        0,
        0,
        1 << 1,
        0,
        0,
        0,
    ] {
        put_u64(&mut header, v);
    }
    file[..104].copy_from_slice(&header);
    fs::write(path, file).expect("write perf.data");
}

// ---------------------------------------------------------------------------------------------
// Random samples that stay inside their record, as the kernel's do.
// ---------------------------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Values that hit symbolic names and flag bits as well as arbitrary ones.
    fn value(&mut self, size: usize) -> u64 {
        let bits = 8 * size.min(8) as u32;
        let v = match self.below(6) {
            0 => 0,
            1 => self.below(24),
            2 => 1 << self.below(u64::from(bits)),
            3 => (1 << self.below(u64::from(bits))) | (1 << self.below(u64::from(bits))),
            4 => u64::MAX,
            _ => self.next(),
        };
        if bits == 64 {
            v
        } else {
            v & ((1 << bits) - 1)
        }
    }
    fn text(&mut self, max: u64) -> Vec<u8> {
        let len = self.below(max + 1) as usize;
        (0..len).map(|_| b'!' + self.below(94) as u8).collect()
    }
}

fn random_raw(format: &EventFormat, rng: &mut Rng) -> Vec<u8> {
    let end = format
        .fields
        .iter()
        .map(|f| (f.offset + f.size) as usize)
        .max()
        .unwrap_or(8);
    let mut raw = vec![0u8; end];
    let mut dynamic = Vec::new();
    for f in &format.fields {
        let (offset, size) = (f.offset as usize, f.size as usize);
        if f.name == "common_type" {
            raw[offset..offset + 2].copy_from_slice(&(format.id as u16).to_le_bytes());
            continue;
        }
        if f.data_loc {
            let stringy = f.type_name.contains("char");
            let mut bytes = if stringy {
                rng.text(12)
            } else {
                (0..rng.below(24)).map(|_| rng.next() as u8).collect()
            };
            if stringy {
                bytes.push(0);
            }
            dynamic.push((offset, size, f.rel_loc, bytes));
            continue;
        }
        if f.array && f.type_name.contains("char") {
            let mut text = rng.text(size as u64);
            if rng.below(8) == 0 {
                text = (0..size).map(|_| rng.next() as u8).collect();
            }
            text.truncate(size);
            raw[offset..offset + text.len()].copy_from_slice(&text);
            continue;
        }
        if f.array || size > 8 {
            for b in &mut raw[offset..offset + size] {
                *b = if rng.below(2) == 0 {
                    rng.next() as u8
                } else {
                    0
                };
            }
            continue;
        }
        let v = rng.value(size);
        raw[offset..offset + size].copy_from_slice(&v.to_le_bytes()[..size]);
    }
    for (offset, size, rel, bytes) in dynamic {
        let at = raw.len();
        raw.extend_from_slice(&bytes);
        let base = if rel { at - (offset + size) } else { at };
        let word = (bytes.len() as u32) << 16 | base as u32;
        raw[offset..offset + 4].copy_from_slice(&word.to_le_bytes()[..4.min(size)]);
    }
    pad_raw(&mut raw);
    raw
}

/// The zeros perf.data puts after a raw payload so the record stays 8-aligned; they are part
/// of `PERF_SAMPLE_RAW` as the reader sees it, so rprobe renders them too.
fn pad_raw(raw: &mut Vec<u8>) {
    while (4 + raw.len()) % 8 != 0 {
        raw.push(0);
    }
}

// ---------------------------------------------------------------------------------------------
// Comparing perf's `-F time,trace --ns` text with ours, sample by sample.
// ---------------------------------------------------------------------------------------------

/// perf script's stdout, or None when perf crashed or failed.
/// perf gets a minute: a `%*s` width of 4 billion makes it grow its buffer for a long time.
fn perf_script(home: &Path, file: &Path, fields: &str) -> Result<String, String> {
    let cmd = common::perf(home);
    let out = Command::new("timeout")
        .arg("60")
        .arg(cmd.get_program())
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(Stdio::null())
        .args(["script", "--ns", "-F", fields, "-i"])
        .arg(file)
        .output()
        .expect("run perf script");
    if !out.status.success() {
        return Err(format!("{}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `"%5lu.%09llu: "` of perf script's time column.
fn time_prefix(ns: u64) -> String {
    format!("{:5}.{:09}: ", ns / 1_000_000_000, ns % 1_000_000_000)
}

/// Walks perf's output along the expected samples `(name, time, text)` and returns the
/// differences, one per event name (with the count and the first example).
fn diff_samples(
    perf: &str,
    expected: &[(String, u64, String)],
) -> BTreeMap<String, (usize, String)> {
    let mut diffs = BTreeMap::<String, (usize, String)>::new();
    let mut at = 0;
    for (i, (name, time, text)) in expected.iter().enumerate() {
        let chunk = format!("{}{text}\n", time_prefix(*time));
        if perf[at..].starts_with(&chunk) {
            at += chunk.len();
            continue;
        }
        // Resynchronise on the next sample's time column.
        let next = expected
            .get(i + 1)
            .map(|(_, t, _)| format!("\n{}", time_prefix(*t)));
        let end = match &next {
            Some(n) => perf[at..]
                .find(n.as_str())
                .map_or(perf.len(), |p| at + p + 1),
            None => perf.len(),
        };
        let got = &perf[at..end];
        let entry = diffs.entry(name.clone()).or_insert((0, String::new()));
        if entry.0 == 0 {
            entry.1 = format!("perf:   {got:?}\nrprobe: {chunk:?}");
        }
        entry.0 += 1;
        at = end;
    }
    diffs
}

fn report(diffs: &BTreeMap<String, (usize, String)>) -> String {
    let mut s = String::new();
    for (name, (count, example)) in diffs {
        let _ = writeln!(s, "{name}: {count} samples differ\n{example}");
    }
    s
}

/// A sample to write: (index of its event, time, raw bytes).
type Sample = (usize, u64, Vec<u8>);
/// What rprobe prints for a sample: (event name, time, text).
type Expected = (String, u64, String);

/// Samples of `events` (value style `tame`: small numbers only), rendered by rprobe.
fn synthetic(
    events: &[&Event],
    rounds: usize,
    tame: bool,
    rng: &mut Rng,
) -> (Vec<Sample>, Vec<Expected>) {
    let mut samples = Vec::new();
    let mut expected = Vec::new();
    let compiled: Vec<Compiled> = events.iter().map(|e| Compiled::new(&e.format)).collect();
    for round in 0..rounds {
        for (index, event) in events.iter().enumerate() {
            let mut raw = random_raw(&event.format, rng);
            if tame {
                tame_values(&event.format, &mut raw, rng);
            }
            let time = 1_000_000_000 + (round * events.len() + index) as u64 * 1000;
            let mut text = Vec::new();
            compiled[index].render(&raw, &NoSymbols, &mut text);
            expected.push((
                event.full_name(),
                time,
                String::from_utf8_lossy(&text).into_owned(),
            ));
            samples.push((index, time, raw));
        }
    }
    (samples, expected)
}

/// Small values in every scalar field: lengths and indexes that keep perf inside the record
/// (and zeros after it, for a length a little past a dynamic array).
fn tame_values(format: &EventFormat, raw: &mut Vec<u8>, rng: &mut Rng) {
    raw.resize(raw.len() + 16, 0);
    pad_raw(raw);
    for f in format
        .fields
        .iter()
        .filter(|f| !f.common && !f.array && !f.data_loc)
    {
        let (offset, size) = (f.offset as usize, f.size as usize);
        if size <= 8 {
            let v = rng.below(4);
            raw[offset..offset + size].copy_from_slice(&v.to_le_bytes()[..size]);
        }
    }
}

#[test]
fn perf_script_agrees_on_every_format() {
    if !live_or_skip("perf_script_agrees_on_every_format", Needs::TracefsAndPerf) {
        return;
    }
    let fx = common::fixtures();
    let (events, _) = tracefs_events();
    // ftrace:bprint (trace_printk) prints through its binary printk format, which rprobe does
    // not decode; ftrace's other events are ordinary formats.
    let events: Vec<&Event> = events
        .iter()
        .filter(|e| e.full_name() != "ftrace:bprint")
        .collect();
    let mut systems = BTreeMap::<&str, Vec<&Event>>::new();
    for e in &events {
        systems.entry(&e.system).or_default().push(e);
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut diffs = BTreeMap::new();
    let mut crashes = Vec::new();
    let mut tamed = Vec::new();
    let mut samples_total = 0;
    let rounds = 4;
    for (system, group) in &systems {
        // One file per system, kept for a look with perf script when something differs.
        let file = fx.dir.join(format!("printfmt-synthetic-{system}.data"));
        let (samples, expected) = synthetic(group, rounds, false, &mut rng);
        write_perf_data(&file, group, &samples);
        let mut retry: Vec<&Event> = Vec::new();
        match perf_script(&fx.perf_home, &file, "time,trace") {
            Ok(perf) => {
                let d = diff_samples(&perf, &expected);
                samples_total += samples.len();
                retry = group
                    .iter()
                    .filter(|e| d.contains_key(&e.full_name()))
                    .copied()
                    .collect();
                if retry.is_empty() {
                    continue;
                }
            }
            Err(_) => retry.extend(group.iter().copied()),
        }
        // perf crashed, or printed bytes from outside the record, on some event's random
        // values (it reads wherever a length points): find it, and try it with small values.
        for event in retry {
            let one = [event];
            let mut outcome = None;
            for tame in [false, true] {
                let (samples, expected) = synthetic(&one, rounds, tame, &mut rng);
                write_perf_data(&file, &one, &samples);
                if let Ok(perf) = perf_script(&fx.perf_home, &file, "time,trace") {
                    let d = diff_samples(&perf, &expected);
                    if !tame && !d.is_empty() {
                        continue;
                    }
                    samples_total += samples.len();
                    if tame {
                        tamed.push(event.full_name());
                    }
                    outcome = Some(d);
                    break;
                }
            }
            match outcome {
                Some(d) => diffs.extend(d),
                None => crashes.push(event.full_name()),
            }
        }
    }
    let differing: usize = diffs.values().map(|d: &(usize, String)| d.0).sum();
    println!(
        "{} events, {samples_total} samples: {} events differ ({differing} samples); \
         perf crashed or read outside the record on random values of {} events, \
         which agree with small values: {}; perf crashes even then: {}",
        events.len(),
        diffs.len(),
        tamed.len() + crashes.len(),
        tamed.join(" "),
        crashes.join(" ")
    );
    assert!(diffs.is_empty(), "{}", report(&diffs));
    assert!(
        crashes.len() * 100 < events.len(),
        "perf crashes on {crashes:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Real recordings: a small perf.data reader, kernel symbols as perf picks them, comparisons.
// ---------------------------------------------------------------------------------------------

/// One sample of a perf.data file: what the comparison needs.
struct Recorded {
    cpu: u32,
    time: u64,
    raw: Vec<u8>,
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// The SAMPLE records of a perf.data file perf wrote (file mode, no compression): the attr of
/// each is found by its IDENTIFIER when all attrs have one, else the first attr's layout holds.
fn read_perf_data(path: &Path) -> Vec<Recorded> {
    let b = fs::read(path).expect("read perf.data");
    assert_eq!(
        &b[..8],
        b"PERFILE2",
        "{}: not a perf.data file",
        path.display()
    );
    let attr_size = u64_at(&b, 16) as usize;
    let (attrs_at, attrs_len) = (u64_at(&b, 24) as usize, u64_at(&b, 32) as usize);
    let (data_at, data_len) = (u64_at(&b, 40) as usize, u64_at(&b, 48) as usize);
    let mut by_id = BTreeMap::new();
    let mut types = Vec::new();
    for i in 0..attrs_len / attr_size {
        let attr = &b[attrs_at + i * attr_size..attrs_at + (i + 1) * attr_size];
        let sample_type = u64_at(attr, 24);
        types.push(sample_type);
        let (ids_at, ids_len) = (
            u64_at(attr, attr_size - 16) as usize,
            u64_at(attr, attr_size - 8) as usize,
        );
        for k in 0..ids_len / 8 {
            by_id.insert(u64_at(&b, ids_at + 8 * k), sample_type);
        }
    }
    let identifier = types.iter().all(|t| t & (1 << 16) != 0);
    let mut out = Vec::new();
    let mut at = data_at;
    while at + 8 <= data_at + data_len {
        let kind = u32_at(&b, at);
        let size = usize::from(u16::from_le_bytes([b[at + 6], b[at + 7]]));
        assert!(size >= 8, "record of size {size} at {at}");
        if kind == 9 {
            let body = &b[at + 8..at + size];
            let sample_type = if identifier {
                by_id[&u64_at(body, 0)]
            } else {
                types[0]
            };
            assert_eq!(sample_type & (1 << 4), 0, "PERF_SAMPLE_READ is not handled");
            let mut p = 0;
            let (mut cpu, mut time, mut raw) = (0, 0, Vec::new());
            for bit in 0..=10 {
                if sample_type & (1 << bit) == 0 && !(bit == 0 && identifier) {
                    continue;
                }
                match bit {
                    // IDENTIFIER comes first; bit 0 stands for it here, IP follows.
                    0 => {
                        if identifier {
                            p += 8;
                        }
                        if sample_type & 1 != 0 {
                            p += 8;
                        }
                    }
                    2 => {
                        time = u64_at(body, p);
                        p += 8;
                    }
                    7 => {
                        cpu = u32_at(body, p);
                        p += 8;
                    }
                    5 => p += 8 + 8 * u64_at(body, p) as usize,
                    10 => {
                        let len = u32_at(body, p) as usize;
                        raw = body[p + 4..p + 4 + len].to_vec();
                        p += 4 + len;
                    }
                    _ => p += 8,
                }
            }
            out.push(Recorded { cpu, time, raw });
        }
        at += size;
    }
    out
}

/// `/proc/kallsyms` as perf's kernel map uses it: T, W, D and B symbols (any case), one per
/// address chosen as `choose_best_symbol()` does (global over weak over local, fewer leading
/// underscores, then the longer name), each ending where the next begins.
/// With the kernel's `printk_formats`, which perf record saves in the tracing data.
struct Kallsyms(Vec<(u64, String)>, PrintkFormats);

impl Kallsyms {
    fn load() -> Kallsyms {
        let text = fs::read_to_string("/proc/kallsyms").expect("read /proc/kallsyms");
        let mut syms: Vec<(u64, u8, String)> = Vec::new();
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let (Some(addr), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let kind = kind.as_bytes()[0];
            let Ok(addr) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            if addr != 0 && b"TWDB".contains(&kind.to_ascii_uppercase()) {
                syms.push((addr, kind, name.to_owned()));
            }
        }
        syms.sort_by_key(|s| s.0);
        let rank = |kind: u8, name: &str| {
            let binding = match kind {
                b'W' | b'w' => 1,
                k if k.is_ascii_uppercase() => 0,
                _ => 2,
            };
            let underscores = name.bytes().take_while(|&c| c == b'_').count();
            (binding, underscores, usize::MAX - name.len())
        };
        let mut best: Vec<(u64, String)> = Vec::new();
        let mut best_rank = (0, 0, 0);
        for (addr, kind, name) in syms {
            let r = rank(kind, &name);
            match best.last_mut() {
                Some(last) if last.0 == addr => {
                    if r < best_rank {
                        last.1 = name;
                        best_rank = r;
                    }
                }
                _ => {
                    best.push((addr, name));
                    best_rank = r;
                }
            }
        }
        let printk = PrintkFormats::parse(&String::from_utf8_lossy(&read_once(
            &Path::new(TRACEFS).join("printk_formats"),
        )));
        Kallsyms(best, printk)
    }
}

impl KernelSymbols for Kallsyms {
    fn find(&self, addr: u64) -> Option<(&str, u64)> {
        let i = self.0.partition_point(|s| s.0 <= addr);
        if i == 0 || i == self.0.len() {
            return None;
        }
        let (start, name) = &self.0[i - 1];
        Some((name.as_str(), addr - start))
    }

    fn find_printk(&self, addr: u64) -> Option<&str> {
        self.1.find(addr)
    }
}

/// Compares `perf script -F cpu,time,trace --ns` of `file` with rprobe's text of the same
/// samples (as sorted lines, since perf orders equal times its own way) and returns the
/// differences per event, and the number of samples per event.
fn compare_recording(
    file: &Path,
    formats: &BTreeMap<u32, (String, Compiled)>,
    syms: &dyn KernelSymbols,
) -> (BTreeMap<String, (usize, String)>, BTreeMap<String, usize>) {
    let fx = common::fixtures();
    let perf = perf_script(&fx.perf_home, file, "cpu,time,trace").expect("perf script");
    let mut counts = BTreeMap::<String, usize>::new();
    let mut ours: Vec<(String, String)> = Vec::new();
    for s in read_perf_data(file) {
        let id = u32::from(u16::from_le_bytes([s.raw[0], s.raw[1]]));
        let (name, compiled) = formats
            .get(&id)
            .unwrap_or_else(|| panic!("a sample of event id {id}, whose format is not known"));
        let mut text = Vec::new();
        compiled.render(&s.raw, syms, &mut text);
        let line = format!(
            "[{:03}] {}{}",
            s.cpu,
            time_prefix(s.time),
            String::from_utf8_lossy(&text)
        );
        *counts.entry(name.clone()).or_default() += 1;
        ours.push((line, name.clone()));
    }
    let mut theirs: Vec<&str> = perf.lines().collect();
    theirs.sort_unstable();
    ours.sort();
    let mut diffs = BTreeMap::<String, (usize, String)>::new();
    let mut j = 0;
    for (line, name) in &ours {
        while j < theirs.len() && theirs[j] < line.as_str() {
            j += 1;
        }
        if theirs.get(j) == Some(&line.as_str()) {
            j += 1;
            continue;
        }
        // The perf line of the same cpu and time, for the message.
        let key = &line[..line.find(": ").map_or(line.len(), |p| p + 2)];
        let got = perf
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or("(none)");
        let entry = diffs.entry(name.clone()).or_insert((0, String::new()));
        if entry.0 == 0 {
            entry.1 = format!("perf:   {got:?}\nrprobe: {line:?}");
        }
        entry.0 += 1;
    }
    assert_eq!(
        theirs.len(),
        ours.len(),
        "perf script printed {} lines for {} samples",
        theirs.len(),
        ours.len()
    );
    (diffs, counts)
}

/// Formats by id for events named `SYS:EVT` (any event of a system with `SYS:*`).
fn formats_of(events: &[Event], wanted: &[&str]) -> BTreeMap<u32, (String, Compiled)> {
    events
        .iter()
        .filter(|e| {
            wanted.iter().any(|w| match w.strip_suffix(":*") {
                Some(sys) => e.system == sys,
                None => *w == e.full_name(),
            })
        })
        .map(|e| (e.format.id, (e.full_name(), Compiled::new(&e.format))))
        .collect()
}

/// A short workload for the tracepoints: files, a block write with fsync, TCP over IPv4 and
/// IPv6 loopback (when python3 is there), a sleep.
const WORKLOAD: &str = r#"ls / >/dev/null
dd if=/dev/zero of="$1/dd.out" bs=64k count=4 conv=fsync 2>/dev/null
command -v python3 >/dev/null && python3 -c '
import socket
for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    s = socket.socket(fam); s.bind((host, 0)); s.listen()
    c = socket.create_connection(s.getsockname()[:2]); a, _ = s.accept()
    c.send(b"x"); a.recv(1); c.close(); a.close(); s.close()
'
sleep 0.02
"#;

#[test]
fn perf_script_agrees_on_recorded_tracepoints() {
    if !live_or_skip(
        "perf_script_agrees_on_recorded_tracepoints",
        Needs::TracefsAndPerf,
    ) {
        return;
    }
    let _lock = common::tracefs_lock();
    let fx = common::fixtures();
    let (events, _) = tracefs_events();
    // Whole systems, and from the busy ones (syscalls: ~700 events, whose setup alone takes
    // perf seconds; kmem: 100k samples per process start) the events the workload exercises.
    // Every format of these systems is compared with perf by the synthetic test above.
    let mut wanted: Vec<String> = [
        "sched:*",
        "irq:*",
        "timer:*",
        "block:*",
        "ipi:*",
        "rcu:*",
        "sock:*",
        "tcp:*",
        "skb:*",
        "net:*",
        "signal:*",
        "task:*",
        "kmem:kmalloc",
        "kmem:kfree",
        "kmem:mm_page_free",
    ]
    .map(String::from)
    .to_vec();
    for call in [
        "openat",
        "read",
        "write",
        "connect",
        "bind",
        "accept4",
        "sendto",
        "recvfrom",
        "execve",
        "mmap",
        "exit_group",
        "newfstatat",
        "clock_nanosleep",
        "fsync",
        "close",
    ] {
        wanted.push(format!("syscalls:sys_enter_{call}"));
        wanted.push(format!("syscalls:sys_exit_{call}"));
    }
    let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let formats = formats_of(&events, &wanted);
    let script = fx.dir.join("printfmt-workload.sh");
    fs::write(&script, WORKLOAD).expect("write workload");
    let file = fx.dir.join("printfmt-tracepoints.data");
    let mut cmd = common::perf(&fx.perf_home);
    cmd.args(["record", "-q", "-o"]).arg(&file);
    for w in &wanted {
        cmd.args(["-e", w]);
    }
    cmd.arg("--").arg("sh").arg(&script).arg(&fx.dir);
    let out = cmd.output().expect("run perf record");
    assert!(
        out.status.success(),
        "perf record: {}",
        common::show_output(&out)
    );
    let syms = Kallsyms::load();
    let (diffs, counts) = compare_recording(&file, &formats, &syms);
    let samples: usize = counts.values().sum();
    println!(
        "{samples} samples of {} events: {} events differ",
        counts.len(),
        diffs.len()
    );
    for name in ["sched:sched_switch", "kmem:kmalloc", "ipi:ipi_send_cpumask"] {
        println!(
            "  {name}: {} samples",
            counts.get(name).copied().unwrap_or(0)
        );
    }
    assert!(diffs.is_empty(), "{}", report(&diffs));
    assert!(
        counts.len() >= 20,
        "only {} events had samples: {counts:?}",
        counts.len()
    );
    assert!(counts.contains_key("sched:sched_switch") && counts.contains_key("kmem:kmalloc"));
}

/// `perf probe -x BIN -D FUNC` -> `BIN:0xOFFSET`, the place of a uprobe definition.
fn probe_place(home: &Path, bin: &Path, func: &str) -> String {
    let out = common::perf(home)
        .args(["probe", "-x"])
        .arg(bin)
        .args(["-D", func])
        .output()
        .expect("run perf probe -D");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("p:") || l.starts_with("r:"))
        .unwrap_or_else(|| panic!("perf probe -D {func}: {}", common::show_output(&out)));
    line.split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no place in {line:?}"))
        .to_owned()
}

#[test]
fn perf_script_agrees_on_recorded_uprobes() {
    if !live_or_skip(
        "perf_script_agrees_on_recorded_uprobes",
        Needs::TracefsAndPerf,
    ) {
        return;
    }
    let _lock = common::tracefs_lock();
    let fx = common::fixtures();
    let grp = common::group("printfmt");
    let mut guard = common::EventGuard::new();
    guard.own_group(&grp);
    let work = probe_place(&fx.perf_home, &fx.o0, "work");
    let point = probe_place(&fx.perf_home, &fx.o0, "point_sum");
    let greeting = probe_place(&fx.perf_home, &fx.o0, "greeting");
    // work(int id, long len, const char *name): numbers of each type, the string twice,
    // arrays of three element types over its bytes, a bitfield and a char.
    let defs = [
        format!(
            "p:{grp}/work {work} id=%di:s32 len=%si:s64 ulen=%si:u64 hex=%si:x32 neg=%si:s16 \
             name=+0(%dx):string uname=+0(%dx):ustring arr=+0(%dx):x8[4] w=+0(%dx):x16[2] \
             sa=+0(%dx):s8[3] bf=%di:b3@1/32 ch=+0(%dx):char c2=+1(%dx):u8"
        ),
        format!("r:{grp}/work_ret {work} ret=$retval:s64 rx=$retval:x64"),
        format!("p:{grp}/point {point} x=+0(%di):s64 y=+8(%di):s64 label=+0(+16(%di)):string"),
        format!("r:{grp}/greeting_ret {greeting} s=+0($retval):string"),
    ];
    for def in &defs {
        common::write_uprobe_events(&format!("{def}\n"))
            .unwrap_or_else(|e| panic!("add {def:?}: {e}"));
    }
    let names = ["work", "work_ret", "point", "greeting_ret"];
    let events: Vec<Event> = names
        .iter()
        .map(|name| {
            let text = fs::read_to_string(
                Path::new(TRACEFS)
                    .join("events")
                    .join(&grp)
                    .join(name)
                    .join("format"),
            )
            .expect("read probe format");
            Event {
                system: grp.clone(),
                format: parse_format(&text).expect("probe format parses"),
                text,
            }
        })
        .collect();
    let formats: BTreeMap<u32, (String, Compiled)> = events
        .iter()
        .map(|e| (e.format.id, (e.full_name(), Compiled::new(&e.format))))
        .collect();
    let file = fx.dir.join("printfmt-uprobes.data");
    let mut cmd = common::perf(&fx.perf_home);
    cmd.args(["record", "-q", "-o"]).arg(&file);
    for name in names {
        cmd.args(["-e", &format!("{grp}:{name}")]);
    }
    cmd.arg("--").arg(&fx.o0).arg("3");
    let out = cmd.output().expect("run perf record");
    assert!(
        out.status.success(),
        "perf record: {}",
        common::show_output(&out)
    );
    let (diffs, counts) = compare_recording(&file, &formats, &NoSymbols);
    // Random values in the same formats, as for the tracepoints.
    let refs: Vec<&Event> = events.iter().collect();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (samples, expected) = synthetic(&refs, 16, false, &mut rng);
    let synthetic_file = fx.dir.join("printfmt-uprobes-synthetic.data");
    write_perf_data(&synthetic_file, &refs, &samples);
    let perf = perf_script(&fx.perf_home, &synthetic_file, "time,trace").expect("perf script");
    let synthetic_diffs = diff_samples(&perf, &expected);
    drop(guard);
    println!("uprobe samples per event: {counts:?}");
    assert!(diffs.is_empty(), "recorded:\n{}", report(&diffs));
    assert!(
        synthetic_diffs.is_empty(),
        "synthetic:\n{}",
        report(&synthetic_diffs)
    );
    // ROUNDS=3: work runs 3 times a round, point_sum and greeting once.
    let want: BTreeMap<String, usize> = [
        ("work", 9),
        ("work_ret", 9),
        ("point", 3),
        ("greeting_ret", 3),
    ]
    .iter()
    .map(|(n, c)| (format!("{grp}:{n}"), *c))
    .collect();
    assert_eq!(counts, want);
}

/// Print fmts no kernel event has in this combination: the `%p` extensions, widths from `*`,
/// casts, every operator, nested `?:`, `%c`, `%+d`, `%%`, escapes. perf parses any format text,
/// so a made-up event in a perf.data file checks them all against perf 6.1.
const MADE_UP: &[&str] = &[
    // perf 6.1 knows no sizeof, __print_symbolic_u64 or __print_flags_u64: `[FAILED TO PARSE]`
    // and every kind of field as `name=value`.
    r#""x=%d", sizeof(int)"#,
    r#""b=%s", __print_symbolic_u64(REC->b, { 1, "ONE" }, { 2, "TWO" })"#,
    r#""b=%s", __print_flags_u64(REC->b, "|", { 1, "ONE" }, { 2, "TWO" })"#,
    r#""a=%d b=%lld %-8s|%*s|%.3s|%5.2s s=%s %%x %c %+d \t\"q\" %pM %pMR %pmR %pMF", REC->a, REC->b, REC->comm, REC->a, __get_str(s), REC->comm, REC->comm, __get_str(s), REC->a, REC->b, REC->mac, REC->mac, REC->mac, REC->mac"#,
    r#""%pI4 %pi4 %pI4h %pI6 %pi6 %pI6c %pISpc %pISc %piS %pU %pUb %pUL %pUl %*ph %*phC %*phD %*phN %pK %pB %pF %pf %pSR", REC->ip4, REC->ip4, REC->ip4, REC->ip6, REC->ip6, REC->ip6, REC->sa, REC->sa, REC->sa, REC->ip6, REC->ip6, REC->ip6, REC->ip6, REC->a, __get_dynamic_array(buf), 3, __get_dynamic_array(buf), 2, __get_dynamic_array(buf), 5, __get_dynamic_array(buf), REC->fn, REC->fn, REC->fn, REC->fn, REC->fn"#,
    r#""%x %03o %#x %#o %hhd %hu %zu %Lu %lx %X %u %i %.0d %-5d| %05d %d %d %d %d %d %d", REC->a << 3 | REC->b >> 1, REC->a % 7, ~REC->a, -REC->a, !REC->a, REC->a * 3 / 2 - 1, (u64)REC->b, REC->a - REC->b - 1, 2 * (REC->a + REC->b), REC->a ^ REC->b, (int)REC->b, (u8)(REC->a << 4), REC->a, REC->b, REC->a, REC->a ? 1 : 2 + 10, REC->a != 1 || REC->b == 2, REC->a <= 2 && REC->b >= 1, -1 < REC->a, (s16)REC->b, REC->w[1]"#,
    r#""rel=%s rs=%s rl=%d rh=%s s=%s ra=%s %*ph rb=%s ri=%d si=%d", __get_rel_str(r), __get_str(r), __get_dynamic_array_len(r), __print_hex(__get_rel_dynamic_array(r), __get_rel_dynamic_array_len(r)), __get_str(s), __print_array(__get_rel_dynamic_array(r), 2, 1), 3, __get_rel_dynamic_array(r), __get_rel_bitmask(r), (__get_rel_dynamic_array(r))[1], (__get_dynamic_array(s))[2]"#,
    r#""cast=%s dl=%s one=%s sq=%d fl=%d gs=%d %*d|%-*s|%ld %lu %hhx %#o %p %pS %s %d %c", (char *)REC->comm, REC->s, 1, REC->comm[2] == 'x', __print_flags(REC->a, "|", { 1, "A" }), __get_str(s), -5, REC->a, 6, REC->comm, (int)REC->b, REC->b, REC->a, 0, 0, 0, REC->ip4, REC->ip4[1], REC->a"#,
    r#""hex=%s hs=%s arr=%s bits=%s fl=%s sym=%s %s %s %s", __print_hex(__get_dynamic_array(buf), __get_dynamic_array_len(buf)), __print_hex_str(REC->mac, 6), __print_array(__get_dynamic_array(buf), 2, 2), __get_bitmask(mask), __print_flags(REC->a, "|", { 1, "A" }, { 0x10, "B" }, { 0, "NONE" }), __print_symbolic(REC->b, { 0, "ZERO" }, { 1, "ONE" }, { -1, "MINUS" }), REC->a ? "yes" : "no", REC->a > 3 && REC->b <= 2 ? REC->comm : __get_str(s), REC->a ? REC->b ? "ab" : "a" : "none""#,
];

/// The fields of the made-up events (offsets as a probe event packs them).
const MADE_UP_FIELDS: &str = "\tfield:u32 a;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:s64 b;\toffset:12;\tsize:8;\tsigned:1;\n\tfield:char comm[16];\toffset:20;\tsize:16;\tsigned:0;\n\tfield:__data_loc char[] s;\toffset:36;\tsize:4;\tsigned:0;\n\tfield:__data_loc u8[] buf;\toffset:40;\tsize:4;\tsigned:0;\n\tfield:u8 mac[6];\toffset:44;\tsize:6;\tsigned:0;\n\tfield:u8 ip4[4];\toffset:50;\tsize:4;\tsigned:0;\n\tfield:u8 ip6[16];\toffset:54;\tsize:16;\tsigned:0;\n\tfield:u8 sa[28];\toffset:70;\tsize:28;\tsigned:0;\n\tfield:__data_loc unsigned long[] mask;\toffset:98;\tsize:4;\tsigned:0;\n\tfield:void * fn;\toffset:102;\tsize:8;\tsigned:0;\n\tfield:u16 w[];\toffset:110;\tsize:4;\tsigned:0;\n\tfield:__rel_loc char[] r;\toffset:114;\tsize:4;\tsigned:0;\n";

#[test]
fn perf_script_agrees_on_made_up_formats() {
    if !live_or_skip(
        "perf_script_agrees_on_made_up_formats",
        Needs::TracefsAndPerf,
    ) {
        return;
    }
    let fx = common::fixtures();
    let events: Vec<Event> = MADE_UP
        .iter()
        .enumerate()
        .map(|(i, fmt)| {
            let text = format!(
                "name: made_up_{i}\nID: {}\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n{MADE_UP_FIELDS}\nprint fmt: {fmt}\n",
                60000 + i
            );
            Event {
                system: "rprobe_made_up".into(),
                format: parse_format(&text).expect("made-up format parses"),
                text,
            }
        })
        .collect();
    for (i, e) in events.iter().enumerate() {
        let failure = Compiled::new(&e.format).failure().map(str::to_owned);
        assert_eq!(failure.is_some(), i < 3, "{}: {failure:?}", e.full_name());
    }
    let refs: Vec<&Event> = events.iter().collect();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let (mut samples, _) = synthetic(&refs, 64, false, &mut rng);
    // `a` is a width (`%*s`) and a length (`%*ph`): keep it small, as a kernel would.
    // One compiled program per event for all its samples: the fallback printer stops taking
    // a char array for a string for good once it was not printable, as perf's does.
    let compiled: Vec<Compiled> = refs.iter().map(|e| Compiled::new(&e.format)).collect();
    let mut expected = Vec::new();
    for (index, time, raw) in &mut samples {
        raw[8..12].copy_from_slice(&(rng.below(40) as u32).to_le_bytes());
        let mut text = Vec::new();
        compiled[*index].render(raw, &NoSymbols, &mut text);
        let text = String::from_utf8_lossy(&text).into_owned();
        expected.push((refs[*index].full_name(), *time, text));
    }
    let file = fx.dir.join("printfmt-made-up.data");
    write_perf_data(&file, &refs, &samples);
    let perf = perf_script(&fx.perf_home, &file, "time,trace").expect("perf script");
    let diffs = diff_samples(&perf, &expected);
    assert!(diffs.is_empty(), "{}", report(&diffs));
}

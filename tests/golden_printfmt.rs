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

use rprobe::replay::printfmt::{Compiled, NoSymbols};

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

/// The HEADER_TRACING_DATA payload for `events` (perf-data.md §6).
fn tracing_data(events: &[&Event]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"\x17\x08\x44tracing0.6\0");
    out.push(0);
    out.push(8);
    put_u32(&mut out, 4096);
    for name in ["header_page", "header_event"] {
        let text = fs::read(Path::new(TRACEFS).join("events").join(name)).expect(name);
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
    raw
}

// ---------------------------------------------------------------------------------------------
// Comparing perf's `-F time,trace --ns` text with ours, sample by sample.
// ---------------------------------------------------------------------------------------------

/// perf script's stdout, or None when perf crashed or failed.
fn perf_script(home: &Path, file: &Path, fields: &str) -> Result<String, String> {
    let out = common::perf(home)
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
    // ftrace's own events (function, print, ...) are not tracepoints perf can record.
    let events: Vec<&Event> = events.iter().filter(|e| e.system != "ftrace").collect();
    let mut systems = BTreeMap::<&str, Vec<&Event>>::new();
    for e in &events {
        systems.entry(&e.system).or_default().push(e);
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let file = fx.dir.join("printfmt-synthetic.data");
    let mut diffs = BTreeMap::new();
    let mut crashes = Vec::new();
    let mut tamed = Vec::new();
    let mut samples_total = 0;
    let rounds = 4;
    for group in systems.values() {
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

//! A replay session: a parsed perf.data file, its events (name, attr, tracepoint format), the
//! recorded machine (threads, maps, DSOs), and the records delivered in perf's order.
//!
//! Event names follow perf 6.1 (`evsel__name`): EVENT_DESC's name when the file has one
//! (matched by index), else `sys:name` for tracepoints, `cpu-clock`-style names for software
//! and hardware events.

use super::machine::Machine;
use super::symbols::{Kallsyms, SymbolMap};
use crate::perf::abi::{self, perf_type, record, EventAttr};
use crate::perf::reader::features;
use crate::perf::reader::order::{Orderer, Step};
use crate::perf::reader::records::{self, IdPos, Sample};
use crate::perf::reader::tracing_data::{self, TracingData};
use crate::perf::reader::{PerfFile, RawRecord, ReadError, Warning};
use crate::tracefs::format::EventFormat;
use std::sync::Arc;

/// One recorded event (perf's `evsel`).
#[derive(Debug, Clone)]
pub struct Evsel {
    /// The name perf prints.
    pub name: String,
    /// The attr.
    pub attr: EventAttr,
    /// The tracefs format of a tracepoint or probe event, from the tracing data.
    pub format: Option<Arc<EventFormat>>,
}

impl Evsel {
    /// `PERF_SAMPLE_CALLCHAIN` is set.
    pub fn has_callchain(&self) -> bool {
        self.attr.samples(abi::sample::CALLCHAIN)
    }

    /// A tracepoint, kprobe or uprobe event.
    pub fn is_tracepoint(&self) -> bool {
        self.attr.type_ == perf_type::TRACEPOINT
    }

    /// perf's side-band event (`dummy:HG`, `PERF_COUNT_SW_DUMMY`): its samples are noise.
    pub fn is_tracking(&self) -> bool {
        self.attr.type_ == perf_type::SOFTWARE && self.attr.config == abi::sw::DUMMY
    }

    /// What one sample weighs in reports and flame graphs: its period for sampling events
    /// (cpu-clock: nanoseconds), 1 for tracepoints and probe events.
    pub fn weight(&self, s: &Sample<'_>) -> u64 {
        if self.is_tracepoint() || !self.attr.samples(abi::sample::PERIOD) {
            1
        } else {
            s.period
        }
    }
}

/// Where kernel symbols come from.
#[derive(Debug, Clone, Default)]
pub struct KernelSymbols {
    /// The symbols (kallsyms of the recording kernel).
    pub map: SymbolMap,
    /// Address of `_text` in that kallsyms (to relocate against the file's kernel map).
    pub text: Option<u64>,
}

impl From<Kallsyms> for KernelSymbols {
    fn from(k: Kallsyms) -> KernelSymbols {
        let text = k.text;
        KernelSymbols {
            map: k.into_map(),
            text,
        }
    }
}

/// A delivered record.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A sample of evsel `evsel`.
    Sample {
        /// Index into [`Session::evsels`].
        evsel: usize,
        /// The parsed sample.
        sample: Sample<'a>,
        /// `misc` of the record header (cpumode in bits 0–2).
        misc: u16,
    },
    /// A LOST record.
    Lost {
        /// The evsel of the lost records' id, if known.
        evsel: Option<usize>,
        /// How many records were lost.
        lost: u64,
        /// Trailer fields.
        id: records::SampleId,
    },
}

/// Where [`Session::run`] delivers events: the machine as it is at the event, the evsels,
/// the event.
pub type Sink<'s> = dyn FnMut(&mut Machine, &[Evsel], Event<'_>) -> std::io::Result<()> + 's;

/// Counts a run ends with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Every record processed (perf's `nr_events[0]`).
    pub events: u64,
    /// Samples delivered.
    pub samples: u64,
    /// LOST records.
    pub lost_records: u64,
    /// Records lost in total (sum of LOST counts).
    pub lost: u64,
    /// Samples that could not be parsed or matched to an event.
    pub bad_samples: u64,
    /// Other records that could not be parsed.
    pub bad_records: u64,
    /// Records of types replay does not use.
    pub skipped: u64,
    /// Samples the kernel dropped (sum of `PERF_RECORD_LOST_SAMPLES`).
    pub lost_samples: u64,
    /// `PERF_RECORD_COMPRESSED` records (`perf record -z`), not decompressed.
    pub compressed: u64,
}

/// A perf.data file ready to replay.
#[derive(Debug)]
pub struct Session<'a> {
    /// The file.
    pub file: PerfFile<'a>,
    /// Its events, in attr order.
    pub evsels: Vec<Evsel>,
    /// The tracing data, when present and readable.
    pub tracing: Option<TracingData>,
    /// Why the tracing data could not be read.
    pub tracing_error: Option<String>,
    /// The recorded machine.
    pub machine: Machine,
    id_pos: IdPos,
    /// Counts.
    pub stats: Stats,
    /// Warnings to print once (truncation).
    pub warnings: Vec<Warning>,
}

/// perf's names of software (`cpu-clock`) and hardware (`cycles`) event configs.
const SW_NAMES: [&str; 10] = [
    "cpu-clock",
    "task-clock",
    "page-faults",
    "context-switches",
    "cpu-migrations",
    "minor-faults",
    "major-faults",
    "alignment-faults",
    "emulation-faults",
    "dummy",
];
const HW_NAMES: [&str; 10] = [
    "cycles",
    "instructions",
    "cache-references",
    "cache-misses",
    "branches",
    "branch-misses",
    "bus-cycles",
    "stalled-cycles-frontend",
    "stalled-cycles-backend",
    "ref-cycles",
];

fn config_name(names: &[&str], kind: &str, config: u64) -> String {
    names
        .get(config as usize)
        .map_or_else(|| format!("unknown-{kind}:{config}"), |s| (*s).to_string())
}

/// perf's modifier suffix (`evsel__add_modifiers`): the contexts counted, in the order
/// `k`, `u`, `h`, when any is excluded (`cpu-clock:u`).
fn modifiers(a: &EventAttr) -> String {
    use abi::flag::*;
    let ctx = [
        (EXCLUDE_KERNEL, 'k'),
        (EXCLUDE_USER, 'u'),
        (EXCLUDE_HV, 'h'),
    ];
    if !ctx.iter().any(|(f, _)| a.has_flag(*f)) {
        return String::new();
    }
    let m: String = ctx
        .iter()
        .filter(|(f, _)| !a.has_flag(*f))
        .map(|(_, c)| *c)
        .collect();
    format!(":{m}")
}

/// The name of an attr without EVENT_DESC.
pub fn default_name(a: &EventAttr, format: Option<(&str, &EventFormat)>) -> String {
    match a.type_ {
        perf_type::TRACEPOINT => match format {
            Some((sys, f)) => format!("{sys}:{}", f.name),
            None => format!("unknown tracepoint {}", a.config),
        },
        perf_type::SOFTWARE => config_name(&SW_NAMES, "software", a.config) + &modifiers(a),
        perf_type::HARDWARE => config_name(&HW_NAMES, "hardware", a.config) + &modifiers(a),
        t => format!("raw 0x{:x} type {t}", a.config),
    }
}

impl<'a> Session<'a> {
    /// Open a session over the bytes of a perf.data file. `kernel` are the kernel symbols to
    /// use (the caller picks the file's, this machine's or none).
    pub fn new(bytes: &'a [u8], kernel: Option<KernelSymbols>) -> Result<Session<'a>, ReadError> {
        let file = PerfFile::parse(bytes)?;
        let (tracing, tracing_error) = match file.feature(abi::feature::TRACING_DATA) {
            Some(b) => match tracing_data::parse(b) {
                Ok(t) => (Some(t), None),
                Err(e) => (None, Some(e.to_string())),
            },
            None => (None, None),
        };
        let descs = file
            .feature(abi::feature::EVENT_DESC)
            .and_then(features::parse_event_desc)
            .unwrap_or_default();
        let evsels: Vec<Evsel> = file
            .attrs
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let fmt = if e.attr.type_ == perf_type::TRACEPOINT {
                    tracing.as_ref().and_then(|t| t.find(e.attr.config))
                } else {
                    None
                };
                let name = descs
                    .get(i)
                    .map(|d| d.name.clone())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| default_name(&e.attr, fmt));
                Evsel {
                    name,
                    attr: e.attr,
                    format: fmt.map(|(_, f)| Arc::new(f.clone())),
                }
            })
            .collect();
        let mut machine = Machine::new();
        if let Some(b) = file.feature(abi::feature::BUILD_ID) {
            for id in features::parse_build_ids(b) {
                machine.build_ids.insert(id.filename, id.id);
            }
        }
        if let Some(k) = kernel {
            machine.set_kernel_symbols(k.map, k.text);
        }
        let id_pos = evsels.first().map(|e| IdPos::of(&e.attr)).unwrap_or(IdPos {
            sample: None,
            trailer: None,
        });
        let warnings = file.warnings.clone();
        Ok(Session {
            file,
            evsels,
            tracing,
            tracing_error,
            machine,
            id_pos,
            stats: Stats::default(),
            warnings,
        })
    }

    /// Use `k` for kernel addresses. After [`Session::run`] the kernel maps are applied
    /// again with them (see [`Machine::set_kernel_symbols`]).
    pub fn set_kernel_symbols(&mut self, k: KernelSymbols) {
        self.machine.set_kernel_symbols(k.map, k.text);
    }

    /// The evsel of a record.
    fn evsel_of(&self, rec: &RawRecord<'_>) -> Option<usize> {
        if self.evsels.len() == 1 {
            return Some(0);
        }
        let id = if rec.type_ == record::SAMPLE {
            self.id_pos.sample_id(rec.body)?
        } else {
            self.id_pos.trailer_id(rec.body)?
        };
        self.file.attr_of_id(id)
    }

    fn time_of(&self, rec: &RawRecord<'_>) -> Option<u64> {
        if rec.type_ >= 64 {
            return None;
        }
        let ev = match self.evsel_of(rec) {
            Some(e) => e,
            None if rec.type_ != record::SAMPLE => 0,
            None => return None,
        };
        let attr = &self.evsels.get(ev)?.attr;
        if rec.type_ != record::SAMPLE && !attr.has_flag(abi::flag::SAMPLE_ID_ALL) {
            return None;
        }
        records::record_time(attr, rec.type_, rec.body)
    }

    /// Replay every record in perf's order; samples and LOST records go to `sink` with the
    /// machine as it is at that point.
    pub fn run(&mut self, sink: &mut Sink<'_>) -> std::io::Result<()> {
        let bytes = self.file.bytes();
        let mut order = Orderer::new();
        let mut recs = self.file.records();
        let mut due: Vec<u64> = Vec::new();
        for rec in recs.by_ref() {
            self.stats.events += 1;
            let t = self.time_of(&rec);
            match order.push(&rec, t) {
                Step::Now => self.deliver(&rec, sink)?,
                Step::Queued => {}
                Step::Round => {
                    due.clear();
                    order.flush_round(|off| due.push(off));
                    for &off in &due {
                        let r = record_at(bytes, off);
                        self.deliver(&r, sink)?;
                    }
                }
            }
        }
        if let Some(w) = recs.stopped() {
            // The record that does not fit says more than "the file is shorter than the
            // header says": keep one warning.
            self.warnings
                .retain(|w| !matches!(w, Warning::Truncated { .. }));
            self.warnings.push(w.clone());
        }
        due.clear();
        order.finish(|off| due.push(off));
        for off in &due {
            let r = record_at(bytes, *off);
            self.deliver(&r, sink)?;
        }
        Ok(())
    }

    /// Deliver records that did not come from the file: one drain of live ring buffers
    /// (`perf_event_header`-framed, several CPUs' rings one after the other), in time order
    /// within the batch. The session's file supplies only the attrs, ids and tracing data.
    /// A record cut short ends the batch (counted as a bad record).
    pub fn feed(&mut self, records: &[u8], sink: &mut Sink<'_>) -> std::io::Result<()> {
        let mut batch: Vec<(u64, RawRecord<'_>)> = Vec::new();
        let mut at = 0usize;
        while at + 8 <= records.len() {
            let type_ = abi::u32_at(records, at).unwrap_or(0);
            let misc = abi::u16_at(records, at + 4).unwrap_or(0);
            let size = abi::u16_at(records, at + 6).map_or(0, usize::from);
            let Some(body) = records.get(at + 8..at + size.max(8)).filter(|_| size >= 8) else {
                self.stats.bad_records += 1;
                break;
            };
            let rec = RawRecord {
                offset: at as u64,
                type_,
                misc,
                body,
            };
            self.stats.events += 1;
            // Records without a time (side-band of older kernels, user types) go first.
            batch.push((self.time_of(&rec).unwrap_or(0), rec));
            at += size;
        }
        batch.sort_by_key(|(t, _)| *t);
        for (_, rec) in &batch {
            self.deliver(rec, sink)?;
        }
        Ok(())
    }

    fn deliver(&mut self, rec: &RawRecord<'_>, sink: &mut Sink<'_>) -> std::io::Result<()> {
        match rec.type_ {
            record::SAMPLE => {
                let Some(ev) = self.evsel_of(rec) else {
                    self.stats.bad_samples += 1;
                    return Ok(());
                };
                let Some(sample) = records::parse_sample(&self.evsels[ev].attr, rec.body) else {
                    self.stats.bad_samples += 1;
                    return Ok(());
                };
                self.stats.samples += 1;
                sink(
                    &mut self.machine,
                    &self.evsels,
                    Event::Sample {
                        evsel: ev,
                        sample,
                        misc: rec.misc,
                    },
                )?;
            }
            record::MMAP | record::MMAP2 => {
                let m = if rec.type_ == record::MMAP {
                    records::parse_mmap(rec.body, rec.misc)
                } else {
                    records::parse_mmap2(rec.body, rec.misc)
                };
                let Some(m) = m else {
                    self.stats.bad_records += 1;
                    return Ok(());
                };
                self.machine.mmap(&m);
            }
            record::COMM => match records::parse_comm(rec.body) {
                Some(c) => self.machine.comm(c.pid, c.tid, c.comm),
                None => self.stats.bad_records += 1,
            },
            record::FORK => match records::parse_task(rec.body) {
                Some(t) => self.machine.fork(t.pid, t.tid, t.ppid, t.ptid),
                None => self.stats.bad_records += 1,
            },
            record::EXIT => {}
            record::COMPRESSED => self.stats.compressed += 1,
            record::LOST_SAMPLES => match abi::u64_at(rec.body, 0) {
                Some(n) => self.stats.lost_samples += n,
                None => self.stats.bad_records += 1,
            },
            record::LOST => {
                let Some(l) = records::parse_lost(rec.body) else {
                    self.stats.bad_records += 1;
                    return Ok(());
                };
                self.stats.lost_records += 1;
                self.stats.lost += l.lost;
                let ev = self.file.attr_of_id(l.id).or(if self.evsels.len() == 1 {
                    Some(0)
                } else {
                    None
                });
                let attr = ev.map_or_else(
                    || self.evsels.first().map(|e| e.attr),
                    |i| Some(self.evsels[i].attr),
                );
                let id = attr
                    .and_then(|a| records::parse_sample_id(&a, rec.body))
                    .unwrap_or_default();
                sink(
                    &mut self.machine,
                    &self.evsels,
                    Event::Lost {
                        evsel: ev,
                        lost: l.lost,
                        id,
                    },
                )?;
            }
            _ => self.stats.skipped += 1,
        }
        Ok(())
    }
}

/// The record at a file offset the orderer handed back (it was whole when first read).
fn record_at(bytes: &[u8], off: u64) -> RawRecord<'_> {
    let at = off as usize;
    let type_ = abi::u32_at(bytes, at).unwrap_or(0);
    let misc = abi::u16_at(bytes, at + 4).unwrap_or(0);
    let size = abi::u16_at(bytes, at + 6).map_or(8, usize::from);
    RawRecord {
        offset: off,
        type_,
        misc,
        body: bytes.get(at + 8..at + size).unwrap_or(&[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perf::reader::testfile::*;
    use crate::perf::reader::tracing_data::tests::{blob, SCHED_SWITCH};

    #[test]
    fn samples_come_out_in_time_order_with_their_event() {
        let mut data = sample_rec(32, 200, 0, &[0x74, 1, 0, 0]);
        data.extend(sample_rec(33, 100, 1, &[0x74, 1, 0, 0]));
        let f = file(
            &[(tp_attr(), vec![32, 33])],
            &data,
            &[(1, blob("sched", &[SCHED_SWITCH]))],
        );
        let mut s = Session::new(&f, None).unwrap();
        assert_eq!(s.evsels[0].name, "sched:sched_switch");
        assert!(s.evsels[0].format.is_some());
        let mut times = Vec::new();
        s.run(&mut |m, ev, e| {
            if let Event::Sample { evsel, sample, .. } = e {
                assert_eq!(ev[evsel].name, "sched:sched_switch");
                times.push(sample.time);
                assert_eq!(&*m.findnew(sample.pid, sample.tid).comm, ":7");
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(times, vec![100, 200]);
        assert_eq!(s.stats.samples, 2);
    }

    #[test]
    fn names_without_event_desc() {
        let mut a = EventAttr {
            type_: perf_type::SOFTWARE,
            ..EventAttr::default()
        };
        assert_eq!(default_name(&a, None), "cpu-clock");
        a.flags = abi::flag::EXCLUDE_KERNEL | abi::flag::EXCLUDE_HV;
        assert_eq!(default_name(&a, None), "cpu-clock:u");
        a.type_ = perf_type::HARDWARE;
        a.flags = 0;
        assert_eq!(default_name(&a, None), "cycles");
    }
}

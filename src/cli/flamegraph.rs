//! `rprobe flamegraph`: a perf.data file's stacks folded in-process (the folded format of
//! `perf script | inferno-collapse-perf`) and drawn as an SVG with inferno.

use super::script::{kernel_symbols, map_input, MappedFiles};
use crate::perf::abi::{context, misc};
use crate::replay::flame::{frame_names, join_stack, FoldOptions, Folder, FrameName};
use crate::replay::hash::FxHashMap;
use crate::replay::machine::Maps;
use crate::replay::script::{self, Script, ScriptOptions};
use crate::replay::session::{Event, KernelSymbols, Session};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  rprobe record -F 999 -g -- ./primes && rprobe flamegraph     writes flame.svg
  rprobe flamegraph -i sched.data --event sched:sched_switch -o switches.svg
  rprobe flamegraph --folded > out.folded                      inferno/FlameGraph input
  rprobe flamegraph --folded --pid | grep '^myapp-'";

/// Draw a flame graph of a perf.data file's stacks (one event at a time).
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct FlamegraphArgs {
    /// The perf.data file.
    #[arg(short = 'i', long = "input", default_value = "perf.data")]
    input: PathBuf,
    /// Where to write the SVG (or the folded stacks with --folded; default stdout then).
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// Write folded stacks (`comm;root;...;leaf count`) instead of an SVG.
    #[arg(long)]
    folded: bool,
    /// The event to draw (default: the first one with samples).
    #[arg(long = "event", value_name = "NAME")]
    event: Option<String>,
    /// Separate processes: the root frame is `comm-PID`.
    #[arg(long)]
    pid: bool,
    /// Separate threads: the root frame is `comm-PID/TID`.
    #[arg(long)]
    tid: bool,
    /// The SVG's title.
    #[arg(long, default_value = "Flame Graph")]
    title: String,
}

pub fn run(args: &FlamegraphArgs, out: &mut dyn Write) -> Result<()> {
    let map = map_input(&args.input)?;
    let bytes: &[u8] = &map;
    let home = std::env::var("HOME").ok();
    // kallsyms (10^5 lines) is parsed on the other core while the pass folds the stacks
    // with kernel frames left unnamed; they are named after it. When the file's kernel maps
    // change after a kernel frame (never in perf's files: their kernel MMAPs come first),
    // the pass runs again with the symbols from the start.
    let folder = std::thread::scope(|scope| -> Result<Folder> {
        let loader = scope.spawn(|| kernel_symbols(bytes, home.as_deref()));
        let mut kernel = Kernel::Later(loader);
        loop {
            match fold(args, bytes, &home, kernel)? {
                Folded::Done(f) => return Ok(f),
                // A pass with the symbols from the start is never run again.
                Folded::Again(k) => kernel = Kernel::Now(k),
            }
        }
    })?;
    let Some(event) = folder.event().map(str::to_owned) else {
        bail!(
            "{}: no samples to draw; record with -g for stacks (rprobe record -g ...)",
            args.input.display()
        );
    };
    if folder.skipped > 0 {
        eprintln!(
            "rprobe flamegraph: drew {event}; {} samples of other events left out (choose one with --event)",
            folder.skipped
        );
    }
    let mut writer: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?,
        )),
        None if args.folded => Box::new(out),
        None => Box::new(std::io::BufWriter::new(
            std::fs::File::create("flame.svg").context("cannot write flame.svg")?,
        )),
    };
    if args.folded {
        folder.write(&mut writer)?;
    } else {
        let lines = folder.lines();
        if lines.is_empty() {
            bail!("{event}: the samples have no frames to draw");
        }
        let mut o = inferno::flamegraph::Options::default();
        o.title = args.title.clone();
        o.hash = true;
        o.deterministic = true;
        o.count_name = if event.contains(':') {
            "events"
        } else {
            "samples"
        }
        .into();
        inferno::flamegraph::from_lines(&mut o, lines.iter().map(String::as_str), &mut writer)
            .context("cannot draw the flame graph")?;
        let path = args
            .output
            .clone()
            .unwrap_or_else(|| PathBuf::from("flame.svg"));
        eprintln!(
            "rprobe flamegraph: wrote {} ({} stacks of {event})",
            path.display(),
            lines.len()
        );
    }
    writer.flush()?;
    Ok(())
}

/// Where a pass gets the kernel symbols.
enum Kernel<'s> {
    /// Loaded already (or none to load).
    Now(Option<KernelSymbols>),
    /// Being loaded: kernel frames are named after the pass.
    Later(std::thread::ScopedJoinHandle<'s, Option<KernelSymbols>>),
}

/// What a pass gave.
enum Folded {
    Done(Folder),
    /// The kernel maps changed after a kernel frame: run again with these symbols.
    Again(Option<KernelSymbols>),
}

/// One pass over the file: its stacks folded.
fn fold(
    args: &FlamegraphArgs,
    bytes: &[u8],
    home: &Option<String>,
    kernel: Kernel<'_>,
) -> Result<Folded> {
    let (now, loader) = match kernel {
        Kernel::Now(k) => (k, None),
        Kernel::Later(h) => (None, Some(h)),
    };
    let mut session =
        Session::new(bytes, now).with_context(|| format!("{}", args.input.display()))?;
    if let Some(e) = &args.event {
        if !session.evsels.iter().any(|ev| &ev.name == e) {
            let names: Vec<&str> = session.evsels.iter().map(|e| e.name.as_str()).collect();
            bail!(
                "--event {e}: the file has no such event; it has {}",
                names.join(", ")
            );
        }
    }
    let mut folder = Folder::new(FoldOptions {
        event: args.event.clone(),
        include_pid: args.pid,
        include_tid: args.tid,
    });
    let opts = ScriptOptions {
        home: home.clone(),
        ..ScriptOptions::default()
    };
    let files = MappedFiles;
    let plan = script::plan(&session.evsels, &opts).map_err(anyhow::Error::msg)?;
    let mut sink = std::io::sink();
    let mut s = Script::new(&mut sink, &session.evsels, plan, opts, &files);
    let defer = loader.is_some();
    // Each distinct frame (by what it prints as: DSO and address) is symbolized and named
    // once; each distinct stack of frame ids under one root is counted, and joined into a
    // line once after the pass. Frames outside the sample's own maps (the kernel's) are
    // named after the pass when kallsyms is still loading: `pending`, by (cpumode, ip,
    // java, unwound).
    let mut frame_ids: FxHashMap<((u32, u64), bool, bool), u32> = FxHashMap::default();
    type RawKey = (usize, (u64, u64), u16, u64, bool, bool);
    let mut raw_ids: FxHashMap<RawKey, u32> = FxHashMap::default();
    let mut names: Vec<Vec<String>> = Vec::new();
    type PendingKey = (u16, u64, bool, bool);
    let mut pending_ids: FxHashMap<PendingKey, u32> = FxHashMap::default();
    let mut pending: Vec<(u32, PendingKey)> = Vec::new();
    let mut kernel_gen: Option<u64> = None;
    let mut roots: FxHashMap<i32, (i32, Box<str>, u32)> = FxHashMap::default();
    let mut root_names: Vec<String> = Vec::new();
    let mut root_ids: FxHashMap<String, u32> = FxHashMap::default();
    // Stacks (root id, frame ids) and their (weight, samples).
    let mut stacks: FxHashMap<Box<[u32]>, usize> = FxHashMap::default();
    let mut counts: Vec<(u64, u64)> = Vec::new();
    type ChainKey = (usize, (u64, u64), u32, u16);
    let mut chains: FxHashMap<ChainKey, FxHashMap<Box<[u8]>, usize>> = FxHashMap::default();
    let mut key: Vec<u32> = Vec::new();
    session.run(&mut |m, evsels, e: Event<'_>| {
        let Event::Sample {
            evsel,
            sample,
            misc,
        } = e
        else {
            return Ok(());
        };
        let ev = &evsels[evsel];
        if ev.is_tracking() {
            return Ok(());
        }
        if !folder.wants(&ev.name) {
            folder.skipped += 1;
            return Ok(());
        }
        let count = ev.weight(&sample);
        let thread = m.findnew(sample.pid, sample.tid);
        let maps = thread.maps;
        let root = match roots.get(&sample.tid) {
            Some((pid, comm, id)) if *pid == sample.pid && **comm == *thread.comm => *id,
            _ => {
                let comm = thread.comm.clone();
                let root = folder.root(&comm, sample.pid, sample.tid);
                let next = root_names.len() as u32;
                let id = *root_ids.entry(root.clone()).or_insert(next);
                if id == next {
                    root_names.push(root);
                }
                roots.insert(sample.tid, (sample.pid, comm, id));
                id
            }
        };
        let java = root_names[root as usize].starts_with("java");
        key.clear();
        key.push(root);
        // A DWARF sample's frames: its kernel callchain and the unwound user frames.
        let mut sample = sample;
        let unwound = s.unwound_chain(m, maps, ev, &sample).map(<[u8]>::to_vec);
        if let Some(u) = &unwound {
            sample.callchain = Some(u);
        }
        let unwound_from = if unwound.is_some() {
            s.unwound_from()
        } else {
            usize::MAX
        };
        let gens = (
            m.maps.get(maps).map_or(0, Maps::generation),
            m.kernel.generation(),
        );
        // A recorded chain seen before under the same maps and root folds to the same
        // stack: one lookup instead of one per frame.
        let lone = sample.ip.to_ne_bytes();
        let chain: &[u8] = match sample.callchain {
            Some(c) if !c.is_empty() => c,
            _ => &lone,
        };
        let chain_key = (
            maps,
            gens,
            root,
            misc & crate::perf::abi::misc::CPUMODE_MASK,
        );
        if unwound.is_none() {
            if let Some(&i) = chains.get(&chain_key).and_then(|c| c.get(chain)) {
                let c: &mut (u64, u64) = &mut counts[i];
                c.0 = c.0.saturating_add(count);
                c.1 += 1;
                return Ok(());
            }
        }
        let mut all_cached = true;
        for (i, (mode, ip)) in s.frame_ips(&sample, misc).into_iter().enumerate() {
            let unwound = i >= unwound_from;
            // The same ip under the same maps names the same (two map lookups saved).
            let raw = (maps, gens, mode, ip, java, unwound);
            if let Some(&id) = raw_ids.get(&raw) {
                key.push(id);
                continue;
            }
            if defer && !s.in_user_maps(m, maps, mode, ip) {
                let pk = (mode, ip, java, unwound);
                let id = *pending_ids.entry(pk).or_insert_with(|| {
                    kernel_gen.get_or_insert(m.kernel.generation());
                    names.push(Vec::new());
                    pending.push((names.len() as u32 - 1, pk));
                    names.len() as u32 - 1
                });
                raw_ids.insert(raw, id);
                key.push(id);
                continue;
            }
            let fk = (s.frame_key(m, maps, mode, ip), java, unwound);
            let (id, cached) = match frame_ids.get(&fk) {
                Some(&id) => (id, true),
                None => {
                    let (syms, cacheable) = s.frame_symbols(m, maps, mode, ip, unwound);
                    let id = names.len() as u32;
                    names.push(folded_names(&syms, java));
                    if cacheable {
                        frame_ids.insert(fk, id);
                    }
                    (id, cacheable)
                }
            };
            if cached {
                raw_ids.insert(raw, id);
            } else {
                all_cached = false;
            }
            key.push(id);
        }
        let i = match stacks.get(&key[..]) {
            Some(&i) => i,
            None => {
                counts.push((0, 0));
                stacks.insert(key.as_slice().into(), counts.len() - 1);
                counts.len() - 1
            }
        };
        let c = &mut counts[i];
        c.0 = c.0.saturating_add(count);
        c.1 += 1;
        if unwound.is_none() && all_cached {
            chains.entry(chain_key).or_default().insert(chain.into(), i);
        }
        Ok(())
    })?;
    if let Some(loader) = loader {
        let k = loader
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        if kernel_gen.is_some_and(|g| g != session.machine.kernel.generation()) {
            return Ok(Folded::Again(k));
        }
        if let Some(k) = k {
            session.machine.set_kernel_symbols(k.map, k.text);
        }
        for (id, (mode, ip, java, unwound)) in pending {
            let syms = s.kernel_frame_symbols(&mut session.machine, mode, ip, unwound);
            names[id as usize] = folded_names(&syms, java);
        }
    }
    drop(s);
    for (key, i) in stacks {
        let (count, samples) = counts[i];
        let frames = key[1..].iter().map(|&f| names[f as usize].as_slice());
        match join_stack(&root_names[key[0] as usize], frames) {
            Some(line) => folder.add_folded(line, count),
            None => folder.empty += samples,
        }
    }
    Ok(Folded::Done(folder))
}

/// One frame's folded names: one, or several in inlined code (given innermost first, so
/// folded root-first they come outermost first).
#[allow(clippy::type_complexity)]
fn folded_names(syms: &[(Option<Box<str>>, Option<Box<str>>)], java: bool) -> Vec<String> {
    let mut folded = Vec::new();
    for (sym, dso) in syms.iter().rev() {
        let f = FrameName {
            sym: sym.as_deref(),
            dso: dso.as_deref(),
        };
        folded.extend(frame_names(f, java));
    }
    folded
}

/// The callchain of a sample without one: its ip, in the sample's cpumode (what
/// `perf script` prints on the event line then), as callchain bytes.
pub fn lone_frame(sample: &crate::perf::reader::records::Sample<'_>, cpumode: u16) -> [u8; 16] {
    let marker = if cpumode & misc::CPUMODE_MASK == misc::KERNEL {
        context::KERNEL
    } else {
        context::USER
    };
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&marker.to_ne_bytes());
    b[8..].copy_from_slice(&sample.ip.to_ne_bytes());
    b
}

/// A sample's callchain bytes, or [`lone_frame`] without one.
pub fn sample_chain(sample: &crate::perf::reader::records::Sample<'_>, cpumode: u16) -> Vec<u8> {
    match sample.callchain {
        Some(c) if !c.is_empty() => c.to_vec(),
        _ => lone_frame(sample, cpumode).to_vec(),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::perf::abi::{feature, flag, perf_type, sample, sw, EventAttr};
    use crate::perf::reader::testfile::{file, rec};
    use crate::perf::synth::{self, SampleId};

    const KALLSYMS: &str = "ffffffff81000000 T _text\nffffffff81000100 T start_kernel\n\
        ffffffff81000200 T do_work\nffffffff81800000 T init_late\n\
        ffffffffc0001000 t ext4_fn\t[ext4]\n";

    /// cpu-clock with callchains and the trailer [`synth`] writes.
    pub(in crate::cli) fn attr() -> EventAttr {
        EventAttr {
            type_: perf_type::SOFTWARE,
            size: 128,
            config: sw::CPU_CLOCK,
            sample_period: 1,
            sample_type: sample::IDENTIFIER
                | sample::IP
                | sample::TID
                | sample::TIME
                | sample::CPU
                | sample::PERIOD
                | sample::CALLCHAIN,
            flags: flag::SAMPLE_ID_ALL,
            ..EventAttr::default()
        }
    }

    /// A kernel-mode sample of pid 7 at `time` whose callchain is `ips` (leaf first).
    fn sample_at(time: u64, ips: &[u64]) -> Vec<u8> {
        sample_in(time, misc::KERNEL, ips)
    }

    /// A sample of pid 7 at `time` in `cpumode` whose callchain is `ips` (leaf first).
    pub(in crate::cli) fn sample_in(time: u64, cpumode: u16, ips: &[u64]) -> Vec<u8> {
        let marker = if cpumode == misc::KERNEL {
            context::KERNEL
        } else {
            context::USER
        };
        let mut b = Vec::new();
        for v in [1u64, ips[0]] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        b.extend_from_slice(&7u32.to_ne_bytes());
        b.extend_from_slice(&7u32.to_ne_bytes());
        b.extend_from_slice(&time.to_ne_bytes());
        b.extend_from_slice(&0u64.to_ne_bytes()); // cpu, res
        b.extend_from_slice(&1u64.to_ne_bytes()); // period
        b.extend_from_slice(&(ips.len() as u64 + 1).to_ne_bytes());
        b.extend_from_slice(&marker.to_ne_bytes());
        for ip in ips {
            b.extend_from_slice(&ip.to_ne_bytes());
        }
        rec(crate::perf::abi::record::SAMPLE, cpumode, &b)
    }

    /// Tracing data that holds only kallsyms (perf's `-a` recordings of tracepoints do).
    fn tracing_with_kallsyms() -> Vec<u8> {
        let mut b = crate::perf::tracing_data::encode(&Default::default(), 4096);
        b.truncate(b.len() - 16); // kallsyms size, printk size, saved_cmdlines size
        b.extend_from_slice(&(KALLSYMS.len() as u32).to_ne_bytes());
        b.extend_from_slice(KALLSYMS.as_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&0u64.to_ne_bytes());
        b
    }

    fn folded(data: &[u8]) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("perf.data");
        let f = file(
            &[(attr(), vec![1])],
            data,
            &[(feature::TRACING_DATA, tracing_with_kallsyms())],
        );
        std::fs::write(&path, f).expect("write");
        let args = FlamegraphArgs {
            input: path,
            output: None,
            folded: true,
            event: None,
            pid: false,
            tid: false,
            title: String::new(),
        };
        let mut out = Vec::new();
        run(&args, &mut out).expect("flamegraph");
        String::from_utf8(out).expect("utf-8")
    }

    fn kernel_map(out: &mut Vec<u8>) {
        let id = SampleId {
            id: 1,
            ..SampleId::default()
        };
        synth::kernel_mmap(out, 0xffffffff81000000, 0xffffffff81100000, &id);
    }

    #[test]
    fn kernel_frames_named_after_the_pass_span_the_symbols() {
        let mut d = Vec::new();
        kernel_map(&mut d);
        d.extend(sample_at(10, &[0xffffffff81000210, 0xffffffff81000110]));
        // Past the recorded length: only the map stretched to the symbols holds it.
        d.extend(sample_at(20, &[0xffffffff81800010, 0xffffffff81000110]));
        d.extend(sample_at(30, &[0xffffffff81000210, 0xffffffff81000110]));
        assert_eq!(
            folded(&d),
            ":7;start_kernel;do_work 2\n:7;start_kernel;init_late 1\n"
        );
    }

    #[test]
    fn kernel_maps_changed_after_a_kernel_frame_fold_again() {
        let mut d = Vec::new();
        kernel_map(&mut d);
        d.extend(sample_at(10, &[0xffffffff81000210, 0xffffffff81000110]));
        // A module mapped over do_work between two samples of the same ips: the first
        // is do_work's, the second the module's.
        let id = SampleId {
            pid: u32::MAX,
            time: 15,
            id: 1,
            ..SampleId::default()
        };
        let module = "/lib/modules/6.1/kernel/foo.ko";
        synth::mmap(
            &mut d,
            misc::KERNEL,
            u32::MAX,
            0,
            0xffffffff81000200,
            0x100,
            0,
            module,
            &id,
        );
        d.extend(sample_at(20, &[0xffffffff81000210, 0xffffffff81000110]));
        let got = folded(&d);
        assert_eq!(
            got,
            ":7;start_kernel;[[foo]] 1\n:7;start_kernel;do_work 1\n"
        );
    }
}

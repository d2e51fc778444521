//! `rprobe flamegraph`: a perf.data file's stacks folded in-process (the folded format of
//! `perf script | inferno-collapse-perf`) and drawn as an SVG with inferno.

use super::script::{kernel_symbols, map_input, MappedFiles};
use crate::perf::abi::{context, misc};
use crate::replay::flame::{frame_names, join_stack, FoldOptions, Folder, FrameName};
use crate::replay::hash::FxHashMap;
use crate::replay::script::{self, Script, ScriptOptions};
use crate::replay::session::{Event, Session};
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
    let mut session = Session::new(bytes, kernel_symbols(bytes, home.as_deref()))
        .with_context(|| format!("{}", args.input.display()))?;
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
        home,
        ..ScriptOptions::default()
    };
    let files = MappedFiles;
    let plan = script::plan(&session.evsels, &opts).map_err(anyhow::Error::msg)?;
    let mut sink = std::io::sink();
    let mut s = Script::new(&mut sink, &session.evsels, plan, opts, &files);
    // Each distinct frame (by what it prints as: DSO and address) is symbolized and named
    // once; each distinct stack of frame ids under one root is joined into a line once.
    let mut frame_ids: FxHashMap<((u32, u64), bool, bool), u32> = FxHashMap::default();
    let mut names: Vec<Vec<String>> = Vec::new();
    let mut roots: FxHashMap<i32, (i32, Box<str>, u32)> = FxHashMap::default();
    let mut root_names: Vec<String> = Vec::new();
    let mut root_ids: FxHashMap<String, u32> = FxHashMap::default();
    let mut stacks: FxHashMap<Box<[u32]>, usize> = FxHashMap::default();
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
        for (i, (mode, ip)) in s.frame_ips(&sample, misc).into_iter().enumerate() {
            let fk = (s.frame_key(m, maps, mode, ip), java, i >= unwound_from);
            let id = match frame_ids.get(&fk) {
                Some(&id) => id,
                None => {
                    // One frame, or several in inlined code (innermost first, so folded
                    // root-first they come outermost first).
                    let (syms, cacheable) = s.frame_symbols(m, maps, mode, ip, fk.2);
                    let mut folded = Vec::new();
                    for (sym, dso) in syms.iter().rev() {
                        let f = FrameName {
                            sym: sym.as_deref(),
                            dso: dso.as_deref(),
                        };
                        folded.extend(frame_names(f, java));
                    }
                    let id = names.len() as u32;
                    names.push(folded);
                    if cacheable {
                        frame_ids.insert(fk, id);
                    }
                    id
                }
            };
            key.push(id);
        }
        let id = match stacks.get(&key[..]) {
            Some(&id) => id,
            None => {
                let frames = key[1..].iter().map(|&f| names[f as usize].as_slice());
                let id = match join_stack(&root_names[root as usize], frames) {
                    Some(line) => folder.intern(line),
                    None => usize::MAX,
                };
                stacks.insert(key.as_slice().into(), id);
                id
            }
        };
        if id == usize::MAX {
            folder.empty += 1;
        } else {
            folder.add_to(id, count);
        }
        Ok(())
    })?;
    drop(s);
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

//! `rprobe flamegraph`: a perf.data file's stacks folded in-process (the folded format of
//! `perf script | inferno-collapse-perf`) and drawn as an SVG with inferno.

use super::script::{kernel_symbols, map_input, MappedFiles};
use crate::perf::abi::{context, misc};
use crate::replay::flame::{fold_stack, FoldOptions, Folder, FrameName};
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
    // Samples with the same comm and callchain in the same address space fold to the same
    // line: look that up first, with no allocation per sample.
    let mut ids: FxHashMap<usize, FxHashMap<Box<str>, StackIds>> = FxHashMap::default();
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
        let maps = m.findnew(sample.pid, sample.tid).maps;
        let lone;
        let unwound = s.unwound_chain(m, maps, ev, &sample).map(<[u8]>::to_vec);
        let chain: &[u8] = match (&unwound, sample.callchain) {
            (Some(u), _) => u,
            (None, Some(c)) if !c.is_empty() => c,
            _ => {
                lone = lone_frame(&sample, misc);
                &lone
            }
        };
        let thread = m.findnew(sample.pid, sample.tid);
        let by_comm = ids.entry(maps).or_default();
        if let Some(&id) = by_comm.get(&*thread.comm).and_then(|c| c.get(chain)) {
            folder.add_to(id, count);
            return Ok(());
        }
        let comm: Box<str> = thread.comm.clone();
        let root = folder.root(&comm, sample.pid, sample.tid);
        let mut with_chain = sample;
        with_chain.callchain = Some(chain);
        let frames = s.frames(m, maps, &with_chain);
        let names = frames.iter().map(|(_, sym, dso)| FrameName {
            sym: sym.as_ref().map(|(n, _)| &**n),
            dso: dso.as_deref(),
        });
        let id = match fold_stack(&root, root.starts_with("java"), names) {
            Some(line) => folder.intern(line),
            None => {
                folder.empty += 1;
                usize::MAX
            }
        };
        ids.entry(maps)
            .or_default()
            .entry(comm)
            .or_default()
            .insert(chain.to_vec(), id);
        folder.add_to(id, count);
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

/// Folded-stack ids by callchain bytes, for one comm in one address space.
type StackIds = FxHashMap<Vec<u8>, usize>;

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

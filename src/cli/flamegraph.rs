//! `rprobe flamegraph`: a perf.data file's stacks folded in-process (the folded format of
//! `perf script | inferno-collapse-perf`) and drawn as an SVG with inferno.

use super::script::{kernel_symbols, MappedFiles};
use crate::perf::abi::{context, misc, perf_type, sw};
use crate::replay::flame::{fold_stack, FoldOptions, Folder, FrameName};
use crate::replay::script::{self, Script, ScriptOptions};
use crate::replay::session::{Event, Session};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::collections::HashMap;
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
    let map = crate::sys::map_file(&args.input).with_context(|| {
        format!(
            "cannot read {}; record one with `rprobe record -g` or `perf record -g`, or name it with -i",
            args.input.display()
        )
    })?;
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
    // Samples with the same callchain in the same address space fold to the same line.
    let mut folded: HashMap<(usize, Vec<u8>), String> = HashMap::new();
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
        let a = &ev.attr;
        if a.type_ == perf_type::SOFTWARE && a.config == sw::DUMMY {
            return Ok(());
        }
        if !folder.wants(&ev.name) {
            folder.skipped += 1;
            return Ok(());
        }
        let count = if ev.is_tracepoint() || !ev.attr.samples(crate::perf::abi::sample::PERIOD) {
            1
        } else {
            sample.period
        };
        let thread = m.findnew(sample.pid, sample.tid);
        let maps = thread.maps;
        let root = folder.root(&thread.comm.clone(), sample.pid, sample.tid);
        let key = (maps, sample_chain(&sample, misc));
        let line = match folded.get(&key) {
            Some(l) => l.clone(),
            None => {
                let mut with_chain = sample;
                with_chain.callchain = Some(&key.1);
                let frames = s.frames(m, maps, &with_chain);
                let names = frames.iter().map(|(_, sym, dso)| FrameName {
                    sym: sym.as_ref().map(|(n, _)| &**n),
                    dso: dso.as_deref(),
                });
                let java = root.starts_with("java");
                let Some(body) = fold_stack("", java, names) else {
                    folder.empty += 1;
                    return Ok(());
                };
                let l = format!("{root}{body}");
                folded.insert(key, l.clone());
                l
            }
        };
        folder.add_folded(line, count);
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

/// A sample's callchain bytes, or, without one, a one-frame chain of the sampled ip in the
/// sample's cpumode (what `perf script` prints on the event line then).
pub fn sample_chain(sample: &crate::perf::reader::records::Sample<'_>, cpumode: u16) -> Vec<u8> {
    match sample.callchain {
        Some(c) if !c.is_empty() => c.to_vec(),
        _ => {
            let marker = if cpumode & misc::CPUMODE_MASK == misc::KERNEL {
                context::KERNEL
            } else {
                context::USER
            };
            [marker, sample.ip]
                .iter()
                .flat_map(|v| v.to_ne_bytes())
                .collect()
        }
    }
}

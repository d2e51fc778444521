//! `rprobe trace`: probe, stream, clean up. Each argument is a probe spec (the language of
//! `rprobe add`) or an existing event; probes live in this process's session group
//! `rprobe_<pid>` and are removed on exit, Ctrl-C, SIGTERM, SIGHUP and a closed output pipe.
//! Events stream through perf ring buffers (so several tracers can watch one event at once)
//! and print in the `rprobe script` format, flushed after every drain of the rings.
//!
//! Decoding reuses the replay session: an in-memory perf.data holding only the attrs, ids
//! and tracing data gives the events their names and formats, and each drain is fed to it as
//! a batch, in time order within the batch (records of two CPUs that straddle a drain may
//! come out of order by less than one drain interval).

use super::live::{Live, LiveArgs, Step};
use super::script::MappedFiles;
use crate::replay::script::Script;
use crate::replay::session::Event;
use anyhow::{Context, Result};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  rprobe trace 'vfs_read file->f_path.dentry->d_name.name:string'   which files are read
  rprobe trace -x /bin/bash 'readline%return +0($retval):string'     what people type
  rprobe trace -x ./app 'work r->id' -- ./app --once                 one run of a program
  rprobe trace -x python3 'sdt_python:function__entry arg1:string arg2:string' -- python3 app.py
  rprobe trace -p 1234 sdt_libstdcxx:throw                           USDT in a process's library
  rprobe trace sched:sched_process_exec -g --duration 10             existing events, stacks
  rprobe trace -p 1234 -x /usr/lib/x86_64-linux-gnu/libc.so.6 'malloc size=arg1:u64' | grep size=4096";

/// Trace probe specs or existing events live, and clean up after.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct TraceArgs {
    #[command(flatten)]
    live: LiveArgs,
    /// Write the events to this file instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Probe specs (as `rprobe add` takes them) or existing events (GROUP:EVENT).
    #[arg(value_name = "SPEC_OR_EVENT", required = true)]
    items: Vec<String>,
    /// A command to trace (with its children); tracing stops when it exits.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

pub fn run(args: &TraceArgs, out: &mut dyn Write) -> Result<()> {
    let spec = args.live.spec("trace", &args.items, &args.command)?;
    let mut live = Live::open(&spec)?;

    // The decoder.
    let file = live.header()?;
    let (mut decoder, sopts, plan) = super::live::decoder(&file)?;
    let files = MappedFiles;
    let mut dest: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(
            std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?,
        ),
        None => Box::new(out),
    };

    let mut script = Script::new(&mut dest, &decoder.evsels, plan, sopts, &files);
    let mut shown = 0u64;
    macro_rules! feed {
        ($bytes:expr) => {
            decoder.feed($bytes, &mut |m, ev, e| {
                emit(&mut script, &mut shown, m, ev, e)
            })
        };
    }
    feed!(&live.synth())?;

    let start = live.start("Tracing")?;
    let (outcome, result) = live.run(start, None, &mut |step| match step {
        Step::Records(buf) => feed!(buf).and_then(|()| script.flush()),
        Step::Tick => Ok(()),
    });
    drop(script);
    let closed = live.close();
    eprintln!(
        "rprobe trace: {shown} events, lost {}{}",
        outcome.lost,
        outcome.stop.map(|r| format!(" ({r})")).unwrap_or_default()
    );
    closed?;
    result?;
    match outcome.tail {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(Into::into),
    }
}

/// Prints one decoded event (the tracking event's samples are not shown).
fn emit<W: Write>(
    script: &mut Script<'_, W>,
    shown: &mut u64,
    m: &mut crate::replay::machine::Machine,
    ev: &[crate::replay::session::Evsel],
    e: Event<'_>,
) -> std::io::Result<()> {
    if let Event::Sample { evsel, .. } = &e {
        if ev[*evsel].is_tracking() {
            return Ok(());
        }
        *shown += 1;
    }
    script.event(m, ev, e)
}

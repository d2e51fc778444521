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

use super::add::resolve_defs;
use super::env;
use super::record::{explain_open, parse_ids, resolve_event};
use super::script::{kernel_symbols, MappedFiles};
use crate::perf::attr::EventKind;
use crate::perf::recorder::{self, EventSpec, Recorder, RecorderOptions, Scope};
use crate::perf::ring;
use crate::perf::tracing_data;
use crate::perf::writer::{Features, PerfDataWriter};
use crate::probes::session::ProbeSession;
use crate::probes::{self, ResolveOptions};
use crate::replay::script::{self as script_mod, Script, ScriptOptions};
use crate::replay::session::{Event, Session};
use crate::sys::perf_event::{self as pe, Child};
use crate::sys::signals::{Stop, StopSignals};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
    /// Probe specs name functions of this binary or library (uprobes) instead of the kernel.
    #[arg(short = 'x', long = "exec", value_name = "PATH")]
    exec: Option<String>,
    /// Only these processes (and threads they create later), comma-separated.
    #[arg(short = 'p', long = "pid", value_name = "PID")]
    pid: Option<String>,
    /// The whole system (the default without -p or a command).
    #[arg(short = 'a', long = "all-cpus")]
    all_cpus: bool,
    /// Kernel and user callchains (frame pointers).
    #[arg(short = 'g')]
    callgraph: bool,
    /// A tracefs filter expression on every traced event (`len > 100`).
    #[arg(long = "filter", value_name = "EXPR")]
    filter: Option<String>,
    /// Stop after this many seconds.
    #[arg(long = "duration", value_name = "SECS")]
    duration: Option<f64>,
    /// Write the events to this file instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Ring buffer data pages per CPU (a power of two).
    #[arg(
        short = 'm',
        long = "mmap-pages",
        default_value_t = 64,
        value_name = "PAGES"
    )]
    pages: usize,
    /// Probe specs (as `rprobe add` takes them) or existing events (GROUP:EVENT).
    #[arg(value_name = "SPEC_OR_EVENT", required = true)]
    items: Vec<String>,
    /// A command to trace (with its children); tracing stops when it exits.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Whether `item` names an existing event (`group:event`, no spaces, no probe syntax).
/// A USDT name (`sdt_python:function__*`) is an event only when it exists, or as a glob when
/// no binary is given (`binary`) to look it up in.
fn is_event_name(item: &str, tracefs: &crate::tracefs::Tracefs, binary: bool) -> bool {
    match item.split_once(':') {
        Some((g, e)) if !item.contains([' ', '=', '%', '+', '@', ';']) => {
            let glob = g.contains('*') || e.contains('*');
            tracefs.event_exists(g, e) || (glob && !(binary && g.starts_with("sdt_")))
        }
        _ => false,
    }
}

/// Resolve `specs` into the session's group and add them (`tool` names the command in
/// messages): user probes in `exec`, or for USDT specs with only `-p`, in the file the first
/// process of `pid` maps that holds them. Returns the definitions added.
pub(super) fn add_session_probes(
    session: &mut ProbeSession,
    tracefs: &crate::tracefs::Tracefs,
    specs: &mut [probes::ProbeSpec],
    exec: Option<&str>,
    pid: Option<&str>,
    tool: &str,
) -> Result<Vec<probes::ProbeDef>> {
    for s in specs.iter_mut() {
        if s.group.is_some() {
            bail!("'{}': probes of `rprobe {tool}` live in its own group; drop the GROUP: prefix (or create it with `rprobe add` and name the event)", s.text);
        }
        s.group = Some(session.group().to_string());
    }
    let features = tracefs.features().ok();
    let mut opts = ResolveOptions {
        existing: Default::default(),
        force: false,
        caps: features.as_ref().map(env::caps_from).unwrap_or_default(),
    };
    // -p PID without -x: USDT probes are looked up in the files the process maps.
    let exec = match (exec, pid) {
        (Some(x), _) => Some(x.to_string()),
        (None, Some(p)) if specs.iter().any(probes::sdt::is_sdt) => {
            let pid = parse_ids(p, "p")?.first().copied().unwrap_or(0);
            let path = super::sdt::file_of_pid(pid as u32, specs)?;
            Some(path.to_string_lossy().into_owned())
        }
        (None, _) => None,
    };
    let defs = resolve_defs(exec.as_deref(), None, None, specs, &mut opts, Some(tracefs))?;
    let defs: Vec<_> = defs.into_iter().map(|(_, d)| d).collect();
    session.add(&defs)?;
    Ok(defs)
}

/// An in-memory perf.data with the attrs, ids and tracing data of the open events and no
/// records: the replay session reads names and formats from it.
fn session_file(
    recorder: &Recorder,
    tracefs: &crate::tracefs::Tracefs,
    events: &[(String, String)],
) -> Result<Vec<u8>> {
    let tdata = if events.is_empty() {
        None
    } else {
        let texts = tracing_data::read_texts(tracefs.root(), events)?;
        Some(tracing_data::encode(&texts, pe::page_size() as u32))
    };
    let features = Features {
        tracing_data: tdata,
        ..Features::default()
    };
    let file = crate::sys::memory_file("rprobe-trace-header")?;
    let mut w = PerfDataWriter::new(file.try_clone()?, recorder.attrs(), &features)?;
    w.checkpoint()?;
    drop(w);
    use std::io::{Read, Seek};
    let mut f = file;
    f.seek(std::io::SeekFrom::Start(0))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    Ok(bytes)
}

pub fn run(args: &TraceArgs, out: &mut dyn Write) -> Result<()> {
    if args.pages == 0 || !args.pages.is_power_of_two() {
        bail!(
            "-m {}: the ring buffer size must be a power of two number of pages",
            args.pages
        );
    }
    if let Some(d) = args.duration {
        if !(d.is_finite() && d > 0.0) {
            bail!("--duration {d}: give a positive number of seconds");
        }
    }
    if !args.command.is_empty() && args.pid.is_some() {
        bail!("a command cannot be combined with -p; trace it alone (or with -a for the whole system while it runs)");
    }
    let tracefs = env::open_tracefs()?;

    // Split the arguments: existing events, and specs to probe (parsed before anything is
    // created, so a bad spec leaves nothing behind).
    let mut event_names = Vec::new();
    let mut specs = Vec::new();
    for item in &args.items {
        if is_event_name(item, &tracefs, args.exec.is_some() || args.pid.is_some()) {
            event_names.push(item.clone());
        } else {
            let spec = probes::parse_spec(item)
                .with_context(|| format!("bad probe spec '{}'", item.escape_debug()))?;
            specs.push(spec);
        }
    }

    // Probes in this process's session group (stale groups of dead rprobes are swept).
    let me = std::process::id();
    let (mut session, sweep) =
        ProbeSession::start(&tracefs, me, &|p| crate::sys::spawn::process_exists(p))?;
    for (kind, group, n) in &sweep.groups {
        eprintln!(
            "rprobe trace: removed {n} leftover {} event(s) of {group}",
            kind.file_name()
        );
    }
    if !specs.is_empty() {
        add_session_probes(
            &mut session,
            &tracefs,
            &mut specs,
            args.exec.as_deref(),
            args.pid.as_deref(),
            "trace",
        )?;
    }

    // The events to open.
    let mut ts = Some(tracefs.clone());
    let mut kinds: Vec<EventKind> = session
        .events()
        .iter()
        .map(|e| EventKind::Tracepoint {
            group: e.group.clone(),
            event: e.event.clone(),
            id: e.id,
        })
        .collect();
    for name in &event_names {
        for k in resolve_event(name, &mut ts)? {
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
    }
    let specs_open: Vec<EventSpec> = kinds
        .iter()
        .map(|k| EventSpec {
            kind: k.clone(),
            filter: args.filter.clone(),
        })
        .collect();
    let tp: Vec<(String, String)> = kinds
        .iter()
        .filter_map(|k| match k {
            EventKind::Tracepoint { group, event, .. } => Some((group.clone(), event.clone())),
            _ => None,
        })
        .collect();

    // The target.
    let signals = StopSignals::block().context("cannot set up signal handling")?;
    let mut child = if args.command.is_empty() {
        None
    } else {
        Some(
            Child::spawn_parked(&args.command)
                .with_context(|| format!("cannot start '{}'", args.command.join(" ")))?,
        )
    };
    let (scope, watched) = match (&child, &args.pid) {
        (Some(_), _) if args.all_cpus => (Scope::AllCpus, Vec::new()),
        (Some(c), _) => (Scope::Command(c.pid), Vec::new()),
        (None, Some(p)) => {
            let pids = parse_ids(p, "p")?;
            let mut threads = Vec::new();
            for &pid in &pids {
                let t = recorder::threads_of(pid);
                if t.is_empty() {
                    bail!("-p {pid}: no such process");
                }
                threads.extend(t);
            }
            (Scope::Tasks(threads), pids)
        }
        (None, None) => (Scope::AllCpus, Vec::new()),
    };
    let opts = RecorderOptions {
        callchain: args.callgraph,
        sampling: None,
        pages: args.pages,
        user_only: false,
    };
    let mut recorder = Recorder::open(&specs_open, &scope, &opts)
        .map_err(|e| explain_open(&e, &specs_open, Some(&tracefs), specs_open.len() + 1))?;

    // The decoder.
    let file = session_file(&recorder, &tracefs, &tp)?;
    let home = std::env::var("HOME").ok();
    let mut decoder = Session::new(&file, kernel_symbols(&file, home.as_deref()))
        .map_err(|e| anyhow!("cannot set up decoding: {e}"))?;
    let sopts = ScriptOptions {
        home,
        ..ScriptOptions::default()
    };
    let plan = script_mod::plan(&decoder.evsels, &sopts).map_err(anyhow::Error::msg)?;
    let files = MappedFiles;
    let mut dest: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(
            std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?,
        ),
        None => Box::new(out),
    };
    let names: Vec<String> = kinds.iter().map(EventKind::name).collect();
    let what = match (&child, &args.pid) {
        (Some(_), _) => format!("'{}'", args.command.join(" ")),
        (None, Some(p)) => format!("pid {p}"),
        (None, None) => "the whole system".to_string(),
    };

    // Synthesized tasks and maps, so comms and user frames resolve.
    let sid = recorder.synth_id();
    let mut synth = Vec::new();
    recorder::kernel_map(&mut synth, &sid);
    let pids = match &scope {
        Scope::AllCpus => recorder::all_pids(),
        Scope::Tasks(_) => watched.clone(),
        Scope::Command(p) => vec![*p],
    };
    recorder::synthesize_tasks(&mut synth, &pids, &sid);

    let mut script = Script::new(&mut dest, &decoder.evsels, plan, sopts, &files);
    let mut shown = 0u64;
    macro_rules! feed {
        ($bytes:expr) => {
            decoder.feed($bytes, &mut |m, ev, e| {
                emit(&mut script, &mut shown, m, ev, e)
            })
        };
    }
    feed!(&synth)?;

    let start = Instant::now();
    if !matches!(scope, Scope::Command(_)) {
        recorder.enable().context("cannot enable the events")?;
    }
    if let Some(c) = &mut child {
        if matches!(scope, Scope::AllCpus) {
            recorder.enable().context("cannot enable the events")?;
        }
        c.go(&args.command[0]).map_err(|e| {
            anyhow!(
                "cannot run '{}': {}; check the command name and that it is executable",
                args.command[0],
                e.source
            )
        })?;
    }
    // Said once the events are enabled: from here on nothing is missed.
    eprintln!(
        "Tracing {} in {what}{}. Ctrl-C to end.",
        names.join(", "),
        args.duration
            .map(|d| format!(" for {d} s"))
            .unwrap_or_default()
    );
    let deadline = args.duration.map(|d| start + Duration::from_secs_f64(d));
    let mut fds = recorder.poll_fds();
    fds.push(signals.raw_fd());
    let mut buf = Vec::with_capacity(1 << 20);
    let mut stop_reason: Option<String> = None;
    let mut lost = 0u64;
    let mut result: Result<()> = Ok(());
    while stop_reason.is_none() {
        let timeout = deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(200))
            .min(Duration::from_millis(200));
        let ready = pe::poll_in(&fds, timeout.as_millis() as i32).context("poll")?;
        while let Ok(Some(sig)) = signals.read() {
            if sig != Stop::Child {
                stop_reason = Some(sig.name().to_string());
            }
        }
        if let Some(c) = &mut child {
            if c.wait(false).is_some() {
                stop_reason = Some("the command exited".into());
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            stop_reason = Some("the duration ended".into());
        }
        if !watched.is_empty() && !watched.iter().any(|&p| recorder::task_alive(p)) {
            stop_reason = Some("the traced processes exited".into());
        }
        // Rings whose tasks are gone report POLLHUP forever: stop polling them.
        let sig_fd = fds.pop();
        let mut i = 0;
        fds.retain(|_| {
            i += 1;
            !ready.get(i - 1).is_some_and(|r| r.hangup)
        });
        fds.extend(sig_fd);
        buf.clear();
        let _ = recorder.drain(&mut buf);
        lost += count_lost(&buf);
        if let Err(e) = feed!(&buf).and_then(|()| script.flush()) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                stop_reason = Some("the output closed".into());
            } else {
                result = Err(e.into());
                break;
            }
        }
    }
    recorder.disable();
    buf.clear();
    let _ = recorder.drain(&mut buf);
    lost += count_lost(&buf);
    let tail = feed!(&buf).and_then(|()| script.flush());
    drop(script);
    if let Some(c) = &mut child {
        c.kill(libc::SIGTERM);
        let _ = c.wait(true);
    }
    drop(recorder);
    let closed = session.close();
    eprintln!(
        "rprobe trace: {shown} events, lost {lost}{}",
        stop_reason.map(|r| format!(" ({r})")).unwrap_or_default()
    );
    closed.context("cannot remove the session's probes")?;
    result?;
    match tail {
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

/// Records lost in a drain, from its `PERF_RECORD_LOST` records.
fn count_lost(buf: &[u8]) -> u64 {
    ring::records(buf)
        .filter(|r| r.type_ == crate::perf::abi::record::LOST)
        .filter_map(|r| crate::perf::abi::u64_at(r.bytes, 16))
        .sum()
}

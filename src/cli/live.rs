//! The live loop `trace` and `stat` share: probe specs or existing events turned into
//! events (probes in this process's session group `rprobe_<pid>`, removed on every exit),
//! the target (`-p`, `-a`, `-- CMD`), the perf ring buffers, and one loop that drains them
//! until Ctrl-C, SIGTERM, SIGHUP, the duration, the command's exit or the watched processes'
//! exit, with optional periodic ticks (`stat -i`).
//!
//! The decoding of what is drained is the caller's: [`Live::header`] gives the in-memory
//! perf.data (attrs, ids, tracing data, no records) that a replay session reads names and
//! formats from, and [`Live::synth`] the synthesized tasks and maps to feed it first.
//! `stat --bpf` opens no rings (its programs count in the kernel) but keeps the same probes,
//! target and stop conditions.

use super::add::resolve_defs;
use super::env;
use super::record::{explain_open, parse_ids, resolve_event};
use crate::perf::attr::EventKind;
use crate::perf::recorder::{self, EventSpec, Recorder, RecorderOptions, Scope};
use crate::perf::ring;
use crate::perf::tracing_data;
use crate::perf::writer::{Features, PerfDataWriter};
use crate::probes::session::ProbeSession;
use crate::probes::{self, ResolveOptions};
use crate::sys::perf_event as pe;
use crate::sys::signals::{Stop, StopSignals};
use crate::sys::spawn::HeldChild;
use crate::tracefs::Tracefs;
use anyhow::{anyhow, bail, Context, Result};
use std::time::{Duration, Instant};

/// The target and event options `trace` and `stat` share (flattened into their arguments).
#[derive(Debug, clap::Args)]
pub(super) struct LiveArgs {
    /// Probe specs name functions of this binary or library (uprobes) instead of the kernel.
    #[arg(short = 'x', long = "exec", value_name = "PATH")]
    pub exec: Option<String>,
    /// Only these processes (and threads they create later), comma-separated.
    #[arg(short = 'p', long = "pid", value_name = "PID")]
    pub pid: Option<String>,
    /// The whole system (the default without -p or a command).
    #[arg(short = 'a', long = "all-cpus")]
    pub all_cpus: bool,
    /// Kernel and user callchains (frame pointers).
    #[arg(short = 'g')]
    pub callgraph: bool,
    /// Callchain mode: `fp` (as -g) or `dwarf[,SIZE]` (user stacks of code without frame
    /// pointers, unwound from DWARF CFI as the events stream; see `rprobe record`).
    #[arg(long = "call-graph", value_name = "MODE")]
    pub call_graph: Option<String>,
    /// A tracefs filter expression on every traced event (`len > 100`).
    #[arg(long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,
    /// Stop after this many seconds.
    #[arg(long = "duration", value_name = "SECS")]
    pub duration: Option<f64>,
    /// Ring buffer data pages per CPU (a power of two).
    #[arg(
        short = 'm',
        long = "mmap-pages",
        default_value_t = 64,
        value_name = "PAGES"
    )]
    pub pages: usize,
}

impl LiveArgs {
    /// The spec of these options, for `cmd`, with the rest given.
    pub fn spec<'a>(
        &'a self,
        cmd: &'static str,
        items: &'a [String],
        command: &'a [String],
    ) -> Result<LiveSpec<'a>> {
        let (callchain, dwarf_stack) = match self.call_graph.as_deref() {
            None => (self.callgraph, 0),
            Some(m) => match super::record::parse_call_graph(m)? {
                super::record::CallGraph::Fp => (true, 0),
                super::record::CallGraph::Dwarf(size) => (false, size),
            },
        };
        Ok(LiveSpec {
            cmd,
            exec: self.exec.as_deref(),
            pid: self.pid.as_deref(),
            all_cpus: self.all_cpus,
            callchain,
            dwarf_stack,
            filter: self.filter.as_deref(),
            duration: self.duration,
            pages: self.pages,
            items,
            command,
            rings: true,
        })
    }
}

/// What to watch, as the command line gave it.
#[derive(Debug, Clone, Copy)]
pub(super) struct LiveSpec<'a> {
    /// The command's name, for messages (`trace`, `stat`).
    pub cmd: &'static str,
    /// `-x`: probe specs are uprobes of this binary.
    pub exec: Option<&'a str>,
    /// `-p PID,...`.
    pub pid: Option<&'a str>,
    /// `-a`.
    pub all_cpus: bool,
    /// `-g`.
    pub callchain: bool,
    /// `--call-graph dwarf,SIZE`: bytes of user stack per sample (0: none).
    pub dwarf_stack: u32,
    /// `--filter` on every event.
    pub filter: Option<&'a str>,
    /// `--duration`.
    pub duration: Option<f64>,
    /// `-m`: ring pages per CPU.
    pub pages: usize,
    /// Probe specs or existing events.
    pub items: &'a [String],
    /// `-- CMD`.
    pub command: &'a [String],
    /// Open ring buffers (false: the caller attaches its own perf events).
    pub rings: bool,
}

/// One step of the loop, for the caller's sink.
#[derive(Debug)]
pub(super) enum Step<'b> {
    /// Records of one drain of every ring (the last one after the events are disabled).
    Records(&'b [u8]),
    /// An interval ended (`-i`).
    Tick,
}

/// How the loop ended.
#[derive(Debug)]
pub(super) struct Outcome {
    /// Why it stopped (a signal's name, "the duration ended", ...).
    pub stop: Option<String>,
    /// Records the kernel lost (`PERF_RECORD_LOST`).
    pub lost: u64,
    /// The sink's error on the last drain, after the events were disabled.
    pub tail: std::io::Result<()>,
}

/// Events open on a target, probes in a session group.
#[derive(Debug)]
pub(super) struct Live {
    // Fields drop in this order: the events close before the probes go (an open event
    // keeps its probe busy), on every path, errors included.
    /// The rings (None without [`LiveSpec::rings`]).
    pub recorder: Option<Recorder>,
    child: Option<HeldChild>,
    session: Option<ProbeSession>,
    /// The tracefs the events live in.
    pub tracefs: Tracefs,
    /// The events, session probes first.
    pub kinds: Vec<EventKind>,
    signals: Option<StopSignals>,
    /// What the events watch.
    pub scope: Scope,
    watched: Vec<i32>,
    /// `--call-graph dwarf`: the stack copy size (data maps are synthesized for it).
    dwarf_stack: u32,
    command: Vec<String>,
    duration: Option<f64>,
    /// The target in words (`'./app'`, `pid 12`, `the whole system`).
    pub what: String,
}

/// Whether `item` names an existing event (`group:event`, no spaces, no probe syntax).
/// A USDT name (`sdt_python:function__*`) is an event only when it exists, or as a glob when
/// no binary is given (`binary`) to look it up in.
fn is_event_name(item: &str, tracefs: &Tracefs, binary: bool) -> bool {
    match item.split_once(':') {
        Some((g, e)) if !item.contains([' ', '=', '%', '+', '@', ';']) => {
            let glob = g.contains('*') || e.contains('*');
            tracefs.event_exists(g, e) || (glob && !(binary && g.starts_with("sdt_")))
        }
        _ => false,
    }
}

/// Resolve `specs` into the session's group and add them (`cmd` names the command in
/// messages): user probes in `exec`, or for USDT specs with only `-p`, in the file the first
/// process of `pid` maps that holds them. Returns the definitions added.
pub(super) fn add_session_probes(
    session: &mut ProbeSession,
    tracefs: &Tracefs,
    specs: &mut [probes::ProbeSpec],
    exec: Option<&str>,
    pid: Option<&str>,
    cmd: &str,
) -> Result<Vec<probes::ProbeDef>> {
    for s in specs.iter_mut() {
        if s.group.is_some() {
            bail!("'{}': probes of `rprobe {cmd}` live in its own group; drop the GROUP: prefix (or create it with `rprobe add` and give the event)", s.text);
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

impl Live {
    /// [`Live::prepare`] then [`Live::open_target`].
    pub fn open(spec: &LiveSpec<'_>) -> Result<Live> {
        let mut live = Live::prepare(spec)?;
        live.open_target(spec)?;
        Ok(live)
    }

    /// Checks the arguments, adds the probes and resolves the events; no target yet.
    /// Nothing is left behind when this fails, or when the result is dropped.
    pub fn prepare(spec: &LiveSpec<'_>) -> Result<Live> {
        if spec.pages == 0 || !spec.pages.is_power_of_two() {
            bail!(
                "-m {}: the ring buffer size must be a power of two number of pages",
                spec.pages
            );
        }
        if let Some(d) = spec.duration {
            if !(d.is_finite() && d > 0.0) {
                bail!("--duration {d}: give a positive number of seconds");
            }
        }
        if !spec.command.is_empty() && spec.pid.is_some() {
            bail!("a command cannot be combined with -p; {} it alone (or with -a for the whole system while it runs)", spec.cmd);
        }
        let tracefs = env::open_tracefs()?;

        // Split the arguments: existing events, and specs to probe (parsed before anything
        // is created, so a bad spec leaves nothing behind).
        let mut event_names = Vec::new();
        let mut specs = Vec::new();
        for item in spec.items {
            if is_event_name(item, &tracefs, spec.exec.is_some() || spec.pid.is_some()) {
                event_names.push(item.clone());
            } else {
                let s = probes::parse_spec(item)
                    .with_context(|| format!("bad probe spec '{}'", item.escape_debug()))?;
                specs.push(s);
            }
        }

        // Probes in this process's session group (stale groups of dead rprobes are swept).
        let me = std::process::id();
        let (mut session, sweep) =
            ProbeSession::start(&tracefs, me, &|p| crate::sys::spawn::process_exists(p))?;
        for (kind, group, n) in &sweep.groups {
            eprintln!(
                "rprobe {}: removed {n} leftover {} event(s) of {group}",
                spec.cmd,
                kind.file_name()
            );
        }
        // From here on the session's probes must go on every error.
        match Self::open_in(spec, tracefs, &mut session, specs, &event_names) {
            Ok(mut live) => {
                live.session = Some(session);
                Ok(live)
            }
            Err(e) => {
                let _ = session.close();
                Err(e)
            }
        }
    }

    fn open_in(
        spec: &LiveSpec<'_>,
        tracefs: Tracefs,
        session: &mut ProbeSession,
        mut specs: Vec<probes::ProbeSpec>,
        event_names: &[String],
    ) -> Result<Live> {
        if !specs.is_empty() {
            add_session_probes(session, &tracefs, &mut specs, spec.exec, spec.pid, spec.cmd)?;
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
        for name in event_names {
            for k in resolve_event(name, &mut ts)? {
                if !kinds.contains(&k) {
                    kinds.push(k);
                }
            }
        }

        Ok(Live {
            recorder: None,
            child: None,
            session: None,
            tracefs,
            kinds,
            signals: None,
            scope: Scope::AllCpus,
            watched: Vec::new(),
            dwarf_stack: spec.dwarf_stack,
            command: spec.command.to_vec(),
            duration: spec.duration,
            what: String::new(),
        })
    }

    /// Parks the command (or finds the processes of `-p`) and opens the events, disabled,
    /// with rings when [`LiveSpec::rings`] asks for them.
    pub fn open_target(&mut self, spec: &LiveSpec<'_>) -> Result<()> {
        let kinds = &self.kinds;
        let tracefs = &self.tracefs;
        // The target.
        self.signals = Some(StopSignals::block().context("cannot set up signal handling")?);
        let child = if spec.command.is_empty() {
            None
        } else {
            Some(park_command(spec.command)?)
        };
        let (scope, watched) = match (&child, spec.pid) {
            (Some(_), _) if spec.all_cpus => (Scope::AllCpus, Vec::new()),
            (Some(c), _) => (Scope::Command(c.pid() as i32), Vec::new()),
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
        let what = match (&child, spec.pid) {
            (Some(_), _) => format!("'{}'", spec.command.join(" ")),
            (None, Some(p)) => format!("pid {p}"),
            (None, None) => "the whole system".to_string(),
        };
        let recorder =
            if spec.rings {
                let specs_open: Vec<EventSpec> = kinds
                    .iter()
                    .map(|k| EventSpec {
                        kind: k.clone(),
                        filter: spec.filter.map(str::to_owned),
                    })
                    .collect();
                let opts = RecorderOptions {
                    callchain: spec.callchain,
                    dwarf_stack: spec.dwarf_stack,
                    sampling: None,
                    pages: spec.pages,
                    user_only: false,
                };
                Some(Recorder::open(&specs_open, &scope, &opts).map_err(|e| {
                    explain_open(&e, &specs_open, Some(tracefs), specs_open.len() + 1)
                })?)
            } else {
                None
            };
        self.recorder = recorder;
        self.child = child;
        self.scope = scope;
        self.watched = watched;
        self.what = what;
        Ok(())
    }

    /// The parked command's pid.
    pub fn child_pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.pid() as i32)
    }

    /// The processes `-p` named.
    pub fn watched(&self) -> &[i32] {
        &self.watched
    }

    /// The tracepoints and probe events among the events, as (group, event).
    pub fn tracepoints(&self) -> Vec<(String, String)> {
        self.kinds
            .iter()
            .filter_map(|k| match k {
                EventKind::Tracepoint { group, event, .. } => Some((group.clone(), event.clone())),
                _ => None,
            })
            .collect()
    }

    /// An in-memory perf.data with the attrs, ids and tracing data of the open events and
    /// no records: the replay session reads names and formats from it.
    pub fn header(&self) -> Result<Vec<u8>> {
        let recorder = self
            .recorder
            .as_ref()
            .ok_or_else(|| anyhow!("no ring buffers are open"))?;
        let events = self.tracepoints();
        let tdata = if events.is_empty() {
            None
        } else {
            let texts = tracing_data::read_texts(self.tracefs.root(), &events)?;
            Some(tracing_data::encode(&texts, pe::page_size() as u32))
        };
        let features = Features {
            tracing_data: tdata,
            ..Features::default()
        };
        let file = crate::sys::memory_file("rprobe-live-header")?;
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

    /// Synthesized tasks and maps of the target, so comms and user frames resolve.
    pub fn synth(&self) -> Vec<u8> {
        let mut synth = Vec::new();
        let Some(recorder) = &self.recorder else {
            return synth;
        };
        let sid = recorder.synth_id();
        recorder::kernel_map(&mut synth, &sid);
        let pids = match &self.scope {
            Scope::AllCpus => recorder::all_pids(),
            Scope::Tasks(_) => self.watched.clone(),
            Scope::Command(p) => vec![*p],
        };
        recorder::synthesize_tasks(&mut synth, &pids, &sid);
        if self.dwarf_stack > 0 {
            recorder::synthesize_data_maps(&mut synth, &pids, &sid);
        }
        synth
    }

    /// Enables the events and lets the command run, then says `"{verb} EVENTS in TARGET"`
    /// (from here on nothing is missed). Returns the start time.
    pub fn start(&mut self, verb: &str) -> Result<Instant> {
        let start = Instant::now();
        let enable = |r: &Option<Recorder>| match r {
            Some(r) => r.enable().context("cannot enable the events"),
            None => Ok(()),
        };
        if !matches!(self.scope, Scope::Command(_)) {
            enable(&self.recorder)?;
        }
        if let Some(c) = &mut self.child {
            if matches!(self.scope, Scope::AllCpus) {
                enable(&self.recorder)?;
            }
            run_command(c, &self.command)?;
        }
        let names: Vec<String> = self.kinds.iter().map(EventKind::name).collect();
        eprintln!(
            "{verb} {} in {}{}. Ctrl-C to end.",
            names.join(", "),
            self.what,
            self.duration
                .map(|d| format!(" for {d} s"))
                .unwrap_or_default()
        );
        Ok(start)
    }

    /// Drains the rings into `sink` until a stop condition, with a [`Step::Tick`] every
    /// `interval`; then disables the events and drains once more. A closed output (the
    /// sink's `BrokenPipe`) stops the loop; another sink error ends it with that error.
    pub fn run(
        &mut self,
        start: Instant,
        interval: Option<Duration>,
        sink: &mut dyn FnMut(Step<'_>) -> std::io::Result<()>,
    ) -> (Outcome, Result<()>) {
        let deadline = self.duration.map(|d| start + Duration::from_secs_f64(d));
        let mut next_tick = interval.map(|i| start + i);
        let mut fds = self
            .recorder
            .as_ref()
            .map(Recorder::poll_fds)
            .unwrap_or_default();
        let Some(signals) = &self.signals else {
            return (
                out_empty(),
                Err(anyhow!("the events were not opened (Live::open_target)")),
            );
        };
        fds.push(signals.raw_fd());
        let mut buf = Vec::with_capacity(1 << 20);
        let mut out = out_empty();
        let mut result: Result<()> = Ok(());
        while out.stop.is_none() {
            let now = Instant::now();
            let mut timeout = Duration::from_millis(200);
            for t in [deadline, next_tick].into_iter().flatten() {
                timeout = timeout.min(t.saturating_duration_since(now));
            }
            let ready = match pe::poll_in(&fds, timeout.as_millis() as i32).context("poll") {
                Ok(r) => r,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            while let Ok(Some(sig)) = signals.read() {
                if sig != Stop::Child {
                    out.stop = Some(sig.name().to_string());
                }
            }
            if let Some(c) = &mut self.child {
                if c.try_wait().ok().flatten().is_some() {
                    out.stop = Some("the command exited".into());
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                out.stop = Some("the duration ended".into());
            }
            if !self.watched.is_empty() && !self.watched.iter().any(|&p| recorder::task_alive(p)) {
                out.stop = Some("the traced processes exited".into());
            }
            drop_hung_up(&mut fds, &ready);
            let mut step = drain(&mut self.recorder, &mut buf, &mut out.lost, sink);
            if out.stop.is_none() && next_tick.is_some_and(|t| Instant::now() >= t) {
                if let (Some(t), Some(i)) = (&mut next_tick, interval) {
                    while *t <= Instant::now() {
                        *t += i;
                    }
                }
                step = step.and_then(|()| sink(Step::Tick));
            }
            if let Err(e) = step {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    out.stop = Some("the output closed".into());
                } else {
                    result = Err(e.into());
                    break;
                }
            }
        }
        if let Some(r) = &self.recorder {
            r.disable();
        }
        out.tail = drain(&mut self.recorder, &mut buf, &mut out.lost, sink);
        (out, result)
    }

    /// Ends the command, closes the events and removes the session's probes.
    pub fn close(mut self) -> Result<()> {
        if let Some(c) = &mut self.child {
            c.kill(libc::SIGTERM);
            let _ = c.wait();
        }
        drop(self.recorder.take());
        match self.session.take() {
            Some(s) => s.close().context("cannot remove the session's probes"),
            None => Ok(()),
        }
    }
}

/// The replay session that decodes the records of `file`'s events ([`Live::header`]), with
/// the script options and plan that print (or symbolize) them.
pub(super) fn decoder(
    file: &[u8],
) -> Result<(
    crate::replay::session::Session<'_>,
    crate::replay::script::ScriptOptions,
    crate::replay::script::Plan,
)> {
    let home = std::env::var("HOME").ok();
    let session = crate::replay::session::Session::new(
        file,
        super::script::kernel_symbols(file, home.as_deref()),
    )
    .map_err(|e| anyhow!("cannot set up decoding: {e}"))?;
    let opts = crate::replay::script::ScriptOptions {
        home,
        ..Default::default()
    };
    let plan = crate::replay::script::plan(&session.evsels, &opts).map_err(anyhow::Error::msg)?;
    Ok((session, opts, plan))
}

/// Stops polling the rings whose tasks are all gone: they report POLLHUP on every poll (their
/// records are still drained each pass). `fds` ends with the signal fd; `ready` is what
/// `poll_in` said of them.
pub(super) fn drop_hung_up(fds: &mut Vec<std::os::fd::RawFd>, ready: &[pe::Ready]) {
    let sig_fd = fds.pop();
    let mut i = 0;
    fds.retain(|_| {
        i += 1;
        !ready.get(i - 1).is_some_and(|r| r.hangup)
    });
    fds.extend(sig_fd);
}

/// One drain of every ring into `sink`.
fn drain(
    recorder: &mut Option<Recorder>,
    buf: &mut Vec<u8>,
    lost: &mut u64,
    sink: &mut dyn FnMut(Step<'_>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let Some(r) = recorder else {
        return Ok(());
    };
    buf.clear();
    let _ = r.drain(buf);
    *lost += count_lost(buf);
    sink(Step::Records(buf))
}

fn out_empty() -> Outcome {
    Outcome {
        stop: None,
        lost: 0,
        tail: Ok(()),
    }
}

/// The command of `record`, `trace` or `stat`, forked and parked before its exec (perf's
/// scheme: the events are opened on its pid first, then [`run_command`] lets it run).
pub fn park_command(argv: &[String]) -> Result<HeldChild> {
    HeldChild::command(argv).map_err(|e| cannot_run(argv, &e))
}

/// Let a [`park_command`] child exec.
pub fn run_command(c: &mut HeldChild, argv: &[String]) -> Result<()> {
    c.release().map_err(|e| cannot_run(argv, &e))
}

fn cannot_run(argv: &[String], e: &crate::sys::SyscallError) -> anyhow::Error {
    anyhow!(
        "cannot run '{}': {}; check the command name and that it is executable",
        argv.first().map_or("", String::as_str),
        e.source
    )
}

/// Records lost in a drain, from its `PERF_RECORD_LOST` records.
fn count_lost(buf: &[u8]) -> u64 {
    ring::records(buf)
        .filter(|r| r.type_ == crate::perf::abi::record::LOST)
        .filter_map(|r| crate::perf::abi::u64_at(r.bytes, 16))
        .sum()
}

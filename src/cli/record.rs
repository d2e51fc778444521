//! `rprobe record`: open perf events on CPUs, tasks or a command, drain their ring buffers
//! into a perf.data file that perf reads, and say what was captured.

use super::env;
use crate::perf::abi::record as rec;
use crate::perf::attr::{find_builtin, EventKind, Sampling, HARDWARE_EVENTS, SOFTWARE_EVENTS};
use crate::perf::recorder::{
    self, EventSpec, OpenError, OpenStep, Recorder, RecorderOptions, Scope,
};
use crate::perf::stream::StreamStats;
use crate::perf::writer::{Features, PerfDataWriter};
use crate::perf::{ring, synth, tracing_data};
use crate::probes::resolve::{glob_match, suggest};
use crate::probes::session::ProbeSession;
use crate::replay::unwind::StackTrimmer;
use crate::sys::perf_event as pe;
use crate::sys::signals::{Stop, StopSignals};
use crate::tracefs::{Tracefs, TracefsError};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const EXAMPLES: &str = "\
Examples:
  rprobe record -e sched:sched_switch -a -g --duration 5     system-wide, with callchains
  rprobe record -F 999 -g -- ./primes                         cpu-clock sampling of a command
  rprobe record -F 999 --call-graph dwarf -- ./server         stacks of code without frame pointers
  rprobe record -e probe_app:work -e probe_app:work__return -- ./app
  rprobe record -e 'syscalls:sys_enter_openat' --filter 'common_pid != 1' -a
  rprobe record -e 'sched:*' -p 1234 -o sched.data
  rprobe record -e page-faults -c 1 -t 4321
  rprobe record -x python3 -e 'sdt_python:function__entry arg1:string arg2:string' -- python3 app.py
Then: perf script -i perf.data, perf report -i perf.data --stdio.

Events: GROUP:EVENT tracepoints and probe events (globs allowed), cpu-clock, task-clock,
page-faults, context-switches, cpu-migrations, minor-faults, major-faults; hardware events
(cycles, instructions, ...) where the CPU has counters. The default is cpu-clock.";

/// Record events into a perf.data file.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct RecordArgs {
    /// An event to record (repeatable): GROUP:EVENT (globs allowed), or a software or
    /// hardware event name.
    #[arg(short = 'e', long = "event", value_name = "EVENT")]
    pub events: Vec<String>,
    /// A tracefs filter expression for the -e before it (tracepoints and probe events).
    #[arg(long, value_name = "EXPR")]
    pub filter: Vec<String>,
    /// The binary or library of USDT events (`-e 'sdt_PROVIDER:NAME [ARGS]'` that name no
    /// existing event), probed for this recording only; with -p and no -x, the file the
    /// process maps that holds them.
    #[arg(short = 'x', long = "exec", value_name = "PATH")]
    pub exec: Option<String>,
    /// Record every CPU (the default without -p, -t or a command).
    #[arg(short = 'a', long = "all-cpus")]
    pub all_cpus: bool,
    /// Record these processes (comma-separated pids) and the threads they start.
    #[arg(short = 'p', long = "pid", value_name = "PID[,PID]", conflicts_with_all = ["all_cpus", "tid"])]
    pub pid: Option<String>,
    /// Record these threads (comma-separated tids) and their children.
    #[arg(
        short = 't',
        long = "tid",
        value_name = "TID[,TID]",
        conflicts_with = "all_cpus"
    )]
    pub tid: Option<String>,
    /// Frame-pointer callchains, kernel and user.
    #[arg(short = 'g')]
    pub callgraph: bool,
    /// Callchain mode: `fp` (frame pointers, as -g), or `dwarf[,SIZE]`: the user registers
    /// and SIZE bytes of user stack per sample (default 16384, at most 65528), unwound from
    /// `.eh_frame`/`.debug_frame` (code built without frame pointers). rprobe unwinds each
    /// sample while recording and keeps only the stack bytes the unwind read.
    #[arg(long = "call-graph", value_name = "MODE")]
    pub call_graph: Option<String>,
    /// Sampling frequency of clock and hardware events, in Hz (default 4000).
    #[arg(
        short = 'F',
        long = "freq",
        value_name = "FREQ",
        conflicts_with = "count"
    )]
    pub freq: Option<u64>,
    /// Sample every PERIOD events (nanoseconds for clocks; every Nth hit for tracepoints).
    #[arg(short = 'c', long = "count", value_name = "PERIOD")]
    pub count: Option<u64>,
    /// Output file; an existing one is renamed FILE.old.
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FILE",
        default_value = "perf.data"
    )]
    pub output: PathBuf,
    /// Ring buffer data pages per CPU (a power of two).
    #[arg(
        short = 'm',
        long = "mmap-pages",
        value_name = "PAGES",
        default_value_t = 128
    )]
    pub pages: usize,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// No status line and no summary.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// The command to run and record (after --).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Pair each `--filter` with the `-e` before it, from their positions on the command line.
fn pair_filters(events: &[usize], filters: &[(usize, String)]) -> Result<Vec<Option<String>>> {
    let mut out = vec![None; events.len()];
    for (pos, f) in filters {
        let Some(i) = events.iter().rposition(|&e| e < *pos) else {
            bail!("--filter '{f}' has no -e before it; write --filter after the event it filters, e.g. -e sched:sched_switch --filter 'prev_pid != 0'");
        };
        if out[i].is_some() {
            bail!("two --filter options for the same -e; combine them with && into one expression");
        }
        out[i] = Some(f.clone());
    }
    Ok(out)
}

/// Positions of `-e` and `--filter` values, from re-parsing this process's argv (the derive
/// API keeps no order). Falls back to "filters follow events in order" when argv is not
/// this command line (library use).
fn filter_positions(args: &RecordArgs) -> Result<Vec<Option<String>>> {
    use clap::CommandFactory;
    let m = super::Cli::command()
        .try_get_matches_from(std::env::args_os())
        .ok();
    let sub = m.as_ref().and_then(|m| m.subcommand_matches("record"));
    let idx = |name: &str| -> Option<Vec<usize>> { Some(sub?.indices_of(name)?.collect()) };
    match (idx("events"), idx("filter")) {
        (Some(e), Some(f)) if e.len() == args.events.len() && f.len() == args.filter.len() => {
            let fl: Vec<(usize, String)> = f.into_iter().zip(args.filter.iter().cloned()).collect();
            pair_filters(&e, &fl)
        }
        _ if args.filter.is_empty() => Ok(vec![None; args.events.len()]),
        _ => {
            let e: Vec<usize> = (0..args.events.len()).map(|i| 2 * i).collect();
            let f: Vec<(usize, String)> = args
                .filter
                .iter()
                .enumerate()
                .map(|(i, f)| (2 * i + 1, f.clone()))
                .collect();
            pair_filters(&e, &f)
        }
    }
}

pub(super) fn parse_ids(text: &str, what: &str) -> Result<Vec<i32>> {
    text.split(',')
        .map(|p| {
            p.trim()
                .parse::<i32>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| anyhow!("-{what} {text}: '{p}' is not a process id; give numbers separated by commas"))
        })
        .collect()
}

/// Resolve one -e into events (a glob can give several).
pub(super) fn resolve_event(name: &str, tracefs: &mut Option<Tracefs>) -> Result<Vec<EventKind>> {
    if let Some((group, event)) = name.split_once(':') {
        if tracefs.is_none() {
            *tracefs = Some(env::open_tracefs()?);
        }
        let t = tracefs.as_ref().ok_or_else(|| anyhow!("no tracefs"))?;
        let glob = |s: &str| s.contains(['*', '?', '[']);
        let names: Vec<(String, String)> = if glob(group) || glob(event) {
            let all = t.list_events().context("cannot list trace events")?;
            all.into_iter()
                .filter(|n| glob_match(group, &n.group) && glob_match(event, &n.event))
                .map(|n| (n.group, n.event))
                .collect()
        } else if t.event_exists(group, event) {
            vec![(group.to_string(), event.to_string())]
        } else {
            Vec::new()
        };
        if names.is_empty() {
            let all = t.list_events().unwrap_or_default();
            let full: Vec<String> = all.iter().map(|n| n.to_string()).collect();
            let close = suggest(name, full.iter().map(String::as_str));
            let hint = if close.is_empty() {
                "see 'rprobe list' for probe events and available_events for tracepoints"
                    .to_string()
            } else {
                format!("did you mean {}?", close.join(", "))
            };
            bail!("unknown event '{name}': no such tracepoint or probe event; {hint}");
        }
        names
            .into_iter()
            .map(|(group, event)| {
                let id = t
                    .event_id(&group, &event)
                    .with_context(|| format!("cannot read the id of {group}:{event}"))?;
                Ok(EventKind::Tracepoint { group, event, id })
            })
            .collect()
    } else {
        match find_builtin(name) {
            Some(k) => Ok(vec![k]),
            None => {
                let names = SOFTWARE_EVENTS
                    .iter()
                    .chain(HARDWARE_EVENTS)
                    .map(|(n, _)| *n);
                let close = suggest(name, names);
                let hint = if close.is_empty() {
                    "tracepoints and probe events are named GROUP:EVENT".to_string()
                } else {
                    format!("did you mean {}?", close.join(", "))
                };
                bail!("unknown event '{name}'; {hint}")
            }
        }
    }
}

/// A `--call-graph` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallGraph {
    /// Frame pointers.
    Fp,
    /// DWARF: this many bytes of user stack per sample.
    Dwarf(u32),
}

/// The default stack copy of `--call-graph dwarf` (see the README's table).
pub(super) const DEFAULT_DWARF_STACK: u32 = 16384;

/// perf's `parse_callchain_record`: `fp`, `dwarf`, or `dwarf,SIZE` with SIZE rounded up to a
/// multiple of 8 and at most 65528 (`round_down(USHRT_MAX, 8)`).
pub(super) fn parse_call_graph(text: &str) -> Result<CallGraph> {
    let (mode, size) = match text.split_once(',') {
        Some((m, s)) => (m, Some(s)),
        None => (text, None),
    };
    match (mode, size) {
        ("fp", None) => Ok(CallGraph::Fp),
        ("dwarf", None) => Ok(CallGraph::Dwarf(DEFAULT_DWARF_STACK)),
        ("dwarf", Some(s)) => {
            let n: Option<u64> = match s.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16).ok(),
                None => s.parse().ok(),
            };
            match n.map(|n| n.div_ceil(8) * 8) {
                Some(n) if n > 0 && n <= 65528 => Ok(CallGraph::Dwarf(n as u32)),
                _ => bail!("--call-graph {text}: the stack size must be a number of bytes from 8 to 65528, e.g. --call-graph dwarf,8192"),
            }
        }
        ("fp", Some(_)) => bail!("--call-graph {text}: fp takes no size; write --call-graph fp"),
        _ => bail!("--call-graph {text}: unknown mode '{mode}'; use fp (frame pointers) or dwarf[,SIZE] (DWARF unwinding, for code built without frame pointers)"),
    }
}

/// The output file, removed again (and FILE.old put back) unless the recording finishes.
struct Output {
    path: PathBuf,
    old: Option<PathBuf>,
    done: bool,
}

impl Output {
    fn create(path: &Path) -> Result<(Output, std::fs::File)> {
        let mut old = None;
        if path.exists() {
            let o = PathBuf::from(format!("{}.old", path.display()));
            std::fs::rename(path, &o).with_context(|| {
                format!(
                    "cannot rename the existing {} to {}",
                    path.display(),
                    o.display()
                )
            })?;
            old = Some(o);
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        let mut out = Output {
            path: path.to_path_buf(),
            old,
            done: false,
        };
        match file {
            Ok(f) => Ok((out, f)),
            Err(e) => {
                out.done = true;
                if let Some(o) = out.old.take() {
                    let _ = std::fs::rename(o, path);
                }
                Err(e).with_context(|| {
                    format!(
                        "cannot create {}; choose another file with -o",
                        path.display()
                    )
                })
            }
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
            if let Some(o) = &self.old {
                let _ = std::fs::rename(o, &self.path);
            }
        }
    }
}

/// Explain a failed open in terms of what to change.
pub(super) fn explain_open(
    e: &OpenError,
    specs: &[EventSpec],
    tracefs: Option<&Tracefs>,
    fds_needed: usize,
) -> anyhow::Error {
    let errno = e.source.errno().unwrap_or(0);
    let what = if e.pid >= 0 {
        format!("{} on pid {}", e.event, e.pid)
    } else {
        format!("{} on cpu {}", e.event, e.cpu)
    };
    let spec = specs.iter().find(|s| s.kind.name() == e.event);
    match (e.step, errno) {
        (OpenStep::Filter, _) => {
            let (group, event, filter) = match spec {
                Some(EventSpec {
                    kind: EventKind::Tracepoint { group, event, .. },
                    filter: Some(f),
                }) => (group.as_str(), event.as_str(), f.as_str()),
                _ => return anyhow!("the filter of {} was refused: {}", e.event, e.source),
            };
            let reason = tracefs.and_then(|t| filter_reason(t, group, event, filter));
            match reason {
                Some(r) => anyhow!("the kernel rejected --filter '{filter}' for {group}:{event}: {r}; see the event's fields in events/{group}/{event}/format"),
                None => anyhow!("the kernel rejected --filter '{filter}' for {group}:{event} ({}); see the event's fields in events/{group}/{event}/format", e.source),
            }
        }
        (OpenStep::Mmap, libc::EPERM) | (OpenStep::Mmap, libc::ENOMEM) => {
            let kb = crate::sys::read_sys_text("/proc/sys/kernel/perf_event_mlock_kb")
                .unwrap_or_else(|| "?".into());
            anyhow!("cannot map the ring buffer of {what}: {}. Unprivileged users may lock perf_event_mlock_kb ({kb} kB) per CPU: use a smaller -m, or raise kernel.perf_event_mlock_kb", e.source)
        }
        (_, libc::EPERM) | (_, libc::EACCES) => {
            let paranoid = crate::sys::perf_event_paranoid()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "unknown".into());
            let need = if matches!(spec.map(|s| &s.kind), Some(EventKind::Tracepoint { .. })) {
                "raw tracepoint samples need kernel.perf_event_paranoid = -1"
            } else if e.pid < 0 {
                "CPU-wide events need kernel.perf_event_paranoid <= 0"
            } else {
                "kernel samples and callchains need kernel.perf_event_paranoid <= 1"
            };
            anyhow!("perf_event_open({what}): permission denied. {need} (now {paranoid}) or CAP_PERFMON. Run as root, grant CAP_PERFMON (Linux 5.8+), or: sysctl kernel.perf_event_paranoid=-1")
        }
        (_, libc::EMFILE) | (_, libc::ENFILE) => {
            let limit = pe::nofile_limit()
                .map(|(c, _)| c.to_string())
                .unwrap_or_else(|| "?".into());
            anyhow!("too many open files: this recording needs about {fds_needed} file descriptors (events x CPUs x threads) and the limit is {limit}. Raise it with 'ulimit -n {}' (or the hard limit in /etc/security/limits.conf), or record fewer events or threads", (fds_needed + 64).next_power_of_two())
        }
        (_, libc::ESRCH) => anyhow!(
            "no process or thread {} (it exited?); check the pid given to -p/-t",
            e.pid
        ),
        (_, libc::ENOENT) | (_, libc::EOPNOTSUPP) | (_, libc::ENODEV)
            if matches!(spec.map(|s| &s.kind), Some(EventKind::Hardware { .. })) =>
        {
            anyhow!("this CPU has no hardware counter for '{}' (virtual machines usually have none): {}. Sample with -e cpu-clock instead", e.event, e.source)
        }
        _ => anyhow!("cannot open {what}: {}", e.source),
    }
}

/// The kernel's parse error for `filter` on `group:event`, from a private tracefs instance
/// (the perf ioctl only says EINVAL; the `filter` file says why). The instance is removed.
fn filter_reason(t: &Tracefs, group: &str, event: &str, filter: &str) -> Option<String> {
    let name = format!("rprobe_filter_{}", std::process::id());
    let inst = t.create_instance(&name).ok()?;
    let r = inst.tracefs().set_filter(group, event, filter);
    let _ = t.remove_instance(&name);
    match r {
        Err(TracefsError::FilterRejected { message, .. }) => message,
        _ => None,
    }
}

fn uname_field(f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr) -> String {
    nix::sys::utsname::uname()
        .map(|u| f(&u).to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Live status on a terminal, at most 4 times a second.
struct Status {
    on: bool,
    last: Instant,
    start: Instant,
    shown: bool,
}

impl Status {
    fn show(&mut self, stats: &StreamStats, bytes: u64) {
        if !self.on || self.last.elapsed() < Duration::from_millis(250) {
            return;
        }
        self.last = Instant::now();
        self.shown = true;
        eprint!(
            "\r[ rprobe record: {:.1} s, {} samples, lost {}, {:.3} MB ]\x1b[K",
            self.start.elapsed().as_secs_f64(),
            stats.samples,
            stats.lost,
            bytes as f64 / (1024.0 * 1024.0)
        );
    }

    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
        }
    }
}

/// Whether an -e names a USDT probe to create (`sdt_PROVIDER:NAME [ARGS]`, `%...`) rather
/// than an existing event: perf's spelling, so an event `rprobe add` made is recorded as is.
fn is_usdt_spec(name: &str, tracefs: &mut Option<Tracefs>) -> Result<bool> {
    let sdt_like = name.starts_with('%') || (name.starts_with("sdt_") && name.contains(':'));
    if !sdt_like {
        return Ok(false);
    }
    if tracefs.is_none() {
        *tracefs = Some(env::open_tracefs()?);
    }
    let exists = match (tracefs.as_ref(), name.split_once(':')) {
        (Some(t), Some((g, e))) if !name.contains([' ', '%', '*', '?', '[']) => {
            t.event_exists(g, e)
        }
        _ => false,
    };
    Ok(!exists)
}

/// USDT -e specs become probes of a session group `rprobe_<pid>`, removed when the
/// recording ends; the names of the events made for `name`.
fn add_usdt_events(
    args: &RecordArgs,
    name: &str,
    tracefs: &Tracefs,
    session: &mut Option<ProbeSession>,
) -> Result<Vec<String>> {
    let mut spec = [crate::probes::parse_spec(name)
        .with_context(|| format!("bad probe spec '{}'", name.escape_debug()))?];
    if args.exec.is_none() && args.pid.is_none() {
        bail!("-e '{name}' is a USDT probe: name its binary or library with -x PATH (or the process with -p PID); 'rprobe sdt -x PATH' lists them");
    }
    if session.is_none() {
        let me = std::process::id();
        let (s, sweep) =
            ProbeSession::start(tracefs, me, &|p| crate::sys::spawn::process_exists(p))?;
        for (kind, group, n) in &sweep.groups {
            eprintln!(
                "rprobe record: removed {n} leftover {} event(s) of {group}",
                kind.file_name()
            );
        }
        *session = Some(s);
    }
    let Some(s) = session.as_mut() else {
        bail!("no probe session")
    };
    let defs = super::live::add_session_probes(
        s,
        tracefs,
        &mut spec,
        args.exec.as_deref(),
        args.pid.as_deref(),
        "record",
    )?;
    let mut names: Vec<String> = defs.iter().map(|d| d.name()).collect();
    names.dedup();
    Ok(names)
}

/// The events of the -e options (cpu-clock without any), each with the --filter after it;
/// tracefs is opened only when a tracepoint is named. USDT specs are probed in a session
/// that lives as long as the returned one.
fn resolve_events(
    args: &RecordArgs,
    filters: &[Option<String>],
) -> Result<(Vec<EventSpec>, Option<Tracefs>, Option<ProbeSession>)> {
    let mut tracefs = None;
    let mut session = None;
    let mut specs: Vec<EventSpec> = Vec::new();
    let names: Vec<String> = if args.events.is_empty() {
        vec!["cpu-clock".into()]
    } else {
        args.events.clone()
    };
    for (i, name) in names.iter().enumerate() {
        let kinds = match (is_usdt_spec(name, &mut tracefs)?, &tracefs) {
            (true, Some(t)) => {
                let t = t.clone();
                let mut kinds = Vec::new();
                for event in add_usdt_events(args, name, &t, &mut session)? {
                    kinds.extend(resolve_event(&event, &mut tracefs)?);
                }
                kinds
            }
            _ => resolve_event(name, &mut tracefs)?,
        };
        let filter = filters.get(i).cloned().flatten();
        if filter.is_some() && !matches!(kinds.first(), Some(EventKind::Tracepoint { .. })) {
            bail!("--filter applies to tracepoints and probe events only, not to '{name}'");
        }
        for kind in kinds {
            if !specs.iter().any(|s| s.kind == kind) {
                specs.push(EventSpec {
                    kind,
                    filter: filter.clone(),
                });
            }
        }
    }

    Ok((specs, tracefs, session))
}

/// `(processes, threads)` of -p or -t, checked to exist; both empty otherwise.
fn resolve_targets(args: &RecordArgs) -> Result<(Vec<i32>, Vec<i32>)> {
    let scope_pids: Vec<i32>;
    let mut threads: Vec<i32> = Vec::new();
    if let Some(p) = &args.pid {
        scope_pids = parse_ids(p, "p")?;
        for &pid in &scope_pids {
            let t = recorder::threads_of(pid);
            if t.is_empty() {
                bail!("-p {pid}: no such process");
            }
            threads.extend(t);
        }
    } else if let Some(t) = &args.tid {
        let tids = parse_ids(t, "t")?;
        let mut pids = Vec::new();
        for &tid in &tids {
            let status = std::fs::read_to_string(format!("/proc/{tid}/status"))
                .map_err(|_| anyhow!("-t {tid}: no such thread"))?;
            let (_, tgid, _) = synth::parse_status(&status)
                .ok_or_else(|| anyhow!("-t {tid}: cannot read its status"))?;
            pids.push(tgid as i32);
        }
        pids.dedup();
        scope_pids = pids;
        threads = tids;
    } else {
        scope_pids = Vec::new();
    }
    Ok((scope_pids, threads))
}

pub fn run(args: &RecordArgs, _out: &mut dyn Write) -> Result<()> {
    // Checks that need no syscalls.
    if args.pages == 0 || !args.pages.is_power_of_two() {
        bail!("-m {}: the ring buffer size must be a power of two number of pages (1, 2, 4, ... 128, 256)", args.pages);
    }
    let (callchain, dwarf_stack) = match args.call_graph.as_deref() {
        None => (args.callgraph, 0),
        Some(m) => match parse_call_graph(m)? {
            CallGraph::Fp => (true, 0),
            CallGraph::Dwarf(size) => (false, size),
        },
    };
    if args.freq == Some(0) || args.count == Some(0) {
        bail!("-F and -c take a number greater than 0");
    }
    if let Some(d) = args.duration {
        if !(d.is_finite() && d > 0.0) {
            bail!("--duration {d}: give a positive number of seconds");
        }
    }
    let sampling = match (args.freq, args.count) {
        (Some(f), _) => Some(Sampling::Freq(f)),
        (_, Some(c)) => Some(Sampling::Period(c)),
        _ => None,
    };
    let filters = filter_positions(args)?;

    // Declared before the recorder, so its probes outlive the perf events on them.
    let (specs, tracefs, session) = resolve_events(args, &filters)?;
    let (scope_pids, threads) = resolve_targets(args)?;
    let command_mode = !args.command.is_empty();
    if command_mode && (args.pid.is_some() || args.tid.is_some()) {
        bail!("a command cannot be combined with -p or -t; record it alone (or with -a for the whole system while it runs)");
    }

    let signals = StopSignals::block().context("cannot set up signal handling")?;
    let (mut output, file) = Output::create(&args.output)?;
    let mut child = if command_mode {
        Some(super::live::park_command(&args.command)?)
    } else {
        None
    };
    // -a with a command records the whole system while the command runs, as perf does.
    let scope = match (&child, args.pid.is_some() || args.tid.is_some()) {
        (Some(_), _) if args.all_cpus => Scope::AllCpus,
        (Some(c), _) => Scope::Command(c.pid() as i32),
        (None, true) => Scope::Tasks(threads.clone()),
        (None, false) => Scope::AllCpus,
    };
    let mut opts = RecorderOptions {
        callchain,
        dwarf_stack,
        sampling,
        pages: args.pages,
        user_only: false,
    };
    let ncpus = recorder::online_cpus().len();
    let fds_needed = (specs.len() + 1) * ncpus * threads.len().max(1);
    let mut opened = Recorder::open(&specs, &scope, &opts);
    if let Err(e) = &opened {
        let errno = e.source.errno();
        if errno == Some(libc::EMFILE) && pe::raise_nofile_limit() {
            opened = Recorder::open(&specs, &scope, &opts);
        } else if matches!(errno, Some(libc::EACCES) | Some(libc::EPERM))
            && e.step == OpenStep::Open
            && !matches!(scope, Scope::AllCpus)
            && !specs
                .iter()
                .any(|s| matches!(s.kind, EventKind::Tracepoint { .. }))
            && crate::sys::perf_event_paranoid().is_some_and(|p| p >= 2)
        {
            // perf's fallback: under perf_event_paranoid 2 a user may sample its own tasks
            // in user space only.
            opts.user_only = true;
            opened = Recorder::open(&specs, &scope, &opts);
            if opened.is_ok() && !args.quiet {
                eprintln!("rprobe record: kernel.perf_event_paranoid=2: recording user space only (no kernel samples or frames); CAP_PERFMON or perf_event_paranoid <= 1 records both");
            }
        }
    }
    let mut recorder =
        opened.map_err(|e| explain_open(&e, &specs, tracefs.as_ref(), fds_needed))?;

    // Tracepoint formats first, in the data: a killed recorder's file still decodes.
    let tp: Vec<(String, String)> = specs
        .iter()
        .filter_map(|s| match &s.kind {
            EventKind::Tracepoint { group, event, .. } => Some((group.clone(), event.clone())),
            _ => None,
        })
        .collect();
    let tdata = match (&tracefs, tp.is_empty()) {
        (Some(t), false) => {
            let texts = tracing_data::read_texts(t.root(), &tp)?;
            Some(tracing_data::encode(&texts, pe::page_size() as u32))
        }
        _ => None,
    };
    let static_features = Features {
        tracing_data: tdata,
        hostname: uname_field(|u| u.nodename()),
        osrelease: uname_field(|u| u.release()),
        version: format!("rprobe {}", env!("CARGO_PKG_VERSION")),
        arch: uname_field(|u| u.machine()),
        nrcpus: Some((ncpus as u32, ncpus as u32)),
        cmdline: std::env::args().collect(),
        ..Features::default()
    };
    let mut writer = PerfDataWriter::new(file, recorder.attrs(), &static_features)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let binaries = super::script::MappedFiles;
    let mut trimmer = (dwarf_stack > 0).then(|| {
        let attr = recorder.attrs().first().map(|e| e.attr).unwrap_or_default();
        StackTrimmer::new(attr, &binaries)
    });
    let mut trimmed: Vec<u8> = Vec::new();
    let sid = recorder.synth_id();
    let mut stats = StreamStats::default();
    let mut synth_buf = Vec::new();
    recorder::kernel_map(&mut synth_buf, &sid);
    let synth_pids = if matches!(scope, Scope::AllCpus) {
        recorder::all_pids()
    } else {
        scope_pids.clone()
    };
    recorder::synthesize_tasks(&mut synth_buf, &synth_pids, &sid);
    if dwarf_stack > 0 {
        recorder::synthesize_data_maps(&mut synth_buf, &synth_pids, &sid);
    }
    synth::bare(&mut synth_buf, rec::FINISHED_INIT);
    for r in ring::records(&synth_buf) {
        stats.add(r.bytes);
    }
    if let Some(t) = &mut trimmer {
        t.observe(&synth_buf);
    }
    buf.extend_from_slice(&synth_buf);
    let write_ctx = || format!("cannot write {}", args.output.display());
    writer.write(&buf).with_context(write_ctx)?;
    writer.checkpoint().with_context(write_ctx)?;
    buf.clear();

    // Start.
    let start = Instant::now();
    if matches!(scope, Scope::AllCpus) {
        recorder.enable().context("cannot enable the events")?;
    }
    match &mut child {
        Some(c) => super::live::run_command(c, &args.command)?,
        None if matches!(scope, Scope::AllCpus) => {}
        None => recorder.enable().context("cannot enable the events")?,
    }
    // From here on the file is a recording: a later failure (a full disk) keeps it, valid up
    // to its last checkpoint.
    output.done = true;
    let write_ctx = || {
        format!(
            "cannot write {} (it holds what was recorded up to the last checkpoint)",
            args.output.display()
        )
    };
    let deadline = args.duration.map(|d| start + Duration::from_secs_f64(d));
    let mut status = Status {
        on: !args.quiet && pe::stderr_is_tty(),
        last: Instant::now(),
        start,
        shown: false,
    };
    let mut fds = recorder.poll_fds();
    fds.push(signals.raw_fd());
    // -p stops when its processes are gone, -t when its threads are.
    let watched: Vec<i32> = if args.tid.is_some() {
        threads.clone()
    } else {
        scope_pids.clone()
    };
    let mut last_cp = Instant::now();
    let mut ring_errors = 0u64;
    let mut stop = false;
    let mut child_status = None;
    // `mark_round`: end the pass with FINISHED_ROUND. A pass followed by a checkpoint leaves
    // it out: the checkpoint's own FINISHED_ROUND marks the round. Two markers in a row make
    // an empty round, after which perf has already flushed up to the newest time seen, and
    // the next pass's records from a ring read early in this one print "N out of order
    // events recorded".
    let mut drain = |recorder: &mut Recorder,
                     writer: &mut PerfDataWriter,
                     stats: &mut StreamStats,
                     trimmer: &mut Option<StackTrimmer<'_>>,
                     buf: &mut Vec<u8>,
                     mark_round: bool|
     -> Result<()> {
        buf.clear();
        if recorder.drain(buf).is_err() {
            ring_errors += 1;
        }
        if buf.is_empty() {
            return Ok(());
        }
        if let Some(t) = trimmer {
            trimmed.clear();
            t.process(buf, &mut trimmed);
            std::mem::swap(buf, &mut trimmed);
        }
        for r in ring::records(buf) {
            stats.add(r.bytes);
        }
        if mark_round {
            synth::bare(buf, rec::FINISHED_ROUND);
        }
        writer.write(buf).with_context(write_ctx)
    };
    while !stop {
        let timeout = match deadline {
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(250)),
            None => Duration::from_millis(250),
        };
        let ready = pe::poll_in(&fds, timeout.as_millis() as i32).context("poll")?;
        if ready.last().is_some_and(|r| r.input) {
            while let Some(s) = signals.read().context("cannot read signals")? {
                if s != Stop::Child {
                    stop = true;
                    if let Some(c) = &child {
                        c.kill(libc::SIGTERM);
                    }
                }
            }
        }
        if let Some(c) = &mut child {
            if let Some(st) = c.try_wait().context("waitpid")? {
                child_status = Some(st.code());
                stop = true;
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            stop = true;
        }
        super::live::drop_hung_up(&mut fds, &ready);
        if !command_mode
            && !matches!(scope, Scope::AllCpus)
            && !watched.iter().any(|&p| recorder::task_alive(p))
        {
            stop = true;
        }
        let checkpoint_due = last_cp.elapsed() >= Duration::from_millis(500);
        drain(
            &mut recorder,
            &mut writer,
            &mut stats,
            &mut trimmer,
            &mut buf,
            !checkpoint_due,
        )?;
        if checkpoint_due {
            writer.checkpoint().with_context(write_ctx)?;
            last_cp = Instant::now();
        }
        status.show(&stats, writer.file_size());
    }
    recorder.disable();
    drain(
        &mut recorder,
        &mut writer,
        &mut stats,
        &mut trimmer,
        &mut buf,
        true,
    )?;
    // Samples lost while a ring was full are reported by a PERF_RECORD_LOST only once space
    // frees up again; the fds' PERF_FORMAT_LOST counts have them all (perf writes them as
    // LOST_SAMPLES records at the end too).
    let mut lost = stats.lost;
    if let Some(per_fd) = recorder.lost_samples() {
        buf.clear();
        let sid = recorder.synth_id();
        for &(id, n) in per_fd.iter().filter(|(_, n)| *n > 0) {
            synth::lost_samples(&mut buf, n, &synth::SampleId { id, ..sid });
        }
        writer.write(&buf).with_context(write_ctx)?;
        lost = lost.max(per_fd.iter().map(|(_, n)| n).sum());
    }
    if let Some(c) = &mut child {
        c.kill(libc::SIGTERM);
        child_status = child_status.or(c.wait().ok().flatten().map(|s| s.code()));
    }
    // A stop request still pending goes now: unblocked, it would kill rprobe by default.
    while let Ok(Some(_)) = signals.read() {}
    drop(recorder);
    status.clear();
    // The USDT probes made for this recording go with it.
    if let Some(s) = session {
        s.close()
            .context("cannot remove the recording's USDT probes")?;
    }

    // Features.
    let features = Features {
        build_ids: recorder::build_ids(&stats),
        sample_time: stats.first_time.map(|f| (f, stats.last_time)),
        ..Features::default()
    };
    let size = writer.finish(&features).with_context(write_ctx)?;
    if ring_errors > 0 {
        eprintln!("rprobe record: warning: {ring_errors} ring buffer passes had corrupt indices and were skipped");
    }
    if !args.quiet {
        eprintln!(
            "[ rprobe record: Captured and wrote {:.3} MB {} ({} samples, lost {}) ]",
            size as f64 / (1024.0 * 1024.0),
            args.output.display(),
            stats.samples,
            lost
        );
    }
    if let (Some(t), false) = (&trimmer, args.quiet) {
        let st = t.stats;
        eprintln!(
            "[ rprobe record: user stacks: kept {:.1} of {:.1} KB copied ({:.0}%), {} of {} samples used their whole {dwarf_stack}-byte copy ]",
            st.kept as f64 / 1024.0,
            st.copied as f64 / 1024.0,
            st.kept as f64 * 100.0 / (st.copied.max(1)) as f64,
            st.exhausted,
            st.samples
        );
    }
    if let Some(code) = child_status.filter(|&c| c != 0) {
        if !args.quiet {
            eprintln!(
                "rprobe record: '{}' exited with status {code}",
                args.command.join(" ")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_pair_with_the_event_before_them() {
        let f = |v: &[(usize, &str)]| {
            v.iter()
                .map(|(i, s)| (*i, s.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            pair_filters(&[2, 6], &f(&[(4, "a"), (8, "b")])).expect("ok"),
            vec![Some("a".into()), Some("b".into())]
        );
        assert_eq!(
            pair_filters(&[2, 6], &f(&[(8, "b")])).expect("ok"),
            vec![None, Some("b".into())]
        );
        let e = pair_filters(&[4], &f(&[(2, "x")])).expect_err("before");
        assert!(e.to_string().contains("no -e before it"), "{e}");
        let e = pair_filters(&[2], &f(&[(4, "x"), (6, "y")])).expect_err("two");
        assert!(e.to_string().contains("&&"), "{e}");
    }

    #[test]
    fn call_graph_modes_parse_as_perf_does() {
        assert_eq!(parse_call_graph("fp").expect("fp"), CallGraph::Fp);
        assert_eq!(
            parse_call_graph("dwarf").expect("dwarf"),
            CallGraph::Dwarf(DEFAULT_DWARF_STACK)
        );
        assert_eq!(
            parse_call_graph("dwarf,1000").expect("size"),
            CallGraph::Dwarf(1000)
        );
        assert_eq!(
            parse_call_graph("dwarf,1001").expect("up"),
            CallGraph::Dwarf(1008)
        );
        assert_eq!(
            parse_call_graph("dwarf,0x1000").expect("hex"),
            CallGraph::Dwarf(4096)
        );
        for bad in ["dwarf,0", "dwarf,65536", "dwarf,x", "lbr", "fp,8"] {
            let e = parse_call_graph(bad).expect_err(bad).to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn ids_parse() {
        assert_eq!(parse_ids("1,22", "p").expect("ok"), vec![1, 22]);
        assert!(parse_ids("1,x", "p")
            .expect_err("bad")
            .to_string()
            .contains("'x'"));
        assert!(parse_ids("0", "t").is_err());
    }

    #[test]
    fn builtin_events_and_suggestions() {
        let mut t = None;
        assert_eq!(
            resolve_event("cpu-clock", &mut t).expect("ok"),
            vec![EventKind::Software { config: 0 }]
        );
        let e = resolve_event("cpu-clok", &mut t).expect_err("unknown");
        assert!(e.to_string().contains("did you mean cpu-clock"), "{e}");
    }
}

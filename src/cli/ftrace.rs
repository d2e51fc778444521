//! `rprobe ftrace`: the function and function_graph tracers in a private tracefs instance,
//! streamed from its `trace_pipe`, scoped to a pid or a command, removed on every exit.
//!
//! Order of work, so that bad input leaves nothing behind: arguments, the pid or the command
//! and the function names are checked first (no tracefs writes); then signals are blocked
//! (`sys::signals`), the command is forked and held before its `exec` (`sys::spawn`), the
//! instance `rprobe_<pid>` is made and configured (filters, pid filter, options, tracer), and
//! only then is the command released. Every exit path — the command ending, `--duration`,
//! SIGINT/SIGTERM/SIGHUP, a closed output pipe, an error — goes through [`Run::finish`] and
//! the instance guard, which stops tracing, reads the lost-event counters and removes the
//! instance.
//!
//! Function names are checked against `available_filter_functions`. Where that file is closed
//! (EPERM on the 6.18 development machine, even for root) they are checked against the text
//! symbols of `/proc/kallsyms` instead, which says whether a function exists but not whether
//! ftrace can trace it; the kernel then refuses an untraceable one when it is written to
//! `set_ftrace_filter` (EINVAL), and rprobe says so. Reading the filter back after writing
//! it would also tell, but on that machine the filter files are closed too.

use super::env;
use crate::probes::resolve::{glob_match, suggest};
use crate::probes::session::{session_name, sweep_stale};
use crate::sys::signals::{wait_readable, Stop, StopSignals};
use crate::sys::spawn::{find_program, process_exists, ExitStatus, HeldChild};
use crate::tracefs::ftrace::{FtraceError, FunctionList};
use crate::tracefs::graph::{parse_lost_line, CallRebuilder, GraphOptions, GraphSelector};
use crate::tracefs::{Instance, Tracefs};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const EXAMPLES: &str = "\
Examples:
  rprobe ftrace -T vfs_write -- dd if=/dev/zero of=/dev/null count=10
  rprobe ftrace -T 'vfs_*' -N vfs_getattr -p 1234 --duration 5
  rprobe ftrace -G vfs_read --depth 2 -b 8192 -- cat /etc/hostname
  rprobe ftrace -T do_sys_openat2 | grep bash

Tracing runs in a private tracefs instance (instances/rprobe_<PID>), so the global
current_tracer, set_ftrace_filter and tracing_on are never changed; the instance is removed
on exit, Ctrl-C, SIGTERM, SIGHUP and when the output pipe closes. Events go to stdout as they
arrive; the header and the summary (events seen, events lost) go to stderr.";

/// Trace kernel functions (function or function_graph tracer) in a private instance.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct FtraceArgs {
    /// Trace this function or glob (repeatable); without -T and -G every function is traced.
    #[arg(short = 'T', long = "trace-funcs", value_name = "FUNC")]
    trace: Vec<String>,
    /// Do not trace this function or glob (repeatable).
    #[arg(short = 'N', long = "notrace-funcs", value_name = "FUNC")]
    notrace: Vec<String>,
    /// Show the call graph under this function (function_graph where the kernel has it in
    /// instances, else rebuilt from the function tracer's callers).
    #[arg(short = 'G', long = "graph-funcs", value_name = "FUNC")]
    graph: Option<String>,
    /// Deepest call level shown under -G (the function itself is level 1).
    #[arg(long, value_name = "N")]
    depth: Option<usize>,
    /// Trace only this process (all its threads, and the children they fork).
    #[arg(short = 'p', long = "pid", value_name = "PID")]
    pid: Option<u32>,
    /// Ring buffer per CPU, in KiB (the instance's buffer_size_kb; default: the kernel's).
    /// A bigger buffer loses fewer events when every function is traced (-G, or no -T).
    #[arg(short = 'b', long = "buffer-size", value_name = "KB")]
    buffer_kb: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// The command to run and trace (with its children); tracing stops when it exits.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// What is traced, checked without touching tracefs.
#[derive(Debug)]
struct Plan {
    graph: Option<GraphOptions>,
    scope: Scope,
    duration: Option<Duration>,
}

#[derive(Debug)]
enum Scope {
    All,
    Pid { pid: u32, threads: Vec<u32> },
    Command { path: std::path::PathBuf },
}

fn plan(args: &FtraceArgs) -> Result<Plan> {
    if args.graph.is_some() && !args.trace.is_empty() {
        bail!("-T selects functions for the function tracer and -G a graph root; give one of them");
    }
    if args.depth.is_some() && args.graph.is_none() {
        bail!("--depth limits a call graph: give its root with -G FUNC");
    }
    if args.buffer_kb == Some(0) {
        bail!("--buffer-size 0 holds no events: give KiB per CPU, e.g. --buffer-size 8192");
    }
    if args.depth == Some(0) {
        bail!("--depth 0 shows nothing; the -G function itself is level 1");
    }
    if args.pid.is_some() && !args.command.is_empty() {
        bail!("-p traces a running process and -- CMD a new one; give one of them");
    }
    let duration = match args.duration {
        Some(s) if !(s.is_finite() && s > 0.0) => {
            bail!("--duration {s}: give a positive number of seconds")
        }
        Some(s) => Some(Duration::from_secs_f64(s)),
        None => None,
    };
    let scope = if let Some(pid) = args.pid {
        let threads = process_threads(pid)?;
        Scope::Pid { pid, threads }
    } else if let Some(program) = args.command.first() {
        let path = find_program(program).with_context(|| {
            format!(
                "cannot run '{}': not found{}",
                program.to_string_lossy(),
                if program.to_string_lossy().contains('/') {
                    ""
                } else {
                    " in $PATH"
                }
            )
        })?;
        Scope::Command { path }
    } else {
        Scope::All
    };
    Ok(Plan {
        graph: args.graph.as_ref().map(|root| GraphOptions {
            roots: vec![root.clone()],
            depth: args.depth.unwrap_or(0),
        }),
        scope,
        duration,
    })
}

/// The thread ids of a process (`/proc/PID/task`), or an error naming the pid.
fn process_threads(pid: u32) -> Result<Vec<u32>> {
    let dir = format!("/proc/{pid}/task");
    let mut tids: Vec<u32> = std::fs::read_dir(&dir)
        .with_context(|| format!("no process with pid {pid} (-p): {dir} cannot be read"))?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort();
    if tids.is_empty() {
        bail!("no process with pid {pid} (-p): it has no threads left");
    }
    Ok(tids)
}

/// Where function names are checked.
enum Names {
    /// `available_filter_functions`: exactly what ftrace can trace.
    Traceable(BTreeSet<String>),
    /// `/proc/kallsyms` text symbols: what exists.
    Kallsyms(BTreeSet<String>),
}

fn function_names(tracefs: &Tracefs) -> Option<Names> {
    if let Some(set) = env::read_traceable(tracefs) {
        return Some(Names::Traceable(set));
    }
    let syms = env::read_kallsyms()?;
    Some(Names::Kallsyms(
        syms.into_iter()
            .filter(|s| s.is_text())
            .map(|s| s.name)
            .collect(),
    ))
}

/// Check each pattern against the known names: a name must be there, a glob must match one.
fn check_functions(option: &str, patterns: &[String], names: &Names) -> Result<()> {
    let (set, list) = match names {
        Names::Traceable(s) => (s, "available_filter_functions"),
        Names::Kallsyms(s) => (s, "/proc/kallsyms"),
    };
    for p in patterns {
        let glob = p.contains(['*', '?', '[']);
        let found = if glob {
            set.iter().any(|n| glob_match(p, n))
        } else {
            set.contains(p)
        };
        if found {
            continue;
        }
        // Only names suggest() could accept (edit distance at most a third of the length,
        // or containing the name): with 40 000 kernel functions the distances add up.
        let slack = p.len().max(3) / 3;
        let near = set.iter().map(String::as_str).filter(|n| {
            n.len().abs_diff(p.len()) <= slack || (p.len() >= 4 && n.contains(p.as_str()))
        });
        let close = suggest(p, near);
        let hint = if close.is_empty() {
            String::new()
        } else {
            format!("; did you mean {}?", close.join(", "))
        };
        let what = match (names, glob, kernel_symbol_exists(p, names)) {
            (Names::Traceable(_), false, true) => {
                "is a kernel function ftrace cannot trace (notrace, inlined or __init); trace a caller"
            }
            (Names::Traceable(_), true, _) => "matches no traceable function",
            (Names::Kallsyms(_), true, _) => "matches no kernel function",
            _ => "is not a kernel function",
        };
        bail!("{option} {p}: '{p}' {what} (checked against {list}){hint}");
    }
    Ok(())
}

fn kernel_symbol_exists(name: &str, names: &Names) -> bool {
    matches!(names, Names::Traceable(_))
        && std::fs::read_to_string("/proc/kallsyms").is_ok_and(|text| {
            text.lines()
                .filter(|l| l.split_whitespace().nth(2) == Some(name))
                .filter_map(crate::elf::kallsyms::parse_line)
                .any(|s| s.is_text())
        })
}

/// The instance and its removal. Drop stops tracing and removes it; [`InstanceGuard::remove`]
/// does the same and reports a failure.
struct InstanceGuard {
    tracefs: Tracefs,
    instance: Option<Instance>,
}

impl InstanceGuard {
    fn instance(&self) -> &Instance {
        // Set in create() and only taken by remove(), which consumes the guard.
        self.instance
            .as_ref()
            .expect("instance present until removed")
    }

    fn remove(mut self) -> Result<()> {
        self.remove_inner()
    }

    fn remove_inner(&mut self) -> Result<()> {
        let Some(inst) = self.instance.take() else {
            return Ok(());
        };
        let _ = inst.set_tracing_on(false);
        let _ = inst.set_tracer("nop", &[]);
        // rmdir answers EBUSY while a reader still holds trace_pipe; ours is closed by now,
        // but the kernel may take a moment to drop the last reference.
        let mut last = None;
        for _ in 0..20 {
            match self.tracefs.remove_instance(inst.name()) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        match last {
            Some(e) => Err(e).with_context(|| {
                format!(
                    "the instance is left behind; remove it with: rmdir {}",
                    inst.root().display()
                )
            }),
            None => Ok(()),
        }
    }
}

impl Drop for InstanceGuard {
    fn drop(&mut self) {
        let _ = self.remove_inner();
    }
}

/// How trace_pipe lines become output.
enum Mode {
    /// Function tracer lines as they are.
    Function,
    /// function_graph lines under the root, cut at the depth.
    Graph(GraphSelector),
    /// Function tracer lines rebuilt into a graph under the root.
    Rebuild(CallRebuilder),
}

/// Why streaming stopped.
#[derive(Debug)]
enum Outcome {
    /// The command exited.
    CommandExited(ExitStatus),
    /// The -p process exited.
    ProcessExited,
    /// --duration passed.
    Duration,
    /// A stop signal.
    Signal(Stop),
    /// stdout was closed.
    BrokenPipe,
}

pub fn run(args: &FtraceArgs, out: &mut dyn Write) -> Result<()> {
    let plan = plan(args)?;
    let tracefs = env::open_tracefs()?;
    let me = std::process::id();
    let swept = sweep_stale(&tracefs, &|pid| pid == me || process_exists(pid));
    for (kind, group, n) in &swept.groups {
        eprintln!(
            "rprobe: removed {n} leftover event(s) of a dead rprobe process: group {group} in {}",
            kind.file_name()
        );
    }
    for name in &swept.instances {
        eprintln!("rprobe: removed leftover instance {name} of a dead rprobe process");
    }
    let features = tracefs.features()?;
    if !features.has_tracer("function") {
        bail!("this kernel has no function tracer (built without CONFIG_FUNCTION_TRACER); see 'rprobe doctor'");
    }
    if plan.graph.is_some() && !features.has_tracer("function_graph") {
        bail!(
            "-G needs the function_graph tracer, which this kernel lacks (built without \
             CONFIG_FUNCTION_GRAPH_TRACER; available_tracers: {}); use -T FUNC for the function tracer",
            features.tracers.join(" ")
        );
    }
    if let Some(names) = function_names(&tracefs) {
        check_functions("-T", &args.trace, &names)?;
        check_functions("-N", &args.notrace, &names)?;
        if let Some(g) = &args.graph {
            check_functions("-G", std::slice::from_ref(g), &names)?;
        }
    }

    let signals = StopSignals::block()?;
    let mut child = match &plan.scope {
        Scope::Command { path } => {
            let argv: Vec<&std::ffi::OsStr> =
                args.command.iter().map(OsString::as_os_str).collect();
            Some(HeldChild::fork(path, &argv)?)
        }
        _ => None,
    };
    let name = session_name(me);
    let guard = InstanceGuard {
        instance: Some(tracefs.create_instance(&name)?),
        tracefs: tracefs.clone(),
    };
    let inst = guard.instance();
    let mode = configure(inst, args, &plan, child.as_ref(), &features.tracers)?;
    let pipe = crate::sys::signals::open_nonblocking(&inst.trace_pipe_path())?;
    inst.set_tracing_on(true)?;
    eprintln!("{}", header(args, &plan, &mode, child.as_ref(), &name));
    if let Some(c) = child.as_mut() {
        c.release().with_context(|| {
            let cmd = args
                .command
                .first()
                .map(|c| c.to_string_lossy().into_owned());
            format!("cannot run '{}'", cmd.unwrap_or_default())
        })?;
    }
    let mut run = Run {
        pipe,
        mode,
        partial: Vec::new(),
        events: 0,
        shown: 0,
        lost_lines: 0,
    };
    let outcome = run.stream(out, &signals, child.as_mut(), &plan);
    let _ = inst.set_tracing_on(false);
    let drained = match &outcome {
        Ok(Outcome::BrokenPipe) | Err(_) => Ok(false),
        Ok(_) => run.drain(out),
    };
    let lost = inst
        .cpu_stats()
        .map(|s| s.iter().map(|c| c.lost()).sum::<u64>())
        .unwrap_or(0)
        .max(run.lost_lines);
    let mut status = match &outcome {
        Ok(Outcome::CommandExited(s)) => Some(*s),
        _ => None,
    };
    if let Some(c) = child.as_mut() {
        c.kill(Stop::Terminate.number());
        status = status.or(c.wait().ok().flatten());
    }
    let (events, shown) = (run.events, run.shown);
    // trace_pipe must be closed before the instance can go (rmdir answers EBUSY).
    drop(run);
    guard.remove()?;
    drop(signals);
    let outcome = outcome?;
    let drained = drained?;
    if !matches!(outcome, Outcome::BrokenPipe) && !drained {
        let mut line = format!("rprobe: {events} events, {lost} lost");
        if args.graph.is_some() {
            line.push_str(&format!(", {shown} graph lines shown"));
        }
        match (&outcome, status) {
            (_, Some(st)) => line.push_str(&format!("; the command ended with {st}")),
            (Outcome::ProcessExited, _) => line.push_str("; the process exited"),
            (Outcome::Signal(s), _) => line.push_str(&format!("; stopped by {}", s.name())),
            (Outcome::Duration, _) => line.push_str("; --duration reached"),
            _ => {}
        }
        if lost > 0 {
            line.push_str(" (a bigger --buffer-size or fewer functions would lose fewer)");
        }
        eprintln!("{line}");
    }
    Ok(())
}

/// Filters, pid scope, options and the tracer, all in the instance; tracing stays off.
fn configure(
    inst: &Instance,
    args: &FtraceArgs,
    plan: &Plan,
    child: Option<&HeldChild>,
    top_level_tracers: &[String],
) -> Result<Mode> {
    inst.set_tracing_on(false)?;
    inst.set_buffer_percent(0)?;
    if let Some(kb) = args.buffer_kb {
        inst.set_buffer_size_kb(kb).with_context(|| {
            format!("--buffer-size {kb}: the kernel refused it (too big for its memory?)")
        })?;
    }
    let ft = |e: FtraceError| anyhow::Error::new(e);
    for p in &args.trace {
        inst.add_function(FunctionList::Trace, p)
            .map_err(ft)
            .with_context(|| format!("-T {p}"))?;
    }
    for p in &args.notrace {
        inst.add_function(FunctionList::NoTrace, p)
            .map_err(ft)
            .with_context(|| format!("-N {p}"))?;
    }
    let pids: Vec<u32> = match (&plan.scope, child) {
        (Scope::Pid { threads, .. }, _) => threads.clone(),
        (Scope::Command { .. }, Some(c)) => vec![c.pid()],
        _ => Vec::new(),
    };
    if !pids.is_empty() {
        inst.add_ftrace_pids(&pids)
            .map_err(ft)
            .context("pid filter")?;
        inst.set_option("function-fork", true)?;
        // Events enabled in the instance later (rprobe trace) follow the same tasks.
        if inst.add_event_pids(&pids).is_ok() {
            inst.set_option("event-fork", true)?;
        }
    }
    let Some(graph) = &plan.graph else {
        inst.set_tracer("function", top_level_tracers).map_err(ft)?;
        return Ok(Mode::Function);
    };
    if inst
        .available_tracers()?
        .iter()
        .any(|t| t == "function_graph")
    {
        inst.set_option("funcgraph-irqs", false)?;
        inst.set_option("funcgraph-proc", true)?;
        inst.set_option("funcgraph-tail", true)?;
        inst.set_tracer("function_graph", top_level_tracers)
            .map_err(ft)?;
        return Ok(Mode::Graph(GraphSelector::new(graph.clone())));
    }
    // function_graph exists only for the global buffer here: rebuild from callers.
    inst.set_option("print-parent", true)?;
    inst.set_tracer("function", top_level_tracers).map_err(ft)?;
    Ok(Mode::Rebuild(CallRebuilder::new(graph.clone())))
}

fn header(
    args: &FtraceArgs,
    plan: &Plan,
    mode: &Mode,
    child: Option<&HeldChild>,
    name: &str,
) -> String {
    let what = match (mode, &args.graph) {
        (Mode::Function, _) if args.trace.is_empty() => "every kernel function".to_owned(),
        (Mode::Function, _) => args.trace.join(", "),
        (_, Some(g)) => format!("the call graph under {g}"),
        (_, None) => String::new(),
    };
    let how = match mode {
        Mode::Function => "the function tracer".to_owned(),
        Mode::Graph(_) => "function_graph".to_owned(),
        Mode::Rebuild(_) => "the function tracer (function_graph does not run in instances on \
             this kernel: the graph is rebuilt from each call's caller, without durations)"
            .to_owned(),
    };
    let mut line = format!("rprobe: tracing {what}");
    if let Some(d) = args.depth {
        line.push_str(&format!(" to depth {d}"));
    }
    if !args.notrace.is_empty() {
        line.push_str(&format!(" except {}", args.notrace.join(", ")));
    }
    line.push_str(&format!(" with {how} in instance {name}"));
    match (&plan.scope, child) {
        (Scope::Pid { pid, threads }, _) => line.push_str(&format!(
            ", in pid {pid} ({} thread{}) and its new children",
            threads.len(),
            if threads.len() == 1 { "" } else { "s" }
        )),
        (Scope::Command { .. }, Some(c)) => line.push_str(&format!(
            ", in '{}' (pid {}) and its children",
            args.command
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            c.pid()
        )),
        _ => line.push_str(", on all CPUs"),
    }
    match plan.duration {
        Some(d) => line.push_str(&format!(
            "; stops after {:.1}s or on Ctrl-C",
            d.as_secs_f64()
        )),
        None if child.is_some() => line.push_str("; stops when it exits, or on Ctrl-C"),
        None => line.push_str("; Ctrl-C to stop"),
    }
    line
}

/// The streaming state: the pipe, the line splitter and the counters.
struct Run {
    pipe: std::fs::File,
    mode: Mode,
    partial: Vec<u8>,
    events: u64,
    shown: u64,
    lost_lines: u64,
}

/// Most bytes read in one batch before the output is flushed.
const BATCH: usize = 1 << 20;

impl Run {
    fn stream(
        &mut self,
        out: &mut dyn Write,
        signals: &StopSignals,
        mut child: Option<&mut HeldChild>,
        plan: &Plan,
    ) -> Result<Outcome> {
        use std::os::fd::AsRawFd;
        let deadline = plan.duration.map(|d| Instant::now() + d);
        loop {
            let mut timeout = 100;
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(Outcome::Duration);
                }
                timeout = timeout.min(left.as_millis().max(1) as i32);
            }
            let stdout = std::io::stdout().as_raw_fd();
            let ready = wait_readable(Some(self.pipe.as_raw_fd()), signals, Some(stdout), timeout)?;
            if ready.data && !self.batch(out)? {
                return Ok(Outcome::BrokenPipe);
            }
            if ready.hangup {
                return Ok(Outcome::BrokenPipe);
            }
            while let Some(sig) = signals.read()? {
                if sig != Stop::Child {
                    return Ok(Outcome::Signal(sig));
                }
            }
            if let Some(c) = child.as_deref_mut() {
                if let Some(st) = c.try_wait()? {
                    return Ok(Outcome::CommandExited(st));
                }
            }
            if let Scope::Pid { pid, .. } = plan.scope {
                if !process_exists(pid) {
                    return Ok(Outcome::ProcessExited);
                }
            }
        }
    }

    /// Read what trace_pipe has (up to [`BATCH`] bytes), write the lines, flush. False when
    /// stdout is closed.
    fn batch(&mut self, out: &mut dyn Write) -> Result<bool> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        let mut lines = Vec::new();
        while total < BATCH {
            match self.pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    total += n;
                    self.partial
                        .extend_from_slice(buf.get(..n).unwrap_or_default());
                    self.split(&mut lines);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("reading trace_pipe"),
            }
        }
        self.write(out, &lines)
    }

    fn split(&mut self, lines: &mut Vec<String>) {
        while let Some(nl) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            let text = String::from_utf8_lossy(line.get(..nl).unwrap_or_default()).into_owned();
            if let Some(n) = parse_lost_line(&text) {
                self.lost_lines += n;
                continue;
            }
            if text.trim().is_empty() {
                continue;
            }
            self.events += 1;
            match &mut self.mode {
                Mode::Function => lines.push(text),
                Mode::Graph(sel) => sel.line(&text, lines),
                Mode::Rebuild(r) => r.line(&text, lines),
            }
        }
    }

    fn write(&mut self, out: &mut dyn Write, lines: &[String]) -> Result<bool> {
        if !matches!(self.mode, Mode::Function) {
            self.shown += lines.len() as u64;
        }
        let result = lines
            .iter()
            .try_for_each(|l| writeln!(out, "{l}"))
            .and_then(|()| out.flush());
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(e).context("writing the trace"),
        }
    }

    /// After tracing stopped: read the rest, close open graph frames. True when stdout closed.
    fn drain(&mut self, out: &mut dyn Write) -> Result<bool> {
        loop {
            let before = self.events;
            let had = self.partial.len();
            if !self.batch(out)? {
                return Ok(true);
            }
            if self.events == before && self.partial.len() == had {
                break;
            }
        }
        let mut lines = Vec::new();
        if let Mode::Rebuild(r) = &mut self.mode {
            r.finish(&mut lines);
        }
        Ok(!self.write(out, &lines)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Names {
        Names::Kallsyms(list.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn unknown_functions_get_suggestions() {
        let n = names(&["vfs_write", "vfs_writev", "vfs_read", "ksys_write"]);
        check_functions("-T", &["vfs_write".into(), "vfs_*".into()], &n).expect("known");
        let err = check_functions("-T", &["vfs_wirte".into()], &n).expect_err("typo");
        assert_eq!(
            err.to_string(),
            "-T vfs_wirte: 'vfs_wirte' is not a kernel function (checked against /proc/kallsyms); did you mean vfs_write, vfs_writev?"
        );
        let err = check_functions("-N", &["xfs_*".into()], &n).expect_err("no match");
        assert!(
            err.to_string().contains("matches no kernel function"),
            "{err}"
        );
    }

    fn args(v: &[&str]) -> FtraceArgs {
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            a: FtraceArgs,
        }
        let mut argv = vec!["ftrace"];
        argv.extend_from_slice(v);
        <P as clap::Parser>::try_parse_from(argv).expect("parses").a
    }

    #[test]
    fn plans_refuse_contradictions_before_any_io() {
        for (argv, want) in [
            (vec!["-G", "f", "-T", "g"], "give one of them"),
            (vec!["--depth", "2"], "give its root with -G"),
            (vec!["-G", "f", "--depth", "0"], "level 1"),
            (vec!["-p", "1", "--", "true"], "give one of them"),
            (vec!["--duration", "0"], "positive number"),
            (vec!["-b", "0"], "holds no events"),
            (vec!["--", "no-such-program-rprobe"], "not found in $PATH"),
            (
                vec!["--", "/no/such/program"],
                "cannot run '/no/such/program': not found",
            ),
        ] {
            let err = plan(&args(&argv)).expect_err(want);
            assert!(err.to_string().contains(want), "{argv:?}: {err}");
        }
        let p = plan(&args(&["-G", "vfs_read", "--depth", "2", "--", "true"])).expect("fine");
        assert_eq!(
            p.graph,
            Some(GraphOptions {
                roots: vec!["vfs_read".into()],
                depth: 2
            })
        );
        assert!(matches!(p.scope, Scope::Command { .. }));
        let me = std::process::id();
        let p = plan(&args(&["-p", &me.to_string()])).expect("own pid");
        assert!(matches!(p.scope, Scope::Pid { ref threads, .. } if threads.contains(&me)));
    }

    #[test]
    fn a_pid_that_does_not_exist_is_named() {
        let err = process_threads(u32::MAX).expect_err("no such pid");
        assert!(
            err.to_string()
                .starts_with("no process with pid 4294967295 (-p)"),
            "{err}"
        );
    }
}

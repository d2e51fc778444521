//! Command-line interface: one file per subcommand; the only module that prints.
//!
//! `main` parses arguments, runs one command and maps the result to an exit code: 0 on
//! success (and on a closed output pipe, as `rprobe list | head` expects), 1 on failure with a
//! one-line `rprobe: ...` message on stderr, 2 for usage errors (clap's own).

mod add;
mod del;
mod doctor;
mod env;
mod flamegraph;
mod ftrace;
mod funcs;
mod list;
mod live;
mod record;
mod report;
mod script;
mod sdt;
mod stat;
mod trace;
mod vars;

use clap::{Parser, Subcommand};
use std::io::{self, Write};

const EXAMPLES: &str = "\
Examples:
  rprobe doctor                                          what this kernel allows, and why not
  rprobe add -x /bin/bash 'readline%return +0($retval):string'
  rprobe add 'do_sys_openat2 dfd=%di:s32 filename=+0(%si):string'
  rprobe add -n -x /lib/x86_64-linux-gnu/libc.so.6 'malloc size=arg1:u64'
  rprobe list 'probe_bash:*'
  rprobe del 'probe_bash:*'
  rprobe funcs -x /bin/bash 'read*'
  rprobe vars vfs_read                                   variables a probe can read
  rprobe ftrace -T vfs_write -- dd if=/dev/zero of=/dev/null count=10
  rprobe sdt -x /usr/lib/x86_64-linux-gnu/libstdc++.so.6 USDT probes of a library
  rprobe script -i perf.data                             replay as `perf script` prints it
  rprobe flamegraph -o flame.svg                         stacks as an SVG flame graph
  rprobe report -g                                       overhead per symbol, with callers
  rprobe trace 'vfs_read file->f_path.dentry->d_name.name:string'   probe, stream, clean up
  rprobe stat --latency sched:sched_wakeup,sched:sched_switch   run-queue latency histogram";

/// rprobe: a Linux tracer that needs no compiled BPF.
///
/// It writes kprobe/uprobe events to tracefs in perf-probe syntax, so events made by rprobe
/// and by `perf probe` mix freely.
#[derive(Debug, Parser)]
#[command(name = "rprobe", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Add(add::AddArgs),
    List(list::ListArgs),
    Del(del::DelArgs),
    Funcs(funcs::FuncsArgs),
    Doctor(doctor::DoctorArgs),
    Vars(vars::VarsArgs),
    Ftrace(ftrace::FtraceArgs),
    Record(record::RecordArgs),
    Sdt(sdt::SdtArgs),
    Script(script::ScriptArgs),
    Flamegraph(flamegraph::FlamegraphArgs),
    Report(report::ReportArgs),
    Trace(trace::TraceArgs),
    Stat(stat::StatArgs),
}

/// Run the command line; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let result = match cli.command {
        Command::Add(a) => add::run(&a, &mut out),
        Command::List(a) => list::run(&a, &mut out),
        Command::Del(a) => del::run(&a, &mut out),
        Command::Funcs(a) => funcs::run(&a, &mut out),
        Command::Doctor(a) => doctor::run(&a, &mut out),
        Command::Vars(a) => vars::run(&a, &mut out),
        Command::Ftrace(a) => ftrace::run(&a, &mut out),
        Command::Record(a) => record::run(&a, &mut out),
        Command::Sdt(a) => sdt::run(&a, &mut out),
        Command::Script(a) => script::run(&a, &mut out),
        Command::Flamegraph(a) => flamegraph::run(&a, &mut out),
        Command::Report(a) => report::run(&a, &mut out),
        Command::Trace(a) => trace::run(&a, &mut out),
        Command::Stat(a) => stat::run(&a, &mut out),
    };
    let flushed = out.flush();
    match result.and_then(|()| flushed.map_err(anyhow::Error::from)) {
        Ok(()) => 0,
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            eprintln!("rprobe: {}", one_line(&e));
            1
        }
    }
}

/// The error and its causes on one line, `a: b: c`, leaving out a cause whose text the line
/// already holds (errors that name their OS error in their own message, like
/// `TracefsError::Read`, also return it as their source; printing both said it twice).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::one_line;
    use anyhow::Context;

    #[test]
    fn one_line_keeps_every_cause_once() {
        let os = std::io::Error::from_raw_os_error(1);
        let inner = crate::tracefs::TracefsError::Read {
            path: "/sys/kernel/tracing/x".into(),
            source: os,
        };
        let e = Err::<(), _>(inner).context("listing probes").unwrap_err();
        let line = one_line(&e);
        assert_eq!(line.matches("Operation not permitted").count(), 1, "{line}");
        assert!(
            line.starts_with("listing probes: cannot read /sys/kernel/tracing/x"),
            "{line}"
        );

        let e = Err::<(), _>(std::io::Error::from_raw_os_error(2))
            .context("opening perf.data")
            .unwrap_err();
        assert_eq!(
            one_line(&e),
            "opening perf.data: No such file or directory (os error 2)"
        );
    }
}

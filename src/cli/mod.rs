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
            eprintln!("rprobe: {e:#}");
            1
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

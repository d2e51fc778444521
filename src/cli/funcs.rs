//! `rprobe funcs`: the functions that can be probed — the kernel's from
//! `available_filter_functions`, a binary's from its symbol table, demangled.

use super::env;
use crate::elf::demangle::demangle;
use crate::probes::resolve::glob_match;
use anyhow::{Context, Result};
use clap::Args;
use std::collections::BTreeSet;
use std::io::Write;

const EXAMPLES: &str = "\
Examples:
  rprobe funcs 'vfs_*'                                 # kernel functions kprobes accept
  rprobe funcs -x /bin/bash 'read*'
  rprobe funcs -x /usr/lib/x86_64-linux-gnu/libstdc++.so.6 | grep basic_string";

/// List the functions that can be probed.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct FuncsArgs {
    /// A user binary or library instead of the kernel.
    #[arg(short = 'x', long = "exec", value_name = "PATH")]
    exec: Option<String>,
    /// Glob over (demangled) names. Without one, names starting with '_' are hidden, as perf
    /// does; give '*' to see them.
    #[arg(value_name = "FILTER")]
    filter: Option<String>,
}

pub fn run(args: &FuncsArgs, out: &mut dyn Write) -> Result<()> {
    let names: BTreeSet<String> = match &args.exec {
        Some(exe) => {
            let path = env::find_binary(exe)?;
            let table = env::read_symbols(&path)?;
            table.names().into_iter().map(demangle).collect()
        }
        None => {
            let tracefs = env::open_tracefs()?;
            match tracefs.available_filter_functions() {
                Ok(list) => list.into_iter().collect(),
                Err(e) => {
                    // Some kernels refuse this file even to root (seen: EPERM on 6.18).
                    let syms = env::read_kallsyms()
                        .with_context(|| format!("{e}; and /proc/kallsyms is unreadable"))?;
                    eprintln!(
                        "rprobe: {e}; listing /proc/kallsyms text symbols instead (kprobes \
                         refuse the notrace ones among them)"
                    );
                    syms.into_iter()
                        .filter(|s| s.is_text())
                        .map(|s| s.name)
                        .collect()
                }
            }
        }
    };
    for n in names {
        let keep = match &args.filter {
            Some(f) => glob_match(f, &n),
            None => !n.starts_with('_'),
        };
        if keep {
            writeln!(out, "{n}")?;
        }
    }
    Ok(())
}

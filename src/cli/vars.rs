//! `rprobe vars`: the variables a probe point can read, with their types (as `perf probe -V`),
//! from DWARF for user programs and from BTF for the kernel.

use super::env;
use crate::probes::{self, Target};
use anyhow::{Context, Result};
use clap::Args;
use std::io::Write;

const EXAMPLES: &str = "\
Examples:
  rprobe vars tcp_sendmsg                     # kernel parameters, from BTF
  rprobe vars --btf vmlinux-6.1 vfs_read      # another kernel's
  rprobe vars --vmlinux vmlinux-6.1 vfs_read+4  # with locations, from DWARF
  rprobe vars -x ./server handle_request      # parameters and locals, from DWARF
  rprobe vars -x ./server handle_request+24";

/// List the variables available at a probe point, with their types.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct VarsArgs {
    /// A user binary or library instead of the kernel.
    #[arg(short = 'x', long = "exec", value_name = "PATH")]
    exec: Option<String>,
    /// Kernel types from this BTF file instead of /sys/kernel/btf/vmlinux.
    #[arg(long, value_name = "FILE")]
    btf: Option<std::path::PathBuf>,
    /// Kernel variables with their locations from this vmlinux's DWARF.
    #[arg(short = 'k', long, value_name = "PATH", conflicts_with = "btf")]
    vmlinux: Option<std::path::PathBuf>,
    /// FUNC or FUNC+OFFS.
    #[arg(value_name = "POINT")]
    point: String,
}

pub fn run(args: &VarsArgs, out: &mut dyn Write) -> Result<()> {
    let spec = probes::parse_spec(&args.point)
        .with_context(|| format!("bad probe point '{}'", args.point.escape_debug()))?;
    let lists = match &args.exec {
        Some(exe) => {
            let path = env::find_binary(exe)?;
            let symbols = env::read_symbols(&path)?;
            let path_str = path.to_string_lossy().into_owned();
            let maps = env::DebugMaps::open(&path)?;
            let dwarf = maps.dwarf().with_context(|| {
                format!(
                    "{} has no DWARF debuginfo (build with -g, or install its -dbg package)",
                    path.display()
                )
            })?;
            let target = Target::User {
                path: &path_str,
                symbols: &symbols,
                dwarf: Some(&dwarf),
            };
            probes::resolve::list_variables(&spec, target)?
        }
        None if args.vmlinux.is_some() => {
            let path = args.vmlinux.as_deref().context("--vmlinux")?;
            let vmlinux = super::add::Vmlinux::open(path)?;
            let (dwarf, symbols) = vmlinux.read()?;
            let kd = probes::resolve::KernelDwarf {
                dwarf: &dwarf,
                symbols: &symbols,
            };
            let kallsyms = kd.kernel_symbols();
            let target = Target::Kernel {
                kallsyms: Some(&kallsyms),
                traceable: None,
                blacklist: None,
                types: None,
                dwarf: Some(kd),
            };
            probes::resolve::list_variables(&spec, target)?
        }
        None => {
            let btf = env::kernel_btf(args.btf.as_deref())?
                .context("no kernel BTF: /sys/kernel/btf/vmlinux is missing; give --btf FILE")?;
            let kallsyms = env::read_kallsyms();
            let target = Target::Kernel {
                kallsyms: kallsyms.as_deref(),
                traceable: None,
                blacklist: None,
                types: Some(&btf),
                dwarf: None,
            };
            probes::resolve::list_variables(&spec, target)?
        }
    };
    anyhow::ensure!(!lists.is_empty(), "no debuginfo describes '{}'", args.point);
    for (point, vars) in lists {
        let func = point.split('+').next().unwrap_or(&point);
        writeln!(out, "Available variables at {func}")?;
        writeln!(out, "        @<{point}>")?;
        for v in vars {
            let note = match &v.location {
                Ok(_) => String::new(),
                Err(why) => format!("\t({why})"),
            };
            writeln!(out, "                {}\t{}{note}", v.type_name, v.name)?;
        }
    }
    Ok(())
}

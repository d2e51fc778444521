//! `rprobe add`: parse perf-probe specs, resolve them against a binary or the kernel, and
//! write the events — all or none.

use super::env;
use crate::probes::{self, ProbeDef, ResolveOptions, Target};
use crate::tracefs::{ProbeKind, TracefsError};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Write;

const EXAMPLES: &str = "\
Examples:
  rprobe add -x /bin/bash 'readline%return +0($retval):string'   # what commands are typed
  rprobe add -x /lib/x86_64-linux-gnu/libc.so.6 'malloc size=arg1:u64'
  rprobe add -x ./server 'handle+16 %di +8(%si):s32'             # offset and raw fetch args
  rprobe add 'do_sys_openat2 dfd=%di:s32 filename=+0(%si):string'
  rprobe add 'myprobes:opens=__x64_sys_openat name=+0(+104(%di)):ustring'
  rprobe add -n 'vfs_read%return ret=$retval:s64'                  # print the line only
  rprobe add 'vfs_read file->f_path.dentry->d_name.name:string count'  # names from BTF
  rprobe add -n --btf vmlinux-6.1 'tcp_sendmsg size sk->__sk_common.skc_daddr:u32'  # another kernel
  rprobe add -n --vmlinux vmlinux-6.1 'vfs_read+4 count'            # locations from DWARF
  rprobe add -x ./server 'handle:3 total' -a 'server.c:120 req->len'  # source lines
  rprobe add -x ./server 'handle;total+=* total'                     # lines matching a glob
  rprobe add -x python3 'sdt_python:function__entry arg1:string arg2:string'  # USDT, strings
  rprobe add -p 1234 %sdt_libstdcxx:throw                             # USDT of a process's library

Spec: [[GROUP:]EVENT=]FUNC[@FILE][+OFFS|%return|:RLN|;PATTERN] [[NAME=]ARG[:TYPE]]...
      [[GROUP:]EVENT=][@]FILE:LINE|FILE;PATTERN [[NAME=]ARG[:TYPE]]...   (need DWARF)
      [[GROUP:]EVENT=][%]sdt_PROVIDER:NAME [[NAME=]argK[:TYPE]] [[NAME=]FETCHARG]...  (USDT:
        the note's arguments are arg1..argN; argK:string reads the string argK points to)
  ARG:  %REG  +OFFS(ARG)  -OFFS(ARG)  +uOFFS(ARG)  $retval  $stackN  $stack  $comm  $argN
        @ADDR  @SYM[+OFFS]  @+FILEOFF  \\IMM  \\\"STR\"  arg1..arg6 (SysV argument registers)
        kernel: PARAM, PARAM->field.field[N], $params (from BTF at function entry, or
        from a vmlinux's DWARF anywhere: --vmlinux)
  TYPE: u8..u64 s8..s64 x8..x64 char string ustring symbol symstr b<W>@<O>/<C> TYPE[N]
Words of one spec may be given as separate arguments (as with perf probe); use --add
for more probes in one command.";

/// Add probe events (kprobes, or uprobes with -x).
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct AddArgs {
    /// Probe a user binary or shared library (path, or a name found in $PATH or the library
    /// directories) instead of the kernel.
    #[arg(short = 'x', long = "exec", value_name = "PATH")]
    exec: Option<String>,
    /// USDT specs: the file mapped by this process that holds the named probes (instead of
    /// -x PATH).
    #[arg(short = 'p', long = "pid", value_name = "PID", conflicts_with = "exec")]
    pid: Option<u32>,
    /// Print the definition lines that would be written, and write nothing.
    #[arg(short = 'n', long = "dry-run")]
    dry_run: bool,
    /// Add a second event with a _N suffix when the name is taken (perf's -f).
    #[arg(short = 'f', long)]
    force: bool,
    /// Kernel types from this BTF file (raw BTF, or an ELF file with a .BTF section) instead
    /// of /sys/kernel/btf/vmlinux; with --dry-run, specs can be prepared for another kernel.
    #[arg(long, value_name = "FILE")]
    btf: Option<std::path::PathBuf>,
    /// Kernel variables and their locations from this vmlinux's DWARF (at any offset, not
    /// only the entry); without it the running kernel's debug vmlinux is used when installed
    /// (/usr/lib/debug/boot/vmlinux-$(uname -r)) and BTF cannot answer (no BTF, or a
    /// variable at +OFFS). With --dry-run, specs can be prepared for another kernel.
    #[arg(short = 'k', long, value_name = "PATH", conflicts_with = "btf")]
    vmlinux: Option<std::path::PathBuf>,
    /// Another probe spec (repeatable).
    #[arg(short = 'a', long = "add", value_name = "SPEC")]
    more: Vec<String>,
    /// The probe spec; its words may be separate arguments.
    #[arg(value_name = "SPEC")]
    spec: Vec<String>,
}

pub fn run(args: &AddArgs, out: &mut dyn Write) -> Result<()> {
    let mut specs: Vec<String> = Vec::new();
    if !args.spec.is_empty() {
        specs.push(args.spec.join(" "));
    }
    specs.extend(args.more.iter().cloned());
    if specs.is_empty() {
        bail!("no probe spec given; for example: rprobe add -x /bin/bash 'readline%return +0($retval):string'");
    }
    let parsed = specs
        .iter()
        .map(|s| {
            probes::parse_spec(s).with_context(|| format!("bad probe spec '{}'", s.escape_debug()))
        })
        .collect::<Result<Vec<_>>>()?;

    // tracefs is optional for a dry run: the lines can be computed without it.
    let tracefs = match env::open_tracefs() {
        Ok(t) => Some(t),
        Err(_) if args.dry_run => None,
        Err(e) => return Err(e),
    };
    let features = tracefs.as_ref().and_then(|t| t.features().ok());
    let mut opts = ResolveOptions {
        existing: tracefs
            .as_ref()
            .map(env::existing_probe_names)
            .unwrap_or_default(),
        force: args.force,
        caps: features.as_ref().map(env::caps_from).unwrap_or_default(),
    };
    // -p PID: the mapped file that holds the USDT probes named.
    let exec = match (&args.exec, args.pid) {
        (Some(x), _) => Some(x.clone()),
        (None, Some(pid)) => Some(
            super::sdt::file_of_pid(pid, &parsed)?
                .to_string_lossy()
                .into_owned(),
        ),
        (None, None) => None,
    };
    let kind = if exec.is_some() || parsed.iter().all(probes::sdt::is_sdt) {
        ProbeKind::Uprobe
    } else {
        ProbeKind::Kprobe
    };
    if let (Some(f), false) = (&features, args.dry_run) {
        let present = match kind {
            ProbeKind::Kprobe => f.kprobe_events,
            ProbeKind::Uprobe => f.uprobe_events,
        };
        if !present {
            bail!(
                "this kernel has no {} (built without {}); see 'rprobe doctor'. \
                 --dry-run still prints the definition",
                kind.file_name(),
                kind.config_option()
            );
        }
    }

    let defs = resolve_defs(
        exec.as_deref(),
        args.btf.as_deref(),
        args.vmlinux.as_deref(),
        &parsed,
        &mut opts,
        tracefs.as_ref(),
    )?;

    if args.dry_run {
        for (_, d) in &defs {
            writeln!(out, "{}", d.line())?;
        }
        return Ok(());
    }
    let Some(tracefs) = tracefs else {
        bail!("tracefs is not available")
    };
    // All or none: on the first refusal, delete what this command added.
    let mut added: Vec<&ProbeDef> = Vec::new();
    for (_, d) in &defs {
        if let Err(e) = tracefs.append_probe(d.kind, &d.line()) {
            for a in added.iter().rev() {
                let _ = tracefs.delete_probe(a.kind, &a.group, &a.event);
            }
            return Err(explain_rejection(e, d));
        }
        added.push(d);
    }
    let plural = if defs.len() > 1 { "s" } else { "" };
    writeln!(out, "Added new event{plural}:")?;
    for (i, d) in &defs {
        let spec = &parsed[*i];
        let mut line = format!("  {:<20} (on {}", d.name(), spec.point_text);
        if let probes::Place::User { path, .. } = &d.place {
            line.push_str(&format!(" in {path}"));
        }
        if !spec.args.is_empty() {
            line.push_str(" with");
            for a in &spec.args {
                line.push(' ');
                line.push_str(&a.text);
            }
        }
        line.push(')');
        writeln!(out, "{line}")?;
    }
    if let Some((_, last)) = defs.last() {
        writeln!(out, "\nYou can now use it in all perf tools, such as:\n")?;
        writeln!(out, "\tperf record -e {} -aR sleep 1\n", last.name())?;
    }
    Ok(())
}

/// Resolve parsed specs into definitions, as `add` does: user probes against `exec`'s
/// symbols and DWARF, kernel probes against this kernel's symbol lists and BTF (or
/// `btf_path`/`vmlinux_path`). Each definition comes with the index of its spec.
pub(super) fn resolve_defs(
    exec: Option<&str>,
    btf_path: Option<&std::path::Path>,
    vmlinux_path: Option<&std::path::Path>,
    parsed: &[probes::ProbeSpec],
    opts: &mut ResolveOptions,
    tracefs: Option<&crate::tracefs::Tracefs>,
) -> Result<Vec<(usize, ProbeDef)>> {
    let mut defs: Vec<(usize, ProbeDef)> = Vec::new();
    match exec {
        Some(exe) => {
            let path = env::find_binary(exe)?;
            let symbols = env::read_symbols(&path)?;
            let path_str = path.to_string_lossy().into_owned();
            let maps = env::DebugMaps::open(&path)?;
            let dwarf = maps.dwarf();
            let usdt = match parsed.iter().any(probes::sdt::is_sdt) {
                true => Some(super::sdt::read_notes(&path)?),
                false => None,
            };
            for (i, spec) in parsed.iter().enumerate() {
                if let (Some((notes, addrs)), true) = (&usdt, probes::sdt::is_sdt(spec)) {
                    let target = probes::sdt::SdtTarget {
                        path: &path_str,
                        notes,
                        symbols: addrs,
                    };
                    let r = probes::sdt::resolve_sdt(spec, &target, opts).with_context(|| {
                        format!("bad probe spec '{}'", spec.text.escape_debug())
                    })?;
                    for why in &r.left_out {
                        eprintln!("rprobe: note: {why}");
                    }
                    defs.extend(r.defs.into_iter().map(|d| (i, d)));
                    continue;
                }
                let target = Target::User {
                    path: &path_str,
                    symbols: &symbols,
                    dwarf: dwarf.as_ref(),
                };
                let d = probes::resolve(spec, target, opts)
                    .with_context(|| format!("bad probe spec '{}'", spec.text.escape_debug()))?;
                defs.extend(d.into_iter().map(|d| (i, d)));
            }
        }
        None => {
            // --btf and --vmlinux describe another kernel: this one's symbol lists do not
            // apply to it.
            let local = btf_path.is_none() && vmlinux_path.is_none();
            // (Not even read then: /proc/kallsyms alone takes tens of milliseconds.)
            let kallsyms = local.then(env::read_kallsyms).flatten();
            let traceable = tracefs.filter(|_| local).and_then(env::read_traceable);
            let blacklist = local.then(env::read_kprobe_blacklist).flatten();
            let btf = match vmlinux_path {
                Some(_) => None,
                None => env::kernel_btf(btf_path)?,
            };
            let needs_dwarf = btf.is_none() || parsed.iter().any(names_past_entry);
            let vmlinux = match (vmlinux_path, needs_dwarf && btf_path.is_none()) {
                (Some(p), _) => Some(Vmlinux::open(p)?),
                (None, true) => Vmlinux::find_default(),
                (None, false) => None,
            };
            let kdwarf = vmlinux.as_ref().map(Vmlinux::read).transpose()?;
            let ksyms = kdwarf.as_ref().map(|(d, s)| probes::resolve::KernelDwarf {
                dwarf: d,
                symbols: s,
            });
            // Offline, the vmlinux's own symbols say which functions exist.
            let kallsyms = match (vmlinux_path, &ksyms) {
                (Some(_), Some(k)) => Some(k.kernel_symbols()),
                _ => kallsyms,
            };
            for (i, spec) in parsed.iter().enumerate() {
                let target = Target::Kernel {
                    kallsyms: kallsyms.as_deref(),
                    traceable: traceable.as_ref(),
                    blacklist: blacklist.as_ref(),
                    types: btf.as_ref().map(|b| b as &dyn crate::debuginfo::TypeSource),
                    dwarf: ksyms,
                };
                let d = probes::resolve(spec, target, opts)
                    .with_context(|| format!("bad probe spec '{}'", spec.text.escape_debug()))?;
                defs.extend(d.into_iter().map(|d| (i, d)));
            }
        }
    }

    Ok(defs)
}

/// Turn a kernel refusal into an error whose first line quotes the kernel's reason; when the
/// kernel logged an `error_log` entry, two more lines show the definition with a caret under
/// the part it refused.
fn explain_rejection(e: TracefsError, d: &ProbeDef) -> anyhow::Error {
    let full = e.render_caret();
    let (first, rest) = match full.split_once('\n') {
        Some((f, r)) => (f.to_string(), format!("\n{r}")),
        None => (full.clone(), String::new()),
    };
    // The kernel says only this for functions it will not probe.
    let hint = if d.kind == ProbeKind::Kprobe && first.contains("Failed to register probe event") {
        " (the function is notrace, inlined away, or on the kprobe blacklist: see \
         /sys/kernel/debug/kprobes/blacklist; probe a caller instead)"
    } else {
        ""
    };
    anyhow::anyhow!("cannot add {}: {first}{hint}{rest}", d.name())
}

/// Whether a spec names variables at a place BTF cannot describe (away from the entry).
fn names_past_entry(spec: &probes::ProbeSpec) -> bool {
    use probes::spec::{ArgValue, FuncAt, ProbePoint};
    let past = !matches!(
        spec.point,
        ProbePoint::Function {
            at: FuncAt::Entry,
            ..
        }
    );
    past && spec
        .args
        .iter()
        .any(|a| !matches!(a.value, ArgValue::Raw(_)))
}

/// A kernel image with DWARF, mapped: `--vmlinux PATH`, or the running kernel's debug
/// vmlinux where distributions install it. Only the sections and units a probe needs are
/// read from the mapping; nothing is copied.
pub(super) struct Vmlinux {
    path: std::path::PathBuf,
    map: memmap2::Mmap,
}

impl Vmlinux {
    /// Map `path`.
    pub(super) fn open(path: &std::path::Path) -> Result<Vmlinux> {
        let map = crate::sys::map_file(path)
            .with_context(|| format!("cannot read the vmlinux {}", path.display()))?;
        Ok(Vmlinux {
            path: path.to_path_buf(),
            map,
        })
    }

    /// The running kernel's vmlinux with DWARF in the places perf looks (`vmlinux_path`):
    /// `/usr/lib/debug/boot/vmlinux-$(uname -r)` (Debian's `linux-image-*-dbg`),
    /// `/usr/lib/debug/lib/modules/$(uname -r)/vmlinux` (Fedora), `/boot/vmlinux-$(uname -r)`
    /// and `/lib/modules/$(uname -r)/build/vmlinux`.
    pub(super) fn find_default() -> Option<Vmlinux> {
        let release = nix::sys::utsname::uname()
            .ok()?
            .release()
            .to_string_lossy()
            .into_owned();
        [
            format!("/usr/lib/debug/boot/vmlinux-{release}"),
            format!("/usr/lib/debug/lib/modules/{release}/vmlinux"),
            format!("/boot/vmlinux-{release}"),
            format!("/lib/modules/{release}/build/vmlinux"),
        ]
        .iter()
        .map(std::path::Path::new)
        .filter(|p| p.is_file())
        .find_map(|p| Vmlinux::open(p).ok())
    }

    /// Its DWARF and function symbols.
    pub(super) fn read(&self) -> Result<(crate::dwarf::Dwarf<'_>, crate::elf::SymbolTable)> {
        let what = || format!("cannot use the vmlinux {}", self.path.display());
        let dwarf = crate::dwarf::Dwarf::parse(&self.map).with_context(what)?;
        let symbols = crate::elf::parse_functions(&self.map).with_context(what)?;
        Ok((dwarf, symbols))
    }
}

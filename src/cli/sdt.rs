//! `rprobe sdt`: the USDT (SystemTap SDT) probes of a binary, or of every file a process has
//! mapped, as `tplist -l` and `readelf -n` show them.
//!
//! Output, one block per file with probes (stable; documented in the README):
//!
//! ```text
//! /usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30: 3 probes
//!   libstdcxx:catch  location 0xa7f05  semaphore -  args 8@%rdx 8@-80(%rbx)
//! ```
//!
//! `location` and `semaphore` are the note's own addresses (what `readelf -n` prints);
//! `-v` adds the uprobe each probe becomes: `PATH:FILEOFF(SEMOFF)` and the converted args.

use super::env;
use crate::probes::sdt::is_sdt;
use crate::probes::spec::{ProbePoint, ProbeSpec};
use crate::probes::usdt::{convert_args, parse_notes, ElfAddrs, SdtArg, SdtNote};
use crate::sys;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};

const EXAMPLES: &str = "\
Examples:
  rprobe sdt -x /usr/lib/x86_64-linux-gnu/libstdc++.so.6     # a library's probes
  rprobe sdt -x python3 -v                                    # with the uprobe each becomes
  rprobe sdt -p 1234                                          # every file a process maps
  rprobe sdt -x python3 'function__*'                         # a glob over PROVIDER:NAME or NAME";

/// List USDT (SystemTap SDT) probes.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct SdtArgs {
    /// A binary or library (a path, or a name looked up in $PATH and the library directories).
    #[arg(
        short = 'x',
        long = "exec",
        value_name = "PATH",
        conflicts_with = "pid"
    )]
    exec: Option<String>,
    /// Every file mapped by this process.
    #[arg(short = 'p', long = "pid", value_name = "PID")]
    pid: Option<u32>,
    /// Also show the uprobe definition each probe becomes.
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    /// Glob over `PROVIDER:NAME` or `NAME`.
    #[arg(value_name = "FILTER")]
    filter: Option<String>,
}

pub fn run(args: &SdtArgs, out: &mut dyn Write) -> Result<()> {
    let files = match (&args.exec, args.pid) {
        (Some(exe), _) => vec![env::find_binary(exe)?],
        (None, Some(pid)) => mapped_files(pid)?,
        (None, None) => bail!("name a binary with -x PATH or a process with -p PID"),
    };
    let mut shown = 0usize;
    for path in &files {
        let map = match sys::map_file(path) {
            Ok(m) => m,
            // A process's maps can name files that are gone or unreadable; a -x file is not.
            Err(e) if args.pid.is_some() => {
                eprintln!("rprobe: skipping {}: {e:#}", path.display());
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let notes = match parse_notes(&map) {
            Ok(n) => n,
            // A process also maps data files (locale archives, caches): not ELF, no probes.
            Err(_) if args.pid.is_some() => continue,
            Err(e) => return Err(e).with_context(|| format!("{}", path.display())),
        };
        let notes: Vec<&SdtNote> = notes
            .iter()
            .filter(|n| matches_filter(args.filter.as_deref(), n))
            .collect();
        if notes.is_empty() {
            continue;
        }
        let addrs = if args.verbose {
            Some(ElfAddrs::parse(&map).with_context(|| format!("{}", path.display()))?)
        } else {
            None
        };
        let plural = if notes.len() == 1 { "" } else { "s" };
        writeln!(out, "{}: {} probe{plural}", path.display(), notes.len())?;
        for n in notes {
            shown += 1;
            let sem = match n.semaphore {
                0 => "-".to_owned(),
                s => format!("{s:#x}"),
            };
            writeln!(
                out,
                "  {}:{}  location {:#x}  semaphore {sem}  args {}",
                n.provider,
                n.name,
                n.pc,
                if n.args.is_empty() { "-" } else { &n.args }
            )?;
            if let Some(addrs) = &addrs {
                writeln!(out, "    {}", uprobe_text(path, n, addrs))?;
            }
        }
    }
    if shown == 0 {
        let what = match &args.filter {
            Some(f) => format!("no USDT probe matches '{f}'"),
            None => "no USDT probes (no .note.stapsdt section)".to_owned(),
        };
        match (&args.exec, args.pid) {
            (Some(_), _) => bail!("{}: {what}", files[0].display()),
            _ => bail!(
                "process {}: {what} in any mapped file",
                args.pid.unwrap_or(0)
            ),
        }
    }
    Ok(())
}

fn matches_filter(filter: Option<&str>, n: &SdtNote) -> bool {
    use crate::probes::resolve::glob_match;
    match filter {
        None => true,
        Some(f) => glob_match(f, &format!("{}:{}", n.provider, n.name)) || glob_match(f, &n.name),
    }
}

/// `uprobe PATH:0xOFF(0xSEM) arg1=%dx:u64 ...`, or why the probe cannot be placed.
fn uprobe_text(path: &Path, n: &SdtNote, addrs: &ElfAddrs) -> String {
    let Some(off) = n.file_offset else {
        return "uprobe: the probe's address is outside the file's loaded segments".to_owned();
    };
    let mut s = format!("uprobe {}:{off:#x}", path.display());
    if let Some(sem) = n.semaphore_offset {
        s.push_str(&format!("({sem:#x})"));
    }
    for (i, a) in convert_args(&n.args, addrs, n.bias).into_iter().enumerate() {
        match a {
            SdtArg::Fetch(arg, ty) => s.push_str(&format!(" arg{}={arg}:{ty}", i + 1)),
            SdtArg::Unsupported { text, reason } => {
                s.push_str(&format!(" arg{}=<{text}: {reason}>", i + 1))
            }
        }
    }
    s
}

/// The files a process maps, in first-mapped order, from `/proc/PID/maps`.
fn mapped_files(pid: u32) -> Result<Vec<PathBuf>> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).with_context(|| {
        format!("cannot read /proc/{pid}/maps: is {pid} a running process you may trace?")
    })?;
    let mut files: Vec<PathBuf> = Vec::new();
    for line in maps.lines() {
        // 7f6d0c400000-7f6d0c428000 r--p 00000000 fe:00 1835 /usr/lib/x86_64-linux-gnu/libc.so.6
        let Some(path) = line.split_whitespace().nth(5) else {
            continue;
        };
        if path.starts_with('/') && !files.iter().any(|f| f.as_os_str() == path) {
            files.push(PathBuf::from(path));
        }
    }
    Ok(files)
}

/// The USDT notes and symbols of `path`, for resolving `sdt_PROVIDER:NAME` specs.
pub(super) fn read_notes(path: &Path) -> Result<(Vec<SdtNote>, ElfAddrs)> {
    let map = sys::map_file(path)?;
    let what = || format!("{}", path.display());
    let notes = parse_notes(&map).with_context(what)?;
    let addrs = ElfAddrs::parse(&map).with_context(what)?;
    Ok((notes, addrs))
}

/// The first file mapped by `pid` whose notes hold every USDT probe `specs` name (as
/// `sdt -p` finds them), for `-p PID` without `-x`.
pub(super) fn file_of_pid(pid: u32, specs: &[ProbeSpec]) -> Result<PathBuf> {
    let wanted: Vec<&ProbeSpec> = specs.iter().filter(|s| is_sdt(s)).collect();
    for path in mapped_files(pid)? {
        let Ok(map) = sys::map_file(&path) else {
            continue;
        };
        let Ok(notes) = parse_notes(&map) else {
            continue;
        };
        if !notes.is_empty() && wanted.iter().all(|s| holds(&notes, s)) {
            return Ok(path);
        }
    }
    let names: Vec<&str> = wanted.iter().map(|s| s.point_text.as_str()).collect();
    bail!(
        "process {pid} maps no file with the USDT probe{} {}; 'rprobe sdt -p {pid}' lists \
         the probes it has, and -x PATH names the file",
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    )
}

/// Whether a note of `notes` matches the USDT spec.
fn holds(notes: &[SdtNote], spec: &ProbeSpec) -> bool {
    use crate::probes::resolve::glob_match;
    let ProbePoint::Sdt { provider, name } = &spec.point else {
        return false;
    };
    let provider = provider
        .as_deref()
        .map(|p| p.strip_prefix("sdt_").unwrap_or(p));
    notes
        .iter()
        .any(|n| provider.is_none_or(|p| glob_match(p, &n.provider)) && glob_match(name, &n.name))
}

//! What the commands share: opening tracefs (mounting it when root), finding a binary the
//! way perf does, reading its symbols, and the kernel's symbol lists.

use crate::elf::kallsyms::{self, KernelSymbol};
use crate::elf::{parse_functions, SymbolTable};
use crate::probes::Caps;
use crate::sys;
use crate::tracefs::{Features, ProbeKind, Tracefs, TracefsError};
use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Find tracefs; when it is not mounted and we are root, mount it at `/sys/kernel/tracing`.
/// `RPROBE_TRACEFS=DIR` uses DIR instead (a copy of a tracefs tree, an instance, or a test
/// fixture), and never mounts anything.
pub fn open_tracefs() -> Result<Tracefs> {
    if let Some(dir) = std::env::var_os("RPROBE_TRACEFS") {
        let dir = PathBuf::from(dir);
        return Tracefs::find_in(&[dir.as_path()])
            .context("RPROBE_TRACEFS names a directory without a tracefs README or events/");
    }
    match Tracefs::find() {
        Ok(t) => Ok(t),
        Err(e @ TracefsError::NotMounted { .. }) => {
            let target = Path::new(Tracefs::CANDIDATES[0]);
            if !sys::is_root() || !target.is_dir() {
                return Err(e).context("run as root, or mount tracefs first");
            }
            sys::mount_tracefs(target).with_context(|| format!("{e}"))?;
            Tracefs::find().map_err(Into::into)
        }
        Err(e) => Err(e.into()),
    }
}

/// The probe capabilities the resolver checks specs against, from the tracefs README.
pub fn caps_from(f: &Features) -> Caps {
    Caps {
        ustring: f.ustring,
        user_deref: f.user_deref,
        symstr: f.symstr,
        char_type: f.char_type,
        arrays: f.array_types,
        immediates: f.immediates,
        arg_n: f.arg_n,
        ret_arg_n: f.arg_n,
        pd: f.pd_type,
        multiprobe: f.multiprobe,
        ref_ctr: f.ref_ctr_offset,
    }
}

/// Library directories searched for a bare library name such as `libc.so.6`.
const LIB_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
    "/usr/local/lib",
];

/// The binary `-x` names, as perf finds it: a path as given, or a bare name looked up in
/// `$PATH` and then the library directories; symlinks resolved (`/bin/bash` →
/// `/usr/bin/bash`), since the kernel identifies a uprobe's file by inode and perf writes the
/// real path.
pub fn find_binary(name: &str) -> Result<PathBuf> {
    let candidates: Vec<PathBuf> = if name.contains('/') {
        vec![PathBuf::from(name)]
    } else {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(LIB_DIRS.iter().map(PathBuf::from))
            .map(|d| d.join(name))
            .collect()
    };
    for c in &candidates {
        if c.is_file() {
            return std::fs::canonicalize(c)
                .with_context(|| format!("cannot resolve the path of {}", c.display()));
        }
    }
    if name.contains('/') {
        bail!("no such file: {name}; give the path of an executable or shared library to -x");
    }
    bail!("cannot find '{name}' in $PATH or the library directories; give its full path to -x")
}

/// Read the function symbols of a binary.
pub fn read_symbols(path: &Path) -> Result<SymbolTable> {
    let map = sys::map_file(path)?;
    parse_functions(&map).with_context(|| format!("{} cannot be probed", path.display()))
}

/// A binary and the file holding its DWARF (itself, or a separate debug file found through
/// its build id or `.gnu_debuglink`), mapped.
pub struct DebugMaps {
    binary: memmap2::Mmap,
    debug: Option<memmap2::Mmap>,
}

impl DebugMaps {
    /// Map `path` and the first debuginfo candidate that exists and holds DWARF.
    pub fn open(path: &Path) -> Result<DebugMaps> {
        let binary = sys::map_file(path)?;
        let mut debug = None;
        for c in crate::dwarf::debug_candidates(&binary, path) {
            if c == path || !c.is_file() {
                continue;
            }
            if let Ok(m) = sys::map_file(&c) {
                if crate::dwarf::Dwarf::parse(&m).is_ok() {
                    debug = Some(m);
                    break;
                }
            }
        }
        Ok(DebugMaps { binary, debug })
    }

    /// The DWARF: the separate debug file's (with call frame info from the binary), else the
    /// binary's own, else none.
    pub fn dwarf(&self) -> Option<crate::dwarf::Dwarf<'_>> {
        if let Some(d) = &self.debug {
            let mut dw = crate::dwarf::Dwarf::parse(d).ok()?;
            let _ = dw.use_frames_of(&self.binary);
            return Some(dw);
        }
        crate::dwarf::Dwarf::parse(&self.binary).ok()
    }
}

/// `/proc/kallsyms`, when readable. Names are there even when `kptr_restrict` hides the
/// addresses.
pub fn read_kallsyms() -> Option<Vec<KernelSymbol>> {
    let text = std::fs::read_to_string("/proc/kallsyms").ok()?;
    let syms = kallsyms::parse(&text);
    (!syms.is_empty()).then_some(syms)
}

/// `available_filter_functions`: the functions kprobes accept.
pub fn read_traceable(tracefs: &Tracefs) -> Option<BTreeSet<String>> {
    tracefs
        .available_filter_functions()
        .ok()
        .map(|v| v.into_iter().collect())
}

/// Kernel BTF: `--btf FILE` when given (an error if unreadable), else
/// `/sys/kernel/btf/vmlinux` when the kernel has it (`None` otherwise).
pub fn kernel_btf(path: Option<&Path>) -> Result<Option<crate::btf::Btf>> {
    match path {
        Some(p) => Ok(Some(crate::btf::Btf::load(p)?)),
        None => {
            let p = Path::new("/sys/kernel/btf/vmlinux");
            if !p.exists() {
                return Ok(None);
            }
            // Raw fetch args need no BTF: a broken default file only costs the names.
            match crate::btf::Btf::load(p) {
                Ok(b) => Ok(Some(b)),
                Err(e) => {
                    eprintln!("rprobe: ignoring the kernel's BTF: {e}");
                    Ok(None)
                }
            }
        }
    }
}

/// The kprobe blacklist from debugfs, when debugfs is mounted and readable.
pub fn read_kprobe_blacklist() -> Option<BTreeSet<String>> {
    let text = std::fs::read_to_string("/sys/kernel/debug/kprobes/blacklist").ok()?;
    Some(
        kallsyms::parse_kprobe_blacklist(&text)
            .into_iter()
            .collect(),
    )
}

/// `group:event` of every kprobe and uprobe event that exists.
pub fn existing_probe_names(tracefs: &Tracefs) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for kind in [ProbeKind::Kprobe, ProbeKind::Uprobe] {
        if let Ok(lines) = tracefs.probe_events(kind) {
            names.extend(
                lines
                    .into_iter()
                    .map(|l| format!("{}:{}", l.group, l.event)),
            );
        }
    }
    names
}

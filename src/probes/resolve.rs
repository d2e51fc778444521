//! From a parsed spec to probe definitions: find the function, compute the place, type and
//! name every argument, and pick event names as perf does.
//!
//! Pure: the caller hands in the symbol table of the binary (or the kernel's function list),
//! the kernel's probe capabilities, and the names of events that exist already.
//!
//! Naming follows perf (`tools/perf/util/probe-event.c`):
//! - group `probe` for the kernel, `probe_<exe>` for a user binary, where `<exe>` is the
//!   file's base name cut at the first character that is not alphanumeric or `_`
//!   (`libc.so.6` → `probe_libc`);
//! - event: the function name cut at the first `.` or `@` (`foo.isra.0` → `foo`), plus
//!   `__return` for return probes;
//! - an event name that exists already is an error unless `force` is set; then, and for the
//!   second and later points of one spec, `_1`, `_2`, … are appended;
//! - an argument without `NAME=` is named after its last field (`file->f_path.dentry` →
//!   `dentry`), or its text with the first `:` made `_` for a plain variable
//!   (`filename:string` → `filename_string`); a raw fetch arg stays unnamed in perf and the
//!   kernel calls it `argN` for the N-th argument, which is the name rprobe writes.
//!
//! Without debuginfo, `arg1`…`arg6` name the SysV x86_64 argument registers `%di %si %dx %cx
//! %r8 %r9`, valid at function entry (and at an offset, where the register may have moved
//! on). `argN:string` reads the string the argument points to (`+0(%di):string`), as perf
//! does for a `char *` variable.

use super::chain::{resolve_chain, Base};
use super::def::{DefArg, Place, ProbeDef, ProbeKind};
use super::error::SpecError;
use super::fetch::{FetchArg, FetchType};
use super::regs::SYSV_ARGS;
use super::spec::{ArgType, ArgValue, Field, FuncAt, ProbeArg, ProbePoint, ProbeSpec};
use crate::debuginfo::{TypeId, TypeSource};
use crate::elf::kallsyms::KernelSymbol;
use crate::elf::SymbolTable;
use std::collections::BTreeSet;

/// Most probe points one spec may expand to (perf's `--max-probes` default).
pub const MAX_PROBES: usize = 128;

/// Highest `_N` suffix tried for a free event name (perf's `MAX_EVENT_INDEX`).
const MAX_EVENT_INDEX: u32 = 1024;

/// What the kernel's probe events accept, from the tracefs README. `Default` is "everything",
/// for `--dry-run` on a machine whose tracefs cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caps {
    /// `ustring` type.
    pub ustring: bool,
    /// `+u` user-memory loads.
    pub user_deref: bool,
    /// `symstr` type.
    pub symstr: bool,
    /// `char` type.
    pub char_type: bool,
    /// `TYPE[N]` arrays.
    pub arrays: bool,
    /// `\IMM` and `\"STR"`.
    pub immediates: bool,
    /// `$argN` at kernel function entry.
    pub arg_n: bool,
    /// `$argN` in kernel return probes (6.9+).
    pub ret_arg_n: bool,
    /// `%pd`/`%pD`.
    pub pd: bool,
    /// Several probe points under one event name (5.4+, README `Create/append/`): perf
    /// then gives every point of one spec the same name instead of `_1`, `_2`, ...
    pub multiprobe: bool,
    /// USDT semaphores as `PATH:OFF(REF_CTR_OFFSET)` (4.20+, README `ref_ctr_offset`).
    pub ref_ctr: bool,
}

impl Default for Caps {
    fn default() -> Caps {
        Caps {
            ustring: true,
            user_deref: true,
            symstr: true,
            char_type: true,
            arrays: true,
            immediates: true,
            arg_n: true,
            ret_arg_n: true,
            pd: true,
            multiprobe: true,
            ref_ctr: true,
        }
    }
}

/// The binary or kernel a spec is resolved against.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    /// A user binary.
    User {
        /// Canonical absolute path (symlinks resolved), as written into the definition.
        path: &'a str,
        /// Its function symbols.
        symbols: &'a SymbolTable,
        /// Its DWARF, when the binary or a debug file has it.
        dwarf: Option<&'a crate::dwarf::Dwarf<'a>>,
    },
    /// The running kernel.
    Kernel {
        /// Text symbols from `/proc/kallsyms`, when readable.
        kallsyms: Option<&'a [KernelSymbol]>,
        /// `available_filter_functions`, when readable: the functions kprobes accept.
        traceable: Option<&'a BTreeSet<String>>,
        /// The kprobe blacklist, when readable (debugfs): functions kprobes refuse.
        blacklist: Option<&'a BTreeSet<String>>,
        /// Kernel types (BTF, or DWARF of a vmlinux), for arguments by name.
        types: Option<&'a dyn TypeSource>,
        /// The DWARF of a vmlinux (`--vmlinux`): variables with their locations at any
        /// offset, asked before `types`.
        dwarf: Option<KernelDwarf<'a>>,
    },
}

/// A vmlinux's DWARF and its ELF function symbols (which give each function's address, so
/// only the unit holding it is read: [`crate::dwarf::Dwarf::functions_at`]).
#[derive(Clone, Copy)]
pub struct KernelDwarf<'a> {
    /// The DWARF.
    pub dwarf: &'a crate::dwarf::Dwarf<'a>,
    /// The vmlinux's function symbols.
    pub symbols: &'a SymbolTable,
}

impl KernelDwarf<'_> {
    /// `pc` as the function symbol holding it plus the distance (`dentry_open+42`), a global
    /// symbol preferred among aliases.
    fn place_of(&self, pc: u64) -> Option<Place> {
        let sym = self
            .symbols
            .funcs
            .iter()
            .filter(|s| s.addr <= pc && pc < s.addr + s.size.max(1))
            .min_by_key(|s| (pc - s.addr, !s.global))?;
        Some(Place::Kernel {
            symbol: sym.name.clone(),
            offset: pc - sym.addr,
        })
    }

    /// The vmlinux's functions as kernel symbols, for name checks and globs offline.
    pub fn kernel_symbols(&self) -> Vec<KernelSymbol> {
        self.symbols
            .funcs
            .iter()
            .map(|f| KernelSymbol {
                addr: f.addr,
                kind: if f.global { 'T' } else { 't' },
                name: f.name.clone(),
                module: None,
            })
            .collect()
    }
}

/// Options for [`resolve`].
#[derive(Debug, Clone, Default)]
pub struct ResolveOptions {
    /// `group:event` names that exist already.
    pub existing: BTreeSet<String>,
    /// Add `_N` suffixes instead of refusing a name that exists (`-f`).
    pub force: bool,
    /// Kernel capabilities.
    pub caps: Caps,
}

/// Resolve one spec into one or more probe definitions (more than one for globs and
/// functions defined several times). Names chosen are added to `opts.existing`, so several
/// specs resolved in a row do not collide.
pub fn resolve(
    spec: &ProbeSpec,
    target: Target<'_>,
    opts: &mut ResolveOptions,
) -> Result<Vec<ProbeDef>, SpecError> {
    // Source lines, inlined instances and FUNC@FILE of a user program, from its DWARF.
    let dwarf_points = match target {
        Target::User {
            dwarf: Some(d),
            path,
            symbols,
        } => user_dwarf_points(&spec.point, d, path, symbols)?,
        Target::Kernel {
            dwarf: Some(kd), ..
        } => kernel_dwarf_points(&spec.point, &kd)?,
        _ => None,
    };
    let entry_at = FuncAt::Entry;
    let no_name = String::new();
    let (name, at) =
        match (&dwarf_points, &spec.point) {
            (Some(_), ProbePoint::Function { name, at, .. }) => (
                name,
                match at {
                    FuncAt::Offset(_) => at,
                    _ => &entry_at,
                },
            ),
            (Some(_), _) => (&no_name, &entry_at),
            (None, _) => match &spec.point {
                ProbePoint::Function {
                    name,
                    src: None,
                    at: at @ (FuncAt::Entry | FuncAt::Offset(_) | FuncAt::Return),
                } => (name, at),
                // FUNC@FILE: user_dwarf_points checked that the DWARF defines it there.
                ProbePoint::Function {
                    name,
                    src: Some(_),
                    at: at @ (FuncAt::Entry | FuncAt::Offset(_) | FuncAt::Return),
                } if matches!(target, Target::User { dwarf: Some(_), .. }) => (name, at),
                ProbePoint::Function { src: Some(_), .. }
                | ProbePoint::Function {
                    at: FuncAt::Line(_) | FuncAt::Lazy(_),
                    ..
                }
                | ProbePoint::Source { .. } => return Err(SpecError::at(
                    0,
                    "source files and line numbers need DWARF debuginfo: the binary's (build with \
                 -g, or install its -dbg package), or for the kernel a vmlinux (--vmlinux)",
                    "probe FUNC, FUNC+OFFS or FUNC%return, or give the debuginfo",
                )),
                ProbePoint::Address(_) => {
                    return Err(SpecError::at(
                        0,
                        "probing a raw address is not supported",
                        "probe a function name, FUNC+OFFS or FUNC%return",
                    ))
                }
                // USDT notes are resolved by `sdt::resolve_sdt`, from the binary's notes.
                ProbePoint::Sdt { .. } => {
                    return Err(SpecError::whole(
                        "a USDT probe lives in a user binary",
                        "name the binary or library with -x PATH (or the process with -p PID); \
                         'rprobe sdt -x PATH' lists its probes",
                    ))
                }
            },
        };
    let retprobe = matches!(at, FuncAt::Return);
    let offset = match at {
        FuncAt::Offset(o) => *o,
        _ => 0,
    };
    let kind = match target {
        Target::User { .. } => ProbeKind::Uprobe,
        Target::Kernel { .. } => ProbeKind::Kprobe,
    };
    let points = match (target, &dwarf_points) {
        (_, Some(_)) => Vec::new(),
        (Target::User { path, symbols, .. }, None) => user_points(name, offset, path, symbols)?,
        (
            Target::Kernel {
                kallsyms,
                traceable,
                blacklist,
                ..
            },
            None,
        ) => kernel_points(name, offset, kallsyms, traceable, blacklist)?,
    };
    // perf moves past the prologue of unoptimized user code when the spec reads variables.
    let wants_vars = spec.args.iter().any(|a| match &a.value {
        ArgValue::Params | ArgValue::Vars => true,
        ArgValue::Var { name, .. } => !is_arg_register_name(name),
        ArgValue::Raw(_) => false,
    });
    let group = match (&spec.group, target) {
        (Some(g), _) => g.clone(),
        (None, Target::Kernel { .. }) => "probe".to_string(),
        (None, Target::User { path, .. }) => user_group(path),
    };
    // With a vmlinux's DWARF, a function that was also inlined is probed at every instance
    // (perf's `die_walk_instances`), each at the address of the function it is in.
    let points: Vec<_> = match (dwarf_points, target, retprobe) {
        (Some(d), _, _) => d,
        (
            None,
            Target::Kernel {
                dwarf: Some(kd), ..
            },
            false,
        ) => points
            .into_iter()
            .flat_map(|p| kernel_instances(&kd, p, offset))
            .collect(),
        (None, _, _) => points
            .into_iter()
            .map(|(n, p, a)| (n, p, a, None))
            .collect(),
    };
    let mut defs = Vec::with_capacity(points.len());
    let mut first_event: Option<String> = None;
    for (i, (realname, mut place, addr, kinst)) in points.into_iter().enumerate() {
        let base = match &spec.event {
            Some(e) => e.clone(),
            // perf names a FUNC:RLN probe FUNC_L<RLN>.
            None => match &spec.point {
                ProbePoint::Function {
                    at: FuncAt::Line(n),
                    ..
                } => format!("{}_L{n}", event_base(&realname)),
                _ => event_base(&realname),
            },
        };
        let scope = match target {
            Target::Kernel {
                dwarf: Some(kd),
                types,
                ..
            } => match &kinst {
                Some((inst, pc)) => instance_scope(kd.dwarf, inst, *pc, retprobe, &kernel_static),
                None => kernel_dwarf_scope(&kd, &realname, offset, retprobe),
            }
            .or_else(|| types.and_then(|t| kernel_scope(t, &realname, offset == 0 && !retprobe))),
            Target::Kernel { types: Some(t), .. } => {
                kernel_scope(t, &realname, offset == 0 && !retprobe)
            }
            Target::User {
                dwarf: Some(d),
                symbols,
                ..
            } if kinst.is_some() => kinst.as_ref().and_then(|(inst, pc)| {
                instance_scope(d, inst, *pc, retprobe, &|a, _| user_static(symbols, a, *pc))
            }),
            Target::User {
                dwarf: Some(d),
                symbols,
                ..
            } => addr.and_then(|entry| {
                let inst = d
                    .functions(&realname)
                    .ok()?
                    .into_iter()
                    .find(|f| !f.inlined && f.entry_pc == entry);
                let mut pc = entry + offset;
                if let (Some(inst), true) = (&inst, wants_vars && offset == 0 && !retprobe) {
                    if let (false, Some(pe)) = (inst.optimized, inst.prologue_end) {
                        if pe > entry {
                            pc = pe;
                            if let Place::User { offset: o, .. } = &mut place {
                                *o += pe - entry;
                            }
                        }
                    }
                }
                dwarf_scope(d, &realname, entry, pc, retprobe, &|a| {
                    symbols.mapping_offset(a, pc)
                })
            }),
            _ => None,
        };
        let ctx = ArgContext {
            func: &realname,
            kind,
            retprobe,
            caps: &opts.caps,
            scope,
        };
        let mut args = Vec::with_capacity(spec.args.len());
        for a in &spec.args {
            args.extend(resolve_arg(a, args.len(), &ctx)?);
        }
        let event = match (&first_event, opts.caps.multiprobe) {
            (Some(e), true) => e.clone(),
            _ => pick_event_name(&group, &base, retprobe, opts, i > 0 || opts.force)?,
        };
        first_event.get_or_insert_with(|| event.clone());
        opts.existing.insert(format!("{group}:{event}"));
        let def = ProbeDef {
            kind,
            retprobe,
            group: group.clone(),
            event,
            place,
            args,
        };
        def.validate()?;
        defs.push(def);
    }
    Ok(defs)
}

/// A variable as `rprobe vars` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarInfo {
    /// C spelling of its type.
    pub type_name: String,
    /// Name.
    pub name: String,
    /// Where it is read from (`%di`, `-24(%bp)`), or why it cannot be read there.
    pub location: Result<String, String>,
    /// A parameter (else a local).
    pub is_param: bool,
}

/// The variables a spec's probe point can read, per probe point (`perf probe -V`): the point
/// as `FUNC+OFFS` and its variables.
pub fn list_variables(
    spec: &ProbeSpec,
    target: Target<'_>,
) -> Result<Vec<(String, Vec<VarInfo>)>, SpecError> {
    let (name, offset) = match &spec.point {
        ProbePoint::Function {
            name,
            src: None,
            at: FuncAt::Offset(o),
        } => (name.clone(), *o),
        ProbePoint::Function {
            name,
            src: None,
            at: FuncAt::Entry,
        } => (name.clone(), 0),
        _ => {
            return Err(SpecError::at(
                0,
                "variables are listed at FUNC or FUNC+OFFS",
                "give a function, for example 'rprobe vars vfs_read'",
            ))
        }
    };
    let points = match target {
        Target::User { path, symbols, .. } => user_points(&name, offset, path, symbols)?,
        Target::Kernel {
            kallsyms,
            traceable,
            blacklist,
            ..
        } => kernel_points(&name, offset, kallsyms, traceable, blacklist)?,
    };
    let mut out = Vec::new();
    for (realname, _, addr) in points {
        let mut at = offset;
        let scope = match target {
            Target::Kernel {
                dwarf: Some(kd),
                types,
                ..
            } => kernel_dwarf_scope(&kd, &realname, offset, false)
                .or_else(|| types.and_then(|t| kernel_scope(t, &realname, offset == 0))),
            Target::Kernel { types: Some(t), .. } => kernel_scope(t, &realname, offset == 0),
            Target::User {
                dwarf: Some(d),
                symbols,
                ..
            } => addr.and_then(|entry| {
                at = offset.max(prologue_skip(d, &realname, entry, offset == 0));
                dwarf_scope(d, &realname, entry, entry + at, false, &|a| {
                    symbols.mapping_offset(a, entry + at)
                })
            }),
            _ => None,
        };
        let Some(scope) = scope else { continue };
        let vars = scope
            .values
            .iter()
            .map(|v| VarInfo {
                type_name: scope.types.type_name(v.ty),
                name: v.name.clone(),
                location: v.base.clone().map(|b| match b {
                    Base::Value(f) => f.to_string(),
                    Base::Memory(a, o) => a.deref(o, false).to_string(),
                    Base::FileData(o) => format!("@+{o}"),
                }),
                is_param: v.is_param,
            })
            .collect();
        out.push((format!("{realname}+{at}"), vars));
    }
    Ok(out)
}

/// `probe_<exe>` for a binary path, as perf names it.
pub fn user_group(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let cut: String = base
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    format!("probe_{cut}")
}

/// Event name from a function name: cut at the first `.` or `@`; C++/Rust names (anything
/// else that is not a C identifier character) become `_`.
fn event_base(func: &str) -> String {
    let cut = match func.find(['.', '@']) {
        Some(i) if i > 0 => func.get(..i).unwrap_or(func),
        _ => func,
    };
    cut.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub(super) fn pick_event_name(
    group: &str,
    base: &str,
    retprobe: bool,
    opts: &ResolveOptions,
    allow_suffix: bool,
) -> Result<String, SpecError> {
    let suffix = if retprobe { "__return" } else { "" };
    let first = format!("{base}{suffix}");
    if !opts.existing.contains(&format!("{group}:{first}")) {
        return Ok(first);
    }
    if !allow_suffix {
        return Err(SpecError::whole(
            format!("event {group}:{first} already exists"),
            format!(
                "remove it with 'rprobe del {group}:{first}', add -f to add another as \
                 {first}_1, or name the new one with GROUP:EVENT=FUNC"
            ),
        ));
    }
    (1..MAX_EVENT_INDEX)
        .map(|i| format!("{base}{suffix}_{i}"))
        .find(|n| !opts.existing.contains(&format!("{group}:{n}")))
        .ok_or_else(|| {
            SpecError::whole(
                format!("too many events named {first}_N"),
                "delete some of them",
            )
        })
}

pub(super) fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Shell-style glob match (`*`, `?`, `[abc]`, `[!a-z]`) over bytes.
pub fn glob_match(pat: &str, s: &str) -> bool {
    fn class(p: &[u8], c: u8) -> Option<(bool, usize)> {
        // p starts after '['; returns (matched, length of class incl. ']').
        let mut i = 0;
        let neg = matches!(p.first(), Some(b'!' | b'^'));
        if neg {
            i += 1;
        }
        let mut hit = false;
        let mut first = true;
        while let Some(&b) = p.get(i) {
            if b == b']' && !first {
                return Some((hit != neg, i + 1));
            }
            first = false;
            if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|e| *e != b']') {
                let hi = p.get(i + 2).copied().unwrap_or(b);
                hit |= (b..=hi).contains(&c);
                i += 3;
            } else {
                hit |= b == c;
                i += 1;
            }
        }
        None
    }
    fn go(p: &[u8], s: &[u8]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some(b'*') => (0..=s.len()).any(|k| {
                go(
                    p.get(1..).unwrap_or_default(),
                    s.get(k..).unwrap_or_default(),
                )
            }),
            Some(b'?') => {
                !s.is_empty()
                    && go(
                        p.get(1..).unwrap_or_default(),
                        s.get(1..).unwrap_or_default(),
                    )
            }
            Some(b'[') => match (
                s.first(),
                class(
                    p.get(1..).unwrap_or_default(),
                    s.first().copied().unwrap_or(0),
                ),
            ) {
                (Some(_), Some((true, n))) => go(
                    p.get(1 + n..).unwrap_or_default(),
                    s.get(1..).unwrap_or_default(),
                ),
                (Some(c), None) => {
                    *c == b'['
                        && go(
                            p.get(1..).unwrap_or_default(),
                            s.get(1..).unwrap_or_default(),
                        )
                }
                _ => false,
            },
            Some(c) => {
                s.first() == Some(c)
                    && go(
                        p.get(1..).unwrap_or_default(),
                        s.get(1..).unwrap_or_default(),
                    )
            }
        }
    }
    go(pat.as_bytes(), s.as_bytes())
}

/// Up to three known names close to `name`, for "did you mean" hints.
pub fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut scored: Vec<(usize, &str)> = candidates
        .filter_map(|c| {
            let d = edit_distance(name, c);
            let close = d <= name.len().max(3) / 3 || (name.len() >= 4 && c.contains(name));
            close.then_some((d, c))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(3)
        .map(|(_, c)| c.to_string())
        .collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            if let Some(c) = cur.get_mut(j + 1) {
                *c = sub.min(del).min(ins);
            }
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

pub(super) fn did_you_mean(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("did you mean {}? ", s.join(", "))
    }
}

fn user_points(
    name: &str,
    offset: u64,
    path: &str,
    symbols: &SymbolTable,
) -> Result<Vec<(String, Place, Option<u64>)>, SpecError> {
    let matches: Vec<_> = if is_glob(name) {
        symbols
            .funcs
            .iter()
            .filter(|f| glob_match(name, &f.name))
            .collect()
    } else {
        symbols.find_by_name(name).collect()
    };
    if matches.is_empty() {
        let hint = did_you_mean(&suggest(name, symbols.names().into_iter()));
        let stripped = if symbols.has_symtab {
            ""
        } else {
            " (the binary is stripped: only exported .dynsym symbols are visible)"
        };
        return Err(SpecError::at(
            0,
            format!("no function '{name}' in {path}{stripped}"),
            format!("{hint}list what can be probed with 'rprobe funcs -x {path}'"),
        ));
    }
    if matches.len() > MAX_PROBES {
        return Err(SpecError::at(
            0,
            format!("'{name}' matches {} functions", matches.len()),
            format!("narrow the pattern: at most {MAX_PROBES} probes at once"),
        ));
    }
    let mut out = Vec::with_capacity(matches.len());
    for f in matches {
        if f.size > 0 && offset >= f.size {
            return Err(SpecError::at(
                0,
                format!(
                    "offset {offset} is beyond the end of {} ({} bytes)",
                    f.name, f.size
                ),
                "give an offset inside the function",
            ));
        }
        let Some(file_off) = f.file_offset else {
            return Err(SpecError::at(
                0,
                format!(
                    "{} at 0x{:x} is not in a loaded segment of {path}",
                    f.name, f.addr
                ),
                "probe a function in the program's code",
            ));
        };
        out.push((
            f.name.clone(),
            Place::User {
                path: path.to_string(),
                offset: file_off + offset,
                ref_ctr: None,
            },
            Some(f.addr),
        ));
    }
    Ok(out)
}

fn kernel_points(
    name: &str,
    offset: u64,
    kallsyms: Option<&[KernelSymbol]>,
    traceable: Option<&BTreeSet<String>>,
    blacklist: Option<&BTreeSet<String>>,
) -> Result<Vec<(String, Place, Option<u64>)>, SpecError> {
    let names: Vec<String> = if is_glob(name) {
        let from: Box<dyn Iterator<Item = &str>> = match (traceable, kallsyms) {
            (Some(t), _) => Box::new(t.iter().map(String::as_str)),
            (None, Some(k)) => Box::new(k.iter().filter(|s| s.is_text()).map(|s| s.name.as_str())),
            (None, None) => {
                return Err(SpecError::at(
                    0,
                    format!("cannot expand '{name}': no kernel symbol list is readable"),
                    "mount tracefs or run as root so /proc/kallsyms shows addresses",
                ))
            }
        };
        let set: BTreeSet<String> = from
            .filter(|n| glob_match(name, n))
            .map(str::to_string)
            .collect();
        if set.is_empty() {
            return Err(SpecError::at(
                0,
                format!("no kernel function matches '{name}'"),
                "check the pattern with 'rprobe funcs'",
            ));
        }
        if set.len() > MAX_PROBES {
            return Err(SpecError::at(
                0,
                format!("'{name}' matches {} kernel functions", set.len()),
                format!("narrow the pattern: at most {MAX_PROBES} probes at once"),
            ));
        }
        set.into_iter().collect()
    } else {
        vec![name.to_string()]
    };
    let mut out = Vec::new();
    for n in names {
        let syms: Vec<&KernelSymbol> = kallsyms
            .map(|k| k.iter().filter(|s| s.is_text() && s.name == n).collect())
            .unwrap_or_default();
        if let Some(k) = kallsyms {
            if syms.is_empty() {
                let hint = did_you_mean(&suggest(
                    &n,
                    k.iter().filter(|s| s.is_text()).map(|s| s.name.as_str()),
                ));
                return Err(SpecError::at(
                    0,
                    format!("no kernel function '{n}' in the kernel's symbols"),
                    format!("{hint}list what can be probed with 'rprobe funcs'"),
                ));
            }
        }
        if blacklist.is_some_and(|b| b.contains(&n)) {
            return Err(SpecError::at(
                0,
                format!("kernel function '{n}' cannot be probed: it is on the kprobe blacklist"),
                "kprobes refuse functions kprobes themselves use (see \
                 /sys/kernel/debug/kprobes/blacklist); probe its caller instead",
            ));
        }
        if let Some(t) = traceable {
            if !t.contains(&n) {
                return Err(SpecError::at(
                    0,
                    format!("kernel function '{n}' cannot be probed: it is not in available_filter_functions"),
                    "kprobes refuse notrace and blacklisted functions; probe its caller or a \
                     function it calls",
                ));
            }
        }
        let module = syms.first().and_then(|s| s.module.clone());
        let symbol = match module {
            Some(m) => format!("{m}:{n}"),
            None => n.clone(),
        };
        out.push((n, Place::Kernel { symbol, offset }, None));
    }
    Ok(out)
}

/// What an argument is resolved against.
struct ArgContext<'a> {
    /// The function the probe is in.
    func: &'a str,
    kind: ProbeKind,
    retprobe: bool,
    caps: &'a Caps,
    /// The variables debuginfo knows at the probe point, when there is debuginfo.
    scope: Option<Scope<'a>>,
}

/// Variables a spec may name at one probe point, from BTF or DWARF.
struct Scope<'a> {
    values: Vec<NamedValue>,
    types: &'a dyn TypeSource,
    /// Loads through these values read user memory (a syscall's arguments).
    user_memory: bool,
    /// "BTF" or "DWARF", for messages.
    source: &'static str,
}

/// A variable, its type, and where its value is — or why it cannot be read here.
struct NamedValue {
    name: String,
    ty: TypeId,
    base: Result<Base, String>,
    is_param: bool,
}

/// Offsets in `struct pt_regs` of the registers that carry syscall arguments 1..6 on x86_64
/// (`di si dx r10 r8 r9`).
const SYSCALL_ARG_REGS: [&str; 6] = ["di", "si", "dx", "r10", "r8", "r9"];

/// The parameters of kernel function `func` from its prototype, each reached through the
/// calling convention at the entry. Syscall wrappers (`__x64_sys_NAME`) take a
/// `struct pt_regs *` in `%di`; when the types know the syscall's own prototype
/// (`__se_sys_NAME`/`__do_sys_NAME`), its arguments are named after it and read from that
/// `pt_regs`, from user memory. Away from the entry the registers may have moved on: the
/// values then say so.
fn kernel_scope<'a>(types: &'a dyn TypeSource, func: &str, at_entry: bool) -> Option<Scope<'a>> {
    let param = |p: crate::debuginfo::Param, base: FetchArg| NamedValue {
        name: p.name,
        ty: p.ty,
        base: if at_entry {
            Ok(Base::Value(base))
        } else {
            Err("BTF gives parameters only at the function's entry (no %return, no +OFFS)".into())
        },
        is_param: true,
    };
    if let Some(sys) = func.strip_prefix("__x64_sys_") {
        let proto = ["__se_sys_", "__do_sys_"]
            .iter()
            .find_map(|p| types.function(&format!("{p}{sys}")).ok());
        if let Some(proto) = proto {
            let values = proto
                .params
                .into_iter()
                .zip(SYSCALL_ARG_REGS)
                .map(|(p, r)| {
                    let off = super::regs::pt_regs_offset(r).unwrap_or(0);
                    param(p, FetchArg::Reg("di").deref(i64::from(off), false))
                })
                .collect();
            return Some(Scope {
                values,
                types,
                user_memory: true,
                source: "BTF",
            });
        }
    }
    let proto = types.function(func).ok()?;
    let values = proto
        .params
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let base = match SYSV_ARGS.get(i) {
                Some(r) => FetchArg::Reg(r),
                None => FetchArg::Stack(i as u32 - 5),
            };
            param(p, base)
        })
        .collect();
    Some(Scope {
        values,
        types,
        user_memory: false,
        source: "BTF",
    })
}

/// Bytes from `entry` to the end of the prologue, when `wanted` and the function's unit is
/// not optimized (perf's rule: only then do the prologue's stores put variables where the
/// frame says); 0 otherwise.
fn prologue_skip(dwarf: &crate::dwarf::Dwarf<'_>, func: &str, entry: u64, wanted: bool) -> u64 {
    if !wanted {
        return 0;
    }
    let Ok(instances) = dwarf.functions(func) else {
        return 0;
    };
    instances
        .into_iter()
        .find(|f| !f.inlined && f.entry_pc == entry)
        .filter(|f| !f.optimized)
        .and_then(|f| f.prologue_end)
        .filter(|pe| *pe > entry)
        .map_or(0, |pe| pe - entry)
}

/// Variables of a user program at `pc`, from DWARF, with their locations turned into fetch
/// bases (`file_offset` maps a link-time address to the probed file's offset).
fn dwarf_scope<'a>(
    dwarf: &'a crate::dwarf::Dwarf<'a>,
    func: &str,
    entry: u64,
    pc: u64,
    retprobe: bool,
    file_offset: &dyn Fn(u64) -> Option<u64>,
) -> Option<Scope<'a>> {
    let inst = dwarf
        .functions(func)
        .ok()?
        .into_iter()
        .find(|f| !f.inlined && f.entry_pc == entry)?;
    instance_scope(dwarf, &inst, pc, retprobe, &|a, _| {
        file_offset(a)
            .map(|o| Base::FileData(o as i64))
            .ok_or_else(|| format!("its address 0x{a:x} is not in the probed file"))
    })
}

/// Variables of a kernel function at `offset` from its entry, from a vmlinux's DWARF. As
/// perf does, the probe stays at the entry (no prologue skip), and a global or static is
/// read through its name (`@jiffies`), which the kernel relocates.
fn kernel_dwarf_scope<'a>(
    kd: &KernelDwarf<'a>,
    func: &str,
    offset: u64,
    retprobe: bool,
) -> Option<Scope<'a>> {
    let entry = kd.symbols.find_by_name(func).next()?.addr;
    let inst = kd
        .dwarf
        .functions_at(func, entry)
        .ok()?
        .into_iter()
        .find(|f| !f.inlined && f.entry_pc == entry)?;
    instance_scope(kd.dwarf, &inst, entry + offset, retprobe, &kernel_static)
}

/// A kernel global or static, read through its name (`@jiffies`), which the kernel
/// relocates.
fn kernel_static(_addr: u64, name: &str) -> Result<Base, String> {
    Ok(Base::Value(FetchArg::Symbol {
        name: name.to_string(),
        offset: super::fetch::Num::dec(0),
    }))
}

/// A point with the DWARF instance it probes, when it is one of several.
/// A probe point: the function it is named after, the place, the symbol's address, and the
/// DWARF instance whose variables it reads with the address it probes.
type KernelPoint = (
    String,
    Place,
    Option<u64>,
    Option<(crate::dwarf::FuncInstance, u64)>,
);

/// The probe points of kernel function `point.0` from a vmlinux's DWARF: the point itself
/// when the function was never inlined, else every instance of it in the unit that holds it
/// (inlined copies and the out-of-line one, in DIE order, as perf walks them), each placed
/// at the function symbol holding it plus the distance (`dentry_open+42`).
fn kernel_instances(
    kd: &KernelDwarf<'_>,
    point: (String, Place, Option<u64>),
    offset: u64,
) -> Vec<KernelPoint> {
    let (name, place, addr) = point;
    let insts = kd
        .symbols
        .find_by_name(&name)
        .next()
        .and_then(|s| kd.dwarf.functions_at(&name, s.addr).ok())
        .filter(|v| v.iter().any(|f| f.inlined));
    let Some(insts) = insts else {
        return vec![(name, place, addr, None)];
    };
    insts
        .into_iter()
        .filter_map(|f| {
            let pc = f.entry_pc + offset;
            let place = kd.place_of(pc)?;
            Some((name.clone(), place, None, Some((f, pc))))
        })
        .collect()
}

/// The variables of one function instance at `pc`; `statics` turns the address of a global
/// or static (and its name) into a fetch base.
fn instance_scope<'a>(
    dwarf: &'a crate::dwarf::Dwarf<'a>,
    inst: &crate::dwarf::FuncInstance,
    pc: u64,
    retprobe: bool,
    statics: &dyn Fn(u64, &str) -> Result<Base, String>,
) -> Option<Scope<'a>> {
    let vars = dwarf.variables_at(inst, pc).ok()?;
    let values = vars
        .into_iter()
        .map(|v| {
            let base = if retprobe {
                Err("a return probe cannot read variables, only $retval".to_string())
            } else {
                location_base(&v.location, &|a| statics(a, &v.name))
                    .map_err(|why| with_live_ranges(why, inst, &v.live))
            };
            NamedValue {
                name: v.name,
                ty: v.ty,
                base,
                is_param: v.is_param,
            }
        })
        .collect();
    Some(Scope {
        values,
        types: dwarf,
        user_memory: false,
        source: "DWARF",
    })
}

/// `why` a variable cannot be read, plus where in the function it can (`vfs_fsync_range+0..
/// +12`), so the user can move the probe there.
fn with_live_ranges(why: String, inst: &crate::dwarf::FuncInstance, live: &[(u64, u64)]) -> String {
    let here: Vec<String> = live
        .iter()
        .filter(|(b, _)| *b >= inst.entry_pc && inst.contains(*b))
        .take(4)
        .map(|(b, e)| {
            format!(
                "{}+{}..+{}",
                inst.name,
                b - inst.entry_pc,
                e - inst.entry_pc
            )
        })
        .collect();
    if here.is_empty() {
        format!("{why}, and nowhere else in {} either", inst.name)
    } else {
        format!("{why}; it is readable at {}", here.join(", "))
    }
}

fn location_base(
    loc: &crate::debuginfo::Location,
    statics: &dyn Fn(u64) -> Result<Base, String>,
) -> Result<Base, String> {
    use crate::debuginfo::Location;
    let reg = |n: u16| {
        super::regs::dwarf_register(n)
            .map(FetchArg::Reg)
            .ok_or_else(|| format!("it lives in DWARF register {n}, which tracefs cannot read"))
    };
    match loc {
        Location::Reg(n) => Ok(Base::Value(reg(*n)?)),
        Location::Mem { reg: r, offset } => Ok(Base::Memory(reg(*r)?, *offset)),
        Location::Addr(a) => statics(*a),
        Location::Const(v) => Ok(Base::Value(FetchArg::Imm(super::fetch::Num::dec(*v)))),
        Location::OptimizedOut => {
            Err("it is optimized out at this address (no location here)".to_string())
        }
        Location::Unsupported(op) => Err(format!(
            "its location ({op}) cannot be expressed as a fetch arg"
        )),
    }
}

fn resolve_arg(a: &ProbeArg, index: usize, ctx: &ArgContext<'_>) -> Result<Vec<DefArg>, SpecError> {
    let (kind, retprobe, caps) = (ctx.kind, ctx.retprobe, ctx.caps);
    let err = |problem: String, fix: &str| SpecError::at(a.pos, problem, fix);
    let ty = match &a.ty {
        None => None,
        Some(ArgType::Fetch(t)) => Some(t.clone()),
        Some(ArgType::Cast(c)) => Some(match c {
            'u' => FetchType::U(64),
            's' => FetchType::S(64),
            _ => FetchType::X(64),
        }),
    };
    // Arguments by name through debuginfo.
    let named: Option<Vec<&NamedValue>> = match (&a.value, &ctx.scope) {
        (ArgValue::Var { name, .. }, Some(sc)) => Some(
            sc.values
                .iter()
                .filter(|v| &v.name == name)
                .take(1)
                .collect(),
        )
        .filter(|v: &Vec<&NamedValue>| !v.is_empty()),
        (ArgValue::Params, Some(sc)) => Some(sc.values.iter().filter(|v| v.is_param).collect()),
        (ArgValue::Vars, Some(sc)) => Some(sc.values.iter().collect()),
        _ => None,
    };
    if let (Some(named), Some(sc)) = (named, &ctx.scope) {
        let fields: &[Field] = match &a.value {
            ArgValue::Var { fields, .. } => fields,
            _ => &[],
        };
        let single = matches!(a.value, ArgValue::Var { .. });
        let mut out = Vec::new();
        for v in named {
            let base = match &v.base {
                Ok(b) => b.clone(),
                // $params/$vars take what can be read, as perf does.
                Err(_) if !single => continue,
                Err(why) => {
                    return Err(err(
                        format!("cannot read '{}' in {}: {why}", v.name, ctx.func),
                        "probe where it is live, or use raw fetch args",
                    ))
                }
            };
            let want = match &a.ty {
                Some(ArgType::Fetch(t)) => Some(t.clone()),
                _ => None,
            };
            let r = resolve_chain(
                sc.types,
                &v.name,
                base,
                v.ty,
                fields,
                want.as_ref(),
                a.user || sc.user_memory,
                a.pos,
            )?;
            let mut fty = r.ty;
            if let Some(ArgType::Cast(c)) = &a.ty {
                fty = recast(&fty, *c);
            }
            let name = match (&a.name, &a.value, &a.ty) {
                (Some(n), _, _) => n.clone(),
                (None, ArgValue::Var { fields, .. }, Some(t)) if fields.is_empty() => {
                    sanitize_name(&format!("{}_{t}", v.name))
                }
                _ => r.name,
            };
            check_fetch(&r.fetch, Some(&fty), kind, retprobe, caps)
                .map_err(|(p, fix)| err(p, &fix))?;
            out.push(DefArg {
                name,
                fetch: r.fetch,
                ty: Some(fty),
            });
        }
        return Ok(out);
    }
    let (fetch, name, ty) = match &a.value {
        ArgValue::Params | ArgValue::Vars => {
            return Err(err(
                format!("{} needs debuginfo (DWARF, or BTF for the kernel)", a.text),
                "name the arguments: arg1..arg6 or raw fetch args such as %di (kernel \
                     probes expand $params from BTF)",
            ))
        }
        ArgValue::Var { name, fields } => {
            let n = name
                .strip_prefix("arg")
                .and_then(|d| d.parse::<usize>().ok());
            let reg = n
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| SYSV_ARGS.get(i));
            match (reg, fields.is_empty()) {
                (Some(reg), true) => {
                    if retprobe {
                        return Err(err(
                            format!(
                                "{name} is an entry argument and a return probe cannot read it"
                            ),
                            "use $retval, or probe the entry",
                        ));
                    }
                    let reg = FetchArg::Reg(reg);
                    let (fetch, ty) = match ty {
                        // A string argument is a pointer to the string: read through it.
                        Some(t) if t.is_string() => (reg.deref(0, false), Some(t)),
                        t => (reg, t),
                    };
                    let default_name = match &a.ty {
                        Some(t) => format!("{name}_{t}"),
                        None => name.clone(),
                    };
                    (fetch, sanitize_name(&default_name), ty)
                }
                _ => return Err(unknown_variable(a, name, ctx)),
            }
        }
        ArgValue::Raw(f) => (f.clone(), format!("arg{}", index + 1), ty),
    };
    check_fetch(&fetch, ty.as_ref(), kind, retprobe, caps).map_err(|(p, fix)| err(p, &fix))?;
    let fetch = if a.user && kind == ProbeKind::Kprobe {
        mark_user(fetch)
    } else {
        fetch
    };
    let name = a.name.clone().unwrap_or(name);
    Ok(vec![DefArg { name, fetch, ty }])
}

/// Why a variable name could not be resolved, and what would work.
fn unknown_variable(a: &ProbeArg, name: &str, ctx: &ArgContext<'_>) -> SpecError {
    let fix = "use arg1..arg6 for the first six arguments, or a raw fetch arg such as +8(%di):u64";
    let problem = match (&ctx.scope, ctx.kind) {
        (None, ProbeKind::Uprobe) => format!(
            "'{}' names a variable, and the binary has no DWARF debuginfo (build with -g, or \
             install its -dbg package)",
            a.text
        ),
        (None, ProbeKind::Kprobe) => format!(
            "'{}' names a variable, and no kernel BTF describes {} (/sys/kernel/btf/vmlinux, or \
             --btf FILE)",
            a.text, ctx.func
        ),
        (Some(sc), _) => {
            let names: Vec<&str> = sc.values.iter().map(|v| v.name.as_str()).collect();
            let what = if sc.source == "BTF" {
                " (BTF has no local variables)"
            } else {
                ""
            };
            format!(
                "{} has no variable '{name}' here{what}; {} knows: {}",
                ctx.func,
                sc.source,
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )
        }
    };
    SpecError::at(a.pos, problem, fix)
}

/// `arg1`..`arg6`: rprobe's names for the SysV argument registers.
fn is_arg_register_name(name: &str) -> bool {
    name.strip_prefix("arg")
        .and_then(|d| d.parse::<usize>().ok())
        .is_some_and(|n| (1..=SYSV_ARGS.len()).contains(&n))
}

/// perf's size-keeping casts: `:u`, `:s`, `:x` change the sign or radix of the default type.
pub(super) fn recast(t: &FetchType, c: char) -> FetchType {
    let bits = match t {
        FetchType::U(b) | FetchType::S(b) | FetchType::X(b) => *b,
        other => return other.clone(),
    };
    match c {
        'u' => FetchType::U(bits),
        's' => FetchType::S(bits),
        _ => FetchType::X(bits),
    }
}

/// `@user`: every load in the chain reads user memory.
fn mark_user(f: FetchArg) -> FetchArg {
    match f {
        FetchArg::Deref { offset, inner, .. } => FetchArg::Deref {
            offset,
            user: true,
            inner: Box::new(mark_user(*inner)),
        },
        other => other,
    }
}

pub(super) fn sanitize_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// The rules the kernel applies to a fetch arg and its type, checked before writing so the
/// error can name the argument.
pub(super) fn check_fetch(
    f: &FetchArg,
    ty: Option<&FetchType>,
    kind: ProbeKind,
    retprobe: bool,
    caps: &Caps,
) -> Result<(), (String, String)> {
    let uprobe = kind == ProbeKind::Uprobe;
    let e = |p: &str, fix: &str| Err((p.to_string(), fix.to_string()));
    let mut node = Some(f);
    while let Some(n) = node {
        match n {
            FetchArg::Retval if !retprobe => {
                return e(
                    "$retval exists only in return probes",
                    "add %return to the function: FUNC%return",
                )
            }
            FetchArg::Symbol { .. } if uprobe => {
                return e(
                    "@SYMBOL is not available with uprobes",
                    "use @+FILEOFFSET for a variable of the probed file",
                )
            }
            FetchArg::FileOffset(_) if !uprobe => {
                return e(
                    "@+FILEOFFSET is for uprobes only",
                    "use @SYMBOL or @ADDR in kernel probes",
                )
            }
            FetchArg::Arg(_) if uprobe => {
                return e(
                    "$argN is not available with uprobes",
                    "use arg1..arg6 (the SysV argument registers) or %di, %si, …",
                )
            }
            FetchArg::Arg(_) if retprobe && !caps.ret_arg_n => {
                return e(
                    "this kernel cannot read $argN in a return probe (needs 6.9)",
                    "probe the entry for arguments",
                )
            }
            FetchArg::Arg(_) if !caps.arg_n => {
                return e("this kernel has no $argN", "use %di, %si, … instead")
            }
            FetchArg::Deref { user: true, .. } if !uprobe && !caps.user_deref => {
                return e(
                    "this kernel has no +u user-memory loads (needs 5.3)",
                    "drop the u: plain loads read user memory only on uprobes",
                )
            }
            FetchArg::Imm(_) | FetchArg::ImmStr(_) if !caps.immediates => {
                return e(
                    "this kernel has no immediate values (needs 5.7)",
                    "drop the \\ argument",
                )
            }
            _ => {}
        }
        node = match n {
            FetchArg::Deref { inner, .. } => Some(inner.as_ref()),
            _ => None,
        };
    }
    let memory = f.is_memory();
    if let FetchArg::Comm { .. } = f {
        if !matches!(ty, None | Some(FetchType::String)) {
            return e("$comm is a string", "write $comm or $comm:string");
        }
    }
    if let FetchArg::ImmStr(_) = f {
        if !matches!(ty, None | Some(FetchType::String)) {
            return e(
                "an immediate string is a string",
                "write \\\"text\" or \\\"text\":string",
            );
        }
    }
    let Some(ty) = ty else { return Ok(()) };
    let base = match ty {
        FetchType::Array(t, _) => {
            if !caps.arrays {
                return e(
                    "this kernel has no array types",
                    "fetch elements one by one",
                );
            }
            if !memory {
                return e(
                    "arrays need a memory fetch",
                    "read through a load, for example +0(%di):x8[16]",
                );
            }
            t.as_ref()
        }
        t => t,
    };
    match base {
        FetchType::String | FetchType::Ustring if !memory => e(
            "a string needs a memory fetch: the value is a pointer",
            "read the string it points to with +0(...), for example +0(%di):string",
        ),
        FetchType::Ustring if !caps.ustring => {
            e("this kernel has no ustring (needs 5.3)", "use string")
        }
        FetchType::Symbol | FetchType::Symstr if uprobe => e(
            "symbol and symstr types are for kernel probes",
            "use x64 for addresses in user programs",
        ),
        FetchType::Symstr if !caps.symstr => {
            e("this kernel has no symstr (needs 6.2)", "use symbol")
        }
        FetchType::Char if !caps.char_type => {
            e("this kernel has no char type (needs 6.4)", "use u8")
        }
        FetchType::Dentry | FetchType::File if uprobe => e(
            "%pd and %pD are for kernel probes",
            "read the name with a fetch chain",
        ),
        FetchType::Dentry | FetchType::File if !caps.pd => e(
            "this kernel has no %pd/%pD (needs 6.11)",
            "read the name with a fetch chain",
        ),
        _ => Ok(()),
    }
}

/// A user program's global or static, read with `@+OFFSET` from a probe at `probe` (see
/// [`SymbolTable::mapping_offset`]).
fn user_static(symbols: &SymbolTable, a: u64, probe: u64) -> Result<Base, String> {
    symbols
        .mapping_offset(a, probe)
        .map(|o| Base::FileData(o as i64))
        .ok_or_else(|| format!("its address 0x{a:x} is not in the probed file"))
}

/// The probe points of a user program that need its DWARF, as perf finds them
/// (`probe-finder.c`): `FUNC:RLN` (statement rows of line `decl_line + RLN` in the
/// function's file and unit), `SRC:LINE` (those rows in every unit), and `FUNC[+OFFS]` of a
/// function that was inlined somewhere (every instance, inlined or not, in DIE order, none
/// moved past a prologue), each with the innermost function instance holding it, whose
/// variables it reads. `None`: the symbol table answers (a plain `FUNC`, `FUNC%return`).
fn user_dwarf_points(
    point: &ProbePoint,
    d: &crate::dwarf::Dwarf<'_>,
    path: &str,
    symbols: &SymbolTable,
) -> Result<Option<Vec<KernelPoint>>, SpecError> {
    let place = |pc: u64| {
        symbols.file_offset(pc).map(|o| Place::User {
            path: path.to_string(),
            offset: o,
            ref_ctr: None,
        })
    };
    let instances = |name: &str| d.functions(name).unwrap_or_default();
    dwarf_points(point, d, path, &place, &instances, false)
}

/// [`user_dwarf_points`] for a vmlinux: source lines only (inlined instances at `FUNC` are
/// [`kernel_instances`]), functions found by their symbol's address, points placed at the
/// function symbol holding them (`vfs_read+114`).
fn kernel_dwarf_points(
    point: &ProbePoint,
    kd: &KernelDwarf<'_>,
) -> Result<Option<Vec<KernelPoint>>, SpecError> {
    let place = |pc: u64| kd.place_of(pc);
    let instances = |name: &str| {
        kd.symbols
            .find_by_name(name)
            .next()
            .and_then(|s| kd.dwarf.functions_at(name, s.addr).ok())
            .unwrap_or_default()
    };
    dwarf_points(point, kd.dwarf, "the vmlinux", &place, &instances, true)
}

/// Line numbers of the source `file` matching perf's lazy pattern `pat` (a glob, matched
/// with the line's whitespace removed, as perf's `strlazymatch`).
fn lazy_matching_lines(file: &str, pat: &str) -> Result<Vec<u64>, SpecError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        SpecError::at(
            0,
            format!("cannot read the source file {file} for a line pattern: {e}"),
            "a ;PATTERN needs the program's sources where its DWARF says they are; \
             give the line instead (FUNC:RLN or FILE:LINE)",
        )
    })?;
    let pat: String = pat.chars().filter(|c| !c.is_whitespace()).collect();
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            let l: String = l.chars().filter(|c| !c.is_whitespace()).collect();
            glob_match(&pat, &l)
        })
        .map(|(i, _)| i as u64 + 1)
        .collect())
}

/// The probe points of `point` that need DWARF line tables or inline instances; see
/// [`user_dwarf_points`]. `place` turns an address into a probe place, `instances` finds a
/// function's instances; `lines_only` leaves `FUNC[+OFFS]` to the caller.
fn dwarf_points(
    point: &ProbePoint,
    d: &crate::dwarf::Dwarf<'_>,
    path: &str,
    place: &dyn Fn(u64) -> Option<Place>,
    instances: &dyn Fn(&str) -> Vec<crate::dwarf::FuncInstance>,
    lines_only: bool,
) -> Result<Option<Vec<KernelPoint>>, SpecError> {
    // perf's verify_representive_line: a line whose address the table gives to another line
    // of the same file is refused, naming that line.
    let shared = |addrs: &[u64],
                  line: u64,
                  in_file: &dyn Fn(&str) -> bool,
                  base: Option<(&str, u64)>|
     -> Result<(), SpecError> {
        for pc in addrs {
            let Some((file, other)) = d.line_at(*pc) else {
                continue;
            };
            if other == line || !in_file(&file) {
                continue;
            }
            let instead = match base {
                Some((func, decl)) => format!("{func}:{}", other as i64 - decl as i64),
                None => format!("{file}:{other}"),
            };
            return Err(SpecError::at(
                0,
                format!("line {line} shares its address 0x{pc:x} with line {other}"),
                format!("probe at {instead} instead, as perf suggests"),
            ));
        }
        Ok(())
    };
    // perf's find_best_scope: with a function named, the outermost instance of it holding
    // the address (its variables, even inside code inlined into it); else the function
    // declared nearest above the line in that file; else the innermost one.
    let at_lines = |name: Option<&str>, addrs: Vec<(u64, u64)>| -> Vec<KernelPoint> {
        addrs
            .into_iter()
            .filter_map(|(pc, line)| {
                let scopes = d.instances_at(pc);
                let named = name.and_then(|n| scopes.iter().rev().find(|f| f.name == n));
                let nearest = || {
                    let mut best: Option<&crate::dwarf::FuncInstance> = None;
                    for f in scopes.iter().rev() {
                        let Some(l) = f.decl_line.filter(|l| *l < line) else {
                            continue;
                        };
                        if best.is_none_or(|b| line - l < line - b.decl_line.unwrap_or(0)) {
                            best = Some(f);
                        }
                    }
                    best
                };
                let inst = named
                    .or_else(|| name.is_none().then(nearest).flatten())
                    .or_else(|| scopes.first())?
                    .clone();
                let realname = match name {
                    Some(n) => n.to_string(),
                    None => scopes
                        .iter()
                        .find(|f| !f.inlined)
                        .map_or_else(|| inst.name.clone(), |f| f.name.clone()),
                };
                Some((realname, place(pc)?, None, Some((inst, pc))))
            })
            .collect()
    };
    let no_code = |what: String| {
        SpecError::at(
            0,
            format!("no code for {what} in {path}"),
            "pick a line that has code ('objdump --dwarf=decodedline' lists them)",
        )
    };
    match point {
        ProbePoint::Function { name, src, at } if !is_glob(name) => {
            if lines_only && !matches!(at, FuncAt::Line(_) | FuncAt::Lazy(_)) {
                return Ok(None);
            }
            let mut insts = instances(name);
            if let Some(s) = src {
                insts.retain(|f| {
                    f.decl_file
                        .as_deref()
                        .is_some_and(|p| crate::dwarf::path_matches(p, s))
                });
                if insts.is_empty() {
                    return Err(SpecError::at(
                        0,
                        format!("no function '{name}' defined in {s} in the DWARF of {path}"),
                        "check the file name, or leave out @FILE",
                    ));
                }
            }
            match at {
                FuncAt::Entry | FuncAt::Offset(_) => {
                    if !insts.iter().any(|f| f.inlined) {
                        return Ok(None);
                    }
                    let off = match at {
                        FuncAt::Offset(o) => *o,
                        _ => 0,
                    };
                    Ok(Some(
                        insts
                            .into_iter()
                            .filter_map(|f| {
                                let pc = f.entry_pc + off;
                                Some((name.clone(), place(pc)?, None, Some((f, pc))))
                            })
                            .collect(),
                    ))
                }
                FuncAt::Line(rln) => {
                    let Some(f) = insts.iter().find(|f| f.decl_line.is_some()) else {
                        return Err(no_code(format!("{name} (no DWARF function of that name)")));
                    };
                    let decl = f.decl_line.unwrap_or(0);
                    let line = decl + u64::from(*rln);
                    let addrs = d.function_lines(f, line);
                    let file = f.decl_file.clone().unwrap_or_default();
                    shared(&addrs, line, &|p| p == file, Some((name, decl)))?;
                    let points =
                        at_lines(Some(name), addrs.into_iter().map(|a| (a, line)).collect());
                    if points.is_empty() {
                        return Err(no_code(format!("{name}:{rln} (line {line})")));
                    }
                    Ok(Some(points))
                }
                FuncAt::Lazy(pat) => {
                    let Some(f) = insts.iter().find(|f| f.decl_file.is_some()) else {
                        return Err(no_code(format!("{name} (no DWARF function of that name)")));
                    };
                    let file = f.decl_file.clone().unwrap_or_default();
                    let wanted = lazy_matching_lines(&file, pat)?;
                    let mut points = Vec::new();
                    for inst in insts.iter().filter(|i| i.decl_file.is_some()) {
                        let addrs = d.lazy_lines(inst, &wanted);
                        let addrs = addrs.into_iter().map(|a| (a, 0)).collect();
                        points.extend(at_lines(Some(name), addrs));
                    }
                    if points.is_empty() {
                        return Err(no_code(format!("{name};{pat}")));
                    }
                    Ok(Some(points))
                }
                FuncAt::Return => Ok(None),
            }
        }
        ProbePoint::Source { file, at } => match at {
            super::spec::SrcAt::Line(n) => {
                let addrs = d.lines_for(file, u64::from(*n));
                let in_file = |p: &str| crate::dwarf::path_matches(p, file);
                shared(&addrs, u64::from(*n), &in_file, None)?;
                let line = u64::from(*n);
                let points = at_lines(None, addrs.into_iter().map(|a| (a, line)).collect());
                if points.is_empty() {
                    return Err(no_code(format!("{file}:{n}")));
                }
                Ok(Some(points))
            }
            super::spec::SrcAt::Lazy(pat) => {
                let Some(path) = d.source_path(file) else {
                    return Err(no_code(format!(
                        "{file} (no such source file in the DWARF)"
                    )));
                };
                let wanted = lazy_matching_lines(&path, pat)?;
                let points = at_lines(None, d.unit_lazy_lines(file, &wanted));
                if points.is_empty() {
                    return Err(no_code(format!("{file};{pat}")));
                }
                Ok(Some(points))
            }
        },
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::FuncSymbol;
    use crate::probes::spec::parse_spec;

    fn table() -> SymbolTable {
        let f = |name: &str, addr: u64, size: u64, off: u64| FuncSymbol {
            name: name.into(),
            addr,
            size,
            file_offset: Some(off),
            dynamic: true,
            global: true,
            hidden_version: false,
        };
        SymbolTable {
            funcs: vec![
                f("readline", 0xc6c20, 200, 0xc6c20),
                f("work", 0x401136, 40, 0x1136),
                f("helper.isra.0", 0x401200, 16, 0x1200),
                f("dup", 0x401300, 16, 0x1300),
                f("dup", 0x401400, 16, 0x1400),
            ],
            has_symtab: true,
            is_exec: true,
            build_id: None,
            loads: vec![],
        }
    }

    fn user(spec: &str, opts: &mut ResolveOptions) -> Result<Vec<String>, SpecError> {
        let t = table();
        let s = parse_spec(spec)?;
        let defs = resolve(
            &s,
            Target::User {
                path: "/usr/bin/bash",
                symbols: &t,
                dwarf: None,
            },
            opts,
        )?;
        Ok(defs.iter().map(ProbeDef::line).collect())
    }

    fn one(spec: &str) -> String {
        let v =
            user(spec, &mut ResolveOptions::default()).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(v.len(), 1);
        v.into_iter().next().unwrap_or_default()
    }

    #[test]
    fn perf_naming_and_places() {
        assert_eq!(
            one("readline%return +0($retval):string"),
            "r:probe_bash/readline__return /usr/bin/bash:0x00000000000c6c20 arg1=+0($retval):string"
        );
        assert_eq!(
            one("readline"),
            "p:probe_bash/readline /usr/bin/bash:0x00000000000c6c20"
        );
        assert_eq!(
            one("readline+4 %di"),
            "p:probe_bash/readline /usr/bin/bash:0x00000000000c6c24 arg1=%di"
        );
        assert_eq!(
            one("work size=%di:u64 %si"),
            "p:probe_bash/work /usr/bin/bash:0x0000000000001136 size=%di:u64 arg2=%si"
        );
        assert_eq!(
            one("helper.isra.0"),
            "p:probe_bash/helper /usr/bin/bash:0x0000000000001200"
        );
        assert_eq!(
            one("g1:e1=work"),
            "p:g1/e1 /usr/bin/bash:0x0000000000001136"
        );
        assert_eq!(
            one("work arg1 arg2:s32 arg3:string"),
            "p:probe_bash/work /usr/bin/bash:0x0000000000001136 arg1=%di arg2_s32=%si:s32 \
             arg3_string=+0(%dx):string"
        );
        assert_eq!(
            one("work id=arg1:u32"),
            "p:probe_bash/work /usr/bin/bash:0x0000000000001136 id=%di:u32"
        );
        assert_eq!(
            user_group("/usr/lib/x86_64-linux-gnu/libc.so.6"),
            "probe_libc"
        );
        assert_eq!(user_group("/usr/bin/python3.11"), "probe_python3");
    }

    #[test]
    fn collisions_follow_perf() {
        let mut opts = ResolveOptions::default();
        user("readline", &mut opts).unwrap();
        let e = user("readline", &mut opts).unwrap_err();
        assert!(
            e.problem.contains("probe_bash:readline already exists"),
            "{e}"
        );
        opts.force = true;
        assert_eq!(
            user("readline", &mut opts).unwrap(),
            vec!["p:probe_bash/readline_1 /usr/bin/bash:0x00000000000c6c20"]
        );
        // Two functions of one name: one event with two points where the kernel appends
        // probes to an event (multi-probe), else the second point takes a suffix without -f.
        let v = user("dup", &mut ResolveOptions::default()).unwrap();
        assert_eq!(
            v,
            vec![
                "p:probe_bash/dup /usr/bin/bash:0x0000000000001300",
                "p:probe_bash/dup /usr/bin/bash:0x0000000000001400",
            ]
        );
        let mut old_kernel = ResolveOptions::default();
        old_kernel.caps.multiprobe = false;
        let v = user("dup", &mut old_kernel).unwrap();
        assert_eq!(
            v,
            vec![
                "p:probe_bash/dup /usr/bin/bash:0x0000000000001300",
                "p:probe_bash/dup_1 /usr/bin/bash:0x0000000000001400",
            ]
        );
        let v = user("d*", &mut ResolveOptions::default()).unwrap();
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn bad_input() {
        let mut o = ResolveOptions::default();
        let msg = |s: &str| {
            user(s, &mut ResolveOptions::default())
                .unwrap_err()
                .to_string()
        };
        assert!(
            msg("readlin").contains("did you mean readline"),
            "{}",
            msg("readlin")
        );
        assert!(msg("readline+4000").contains("beyond the end"));
        assert!(msg("readline $retval").contains("only in return probes"));
        assert!(msg("readline @jiffies").contains("not available with uprobes"));
        assert!(msg("readline $arg1").contains("$argN is not available with uprobes"));
        assert!(msg("readline %di:string").contains("needs a memory fetch"));
        assert!(msg("readline %di:x8[4]").contains("arrays need a memory fetch"));
        assert!(msg("readline +0(%di):symbol").contains("kernel probes"));
        assert!(msg("readline req->url").contains("no DWARF debuginfo"));
        assert!(msg("readline $params").contains("DWARF"));
        assert!(msg("readline%return arg1").contains("return probe"));
        assert!(msg("readline $comm:u32").contains("$comm is a string"));
        assert!(msg("readline:3").contains("DWARF"));
        assert!(msg("%sdt_x:y").contains("USDT"));
        assert!(msg("readline a=%di a=%si").contains("two arguments"));
        let e = user("readline a=%di b=+0(%rsi)", &mut o).unwrap_err();
        assert_eq!(e.column, 21);
        assert!(o.existing.is_empty(), "a failed spec reserves no names");
    }

    #[test]
    fn kernel_probes() {
        let ks = crate::elf::kallsyms::parse(
            "ffffffff81000000 T _text\nffffffff81200c50 T vfs_read\nffffffff81200d50 t vfs_readv\n\
             ffffffffc0001000 t xt_func\t[xt_mod]\nffffffff81300000 T kprobe_int3_handler\n",
        );
        let tr: BTreeSet<String> = ["vfs_read", "vfs_readv", "xt_func"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let bl: BTreeSet<String> = ["vfs_readv".to_string()].into();
        let k = |s: &str| {
            let spec = parse_spec(s).unwrap();
            resolve(
                &spec,
                Target::Kernel {
                    kallsyms: Some(&ks),
                    traceable: Some(&tr),
                    blacklist: Some(&bl),
                    types: None,
                    dwarf: None,
                },
                &mut ResolveOptions::default(),
            )
            .map(|d| d.iter().map(ProbeDef::line).collect::<Vec<_>>())
        };
        assert_eq!(
            k("do=vfs_read dfd=%di:s32 filename=+0(%si):string").unwrap(),
            vec!["p:probe/do vfs_read+0 dfd=%di:s32 filename=+0(%si):string"]
        );
        assert_eq!(
            k("vfs_read%return ret=$retval:s64").unwrap(),
            vec!["r:probe/vfs_read__return vfs_read+0 ret=$retval:s64"]
        );
        assert_eq!(
            k("vfs_read+16 $arg1 @jiffies").unwrap(),
            vec!["p:probe/vfs_read vfs_read+16 arg1=$arg1 arg2=@jiffies"]
        );
        assert_eq!(
            k("xt_func").unwrap(),
            vec!["p:probe/xt_func xt_mod:xt_func+0"]
        );
        assert_eq!(k("vfs_rea? x=+u0(%si):ustring").unwrap().len(), 1);
        assert!(k("vfs_readv")
            .unwrap_err()
            .to_string()
            .contains("kprobe blacklist"));
        assert!(k("vfs_raed")
            .unwrap_err()
            .to_string()
            .contains("did you mean vfs_read"));
        assert!(k("kprobe_int3_handler")
            .unwrap_err()
            .to_string()
            .contains("cannot be probed"));
        assert!(k("vfs_read @+16").is_err());
        // Without any symbol list (dry run on a locked-down box) the name is taken on trust.
        let spec = parse_spec("vfs_read name=+0(+40(+24(%di))):string").unwrap();
        let d = resolve(
            &spec,
            Target::Kernel {
                kallsyms: None,
                traceable: None,
                blacklist: None,
                types: None,
                dwarf: None,
            },
            &mut ResolveOptions::default(),
        )
        .unwrap();
        assert_eq!(
            d[0].line(),
            "p:probe/vfs_read vfs_read+0 name=+0(+40(+24(%di))):string"
        );
    }

    #[test]
    fn kernel_arguments_by_name_from_types() {
        use crate::debuginfo::{CType, FuncProto, Param};
        let (mut f, _) = crate::probes::chain::tests::kernel_like();
        let int = f.add(
            "int",
            CType::Int {
                size: 4,
                signed: true,
                is_char: false,
            },
            4,
        );
        let ch = f.add(
            "char",
            CType::Int {
                size: 1,
                signed: true,
                is_char: true,
            },
            1,
        );
        let cstr = f.add("const char *", CType::Pointer { target: ch }, 8);
        f.funcs.insert(
            "__se_sys_openat".into(),
            FuncProto {
                params: vec![
                    Param {
                        name: "dfd".into(),
                        ty: int,
                    },
                    Param {
                        name: "filename".into(),
                        ty: cstr,
                    },
                    Param {
                        name: "flags".into(),
                        ty: int,
                    },
                ],
                ret: None,
            },
        );
        let k = |s: &str| {
            let spec = parse_spec(s).unwrap();
            let t = Target::Kernel {
                kallsyms: None,
                traceable: None,
                blacklist: None,
                types: Some(&f),
                dwarf: None,
            };
            resolve(&spec, t, &mut ResolveOptions::default())
                .map(|d| d.iter().map(ProbeDef::line).collect::<Vec<_>>().join("\n"))
        };
        assert_eq!(
            k("vfs_read file->f_path.dentry->d_name.name:string count").unwrap(),
            "p:probe/vfs_read vfs_read+0 name=+0(+40(+24(%di))):string count=%dx:x64"
        );
        assert_eq!(
            k("vfs_read count:u buf").unwrap(),
            "p:probe/vfs_read vfs_read+0 count_u=%dx:u64 buf=%si:x64"
        );
        assert_eq!(
            k("vfs_read $params").unwrap(),
            "p:probe/vfs_read vfs_read+0 file=%di:x64 buf=%si:x64 count=%dx:x64"
        );
        assert_eq!(
            k("__x64_sys_openat filename:string dfd").unwrap(),
            "p:probe/__x64_sys_openat __x64_sys_openat+0 filename_string=+0(+104(%di)):ustring \
             dfd=+112(%di):s32"
        );
        // Names still take arg1..arg6 and raw args beside them.
        assert_eq!(
            k("vfs_read arg3 %si").unwrap(),
            "p:probe/vfs_read vfs_read+0 arg3=%dx arg2=%si"
        );
        let e = k("vfs_read%return file->f_path").unwrap_err();
        assert!(
            e.to_string().contains("only at the function's entry"),
            "{e}"
        );
        let e = k("vfs_read nosuch").unwrap_err();
        assert!(e.to_string().contains("no variable 'nosuch'"), "{e}");
        assert!(e.to_string().contains("file, buf, count"), "{e}");
        let e = k("vfs_read file.f_path").unwrap_err();
        assert!(e.fix.contains("file->f_path"), "{e}");
    }

    #[test]
    fn globs() {
        assert!(glob_match("vfs_*", "vfs_read"));
        assert!(glob_match("*read", "vfs_read"));
        assert!(glob_match("vfs_rea?", "vfs_read"));
        assert!(glob_match("[a-v]fs_read", "vfs_read"));
        assert!(!glob_match("[!v]fs_read", "vfs_read"));
        assert!(!glob_match("vfs_*", "ext4_read"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("[", "x"));
    }
}

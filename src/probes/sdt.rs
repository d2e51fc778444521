//! From a USDT spec (`sdt_PROVIDER:NAME [ARG...]`, or perf's `%sdt_PROVIDER:NAME`) to
//! uprobe definitions, from the `.note.stapsdt` notes of the binary ([`super::usdt`]).
//!
//! What perf 6.1 does, measured with `perf probe -x /usr/bin/python3.11 -D
//! sdt_python:function__entry` (no build-id cache needed with `-x`):
//!
//! ```text
//! p:sdt_python/function__entry /usr/bin/python3.11:0xf20a1(0x683260) arg1=%bp:u64 arg2=%r12:u64 arg3=%ax:s32
//! ```
//!
//! - Group `sdt_<provider>`, event the probe's name; `%PROVIDER:NAME` without the `sdt_`
//!   prefix finds nothing in perf (rprobe accepts it). Globs expand to one event per name.
//! - The note's arguments become `arg1..argN` with the note's sizes; the semaphore becomes
//!   `(REF_CTR_OFFSET)`.
//! - perf silently drops any argument the user writes after an SDT name. rprobe uses them:
//!   `argK[:TYPE]` retypes the note's K-th argument in place (`arg2:string` reads the
//!   string the pointer points to, `+0(%r12):string`), `NAME=argK[:TYPE]` also renames it,
//!   `argK=FETCHARG` replaces it, and any other raw fetch arg (`$comm`, `+8(%sp):u32`) is
//!   appended after the note's arguments. A note carries no types, so which argument is a
//!   `char *` is the user's to say. A note argument with no fetch-arg form (gcc writes
//!   `8@(%rcx,%rdx,8)` for `labels[i]`) is left out of the event and reported, unless
//!   `argK=FETCHARG` fetches something in its place.
//! - Several notes with one name (a probe macro expanded at several sites) become one event
//!   with several probes where the kernel appends probes to an event (multi-probe, 5.4+)
//!   and the sites' arguments have the same types; otherwise the later sites take `_1`,
//!   `_2`, … as perf names them.
//! - A semaphore needs `(ref_ctr_offset)` (4.20+): without it the program never runs the
//!   probe's code, so such a kernel gets an error, not a probe that never fires. Measured on
//!   6.18 (and in the lab on 6.1 and 6.12): the `u16` is 0 while the event is only defined,
//!   1 in every process mapping the file while it is enabled (also in processes started
//!   later), 0 again when disabled; two tracers on one site still leave 1, since the kernel
//!   counts per probe site and process, not per consumer.

use super::def::{DefArg, Place, ProbeDef, ProbeKind};
use super::error::SpecError;
use super::fetch::FetchType;
use super::resolve::{
    check_fetch, did_you_mean, glob_match, pick_event_name, recast, sanitize_name, suggest,
    ResolveOptions,
};
use super::spec::{ArgType, ArgValue, ProbePoint, ProbeSpec};
use super::usdt::{convert_args, SdtArg, SdtNote, SymbolAddrs};

/// An argument's name and type: what the kernel compares before it appends a probe to an
/// event.
type ArgShape = (String, Option<FetchType>);

/// A binary's USDT notes, for [`resolve_sdt`].
pub struct SdtTarget<'a> {
    /// Canonical path of the binary, as written into the definitions.
    pub path: &'a str,
    /// Its notes ([`super::usdt::parse_notes`]).
    pub notes: &'a [SdtNote],
    /// Its symbols, for `sym(%rip)` operands.
    pub symbols: &'a dyn SymbolAddrs,
}

/// The provider a spec's `GROUP` names: `sdt_python` and `python` both mean `python`.
fn provider_of(group: &str) -> &str {
    group.strip_prefix("sdt_").unwrap_or(group)
}

/// What [`resolve_sdt`] makes of a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdtProbes {
    /// One definition per note site, in file order.
    pub defs: Vec<ProbeDef>,
    /// Note arguments with no fetch-arg form (indexed operands such as `8@(%rcx,%rdx,8)`),
    /// left out of the event, one message each for the user.
    pub left_out: Vec<String>,
}

/// Resolve a spec whose point is [`ProbePoint::Sdt`] into uprobe definitions, one per note
/// matching it, in file order. Names chosen are added to `opts.existing`.
pub fn resolve_sdt(
    spec: &ProbeSpec,
    target: &SdtTarget<'_>,
    opts: &mut ResolveOptions,
) -> Result<SdtProbes, SpecError> {
    let ProbePoint::Sdt { provider, name } = &spec.point else {
        return Err(SpecError::whole(
            format!("'{}' is not a USDT probe", spec.point_text),
            "write sdt_PROVIDER:NAME",
        ));
    };
    let path = target.path;
    if target.notes.is_empty() {
        return Err(SpecError::whole(
            format!("{path} has no USDT probes (no .note.stapsdt section)"),
            "'rprobe sdt -p PID' lists the probes of every file a process maps; probe a \
             function of this one instead",
        ));
    }
    let provider = provider.as_deref().map(provider_of);
    let by_provider: Vec<&SdtNote> = target
        .notes
        .iter()
        .filter(|n| provider.is_none_or(|p| glob_match(p, &n.provider)))
        .collect();
    let matching: Vec<&SdtNote> = by_provider
        .iter()
        .copied()
        .filter(|n| glob_match(name, &n.name))
        .collect();
    if matching.is_empty() {
        return Err(no_match(provider, name, &by_provider, target));
    }

    // One event per provider:name, holding every site of that name.
    let mut events: Vec<(&str, &str, Vec<&SdtNote>)> = Vec::new();
    for n in matching {
        match events
            .iter_mut()
            .find(|(p, e, _)| *p == n.provider && *e == n.name)
        {
            Some((_, _, sites)) => sites.push(n),
            None => events.push((&n.provider, &n.name, vec![n])),
        }
    }
    if events.len() > 1 && spec.event.is_some() {
        return Err(SpecError::whole(
            format!(
                "'{}' matches {} USDT probes, and one EVENT= name cannot hold them all",
                spec.point_text,
                events.len()
            ),
            "name one probe, or drop EVENT=",
        ));
    }
    let mut defs = Vec::new();
    let mut left_out = Vec::new();
    for (prov, probe, sites) in events {
        let group = spec.group.clone().unwrap_or_else(|| format!("sdt_{prov}"));
        let base = spec.event.clone().unwrap_or_else(|| sanitize_name(probe));
        let mut first: Option<(String, Vec<ArgShape>)> = None;
        for (i, note) in sites.into_iter().enumerate() {
            let what = format!("sdt_{prov}:{probe}");
            let Some(offset) = note.file_offset else {
                return Err(SpecError::whole(
                    format!(
                        "{what} at {:#x} lies outside the loaded segments of {path}",
                        note.pc
                    ),
                    "the file's notes do not match its program headers; rebuild it",
                ));
            };
            let ref_ctr = match (note.semaphore, note.semaphore_offset) {
                (0, _) => None,
                (sem, None) => {
                    return Err(SpecError::whole(
                        format!(
                        "{what}: its semaphore {sem:#x} is not in the .probes section of {path}"
                    ),
                        "the file's notes do not match its sections; rebuild it",
                    ))
                }
                (_, Some(_)) if !opts.caps.ref_ctr => {
                    return Err(SpecError::whole(
                        format!(
                            "{what} is guarded by a semaphore, and this kernel's uprobes cannot \
                             count it (no (ref_ctr_offset) in the tracefs README; needs Linux 4.20)"
                        ),
                        "without it the program skips the probe; use a 4.20+ kernel, or probe \
                         the function that holds the note",
                    ))
                }
                (_, Some(off)) => Some(off),
            };
            let args = site_args(spec, note, &what, target.symbols, opts, &mut left_out)?;
            let shape: Vec<ArgShape> = args
                .iter()
                .map(|a| (a.name.clone(), a.ty.clone()))
                .collect();
            // The kernel appends a probe to an event only when names and types agree.
            let event = match &first {
                Some((e, s)) if opts.caps.multiprobe && *s == shape => e.clone(),
                _ => pick_event_name(&group, &base, false, opts, i > 0 || opts.force)?,
            };
            first.get_or_insert_with(|| (event.clone(), shape));
            opts.existing.insert(format!("{group}:{event}"));
            let def = ProbeDef {
                kind: ProbeKind::Uprobe,
                retprobe: false,
                group: group.clone(),
                event,
                place: Place::User {
                    path: path.to_string(),
                    offset,
                    ref_ctr,
                },
                args,
            };
            def.validate()?;
            defs.push(def);
        }
    }
    Ok(SdtProbes { defs, left_out })
}

/// Why nothing matched, with what the file has.
fn no_match(
    provider: Option<&str>,
    name: &str,
    by_provider: &[&SdtNote],
    target: &SdtTarget<'_>,
) -> SpecError {
    let path = target.path;
    let mut providers: Vec<&str> = target.notes.iter().map(|n| n.provider.as_str()).collect();
    providers.dedup();
    providers.sort_unstable();
    providers.dedup();
    if let (Some(p), true) = (provider, by_provider.is_empty()) {
        let hint = did_you_mean(&suggest(p, providers.iter().copied()));
        return SpecError::whole(
            format!(
                "{path} has no USDT provider '{p}'; its providers: {}",
                providers.join(", ")
            ),
            format!("{hint}'rprobe sdt -x {path}' lists every probe"),
        );
    }
    let mut names: Vec<String> = Vec::new();
    for n in by_provider {
        let full = format!("sdt_{}:{}", n.provider, n.name);
        if !names.contains(&full) {
            names.push(full);
        }
    }
    let hint = did_you_mean(&suggest(name, by_provider.iter().map(|n| n.name.as_str())));
    let shown = names.len().min(12);
    let more = match names.len() - shown {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    let what = match provider {
        Some(p) => format!("sdt_{p}:{name}"),
        None => name.to_string(),
    };
    SpecError::whole(
        format!(
            "{path} has no USDT probe {what}; it has {}{more}",
            names.get(..shown).unwrap_or_default().join(", ")
        ),
        format!("{hint}'rprobe sdt -x {path}' lists every probe"),
    )
}

/// The note's arguments as `arg1..argN`, with the spec's arguments applied (module docs).
fn site_args(
    spec: &ProbeSpec,
    note: &SdtNote,
    what: &str,
    symbols: &dyn SymbolAddrs,
    opts: &ResolveOptions,
    left_out: &mut Vec<String>,
) -> Result<Vec<DefArg>, SpecError> {
    let converted = convert_args(&note.args, symbols, note.bias);
    let count = converted.len();
    let mut slots: Vec<Result<DefArg, (String, &'static str)>> = converted
        .into_iter()
        .enumerate()
        .map(|(i, a)| match a {
            SdtArg::Fetch(fetch, ty) => Ok(DefArg {
                name: format!("arg{}", i + 1),
                fetch,
                ty: Some(ty),
            }),
            SdtArg::Unsupported { text, reason } => Err((text, reason)),
        })
        .collect();
    let mut extra = Vec::new();
    let known = match count {
        0 => "it has no arguments".to_string(),
        1 => "its argument is arg1".to_string(),
        n => format!("its arguments are arg1..arg{n}"),
    };
    for a in &spec.args {
        let err = |problem: String, fix: &str| SpecError::at(a.pos, problem, fix);
        let ty = match &a.ty {
            Some(ArgType::Fetch(t)) => Some(t.clone()),
            Some(ArgType::Cast(_)) | None => None,
        };
        // `argK` (by value, or by NAME= for a raw fetch arg): the note's K-th argument.
        let slot_of = |name: &str| {
            name.strip_prefix("arg")
                .and_then(|d| d.parse::<usize>().ok())
                .filter(|k| (1..=count).contains(k))
        };
        match &a.value {
            ArgValue::Var { name, fields } => {
                let k = match (slot_of(name), fields.is_empty()) {
                    (Some(k), true) => k,
                    _ => {
                        return Err(err(
                            format!("{what} has no argument '{}'; {known}", a.text),
                            "retype one with argK:TYPE (arg1:string), or add a raw fetch \
                             arg such as $comm or +8(%sp):u64",
                        ))
                    }
                };
                let Some(Ok(note_arg)) = slots.get(k - 1) else {
                    let text = match slots.get(k - 1) {
                        Some(Err((t, _))) => t.clone(),
                        _ => String::new(),
                    };
                    return Err(err(
                        format!("arg{k} of {what} ('{text}') cannot be fetched"),
                        "replace it with argK=FETCHARG",
                    ));
                };
                let mut fetch = note_arg.fetch.clone();
                let mut fty = note_arg.ty.clone();
                match (&ty, &a.ty) {
                    // A string argument is a pointer to the string: read through it.
                    (Some(t), _) if t.is_string() => {
                        fetch = fetch.deref(0, false);
                        fty = Some(t.clone());
                    }
                    (Some(t), _) => fty = Some(t.clone()),
                    (None, Some(ArgType::Cast(c))) => fty = fty.map(|t| recast(&t, *c)),
                    _ => {}
                }
                check_fetch(&fetch, fty.as_ref(), ProbeKind::Uprobe, false, &opts.caps)
                    .map_err(|(p, fix)| err(p, &fix))?;
                let name = a.name.clone().unwrap_or_else(|| format!("arg{k}"));
                if let Some(slot) = slots.get_mut(k - 1) {
                    *slot = Ok(DefArg {
                        name,
                        fetch,
                        ty: fty,
                    });
                }
            }
            ArgValue::Raw(f) => {
                check_fetch(f, ty.as_ref(), ProbeKind::Uprobe, false, &opts.caps)
                    .map_err(|(p, fix)| err(p, &fix))?;
                let def = DefArg {
                    name: a.name.clone().unwrap_or_default(),
                    fetch: f.clone(),
                    ty: ty.clone(),
                };
                match a.name.as_deref().and_then(slot_of) {
                    Some(k) => {
                        if let Some(slot) = slots.get_mut(k - 1) {
                            *slot = Ok(def);
                        }
                    }
                    None => extra.push(def),
                }
            }
            ArgValue::Params | ArgValue::Vars => {
                return Err(err(
                    format!("{what} takes its arguments from the note; {known}"),
                    "drop $params/$vars: the note's arguments are fetched anyway",
                ))
            }
        }
    }
    let mut args = Vec::with_capacity(count + extra.len());
    for (i, s) in slots.into_iter().enumerate() {
        match s {
            Ok(d) => args.push(d),
            // Left out, as perf does (perf leaves out all of them then), and said.
            Err((text, reason)) => {
                let why = format!(
                    "arg{k} of {what} ('{text}') is left out: {reason}; arg{k}=FETCHARG fetches \
                     something in its place",
                    k = i + 1
                );
                if !left_out.contains(&why) {
                    left_out.push(why);
                }
            }
        }
    }
    for mut def in extra {
        if def.name.is_empty() {
            def.name = format!("arg{}", args.len() + 1);
        }
        args.push(def);
    }
    Ok(args)
}

/// Whether a probe spec is a USDT probe (`sdt_PROVIDER:NAME`, `%...`).
pub fn is_sdt(spec: &ProbeSpec) -> bool {
    matches!(spec.point, ProbePoint::Sdt { .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::parse_spec;
    use crate::probes::usdt::ElfAddrs;

    const PY: &str = "/usr/bin/python3.11";

    /// Notes as `readelf -n /usr/bin/python3.11` (Debian 3.11.2) shows them, with the file
    /// offsets `rprobe sdt -v` derives (`.stapsdt.base` 0x8cc5a0 at 0x4cc5a0, `.probes`
    /// 0xa84260 at 0x683260).
    fn python_notes() -> Vec<SdtNote> {
        let note = |name: &str, pc: u64, sem: u64, args: &str| SdtNote {
            provider: "python".into(),
            name: name.into(),
            pc,
            base: 0x8cc5a0,
            semaphore: sem,
            args: args.into(),
            file_offset: Some(pc - 0x400000),
            semaphore_offset: Some(sem - 0x401000),
            bias: 0x400000,
        };
        vec![
            note("gc__done", 0x42873b, 0xa84270, "-8@%r12"),
            note(
                "function__entry",
                0x4f20a1,
                0xa84260,
                "8@%rbp 8@%r12 -4@%eax",
            ),
            note(
                "function__return",
                0x4f20d4,
                0xa84262,
                "8@%rbp 8@%r12 -4@%eax",
            ),
        ]
    }

    fn lines_with(
        notes: &[SdtNote],
        spec: &str,
        opts: &mut ResolveOptions,
    ) -> Result<Vec<String>, SpecError> {
        let spec = parse_spec(spec)?;
        let addrs = ElfAddrs::default();
        let target = SdtTarget {
            path: PY,
            notes,
            symbols: &addrs,
        };
        Ok(resolve_sdt(&spec, &target, opts)?
            .defs
            .iter()
            .map(ProbeDef::line)
            .collect())
    }

    fn lines(spec: &str) -> Result<Vec<String>, SpecError> {
        lines_with(&python_notes(), spec, &mut ResolveOptions::default())
    }

    fn err(spec: &str) -> String {
        lines(spec).expect_err(spec).to_string()
    }

    #[test]
    fn names_args_and_semaphores_as_perf_does() {
        // perf probe -x /usr/bin/python3.11 -D sdt_python:function__entry (perf 6.1) prints
        // p:sdt_python/function__entry /usr/bin/python3.11:0xf20a1(0x683260) arg1=%bp:u64 arg2=%r12:u64 arg3=%ax:s32
        let want = "p:sdt_python/function__entry /usr/bin/python3.11:0x00000000000f20a1(0x683260) \
                    arg1=%bp:u64 arg2=%r12:u64 arg3=%ax:s32";
        assert_eq!(lines("sdt_python:function__entry").unwrap(), [want]);
        assert_eq!(lines("%sdt_python:function__entry").unwrap(), [want]);
        assert_eq!(lines("%python:function__entry").unwrap(), [want]);
        assert_eq!(lines("%function__entry").unwrap(), [want]);
        assert_eq!(
            lines("%sdt_python:gc__done").unwrap(),
            ["p:sdt_python/gc__done /usr/bin/python3.11:0x000000000002873b(0x683270) arg1=%r12:s64"]
        );
        assert_eq!(
            lines("my:ev=%sdt_python:gc__done").unwrap(),
            ["p:my/ev /usr/bin/python3.11:0x000000000002873b(0x683270) arg1=%r12:s64"]
        );
        let both = lines("sdt_python:function__*").unwrap();
        assert_eq!(both.len(), 2);
        assert!(
            both[1].starts_with("p:sdt_python/function__return "),
            "{both:?}"
        );
    }

    #[test]
    fn user_args_retype_rename_replace_and_append() {
        assert_eq!(
            lines("sdt_python:function__entry arg1:string arg2:string").unwrap(),
            [
                "p:sdt_python/function__entry /usr/bin/python3.11:0x00000000000f20a1(0x683260) \
              arg1=+0(%bp):string arg2=+0(%r12):string arg3=%ax:s32"
            ]
        );
        let l =
            lines("sdt_python:function__entry file=arg1:string line=arg3:u32 arg2=%di:x64 $comm")
                .unwrap();
        assert!(
            l[0].ends_with("file=+0(%bp):string arg2=%di:x64 line=%ax:u32 arg4=$comm"),
            "{l:?}"
        );
        assert!(lines("sdt_python:gc__done arg1:x").unwrap()[0].ends_with("arg1=%r12:x64"));
    }

    #[test]
    fn several_sites_of_one_name_make_one_event() {
        let mut notes = python_notes();
        let mut second = notes[0].clone();
        second.pc += 0x40;
        second.file_offset = second.file_offset.map(|o| o + 0x40);
        notes.push(second.clone());
        let mut opts = ResolveOptions::default();
        let l = lines_with(&notes, "sdt_python:gc__done", &mut opts).unwrap();
        assert_eq!(l.len(), 2);
        assert!(
            l[0].starts_with("p:sdt_python/gc__done ") && l[0].contains(":0x000000000002873b(")
        );
        assert!(
            l[1].starts_with("p:sdt_python/gc__done ") && l[1].contains(":0x000000000002877b(")
        );
        // Without multi-probe, or with different argument types, the second takes _1.
        let mut old = ResolveOptions::default();
        old.caps.multiprobe = false;
        let l = lines_with(&notes, "sdt_python:gc__done", &mut old).unwrap();
        assert!(l[1].starts_with("p:sdt_python/gc__done_1 "), "{l:?}");
        second.args = "8@%r12".into();
        notes.pop();
        notes.push(second);
        let l = lines_with(
            &notes,
            "sdt_python:gc__done",
            &mut ResolveOptions::default(),
        )
        .unwrap();
        assert!(
            l[1].starts_with("p:sdt_python/gc__done_1 ") && l[1].ends_with("%r12:u64"),
            "{l:?}"
        );
    }

    #[test]
    fn errors_say_what_exists() {
        let e = err("sdt_python:nosuch");
        assert!(e.contains("has no USDT probe sdt_python:nosuch; it has sdt_python:gc__done, sdt_python:function__entry"), "{e}");
        let e = err("sdt_python:function_entry");
        assert!(e.contains("did you mean function__entry"), "{e}");
        let e = err("sdt_pyhton:gc__done");
        assert!(
            e.contains("no USDT provider 'pyhton'; its providers: python"),
            "{e}"
        );
        assert!(e.contains("did you mean python"), "{e}");
        let e = err("sdt_python:gc__done arg2");
        assert!(
            e.contains("no argument 'arg2'; its argument is arg1"),
            "{e}"
        );
        let e = err("sdt_python:function__entry count");
        assert!(e.contains("its arguments are arg1..arg3"), "{e}");
        assert!(err("sdt_python:gc__done $params").contains("from the note"));
        assert!(err("sdt_python:gc__done +0(%di):symbol").contains("kernel probes"));
        assert!(err("ev=sdt_python:function__*").contains("matches 2 USDT probes"));
        let e = lines_with(&[], "sdt_python:gc__done", &mut ResolveOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("has no USDT probes (no .note.stapsdt section)"),
            "{e}"
        );
    }

    #[test]
    fn a_semaphore_needs_ref_ctr_offset() {
        let mut old = ResolveOptions::default();
        old.caps.ref_ctr = false;
        let e = lines_with(&python_notes(), "sdt_python:gc__done", &mut old)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("guarded by a semaphore") && e.contains("4.20"),
            "{e}"
        );
        // A note without a semaphore is fine there.
        let mut notes = python_notes();
        notes[0].semaphore = 0;
        notes[0].semaphore_offset = None;
        let l = lines_with(&notes, "sdt_python:gc__done", &mut old).unwrap();
        assert_eq!(
            l,
            ["p:sdt_python/gc__done /usr/bin/python3.11:0x000000000002873b arg1=%r12:s64"]
        );
    }

    #[test]
    fn unfetchable_note_args_are_left_out_said_and_can_be_replaced() {
        // gcc -O1 writes `labels[i]` as an indexed operand (the lab fixture lab_usdt.c).
        let mut notes = python_notes();
        notes[0].args = "-4@%edi -8@%rsi 8@(%rcx,%rdx,8)".into();
        notes.push(SdtNote {
            pc: notes[0].pc + 0x40,
            file_offset: notes[0].file_offset.map(|o| o + 0x40),
            ..notes[0].clone()
        });
        let spec = parse_spec("sdt_python:gc__done").unwrap();
        let addrs = ElfAddrs::default();
        let target = SdtTarget {
            path: PY,
            notes: &notes,
            symbols: &addrs,
        };
        let r = resolve_sdt(&spec, &target, &mut ResolveOptions::default()).unwrap();
        assert_eq!(r.defs.len(), 2);
        assert!(
            r.defs[0].line().ends_with(") arg1=%di:s32 arg2=%si:s64"),
            "{r:?}"
        );
        // One message for both sites.
        assert_eq!(
            r.left_out,
            [
                "arg3 of sdt_python:gc__done ('8@(%rcx,%rdx,8)') is left out: indexed operands \
              (base, index, scale) have no fetch-arg form; arg3=FETCHARG fetches something in \
              its place"
            ]
        );
        let mut opts = ResolveOptions::default();
        let e = lines_with(&notes, "sdt_python:gc__done arg3:string", &mut opts)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("arg3 of sdt_python:gc__done ('8@(%rcx,%rdx,8)') cannot be fetched"),
            "{e}"
        );
        let l = lines_with(&notes, "sdt_python:gc__done arg3=+8(%ax):s64", &mut opts).unwrap();
        assert!(
            l[0].ends_with("arg1=%di:s32 arg2=%si:s64 arg3=+8(%ax):s64"),
            "{l:?}"
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_note_or_spec_args(
            note_args in "[-0-9@%a-z(),$+ ]{0,40}",
            spec_args in "[-0-9a-z=:%()+$ ]{0,30}",
        ) {
            let mut notes = python_notes();
            notes[0].args = note_args;
            let _ = lines_with(
                &notes,
                &format!("sdt_python:gc__done {spec_args}"),
                &mut ResolveOptions::default(),
            );
        }
    }

    #[test]
    fn taken_names_need_force() {
        let mut opts = ResolveOptions::default();
        opts.existing.insert("sdt_python:gc__done".into());
        let e = lines_with(&python_notes(), "sdt_python:gc__done", &mut opts).unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        opts.force = true;
        let l = lines_with(&python_notes(), "sdt_python:gc__done", &mut opts).unwrap();
        assert!(l[0].starts_with("p:sdt_python/gc__done_1 "), "{l:?}");
    }
}

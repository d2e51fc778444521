//! The probe-spec language: perf-probe syntax, parsed with the positions of every part.
//!
//! ```text
//! SPEC  := [[GROUP:]EVENT=]POINT ARG...
//! POINT := FUNC[@SRC][:RLN|+OFFS|%return|;PTN] | SRC:ALN | SRC;PTN | 0xADDR | %[GROUP:]SDT
//!        | sdt_PROVIDER:SDT
//! ARG   := [NAME=]LOCALVAR|$retval|%REG|@SYMBOL|$stackN|$comm|$params|$vars|FETCHARG[:TYPE][@user]
//! ```
//!
//! The rules follow `parse_perf_probe_point()` and `parse_perf_probe_arg()` in perf's
//! `tools/perf/util/probe-event.c`, so a spec means the same to rprobe as to `perf probe`:
//! - `=` before any of `;@+%` ends the event name; `GROUP:EVENT` splits on the first `:`.
//! - A point is a source file (not a function) when it holds no `+@%`, holds `:` or `;`, and
//!   has a `.` before that `:`/`;` (`fs/read_write.c:600`).
//! - An argument is a C variable chain when it starts like a C identifier and contains `-`,
//!   `.` or `[`; otherwise it is a variable name, a special value or a raw fetch arg, and its
//!   type follows the first `:`.
//! - Words are split on spaces only (perf's `argv_split`): an immediate string cannot hold one.
//!
//! Unlike perf, rprobe refuses every control character (a newline would let a spec inject a
//! second definition into the events file) and `\` escapes in probe points.

use super::error::SpecError;
use super::fetch::{parse_fetch_arg, FetchArg, FetchType};

/// A parsed probe spec: where to probe and what to fetch, before any symbol is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    /// `GROUP` of `GROUP:EVENT=`.
    pub group: Option<String>,
    /// `EVENT` of `GROUP:EVENT=` or `EVENT=`.
    pub event: Option<String>,
    /// Where the probe goes.
    pub point: ProbePoint,
    /// What it fetches.
    pub args: Vec<ProbeArg>,
    /// The spec as written.
    pub text: String,
    /// The probe point as written (for messages such as perf's `on readline%return`).
    pub point_text: String,
}

/// Where a probe goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbePoint {
    /// `FUNC[@SRC][:RLN|+OFFS|%return|;PTN]`.
    Function {
        /// Function name (may be a glob).
        name: String,
        /// `@SRC`: the source file the function is defined in.
        src: Option<String>,
        /// Where in the function.
        at: FuncAt,
    },
    /// `SRC:ALN` or `SRC;PTN`.
    Source {
        /// Source file (tail match).
        file: String,
        /// Line or pattern.
        at: SrcAt,
    },
    /// `0xADDR`: an address.
    Address(u64),
    /// `%[PROVIDER:]NAME`: a USDT (SDT) note.
    Sdt {
        /// Provider, when given.
        provider: Option<String>,
        /// Probe name.
        name: String,
    },
}

/// Position inside a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FuncAt {
    /// The entry.
    Entry,
    /// `+OFFS` bytes from the entry.
    Offset(u64),
    /// `%return`.
    Return,
    /// `:RLN`, a line relative to the function's first line.
    Line(u32),
    /// `;PTN`, source lines matching a glob.
    Lazy(String),
}

/// Position inside a source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SrcAt {
    /// `:ALN`, an absolute line.
    Line(u32),
    /// `;PTN`, lines matching a glob.
    Lazy(String),
}

/// One argument of a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeArg {
    /// `NAME=`, when given.
    pub name: Option<String>,
    /// What to fetch.
    pub value: ArgValue,
    /// `:TYPE`, when given.
    pub ty: Option<ArgType>,
    /// `@user`: every load reads user memory.
    pub user: bool,
    /// The argument as written.
    pub text: String,
    /// Byte offset of the argument in the spec.
    pub pos: usize,
}

/// What an argument fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgValue {
    /// A fetch arg in tracefs syntax (`%di`, `+8(%si)`, `$retval`, …).
    Raw(FetchArg),
    /// A C variable, possibly with a chain of fields: `file->f_path.dentry`, `argv[1]`.
    Var {
        /// The variable.
        name: String,
        /// Fields and indexes applied to it, in order.
        fields: Vec<Field>,
    },
    /// `$params`: every parameter.
    Params,
    /// `$vars`: every parameter and local variable.
    Vars,
}

/// One step of a C variable chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// `.name` (`arrow == false`) or `->name` (`arrow == true`).
    Member {
        /// Member name.
        name: String,
        /// Written with `->`.
        arrow: bool,
    },
    /// `[N]`.
    Index(i64),
}

/// A type as written after `:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgType {
    /// A tracefs type.
    Fetch(FetchType),
    /// perf's size-keeping casts `u`, `s`, `x` (C variables only).
    Cast(char),
}

impl std::fmt::Display for ArgType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArgType::Fetch(t) => write!(f, "{t}"),
            ArgType::Cast(c) => write!(f, "{c}"),
        }
    }
}

/// Whether `s` starts like a C identifier (perf's `is_c_varname`).
fn is_c_varname(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
}

/// Whether `s` is a whole C identifier.
pub fn is_c_identifier(s: &str) -> bool {
    is_c_varname(s) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Split on spaces, keeping each word's byte offset.
fn words(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c == ' ', start) {
            (true, Some(s)) => {
                out.push((s, text.get(s..i).unwrap_or_default()));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, text.get(s..).unwrap_or_default()));
    }
    out
}

/// Parse a whole spec.
pub fn parse_spec(text: &str) -> Result<ProbeSpec, SpecError> {
    if let Some((i, c)) = text.char_indices().find(|(_, c)| c.is_control()) {
        return Err(SpecError::at(
            i,
            format!("control character {c:?} in probe spec"),
            "a spec is one line of printable text; give each probe as its own argument",
        ));
    }
    let words = words(text);
    let Some(&(ppos, point)) = words.first() else {
        return Err(SpecError::whole(
            "empty probe spec",
            "give a function, for example 'vfs_read' or -x /bin/bash 'readline%return'",
        ));
    };
    let mut spec = parse_point(point).map_err(|e| e.shifted(ppos))?;
    spec.text = text.to_string();
    for &(apos, a) in words.get(1..).unwrap_or_default() {
        spec.args
            .push(parse_arg(a).map_err(|e| e.shifted(apos)).map(|mut arg| {
                arg.pos = apos;
                arg
            })?);
    }
    Ok(spec)
}

fn find_any(s: &str, chars: &[char]) -> Option<usize> {
    s.find(chars)
}

fn check_name(name: &str, pos: usize, what: &str) -> Result<(), SpecError> {
    if !is_c_identifier(name) {
        return Err(SpecError::at(
            pos,
            format!("'{name}' is not a valid {what} name"),
            "names follow C identifier rules: letters, digits and '_', not starting with a digit",
        ));
    }
    if name.len() >= 64 {
        return Err(SpecError::at(
            pos,
            format!("{what} name '{name}' is {} characters long", name.len()),
            "the kernel allows at most 63 (MAX_EVENT_NAME_LEN)",
        ));
    }
    Ok(())
}

/// Parse the probe point (first word), with its optional `[GROUP:]EVENT=` prefix.
fn parse_point(word: &str) -> Result<ProbeSpec, SpecError> {
    let mut group = None;
    let mut event = None;
    let mut rest = word;
    let mut off = 0usize;
    if let Some(i) = find_any(rest, &[';', '=', '@', '+', '%']) {
        if rest.as_bytes().get(i) == Some(&b'=') {
            let name = rest.get(..i).unwrap_or_default();
            match name.split_once(':') {
                Some((g, e)) => {
                    check_name(g, 0, "group")?;
                    check_name(e, g.len() + 1, "event")?;
                    group = Some(g.to_string());
                    event = Some(e.to_string());
                }
                None => {
                    check_name(name, 0, "event")?;
                    event = Some(name.to_string());
                }
            }
            rest = rest.get(i + 1..).unwrap_or_default();
            off = i + 1;
        }
    }
    let point = parse_place(rest).map_err(|e| e.shifted(off))?;
    Ok(ProbeSpec {
        group,
        event,
        point,
        args: Vec::new(),
        text: String::new(),
        point_text: rest.to_string(),
    })
}

fn parse_place(s: &str) -> Result<ProbePoint, SpecError> {
    if s.is_empty() {
        return Err(SpecError::at(
            0,
            "missing probe point",
            "name a function after '='",
        ));
    }
    // perf's `is_sdt_event`: `%[GROUP:]NAME`, or `sdt_PROVIDER:NAME` without the `%`.
    let sdt = s
        .strip_prefix('%')
        .or_else(|| (s.starts_with("sdt_") && s.contains(':')).then_some(s));
    if let Some(sdt) = sdt {
        let (provider, name) = match sdt.split_once(':') {
            Some((p, n)) => (Some(p.to_string()), n),
            None => (None, sdt),
        };
        if name.is_empty() {
            return Err(SpecError::at(
                1,
                "missing SDT probe name",
                "write sdt_PROVIDER:NAME or %sdt_PROVIDER:NAME",
            ));
        }
        return Ok(ProbePoint::Sdt {
            provider,
            name: name.to_string(),
        });
    }
    if let Some(hex) = s.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16)
            .map(ProbePoint::Address)
            .map_err(|_| {
                SpecError::at(
                    0,
                    format!("bad address '{s}'"),
                    "an address is 0x followed by hex digits",
                )
            });
    }
    // `@FILE:LINE` / `@FILE;PTN` (an empty function before `@`) is `FILE:LINE`, as perf
    // reads it.
    if let Some(rest) = s.strip_prefix('@') {
        if find_any(rest, &['+', '@', '%']).is_none() && find_any(rest, &[':', ';']).is_some() {
            return parse_place(rest);
        }
    }
    // Split the head (function or file) from the first separator.
    let first = find_any(s, &[';', ':', '+', '@', '%']);
    let head = first.and_then(|i| s.get(..i)).unwrap_or(s);
    let is_file = match first {
        Some(_) if find_any(s, &['+', '@', '%']).is_none() => head.contains('.'),
        _ => false,
    };
    if head.is_empty() {
        return Err(SpecError::at(
            0,
            "missing function name",
            "write FUNC, FUNC+OFFS, FUNC%return",
        ));
    }
    let mut src: Option<String> = None;
    let mut line: Option<u32> = None;
    let mut offset: Option<u64> = None;
    let mut lazy: Option<String> = None;
    let mut ret = false;
    let mut pos = first.unwrap_or(s.len());
    while pos < s.len() {
        let sep = s.as_bytes().get(pos).copied().unwrap_or(b'\0');
        let body_start = pos + 1;
        if sep == b';' {
            lazy = Some(s.get(body_start..).unwrap_or_default().to_string());
            break;
        }
        let end = s
            .get(body_start..)
            .and_then(|r| find_any(r, &[';', ':', '+', '@', '%']))
            .map_or(s.len(), |i| body_start + i);
        let body = s.get(body_start..end).unwrap_or_default();
        match sep {
            b':' => {
                line = Some(parse_uint(body).ok_or_else(|| {
                    SpecError::at(
                        body_start,
                        format!("bad line number '{body}'"),
                        "write :LINE",
                    )
                })? as u32)
            }
            b'+' => {
                offset = Some(parse_uint(body).ok_or_else(|| {
                    SpecError::at(
                        body_start,
                        format!("bad offset '{body}'"),
                        "write +OFFS with a decimal or 0x-hex number of bytes",
                    )
                })?)
            }
            b'@' => {
                if src.is_some() || is_file {
                    return Err(SpecError::at(
                        pos,
                        "SRC@SRC is not allowed",
                        "give one @SRC",
                    ));
                }
                if body.is_empty() {
                    return Err(SpecError::at(
                        body_start,
                        "missing file after '@'",
                        "write FUNC@FILE",
                    ));
                }
                src = Some(body.to_string());
            }
            b'%' => {
                if body != "return" {
                    return Err(SpecError::at(
                        pos,
                        format!("%{body} is not supported"),
                        "the only probe place after % is %return",
                    ));
                }
                ret = true;
            }
            _ => {}
        }
        pos = end;
    }
    let problem = if lazy.is_some() && line.is_some() {
        Some("a lazy pattern can't be used with a line number")
    } else if lazy.is_some() && offset.is_some() {
        Some("a lazy pattern can't be used with an offset")
    } else if line.is_some() && offset.is_some() {
        Some("an offset can't be used with a line number")
    } else if is_file && line.is_none() && lazy.is_none() {
        Some("a source file needs a line number or a lazy pattern")
    } else if is_file && offset.is_some() {
        Some("an offset needs a function")
    } else if ret && (offset.is_some() || line.is_some() || lazy.is_some()) {
        Some("a return probe must be on the head of a function (no offset, line or pattern)")
    } else {
        None
    };
    if let Some(p) = problem {
        return Err(SpecError::at(
            first.unwrap_or(0),
            p,
            "see 'rprobe add --help' for the forms",
        ));
    }
    if is_file {
        let at = match (line, lazy) {
            (Some(l), _) => SrcAt::Line(l),
            (None, Some(p)) => SrcAt::Lazy(p),
            (None, None) => SrcAt::Line(0),
        };
        return Ok(ProbePoint::Source {
            file: head.to_string(),
            at,
        });
    }
    let at = if ret {
        FuncAt::Return
    } else if let Some(o) = offset {
        FuncAt::Offset(o)
    } else if let Some(l) = line {
        FuncAt::Line(l)
    } else if let Some(p) = lazy {
        FuncAt::Lazy(p)
    } else {
        FuncAt::Entry
    };
    Ok(ProbePoint::Function {
        name: head.to_string(),
        src,
        at,
    })
}

/// `strtoul(s, 0)`-style: decimal, `0x` hex or leading-`0` octal; the whole text.
fn parse_uint(s: &str) -> Option<u64> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(s.get(1..)?, 8).ok()
    } else {
        s.parse().ok()
    }
}

/// Parse one argument word.
fn parse_arg(word: &str) -> Result<ProbeArg, SpecError> {
    let mut s = word;
    let mut user = false;
    if let Some(at) = s.find('@') {
        if at > 0 && s.get(at + 1..) == Some("user") {
            user = true;
            s = s.get(..at).unwrap_or_default();
        }
    }
    let mut name = None;
    let mut off = 0;
    if let Some(eq) = s.find('=') {
        let n = s.get(..eq).unwrap_or_default();
        if !is_c_identifier(n) {
            return Err(SpecError::at(
                0,
                format!("'{n}' is not a valid argument name"),
                "argument names follow C identifier rules",
            ));
        }
        name = Some(n.to_string());
        s = s.get(eq + 1..).unwrap_or_default();
        off = eq + 1;
    }
    let (body, ty) = match s.find(':') {
        Some(c) => (
            s.get(..c).unwrap_or_default(),
            Some((c, s.get(c + 1..).unwrap_or_default())),
        ),
        None => (s, None),
    };
    let ty = match ty {
        None => None,
        Some((c, t)) => Some(match t {
            "u" | "s" | "x" => ArgType::Cast(t.chars().next().unwrap_or('x')),
            _ => ArgType::Fetch(FetchType::parse(t, off + c + 1)?),
        }),
    };
    let has_fields = body.contains(['-', '.', '[']);
    let value = if body == "$params" {
        ArgValue::Params
    } else if body == "$vars" {
        ArgValue::Vars
    } else if is_c_varname(body) && has_fields {
        parse_var_chain(body).map_err(|e| e.shifted(off))?
    } else if is_c_identifier(body) {
        ArgValue::Var {
            name: body.to_string(),
            fields: Vec::new(),
        }
    } else {
        ArgValue::Raw(parse_fetch_arg(body, off)?)
    };
    if matches!(ty, Some(ArgType::Cast(_))) && matches!(value, ArgValue::Raw(_)) {
        return Err(SpecError::at(
            off + body.len() + 1,
            "a size-less cast (:u, :s, :x) needs a C variable",
            "give the size for raw fetch args, for example :u32 or :x64",
        ));
    }
    Ok(ProbeArg {
        name,
        value,
        ty,
        user,
        text: word.to_string(),
        pos: 0,
    })
}

/// `file->f_path.dentry[2]` into a variable and its fields.
fn parse_var_chain(s: &str) -> Result<ArgValue, SpecError> {
    let first = s.find(['-', '.', '[']).unwrap_or(s.len());
    let name = s.get(..first).unwrap_or_default().to_string();
    let mut fields = Vec::new();
    let mut i = first;
    while i < s.len() {
        let rest = s.get(i..).unwrap_or_default();
        if let Some(r) = rest.strip_prefix('[') {
            let Some(close) = r.find(']') else {
                return Err(SpecError::at(i, "missing ']'", "an index is written [N]"));
            };
            let n = r.get(..close).unwrap_or_default();
            let idx = n
                .parse::<i64>()
                .ok()
                .or_else(|| parse_uint(n).map(|v| v as i64));
            let Some(idx) = idx else {
                return Err(SpecError::at(
                    i + 1,
                    "array index must be a number",
                    "write [N]",
                ));
            };
            fields.push(Field::Index(idx));
            i += close + 2;
            continue;
        }
        let (arrow, skip) = if rest.starts_with("->") {
            (true, 2)
        } else if rest.starts_with('.') {
            (false, 1)
        } else {
            return Err(SpecError::at(
                i,
                format!("cannot read '{rest}' in a variable chain"),
                "fields are written ->member, .member or [N]",
            ));
        };
        let body = rest.get(skip..).unwrap_or_default();
        let end = body.find(['-', '.', '[']).unwrap_or(body.len());
        let member = body.get(..end).unwrap_or_default();
        if !is_c_identifier(member) {
            return Err(SpecError::at(
                i + skip,
                format!("'{member}' is not a member name"),
                "fields are written ->member, .member or [N]",
            ));
        }
        fields.push(Field::Member {
            name: member.to_string(),
            arrow,
        });
        i += skip + end;
    }
    Ok(ArgValue::Var { name, fields })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(s: &str) -> ProbePoint {
        parse_spec(s).unwrap_or_else(|e| panic!("{s}: {e}")).point
    }

    fn func(name: &str, src: Option<&str>, at: FuncAt) -> ProbePoint {
        ProbePoint::Function {
            name: name.into(),
            src: src.map(Into::into),
            at,
        }
    }

    #[test]
    fn probe_points() {
        assert_eq!(point("vfs_read"), func("vfs_read", None, FuncAt::Entry));
        assert_eq!(
            point("readline%return"),
            func("readline", None, FuncAt::Return)
        );
        assert_eq!(point("malloc+4"), func("malloc", None, FuncAt::Offset(4)));
        assert_eq!(
            point("malloc+0x10"),
            func("malloc", None, FuncAt::Offset(16))
        );
        assert_eq!(point("vfs_read:3"), func("vfs_read", None, FuncAt::Line(3)));
        assert_eq!(
            point("vfs_read@fs/read_write.c"),
            func("vfs_read", Some("fs/read_write.c"), FuncAt::Entry)
        );
        assert_eq!(
            point("vfs_read@fs/read_write.c:5"),
            func("vfs_read", Some("fs/read_write.c"), FuncAt::Line(5))
        );
        assert_eq!(
            point("vfs_read;count*"),
            func("vfs_read", None, FuncAt::Lazy("count*".into()))
        );
        assert_eq!(
            point("fs/read_write.c:600"),
            ProbePoint::Source {
                file: "fs/read_write.c".into(),
                at: SrcAt::Line(600)
            }
        );
        assert_eq!(
            point("main.c;return*"),
            ProbePoint::Source {
                file: "main.c".into(),
                at: SrcAt::Lazy("return*".into())
            }
        );
        assert_eq!(point("0xffff1234"), ProbePoint::Address(0xffff1234));
        assert_eq!(
            point("%sdt_libc:memory_heap_new"),
            ProbePoint::Sdt {
                provider: Some("sdt_libc".into()),
                name: "memory_heap_new".into()
            }
        );
        assert_eq!(
            point("sdt_python:function__entry"),
            ProbePoint::Sdt {
                provider: Some("sdt_python".into()),
                name: "function__entry".into()
            }
        );
        assert_eq!(
            point("%throw"),
            ProbePoint::Sdt {
                provider: None,
                name: "throw".into()
            }
        );
        assert_eq!(point("vfs_*"), func("vfs_*", None, FuncAt::Entry));
    }

    #[test]
    fn event_names() {
        let s = parse_spec("myg:myev=readline%return").unwrap();
        assert_eq!(s.group.as_deref(), Some("myg"));
        assert_eq!(s.event.as_deref(), Some("myev"));
        assert_eq!(s.point_text, "readline%return");
        let s = parse_spec("ev=readline").unwrap();
        assert_eq!((s.group, s.event.as_deref()), (None, Some("ev")));
        assert!(parse_spec("1bad=readline").is_err());
        assert!(parse_spec("g-x:e=readline").is_err());
        let long = format!("{}=readline", "e".repeat(64));
        assert!(parse_spec(&long)
            .unwrap_err()
            .problem
            .contains("64 characters"));
    }

    #[test]
    fn point_errors() {
        for (s, needle) in [
            ("readline%entry", "%entry is not supported"),
            ("readline+4%return", "return probe"),
            ("readline:3+4", "offset can't be used"),
            ("main.c", "main.c"), // a bare word with a dot is a function name; fine
            ("main.c:x", "bad line number"),
            ("f+zz", "bad offset"),
            ("f@a.c@b.c", "SRC@SRC"),
            ("0xzz", "bad address"),
            ("", "empty probe spec"),
            ("  ", "empty probe spec"),
        ] {
            match parse_spec(s) {
                Ok(spec) => assert_eq!(s, "main.c", "{s} parsed as {spec:?}"),
                Err(e) => assert!(e.to_string().contains(needle), "{s}: {e}"),
            }
        }
    }

    #[test]
    fn control_characters_are_refused_with_their_column() {
        let e = parse_spec("readline\np:evil/x /bin/true:0x1").unwrap_err();
        assert_eq!(e.column, 9);
        assert!(e.problem.contains("control character"));
        assert!(parse_spec("readline\t%di").is_err());
        assert!(parse_spec("readline %di\r").is_err());
    }

    #[test]
    fn arguments() {
        let s = parse_spec("vfs_read file->f_path.dentry->d_name.name:string count").unwrap();
        assert_eq!(s.args.len(), 2);
        let a = &s.args[0];
        assert_eq!(a.pos, 9);
        assert_eq!(a.ty, Some(ArgType::Fetch(FetchType::String)));
        assert_eq!(
            a.value,
            ArgValue::Var {
                name: "file".into(),
                fields: vec![
                    Field::Member {
                        name: "f_path".into(),
                        arrow: true
                    },
                    Field::Member {
                        name: "dentry".into(),
                        arrow: false
                    },
                    Field::Member {
                        name: "d_name".into(),
                        arrow: true
                    },
                    Field::Member {
                        name: "name".into(),
                        arrow: false
                    },
                ]
            }
        );
        assert_eq!(
            s.args[1].value,
            ArgValue::Var {
                name: "count".into(),
                fields: vec![]
            }
        );

        let s = parse_spec("f n=+0(+40(+24(%di))):string %si $retval argv[1] x:u $params $vars")
            .unwrap();
        assert_eq!(s.args[0].name.as_deref(), Some("n"));
        assert!(matches!(
            s.args[0].value,
            ArgValue::Raw(FetchArg::Deref { .. })
        ));
        assert_eq!(s.args[1].value, ArgValue::Raw(FetchArg::Reg("si")));
        assert_eq!(s.args[2].value, ArgValue::Raw(FetchArg::Retval));
        assert_eq!(
            s.args[3].value,
            ArgValue::Var {
                name: "argv".into(),
                fields: vec![Field::Index(1)]
            }
        );
        assert_eq!(s.args[4].ty, Some(ArgType::Cast('u')));
        assert_eq!(s.args[5].value, ArgValue::Params);
        assert_eq!(s.args[6].value, ArgValue::Vars);

        let s = parse_spec("tcp_sendmsg dest=sk->__sk_common.skc_daddr:u32@user").unwrap();
        assert!(s.args[0].user);
        assert_eq!(s.args[0].ty, Some(ArgType::Fetch(FetchType::U(32))));
    }

    #[test]
    fn argument_errors_carry_columns() {
        let e = parse_spec("readline x=%rdi").unwrap_err();
        assert_eq!(e.column, 12, "{e}");
        assert!(e.fix.contains("%di"));
        let e = parse_spec("readline +0(%di):strin").unwrap_err();
        assert_eq!(e.column, 18, "{e}");
        assert!(parse_spec("readline %di:u").is_err());
        assert!(parse_spec("readline a->").is_err());
        assert!(parse_spec("readline a[x]").is_err());
        assert!(parse_spec("readline 9x=%di").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,60}") {
            let _ = parse_spec(&s);
        }

        #[test]
        fn never_panics_on_spec_like_text(s in "[a-z_:=@+%;.0-9x$()\\[\\]>\\- ]{0,50}") {
            let _ = parse_spec(&s);
        }
    }
}

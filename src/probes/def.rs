//! A resolved probe: group, event, place and typed fetch args, and its one-line tracefs
//! definition.
//!
//! The line is rendered in the form the kernel shows back in `kprobe_events`/`uprobe_events`
//! (`trace_kprobe_show()`/`trace_uprobe_show()` in kernel/trace): uprobe offsets as
//! `0x%016x`, a kprobe at offset 0 as the bare symbol, every argument named (`argN` for the
//! N-th when the spec gave no name, which is what the kernel names it), each argument's text
//! as written. Writing that form is accepted by the kernel, so what `--dry-run` prints, what
//! is written and what `rprobe list` reads back are one and the same line.
//!
//! Limits are checked here, before anything reaches the kernel (kernel/trace/trace_probe.h):
//! at most 128 arguments, 63 characters of argument body after `NAME=` (type included), 32
//! characters of argument name, group and event names under 64 characters.

use super::error::SpecError;
use super::fetch::{FetchArg, FetchType};
use super::spec::is_c_identifier;
use std::fmt;

/// `MAX_TRACE_ARGS`.
pub const MAX_ARGS: usize = 128;
/// `MAX_ARGSTR_LEN`: characters of an argument after `NAME=`, type included.
pub const MAX_ARG_BODY: usize = 63;
/// `MAX_ARG_NAME_LEN`.
pub const MAX_ARG_NAME: usize = 32;
/// `MAX_EVENT_NAME_LEN` (names must be shorter).
pub const MAX_EVENT_NAME: usize = 64;
/// Deepest chain of loads the kernel accepts (`FETCH_INSN_MAX` is 16 instructions in all;
/// 6.18 takes 14 nested `+0(...)` around a register).
pub const MAX_DEREF_DEPTH: usize = 14;

/// Argument names the kernel reserves for the fields every probe event has.
const RESERVED_ARG_NAMES: &[&str] = &[
    "common_type",
    "common_flags",
    "common_preempt_count",
    "common_pid",
    "common_tgid",
    "__probe_ip",
    "__probe_ret_ip",
    "__probe_func",
];

pub use crate::tracefs::ProbeKind;

/// Where the probe sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A kernel symbol plus offset (`vfs_read`, `vfs_read+16`, `_text+4103328`).
    Kernel {
        /// Symbol, with `MOD:` prefix for modules.
        symbol: String,
        /// Byte offset.
        offset: u64,
    },
    /// A file offset in a user binary, with an optional USDT semaphore offset.
    User {
        /// Absolute path of the binary, symlinks resolved.
        path: String,
        /// File offset of the instruction.
        offset: u64,
        /// `(REF_CTR_OFFSET)`: file offset of a USDT semaphore.
        ref_ctr: Option<u64>,
    },
}

/// One argument of a resolved probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefArg {
    /// Name in the event format (`argN` when none was given).
    pub name: String,
    /// What to fetch.
    pub fetch: FetchArg,
    /// How to store it (the kernel default, x64 on x86_64, when `None`).
    pub ty: Option<FetchType>,
}

impl DefArg {
    /// The argument after `NAME=`: fetch arg and type.
    pub fn body(&self) -> String {
        match &self.ty {
            Some(t) => format!("{}:{t}", self.fetch),
            None => self.fetch.to_string(),
        }
    }
}

/// A probe ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeDef {
    /// Which events file.
    pub kind: ProbeKind,
    /// Return probe.
    pub retprobe: bool,
    /// Event group.
    pub group: String,
    /// Event name.
    pub event: String,
    /// Where.
    pub place: Place,
    /// What it fetches.
    pub args: Vec<DefArg>,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Always with the offset, `vfs_read+0`: what the kernel reads back and what
            // `perf probe -D` prints.
            Place::Kernel { symbol, offset } => write!(f, "{symbol}+{offset}"),
            Place::User {
                path,
                offset,
                ref_ctr,
            } => {
                write!(f, "{path}:0x{offset:016x}")?;
                if let Some(r) = ref_ctr {
                    write!(f, "(0x{r:x})")?;
                }
                Ok(())
            }
        }
    }
}

impl ProbeDef {
    /// The definition line, e.g.
    /// `r:probe_bash/readline__return /usr/bin/bash:0x00000000000c6c20 arg1=+0($retval):string`.
    pub fn line(&self) -> String {
        let mut s = format!(
            "{}:{}/{} {}",
            if self.retprobe { 'r' } else { 'p' },
            self.group,
            self.event,
            self.place
        );
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.name);
            s.push('=');
            s.push_str(&a.body());
        }
        s
    }

    /// `group:event`, as perf tools name events.
    pub fn name(&self) -> String {
        format!("{}:{}", self.group, self.event)
    }

    /// Check the kernel's limits and the rules that do not depend on kernel features.
    pub fn validate(&self) -> Result<(), SpecError> {
        for (what, name) in [("group", &self.group), ("event", &self.event)] {
            if !is_c_identifier(name) {
                return Err(SpecError::whole(
                    format!("{what} name '{name}' is not a C identifier"),
                    "name it with letters, digits and '_' (GROUP:EVENT=FUNC)",
                ));
            }
            if name.len() >= MAX_EVENT_NAME {
                return Err(SpecError::whole(
                    format!("{what} name '{name}' is {} characters long", name.len()),
                    "the kernel allows at most 63; name it explicitly with GROUP:EVENT=FUNC",
                ));
            }
        }
        if self.args.len() > MAX_ARGS {
            return Err(SpecError::whole(
                format!("{} arguments", self.args.len()),
                "the kernel accepts at most 128 per probe (MAX_TRACE_ARGS)",
            ));
        }
        for (i, a) in self.args.iter().enumerate() {
            if !is_c_identifier(&a.name) || a.name.len() > MAX_ARG_NAME {
                return Err(SpecError::whole(
                    format!("argument name '{}' is not valid", a.name),
                    "argument names are C identifiers of at most 32 characters",
                ));
            }
            if RESERVED_ARG_NAMES.contains(&a.name.as_str()) {
                return Err(SpecError::whole(
                    format!("argument name '{}' is reserved", a.name),
                    "the kernel uses it for a common field; choose another NAME=",
                ));
            }
            if self.args.iter().take(i).any(|b| b.name == a.name) {
                return Err(SpecError::whole(
                    format!("two arguments are named '{}'", a.name),
                    "give each argument its own NAME=",
                ));
            }
            let body = a.body();
            if body.len() > MAX_ARG_BODY {
                return Err(SpecError::whole(
                    format!(
                        "argument {} is {} characters long: {body}",
                        a.name,
                        body.len()
                    ),
                    "the kernel accepts at most 63 (MAX_ARGSTR_LEN); split the chain or use \
                     shorter offsets",
                ));
            }
            if a.fetch.depth() > MAX_DEREF_DEPTH {
                return Err(SpecError::whole(
                    format!("argument {} nests {} loads", a.name, a.fetch.depth()),
                    "the kernel allows at most 14 levels of dereference (FETCH_INSN_MAX)",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::fetch::parse_fetch_arg;

    fn arg(name: &str, f: &str, ty: Option<FetchType>) -> DefArg {
        DefArg {
            name: name.into(),
            fetch: parse_fetch_arg(f, 0).unwrap(),
            ty,
        }
    }

    #[test]
    fn uprobe_line_matches_the_kernel_read_back() {
        let d = ProbeDef {
            kind: ProbeKind::Uprobe,
            retprobe: true,
            group: "probe_bash".into(),
            event: "readline__return".into(),
            place: Place::User {
                path: "/usr/bin/bash".into(),
                offset: 0xc6c20,
                ref_ctr: None,
            },
            args: vec![arg("arg1", "+0($retval)", Some(FetchType::String))],
        };
        assert_eq!(
            d.line(),
            "r:probe_bash/readline__return /usr/bin/bash:0x00000000000c6c20 arg1=+0($retval):string"
        );
        assert_eq!(d.name(), "probe_bash:readline__return");
        d.validate().unwrap();
    }

    #[test]
    fn kprobe_and_semaphore_places() {
        let k = Place::Kernel {
            symbol: "vfs_read".into(),
            offset: 0,
        };
        assert_eq!(k.to_string(), "vfs_read+0");
        let k = Place::Kernel {
            symbol: "vfs_read".into(),
            offset: 16,
        };
        assert_eq!(k.to_string(), "vfs_read+16");
        let u = Place::User {
            path: "/usr/bin/python3.11".into(),
            offset: 0x2873b,
            ref_ctr: Some(0x683270),
        };
        assert_eq!(
            u.to_string(),
            "/usr/bin/python3.11:0x000000000002873b(0x683270)"
        );
    }

    #[test]
    fn limits() {
        let mut d = ProbeDef {
            kind: ProbeKind::Kprobe,
            retprobe: false,
            group: "probe".into(),
            event: "vfs_read".into(),
            place: Place::Kernel {
                symbol: "vfs_read".into(),
                offset: 0,
            },
            args: vec![],
        };
        let long = "+0(".repeat(16) + "%di" + &")".repeat(16);
        d.args = vec![arg("a", &long, None)];
        let e = d.validate().unwrap_err();
        assert!(e.problem.contains("characters long"), "{e}");
        d.args = vec![arg("a", "%di", None), arg("a", "%si", None)];
        assert!(d.validate().unwrap_err().problem.contains("two arguments"));
        d.args = vec![arg("common_pid", "%di", None)];
        assert!(d.validate().unwrap_err().problem.contains("reserved"));
        d.args = vec![arg(&"n".repeat(33), "%di", None)];
        assert!(d.validate().is_err());
        d.args = (0..129)
            .map(|i| arg(&format!("a{i}"), "%di", None))
            .collect();
        assert!(d.validate().unwrap_err().problem.contains("129 arguments"));
        d.args = (0..128)
            .map(|i| arg(&format!("a{i}"), "%di", None))
            .collect();
        d.validate().unwrap();
        d.event = "e".repeat(64);
        d.args.clear();
        assert!(d.validate().is_err());
    }
}

//! What this kernel's tracefs supports, read from its `README` (and `available_tracers`).
//!
//! The README is the mini-HOWTO that `kernel/trace/trace.c` (`readme_msg`) builds from the
//! kernel's own config, so a feature is present exactly when its syntax appears there. As
//! perf's `tools/perf/util/probe-file.c` (`ftrace_readme_table`) does, each line is matched
//! against glob patterns; kernel versions are never consulted, since distributions backport.
//! A pattern here supports only `*` (any run of characters); every other character, including
//! `[`, `]` and `\`, is literal, so the README's own text can be pasted in as the pattern.
//!
//! The lines that decide most features, from Linux 6.18 with `CONFIG_UPROBE_EVENTS=y` and no
//! `CONFIG_KPROBE_EVENTS` (leading tabs shown as spaces):
//!
//! ```text
//!   dynamic_events        - Create/append/remove/show the generic dynamic events
//!                e[:[<group>/][<event>]] <attached-group>.<attached-event> [<args>] [if <filter>]
//!    place (uprobe): <path>:<offset>[%return][(ref_ctr_offset)]
//!                $stack<index>, $stack, $retval, $comm, $arg<N>,
//!                +|-[u]<offset>(<fetcharg>), \imm-value, \"imm-string"
//!          type: s8/16/32/64, u8/16/32/64, x8/16/32/64, char, string, symbol,
//!                b<bit-width>@<bit-offset>/<container-size>, ustring,
//!                symstr, %pd/%pD, <type>\[<array-size>\]
//! ```
//!
//! Whether `kprobe_events`, `uprobe_events` and `dynamic_events` can be used is decided by the
//! files existing, not by the README text, because a write needs the file.

/// Which probe-event files exist under the tracefs root.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventFiles {
    /// `kprobe_events` exists (`CONFIG_KPROBE_EVENTS`).
    pub kprobe_events: bool,
    /// `uprobe_events` exists (`CONFIG_UPROBE_EVENTS`).
    pub uprobe_events: bool,
    /// `dynamic_events` exists (Linux 4.20+).
    pub dynamic_events: bool,
}

/// What the kernel's tracefs supports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    /// `kprobe_events` exists.
    pub kprobe_events: bool,
    /// `uprobe_events` exists.
    pub uprobe_events: bool,
    /// `dynamic_events` exists.
    pub dynamic_events: bool,
    /// kretprobes on `SYM+offset` (README `place (kretprobe): `).
    pub kretprobe_offset: bool,
    /// `PLACE%return` for return probes (README `%return`).
    pub return_suffix: bool,
    /// uprobe semaphores, `PATH:OFF(REF_CTR_OFFSET)` (README `ref_ctr_offset`).
    pub ref_ctr_offset: bool,
    /// `+u<offset>(...)` user-memory dereference (README `u]<offset>`).
    pub user_deref: bool,
    /// The `ustring` type.
    pub ustring: bool,
    /// The `symstr` type.
    pub symstr: bool,
    /// Hex types `x8/16/32/64` (README `type: * x8/16/32/64,`).
    pub hex_types: bool,
    /// The `char` type.
    pub char_type: bool,
    /// Array types `TYPE[N]` (README `<array-size>`).
    pub array_types: bool,
    /// Immediates `\IMM` and `\"str"` (README `\imm-value,`).
    pub immediates: bool,
    /// A second definition with the same name and args appends a probe point (README
    /// `Create/append/`).
    pub multiprobe: bool,
    /// `$argN` fetch args (README `$arg<N>`). Kernel function entry/exit only: uprobes reject it.
    pub arg_n: bool,
    /// BTF argument names and `->field` access (README `<argname>[->field`).
    pub btf_args: bool,
    /// The `%pd`/`%pD` dentry and file name types.
    pub pd_type: bool,
    /// Event probes `e:` (README `e[:[<group>/]`).
    pub eprobes: bool,
    /// Function-exit probes `f:` (README `f[:[<group>/]`).
    pub fprobes: bool,
    /// Hist triggers (README `hist:keys=`, `CONFIG_HIST_TRIGGERS`).
    pub hist_triggers: bool,
    /// Synthetic events (README `synthetic_events`).
    pub synthetic_events: bool,
    /// The tracers in `available_tracers`, in the kernel's order.
    pub tracers: Vec<String>,
}

impl Features {
    /// Whether `available_tracers` lists `name` (e.g. `"function_graph"`).
    pub fn has_tracer(&self, name: &str) -> bool {
        self.tracers.iter().any(|t| t == name)
    }
}

type SetFeature = fn(&mut Features);

/// README patterns, one per feature flag. `*` is the only wildcard.
const PATTERNS: &[(&str, SetFeature)] = &[
    ("*place (kretprobe): *", |f| f.kretprobe_offset = true),
    ("*%return*", |f| f.return_suffix = true),
    ("*ref_ctr_offset*", |f| f.ref_ctr_offset = true),
    ("*u]<offset>*", |f| f.user_deref = true),
    ("*ustring*", |f| f.ustring = true),
    ("*symstr*", |f| f.symstr = true),
    ("*type: * x8/16/32/64,*", |f| f.hex_types = true),
    ("*type: * char,*", |f| f.char_type = true),
    ("*<array-size>*", |f| f.array_types = true),
    ("*\\imm-value,*", |f| f.immediates = true),
    ("*Create/append/*", |f| f.multiprobe = true),
    ("*$arg<N>*", |f| f.arg_n = true),
    ("*<argname>[->field*", |f| f.btf_args = true),
    ("*%pd/%pD*", |f| f.pd_type = true),
    ("*e[:[<group>/]*", |f| f.eprobes = true),
    ("*f[:[<group>/]*", |f| f.fprobes = true),
    ("*hist:keys=*", |f| f.hist_triggers = true),
    ("*synthetic_events*", |f| f.synthetic_events = true),
];

/// Features from the text of `README`, the event files that exist, and the tracers from
/// [`parse_available_tracers`].
pub fn parse_readme(readme: &str, files: EventFiles, tracers: Vec<String>) -> Features {
    let mut features = Features {
        kprobe_events: files.kprobe_events,
        uprobe_events: files.uprobe_events,
        dynamic_events: files.dynamic_events,
        tracers,
        ..Features::default()
    };
    for line in readme.lines() {
        for (pattern, set) in PATTERNS {
            if glob_match(pattern, line) {
                set(&mut features);
            }
        }
    }
    features
}

// blk function nop
/// The tracer names in `available_tracers` (one line, space-separated).
pub fn parse_available_tracers(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (including none)
/// and every other character matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let middle: Vec<&str> = parts.collect();
    let Some((last, middle)) = middle.split_last() else {
        // No `*` at all: the whole text must equal the pattern.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = rest.get(at + part.len()..).unwrap_or(""),
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// /sys/kernel/tracing/README of Linux 6.18 (uprobes, no kprobes, no hist triggers).
    const README_6_18: &str = include_str!("../../fixtures/tracefs/README");

    /// The probe-event part of `readme_msg`, transcribed from kernel/trace/trace.c (6.x) with
    /// every option on (kprobes, fprobes, BTF args, hist triggers). Not read from a running
    /// kernel: the test machine lacks these options; the kernel lab can replace it.
    const README_FULL_PART: &str = "\
  dynamic_events\t\t- Create/append/remove/show the generic dynamic events
\t\t\t  Write into this file to define/undefine new trace events.
  kprobe_events\t\t- Create/append/remove/show the kernel dynamic events
\t\t\t  Write into this file to define/undefine new trace events.
  uprobe_events\t\t- Create/append/remove/show the userspace dynamic events
\t\t\t  Write into this file to define/undefine new trace events.
\t  accepts: event-definitions (one definition per line)
\t   Format: p[:[<group>/][<event>]] <place> [<args>]
\t           r[maxactive][:[<group>/][<event>]] <place> [<args>]
\t           f[:[<group>/][<event>]] <func-name>[%return] [<args>]
\t           t[:[<group>/][<event>]] <tracepoint> [<args>]
\t           s:[synthetic/]<event> <field> [<field>]
\t           e[:[<group>/][<event>]] <attached-group>.<attached-event> [<args>] [if <filter>]
\t           -:[<group>/][<event>]
\t    place: [<module>:]<symbol>[+<offset>]|<memaddr>
place (kretprobe): [<module>:]<symbol>[+<offset>]%return|<memaddr>
   place (uprobe): <path>:<offset>[%return][(ref_ctr_offset)]
\t     args: <name>=fetcharg[:type]
\t fetcharg: (%<register>|$<efield>), @<address>, @<symbol>[+|-<offset>],
\t           $stack<index>, $stack, $retval, $comm, $arg<N>,
\t           <argname>[->field[->field|.field...]],
\t           +|-[u]<offset>(<fetcharg>), \\imm-value, \\\"imm-string\"
\t     type: s8/16/32/64, u8/16/32/64, x8/16/32/64, char, string, symbol,
\t           b<bit-width>@<bit-offset>/<container-size>, ustring,
\t           symstr, %pd/%pD, <type>\\[<array-size>\\]
  synthetic_events\t- Create/append/remove/show synthetic events
\t    Format: hist:keys=<field1[,field2,...]>
";

    /// The same part as Linux 4.19 printed it (kprobes and uprobes, before ustring, immediates,
    /// multi-probe and error_log), transcribed from that version's trace.c, not read from a
    /// running kernel.
    const README_4_19_PART: &str = "\
  kprobe_events\t\t- Add/remove/show the kernel dynamic events
\t\t\t  Write into this file to define/undefine new trace events.
  uprobe_events\t\t- Add/remove/show the userspace dynamic events
\t\t\t  Write into this file to define/undefine new trace events.
\t  accepts: event-definitions (one definition per line)
\t   Format: p[:[<group>/]<event>] <place> [<args>]
\t           r[maxactive][:[<group>/]<event>] <place> [<args>]
\t           -:[<group>/]<event>
\t    place: [<module>:]<symbol>[+<offset>]|<memaddr>
place (kretprobe): [<module>:]<symbol>[+<offset>]|<memaddr>
\t    place: <path>:<offset>
\t     args: <name>=fetcharg[:type]
\t fetcharg: %<register>, @<address>, @<symbol>[+|-<offset>],
\t           $stack<index>, $stack, $retval, $comm
\t     type: s8/16/32/64, u8/16/32/64, x8/16/32/64, string, symbol
\t           b<bit-width>@<bit-offset>/<container-size>
";

    fn files(k: bool, u: bool, d: bool) -> EventFiles {
        EventFiles {
            kprobe_events: k,
            uprobe_events: u,
            dynamic_events: d,
        }
    }

    #[test]
    fn real_6_18_readme_without_kprobes() {
        let f = parse_readme(
            README_6_18,
            files(false, true, true),
            parse_available_tracers("blk function nop\n"),
        );
        assert!(!f.kprobe_events);
        assert!(f.uprobe_events && f.dynamic_events);
        assert!(!f.kretprobe_offset, "README has no kretprobe place line");
        assert!(f.return_suffix && f.ref_ctr_offset && f.user_deref);
        assert!(f.ustring && f.symstr && f.hex_types && f.char_type && f.array_types);
        assert!(f.immediates && f.multiprobe && f.arg_n && f.pd_type && f.eprobes);
        assert!(!f.btf_args, "no BTF args without kprobe/fprobe events");
        assert!(!f.fprobes && !f.hist_triggers && !f.synthetic_events);
        assert!(f.has_tracer("function"));
        assert!(!f.has_tracer("function_graph"));
        assert_eq!(f.tracers, ["blk", "function", "nop"]);
    }

    #[test]
    fn full_readme_turns_everything_on() {
        let f = parse_readme(README_FULL_PART, files(true, true, true), Vec::new());
        assert!(f.kretprobe_offset && f.btf_args && f.fprobes);
        assert!(f.hist_triggers && f.synthetic_events);
        assert!(f.tracers.is_empty());
    }

    #[test]
    fn old_readme_lacks_newer_syntax() {
        let f = parse_readme(README_4_19_PART, files(true, true, false), Vec::new());
        assert!(f.kretprobe_offset && f.hex_types);
        assert!(!f.return_suffix && !f.ref_ctr_offset && !f.user_deref && !f.ustring);
        assert!(!f.symstr && !f.char_type && !f.array_types && !f.immediates);
        assert!(!f.multiprobe && !f.arg_n && !f.eprobes && !f.pd_type);
    }

    #[test]
    fn readme_cut_short_loses_only_later_lines() {
        let cut = README_6_18
            .find("\t     type:")
            .expect("type line in fixture");
        let f = parse_readme(&README_6_18[..cut], EventFiles::default(), Vec::new());
        assert!(f.return_suffix && f.immediates);
        assert!(!f.ustring && !f.symstr && !f.hex_types);
        let empty = parse_readme("", EventFiles::default(), Vec::new());
        assert_eq!(empty, Features::default());
    }

    #[test]
    fn glob_is_literal_except_star() {
        assert!(glob_match("*u]<offset>*", "+|-[u]<offset>(<fetcharg>)"));
        assert!(glob_match("*\\imm-value,*", "x \\imm-value, y"));
        assert!(!glob_match("*\\imm-value,*", "imm-value,"));
        assert!(glob_match(
            "*type: * x8/16/32/64,*",
            "\t type: s8/16/32/64, x8/16/32/64, char"
        ));
        assert!(!glob_match("*type: * x8/16/32/64,*", "type: x8/16/32/64,"));
        assert!(glob_match("abc", "abc") && !glob_match("abc", "abcd"));
        assert!(glob_match("a*", "abc") && glob_match("*c", "abc") && glob_match("*", ""));
        assert!(!glob_match("*aa*aa*", "aaa"));
        assert!(glob_match("", "") && !glob_match("", "x"));
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,200}", pattern in "[a-c*\\[\\]<>]{0,10}") {
            let _ = parse_readme(&text, EventFiles::default(), parse_available_tracers(&text));
            let _ = glob_match(&pattern, &text);
        }

        #[test]
        fn star_matches_any_infix(a in "[a-z]{0,5}", b in "[a-z]{0,5}", mid in "\\PC{0,10}") {
            let pattern = format!("{a}*{b}");
            let text = format!("{a}{mid}{b}");
            prop_assert!(glob_match(&pattern, &text));
        }
    }
}

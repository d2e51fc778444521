//! Folded stacks (`comm;root;...;leaf count`), as `perf script | inferno-collapse-perf` makes
//! them, built in-process from the samples' frames instead of from text.
//!
//! inferno's rules (`collapse/perf.rs` and `collapse/common.rs`, inferno 0.12), applied to
//! each frame as `perf script` would print it:
//! - the symbol without its `+0x…` offset; an unknown symbol becomes `[dso basename]`
//!   (`[libc.so.6]`, `[[kernel.kallsyms]]`), or stays `[unknown]` without a DSO;
//! - partially demangled Rust names lose their hash and `$LT$`-style escapes;
//! - `;` becomes `:` and a top-level parameter list is cut (`f(int)` → `f`), except Go's
//!   `pkg.(*T).m` and C++'s `(anonymous namespace)`;
//! - the comm with spaces as `_` is the root; a sample counts its period when the event line
//!   shows one (sampling events), else 1 (tracepoints, probe events);
//! - only one event is folded: the one named, else the first one seen.
//!
//! Unlike inferno, an event whose name holds `:` (`sched:sched_switch`) is folded like any
//! other (inferno reads `sched` as the event and the trace text as a frame, inferno#287).
//! Output lines are sorted, as inferno writes them.

use std::collections::HashMap;
use std::io::{self, Write};

/// Folding options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FoldOptions {
    /// Fold only this event (default: the first event seen).
    pub event: Option<String>,
    /// Append `-PID` to the comm (inferno's `--pid`).
    pub include_pid: bool,
    /// Append `-PID/TID` to the comm (inferno's `--tid`).
    pub include_tid: bool,
}

/// One frame as perf script prints it: symbol (without offset) and DSO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameName<'a> {
    /// The symbol, `None` for `[unknown]`.
    pub sym: Option<&'a str>,
    /// The DSO name, `None` for `[unknown]`.
    pub dso: Option<&'a str>,
}

/// Accumulates folded stacks.
#[derive(Debug, Default)]
pub struct Folder {
    opts: FoldOptions,
    event: Option<String>,
    /// Distinct folded stacks, and each one's count.
    lines: Vec<(String, u64)>,
    index: HashMap<String, usize>,
    /// Samples of other events, left out.
    pub skipped: u64,
    /// Samples with no frames, left out (inferno emits nothing for them either).
    pub empty: u64,
}

impl Folder {
    /// A folder with `opts`.
    pub fn new(opts: FoldOptions) -> Folder {
        Folder {
            event: opts.event.clone(),
            opts,
            ..Folder::default()
        }
    }

    /// The event being folded (after the first sample, when none was named).
    pub fn event(&self) -> Option<&str> {
        self.event.as_deref()
    }

    /// Whether samples of `event` are folded (fixing the event on the first call).
    pub fn wants(&mut self, event: &str) -> bool {
        match &self.event {
            Some(e) => e == event,
            None => {
                self.event = Some(event.to_string());
                true
            }
        }
    }

    /// The root of a stack: the comm, with the pid/tid when asked.
    pub fn root(&self, comm: &str, pid: i32, tid: i32) -> String {
        let mut s = comm.replace(' ', "_");
        if self.opts.include_tid {
            s.push_str(&format!("-{pid}/{tid}"));
        } else if self.opts.include_pid {
            s.push_str(&format!("-{pid}"));
        }
        s
    }

    /// Adds `count` for the stack `root;frames...` (frames leaf first, as in a callchain).
    pub fn add<'a>(
        &mut self,
        root: &str,
        frames: impl DoubleEndedIterator<Item = FrameName<'a>>,
        count: u64,
    ) {
        match fold_stack(root, root.starts_with("java"), frames) {
            Some(line) => self.add_folded(line, count),
            None => self.empty += 1,
        }
    }

    /// Adds `count` for an already folded stack line.
    pub fn add_folded(&mut self, line: String, count: u64) {
        let id = self.intern(line);
        self.add_to(id, count);
    }

    /// The id of a folded stack line (for [`Folder::add_to`]), added with count 0 if new.
    pub fn intern(&mut self, line: String) -> usize {
        if let Some(&id) = self.index.get(&line) {
            return id;
        }
        self.lines.push((line.clone(), 0));
        self.index.insert(line, self.lines.len() - 1);
        self.lines.len() - 1
    }

    /// Adds `count` to the stack with this id.
    pub fn add_to(&mut self, id: usize, count: u64) {
        if let Some((_, n)) = self.lines.get_mut(id) {
            *n = n.saturating_add(count);
        }
    }

    /// Folded stacks, sorted, one `stack count` line each.
    pub fn write<W: Write>(&self, mut w: W) -> io::Result<()> {
        for line in self.lines() {
            writeln!(w, "{line}")?;
        }
        Ok(())
    }

    /// The folded lines (`stack count`), sorted.
    pub fn lines(&self) -> Vec<String> {
        let mut v: Vec<&(String, u64)> = self.lines.iter().filter(|(_, n)| *n > 0).collect();
        v.sort_unstable();
        v.into_iter().map(|(s, n)| format!("{s} {n}")).collect()
    }
}

/// `root;root-most frame;...;leaf`, or `None` when there are no frames. `java` applies
/// inferno's Java tidying (it does so when the comm starts with `java`).
pub fn fold_stack<'a>(
    root: &str,
    java: bool,
    frames: impl DoubleEndedIterator<Item = FrameName<'a>>,
) -> Option<String> {
    join_stack(root, frames.map(|f| frame_names(f, java)))
}

/// `root;...;leaf` of frames already named with [`frame_names`] (leaf first, as in a
/// callchain), or `None` when no frame has a name.
pub fn join_stack<N: AsRef<[String]>>(
    root: &str,
    frames: impl DoubleEndedIterator<Item = N>,
) -> Option<String> {
    let mut s = String::with_capacity(root.len() + 64);
    s.push_str(root);
    let mut any = false;
    for f in frames.rev() {
        for name in f.as_ref() {
            s.push(';');
            s.push_str(name);
            any = true;
        }
    }
    any.then_some(s)
}

/// One frame's folded names: what inferno makes of the line `sym (dso)` that perf script
/// prints for it (`on_stack_line`): none when inferno skips the line (a DSO name whose last
/// space-separated word is not in parentheses, a symbol that starts with `(`), several for
/// Java's `a->b` inline chains.
pub fn frame_names(f: FrameName<'_>, java: bool) -> Vec<String> {
    let line = format!(
        "{} ({})",
        f.sym.unwrap_or("[unknown]"),
        f.dso.unwrap_or("[unknown]")
    );
    // inferno splits the module off at the last space and needs it wrapped in parentheses.
    let Some((rest, module)) = line.rsplit_once(' ') else {
        return Vec::new();
    };
    let Some(module) = module.strip_prefix('(').and_then(|m| m.strip_suffix(')')) else {
        return Vec::new();
    };
    let mut rawfunc = match rest.trim() {
        "" => " ",
        r => r,
    };
    if let Some(at) = rawfunc.rfind("+0x") {
        if rawfunc[at + 3..].chars().all(|c| c.is_ascii_hexdigit()) {
            rawfunc = &rawfunc[..at];
        }
    }
    if rawfunc.starts_with('(') {
        return Vec::new();
    }
    let rawfunc = fix_partially_demangled_rust(rawfunc);
    let mut names: Vec<String> = rawfunc
        .split("->")
        .map(|func| {
            let mut func = tidy_generic(with_module_fallback(module, func));
            if java && func.starts_with('L') && func.contains('/') {
                func.remove(0);
            }
            func
        })
        .collect();
    // Java inline chains: every name after the first is marked inlined.
    for n in names.iter_mut().skip(1) {
        if !n.contains("_[i]") {
            n.push_str("_[i]");
        }
    }
    names
}

/// An unknown function is named after its module's file name: `[libc.so.6]`.
fn with_module_fallback(module: &str, func: &str) -> String {
    if func != "[unknown]" || module == "[unknown]" {
        return func.to_string();
    }
    format!("[{}]", &module[module.rfind('/').map_or(0, |i| i + 1)..])
}

fn tidy_generic(func: String) -> String {
    let mut func = func.replace(';', ":");
    let mut depth = 0i32;
    let mut last_dot = None;
    let mut cut = func.len();
    for (i, c) in func.char_indices() {
        match c {
            '<' | '{' | '[' => depth += 1,
            '>' | '}' | ']' | ')' => depth -= 1,
            '(' => {
                if depth == 0 {
                    let go = last_dot == Some(i);
                    let anon = func[i..].starts_with("(anonymous namespace)");
                    if !go && !anon {
                        cut = i;
                        break;
                    }
                }
                depth += 1;
            }
            '.' => last_dot = Some(i + 1),
            _ => {}
        }
    }
    func.truncate(cut);
    func
}

const RUST_HASH_LEN: usize = 17;

/// inferno's `fix_partially_demangled_rust_symbol`: a legacy-mangled Rust path that a
/// demangler left half done (`_$LT$std..fs..File$u20$as$u20$std..io..Read$GT$::read::h5d8…`).
fn fix_partially_demangled_rust(symbol: &str) -> String {
    let is_hash = |s: &str| {
        s.len() == RUST_HASH_LEN
            && s.starts_with('h')
            && s[1..].chars().all(|c| c.is_ascii_hexdigit())
    };
    if symbol.len() < RUST_HASH_LEN
        || !symbol.is_char_boundary(symbol.len() - RUST_HASH_LEN)
        || !is_hash(&symbol[symbol.len() - RUST_HASH_LEN..])
    {
        return symbol.to_string();
    }
    let mut rest = &symbol[..symbol.len() - RUST_HASH_LEN];
    if let Some(r) = rest.strip_suffix("::") {
        rest = r;
    }
    if rest.starts_with("_$") {
        rest = &rest[1..];
    }
    const ESCAPES: &[(&str, &str)] = &[
        ("$SP$", "@"),
        ("$BP$", "*"),
        ("$RF$", "&"),
        ("$LT$", "<"),
        ("$GT$", ">"),
        ("$LP$", "("),
        ("$RP$", ")"),
        ("$C$", ","),
        ("$u7e$", "~"),
        ("$u20$", " "),
        ("$u27$", "'"),
        ("$u3d$", "="),
        ("$u5b$", "["),
        ("$u5d$", "]"),
        ("$u7b$", "{"),
        ("$u7d$", "}"),
        ("$u3b$", ";"),
        ("$u2b$", "+"),
        ("$u21$", "!"),
        ("$u22$", "\""),
    ];
    let mut out = String::with_capacity(rest.len());
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("..") {
            out.push_str("::");
            rest = r;
        } else if let Some(r) = rest.strip_prefix('.') {
            out.push('.');
            rest = r;
        } else if rest.starts_with('$') {
            match ESCAPES.iter().find(|(p, _)| rest.starts_with(p)) {
                Some((p, d)) => {
                    out.push_str(d);
                    rest = &rest[p.len()..];
                }
                None => {
                    out.push_str(rest);
                    break;
                }
            }
        } else {
            let end = rest.find(['.', '$']).unwrap_or(rest.len());
            out.push_str(&rest[..end]);
            rest = &rest[end..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f<'a>(sym: Option<&'a str>, dso: Option<&'a str>) -> FrameName<'a> {
        FrameName { sym, dso }
    }

    fn frame_name(f: FrameName<'_>) -> String {
        frame_names(f, false).join(";")
    }

    #[test]
    fn names_as_inferno_tidies_them() {
        // A DSO name with a space: inferno reads `(deleted))` as the module.
        assert_eq!(
            frame_name(f(None, Some("/memfd:sealed-9 (deleted)"))),
            "[unknown] "
        );
        // A symbol that starts with `(` is skipped (even `(anonymous namespace)::g()`, as in
        // FlameGraph's stackcollapse-perf.pl); so is a DSO without parentheses.
        assert!(frame_names(f(Some("(fn)"), Some("/a")), false).is_empty());
        assert_eq!(
            frame_names(
                f(
                    Some("Lorg/x/Y;.run()V->Lorg/x/Z;.go()V"),
                    Some("/tmp/perf-1.map")
                ),
                true
            ),
            ["org/x/Y:.run", "org/x/Z:.go_[i]"]
        );
        assert_eq!(frame_name(f(Some("leaf"), Some("/tmp/a"))), "leaf");
        assert_eq!(
            frame_name(f(None, Some("/usr/lib/x86_64-linux-gnu/libc.so.6"))),
            "[libc.so.6]"
        );
        assert_eq!(
            frame_name(f(None, Some("[kernel.kallsyms]"))),
            "[[kernel.kallsyms]]"
        );
        assert_eq!(frame_name(f(None, None)), "[unknown]");
        assert_eq!(frame_name(f(Some("foo(int, char*)"), None)), "foo");
        assert_eq!(frame_name(f(Some("a;b"), None)), "a:b");
        assert_eq!(
            frame_name(f(Some("net/http.(*Client).Do"), None)),
            "net/http.(*Client).Do"
        );
        assert_eq!(frame_name(f(Some("(anonymous namespace)::g()"), None)), "");
        // inferno's own test cases for the Rust fix-up.
        assert_eq!(
            fix_partially_demangled_rust("std::sys::unix::fs::File::open::hb90e1c1c787080f0"),
            "std::sys::unix::fs::File::open"
        );
        assert_eq!(
            fix_partially_demangled_rust("_$LT$std..fs..ReadDir$u20$as$u20$core..iter..traits..iterator..Iterator$GT$::next::hc14f1750ca79129b"),
            "<std::fs::ReadDir as core::iter::traits::iterator::Iterator>::next"
        );
        assert_eq!(
            fix_partially_demangled_rust("rg::search_parallel::_$u7b$$u7b$closure$u7d$$u7d$::_$u7b$$u7b$closure$u7d$$u7d$::h6e849b55a66fcd85"),
            "rg::search_parallel::_{{closure}}::_{{closure}}"
        );
    }

    #[test]
    fn stacks_fold_root_first_and_sum() {
        let mut fo = Folder::new(FoldOptions::default());
        assert!(fo.wants("cpu-clock"));
        assert!(!fo.wants("sched:sched_switch"));
        let root = fo.root("my prog", 7, 8);
        let frames = [f(Some("leaf"), None), f(Some("main"), None)];
        fo.add(&root, frames.iter().copied(), 1001);
        fo.add(&root, frames.iter().copied(), 999);
        fo.add(&root, [].into_iter(), 5);
        let mut out = Vec::new();
        fo.write(&mut out).expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "my_prog;main;leaf 2000\n"
        );
        assert_eq!(fo.empty, 1);
        let with_tid = Folder::new(FoldOptions {
            include_tid: true,
            ..FoldOptions::default()
        });
        assert_eq!(with_tid.root("a b", 7, 8), "a_b-7/8");
    }
}

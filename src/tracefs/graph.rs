//! Call graphs rooted at chosen functions and cut at a depth, selected from an instance's
//! `trace_pipe` text.
//!
//! An instance has no `set_graph_function` or `max_graph_depth` (both are global, see
//! [`super::ftrace`]), so the tracer records every function of the traced tasks and the
//! reader keeps the subtrees under the root functions, down to the depth asked for.
//!
//! Two inputs:
//!
//! - **function_graph** lines, where the kernel has that tracer in instances (6.12). With the
//!   `funcgraph-proc` and `funcgraph-tail` options (`print_graph_entry()` and
//!   `print_graph_return()` in `kernel/trace/trace_functions_graph.c`), the columns are CPU,
//!   task, duration, and after the last `|` two spaces, two more per call depth, and the call:
//!
//!   ```text
//!    0)    dd-161     |               |  vfs_read() {
//!    0)    dd-161     |   0.740 us    |    rw_verify_area();
//!    0)    dd-161     | + 17.460 us   |  } /* vfs_read */
//!   ```
//!
//!   A call at the cut depth that has callees is shown as a leaf (`f();`) with the duration of
//!   its closing line, as `max_graph_depth` would show it.
//! - **function** tracer lines (`trace_fn_trace()`), where the instance has only that tracer
//!   (6.1): each call names its caller, so the calls of one task rebuild its stack — a call
//!   whose caller is on the stack pops the frames above the caller and pushes itself; a caller
//!   that is not on the stack (not traceable, or an interrupt entry) pushes the call on top.
//!   There are no returns, so a frame is shown closed when a later call shows it has returned,
//!   and there are no durations:
//!
//!   ```text
//!                 dd-161     [000] .....     4.123456: vfs_read <-ksys_read
//!   ```
//!
//! Lines of other shapes (`CPU:1 [LOST 12 EVENTS]`, context-switch banners) are counted or
//! skipped, never an error.

use std::collections::BTreeMap;

/// Most frames kept per task in the function-tracer rebuild; deeper stacks lose their
/// bottom frames (an unmatched caller on every call would otherwise grow it without end).
const MAX_STACK: usize = 512;

/// One line of the function tracer's text output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionLine<'a> {
    /// The task's comm.
    pub comm: &'a str,
    /// The task's pid (thread id).
    pub pid: u32,
    /// The CPU.
    pub cpu: u32,
    /// The timestamp as printed, `4.123456`.
    pub timestamp: &'a str,
    /// The function called.
    pub func: &'a str,
    /// Its caller, when `print-parent` is on (the default).
    pub parent: Option<&'a str>,
}

//               dd-161     [000] .....     4.123456: vfs_read <-ksys_read
/// Parse a function-tracer line; None for other lines.
pub fn parse_function_line(line: &str) -> Option<FunctionLine<'_>> {
    let (task, cpu, rest) = split_context(line)?;
    let (comm, pid) = task.rsplit_once('-')?;
    let pid = pid.parse().ok()?;
    // Flags (".....", absent with some options), then "SECS.USECS: ".
    let colon = rest.find(": ")?;
    let timestamp = rest.get(..colon)?.split_whitespace().last()?;
    if !timestamp.contains('.') || !timestamp.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let body = rest.get(colon + 2..)?.trim_end();
    let (func, parent) = match body.split_once(" <-") {
        Some((f, p)) => (f.trim(), Some(p.trim())),
        None => (body, None),
    };
    if func.is_empty() || func.contains(char::is_whitespace) {
        return None;
    }
    Some(FunctionLine {
        comm: comm.trim(),
        pid,
        cpu,
        timestamp,
        func,
        parent: parent.filter(|p| !p.is_empty()),
    })
}

/// `"  COMM-PID  [(TGID)] [CPU] REST"` → (`COMM-PID`, CPU, REST).
fn split_context(line: &str) -> Option<(&str, u32, &str)> {
    let mut from = 0;
    while let Some(i) = line.get(from..)?.find(" [") {
        let at = from + i;
        let after = line.get(at + 2..)?;
        if let Some(end) = after.find(']') {
            let digits = after.get(..end)?;
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                let mut task = line.get(..at)?.trim();
                // record-tgid: "dd-161   (    161)".
                if task.ends_with(')') {
                    task = task.rsplit_once('(').map(|(t, _)| t.trim())?;
                }
                return Some((task, digits.parse().ok()?, after.get(end + 1..)?));
            }
        }
        from = at + 2;
    }
    None
}

// CPU:1 [LOST 12 EVENTS]
/// The count in a `trace_pipe` lost-events line.
pub fn parse_lost_line(line: &str) -> Option<u64> {
    let rest = line.trim().strip_prefix("CPU:")?;
    let (_, rest) = rest.split_once(" [LOST ")?;
    rest.strip_suffix(" EVENTS]")?.parse().ok()
}

/// One line of function_graph output, split.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GraphLine<'a> {
    /// Everything up to and including the last `|`: CPU, task, duration.
    prefix: &'a str,
    /// `comm-pid` when `funcgraph-proc` is on, else the CPU column (`0)`).
    task: &'a str,
    /// Call depth (leading spaces after the last `|`, minus two, halved).
    depth: usize,
    /// What the line shows.
    call: GraphCall<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum GraphCall<'a> {
    /// `f() {`
    Open(&'a str),
    /// `f();`
    Leaf(&'a str),
    /// `}` or `} /* f */`
    Close(Option<&'a str>),
}

//  0)    dd-161     |   0.740 us    |    rw_verify_area();
fn parse_graph_line(line: &str) -> Option<GraphLine<'_>> {
    let bar = line.rfind('|')?;
    let prefix = line.get(..=bar)?;
    let tail = line.get(bar + 1..)?.trim_end();
    let text = tail.trim_start();
    let spaces = tail.len() - text.len();
    let depth = spaces.checked_sub(2)? / 2;
    let call = if let Some(f) = text.strip_suffix("() {") {
        GraphCall::Open(f)
    } else if let Some(f) = text.strip_suffix("();") {
        GraphCall::Leaf(f)
    } else if let Some(rest) = text.strip_prefix('}') {
        let name = rest
            .trim()
            .strip_prefix("/*")
            .and_then(|r| r.strip_suffix("*/"))
            .map(str::trim);
        GraphCall::Close(name)
    } else {
        return None;
    };
    // "CPU) comm-pid | duration |" with funcgraph-proc, "CPU) duration |" without.
    let parts: Vec<&str> = prefix.split('|').collect();
    let first = parts.first().copied().unwrap_or("");
    let task = match (parts.len() >= 3, first.split_once(')')) {
        (true, Some((_, rest))) => rest.trim(),
        (_, Some((cpu, _))) => cpu.trim(),
        (_, None) => first.trim(),
    };
    Some(GraphLine {
        prefix,
        task,
        depth,
        call,
    })
}

/// What to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphOptions {
    /// Functions whose calls are graph roots.
    pub roots: Vec<String>,
    /// Deepest level shown, the root being 1; 0 means no limit.
    pub depth: usize,
}

#[derive(Debug)]
struct GraphSubtree {
    /// Depth of the root's line.
    base: usize,
    /// An opening line at the cut depth, hidden with its callees until its close arrives,
    /// then shown as a leaf: (its depth, the text after the prefix).
    collapsed: Option<(usize, String)>,
}

/// Keeps function_graph subtrees under the roots, cut at the depth.
#[derive(Debug)]
pub struct GraphSelector {
    opts: GraphOptions,
    open: BTreeMap<String, GraphSubtree>,
}

impl GraphSelector {
    /// A selector with nothing open.
    pub fn new(opts: GraphOptions) -> GraphSelector {
        GraphSelector {
            opts,
            open: BTreeMap::new(),
        }
    }

    /// Feed one line; pushes the lines to show (without newlines) to `out`.
    pub fn line(&mut self, line: &str, out: &mut Vec<String>) {
        let Some(g) = parse_graph_line(line) else {
            return;
        };
        let cut = self.opts.depth;
        let text = |level: usize, body: &str| format!("  {}{body}", "  ".repeat(level - 1));
        let Some(sub) = self.open.get_mut(g.task) else {
            let (GraphCall::Open(f) | GraphCall::Leaf(f)) = g.call else {
                return;
            };
            if !self.opts.roots.iter().any(|r| r == f) {
                return;
            }
            if let GraphCall::Leaf(_) = g.call {
                out.push(format!("{}{}", g.prefix, text(1, &format!("{f}();"))));
                return;
            }
            let collapsed = (cut == 1).then(|| (g.depth, text(1, &format!("{f}();"))));
            if collapsed.is_none() {
                out.push(format!("{}{}", g.prefix, text(1, &format!("{f}() {{"))));
            }
            let sub = GraphSubtree {
                base: g.depth,
                collapsed,
            };
            self.open.insert(g.task.to_owned(), sub);
            return;
        };
        let base = sub.base;
        let is_close = matches!(g.call, GraphCall::Close(_));
        if g.depth < base || (g.depth == base && !is_close) {
            // The root's close was lost (an overrun): start over with this line.
            self.open.remove(g.task);
            self.line(line, out);
            return;
        }
        if let Some((depth, leaf)) = &sub.collapsed {
            if g.depth > *depth {
                return;
            }
            if g.depth == *depth && is_close {
                out.push(format!("{}{leaf}", g.prefix));
                sub.collapsed = None;
                if g.depth == base {
                    self.open.remove(g.task);
                }
                return;
            }
            sub.collapsed = None;
        }
        let level = g.depth - base + 1;
        if cut != 0 && level > cut {
            return;
        }
        match g.call {
            GraphCall::Open(f) if level == cut => {
                sub.collapsed = Some((g.depth, text(level, &format!("{f}();"))));
            }
            GraphCall::Open(f) => {
                out.push(format!("{}{}", g.prefix, text(level, &format!("{f}() {{"))))
            }
            GraphCall::Leaf(f) => {
                out.push(format!("{}{}", g.prefix, text(level, &format!("{f}();"))))
            }
            GraphCall::Close(name) => {
                let tail = name.map(|n| format!(" /* {n} */")).unwrap_or_default();
                out.push(format!("{}{}", g.prefix, text(level, &format!("}}{tail}"))));
                if g.depth == base {
                    self.open.remove(g.task);
                }
            }
        }
    }
}

#[derive(Debug)]
struct Frame {
    func: String,
    /// Level below the root (root = 1) when inside a root's subtree.
    level: Option<usize>,
    /// "f() {" has been printed.
    opened: bool,
}

#[derive(Debug, Default)]
struct TaskStack {
    frames: Vec<Frame>,
    comm: String,
}

/// Rebuilds call graphs from function-tracer lines (caller and callee per call), keeping the
/// subtrees under the roots, cut at the depth.
#[derive(Debug)]
pub struct CallRebuilder {
    opts: GraphOptions,
    tasks: BTreeMap<u32, TaskStack>,
}

impl CallRebuilder {
    /// A rebuilder with no task seen yet.
    pub fn new(opts: GraphOptions) -> CallRebuilder {
        CallRebuilder {
            opts,
            tasks: BTreeMap::new(),
        }
    }

    /// Feed one line; pushes the lines to show (without newlines) to `out`.
    pub fn line(&mut self, line: &str, out: &mut Vec<String>) {
        let Some(f) = parse_function_line(line) else {
            return;
        };
        let cut = self.opts.depth;
        let shown = |level: usize| cut == 0 || level <= cut;
        let is_root = self.opts.roots.iter().any(|r| r == f.func);
        let task = self.tasks.entry(f.pid).or_default();
        if task.comm != f.comm {
            task.comm = f.comm.to_owned();
        }
        let label = format!("{:>16}-{:<7}", f.comm, f.pid);
        // A caller on the stack has seen every frame above it return.
        if let Some(parent) = f.parent {
            if let Some(at) = task.frames.iter().rposition(|fr| fr.func == parent) {
                while task.frames.len() > at + 1 {
                    pop(task, &label, cut, out);
                }
            }
        }
        let level = match task.frames.last().and_then(|fr| fr.level) {
            Some(l) => Some(l + 1),
            None if is_root => Some(1),
            None => None,
        };
        if let (Some(l), Some(parent)) = (level, task.frames.last_mut()) {
            if l > 1 && shown(l) && !parent.opened {
                parent.opened = true;
                out.push(format!(
                    "{label} {}{}() {{",
                    "  ".repeat(l - 2),
                    parent.func
                ));
            }
        }
        if task.frames.len() >= MAX_STACK {
            task.frames.remove(0);
        }
        task.frames.push(Frame {
            func: f.func.to_owned(),
            level,
            opened: false,
        });
    }

    /// Close every open frame (at the end of the stream).
    pub fn finish(&mut self, out: &mut Vec<String>) {
        for (pid, task) in self.tasks.iter_mut() {
            let label = format!("{:>16}-{:<7}", task.comm, pid);
            while !task.frames.is_empty() {
                pop(task, &label, self.opts.depth, out);
            }
        }
    }
}

/// Pop the top frame, showing it when it is inside a root's subtree and within the depth:
/// `}` when its callees were shown, else as a leaf.
fn pop(task: &mut TaskStack, label: &str, cut: usize, out: &mut Vec<String>) {
    let Some(fr) = task.frames.pop() else {
        return;
    };
    let Some(level) = fr.level.filter(|l| cut == 0 || *l <= cut) else {
        return;
    };
    let indent = "  ".repeat(level - 1);
    if fr.opened {
        out.push(format!("{label} {indent}}}"));
    } else {
        out.push(format!("{label} {indent}{}();", fr.func));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn function_lines() {
        let l = parse_function_line(
            "              dd-161     [000] .....     4.123456: vfs_read <-ksys_read",
        )
        .expect("parses");
        assert_eq!(
            l,
            FunctionLine {
                comm: "dd",
                pid: 161,
                cpu: 0,
                timestamp: "4.123456",
                func: "vfs_read",
                parent: Some("ksys_read"),
            }
        );
        let l = parse_function_line(
            " kworker/u4:1-9   (      9) [001] d..2.    12.000001: __schedule <-schedule",
        )
        .expect("tgid form");
        assert_eq!(
            (l.comm, l.pid, l.cpu, l.func),
            ("kworker/u4:1", 9, 1, "__schedule")
        );
        let l = parse_function_line("  a-b [x] c-12 [003] .... 1.5: f")
            .expect("dash in comm, no parent");
        assert_eq!((l.comm, l.pid, l.parent), ("a-b [x] c", 12, None));
        for bad in [
            "",
            "# tracer: function",
            "CPU:1 [LOST 12 EVENTS]",
            "dd-1 [000] ..... x: f <-g",
            "dd-x [000] .... 1.0: f",
        ] {
            assert_eq!(parse_function_line(bad), None, "{bad:?}");
        }
        assert_eq!(parse_lost_line("CPU:1 [LOST 12 EVENTS]"), Some(12));
        assert_eq!(parse_lost_line("CPU:1 [LOST x EVENTS]"), None);
    }

    fn select(opts: GraphOptions, text: &str) -> Vec<String> {
        let mut sel = GraphSelector::new(opts);
        let mut out = Vec::new();
        for l in text.lines() {
            sel.line(l, &mut out);
        }
        out
    }

    const GRAPH: &str = "\
 0)    dd-161     |   1.000 us    |  __fdget_pos();
 0)    dd-161     |               |  vfs_read() {
 0)    dd-161     |   0.740 us    |    rw_verify_area();
 0)    dd-161     |               |    ext4_file_read_iter() {
 0)    dd-161     |               |      generic_file_read_iter() {
 0)    dd-161     |   2.000 us    |        filemap_read();
 0)    dd-161     |   3.000 us    |      } /* generic_file_read_iter */
 0)    dd-161     |   4.000 us    |    } /* ext4_file_read_iter */
 ------------------------------------------
 0)    dd-161     =>    sh-150
 ------------------------------------------
 0)    dd-161     |   0.100 us    |    fsnotify_access();
 0)    dd-161     | + 17.460 us   |  } /* vfs_read */
 0)    dd-161     |   0.200 us    |  fput();
";

    #[test]
    fn graph_cut_at_depth_two_shows_callees_as_leaves_with_their_time() {
        let opts = GraphOptions {
            roots: vec!["vfs_read".into()],
            depth: 2,
        };
        assert_eq!(
            select(opts, GRAPH),
            [
                " 0)    dd-161     |               |  vfs_read() {",
                " 0)    dd-161     |   0.740 us    |    rw_verify_area();",
                " 0)    dd-161     |   4.000 us    |    ext4_file_read_iter();",
                " 0)    dd-161     |   0.100 us    |    fsnotify_access();",
                " 0)    dd-161     | + 17.460 us   |  } /* vfs_read */",
            ]
        );
        let all = select(
            GraphOptions {
                roots: vec!["vfs_read".into()],
                depth: 0,
            },
            GRAPH,
        );
        assert_eq!(all.len(), 9, "{all:#?}");
        assert_eq!(
            all[4],
            " 0)    dd-161     |   2.000 us    |        filemap_read();"
        );
        let one = select(
            GraphOptions {
                roots: vec!["vfs_read".into()],
                depth: 1,
            },
            GRAPH,
        );
        assert_eq!(one, [" 0)    dd-161     | + 17.460 us   |  vfs_read();"]);
        assert!(select(
            GraphOptions {
                roots: vec!["nope".into()],
                depth: 2
            },
            GRAPH
        )
        .is_empty());
    }

    fn rebuild(opts: GraphOptions, text: &str) -> Vec<String> {
        let mut r = CallRebuilder::new(opts);
        let mut out = Vec::new();
        for l in text.lines() {
            r.line(l, &mut out);
        }
        r.finish(&mut out);
        out
    }

    const CALLS: &str = "\
              dd-161     [000] .....     4.000001: ksys_read <-do_syscall_64
              dd-161     [000] .....     4.000002: __fdget_pos <-ksys_read
              dd-161     [000] .....     4.000003: vfs_read <-ksys_read
              dd-161     [000] .....     4.000004: rw_verify_area <-vfs_read
              dd-161     [000] .....     4.000005: security_file_permission <-rw_verify_area
              dd-161     [000] .....     4.000006: ext4_file_read_iter <-vfs_read
              dd-161     [000] .....     4.000007: filemap_read <-ext4_file_read_iter
              dd-161     [000] .....     4.000008: fsnotify_access <-vfs_read
              dd-161     [000] .....     4.000009: fput <-ksys_read
";

    #[test]
    fn calls_rebuilt_from_callers() {
        let opts = GraphOptions {
            roots: vec!["vfs_read".into()],
            depth: 2,
        };
        let l = "              dd-161    ";
        assert_eq!(
            rebuild(opts, CALLS),
            [
                format!("{l} vfs_read() {{"),
                format!("{l}   rw_verify_area();"),
                format!("{l}   ext4_file_read_iter();"),
                format!("{l}   fsnotify_access();"),
                format!("{l} }}"),
            ]
        );
        let deep = rebuild(
            GraphOptions {
                roots: vec!["vfs_read".into()],
                depth: 0,
            },
            CALLS,
        );
        assert_eq!(
            deep[2],
            format!("{l}     security_file_permission();"),
            "{deep:#?}"
        );
        assert_eq!(deep.len(), 9, "{deep:#?}");
    }

    proptest! {
        #[test]
        fn never_panic(text in "(\\PC|\n|\\||\\{|\\}|\\(|\\)|-|\\[|\\]| ){0,300}") {
            let _ = select(GraphOptions { roots: vec!["f".into()], depth: 2 }, &text);
            let _ = rebuild(GraphOptions { roots: vec!["f".into()], depth: 2 }, &text);
            for l in text.lines() {
                let _ = parse_function_line(l);
                let _ = parse_lost_line(l);
            }
        }
    }
}

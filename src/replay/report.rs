//! The `perf report --stdio` view: overhead per (command, shared object, symbol), with
//! "Children" (the share of samples whose stack contains the symbol) and "Self" (the share
//! whose leaf it is), and under each entry, with `-g`, the call paths that lead to it.
//!
//! Layout, as perf 6.1 prints it (`hists__fprintf`): a header per event
//! (`# Samples: 404  of event 'cpu-clock'`, `# Event count (approx.): 404404000`), the
//! column header, then one line per entry sorted by Children (or Self with `--no-children`),
//! `[k]` before kernel symbols and `[.]` before user ones, the DSO by its file name.
//! Samples weigh by their period (tracepoints and probe events: 1 each, so shares are of
//! event counts). The call graph follows perf's default shapes: with children, an entry's
//! chains in caller order (root to the entry where it was the leaf, the entry down to the
//! leaf where it was a caller); without, its own samples' chains in callee order. Where
//! chains differ, each is shown with its share (`|--60.00%--`), largest first, rather than
//! as perf's merged tree.

use std::collections::HashMap;
use std::fmt::Write;

/// One frame: command-independent identity of a symbol.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym {
    /// The DSO's file name (`libc.so.6`, `[kernel.kallsyms]`, `[unknown]`).
    pub dso: String,
    /// The symbol, or the address in hex when unknown (`0x7f...`).
    pub name: String,
    /// A kernel symbol.
    pub kernel: bool,
}

/// What entries are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// The command.
    Comm,
    /// The shared object.
    Dso,
    /// The symbol.
    Sym,
}

/// Parses `comm,dso,sym` (perf's `--sort`).
pub fn parse_sort(text: &str) -> Result<Vec<SortKey>, String> {
    text.split(',')
        .map(|k| match k.trim() {
            "comm" => Ok(SortKey::Comm),
            "dso" => Ok(SortKey::Dso),
            "sym" | "symbol" => Ok(SortKey::Sym),
            other => Err(format!(
                "--sort {text}: unknown key '{other}'; use comm, dso and sym"
            )),
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    comm: Option<String>,
    dso: Option<String>,
    sym: Option<(String, bool)>,
}

#[derive(Debug, Default)]
struct Entry {
    self_period: u64,
    children: u64,
    samples: u64,
    /// Chains for the children view (caller order), with their period.
    paths: HashMap<Vec<Sym>, u64>,
    /// Chains of the entry's own samples (callee order, leaf first), with their period.
    self_paths: HashMap<Vec<Sym>, u64>,
}

/// The report of one event.
#[derive(Debug)]
pub struct Report {
    keys: Vec<SortKey>,
    entries: HashMap<Key, Entry>,
    /// Samples added.
    pub samples: u64,
    /// Their total period.
    pub total: u64,
}

impl Report {
    /// An empty report sorted by `keys`.
    pub fn new(keys: Vec<SortKey>) -> Report {
        Report {
            keys,
            entries: HashMap::new(),
            samples: 0,
            total: 0,
        }
    }

    fn key(&self, comm: &str, s: &Sym) -> Key {
        let has = |k| self.keys.contains(&k);
        Key {
            comm: has(SortKey::Comm).then(|| comm.to_string()),
            dso: has(SortKey::Dso).then(|| s.dso.clone()),
            sym: has(SortKey::Sym).then(|| (s.name.clone(), s.kernel)),
        }
    }

    /// Adds one sample: `frames` leaf first (the sampled ip, then its callers).
    pub fn add(&mut self, comm: &str, frames: &[Sym], period: u64) {
        self.samples += 1;
        self.total = self.total.saturating_add(period);
        let Some(leaf) = frames.first() else {
            return;
        };
        let k = self.key(comm, leaf);
        let e = self.entries.entry(k).or_default();
        e.self_period = e.self_period.saturating_add(period);
        let p = e.self_paths.entry(frames.to_vec()).or_insert(0);
        *p = p.saturating_add(period);
        let mut seen: Vec<Key> = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let k = self.key(comm, f);
            if seen.contains(&k) {
                continue;
            }
            let chain: Vec<Sym> = if i == 0 {
                frames.iter().rev().cloned().collect()
            } else {
                frames[..=i].iter().rev().cloned().collect()
            };
            let e = self.entries.entry(k.clone()).or_default();
            e.children = e.children.saturating_add(period);
            e.samples += 1;
            let p = e.paths.entry(chain).or_insert(0);
            *p = p.saturating_add(period);
            seen.push(k);
        }
    }

    /// The `perf report --stdio`-style text for this event.
    pub fn render(&self, event: &str, children: bool, graph: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Samples: {}  of event '{event}'", self.samples);
        let _ = writeln!(out, "# Event count (approx.): {}", self.total);
        out.push_str("#\n");
        let pct = |v: u64| {
            if self.total == 0 {
                0.0
            } else {
                100.0 * v as f64 / self.total as f64
            }
        };
        let mut rows: Vec<(&Key, &Entry)> = self.entries.iter().collect();
        rows.sort_by(|a, b| {
            let (va, vb) = if children {
                (a.1.children, b.1.children)
            } else {
                (a.1.self_period, b.1.self_period)
            };
            vb.cmp(&va)
                .then(b.1.self_period.cmp(&a.1.self_period))
                .then(a.0.cmp(b.0))
        });
        if !children {
            rows.retain(|(_, e)| e.self_period > 0);
        }
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|(k, _)| {
                let mut c = Vec::new();
                if let Some(comm) = &k.comm {
                    c.push(comm.clone());
                }
                if let Some(d) = &k.dso {
                    c.push(d.clone());
                }
                if let Some((s, kernel)) = &k.sym {
                    c.push(format!("[{}] {s}", if *kernel { 'k' } else { '.' }));
                }
                c
            })
            .collect();
        let names: Vec<&str> = self
            .keys
            .iter()
            .map(|k| match k {
                SortKey::Comm => "Command",
                SortKey::Dso => "Shared Object",
                SortKey::Sym => "Symbol",
            })
            .collect();
        let mut widths: Vec<usize> = names.iter().map(|n| n.len()).collect();
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut head = String::from("#");
        let mut dots = String::from("#");
        if children {
            head.push_str(" Children      Self");
            dots.push_str(" ........  ........");
        } else {
            head.push_str(" Overhead");
            dots.push_str(" ........");
        }
        for (n, w) in names.iter().zip(&widths) {
            let _ = write!(head, "  {n:<w$}");
            let _ = write!(dots, "  {}", ".".repeat(*w));
        }
        let _ = writeln!(out, "{head}");
        let _ = writeln!(out, "{dots}");
        out.push_str("#\n");
        for ((_, e), row) in rows.iter().zip(&cells) {
            let mut line = if children {
                format!("{:>9.2}%{:>9.2}%", pct(e.children), pct(e.self_period))
            } else {
                format!("{:>9.2}%", pct(e.self_period))
            };
            for (c, w) in row.iter().zip(&widths) {
                let _ = write!(line, "  {c:<w$}");
            }
            let _ = writeln!(out, "{}", line.trim_end());
            if graph {
                let (paths, total) = if children {
                    (&e.paths, e.children)
                } else {
                    (&e.self_paths, e.self_period)
                };
                render_paths(&mut out, paths, total);
            }
        }
        out
    }
}

/// An entry's chains: one as perf draws a lone chain (`---first` then one name a line), or
/// several, largest first, each with its share of `total`.
fn render_paths(out: &mut String, paths: &HashMap<Vec<Sym>, u64>, total: u64) {
    let mut paths: Vec<(&Vec<Sym>, &u64)> = paths.iter().filter(|(p, _)| !p.is_empty()).collect();
    if paths.is_empty() {
        return;
    }
    paths.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    out.push_str("            |\n");
    if let [(path, _)] = paths[..] {
        let _ = writeln!(out, "            ---{}", path[0].name);
        for s in &path[1..] {
            let _ = writeln!(out, "               {}", s.name);
        }
    } else {
        for (path, period) in paths {
            let share = 100.0 * *period as f64 / total.max(1) as f64;
            let _ = writeln!(out, "            |--{share:.2}%--{}", path[0].name);
            for s in &path[1..] {
                let _ = writeln!(out, "            |          {}", s.name);
            }
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str) -> Sym {
        Sym {
            dso: "app".into(),
            name: name.into(),
            kernel: false,
        }
    }

    #[test]
    fn children_and_self_shares() {
        let mut r = Report::new(parse_sort("comm,dso,sym").expect("keys"));
        // 3 samples in leaf under main, 1 in main itself.
        for _ in 0..3 {
            r.add("app", &[s("leaf"), s("main")], 10);
        }
        r.add("app", &[s("main")], 10);
        let text = r.render("cpu-clock", true, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "# Samples: 4  of event 'cpu-clock'");
        assert_eq!(lines[1], "# Event count (approx.): 40");
        assert_eq!(
            lines[3],
            "# Children      Self  Command  Shared Object  Symbol  "
        );
        assert_eq!(
            lines[4],
            "# ........  ........  .......  .............  ........"
        );
        assert_eq!(
            lines[6],
            "   100.00%    25.00%  app      app            [.] main"
        );
        assert_eq!(
            lines[7],
            "    75.00%    75.00%  app      app            [.] leaf"
        );
        let no_children = r.render("cpu-clock", false, false);
        assert!(no_children.contains("\n    75.00%  app      app            [.] leaf\n"));
        // main: the leaf samples below it, and its own sample (a lone main).
        let graph = r.render("cpu-clock", true, true);
        assert!(
            graph.contains("|--75.00%--main\n            |          leaf\n"),
            "{graph}"
        );
        assert!(graph.contains("|--25.00%--main\n"), "{graph}");
        // leaf: one chain, root first.
        assert!(
            graph.contains("            ---main\n               leaf\n"),
            "{graph}"
        );
    }

    #[test]
    fn recursion_counts_children_once() {
        let mut r = Report::new(vec![SortKey::Sym]);
        r.add("a", &[s("f"), s("f"), s("main")], 1);
        let text = r.render("e", true, false);
        assert!(text.contains("   100.00%   100.00%  [.] f"), "{text}");
        assert!(parse_sort("comm,bogus").unwrap_err().contains("'bogus'"));
    }
}

//! `rprobe list`: the kprobe and uprobe events that exist, with where they sit and what they
//! fetch.

use super::env;
use crate::elf::SymbolTable;
use crate::probes::resolve::glob_match;
use crate::tracefs::{ProbeEventLine, ProbeKind};
use anyhow::Result;
use clap::Args;
use std::collections::BTreeMap;
use std::io::Write;

const EXAMPLES: &str = "\
Examples:
  rprobe list                  # every kprobe and uprobe event, from any tool
  rprobe list 'probe_bash:*'   # one group
  rprobe list 'read*'          # an event name in any group";

/// List probe events (from rprobe, perf probe or any other tool).
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct ListArgs {
    /// Glob over GROUP:EVENT; without ':' it matches the event name in any group.
    #[arg(value_name = "PATTERN")]
    pattern: Option<String>,
}

/// Whether `group:event` matches a `del`/`list` pattern.
pub fn matches(pattern: &str, group: &str, event: &str) -> bool {
    match pattern.split_once(':') {
        Some((g, e)) => glob_match(g, group) && glob_match(e, event),
        None => glob_match(pattern, event),
    }
}

pub fn run(args: &ListArgs, out: &mut dyn Write) -> Result<()> {
    let tracefs = env::open_tracefs()?;
    let mut symbols: BTreeMap<String, Option<SymbolTable>> = BTreeMap::new();
    for kind in [ProbeKind::Kprobe, ProbeKind::Uprobe] {
        let Ok(lines) = tracefs.probe_events(kind) else {
            continue;
        };
        for l in lines {
            if let Some(p) = &args.pattern {
                if !matches(p, &l.group, &l.event) {
                    continue;
                }
            }
            writeln!(out, "{}", describe(&l, kind, &mut symbols))?;
        }
    }
    Ok(())
}

/// `  probe_bash:readline__return (on readline%return in /usr/bin/bash with arg1=+0($retval):string)`
fn describe(
    l: &ProbeEventLine,
    kind: ProbeKind,
    symbols: &mut BTreeMap<String, Option<SymbolTable>>,
) -> String {
    let ret = if l.kind_char == 'r' { "%return" } else { "" };
    let place = match kind {
        ProbeKind::Kprobe => format!("{}{ret}", l.place),
        ProbeKind::Uprobe => match split_user_place(&l.place) {
            Some((path, off)) => {
                let table = symbols
                    .entry(path.to_string())
                    .or_insert_with(|| env::read_symbols(std::path::Path::new(path)).ok());
                let at = table.as_ref().and_then(|t| symbolize(t, off));
                match at {
                    Some(s) => format!("{s}{ret} in {path}"),
                    None => format!("0x{off:x}{ret} in {path}"),
                }
            }
            None => format!("{}{ret}", l.place),
        },
    };
    let mut s = format!("  {:<20} (on {place}", format!("{}:{}", l.group, l.event));
    if !l.args.is_empty() {
        s.push_str(" with ");
        s.push_str(&l.args.join(" "));
    }
    s.push(')');
    s
}

/// `/usr/bin/bash:0x00000000000c6c20(0x10)` → (`/usr/bin/bash`, 0xc6c20).
fn split_user_place(place: &str) -> Option<(&str, u64)> {
    let (path, rest) = place.rsplit_once(":0x")?;
    let hex: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
    Some((path, u64::from_str_radix(&hex, 16).ok()?))
}

/// `func` or `func+N` for a file offset.
fn symbolize(t: &SymbolTable, off: u64) -> Option<String> {
    // Aliases share an address (`malloc`, `__libc_malloc`): prefer the exported name that
    // does not start with '_', as a user would have typed it.
    let (delta, f) = t
        .funcs
        .iter()
        .filter_map(|f| {
            let fo = f.file_offset?;
            (off >= fo && (off - fo < f.size || off == fo)).then(|| (off - fo, f))
        })
        .min_by_key(|(d, f)| (*d, !f.dynamic, f.name.starts_with('_'), f.name.len()))?;
    let name = crate::elf::demangle::demangle(&f.name);
    Some(if delta == 0 {
        name
    } else {
        format!("{name}+{delta}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches("probe_bash:*", "probe_bash", "readline"));
        assert!(!matches("probe_bash:*", "probe_libc", "malloc"));
        assert!(matches("read*", "probe_bash", "readline"));
        assert!(matches("*:*", "g", "e"));
        assert!(!matches("malloc", "probe_libc", "malloc_1"));
    }

    #[test]
    fn places() {
        assert_eq!(
            split_user_place("/usr/bin/bash:0x00000000000c6c20"),
            Some(("/usr/bin/bash", 0xc6c20))
        );
        assert_eq!(
            split_user_place("/a:b/c:0x10(0x20)"),
            Some(("/a:b/c", 0x10))
        );
        assert_eq!(split_user_place("vfs_read+0"), None);
    }
}

//! `rprobe del`: delete the kprobe/uprobe events that match, disabling each first.

use super::env;
use super::list::matches;
use crate::tracefs::ProbeKind;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::collections::BTreeSet;
use std::io::Write;

const EXAMPLES: &str = "\
Examples:
  rprobe del probe_bash:readline__return
  rprobe del 'probe_libc:*'          # a whole group
  rprobe del 'malloc*'               # by event name, in any group";

/// Delete probe events matching GROUP:EVENT globs.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct DelArgs {
    /// Globs over GROUP:EVENT; without ':' a pattern matches the event name in any group.
    #[arg(value_name = "PATTERN", required = true)]
    patterns: Vec<String>,
}

pub fn run(args: &DelArgs, out: &mut dyn Write) -> Result<()> {
    let tracefs = env::open_tracefs()?;
    let mut matched: Vec<(ProbeKind, String, String)> = Vec::new();
    let mut seen = BTreeSet::new();
    for kind in [ProbeKind::Kprobe, ProbeKind::Uprobe] {
        let Ok(lines) = tracefs.probe_events(kind) else {
            continue;
        };
        for l in lines {
            if args.patterns.iter().any(|p| matches(p, &l.group, &l.event))
                && seen.insert((l.group.clone(), l.event.clone()))
            {
                matched.push((kind, l.group, l.event));
            }
        }
    }
    if matched.is_empty() {
        bail!(
            "no probe event matches {}; see 'rprobe list'",
            args.patterns
                .iter()
                .map(|p| format!("'{p}'"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for (kind, group, event) in &matched {
        tracefs.delete_probe(*kind, group, event).with_context(|| {
            format!(
                "cannot delete {group}:{event} (a perf or rprobe session may still have it open)"
            )
        })?;
        writeln!(out, "Removed event: {group}:{event}")?;
    }
    Ok(())
}

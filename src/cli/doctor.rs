//! `rprobe doctor`: what this kernel and this process allow, and for each "no" the reason and
//! what to change.
//!
//! One line per facility, `NAME: VALUE  REASON`, with stable names (scripts and the kernel
//! lab read them): `tracefs kprobe_events uprobe_events eprobes function_tracer
//! function_graph hist_triggers btf perf_events hardware_counters perf_event_paranoid
//! privileges lockdown bpf`.

use super::env;
use crate::sys;
use crate::tracefs::{Features, Tracefs};
use anyhow::Result;
use clap::Args;
use std::io::Write;

const EXAMPLES: &str = "\
Examples:
  rprobe doctor
  rprobe doctor | grep ': no'     # only what is missing";

/// Report what this kernel allows (probes, tracers, BTF, perf, BPF), and why not.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct DoctorArgs {}

/// `Some(true)` for `=y`/`=m`, `Some(false)` for `is not set`, `None` when the config does not
/// mention the option or is unavailable.
fn config(cfg: Option<&str>, opt: &str) -> Option<bool> {
    let cfg = cfg?;
    for line in cfg.lines() {
        if let Some(v) = line.strip_prefix(opt).and_then(|r| r.strip_prefix('=')) {
            return Some(v == "y" || v == "m");
        }
        if line == format!("# {opt} is not set") {
            return Some(false);
        }
    }
    None
}

fn missing(cfg: Option<&str>, opts: &[&str]) -> String {
    let unset: Vec<&str> = opts
        .iter()
        .copied()
        .filter(|o| config(cfg, o) == Some(false))
        .collect();
    let list = if unset.is_empty() {
        opts.to_vec()
    } else {
        unset
    };
    format!(
        "kernel built without {} (rebuild with it =y, or use another kernel)",
        list.join(", ")
    )
}

struct Report<'a> {
    out: &'a mut dyn Write,
}

impl Report<'_> {
    fn line(&mut self, name: &str, value: &str, reason: &str) -> std::io::Result<()> {
        writeln!(self.out, "{name}: {value}  {reason}")
    }

    fn yes_no(&mut self, name: &str, ok: bool, yes: &str, no: &str) -> std::io::Result<()> {
        self.line(
            name,
            if ok { "yes" } else { "no" },
            if ok { yes } else { no },
        )
    }
}

pub fn run(_args: &DoctorArgs, out: &mut dyn Write) -> Result<()> {
    let cfg = sys::kernel_config();
    let cfg = cfg.as_deref();
    let mut r = Report { out };
    let root = sys::is_root();

    let was_mounted = Tracefs::find().is_ok();
    let tracefs = env::open_tracefs();
    let features: Option<Features> = tracefs.as_ref().ok().and_then(|t| t.features().ok());
    match (&tracefs, &features) {
        (Ok(t), Some(_)) => {
            let how = if was_mounted {
                "mounted"
            } else {
                "mounted it now"
            };
            r.line("tracefs", "yes", &format!("{} ({how})", t.root().display()))?
        }
        (Ok(t), None) => r.line(
            "tracefs",
            "no",
            &format!(
                "{} is mounted but its README is unreadable: run as root",
                t.root().display()
            ),
        )?,
        (Err(e), _) => r.line("tracefs", "no", &format!("{e:#}"))?,
    }
    let f = features.unwrap_or_default();
    let known = tracefs.is_ok();
    let unknown = "unknown: tracefs is not readable";
    let say = |known: bool, ok: bool, no: String| {
        if known {
            no
        } else if ok {
            String::new()
        } else {
            unknown.to_string()
        }
    };

    r.yes_no(
        "kprobe_events",
        f.kprobe_events,
        "kernel function probes (kprobes, kretprobes)",
        &say(
            known,
            false,
            missing(cfg, &["CONFIG_KPROBES", "CONFIG_KPROBE_EVENTS"]),
        ),
    )?;
    r.yes_no(
        "uprobe_events",
        f.uprobe_events,
        "user-space probes (uprobes, uretprobes)",
        &say(
            known,
            false,
            missing(cfg, &["CONFIG_UPROBES", "CONFIG_UPROBE_EVENTS"]),
        ),
    )?;
    let eprobes = match config(cfg, "CONFIG_EPROBE_EVENTS") {
        Some(v) => v,
        None => f.eprobes,
    };
    r.yes_no(
        "eprobes",
        eprobes,
        "event probes on existing events (dynamic_events e:)",
        &say(known, false, missing(cfg, &["CONFIG_EPROBE_EVENTS"])),
    )?;
    r.yes_no(
        "function_tracer",
        f.has_tracer("function"),
        "ftrace function tracer",
        &say(known, false, missing(cfg, &["CONFIG_FUNCTION_TRACER"])),
    )?;
    r.yes_no(
        "function_graph",
        f.has_tracer("function_graph"),
        "ftrace function_graph tracer (call graphs with durations)",
        &say(
            known,
            false,
            missing(cfg, &["CONFIG_FUNCTION_GRAPH_TRACER"]),
        ),
    )?;
    r.yes_no(
        "hist_triggers",
        f.hist_triggers,
        "in-kernel counts and histograms on any event",
        &say(known, false, missing(cfg, &["CONFIG_HIST_TRIGGERS"])),
    )?;
    let btf = std::path::Path::new("/sys/kernel/btf/vmlinux").is_file();
    r.yes_no(
        "btf",
        btf,
        "/sys/kernel/btf/vmlinux: struct layouts for kernel probes without debuginfo",
        &missing(cfg, &["CONFIG_DEBUG_INFO_BTF"]),
    )?;

    let paranoid = sys::perf_event_paranoid();
    match sys::try_perf_event(sys::PERF_TYPE_SOFTWARE, sys::PERF_COUNT_SW_CPU_CLOCK, "cpu-clock") {
        Ok(()) => r.line("perf_events", "yes", "perf_event_open works (cpu-clock)")?,
        Err(e) => r.line(
            "perf_events",
            "no",
            &format!("{e}: kernel built without CONFIG_PERF_EVENTS, or perf_event_open is forbidden (seccomp, perf_event_paranoid 3)"),
        )?,
    }
    match sys::try_perf_event(sys::PERF_TYPE_HARDWARE, sys::PERF_COUNT_HW_CPU_CYCLES, "cycles") {
        Ok(()) => r.line("hardware_counters", "yes", "CPU cycles and instructions can be counted")?,
        Err(e) => r.line(
            "hardware_counters",
            "no",
            &format!("{e}: no hardware PMU (common in VMs); sample with the cpu-clock software event instead"),
        )?,
    }
    let para_reason = match paranoid {
        Some(p) if p <= -1 => "no restrictions on perf events".to_string(),
        Some(p) => format!(
            "{} for unprivileged users{}; root, CAP_PERFMON or CAP_SYS_ADMIN bypass it (sysctl kernel.perf_event_paranoid=-1 lifts it)",
            match p {
                0 => "no raw tracepoint samples",
                1 => "no CPU-wide events, no raw tracepoint samples",
                2 => "no kernel profiling, no CPU-wide events, no raw tracepoint samples",
                _ => "no perf_event_open at all",
            },
            if root { " (you are root: not limited)" } else { "" }
        ),
        None => "unreadable: /proc/sys/kernel/perf_event_paranoid is missing".to_string(),
    };
    r.line(
        "perf_event_paranoid",
        &paranoid.map_or_else(|| "?".to_string(), |p| p.to_string()),
        &para_reason,
    )?;

    let caps: Vec<&str> = [
        (sys::caps::SYS_ADMIN, "CAP_SYS_ADMIN"),
        (sys::caps::PERFMON, "CAP_PERFMON"),
        (sys::caps::BPF, "CAP_BPF"),
    ]
    .iter()
    .filter(|(c, _)| sys::has_cap(*c))
    .map(|(_, n)| *n)
    .collect();
    let who = if root { "root" } else { "not root" };
    let privileged = root || !caps.is_empty();
    r.yes_no(
        "privileges",
        privileged,
        &format!("{who}; capabilities: {}", if caps.is_empty() { "none".into() } else { caps.join(" ") }),
        &format!("{who}, no CAP_PERFMON/CAP_SYS_ADMIN: run rprobe as root (or with CAP_PERFMON and tracefs write access)"),
    )?;

    let lockdown = match sys::read_sys_text("/sys/kernel/security/lockdown") {
        Some(text) => {
            let mode = text
                .split_whitespace()
                .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))
                .unwrap_or("none")
                .to_string();
            let what = match mode.as_str() {
                "none" => "nothing is locked down".to_string(),
                "integrity" => "integrity: probes, tracing and perf work".to_string(),
                _ => "confidentiality: kprobe events and every tracefs access are refused; boot with lockdown=integrity or none".to_string(),
            };
            (mode, what)
        }
        None => (
            "none".to_string(),
            "/sys/kernel/security/lockdown is absent (no lockdown LSM, or securityfs not mounted)"
                .to_string(),
        ),
    };
    r.line("lockdown", &lockdown.0, &lockdown.1)?;

    match sys::try_bpf_prog_load() {
        Ok(()) => r.line(
            "bpf",
            "yes",
            "bpf(2) loads programs (optional: rprobe itself never needs it)",
        )?,
        Err(e) => {
            let why = match e.errno() {
                Some(libc::EPERM) => "needs CAP_BPF or root; kernel.unprivileged_bpf_disabled is set, or lockdown/seccomp forbids it",
                Some(libc::ENOSYS) => "kernel built without CONFIG_BPF_SYSCALL",
                _ => "bpf(2) refused the smallest program",
            };
            r.line("bpf", "no", &format!("{e}: {why}; rprobe works without it"))?
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lines() {
        let c = "CONFIG_UPROBES=y\n# CONFIG_KPROBES is not set\nCONFIG_X=m\n";
        assert_eq!(config(Some(c), "CONFIG_UPROBES"), Some(true));
        assert_eq!(config(Some(c), "CONFIG_KPROBES"), Some(false));
        assert_eq!(config(Some(c), "CONFIG_X"), Some(true));
        assert_eq!(config(Some(c), "CONFIG_Y"), None);
        assert_eq!(config(None, "CONFIG_X"), None);
        assert_eq!(
            missing(Some(c), &["CONFIG_KPROBES", "CONFIG_KPROBE_EVENTS"]),
            "kernel built without CONFIG_KPROBES (rebuild with it =y, or use another kernel)"
        );
    }
}

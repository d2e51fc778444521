//! `rprobe doctor` on this machine: each answer checked against what the kernel itself shows
//! (the probe-event files, `available_tracers`, `/sys/kernel/btf/vmlinux`, the kernel config).
//! Reads tracefs's `README` and `available_tracers` only, never the probe-event lists.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const TRACEFS: &str = "/sys/kernel/tracing";

fn doctor() -> Option<BTreeMap<String, (String, String)>> {
    let is_root = Command::new("id").arg("-u").output().ok()?.stdout == b"0\n";
    if !is_root || !Path::new("/sys/kernel").is_dir() {
        let why = "SKIP doctor::answers_match_the_kernel: needs root to mount and read tracefs";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        println!("{why}");
        return None;
    }
    let o = Command::new(env!("CARGO_BIN_EXE_rprobe"))
        .arg("doctor")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let (name, rest) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let (value, reason) = rest.split_once("  ").unwrap_or((rest, ""));
        m.insert(name.to_string(), (value.to_string(), reason.to_string()));
    }
    Some(m)
}

fn kernel_option(opt: &str) -> Option<bool> {
    let out = Command::new("sh")
        .arg("-c")
        .arg("zcat /proc/config.gz 2>/dev/null")
        .output()
        .ok()?;
    let cfg = String::from_utf8_lossy(&out.stdout).into_owned();
    cfg.lines().find_map(|l| {
        if l == format!("# {opt} is not set") {
            Some(false)
        } else {
            l.strip_prefix(&format!("{opt}="))
                .map(|v| v == "y" || v == "m")
        }
    })
}

#[test]
fn answers_match_the_kernel() {
    let Some(d) = doctor() else { return };
    let names = [
        "tracefs",
        "kprobe_events",
        "uprobe_events",
        "eprobes",
        "function_tracer",
        "function_graph",
        "hist_triggers",
        "btf",
        "perf_events",
        "hardware_counters",
        "perf_event_paranoid",
        "privileges",
        "lockdown",
        "bpf",
    ];
    for n in names {
        assert!(d.contains_key(n), "doctor has no {n} line: {d:?}");
    }
    let yes = |n: &str| d[n].0 == "yes";
    assert!(yes("tracefs"), "{:?}", d["tracefs"]);
    let root = Path::new(TRACEFS);
    assert_eq!(
        yes("kprobe_events"),
        root.join("kprobe_events").exists(),
        "{:?}",
        d["kprobe_events"]
    );
    assert_eq!(
        yes("uprobe_events"),
        root.join("uprobe_events").exists(),
        "{:?}",
        d["uprobe_events"]
    );
    let tracers = std::fs::read_to_string(root.join("available_tracers")).unwrap_or_default();
    let has = |t: &str| tracers.split_whitespace().any(|x| x == t);
    assert_eq!(
        yes("function_graph"),
        has("function_graph"),
        "{:?}",
        d["function_graph"]
    );
    assert_eq!(
        yes("function_tracer"),
        has("function"),
        "{:?}",
        d["function_tracer"]
    );
    assert_eq!(yes("btf"), Path::new("/sys/kernel/btf/vmlinux").exists());
    assert!(yes("perf_events"), "{:?}", d["perf_events"]);
    assert!(yes("privileges"), "{:?}", d["privileges"]);
    // A "no" names the kernel option to change, when the config says which.
    for (facility, opt) in [
        ("kprobe_events", "CONFIG_KPROBES"),
        ("function_graph", "CONFIG_FUNCTION_GRAPH_TRACER"),
        ("hist_triggers", "CONFIG_HIST_TRIGGERS"),
    ] {
        if !yes(facility) && kernel_option(opt) == Some(false) {
            assert!(d[facility].1.contains(opt), "{facility}: {:?}", d[facility]);
        }
    }
    if let Some(hist) = kernel_option("CONFIG_HIST_TRIGGERS") {
        assert_eq!(yes("hist_triggers"), hist, "{:?}", d["hist_triggers"]);
    }
    let paranoid =
        std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid").unwrap_or_default();
    assert_eq!(d["perf_event_paranoid"].0, paranoid.trim());
}

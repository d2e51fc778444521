//! `rprobe sdt` against `readelf -n` on real binaries with USDT notes (libstdc++, Python,
//! and a fixture built with `sys/sdt.h`), and the uprobes it derives checked live: argument
//! values of every operand kind (register, `$imm`, `sym(%rip)`) and a semaphore that reads
//! non-zero only while the probe is enabled.

mod common;

use common::{parse_trace, EventGuard, Instance};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One probe as `readelf -n` prints it.
#[derive(Debug, PartialEq, Eq)]
struct Note {
    provider: String,
    name: String,
    location: u64,
    semaphore: u64,
    args: String,
}

fn hex(text: &str) -> u64 {
    u64::from_str_radix(text.trim().trim_start_matches("0x"), 16)
        .unwrap_or_else(|e| panic!("not hex: {text:?}: {e}"))
}

//     Provider: libstdcxx
//     Name: catch
//     Location: 0x00000000000a7f05, Base: 0x00000000001c5973, Semaphore: 0x0000000000000000
//     Arguments: 8@%rdx 8@-80(%rbx)
fn readelf_notes(path: &Path) -> Vec<Note> {
    let out = Command::new("readelf")
        .arg("-n")
        .arg(path)
        .output()
        .expect("run readelf (Debian: binutils)");
    assert!(out.status.success(), "readelf -n {}", path.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut notes = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(provider) = line.strip_prefix("Provider: ") else {
            continue;
        };
        let name = lines
            .next()
            .and_then(|l| l.strip_prefix("Name: "))
            .expect("Name:");
        let loc = lines.next().expect("Location:");
        let args = lines
            .next()
            .and_then(|l| l.strip_prefix("Arguments:"))
            .unwrap_or("");
        let field = |key: &str| {
            let at = loc.find(key).unwrap_or_else(|| panic!("{key} in {loc:?}")) + key.len();
            hex(loc[at..].split(',').next().unwrap_or_default())
        };
        notes.push(Note {
            provider: provider.to_string(),
            name: name.to_string(),
            location: field("Location: "),
            semaphore: field("Semaphore: "),
            args: args.trim().to_string(),
        });
    }
    notes
}

//   libstdcxx:catch  location 0xa7f05  semaphore -  args 8@%rdx 8@-80(%rbx)
fn rprobe_notes(path: &Path) -> Vec<Note> {
    let out = common::rprobe(&["sdt", "-x", path.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}", common::show_output(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| l.strip_prefix("  "))
        .map(|l| {
            let (probe, rest) = l.split_once("  location ").expect("location");
            let (provider, name) = probe.split_once(':').expect("provider:name");
            let (loc, rest) = rest.split_once("  semaphore ").expect("semaphore");
            let (sem, args) = rest.split_once("  args ").expect("args");
            Note {
                provider: provider.to_string(),
                name: name.to_string(),
                location: hex(loc),
                semaphore: if sem == "-" { 0 } else { hex(sem) },
                args: if args == "-" {
                    String::new()
                } else {
                    args.to_string()
                },
            }
        })
        .collect()
}

/// `fixtures/src/usdt_probe.c` built with `-O2 -g` (its notes need `sys/sdt.h`, Debian's
/// `systemtap-sdt-dev`), once per test process: a build while another test runs the file
/// would make that exec fail with ETXTBSY.
fn usdt_fixture() -> PathBuf {
    static FIXTURE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("usdt-{}", std::process::id()));
    FIXTURE
        .get_or_init(|| {
            common::build_c_fixture(
                "usdt_probe.c",
                &["-O2", "-g", "-Wall", "-Wextra", "-Werror"],
                &dir.join("usdt_probe"),
            )
        })
        .clone()
}

#[test]
fn lists_what_readelf_lists() {
    let fixture = usdt_fixture();
    let mut files = vec![fixture];
    for lib in [
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/usr/bin/python3.11",
    ] {
        if Path::new(lib).exists() {
            files.push(std::fs::canonicalize(lib).expect("canonical path"));
        } else {
            eprintln!("note: {lib} is not installed here; compared the others");
        }
    }
    for f in &files {
        let want = readelf_notes(f);
        assert!(!want.is_empty(), "{} has no notes per readelf", f.display());
        assert_eq!(rprobe_notes(f), want, "{}", f.display());
    }
}

#[test]
fn no_notes_is_an_error_that_says_so() {
    let out = common::rprobe(&["sdt", "-x", "/usr/bin/true"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no USDT probes"), "{err}");
}

/// `uprobe PATH:0xOFF(0xSEM) arg1=... arg2=...` lines of `rprobe sdt -v`, by probe name.
fn verbose_uprobes(path: &Path) -> Vec<(String, String)> {
    let out = common::rprobe(&["sdt", "-v", "-x", path.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", common::show_output(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut v = Vec::new();
    let mut current = None;
    for l in text.lines() {
        if let Some(uprobe) = l.strip_prefix("    uprobe ") {
            v.push((
                current.take().expect("probe line first"),
                uprobe.to_string(),
            ));
        } else if let Some(probe) = l.strip_prefix("  ") {
            let name = probe.split_whitespace().next().expect("name");
            current = Some(name.split_once(':').expect("p:n").1.to_string());
        }
    }
    v
}

fn run_fixture(bin: &Path, n: u32) -> String {
    let out = Command::new(bin)
        .arg(n.to_string())
        .output()
        .expect("run fixture");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn derived_uprobes_read_the_right_values_and_count_the_semaphore() {
    if !common::live_or_skip(
        "usdt::derived_uprobes_read_the_right_values_and_count_the_semaphore",
        common::Needs::Tracefs,
    ) {
        return;
    }
    let _lock = common::tracefs_lock();
    let fixture = usdt_fixture();
    let group = common::group("usdt");
    let mut guard = EventGuard::new();
    guard.own_group(&group);
    // The program sees its semaphore only while a probe on it is enabled.
    assert_eq!(run_fixture(&fixture, 3), "semaphore seen 0 of 3");

    let probes = verbose_uprobes(&fixture);
    let mut names: Vec<&str> = probes.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["site", "site", "tick", "work"]);
    for (name, uprobe) in probes.iter().filter(|(n, _)| n != "site") {
        // `label` (a char *) is read as a string; the rest as converted.
        let line = format!(
            "p:{group}/{name} {}",
            uprobe.replace("arg3=%dx:u64", "arg3=+0(%dx):string")
        );
        common::write_uprobe_events(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    let mut inst = Instance::create("usdt");
    inst.enable(&group, "work");
    inst.enable(&group, "tick");
    let seen = run_fixture(&fixture, 5);
    let trace = inst.trace();
    inst.disable_all();
    assert_eq!(seen, "semaphore seen 5 of 5", "{trace}");

    let records = parse_trace(&trace);
    let work: Vec<_> = records.iter().filter(|r| r.event == "work").collect();
    let tick: Vec<_> = records.iter().filter(|r| r.event == "tick").collect();
    assert_eq!((work.len(), tick.len()), (5, 5), "{trace}");
    let labels = ["zero", "one", "two", "three", "four"];
    let mut total = 7i128;
    for i in 0..5 {
        assert_eq!(work[i].int("arg1"), Some(i as i128), "{trace}");
        assert_eq!(work[i].int("arg2"), Some(3 * i as i128), "{trace}");
        assert_eq!(
            work[i].arg("arg3"),
            Some(format!("\"{}\"", labels[i])),
            "{trace}"
        );
        total += 3 * i as i128;
        // tick fires after step() added i * 3 to the global it reads through sym(%rip).
        assert_eq!(tick[i].int("arg1"), Some(42), "{trace}");
        assert_eq!(tick[i].int("arg2"), Some(total), "{trace}");
    }
    drop(inst);
    guard.delete_all();
    assert_eq!(run_fixture(&fixture, 2), "semaphore seen 0 of 2");
}

#[test]
fn usdt_specs_without_a_match_say_what_exists() {
    let fixture = usdt_fixture();
    let fix = fixture.to_str().expect("utf-8");
    let err = |args: &[&str]| {
        let out = common::rprobe(args);
        assert!(!out.status.success(), "{}", common::show_output(&out));
        let e = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(e.lines().count(), 1, "{e}");
        e
    };
    let e = err(&["add", "-n", "-x", "/usr/bin/true", "sdt_x:y"]);
    assert!(
        e.contains("has no USDT probes (no .note.stapsdt section)"),
        "{e}"
    );
    let e = err(&["add", "-n", "-x", fix, "sdt_rprobe_fix:works"]);
    assert!(
        e.contains("has no USDT probe sdt_rprobe_fix:works; it has "),
        "{e}"
    );
    // Each name once, though `site` has two notes.
    let listed = e.split_once("it has ").map_or("", |(_, l)| l);
    let mut listed: Vec<&str> = listed
        .split(": ")
        .next()
        .unwrap_or("")
        .split(", ")
        .collect();
    listed.sort_unstable();
    assert_eq!(
        listed,
        [
            "sdt_rprobe_fix:site",
            "sdt_rprobe_fix:tick",
            "sdt_rprobe_fix:work"
        ],
        "{e}"
    );
    assert!(e.contains("did you mean work?"), "{e}");
    let e = err(&["add", "-n", "-x", fix, "sdt_rprobe:work"]);
    assert!(
        e.contains("no USDT provider 'rprobe'; its providers: rprobe_fix"),
        "{e}"
    );
    let e = err(&["add", "-n", "sdt_rprobe_fix:work"]);
    assert!(e.contains("a USDT probe lives in a user binary"), "{e}");
    let e = err(&["add", "-n", "-x", fix, "sdt_rprobe_fix:work arg4:string"]);
    assert!(e.contains("its arguments are arg1..arg3"), "{e}");
    // What works: the note's arguments, retyped, at the note's site with its semaphore.
    let out = common::rprobe(&["add", "-n", "-x", fix, "sdt_rprobe_fix:work arg3:string"]);
    assert!(out.status.success(), "{}", common::show_output(&out));
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(line.starts_with("p:sdt_rprobe_fix/work "), "{line}");
    assert!(
        line.trim_end()
            .ends_with(") arg1=%di:s32 arg2=%si:s64 arg3=+0(%dx):string"),
        "{line}"
    );
}

#[test]
fn add_by_pid_finds_the_file_that_holds_the_probe() {
    let python = "/usr/bin/python3.11";
    if !Path::new(python).exists() {
        eprintln!("note: {python} is not installed here; nothing to look up");
        return;
    }
    let mut child = Command::new(python)
        .args(["-I", "-S", "-c", "import time; time.sleep(20)"])
        .spawn()
        .expect("start python");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let pid = child.id().to_string();
    let found = common::rprobe(&["add", "-n", "-p", &pid, "sdt_python:function__entry"]);
    let missing = common::rprobe(&["add", "-n", "-p", &pid, "sdt_nope:x"]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(found.status.success(), "{}", common::show_output(&found));
    let line = String::from_utf8_lossy(&found.stdout).into_owned();
    assert!(
        line.starts_with("p:sdt_python/function__entry /usr/bin/python3.11:0x"),
        "{line}"
    );
    assert!(!missing.status.success());
    let e = String::from_utf8_lossy(&missing.stderr);
    assert!(
        e.contains(&format!(
            "process {pid} maps no file with the USDT probe sdt_nope:x"
        )),
        "{e}"
    );
}

//! `rprobe sdt` against `readelf -n` on real binaries with USDT notes (libstdc++, Python,
//! and a fixture built with `sys/sdt.h`), the uprobes it derives checked live (argument
//! values of every operand kind and a semaphore that reads non-zero only while the probe is
//! enabled), and USDT specs (issue #9): dry-run lines against `perf probe -D`; `rprobe trace
//! -x python3.11 'sdt_python:function__entry arg1:string arg2:string'` shows a script's
//! calls in order (and the same probe without its semaphore never fires); a probe on
//! libstdc++'s `throw` note counts exactly the exceptions a C++ fixture throws (`trace`, and
//! `stat` in both engines); the fixture's
//! probes read the right values, one name at two sites is one event; `add` + `record -e`,
//! `record -x -e SPEC` and `trace -p PID`.

mod common;

use common::{parse_trace, EventGuard, Instance, TraceRecord};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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

// ---------------------------------------------------------------------------------------------
// USDT specs, live
// ---------------------------------------------------------------------------------------------

const PYTHON: &str = "/usr/bin/python3.11";
const LIBSTDCXX: &str = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6";

fn live(test: &str) -> bool {
    common::live_or_skip(test, common::Needs::Tracefs)
}

/// The tracefs lock when the test can run live ([`live`]), else `None` (skipped).
fn live_locked(test: &str) -> Option<std::sync::MutexGuard<'static, ()>> {
    live(test).then(common::tracefs_lock)
}

/// [`live_locked`], and Debian's python3.11 is installed.
fn live_with_python(test: &str) -> Option<std::sync::MutexGuard<'static, ()>> {
    if !Path::new(PYTHON).exists() {
        live(test).then(|| {
            common::skip(
                test,
                "no /usr/bin/python3.11 (Debian: apt-get install python3.11)",
            )
        });
        return None;
    }
    live_locked(test)
}

fn work_dir(tag: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("live-usdt-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

/// `rprobe ARGS`, killed after 60 s (a hung trace must not hang the suite).
fn rprobe_timed(args: &[&str]) -> Output {
    let out = Command::new("timeout")
        .arg("60")
        .arg(common::rprobe_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run rprobe");
    assert!(
        out.status.success(),
        "{}\n{}",
        common::show_cmd("rprobe", args),
        common::show_output(&out)
    );
    out
}

/// The events of `rprobe trace`/`rprobe script` text named `event` (any group), e.g. from
/// `      python3.11  9406 [001] 12432.347978: rprobe_9405:function__entry: (4f20a1) arg1="x"`.
fn script_events(text: &str, event: &str) -> Vec<TraceRecord> {
    text.lines()
        .filter_map(|line| {
            let (task, rest) = line.trim_start().split_once(" [")?;
            let pid = task.split_whitespace().last()?.parse().ok()?;
            let (_, rest) = rest.split_once("] ")?;
            let (_, rest) = rest.split_once(": ")?;
            let (name, rest) = rest.split_once(": (")?;
            let (_, args) = rest.split_once(") ").unwrap_or((rest, ""));
            Some(TraceRecord {
                pid,
                event: name.rsplit(':').next()?.to_string(),
                args: args.trim().to_string(),
            })
        })
        .filter(|r| r.event == event)
        .collect()
}

/// A script whose calls are known. CPython 3.11 runs `function__entry` only on its tracing
/// path (a profile or trace function is set) and on `generator.throw()`: calls from Python to
/// Python are inlined in one eval loop and skip it otherwise (CPython gh-98894). So the
/// script sets a no-op profiler first, as a profiler that uses these probes would.
const SCRIPT: &str = "\
import sys

sys.setprofile(lambda frame, event, arg: None)


def alpha(n):
    for i in range(n):
        beta(i)


def beta(i):
    return gamma(i) * 2


def gamma(i):
    return i


alpha(2)
gamma(7)
";

/// (funcname, lineno) of the script's functions, in call order.
const CALLS: [(&str, i128); 6] = [
    ("alpha", 6),
    ("beta", 11),
    ("gamma", 15),
    ("beta", 11),
    ("gamma", 15),
    ("gamma", 15),
];

fn write_script(dir: &Path) -> String {
    let path = dir.join("calls.py");
    std::fs::write(&path, SCRIPT).expect("write script");
    path.to_string_lossy().into_owned()
}

#[test]
fn python_function_entry_shows_the_scripts_calls_in_order() {
    let Some(_lock) =
        live_with_python("usdt::python_function_entry_shows_the_scripts_calls_in_order")
    else {
        return;
    };
    let script = write_script(&work_dir("py"));
    let spec = "sdt_python:function__entry arg1:string arg2:string";
    let out = rprobe_timed(&[
        "trace", "-x", PYTHON, spec, "--", PYTHON, "-I", "-S", &script,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let calls: Vec<(String, i128)> = script_events(&text, "function__entry")
        .iter()
        .filter(|r| r.arg("arg1") == Some(format!("\"{script}\"")))
        .map(|r| {
            let name = r.arg("arg2").unwrap_or_default();
            (
                name.trim_matches('"').to_string(),
                r.int("arg3").unwrap_or(-1),
            )
        })
        .collect();
    let want: Vec<(String, i128)> = CALLS.iter().map(|(n, l)| (n.to_string(), *l)).collect();
    assert_eq!(calls, want, "{text}");
}

#[test]
fn python_probe_without_its_semaphore_never_fires() {
    let Some(_lock) = live_with_python("usdt::python_probe_without_its_semaphore_never_fires")
    else {
        return;
    };
    let script = write_script(&work_dir("nosem"));
    let group = common::group("pynosem");
    let mut guard = EventGuard::new();
    guard.own_group(&group);
    // rprobe's own line for the probe, with the group changed and `(REF_CTR_OFFSET)` dropped.
    let spec = format!("{group}:entry=sdt_python:function__entry arg1:string arg2:string");
    let out = rprobe_timed(&["add", "-n", "-x", PYTHON, &spec]);
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (head, args) = line.split_once(" arg1=").expect("args");
    let place = head.split_once('(').map_or(head, |(p, _)| p);
    assert_ne!(place, head, "the probe has a semaphore: {line}");
    let bare = format!("{place} arg1={args}");
    common::write_uprobe_events(&bare).unwrap_or_else(|e| panic!("{bare}: {e}"));
    let mut inst = Instance::create("pynosem");
    inst.enable(&group, "entry");
    let run = Command::new(PYTHON)
        .args(["-I", "-S", &script])
        .output()
        .expect("run python");
    assert!(run.status.success());
    let trace = inst.trace();
    inst.disable_all();
    let hits = common::parse_trace(&trace);
    assert!(hits.is_empty(), "fired without its semaphore:\n{trace}");
}

/// `fixtures/src/usdt_throw.cc` built with `-O2 -g`, once per test process.
fn throw_fixture() -> PathBuf {
    static FIXTURE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            common::build_cxx_fixture(
                "usdt_throw.cc",
                &["-O2", "-g", "-Wall", "-Wextra", "-Werror"],
                &work_dir("throw").join("usdt_throw"),
            )
        })
        .clone()
}

#[test]
fn stat_counts_the_fixtures_exceptions_by_type() {
    let Some(_lock) = live_locked("usdt::stat_counts_the_fixtures_exceptions_by_type") else {
        return;
    };
    let fixture = throw_fixture();
    let fix = fixture.to_str().expect("utf-8");
    // User-space counting, then in the kernel where BPF is allowed.
    for engine in [None, Some("--bpf=auto")] {
        let mut args = vec![
            "stat",
            "-x",
            LIBSTDCXX,
            "sdt_libstdcxx:throw tname=+0(+8(%si)):string",
            "--count",
            "tname",
        ];
        args.extend(engine);
        args.extend(["--", fix, "9"]);
        let out = rprobe_timed(&args);
        let text = String::from_utf8_lossy(&out.stdout);
        //    COUNT  tname
        //        5  St13runtime_error
        let count = |name: &str| {
            text.lines()
                .find(|l| l.split_whitespace().nth(1) == Some(name))
                .and_then(|l| l.split_whitespace().next()?.parse::<u32>().ok())
        };
        assert_eq!(count("St13runtime_error"), Some(5), "{engine:?}: {text}");
        assert_eq!(count("4Oops"), Some(4), "{engine:?}: {text}");
        assert!(text.contains("total 9 in 2 keys"), "{engine:?}: {text}");
    }
}

#[test]
fn libstdcxx_throw_counts_exactly_the_fixtures_exceptions() {
    let Some(_lock) = live_locked("usdt::libstdcxx_throw_counts_exactly_the_fixtures_exceptions")
    else {
        return;
    };
    let fixture = throw_fixture();
    let fix = fixture.to_str().expect("utf-8");
    // The note's arg2 (%rsi) is the std::type_info; its name pointer is at +8.
    let spec = "%sdt_libstdcxx:throw tname=+0(+8(%si)):string";
    let out = rprobe_timed(&["trace", "-x", LIBSTDCXX, spec, "--", fix, "7"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("caught 7"), "{text}");
    let names: Vec<String> = script_events(&text, "throw")
        .iter()
        .map(|r| r.arg("tname").unwrap_or_default())
        .collect();
    let want: Vec<&str> = (0..7)
        .map(|i| {
            if i % 2 == 1 {
                "\"4Oops\""
            } else {
                "\"St13runtime_error\""
            }
        })
        .collect();
    assert_eq!(names, want, "{text}");
}

#[test]
fn fixture_probes_read_their_values_and_count_the_semaphore_only_while_traced() {
    let Some(_lock) = live_locked(
        "usdt::fixture_probes_read_their_values_and_count_the_semaphore_only_while_traced",
    ) else {
        return;
    };
    let fixture = usdt_fixture();
    let fix = fixture.to_str().expect("utf-8");
    assert_eq!(run_fixture(&fixture, 3), "semaphore seen 0 of 3");
    let out = rprobe_timed(&[
        "trace",
        "-x",
        fix,
        "sdt_rprobe_fix:work arg3:string",
        "sdt_rprobe_fix:tick",
        "sdt_rprobe_fix:site",
        "--",
        fix,
        "5",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    // The fixture counts the iterations in which its semaphore was non-zero.
    assert!(text.contains("semaphore seen 5 of 5"), "{text}");
    let work = script_events(&text, "work");
    let tick = script_events(&text, "tick");
    let site = script_events(&text, "site");
    assert_eq!((work.len(), tick.len(), site.len()), (5, 5, 5), "{text}");
    let labels = ["zero", "one", "two", "three", "four"];
    let mut total = 7i128;
    for i in 0..5 {
        assert_eq!(work[i].int("arg1"), Some(i as i128), "{text}");
        assert_eq!(work[i].int("arg2"), Some(3 * i as i128), "{text}");
        assert_eq!(work[i].arg("arg3"), Some(format!("\"{}\"", labels[i])));
        total += 3 * i as i128;
        assert_eq!(tick[i].int("arg1"), Some(42), "{text}");
        assert_eq!(tick[i].int("arg2"), Some(total), "{text}");
        // One event, two sites: 2 on even iterations, 1 on odd ones.
        assert_eq!(site[i].int("arg1"), Some(if i % 2 == 0 { 2 } else { 1 }));
    }
    // Gone with the trace: the semaphore is zero again.
    assert_eq!(run_fixture(&fixture, 2), "semaphore seen 0 of 2");
}

#[test]
fn added_usdt_event_records_and_replays() {
    let Some(_lock) = live_locked("usdt::added_usdt_event_records_and_replays") else {
        return;
    };
    let fixture = usdt_fixture();
    let fix = fixture.to_str().expect("utf-8");
    let group = common::group("usdtrec");
    let mut guard = EventGuard::new();
    guard.own_group(&group);
    let spec = format!("{group}:work=%sdt_rprobe_fix:work label=arg3:string");
    let added = rprobe_timed(&["add", "-x", fix, &spec]);
    assert!(
        String::from_utf8_lossy(&added.stdout).contains(&format!("{group}:work")),
        "{}",
        common::show_output(&added)
    );
    // Added but not enabled: the program still sees a zero semaphore.
    assert_eq!(run_fixture(&fixture, 2), "semaphore seen 0 of 2");
    let data = work_dir("rec").join("usdt.data");
    let data = data.to_str().expect("utf-8");
    let event = format!("{group}:work");
    let rec = rprobe_timed(&["record", "-q", "-e", &event, "-o", data, "--", fix, "3"]);
    assert!(
        String::from_utf8_lossy(&rec.stdout).contains("semaphore seen 3 of 3"),
        "{}",
        common::show_output(&rec)
    );
    let script = rprobe_timed(&["script", "-i", data]);
    let text = String::from_utf8_lossy(&script.stdout);
    let labels: Vec<String> = script_events(&text, "work")
        .iter()
        .map(|r| r.arg("label").unwrap_or_default())
        .collect();
    assert_eq!(labels, ["\"zero\"", "\"one\"", "\"two\""], "{text}");
    guard.delete_all();
}

/// `p:G/E PATH:0x00000000000f20a1(0x683260) ...` as perf writes it: `PATH:0xf20a1(0x683260)`.
fn perf_offsets(line: &str) -> String {
    let Some((head, rest)) = line.split_once(":0x") else {
        return line.to_string();
    };
    let digits = rest.len()
        - rest
            .trim_start_matches(|c: char| c.is_ascii_hexdigit())
            .len();
    let value = u64::from_str_radix(&rest[..digits], 16).expect("hex offset");
    format!("{head}:{value:#x}{}", &rest[digits..])
}

#[test]
fn dry_run_lines_match_perf_probe() {
    let test = "usdt::dry_run_lines_match_perf_probe";
    if !common::live_or_skip(test, common::Needs::TracefsAndPerf) {
        return;
    }
    let home = work_dir("perfhome");
    let fixture = usdt_fixture();
    let mut files = vec![fixture];
    for f in [PYTHON, LIBSTDCXX] {
        match Path::new(f).exists() {
            true => files.push(PathBuf::from(f)),
            false => eprintln!("note: {f} is not installed here; compared the others"),
        }
    }
    let mut compared = 0;
    for file in &files {
        let path = file.to_str().expect("utf-8");
        let listing = rprobe_timed(&["sdt", "-x", path]);
        let mut names: Vec<String> = String::from_utf8_lossy(&listing.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("  "))
            .filter_map(|l| l.split_whitespace().next())
            .map(|n| format!("sdt_{n}"))
            .collect();
        names.dedup();
        names.sort();
        names.dedup();
        for name in names {
            let perf = common::perf(&home)
                .args(["probe", "-x", path, "-D", &name])
                .output()
                .expect("run perf probe");
            assert!(perf.status.success(), "{}", common::show_output(&perf));
            let ours = rprobe_timed(&["add", "-n", "-x", path, &name]);
            let perf_text = String::from_utf8_lossy(&perf.stdout);
            let ours_text = String::from_utf8_lossy(&ours.stdout);
            let perf_lines: Vec<&str> = perf_text.lines().collect();
            let ours_lines: Vec<String> = ours_text.lines().map(perf_offsets).collect();
            assert_eq!(
                perf_lines.len(),
                ours_lines.len(),
                "{name}:\n{perf_text}\n{ours_text}"
            );
            for (p, o) in perf_lines.iter().zip(&ours_lines) {
                // perf drops every argument when one is not %reg or N(%reg) ($imm, sym(%rip));
                // rprobe converts those, so only the place is compared then.
                if p.contains(" arg1=") {
                    assert_eq!(o, p, "{name}");
                } else {
                    assert_eq!(
                        o.split(' ').take(2).collect::<Vec<_>>().join(" "),
                        *p,
                        "{name}"
                    );
                }
                compared += 1;
            }
        }
    }
    assert!(compared >= 4, "compared {compared} lines");
}

#[test]
fn record_probes_usdt_specs_for_the_recording_only() {
    let Some(_lock) = live_locked("usdt::record_probes_usdt_specs_for_the_recording_only") else {
        return;
    };
    let fixture = usdt_fixture();
    let fix = fixture.to_str().expect("utf-8");
    let data = work_dir("rec2").join("usdt.data");
    let data = data.to_str().expect("utf-8");
    let rec = rprobe_timed(&[
        "record",
        "-q",
        "-x",
        fix,
        "-e",
        "sdt_rprobe_fix:work label=arg3:string",
        "-e",
        "%sdt_rprobe_fix:site",
        "-o",
        data,
        "--",
        fix,
        "4",
    ]);
    assert!(
        String::from_utf8_lossy(&rec.stdout).contains("semaphore seen 4 of 4"),
        "{}",
        common::show_output(&rec)
    );
    // The probes went with the recording.
    let left: Vec<String> = common::uprobe_events()
        .lines()
        .filter(|l| l.contains(fix))
        .map(str::to_string)
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let script = rprobe_timed(&["script", "-i", data]);
    let text = String::from_utf8_lossy(&script.stdout);
    let labels: Vec<String> = script_events(&text, "work")
        .iter()
        .map(|r| r.arg("label").unwrap_or_default())
        .collect();
    assert_eq!(
        labels,
        ["\"zero\"", "\"one\"", "\"two\"", "\"three\""],
        "{text}"
    );
    let sites: Vec<i128> = script_events(&text, "site")
        .iter()
        .filter_map(|r| r.int("arg1"))
        .collect();
    assert_eq!(sites, [2, 1, 2, 1], "{text}");
}

#[test]
fn trace_by_pid_finds_the_probes_in_the_processs_files() {
    let Some(_lock) = live_with_python("usdt::trace_by_pid_finds_the_probes_in_the_processs_files")
    else {
        return;
    };
    // Calls `tock` every 20 ms for 4 s under a no-op profiler (see SCRIPT).
    let script = "import sys, time\n\
                  sys.setprofile(lambda f, e, a: None)\n\
                  def tock():\n    time.sleep(0.02)\n\
                  end = time.time() + 4\n\
                  while time.time() < end:\n    tock()\n";
    let mut py = Command::new(PYTHON)
        .args(["-I", "-S", "-c", script])
        .spawn()
        .expect("start python");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = py.id().to_string();
    let out = Command::new("timeout")
        .arg("60")
        .arg(common::rprobe_bin())
        .args([
            "trace",
            "-p",
            &pid,
            "--duration",
            "1",
            "sdt_python:function__entry arg2:string",
        ])
        .output()
        .expect("run rprobe trace");
    let _ = py.kill();
    let _ = py.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", common::show_output(&out));
    let tocks = script_events(&text, "function__entry")
        .iter()
        .filter(|r| r.arg("arg2").as_deref() == Some("\"tock\""))
        .count();
    // About 50 in a second; every event is from the process traced.
    assert!(tocks >= 10, "{tocks} tock calls:\n{text}");
    assert!(
        script_events(&text, "function__entry")
            .iter()
            .all(|r| r.pid.to_string() == pid),
        "{text}"
    );
}

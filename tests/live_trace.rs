//! `rprobe trace` on this kernel: it streams the right argument values while a fixture runs,
//! leaves no probe behind after the command ends, SIGINT, SIGTERM, or SIGKILL followed by the
//! next start, never touches another tool's probe, and two sessions on one function both see
//! every event.

mod common;

use common::{fixtures, group, uprobe_events, write_uprobe_events, EventGuard};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SPEC: &str = "work id=%di:s32 len=%si:s64 name=+0(%dx):string";

fn live(test: &str) -> bool {
    common::live_or_skip(test, common::Needs::Tracefs)
}

fn fixture() -> String {
    fixtures().o0.to_string_lossy().into_owned()
}

/// `work` events of the trace text for the fixture's pid-independent values, in order.
fn work_values(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.contains(":work: ("))
        .map(|l| l.split_once(") ").map_or("", |(_, a)| a).to_string())
        .collect()
}

const ROUND: [&str; 3] = [
    "id=1 len=100 name=\"alpha\"",
    "id=2 len=200 name=\"beta\"",
    "id=3 len=-300 name=\"gamma\"",
];

/// The session groups (`rprobe_<pid>`) of `pid` in uprobe_events.
fn session_lines(pid: u32) -> Vec<String> {
    let g = format!("rprobe_{pid}/");
    uprobe_events()
        .lines()
        .filter(|l| l.contains(&g))
        .map(str::to_string)
        .collect()
}

/// Starts `rprobe trace -x FIXTURE SPEC` system-wide and waits for its header (its probes
/// are in place and enabled then). The caller reaps the child (`finish`).
#[allow(clippy::zombie_processes)]
fn start_trace() -> (Child, BufReader<std::process::ChildStderr>) {
    let mut child = Command::new(common::rprobe_bin())
        .args(["trace", "-x", &fixture(), SPEC])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rprobe trace");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        line.clear();
        if err.read_line(&mut line).unwrap_or(0) == 0 || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rprobe trace ended before its header: {line}");
        }
        if line.starts_with("Tracing ") {
            return (child, err);
        }
    }
}

fn run_fixture(rounds: u32) {
    let out = Command::new(fixture())
        .arg(rounds.to_string())
        .output()
        .expect("run fixture");
    assert!(out.status.success());
}

fn finish(child: Child, mut err: BufReader<std::process::ChildStderr>) -> (Output, String) {
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut err, &mut rest);
    let out = child.wait_with_output().expect("wait");
    (out, rest)
}

#[test]
fn streams_values_of_a_command_and_cleans_up() {
    if !live("live_trace::streams_values_of_a_command_and_cleans_up") {
        return;
    }
    let _lock = common::tracefs_lock();
    let before = uprobe_events();
    let bin = fixture();
    let out = Command::new(common::rprobe_bin())
        .args(["trace", "-x", &bin, SPEC, "--", &bin, "2"])
        .output()
        .expect("rprobe trace");
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", common::show_output(&out));
    let want: Vec<String> = ROUND.iter().chain(&ROUND).map(|s| s.to_string()).collect();
    assert_eq!(work_values(&text), want, "{text}");
    assert!(err.starts_with("Tracing rprobe_"), "{err}");
    assert!(err.contains("6 events, lost 0"), "{err}");
    assert_eq!(uprobe_events(), before, "the session's probes are gone");
}

#[test]
fn signals_remove_the_probes_and_leave_other_tools_alone() {
    if !live("live_trace::signals_remove_the_probes_and_leave_other_tools_alone") {
        return;
    }
    let _lock = common::tracefs_lock();
    // Another tool's probe on the same function, made before and checked after.
    let other = group("othertool");
    let mut guard = EventGuard::new();
    guard.own_group(&other);
    let table =
        rprobe::elf::parse_functions(&std::fs::read(fixture()).expect("read")).expect("elf");
    let off = table
        .find_by_name("work")
        .next()
        .and_then(|f| f.file_offset)
        .expect("work");
    let theirs = format!("p:{other}/work {}:{off:#x}", fixture());
    write_uprobe_events(&theirs).expect("another tool's probe");

    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let (child, err) = start_trace();
        let pid = child.id();
        assert_eq!(session_lines(pid).len(), 1, "the session's probe exists");
        run_fixture(1);
        // The events of a run are printed within a drain interval (200 ms).
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(send_signal(pid, sig), 0);
        let (out, rest) = finish(child, err);
        assert!(out.status.success(), "signal {sig}: {rest}");
        assert_eq!(
            work_values(&String::from_utf8_lossy(&out.stdout)),
            ROUND,
            "signal {sig}"
        );
        assert!(
            session_lines(pid).is_empty(),
            "signal {sig} left {:?}",
            session_lines(pid)
        );
        assert!(
            uprobe_events().contains(&format!("p:{other}/work ")),
            "signal {sig}"
        );
    }

    // SIGKILL leaves the probes; the next start removes them (and only them).
    let (mut child, _err) = start_trace();
    let dead = child.id();
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert_eq!(session_lines(dead).len(), 1, "SIGKILL leaves the probe");
    let out = Command::new(common::rprobe_bin())
        .args(["trace", "-x", &fixture(), SPEC, "--", "true"])
        .output()
        .expect("rprobe trace");
    assert!(out.status.success(), "{}", common::show_output(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("rprobe_{dead}")),
        "the sweep says what it removed: {}",
        common::show_output(&out)
    );
    assert!(session_lines(dead).is_empty());
    assert!(uprobe_events().contains(&format!("p:{other}/work ")));
    guard.delete_all();
}

#[test]
fn two_sessions_on_one_function_both_see_every_event() {
    if !live("live_trace::two_sessions_on_one_function_both_see_every_event") {
        return;
    }
    let _lock = common::tracefs_lock();
    let (a, ea) = start_trace();
    let (b, eb) = start_trace();
    run_fixture(5);
    std::thread::sleep(Duration::from_millis(600));
    for c in [&a, &b] {
        assert_eq!(send_signal(c.id(), libc::SIGTERM), 0);
    }
    for (c, e) in [(a, ea), (b, eb)] {
        let (out, rest) = finish(c, e);
        assert!(out.status.success(), "{rest}");
        let v = work_values(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(v.len(), 15, "{rest}");
        assert!(rest.contains("15 events, lost 0"), "{rest}");
    }
}

#[test]
fn bad_specs_are_refused_before_anything_is_created() {
    if !live("live_trace::bad_specs_are_refused_before_anything_is_created") {
        return;
    }
    let _lock = common::tracefs_lock();
    let before = uprobe_events();
    for (args, want) in [
        (vec!["-x", "/nonexistent/bin", "work"], "no such file"),
        (vec!["-x", "FIX", "nosuchfunction"], "nosuchfunction"),
        (vec!["-x", "FIX", "work %rdi"], "rdi"),
        (
            vec!["-x", "FIX", "work", "--", "/nonexistent/cmd"],
            "cannot",
        ),
    ] {
        let bin = fixture();
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "FIX" { bin.as_str() } else { a })
            .collect();
        let out = Command::new(common::rprobe_bin())
            .arg("trace")
            .args(&args)
            .output()
            .expect("rprobe trace");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(uprobe_events(), before, "{args:?} left probes behind");
    }
}

fn send_signal(pid: u32, sig: i32) -> i32 {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::try_from(sig).expect("signal"),
    )
    .map_or(-1, |()| 0)
}

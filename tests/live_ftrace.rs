//! Live tests of `rprobe ftrace` on this machine's kernel (root): the function tracer on
//! `vfs_write` for `dd`, and bad input; each leaves `current_tracer`, `set_ftrace_filter`,
//! `tracing_on` and `instances/` exactly as they were.
//!
//! Where the kernel refuses function tracing in an instance (the 6.18 development machine:
//! its ftrace filter files are EPERM and the function tracer EIO in instances), the test checks
//! that refusal independently, in an instance of its own, and then that rprobe reports it in
//! one line and leaves nothing behind. The kernel lab runs the same command where it works.

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

use rprobe::tracefs::graph::parse_function_line;

/// The global state `rprobe ftrace` must not change, each file as read (or the read error).
#[derive(Debug, PartialEq, Eq)]
struct Global {
    files: Vec<(&'static str, String)>,
    instances: Vec<String>,
}

impl Global {
    fn take() -> Global {
        let root = Path::new(common::TRACEFS);
        let files = [
            "current_tracer",
            "set_ftrace_filter",
            "tracing_on",
            "set_ftrace_pid",
        ]
        .into_iter()
        .map(|f| {
            let text = match std::fs::read_to_string(root.join(f)) {
                Ok(t) => t,
                Err(e) => format!("unreadable: {}", e.kind()),
            };
            (f, text)
        })
        .collect();
        let mut instances: Vec<String> = std::fs::read_dir(root.join("instances"))
            .expect("instances/")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        instances.sort();
        Global { files, instances }
    }
}

/// A test-owned instance, removed on drop.
struct TestInstance(PathBuf);

impl TestInstance {
    fn create(tag: &str) -> TestInstance {
        let path = Path::new(common::TRACEFS)
            .join("instances")
            .join(format!("{}_{tag}", common::instance_prefix()));
        std::fs::create_dir(&path).expect("mkdir test instance");
        TestInstance(path)
    }

    fn write(&self, file: &str, data: &str) -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).open(self.0.join(file))?;
        f.write_all(data.as_bytes())
    }
}

impl Drop for TestInstance {
    fn drop(&mut self) {
        let _ = self.write("tracing_on", "0");
        let _ = self.write("current_tracer", "nop");
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Whether this kernel lets an instance trace a filtered function: None if it does, else
/// what refused (checked with plain writes in a test instance, not with rprobe's code).
fn kernel_refusal() -> Option<String> {
    let inst = TestInstance::create("ftprobe");
    if let Err(e) = inst.write("set_ftrace_filter", "vfs_write") {
        return Some(format!("set_ftrace_filter: {e}"));
    }
    if let Err(e) = inst.write("current_tracer", "function") {
        return Some(format!("current_tracer: {e}"));
    }
    None
}

fn ftrace(args: &[&str]) -> Output {
    let mut all = vec!["ftrace"];
    all.extend_from_slice(args);
    common::rprobe(&all)
}

fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success(), "{}", common::show_output(out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("rprobe: removed"))
        .collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {err}");
    assert!(lines[0].starts_with("rprobe: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    lines[0].to_owned()
}

#[test]
fn function_tracer_on_dd_and_nothing_changed() {
    let test = "live_ftrace::function_tracer_on_dd_and_nothing_changed";
    if !common::live_or_skip(test, common::Needs::Tracefs) {
        return;
    }
    let _lock = common::tracefs_lock();
    let before = Global::take();
    let refusal = kernel_refusal();
    assert_eq!(Global::take(), before, "the probe instance is gone");
    let out = ftrace(&[
        "-T",
        "vfs_write",
        "--",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "count=10",
    ]);
    let after = Global::take();
    match refusal {
        None => {
            assert!(out.status.success(), "{}", common::show_output(&out));
            let err = String::from_utf8_lossy(&out.stderr);
            // rprobe: tracing vfs_write with ... in 'dd ...' (pid N) and its children; ...
            let pid: u32 = err
                .split("(pid ")
                .nth(1)
                .and_then(|r| r.split(')').next())
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("no pid in the header: {err}"));
            let stdout = String::from_utf8_lossy(&out.stdout);
            let calls: Vec<_> = stdout
                .lines()
                .filter_map(parse_function_line)
                .filter(|l| l.pid == pid)
                .collect();
            // Ten blocks to /dev/null, then dd's two summary lines (and more) on stderr.
            assert!(
                calls.len() >= 10,
                "dd's vfs_write calls: {calls:?}\n{stdout}"
            );
            // Matched by pid: the comm printed is saved_cmdlines' at read time ("<...>" when
            // not saved yet, "rprobe" on 6.1 when saved before the exec).
            assert!(calls.iter().all(|c| c.func == "vfs_write"), "{calls:?}");
            assert!(err.contains(" events, 0 lost"), "{err}");
        }
        Some(what) => {
            eprintln!("{test}: this kernel refuses function tracing in instances ({what})");
            let line = one_line_error(&out);
            let file = what.split(':').next().unwrap_or_default();
            assert!(line.contains(file), "rprobe names {file}: {line}");
        }
    }
    assert_eq!(
        after, before,
        "global ftrace state and instances/ as they were"
    );
}

#[test]
fn bad_input_is_one_line_and_leaves_nothing() {
    let test = "live_ftrace::bad_input_is_one_line_and_leaves_nothing";
    if !common::live_or_skip(test, common::Needs::Tracefs) {
        return;
    }
    let _lock = common::tracefs_lock();
    let before = Global::take();
    let dead_pid = (100_000u32..).find(|p| !Path::new(&format!("/proc/{p}")).exists());
    let dead_pid = dead_pid.expect("a free pid").to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["-T", "vfs_wirte", "--", "true"],
            "did you mean vfs_write",
        ),
        (vec!["-T", "no_such_function_rprobe_*"], "matches no "),
        (
            vec!["-N", "no_such_function_rprobe"],
            "is not a kernel function",
        ),
        (vec!["-p", &dead_pid], "no process with pid"),
        (
            vec!["--", "/no/such/rprobe-command"],
            "cannot run '/no/such/rprobe-command'",
        ),
        (vec!["--", "no-such-rprobe-command"], "not found in $PATH"),
        (
            vec!["-T", "vfs_write", "-G", "vfs_read"],
            "give one of them",
        ),
    ];
    for (args, want) in cases {
        let out = ftrace(&args);
        let line = one_line_error(&out);
        assert!(line.contains(want), "{args:?}: expected {want:?} in {line}");
        assert_eq!(Global::take(), before, "{args:?} left state behind");
    }
    // -G needs function_graph; this kernel's message depends on whether it has it.
    let tracers = std::fs::read_to_string(Path::new(common::TRACEFS).join("available_tracers"))
        .unwrap_or_default();
    if !tracers.split_whitespace().any(|t| t == "function_graph") {
        let out = ftrace(&["-G", "vfs_read", "--depth", "2", "--", "true"]);
        let line = one_line_error(&out);
        assert!(line.contains("CONFIG_FUNCTION_GRAPH_TRACER"), "{line}");
    }
    // A command that exists but cannot be executed: the error comes from execve, after the
    // instance was made; it must be gone too.
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("not-executable");
    std::fs::write(&script, "#!/bin/sh\n").expect("write");
    let out = ftrace(&["--", &script.to_string_lossy()]);
    let refused = kernel_refusal().is_some();
    let line = one_line_error(&out);
    if !refused {
        assert!(
            line.contains("cannot run") && line.contains("Permission denied"),
            "{line}"
        );
    }
    assert_eq!(Global::take(), before, "exec failure left state behind");
}

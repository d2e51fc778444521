//! Shared helpers for the integration tests: fixture binaries compiled from `fixtures/src/*.c`,
//! the root/tracefs/perf gate with its `SKIP` rule, a snapshot of `uprobe_events` and the tracefs
//! instance list, drop guards that remove probe events and instances, and runners for `rprobe`
//! and `perf probe`.
//!
//! Each test file includes this module and uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Where tracefs is mounted on every kernel the tests run on.
pub const TRACEFS: &str = "/sys/kernel/tracing";

/// glibc as the tests probe it; a symlink path (`/lib` -> `usr/lib`), as users type it.
pub const LIBC: &str = "/lib/x86_64-linux-gnu/libc.so.6";

/// bash through the `/bin` -> `usr/bin` symlink, as users type it.
pub const BASH: &str = "/bin/bash";

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// The fixture binaries, built once per test process by [`fixtures`].
///
/// Every executable is `probe_args` (from `fixtures/src/probe_args.c`) in its own directory, so
/// perf's default group is `probe_probe_args` for all of them. Next to each output a `.flags`
/// file records the compiler, its version and the exact command.
#[derive(Debug)]
pub struct Fixtures {
    /// `target/fixtures/run-<pid>`: everything below is inside it.
    pub dir: PathBuf,
    /// `-O0 -g0`, PIE (the Debian default): no debuginfo, symbols in `.symtab`.
    pub o0: PathBuf,
    /// `-O2 -g0`, PIE.
    pub o2: PathBuf,
    /// `-O0 -g0 -no-pie`: a fixed-address executable (vaddrs start at 0x400000).
    pub nopie: PathBuf,
    /// `-O0 -g` (DWARF), PIE.
    pub debug: PathBuf,
    /// `strip` of [`Fixtures::o0`]: no `.symtab`, and its functions are not in `.dynsym`.
    pub stripped: PathBuf,
    /// A symlink `args_link` -> `../O0/probe_args`.
    pub link: PathBuf,
    /// `libprobe.so` (`-shared -fPIC -O0 -g0`), exporting `lib_compute` and `lib_label`.
    pub lib: PathBuf,
    /// `strip` of [`Fixtures::lib`]: only `.dynsym` is left.
    pub lib_stripped: PathBuf,
    /// `probe_lib`, linked against [`Fixtures::lib`] with `-rpath $ORIGIN`.
    pub lib_main: PathBuf,
    /// A private `HOME` for perf, so its build-id cache (`~/.debug`) neither leaks in (a
    /// cached unstripped copy lets perf "see" symbols of a stripped file) nor fills up `/root`.
    pub perf_home: PathBuf,
}

/// The fixtures of this test process, compiled on first use. Panics with the reason when gcc or
/// strip is missing or a compile fails.
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(build_fixtures)
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `<target>/fixtures`: cargo gives integration tests `<target>/tmp`.
fn fixtures_root() -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(&tmp).join("fixtures")
}

fn build_fixtures() -> Fixtures {
    let gcc = tool_version("gcc").unwrap_or_else(|e| {
        panic!("cannot build fixtures/src/*.c: {e}. Install gcc (Debian: apt-get install gcc).")
    });
    let strip = tool_version("strip").unwrap_or_else(|e| {
        panic!("cannot strip fixtures: {e}. Install binutils (Debian: apt-get install binutils).")
    });
    let root = fixtures_root();
    remove_stale_runs(&root);
    let dir = root.join(format!("run-{}", std::process::id()));
    // A leftover of a dead process with our pid: start clean.
    let _ = fs::remove_dir_all(&dir);
    let src = manifest_dir().join("fixtures/src");
    let args_c = src.join("probe_args.c");
    let lib_c = src.join("libprobe.c");
    let lib_main_c = src.join("probe_lib.c");
    let warn = ["-Wall", "-Wextra", "-Werror"];

    let exe = |variant: &str, flags: &[&str]| {
        let out = dir.join(variant).join("probe_args");
        let mut args: Vec<&str> = flags.to_vec();
        args.extend(warn);
        gcc_build(&gcc, &args, &[&args_c], &[], &out);
        out
    };
    let o0 = exe("O0", &["-O0", "-g0"]);
    let o2 = exe("O2", &["-O2", "-g0"]);
    let nopie = exe("nopie", &["-O0", "-g0", "-no-pie"]);
    let debug = exe("debug", &["-O0", "-g"]);
    let stripped = dir.join("stripped/probe_args");
    strip_copy(&strip, &o0, &stripped);

    let link = dir.join("link/args_link");
    fs::create_dir_all(dir.join("link")).expect("create fixtures link dir");
    std::os::unix::fs::symlink("../O0/probe_args", &link)
        .unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));

    let lib = dir.join("lib/libprobe.so");
    let mut lib_flags = vec!["-O0", "-g0", "-shared", "-fPIC"];
    lib_flags.extend(warn);
    gcc_build(&gcc, &lib_flags, &[&lib_c], &[], &lib);
    let lib_main = dir.join("lib/probe_lib");
    let mut main_flags = vec!["-O0", "-g0"];
    main_flags.extend(warn);
    let lib_dir = format!("-L{}", dir.join("lib").display());
    gcc_build(
        &gcc,
        &main_flags,
        &[&lib_main_c],
        &[&lib_dir, "-lprobe", "-Wl,-rpath,$ORIGIN"],
        &lib_main,
    );
    let lib_stripped = dir.join("lib-stripped/libprobe.so");
    strip_copy(&strip, &lib, &lib_stripped);

    let perf_home = dir.join("perf-home");
    fs::create_dir_all(&perf_home).expect("create perf home");
    Fixtures {
        dir,
        o0,
        o2,
        nopie,
        debug,
        stripped,
        link,
        lib,
        lib_stripped,
        lib_main,
        perf_home,
    }
}

/// First line of `TOOL --version`.
fn tool_version(tool: &str) -> Result<String, String> {
    let out = Command::new(tool)
        .arg("--version")
        .output()
        .map_err(|e| format!("`{tool} --version` failed: {e}"))?;
    if !out.status.success() {
        return Err(format!("`{tool} --version` exited with {}", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or(tool).to_string())
}

/// Runs `gcc FLAGS -o OUT SOURCES LIBS` and writes `OUT.flags` with the compiler and command.
fn gcc_build(version: &str, flags: &[&str], sources: &[&Path], libs: &[&str], out: &Path) {
    let parent = out.parent().expect("fixture output has a parent");
    fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    let mut cmd = Command::new("gcc");
    cmd.args(flags).arg("-o").arg(out).args(sources).args(libs);
    record_and_run(version, cmd, out);
}

/// Builds `fixtures/src/SOURCE` with gcc and `flags` into `out` (writing `out.flags` with the
/// compiler and command), for tests whose fixture is not among [`Fixtures`].
pub fn build_c_fixture(source: &str, flags: &[&str], out: &Path) -> PathBuf {
    let gcc = tool_version("gcc").unwrap_or_else(|e| {
        panic!(
            "cannot build fixtures/src/{source}: {e}. Install gcc (Debian: apt-get install gcc)."
        )
    });
    let src = manifest_dir().join("fixtures/src").join(source);
    gcc_build(&gcc, flags, &[&src], &[], out);
    out.to_path_buf()
}

/// Builds the C++ source `fixtures/src/SOURCE` with gcc, `flags` and libstdc++ into `out`
/// (writing `out.flags`), as [`build_c_fixture`] does for C.
pub fn build_cxx_fixture(source: &str, flags: &[&str], out: &Path) -> PathBuf {
    let gcc = tool_version("g++").unwrap_or_else(|e| {
        panic!(
            "cannot build fixtures/src/{source}: {e}. Install g++ (Debian: apt-get install g++)."
        )
    });
    let src = manifest_dir().join("fixtures/src").join(source);
    gcc_build(&gcc, flags, &[&src], &["-lstdc++"], out);
    out.to_path_buf()
}

/// `fixtures/src/stat_calls.c` (known distributions for `rprobe stat`), built once per test
/// process: tests run in parallel, and a rebuild while another test runs it fails with
/// ETXTBSY, or, under a uprobe, moves the file off the probed inode.
pub fn stat_calls() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("stat-calls-{}", std::process::id()));
        build_c_fixture(
            "stat_calls.c",
            &["-O0", "-g", "-Wall", "-Wextra", "-Werror"],
            &dir.join("stat_calls"),
        )
    })
    .clone()
}

/// Copies `from` to `to` through `strip -o`, writing `to.flags`.
fn strip_copy(version: &str, from: &Path, to: &Path) {
    let parent = to.parent().expect("fixture output has a parent");
    fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    let mut cmd = Command::new("strip");
    cmd.arg("-o").arg(to).arg(from);
    record_and_run(version, cmd, to);
}

fn record_and_run(version: &str, mut cmd: Command, out: &Path) {
    let line = command_line(&cmd);
    let flags = format!("tool: {version}\ncommand: {line}\n");
    let flags_path = PathBuf::from(format!("{}.flags", out.display()));
    fs::write(&flags_path, flags).unwrap_or_else(|e| panic!("write {}: {e}", flags_path.display()));
    let res = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run `{line}`: {e}"));
    assert!(
        res.status.success(),
        "building fixture failed: `{line}` exited with {}\n{}",
        res.status,
        String::from_utf8_lossy(&res.stderr)
    );
}

fn command_line(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Removes `run-<pid>` directories of test processes that no longer exist.
fn remove_stale_runs(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("run-")) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The privilege gate
// ---------------------------------------------------------------------------------------------

/// What a live test needs besides root and tracefs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Root and a writable tracefs with `uprobe_events`.
    Tracefs,
    /// The above and `perf` (golden comparisons).
    TracefsAndPerf,
}

/// Returns true when the test can run. Otherwise prints `SKIP <test>: <reason>` and returns
/// false, or panics with the same text when `CI` is set (CI has root, so a skip there is a bug).
/// Mounts tracefs at [`TRACEFS`] when running as root and it is not mounted.
pub fn live_or_skip(test: &str, needs: Needs) -> bool {
    match check_live(needs) {
        Ok(()) => true,
        Err(reason) => {
            skip(test, &reason);
            false
        }
    }
}

/// Prints `SKIP <test>: <reason>`, or panics with it when `CI` is set.
pub fn skip(test: &str, reason: &str) {
    let msg = format!("SKIP {test}: {reason}");
    if std::env::var_os("CI").is_some() {
        panic!("{msg} (CI is set, so a skip is a failure)");
    }
    println!("{msg}");
    eprintln!("{msg}");
}

fn check_live(needs: Needs) -> Result<(), String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err("needs root (write access to tracefs uprobe_events)".into());
    }
    let events = Path::new(TRACEFS).join("uprobe_events");
    if !events.exists() {
        if !Path::new(TRACEFS).join("README").exists() {
            let _ = Command::new("mount")
                .args(["-t", "tracefs", "nodev", TRACEFS])
                .status();
        }
        if !events.exists() {
            return Err(format!(
                "no {} (kernel without CONFIG_UPROBE_EVENTS, or tracefs not mountable: \
                 mount -t tracefs nodev {TRACEFS})",
                events.display()
            ));
        }
    }
    if needs == Needs::TracefsAndPerf {
        tool_version("perf").map_err(|e| format!("needs perf: {e}"))?;
    }
    Ok(())
}

/// Serialises the tests of one process that change tracefs, so each one's before/after
/// snapshot sees only its own changes. A test-only lock; poisoning (a failed test) is ignored.
pub fn tracefs_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A name unique to this test process and `tag`, usable as a tracefs group: `rpt_<pid>_<tag>`.
pub fn group(tag: &str) -> String {
    format!("rpt_{}_{tag}", std::process::id())
}

// ---------------------------------------------------------------------------------------------
// tracefs state
// ---------------------------------------------------------------------------------------------

fn tracefs(path: &str) -> PathBuf {
    Path::new(TRACEFS).join(path)
}

/// The current `uprobe_events` text.
pub fn uprobe_events() -> String {
    let path = tracefs("uprobe_events");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `p:GRP/EVENT ...` -> `("GRP", "EVENT")`.
pub fn line_event(line: &str) -> Option<(&str, &str)> {
    let head = line.split_whitespace().next()?;
    let name = head.split_once(':')?.1;
    name.split_once('/')
}

/// The `uprobe_events` line defining `group:event`, if there is one.
pub fn find_event_line(events: &str, group: &str, event: &str) -> Option<String> {
    events
        .lines()
        .find(|l| line_event(l) == Some((group, event)))
        .map(str::to_string)
}

/// Appends one definition (or `-:GRP/EVENT`) to `uprobe_events`: `O_WRONLY|O_APPEND`, one
/// `write()`, never a truncation.
pub fn write_uprobe_events(line: &str) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .append(true)
        .open(tracefs("uprobe_events"))?;
    f.write_all(line.as_bytes())
}

/// What a test must leave as it found: `uprobe_events` and the list of tracefs instances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// `uprobe_events`, line by line.
    pub events: Vec<String>,
    /// Names under `instances/`, sorted.
    pub instances: Vec<String>,
}

impl Snapshot {
    /// Reads both now.
    pub fn take() -> Snapshot {
        let events = uprobe_events().lines().map(str::to_string).collect();
        let mut instances: Vec<String> = fs::read_dir(tracefs("instances"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        instances.sort();
        Snapshot { events, instances }
    }

    /// Asserts that tracefs is as in `self`. The machine's tracefs is shared with whatever else
    /// runs on it, so a difference that is not ours (`is_ours` says no for the line, or the
    /// instance has no `rprobe_test_<pid>` prefix) is reported and tolerated; any difference in
    /// our own events or instances fails the test.
    pub fn assert_restored(&self, test: &str, is_ours: &dyn Fn(&str) -> bool) {
        let now = Snapshot::take();
        if now == *self {
            return;
        }
        let before: BTreeSet<&String> = self.events.iter().collect();
        let after: BTreeSet<&String> = now.events.iter().collect();
        let inst_before: BTreeSet<&String> = self.instances.iter().collect();
        let inst_after: BTreeSet<&String> = now.instances.iter().collect();
        let mine = instance_prefix();
        let mut ours = String::new();
        let mut theirs = String::new();
        for (sign, set) in [
            ("+", after.difference(&before)),
            ("-", before.difference(&after)),
        ] {
            for line in set {
                let out = if is_ours(line) {
                    &mut ours
                } else {
                    &mut theirs
                };
                let _ = writeln!(out, "  uprobe_events {sign} {line}");
            }
        }
        let inst = [
            ("+", inst_after.difference(&inst_before)),
            ("-", inst_before.difference(&inst_after)),
        ];
        for (sign, set) in inst {
            for name in set {
                let out = if name.starts_with(&mine) {
                    &mut ours
                } else {
                    &mut theirs
                };
                let _ = writeln!(out, "  instances {sign} {name}");
            }
        }
        if !theirs.is_empty() {
            eprintln!("note {test}: tracefs changed meanwhile by another process:\n{theirs}");
        }
        assert!(
            ours.is_empty(),
            "{test}: tracefs is not as the test found it:\n{ours}"
        );
    }
}

/// The prefix of every instance this process creates.
pub fn instance_prefix() -> String {
    format!("rprobe_test_{}", std::process::id())
}

/// Probe events a test created or may have created; dropping it removes those that exist now
/// and did not exist when they were registered, even when the test panics.
#[derive(Debug, Default)]
pub struct EventGuard {
    events: Vec<(String, String)>,
    preexisting: BTreeSet<(String, String)>,
    /// Groups private to this test: every event in them is ours.
    groups: Vec<String>,
    perf_home: Option<PathBuf>,
}

impl EventGuard {
    /// A guard that deletes with `-:GRP/EVENT` writes.
    pub fn new() -> EventGuard {
        EventGuard::default()
    }

    /// A guard that deletes with `perf probe -d GRP:EVENT` (falling back to a direct write).
    pub fn with_perf(perf_home: &Path) -> EventGuard {
        let mut guard = EventGuard::default();
        guard.perf_home = Some(perf_home.to_path_buf());
        guard
    }

    /// Registers `group:event`, which must not exist yet: a test never deletes an event it did
    /// not create, so an existing one of that name fails the test here.
    pub fn expect_new(&mut self, group: &str, event: &str) {
        if let Some(line) = find_event_line(&uprobe_events(), group, event) {
            self.preexisting.insert((group.into(), event.into()));
            panic!(
                "{group}:{event} already exists in {TRACEFS}/uprobe_events, created by someone \
                 else:\n  {line}\nThe test will not create or delete an event of that name; \
                 remove it (perf probe -d {group}:{event}) or rerun later."
            );
        }
        self.events.push((group.into(), event.into()));
    }

    /// Claims `group`, a name private to this test (see [`group`]): whatever appears in it is
    /// removed too, also under names the test did not predict. It must be empty now.
    pub fn own_group(&mut self, group: &str) {
        let events = uprobe_events();
        let existing: Vec<&str> = events
            .lines()
            .filter(|l| line_event(l).is_some_and(|(g, _)| g == group))
            .collect();
        assert!(
            existing.is_empty(),
            "group {group} is not empty before the test: {existing:?}"
        );
        self.groups.push(group.to_string());
    }

    /// Deletes every registered event that exists now, and everything in owned groups, and
    /// returns what it deleted. Deletion errors panic unless we are already panicking.
    pub fn delete_all(&mut self) -> Vec<String> {
        let events = uprobe_events();
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        let mut targets = std::mem::take(&mut self.events);
        for line in events.lines() {
            if let Some((g, e)) = line_event(line) {
                let name = (g.to_string(), e.to_string());
                if self.groups.iter().any(|own| own == g) && !targets.contains(&name) {
                    targets.push(name);
                }
            }
        }
        for (group, event) in targets {
            if self.preexisting.contains(&(group.clone(), event.clone()))
                || find_event_line(&events, &group, &event).is_none()
            {
                continue;
            }
            match self.delete_one(&group, &event) {
                Ok(()) => deleted.push(format!("{group}:{event}")),
                Err(e) => errors.push(format!("{group}:{event}: {e}")),
            }
        }
        if !errors.is_empty() && !std::thread::panicking() {
            panic!("cannot delete probe events: {}", errors.join("; "));
        }
        deleted
    }

    fn delete_one(&self, group: &str, event: &str) -> Result<(), String> {
        if let Some(home) = &self.perf_home {
            let out = perf(home)
                .args(["probe", "-q", "-d", &format!("{group}:{event}")])
                .output();
            if matches!(&out, Ok(o) if o.status.success())
                && find_event_line(&uprobe_events(), group, event).is_none()
            {
                return Ok(());
            }
        }
        write_uprobe_events(&format!("-:{group}/{event}\n"))
            .map_err(|e| format!("write -:{group}/{event} to uprobe_events: {e}"))
    }
}

impl Drop for EventGuard {
    fn drop(&mut self) {
        self.delete_all();
    }
}

/// A private tracefs instance `instances/rprobe_test_<pid>_<tag>`; dropping it disables what it
/// enabled and removes it.
#[derive(Debug)]
pub struct Instance {
    /// Its directory.
    pub path: PathBuf,
    enabled: Vec<PathBuf>,
}

impl Instance {
    /// Creates the instance (removing a leftover of a dead process with our pid first).
    pub fn create(tag: &str) -> Instance {
        let path = tracefs("instances").join(format!("{}_{tag}", instance_prefix()));
        if path.exists() {
            let _ = fs::remove_dir(&path);
        }
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        Instance {
            path,
            enabled: Vec::new(),
        }
    }

    /// Enables `group:event` in this instance only.
    pub fn enable(&mut self, group: &str, event: &str) {
        let enable = self
            .path
            .join("events")
            .join(group)
            .join(event)
            .join("enable");
        fs::write(&enable, "1").unwrap_or_else(|e| panic!("write 1 > {}: {e}", enable.display()));
        self.enabled.push(enable);
    }

    /// Disables everything this instance enabled (needed before the events can be deleted).
    pub fn disable_all(&mut self) {
        for enable in self.enabled.drain(..) {
            let _ = fs::write(&enable, "0");
        }
    }

    /// The instance's `trace` text (non-consuming read).
    pub fn trace(&self) -> String {
        let path = self.path.join("trace");
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.disable_all();
        if let Err(e) = fs::remove_dir(&self.path) {
            if !std::thread::panicking() {
                panic!("rmdir {}: {e}", self.path.display());
            }
        }
    }
}

/// One record of an instance's `trace`, e.g. from
/// `probe_args-7446 [000] DBZff 607.726359: work: (0x55b2e3ae3149) id=1 len=100 name="alpha"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceRecord {
    /// The task's pid (TASK-PID column).
    pub pid: u32,
    /// The event name (without group).
    pub event: String,
    /// The argument text after the `(ip)` or `(ret <- func)` part.
    pub args: String,
}

impl TraceRecord {
    /// The value of argument `name` (`name=VALUE`; VALUE is a quoted string or one token).
    pub fn arg(&self, name: &str) -> Option<String> {
        let mut rest = self.args.as_str();
        while !rest.is_empty() {
            let (key, after) = rest.split_once('=')?;
            let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
                let end = quoted.find('"')?;
                (&after[..end + 2], quoted[end + 1..].trim_start())
            } else {
                match after.split_once(' ') {
                    Some((v, t)) => (v, t.trim_start()),
                    None => (after, ""),
                }
            };
            if key.trim() == name {
                return Some(value.to_string());
            }
            rest = tail;
        }
        None
    }

    /// An integer argument, printed in decimal or as `0x` hex (the default `x64` type).
    pub fn int(&self, name: &str) -> Option<i128> {
        parse_int(&self.arg(name)?)
    }
}

/// `-300`, `42`, `0x2a` -> the value. Hex is the kernel's `x*` types, so it is unsigned.
pub fn parse_int(text: &str) -> Option<i128> {
    match text.strip_prefix("0x") {
        Some(hex) => i128::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// The records of `trace` text (header lines skipped).
pub fn parse_trace(text: &str) -> Vec<TraceRecord> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_trace_line)
        .collect()
}

fn parse_trace_line(line: &str) -> Option<TraceRecord> {
    let line = line.trim_start();
    let (task, rest) = line.split_once(" [")?;
    let pid = task.trim_end().rsplit_once('-')?.1.parse().ok()?;
    // "000] DBZff   607.726359: work: (0x55..) args"
    let (_, rest) = rest.split_once(": ")?;
    let (event, rest) = rest.split_once(": (")?;
    let (_, args) = rest.split_once(')')?;
    Some(TraceRecord {
        pid,
        event: event.to_string(),
        args: args.trim().to_string(),
    })
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

/// The rprobe binary under test.
pub fn rprobe_bin() -> &'static str {
    env!("CARGO_BIN_EXE_rprobe")
}

/// Runs `rprobe ARGS` with stdin closed and returns its output.
pub fn rprobe(args: &[&str]) -> Output {
    Command::new(rprobe_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {} {args:?}: {e}", rprobe_bin()))
}

/// `perf` with a private HOME (see [`Fixtures::perf_home`]).
pub fn perf(home: &Path) -> Command {
    let mut cmd = Command::new("perf");
    cmd.env("HOME", home).stdin(Stdio::null());
    cmd
}

/// `rprobe ARGS` as a shell-like line, for failure messages.
pub fn show_cmd(program: &str, args: &[&str]) -> String {
    let mut s = program.to_string();
    for a in args {
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$\\%()".contains(c)) {
            let _ = write!(s, " '{}'", a.replace('\'', r"'\''"));
        } else {
            let _ = write!(s, " {a}");
        }
    }
    s
}

/// stdout, stderr and status of `out`, for failure messages.
pub fn show_output(out: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Holds `/tmp/rprobe-kernel.lock` (flock) while alive; holds nothing when a process that
/// runs us (`flock /tmp/rprobe-kernel.lock cargo test ...`) has it already, which would
/// otherwise deadlock. The lock serializes probe creation among tests and tools sharing a
/// development machine (the 6.18 host once corrupted its uprobe list under concurrent
/// registrations); flock locks belong to open files, so threads of one test exclude each
/// other too. In CI nothing else holds it.
pub struct KernelLock(#[allow(dead_code)] Option<nix::fcntl::Flock<fs::File>>);

/// Our parent, grandparent, ... from `/proc/PID/stat`.
fn ancestors() -> Vec<u32> {
    let mut v = Vec::new();
    let mut pid = std::process::id();
    while pid > 1 && v.len() < 64 {
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            break;
        };
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
        else {
            break;
        };
        v.push(ppid);
        pid = ppid;
    }
    v
}

/// Whether an ancestor holds the flock on the file with inode `ino` (`/proc/locks`).
fn held_by_ancestor(ino: u64) -> bool {
    let Ok(locks) = fs::read_to_string("/proc/locks") else {
        return false;
    };
    let anc = ancestors();
    locks
        .lines()
        .filter(|l| !l.contains("->") && l.contains("FLOCK"))
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let pid = f.get(4).and_then(|p| p.parse::<u32>().ok());
            let inode = f
                .get(5)
                .and_then(|d| d.rsplit(':').next())
                .and_then(|i| i.parse::<u64>().ok());
            inode == Some(ino) && pid.is_some_and(|p| anc.contains(&p))
        })
}

pub fn kernel_lock() -> KernelLock {
    use std::os::unix::fs::MetadataExt;
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/rprobe-kernel.lock")
        .expect("open /tmp/rprobe-kernel.lock");
    if f.metadata().is_ok_and(|m| held_by_ancestor(m.ino())) {
        return KernelLock(None);
    }
    let l = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .unwrap_or_else(|(_, e)| panic!("flock /tmp/rprobe-kernel.lock: {e}"));
    KernelLock(Some(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_lines_parse() {
        let text = "# tracer: nop\n#\n           probe_args-7446    [000] DBZff   607.726359: \
                    work: (0x55b2e3ae3149) id=1 len=-100 name=\"al pha\" arg4=0x1\n \
                    probe_args-7446    [001] ..... 607.726406: ans: (0x55b2e3ae33ef <- \
                    0x55b2e3ae321b) arg1=0x2a\n";
        let recs = parse_trace(text);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].pid, 7446);
        assert_eq!(recs[0].event, "work");
        assert_eq!(recs[0].int("id"), Some(1));
        assert_eq!(recs[0].int("len"), Some(-100));
        assert_eq!(recs[0].arg("name").as_deref(), Some("\"al pha\""));
        assert_eq!(recs[0].int("arg4"), Some(1));
        assert_eq!(recs[1].event, "ans");
        assert_eq!(recs[1].int("arg1"), Some(42));
    }

    #[test]
    fn event_of_definition_line() {
        let line = "r:probe_bash/readline__return /usr/bin/bash:0x00000000000c6c20 arg1=+0($retval):string";
        assert_eq!(line_event(line), Some(("probe_bash", "readline__return")));
    }
}

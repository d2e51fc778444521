//! Live tests of temporary probe sessions (`rprobe::probes::session`) on this machine's
//! kernel: a session's uprobe and its instance are gone after SIGINT, SIGTERM, SIGHUP and a
//! closed output pipe; after SIGKILL they stay until the next session starts, which removes
//! them and only them (a live session's group and another tool's probe are untouched).
//!
//! `harness = false` (see Cargo.toml): the session holder is this same binary started again
//! with `RPROBE_SESSION_HOLD=<binary to probe>`, and it must be single-threaded, as rprobe is.
//! Under libtest each test runs in a thread of its own while the main thread keeps SIGINT and
//! SIGTERM unblocked, so the kernel would deliver them there and kill the holder before it
//! could clean up; that would test libtest, not the session.
//!
//! Needs root and `uprobe_events`; otherwise it prints `SKIP` (a failure when `CI` is set).

// Without the libtest harness the #[test] functions in common are compiled out, which leaves
// their module's import unused.
#[allow(unused_imports)]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use rprobe::probes::session::ProbeSession;
use rprobe::probes::{parse_spec, ResolveOptions, Target};
use rprobe::sys::signals::{wait_readable, Stop, StopSignals};
use rprobe::sys::spawn::process_exists;
use rprobe::tracefs::Tracefs;

const HOLD_ENV: &str = "RPROBE_SESSION_HOLD";

/// A named case, given the binary to probe.
type Case = (&'static str, fn(&str));

fn main() {
    if let Some(binary) = std::env::var_os(HOLD_ENV) {
        std::process::exit(hold(&binary.to_string_lossy()));
    }
    let test = "live_session";
    // `cargo test NAME` passes NAME here too: run only when it selects this file's cases.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-') && !a.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    if !filters.is_empty()
        && !filters
            .iter()
            .any(|f| "live_session::".contains(f.as_str()) || f.starts_with("live_session"))
    {
        return;
    }
    if !common::live_or_skip(test, common::Needs::Tracefs) {
        return;
    }
    let fx = common::fixtures();
    let binary = fx.o0.to_string_lossy().into_owned();
    let before = common::Snapshot::take();
    let other = OtherProbe::add(&binary);
    let cases: [Case; 6] = [
        ("sigint", |b| {
            stops_cleanly(b, Ending::Signal(libc_sig::SIGINT))
        }),
        ("sigterm", |b| {
            stops_cleanly(b, Ending::Signal(libc_sig::SIGTERM))
        }),
        ("sighup", |b| {
            stops_cleanly(b, Ending::Signal(libc_sig::SIGHUP))
        }),
        ("broken_pipe", |b| stops_cleanly(b, Ending::ClosePipe)),
        ("sigkill_then_next_start", sigkill_then_next_start),
        ("all_or_none", all_or_none),
    ];
    let mut failed = Vec::new();
    for (name, case) in cases {
        let result = std::panic::catch_unwind(|| case(&binary));
        match result {
            Ok(()) => println!("test live_session::{name} ... ok"),
            Err(_) => {
                println!("test live_session::{name} ... FAILED");
                failed.push(name);
            }
        }
        assert!(other.present(), "{name}: another tool's probe must stay");
    }
    drop(other);
    before.assert_restored(test, &|line| line.contains(":rprobe_"));
    if !failed.is_empty() {
        panic!("live_session: failed: {}", failed.join(", "));
    }
    println!("live_session: {} passed", cases.len());
}

/// Signal numbers, spelled out so the test needs no libc.
mod libc_sig {
    pub const SIGHUP: i32 = 1;
    pub const SIGINT: i32 = 2;
    pub const SIGKILL: i32 = 9;
    pub const SIGTERM: i32 = 15;
}

/// The holder: sweeps dead sessions, adds a uprobe on `work` in its session, enables it in
/// the session's instance, prints `READY GROUP EVENT ID`, then prints `tick` every 50 ms
/// until a stop signal arrives or stdout is closed, and cleans up by dropping the session.
fn hold(binary: &str) -> i32 {
    let tracefs = match Tracefs::find() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("holder: {e}");
            return 2;
        }
    };
    let me = std::process::id();
    let signals = StopSignals::block().expect("signalfd");
    let map = rprobe::sys::map_file(std::path::Path::new(binary)).expect("map");
    let symbols = rprobe::elf::parse_functions(&map).expect("symbols");
    let (mut session, swept) = ProbeSession::start(&tracefs, me, &process_exists).expect("session");
    if !swept.failures.is_empty() {
        eprintln!("holder: sweep failures: {:?}", swept.failures);
    }
    let spec = parse_spec("work arg1:s32").expect("spec");
    let target = Target::User {
        path: binary,
        symbols: &symbols,
        dwarf: None,
    };
    let mut opts = ResolveOptions::default();
    let made = session
        .add_specs(std::slice::from_ref(&spec), target, &mut opts)
        .expect("add")
        .to_vec();
    let (group, event) = (made[0].group.clone(), made[0].event.clone());
    let inst = session.instance().expect("instance").tracefs();
    inst.set_enabled(&group, &event, true)
        .expect("enable in instance");
    let mut out = std::io::stdout();
    let said = writeln!(out, "READY {group} {event} {}", made[0].id).and_then(|()| out.flush());
    if said.is_err() {
        return 3;
    }
    let stop = loop {
        let ready = wait_readable(None, &signals, None, 50).expect("poll");
        if ready.signal {
            if let Some(s) = signals.read().expect("read signalfd") {
                if s != Stop::Child {
                    break s.name().to_owned();
                }
            }
        }
        if writeln!(out, "tick").and_then(|()| out.flush()).is_err() {
            break "EPIPE".to_owned();
        }
    };
    let closed = session.close();
    eprintln!("holder: stopped by {stop}, cleanup {closed:?}");
    i32::from(closed.is_err())
}

/// A running holder.
struct Holder {
    child: Child,
    lines: Option<BufReader<ChildStdout>>,
    group: String,
}

impl Holder {
    fn start(binary: &str) -> Holder {
        let exe = std::env::current_exe().expect("current_exe");
        let mut child = Command::new(exe)
            .env(HOLD_ENV, binary)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start holder");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        lines.read_line(&mut first).expect("read READY");
        let words: Vec<&str> = first.split_whitespace().collect();
        if words.first() != Some(&"READY") || words.len() != 4 {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait");
            panic!(
                "holder did not get ready: {first:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let group = words[1].to_owned();
        assert_eq!(group, format!("rprobe_{}", child.id()));
        assert!(words[3].parse::<u32>().is_ok(), "id: {first}");
        Holder {
            child,
            lines: Some(lines),
            group,
        }
    }

    fn signal(&self, sig: i32) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let sig = nix::sys::signal::Signal::try_from(sig).expect("signal");
        nix::sys::signal::kill(pid, sig).expect("kill");
    }

    /// Wait (at most 10 s) for the holder to exit; its exit code and stderr.
    fn wait(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return (status.code(), err);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("holder {} did not exit within 10 s", self.group);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // A test that failed midway: do not leave a holder running.
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc_sig::SIGTERM);
            let _ = self.child.wait();
        }
    }
}

/// The lines of `uprobe_events` in `group`.
fn group_lines(group: &str) -> Vec<String> {
    let marker = format!(":{group}/");
    common::uprobe_events()
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|h| h.contains(&marker))
        })
        .map(str::to_owned)
        .collect()
}

fn instance_exists(name: &str) -> bool {
    std::path::Path::new(common::TRACEFS)
        .join("instances")
        .join(name)
        .is_dir()
}

enum Ending {
    Signal(i32),
    ClosePipe,
}

fn stops_cleanly(binary: &str, ending: Ending) {
    let mut h = Holder::start(binary);
    let group = h.group.clone();
    assert_eq!(group_lines(&group).len(), 1, "the session's probe exists");
    assert!(instance_exists(&group), "the session's instance exists");
    match ending {
        Ending::Signal(sig) => h.signal(sig),
        Ending::ClosePipe => drop(h.lines.take()),
    }
    let (code, err) = h.wait();
    assert_eq!(code, Some(0), "holder exit; stderr: {err}");
    let expected = match ending {
        Ending::Signal(libc_sig::SIGINT) => "SIGINT",
        Ending::Signal(libc_sig::SIGTERM) => "SIGTERM",
        Ending::Signal(_) => "SIGHUP",
        Ending::ClosePipe => "EPIPE",
    };
    assert!(
        err.contains(&format!("stopped by {expected}, cleanup Ok(())")),
        "{err}"
    );
    assert_eq!(
        group_lines(&group),
        Vec::<String>::new(),
        "probe left behind"
    );
    assert!(!instance_exists(&group), "instance left behind");
}

fn sigkill_then_next_start(binary: &str) {
    let live = Holder::start(binary);
    let killed = Holder::start(binary);
    let dead_group = killed.group.clone();
    killed.signal(libc_sig::SIGKILL);
    let (code, _) = killed.wait();
    assert_eq!(code, None, "killed by a signal");
    assert_eq!(
        group_lines(&dead_group).len(),
        1,
        "SIGKILL leaves the probe"
    );
    assert!(instance_exists(&dead_group));
    let next = Holder::start(binary);
    assert_eq!(
        group_lines(&dead_group),
        Vec::<String>::new(),
        "the next start removes it"
    );
    assert!(!instance_exists(&dead_group), "and its instance");
    assert_eq!(
        group_lines(&live.group).len(),
        1,
        "a live session is untouched"
    );
    assert!(instance_exists(&live.group));
    for h in [live, next] {
        let group = h.group.clone();
        h.signal(libc_sig::SIGTERM);
        let (code, err) = h.wait();
        assert_eq!(code, Some(0), "{err}");
        assert!(group_lines(&group).is_empty());
    }
}

fn all_or_none(binary: &str) {
    let tracefs = Tracefs::find().expect("tracefs");
    let map = rprobe::sys::map_file(std::path::Path::new(binary)).expect("map");
    let symbols = rprobe::elf::parse_functions(&map).expect("symbols");
    let mut session = ProbeSession::new(&tracefs, std::process::id()).expect("session");
    let group = session.group().to_owned();
    let target = Target::User {
        path: binary,
        symbols: &symbols,
        dwarf: None,
    };
    let mut opts = ResolveOptions::default();
    let spec = parse_spec("work arg1:s32").expect("spec");
    let mut defs = session
        .resolve_specs(&[spec], target, &mut opts)
        .expect("resolve");
    // The kernel refuses the second one when it is written (no such file): the first, already
    // added by the same call, must go too.
    let mut bad = defs[0].clone();
    bad.event = "missing".into();
    bad.place = rprobe::probes::Place::User {
        path: "/no/such/rprobe/file".into(),
        offset: 0x10,
        ref_ctr: None,
    };
    defs.push(bad);
    let err = session
        .add(&defs)
        .expect_err("the kernel refuses a missing file");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot add {group}:missing")),
        "{err}"
    );
    assert!(session.events().is_empty());
    assert!(
        group_lines(&group).is_empty(),
        "the first probe must be removed too"
    );
    let made = session.add(&defs[..1]).expect("the good one alone");
    assert_eq!(made.len(), 1);
    assert_eq!(group_lines(&group).len(), 1);
    session.close().expect("close");
    assert!(group_lines(&group).is_empty());
    let err = session_with_own_group(&tracefs, &symbols, binary);
    assert!(err.contains("session group"), "{err}");
}

fn session_with_own_group(
    tracefs: &Tracefs,
    symbols: &rprobe::elf::SymbolTable,
    binary: &str,
) -> String {
    let mut session = ProbeSession::new(tracefs, std::process::id()).expect("session");
    let target = Target::User {
        path: binary,
        symbols,
        dwarf: None,
    };
    let spec = parse_spec("mine:ev=work").expect("spec");
    let mut opts = ResolveOptions::default();
    let err = session
        .add_specs(&[spec], target, &mut opts)
        .expect_err("a spec with its own group");
    err.to_string()
}

/// A probe made by "another tool" (a raw write, group `rpt_<pid>_other`) that every case
/// must leave alone.
struct OtherProbe {
    group: String,
}

impl OtherProbe {
    fn add(binary: &str) -> OtherProbe {
        let group = common::group("other");
        let spec = format!("{group}:keep=work");
        let out = common::rprobe(&["add", "-n", "-x", binary, &spec]);
        assert!(out.status.success(), "{}", common::show_output(&out));
        let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        common::write_uprobe_events(&format!("{line}\n")).expect("add the other tool's probe");
        let p = OtherProbe { group };
        assert!(p.present());
        p
    }

    fn present(&self) -> bool {
        group_lines(&self.group).len() == 1
    }
}

impl Drop for OtherProbe {
    fn drop(&mut self) {
        let _ = common::write_uprobe_events(&format!("-:{}/keep\n", self.group));
    }
}

//! Live uprobe tests on this machine's kernel (root): `rprobe add` on the fixture programs, hits
//! read from a private tracefs instance with their exact argument values and counts, `rprobe
//! list`, `rprobe del`, default naming, and bad input that must fail cleanly.
//!
//! Every test leaves `uprobe_events` and the tracefs instance list as it found them; a drop guard
//! removes what a test created even when it fails.

mod common;

use common::{
    fixtures, group, live_or_skip, parse_trace, show_cmd, show_output, tracefs_lock, EventGuard,
    Fixtures, Instance, Needs, Snapshot, TraceRecord,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::MutexGuard;

/// How many rounds of calls each run of a fixture makes (its argv[1]).
const ROUNDS: usize = 2;

/// One test's probes: its private group `rpt_<pid>_<tag>`, the state to restore, the guard.
struct Session {
    test: String,
    grp: String,
    before: Snapshot,
    guard: EventGuard,
    /// Events of `grp` added so far (and not deleted).
    events: Vec<String>,
    /// Every `group:event` registered with the guard, for [`Snapshot::assert_restored`].
    owned: Vec<(String, String)>,
    _lock: MutexGuard<'static, ()>,
}

impl Session {
    /// Starts a session, or returns None after printing why the test is skipped.
    fn start(name: &str) -> Option<Session> {
        let test = format!("live_uprobe::{name}");
        if !live_or_skip(&test, Needs::Tracefs) {
            return None;
        }
        let lock = tracefs_lock();
        // Build before the snapshot so a compile error is reported as such.
        fixtures();
        let grp = group(name);
        let mut guard = EventGuard::new();
        guard.own_group(&grp);
        Some(Session {
            test,
            grp,
            before: Snapshot::take(),
            guard,
            events: Vec::new(),
            owned: Vec::new(),
            _lock: lock,
        })
    }

    /// `rprobe add -x BIN 'GRP:EVENT=SPEC'`, which must succeed and say what it added; returns
    /// the definition the kernel shows. As with perf, a return probe's event is named
    /// `EVENT__return` even when EVENT is given (golden case `o0_explicit_names_return`).
    fn add(&mut self, bin: &Path, event: &str, spec: &str) -> String {
        let grp = self.grp.clone();
        let place = spec.split_whitespace().next().unwrap_or_default();
        let name = if place.ends_with("%return") {
            format!("{event}__return")
        } else {
            event.to_string()
        };
        let line = self.add_named(bin, &grp, &name, &format!("{grp}:{event}={spec}"));
        self.events.push(name);
        line
    }

    /// `rprobe add -x BIN SPEC` for a SPEC that creates `group:event`.
    fn add_named(&mut self, bin: &Path, group: &str, event: &str, spec: &str) -> String {
        self.expect_new(group, event);
        let bin = bin.to_string_lossy();
        let args = ["add", "-x", &bin, spec];
        let out = common::rprobe(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let name = format!("{group}:{event}");
        assert!(
            out.status.success() && stdout.contains("Added new event") && stdout.contains(&name),
            "{}: `{}` should add {name} and say so\n{}",
            self.test,
            show_cmd("rprobe", &args),
            show_output(&out)
        );
        self.definition(group, event)
    }

    /// Registers an event the test may create (see [`EventGuard::expect_new`]).
    fn expect_new(&mut self, group: &str, event: &str) {
        self.guard.expect_new(group, event);
        self.owned.push((group.to_string(), event.to_string()));
    }

    /// The event's line in `uprobe_events`.
    fn definition(&self, group: &str, event: &str) -> String {
        let events = common::uprobe_events();
        common::find_event_line(&events, group, event).unwrap_or_else(|| {
            panic!(
                "{}: {group}:{event} is not in uprobe_events:\n{events}",
                self.test
            )
        })
    }

    /// Enables every added event in a private instance, runs `exe ROUNDS`, and returns the
    /// records of that process, in order. The instance is gone when this returns.
    fn record(&self, exe: &Path) -> Vec<TraceRecord> {
        let mut inst = Instance::create(&self.grp);
        for event in &self.events {
            inst.enable(&self.grp, event);
        }
        let child = Command::new(exe)
            .arg(ROUNDS.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: run {}: {e}", self.test, exe.display()));
        let pid = child.id();
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("{}: wait for {}: {e}", self.test, exe.display()));
        assert!(
            out.status.success(),
            "{}: {} failed\n{}",
            self.test,
            exe.display(),
            show_output(&out)
        );
        let trace = inst.trace();
        inst.disable_all();
        drop(inst);
        let recs: Vec<TraceRecord> = parse_trace(&trace)
            .into_iter()
            .filter(|r| r.pid == pid)
            .collect();
        assert!(
            !recs.is_empty(),
            "{}: no records of pid {pid} in the instance's trace:\n{trace}",
            self.test
        );
        recs
    }

    /// `rprobe del 'GRP:*'`: must remove exactly our events and name each one.
    fn del_all(&mut self) {
        let pattern = format!("{}:*", self.grp);
        let args = ["del", pattern.as_str()];
        let out = common::rprobe(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: `{}` failed\n{}",
            self.test,
            show_cmd("rprobe", &args),
            show_output(&out)
        );
        for event in &self.events {
            let name = format!("{}:{event}", self.grp);
            assert!(
                stdout.contains(&name),
                "{}: `rprobe del {pattern}` did not report removing {name}\n{}",
                self.test,
                show_output(&out)
            );
        }
        let left: Vec<String> = common::uprobe_events()
            .lines()
            .filter(|l| common::line_event(l).is_some_and(|(g, _)| g == self.grp))
            .map(str::to_string)
            .collect();
        assert!(
            left.is_empty(),
            "{}: `rprobe del {pattern}` left {left:?}",
            self.test
        );
        self.events.clear();
    }

    /// Drops the guard (deleting anything left) and checks tracefs is as before.
    fn finish(mut self) {
        let left = self.guard.delete_all();
        assert!(
            left.is_empty(),
            "{}: events left behind (removed by the guard): {left:?}",
            self.test
        );
        let (grp, owned) = (&self.grp, &self.owned);
        self.before.assert_restored(&self.test, &|line| {
            common::line_event(line).is_some_and(|(g, e)| {
                g.starts_with(grp.as_str()) || owned.iter().any(|(og, oe)| og == g && oe == e)
            })
        });
    }
}

/// The values of one integer argument over `recs` of `event`.
fn ints(recs: &[TraceRecord], event: &str, arg: &str) -> Vec<i128> {
    recs.iter()
        .filter(|r| r.event == event)
        .map(|r| {
            r.int(arg)
                .unwrap_or_else(|| panic!("{event}: no integer {arg} in `{}`", r.args))
        })
        .collect()
}

/// The values of one string argument (quotes removed) over `recs` of `event`.
fn strings(recs: &[TraceRecord], event: &str, arg: &str) -> Vec<String> {
    recs.iter()
        .filter(|r| r.event == event)
        .map(|r| {
            let v = r
                .arg(arg)
                .unwrap_or_else(|| panic!("{event}: no {arg} in `{}`", r.args));
            v.trim_matches('"').to_string()
        })
        .collect()
}

/// `values` repeated ROUNDS times.
fn rounds<T: Clone>(values: &[T]) -> Vec<T> {
    values
        .iter()
        .cloned()
        .cycle()
        .take(values.len() * ROUNDS)
        .collect()
}

/// The arguments of a definition line (everything after the place).
fn def_args(line: &str) -> String {
    line.split_whitespace()
        .skip(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The registers of `arg1..arg6` (SysV integer arguments).
const ARG_REGS: [&str; 6] = ["%di", "%si", "%dx", "%cx", "%r8", "%r9"];

#[test]
fn add_trace_list_del_roundtrip() {
    let Some(mut s) = Session::start("add_trace_list_del_roundtrip") else {
        return;
    };
    let fx = fixtures();
    let o0 = fx.o0.to_string_lossy().into_owned();
    let grp = s.grp.clone();

    let work = s.add(
        &fx.o0,
        "work",
        "work id=%di:s32 len=%si:s64 name=+0(%dx):string",
    );
    assert!(
        work.starts_with(&format!("p:{grp}/work {o0}:0x")),
        "{}: unexpected definition {work}",
        s.test
    );
    assert_eq!(
        def_args(&work),
        "id=%di:s32 len=%si:s64 name=+0(%dx):string"
    );
    let ret = s.add(&fx.o0, "work", "work%return ret=$retval:s64");
    assert!(
        ret.starts_with(&format!("r:{grp}/work__return {o0}:0x")),
        "{ret}"
    );
    // An untyped $retval: the kernel's default type prints it as 0x hex.
    let answer = s.add(&fx.o0, "answer", "answer%return $retval");
    assert_eq!(def_args(&answer), "arg1=$retval");
    s.add(&fx.o0, "greeting", "greeting%return +0($retval):string");
    let add6 = s.add(&fx.o0, "add6", "add6 arg1 arg2 arg3 arg4 arg5 arg6");
    let add6_args: Vec<&str> = add6.split_whitespace().skip(2).collect();
    assert_eq!(add6_args.len(), 6, "{add6}");
    for (i, (arg, reg)) in add6_args.iter().zip(ARG_REGS).enumerate() {
        let want = format!("arg{}={reg}", i + 1);
        assert!(
            arg.starts_with(&want) && !arg[want.len()..].starts_with(|c: char| c.is_alphanumeric()),
            "add6 arg{} should be {want}[:TYPE]: {add6}",
            i + 1
        );
    }
    s.add(&fx.o0, "add8", "add8 g=$stack1:s64 h=$stack2:s64");
    s.add(
        &fx.o0,
        "point",
        "point_sum y=+8(%di):s64 label=+0(+16(%di)):string",
    );
    // A sentinel in a group that shares our prefix: `del 'GRP:*'` must not touch it.
    let keep_grp = format!("{grp}_keep");
    s.add_named(
        &fx.o0,
        &keep_grp,
        "keep",
        &format!("{keep_grp}:keep=answer"),
    );

    let recs = s.record(&fx.o0);
    let per_round = [
        "work",
        "work__return",
        "work",
        "work__return",
        "work",
        "work__return",
        "add6",
        "add6",
        "add8",
        "answer__return",
        "greeting__return",
        "point",
    ];
    let seq: Vec<&str> = recs.iter().map(|r| r.event.as_str()).collect();
    assert_eq!(seq, rounds(&per_round), "{}: events and hit counts", s.test);
    assert_eq!(ints(&recs, "work", "id"), rounds(&[1, 2, 3]));
    assert_eq!(ints(&recs, "work", "len"), rounds(&[100, 200, -300]));
    assert_eq!(
        strings(&recs, "work", "name"),
        rounds(&["alpha", "beta", "gamma"])
    );
    assert_eq!(
        ints(&recs, "work__return", "ret"),
        rounds(&[101, 202, -297])
    );
    assert_eq!(ints(&recs, "answer__return", "arg1"), rounds(&[42]));
    assert_eq!(
        strings(&recs, "greeting__return", "arg1"),
        rounds(&["hello rprobe"])
    );
    for n in 1..=6 {
        let arg = format!("arg{n}");
        assert_eq!(ints(&recs, "add6", &arg), rounds(&[n, n]), "add6 {arg}");
    }
    assert_eq!(ints(&recs, "add8", "g"), rounds(&[70]));
    assert_eq!(ints(&recs, "add8", "h"), rounds(&[80]));
    assert_eq!(ints(&recs, "point", "y"), rounds(&[-9]));
    assert_eq!(strings(&recs, "point", "label"), rounds(&["origin"]));

    // `rprobe list`: each event with its definition's args.
    let out = common::rprobe(&["list"]);
    assert!(out.status.success(), "rprobe list\n{}", show_output(&out));
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    for event in &s.events {
        let name = format!("{grp}:{event}");
        let line = listed
            .lines()
            .find(|l| l.split_whitespace().any(|w| w == name))
            .unwrap_or_else(|| panic!("`rprobe list` does not show {name}:\n{listed}"));
        let def = s.definition(&grp, event);
        for arg in def.split_whitespace().skip(2) {
            assert!(
                line.contains(arg),
                "`rprobe list` line for {name} lacks `{arg}`:\n  {line}\n  kernel: {def}"
            );
        }
    }
    let pattern = format!("{grp}:work");
    let out = common::rprobe(&["list", &pattern]);
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success()
            && listed
                .lines()
                .any(|l| l.split_whitespace().any(|w| w == pattern))
            && !listed.contains(&format!("{grp}:work__return"))
            && !listed.contains(&format!("{grp}:add6")),
        "`rprobe list {pattern}` should show {pattern} only\n{}",
        show_output(&out)
    );

    s.del_all();
    let keep = s.definition(&keep_grp, "keep");
    assert!(keep.starts_with(&format!("p:{keep_grp}/keep ")), "{keep}");
    // Nothing left to match: del must fail and say so.
    let pattern = format!("{grp}:*");
    let out = common::rprobe(&["del", &pattern]);
    assert!(
        !out.status.success() && !out.stderr.is_empty(),
        "`rprobe del {pattern}` with nothing to delete should fail\n{}",
        show_output(&out)
    );
    let out = common::rprobe(&["del", &format!("{keep_grp}:keep")]);
    assert!(
        out.status.success(),
        "rprobe del keep\n{}",
        show_output(&out)
    );
    s.finish();
}

#[test]
fn shared_library_hits() {
    let Some(mut s) = Session::start("shared_library_hits") else {
        return;
    };
    let fx = fixtures();
    let line = s.add(&fx.lib, "compute", "lib_compute a=%di:s32 b=%si:s64");
    let lib = fx.lib.to_string_lossy();
    assert!(line.contains(&format!(" {lib}:0x")), "{line}");
    s.add(&fx.lib, "label", "lib_label%return +0($retval):string");
    let recs = s.record(&fx.lib_main);
    let seq: Vec<&str> = recs.iter().map(|r| r.event.as_str()).collect();
    assert_eq!(seq, rounds(&["compute", "compute", "label__return"]));
    assert_eq!(ints(&recs, "compute", "a"), rounds(&[6, -2]));
    assert_eq!(ints(&recs, "compute", "b"), rounds(&[7, 50]));
    assert_eq!(
        strings(&recs, "label__return", "arg1"),
        rounds(&["lib-one"])
    );
    s.del_all();
    s.finish();
}

#[test]
fn nopie_entry_hits() {
    let Some(mut s) = Session::start("nopie_entry_hits") else {
        return;
    };
    let fx = fixtures();
    s.add(&fx.nopie, "work", "work id=%di:s32 name=+0(%dx):string");
    s.add(&fx.nopie, "point", "point_sum%return $retval:s64");
    let recs = s.record(&fx.nopie);
    let per_round = ["work", "work", "work", "point__return"];
    let seq: Vec<&str> = recs.iter().map(|r| r.event.as_str()).collect();
    assert_eq!(seq, rounds(&per_round));
    assert_eq!(ints(&recs, "work", "id"), rounds(&[1, 2, 3]));
    assert_eq!(
        strings(&recs, "work", "name"),
        rounds(&["alpha", "beta", "gamma"])
    );
    assert_eq!(ints(&recs, "point__return", "arg1"), rounds(&[-2]));
    s.del_all();
    s.finish();
}

#[test]
fn o2_entry_and_return_hits() {
    let Some(mut s) = Session::start("o2_entry_and_return_hits") else {
        return;
    };
    let fx = fixtures();
    s.add(
        &fx.o2,
        "work",
        "work id=%di:s32 len=%si:s64 name=+0(%dx):string",
    );
    s.add(&fx.o2, "answer", "answer%return $retval:s32");
    s.add(&fx.o2, "add8", "add8 arg1 arg6 g=$stack1:s64 h=$stack2:s64");
    let recs = s.record(&fx.o2);
    let per_round = ["work", "work", "work", "add8", "answer__return"];
    let seq: Vec<&str> = recs.iter().map(|r| r.event.as_str()).collect();
    assert_eq!(seq, rounds(&per_round));
    assert_eq!(ints(&recs, "work", "len"), rounds(&[100, 200, -300]));
    assert_eq!(
        strings(&recs, "work", "name"),
        rounds(&["alpha", "beta", "gamma"])
    );
    assert_eq!(ints(&recs, "answer__return", "arg1"), rounds(&[42]));
    assert_eq!(ints(&recs, "add8", "arg1"), rounds(&[10]));
    assert_eq!(ints(&recs, "add8", "arg6"), rounds(&[60]));
    assert_eq!(ints(&recs, "add8", "g"), rounds(&[70]));
    assert_eq!(ints(&recs, "add8", "h"), rounds(&[80]));
    s.del_all();
    s.finish();
}

#[test]
fn default_naming_add_list_del() {
    let Some(mut s) = Session::start("default_naming_add_list_del") else {
        return;
    };
    let fx = fixtures();
    // perf's naming: group probe_<exe>, event after the function.
    let line = s.add_named(&fx.o0, "probe_probe_args", "answer", "answer");
    let o0 = fx.o0.to_string_lossy();
    assert!(
        line.starts_with(&format!("p:probe_probe_args/answer {o0}:0x")),
        "{line}"
    );
    let out = common::rprobe(&["list", "probe_probe_args:answer"]);
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("probe_probe_args:answer"),
        "rprobe list probe_probe_args:answer\n{}",
        show_output(&out)
    );
    let out = common::rprobe(&["del", "probe_probe_args:answer"]);
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("probe_probe_args:answer"),
        "rprobe del probe_probe_args:answer should remove it and say so\n{}",
        show_output(&out)
    );
    assert!(
        common::find_event_line(&common::uprobe_events(), "probe_probe_args", "answer").is_none(),
        "probe_probe_args:answer is still there after rprobe del"
    );
    s.finish();
}

#[test]
fn del_without_match_fails() {
    let Some(s) = Session::start("del_without_match_fails") else {
        return;
    };
    let pattern = format!("{}:nothing*", s.grp);
    let out = common::rprobe(&["del", &pattern]);
    assert_one_line_error(&s.test, &out, &["del", &pattern], None);
    s.finish();
}

/// A failed command: non-zero exit, a one-line message on stderr (naming `mention`), no panic.
fn assert_one_line_error(
    test: &str,
    out: &std::process::Output,
    args: &[&str],
    mention: Option<&str>,
) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let cmd = show_cmd("rprobe", args);
    assert!(
        !out.status.success(),
        "{test}: `{cmd}` should fail\n{}",
        show_output(out)
    );
    assert!(
        lines.len() == 1 && !stderr.contains("panicked"),
        "{test}: `{cmd}` should print a one-line error\n{}",
        show_output(out)
    );
    if let Some(word) = mention {
        assert!(
            stderr.contains(word),
            "{test}: `{cmd}`: the error should name `{word}`\n{}",
            show_output(out)
        );
    }
}

/// `rprobe add -x BIN SPEC` must fail cleanly and create nothing. `bin` picks the binary from
/// the fixtures (built only once the test knows it can run). `{G}` in SPEC is the test's group
/// and `{O0}` the -O0 fixture's path; any event named `{G}:bad` or `{G}:injected` it might
/// create is removed by the guard.
fn bad_input(name: &str, bin: fn(&Fixtures) -> PathBuf, spec: &str, mention: Option<&str>) {
    let Some(mut s) = Session::start(name) else {
        return;
    };
    let fx = fixtures();
    let grp = s.grp.clone();
    s.expect_new(&grp, "bad");
    s.expect_new(&grp, "injected");
    let spec = spec
        .replace("{G}", &grp)
        .replace("{O0}", &fx.o0.to_string_lossy());
    let bin = bin(fx).to_string_lossy().into_owned();
    let args = ["add", "-x", &bin, &spec];
    let out = common::rprobe(&args);
    assert_one_line_error(&s.test, &out, &args, mention);
    s.finish();
}

#[test]
fn bad_spec_with_newline() {
    // Written as is, the second line would define a second event.
    bad_input(
        "bad_spec_with_newline",
        |fx| fx.o0.clone(),
        "{G}:bad=work %di\np:{G}/injected {O0}:0x0",
        None,
    );
}

#[test]
fn bad_unknown_function() {
    bad_input(
        "bad_unknown_function",
        |fx| fx.o0.clone(),
        "{G}:bad=no_such_function_rprobe %di",
        Some("no_such_function_rprobe"),
    );
}

#[test]
fn bad_unknown_register() {
    bad_input(
        "bad_unknown_register",
        |fx| fx.o0.clone(),
        "{G}:bad=work x=%rdi",
        Some("rdi"),
    );
}

#[test]
fn bad_missing_binary() {
    bad_input(
        "bad_missing_binary",
        |fx| fx.dir.join("no-such-binary"),
        "{G}:bad=work",
        Some("no-such-binary"),
    );
}

#[test]
fn bad_stripped_function_not_in_dynsym() {
    // strip removed .symtab; a PIE exports none of its own functions in .dynsym.
    bad_input(
        "bad_stripped_function_not_in_dynsym",
        |fx| fx.stripped.clone(),
        "{G}:bad=work %di",
        Some("work"),
    );
}

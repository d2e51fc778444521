//! User probes by variable name from DWARF, against perf and against the values a live run
//! carries, on `fixtures/src/dwarf_live.c` built `-g -O0` and `-g -O2` (gcc's default DWARF 5).
//!
//! Golden: for each spec, perf adds it (`perf probe -x BIN 'GRP:EVENT=SPEC'`, under the
//! machine-wide kernel lock), the test reads the lines perf made the kernel show in
//! `uprobe_events`, perf deletes them, and `rprobe add -x BIN --dry-run` must print the same
//! lines. Events go to a group private to this process with explicit names: perf refuses an
//! event name that exists in any group, and other tools' events must not break the test.
//!
//! Live: rprobe adds bitfield, union, array, nested and pointer-to-pointer reads (some
//! perf 6.1 refuses on DWARF 5), a private tracefs instance records one run of the program,
//! and every value must be the one `main` passes.

mod common;

use common::{
    group, live_or_skip, parse_trace, show_output, tracefs_lock, EventGuard, Instance, Needs,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `-O0` and `-O2` builds of the fixture.
fn binaries() -> &'static (PathBuf, PathBuf) {
    static B: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    B.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/src/dwarf_live.c");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("dwarf-live-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let build = |opt: &str| {
            let out = dir.join(format!("live_{}", opt.trim_start_matches('-')));
            let st = Command::new("gcc")
                .args(["-g", opt, "-o"])
                .arg(&out)
                .arg(&src)
                .status()
                .expect("run gcc");
            assert!(st.success(), "gcc {opt} failed");
            out
        };
        (build("-O0"), build("-O2"))
    })
}

/// Line number of the first line of the fixture containing `text`.
fn line_of(text: &str) -> usize {
    let src = include_str!("../fixtures/src/dwarf_live.c");
    src.lines()
        .position(|l| l.contains(text))
        .unwrap_or_else(|| panic!("no line with {text:?}"))
        + 1
}

/// The suite: (optimised build?, spec without GROUP:EVENT=).
fn specs() -> Vec<(bool, String)> {
    let sums = line_of("sink = total; /* after the sums */");
    let twice = line_of("sink = r; /* in twice */");
    let cases: Vec<(bool, String)> = vec![
        // parameters and locals at the entry (prologue skipped at -O0)
        (false, "handle it tag k".into()),
        (false, "handle $params".into()),
        (false, "handle $vars".into()),
        (false, "handle it->id it->name:string".into()),
        (false, "handle tag:string k:x32".into()),
        (false, "check_flags f v".into()),
        (false, "use_twice a b".into()),
        (true, "handle it tag k".into()),
        (true, "handle $params".into()),
        (true, "check_flags f v".into()),
        // chains: -> and . through nested structs, arrays, pointers to pointers
        (false, "handle it->pos.x it->pos.y".into()),
        (false, "handle it->where->y".into()),
        (false, "handle s3=it->scores[3] s0=it->scores[0]".into()),
        (false, "handle it->peers[0]->id".into()),
        (false, "handle it->peers[0]->name:string".into()),
        (false, "handle it->label:string".into()),
        (false, "handle it->fl.d it->val.i".into()),
        (false, "check_flags v->i v->bytes[1]".into()),
        (
            true,
            "handle it->name:string tag:string it->pos.x it->where->y it->peers[0]->id".into(),
        ),
        (true, "handle it->scores[2] it->label:string".into()),
        // FUNC:RLN, FUNC@FILE, FILE:LINE and @FILE:LINE: locals at a line
        (false, "handle:4 it total".into()),
        (false, "handle:2 total".into()),
        (false, "handle:3 doubled k".into()),
        (false, "handle@dwarf_live.c it->id".into()),
        (false, format!("dwarf_live.c:{sums} total doubled")),
        (false, format!("@dwarf_live.c:{sums} total")),
        (true, "handle:5 total it".into()),
        (true, format!("dwarf_live.c:{sums} total")),
        // an always_inline function: every inlined instance is a probe point
        (false, "twice v".into()),
        (true, "twice v".into()),
        (true, "twice:3 r".into()),
        (false, format!("dwarf_live.c:{twice} r v")),
        // ;PATTERN: source lines matching a glob (whitespace ignored), in a function or a file
        (false, "handle;sink=total* total".into()),
        (true, "handle;total+=* total".into()),
        (false, "use_twice;return* a".into()),
        (false, "dwarf_live.c;sink=r;* r".into()),
        (true, "dwarf_live.c;sink=r;* r".into()),
        // return probes
        (false, "handle%return $retval".into()),
        (true, "check_flags%return $retval".into()),
        // +OFFS: the location at that address
        (true, "handle+4 it".into()),
    ];
    cases
}

fn perf_lines(
    bin: &Path,
    grp: &str,
    event: &str,
    spec: &str,
    home: &Path,
) -> Result<String, String> {
    let full = format!("{grp}:{event}={spec}");
    let script = format!(
        "perf probe -q -x \"$0\" \"$1\" || exit 1; grep -E '^[pr]:{grp}/{event}(__return)? ' \
         /sys/kernel/tracing/uprobe_events; perf probe -q -d '{grp}:*' > /dev/null"
    );
    let _lock = common::kernel_lock();
    let out = Command::new("sh")
        .args(["-c", &script])
        .arg(bin)
        .arg(&full)
        .env("HOME", home)
        .output()
        .map_err(|e| format!("run perf: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
    if !out.status.success() || text.is_empty() {
        return Err(format!(
            "perf probe -x {} '{full}' failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(text)
}

#[test]
fn dwarf_lines_equal_perfs() {
    if !live_or_skip("dwarf_lines_equal_perfs", Needs::TracefsAndPerf) {
        return;
    }
    let _l = tracefs_lock();
    let (o0, o2) = binaries();
    let grp = group("dw");
    let home = tempfile::tempdir().expect("tempdir");
    let mut guard = EventGuard::with_perf(home.path());
    guard.own_group(&grp);
    let specs = specs();
    assert!(specs.len() >= 30);
    let mut failures = Vec::new();
    for (i, (opt, spec)) in specs.iter().enumerate() {
        let bin = if *opt { o2 } else { o0 };
        let event = format!("e{i}");
        let want = match perf_lines(bin, &grp, &event, spec, home.path()) {
            Ok(w) => w,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let full = format!("{grp}:{event}={spec}");
        let out = common::rprobe(&["add", "-x", &bin.to_string_lossy(), "--dry-run", &full]);
        let got = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
        if !out.status.success() || got != want {
            failures.push(format!(
                "{} {spec}:\n  perf:   {}\n  rprobe: {}\n{}",
                if *opt { "-O2" } else { "-O0" },
                want.replace('\n', "\n          "),
                got.replace('\n', "\n          "),
                if out.status.success() {
                    String::new()
                } else {
                    show_output(&out)
                }
            ));
        }
    }
    guard.delete_all();
    assert!(
        failures.is_empty(),
        "{} of {} specs differ:\n{}",
        failures.len(),
        specs.len(),
        failures.join("\n")
    );
}

#[test]
fn live_values_from_dwarf_names() {
    if !live_or_skip("live_values_from_dwarf_names", Needs::Tracefs) {
        return;
    }
    let _l = tracefs_lock();
    let (o0, o2) = binaries();
    let grp = group("dwlive");
    let mut guard = EventGuard::new();
    guard.own_group(&grp);
    let sums = line_of("sink = total; /* after the sums */");
    let probes: Vec<(&Path, String, String)> = vec![
        // bitfields, a union and an array element: perf 6.1 refuses these bitfields
        (
            o0,
            "flags0".into(),
            "check_flags f->a f->b f->c f->d f->e v->i v->bytes[1]".into(),
        ),
        (
            o2,
            "flags2".into(),
            "check_flags f->a f->b f->c f->d f->e v->i".into(),
        ),
        // nested struct, pointer, pointer to pointer, strings, array
        (
            o0,
            "handle0".into(),
            "handle it->id it->pos.y it->where->x peer=it->peers[0]->id it->name:string \
             tag:string k it->scores[3]"
                .into(),
        ),
        // (at -O2, only what handle reads is surely stored: gcc sees the rest is unused)
        (
            o2,
            "handle2".into(),
            "handle it->id s3=it->scores[3] wy=it->where->y k tag:string".into(),
        ),
        // a local at a line
        (
            o0,
            "line0".into(),
            format!("dwarf_live.c:{sums} total doubled"),
        ),
        (o0, "ret0".into(), "handle%return $retval:s64".into()),
    ];
    let mut inst = Instance::create(&grp);
    for (bin, event, spec) in &probes {
        let full = format!("{grp}:{event}={spec}");
        let out = common::rprobe(&["add", "-x", &bin.to_string_lossy(), &full]);
        assert!(
            out.status.success(),
            "rprobe add {full}\n{}",
            show_output(&out)
        );
        let ev = if spec.contains("%return") {
            format!("{event}__return")
        } else {
            event.clone()
        };
        inst.enable(&grp, &ev);
    }
    for bin in [o0, o2] {
        let st = Command::new(bin).status().expect("run fixture");
        assert!(st.success());
    }
    let recs = parse_trace(&inst.trace());
    inst.disable_all();
    drop(inst);
    guard.delete_all();
    let one = |event: &str| {
        let r: Vec<_> = recs.iter().filter(|r| r.event == event).collect();
        assert_eq!(r.len(), 1, "{event}: one hit expected, trace: {recs:?}");
        r[0].clone()
    };
    for ev in ["flags0", "flags2"] {
        let r = one(ev);
        assert_eq!(r.int("a"), Some(5), "{ev} {r:?}");
        assert_eq!(r.int("b"), Some(17), "{ev} {r:?}");
        // c is a signed 7-bit field holding -9; the kernel prints the raw bits, 0x77.
        assert_eq!(
            r.int("c").map(|c| c & 0x7f),
            Some(-9i128 & 0x7f),
            "{ev} {r:?}"
        );
        assert_eq!(r.int("d"), Some(200), "{ev} {r:?}");
        assert_eq!(r.int("e"), Some(0x1_2345_6789), "{ev} {r:?}");
        assert_eq!(r.int("i"), Some(0x4142_4344), "{ev} {r:?}");
    }
    assert_eq!(one("flags0").int("bytes"), Some(0x43));
    let h = one("handle0");
    for (arg, want) in [("id", 7), ("y", 4), ("x", 11), ("k", 3), ("scores", 4)] {
        assert_eq!(h.int(arg), Some(want), "handle0 {arg}: {h:?}");
    }
    assert_eq!(h.int("peer"), Some(99), "{h:?}");
    assert_eq!(h.arg("name").as_deref(), Some("\"widget\""), "{h:?}");
    assert_eq!(h.arg("tag_string").as_deref(), Some("\"tagged\""), "{h:?}");
    let h2 = one("handle2");
    assert_eq!(h2.int("id"), Some(7), "{h2:?}");
    assert_eq!(h2.int("s3"), Some(4), "{h2:?}");
    assert_eq!(h2.int("wy"), Some(22), "{h2:?}");
    assert_eq!(h2.int("k"), Some(3), "{h2:?}");
    assert_eq!(
        h2.arg("tag_string").as_deref(),
        Some("\"tagged\""),
        "{h2:?}"
    );
    let l = one("line0");
    // At `sink = total;`: total = id + scores[0] + scores[3] + pos.x + where->y = 7+1+4+3+22.
    assert_eq!(l.int("total"), Some(37), "{l:?}");
    assert_eq!(l.int("doubled"), Some(6), "{l:?}");
    // handle returns total + fl.b = 37 + 17.
    assert_eq!(one("ret0__return").int("arg1"), Some(54));
}

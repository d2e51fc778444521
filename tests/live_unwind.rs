//! `--call-graph dwarf` end to end, on a CPU-bound -O2 fixture whose functions keep no frame
//! pointer (`fixtures/src/cpu_chain.c`: main -> outer -> middle -> leaf):
//!
//! - `rprobe record -F 999 --call-graph dwarf` then `rprobe flamegraph --folded` puts at
//!   least 80% of the fixture's samples on the whole chain from `main` down to `leaf` (and
//!   the test prints what `-g` finds on the same fixture);
//! - the file is at most a quarter of perf's `--call-graph dwarf` file for the same workload,
//!   and `perf script` unwinds it to the same frames as `rprobe script`;
//! - `rprobe script` on perf's own `--call-graph dwarf` file is byte-identical to
//!   `perf script` on it (inline frames of libc's debug file included), and its folded
//!   stacks equal inferno-collapse-perf's of perf's text.
//!
//! Records with perf and rprobe: run under the machine-wide lock,
//! `flock /tmp/rprobe-kernel.lock cargo test --test live_unwind`.

mod common;

use inferno::collapse::perf::{Folder, Options};
use inferno::collapse::Collapse;
use std::path::{Path, PathBuf};
use std::process::Command;

const TEST: &str = "live_unwind::dwarf_stacks_of_a_program_without_frame_pointers";

/// The fixture's folded stacks: (total count, count on main;outer;middle;leaf).
fn chain_share(folded: &str) -> (u64, u64) {
    let (mut total, mut full) = (0, 0);
    for line in folded.lines().filter(|l| l.starts_with("cpu_chain;")) {
        let Some((stack, count)) = line.rsplit_once(' ') else {
            continue;
        };
        let n: u64 = count.parse().expect("folded count");
        total += n;
        if stack.ends_with(";main;outer;middle;leaf") {
            full += n;
        }
    }
    (total, full)
}

fn rprobe_ok(args: &[&str], home: &Path) -> String {
    let out = Command::new(common::rprobe_bin())
        .args(args)
        .env("HOME", home)
        .output()
        .expect("run rprobe");
    assert!(
        out.status.success(),
        "{}\n{}",
        common::show_cmd("rprobe", args),
        common::show_output(&out)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn perf_ok(home: &Path, args: &[&str]) -> String {
    let out = common::perf(home).args(args).output().expect("run perf");
    assert!(
        out.status.success(),
        "{}\n{}",
        common::show_cmd("perf", args),
        common::show_output(&out)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// `fixtures/src/cpu_chain.c` built -O2 (no frame pointers) in its own directory `name`
/// under the run's fixtures: (the directory, the binary).
fn cpu_chain(fx: &common::Fixtures, name: &str) -> (PathBuf, PathBuf) {
    let dir = fx.dir.join(name);
    std::fs::create_dir_all(&dir).expect("dir");
    let bin = common::build_c_fixture("cpu_chain.c", &["-O2", "-Wall"], &dir.join("cpu_chain"));
    (dir, bin)
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).expect("stat").len()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `leaf` keeps no frame pointer: no `push %rbp` in its code (gcc's -O2 default).
fn assert_no_frame_pointer(bin: &Path) {
    let out = Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(bin)
        .output()
        .expect("objdump");
    let text = String::from_utf8_lossy(&out.stdout);
    let leaf: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.ends_with("<leaf>:"))
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(leaf.len() > 3, "no leaf in objdump -d of {}", bin.display());
    assert!(
        !leaf
            .iter()
            .any(|l| l.contains("push") && l.contains("%rbp")),
        "leaf sets up a frame pointer:\n{}",
        leaf.join("\n")
    );
}

#[test]
fn dwarf_stacks_of_a_program_without_frame_pointers() {
    if !common::live_or_skip(TEST, common::Needs::TracefsAndPerf) {
        return;
    }
    let fx = common::fixtures();
    let home = &fx.perf_home;
    let (dir, bin) = cpu_chain(fx, "live_unwind");
    assert_no_frame_pointer(&bin);
    let ms = "600";
    let data = |n: &str| -> PathBuf { dir.join(n) };

    // rprobe --call-graph dwarf.
    let rdata = data("rprobe.dwarf.data");
    rprobe_ok(
        &[
            "record",
            "-q",
            "-F",
            "999",
            "--call-graph",
            "dwarf",
            "-o",
            s(&rdata),
            "--",
            s(&bin),
            ms,
        ],
        home,
    );
    let folded = rprobe_ok(&["flamegraph", "--folded", "-i", s(&rdata)], home);
    let (total, full) = chain_share(&folded);
    assert!(total > 0, "no samples of cpu_chain:\n{folded}");

    // The same with -g (frame pointers) for comparison.
    let gdata = data("rprobe.fp.data");
    rprobe_ok(
        &[
            "record",
            "-q",
            "-F",
            "999",
            "-g",
            "-o",
            s(&gdata),
            "--",
            s(&bin),
            ms,
        ],
        home,
    );
    let gfolded = rprobe_ok(&["flamegraph", "--folded", "-i", s(&gdata)], home);
    let (gtotal, gfull) = chain_share(&gfolded);

    // perf --call-graph dwarf on the same workload.
    let pdata = data("perf.dwarf.data");
    perf_ok(
        home,
        &[
            "record",
            "-q",
            "-F",
            "999",
            "--call-graph",
            "dwarf",
            "-o",
            s(&pdata),
            "--",
            s(&bin),
            ms,
        ],
    );
    let (rsize, psize) = (size(&rdata), size(&pdata));
    eprintln!(
        "live_unwind: dwarf: {full} of {total} ({:.1}%) on main;outer;middle;leaf; -g: {gfull} of {gtotal} ({:.1}%); file sizes: rprobe {rsize} B, perf {psize} B ({:.1}x smaller)",
        full as f64 * 100.0 / total as f64,
        gfull as f64 * 100.0 / gtotal.max(1) as f64,
        psize as f64 / rsize as f64
    );
    assert!(
        full * 10 >= total * 8,
        "only {full} of {total} on the full chain:\n{folded}"
    );
    assert!(
        rsize * 4 <= psize,
        "rprobe's file ({rsize} B) is more than a quarter of perf's ({psize} B)"
    );

    // perf reads and unwinds rprobe's file to the frames rprobe gives (addresses and DSOs;
    // inline lines of libc's debug file included).
    let fields = ["-F", "tid,time,ip,dso"];
    let mut args = vec!["script", "-i", s(&rdata)];
    args.extend(fields);
    let perf_view = perf_ok(home, &args);
    let rprobe_view = rprobe_ok(&args, home);
    assert!(perf_view.lines().count() > 100, "{perf_view}");
    assert_eq!(
        rprobe_view, perf_view,
        "perf script and rprobe script differ on rprobe's dwarf file"
    );

    // Golden: rprobe script on perf's dwarf file is perf script's text, byte for byte, and
    // its folded stacks are inferno-collapse-perf's of that text (inline frames included).
    let want = perf_ok(home, &["script", "-i", s(&pdata)]);
    let mut inferno = Vec::new();
    Folder::from(Options::default())
        .collapse(want.as_bytes(), &mut inferno)
        .expect("inferno collapse");
    let folded_perf = rprobe_ok(&["flamegraph", "--folded", "-i", s(&pdata)], home);
    assert_eq!(
        folded_perf,
        String::from_utf8(inferno).expect("utf-8"),
        "rprobe flamegraph --folded differs from inferno-collapse-perf on perf's dwarf file"
    );
    if want.contains(" __libc_start_main_impl+") {
        // libc6-dbg is installed: the inlined frame shows in the flame graph too.
        assert!(
            folded_perf.contains(";__libc_start_main_impl;"),
            "{folded_perf}"
        );
    }
    let got = rprobe_ok(&["script", "-i", s(&pdata)], home);
    assert!(want.contains(" main+0x"), "{want}");
    if got != want {
        let first = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "rprobe script differs from perf script at line {}:\nrprobe: {:?}\nperf:   {:?}",
            first + 1,
            got.lines().nth(first),
            want.lines().nth(first)
        );
    }
}

#[test]
fn bad_call_graph_modes_are_refused_before_anything_runs() {
    let out = common::rprobe(&[
        "record",
        "--call-graph",
        "dwarf,70000",
        "-o",
        "/nonexistent/x.data",
        "--",
        "true",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dwarf,70000") && err.contains("65528"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = common::rprobe(&["record", "--call-graph", "lbr", "--", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("unknown mode 'lbr'"),
        "{err}"
    );
}

#[test]
fn trace_streams_dwarf_stacks_of_a_uprobe() {
    if !common::live_or_skip(
        "live_unwind::trace_streams_dwarf_stacks_of_a_uprobe",
        common::Needs::Tracefs,
    ) {
        return;
    }
    let fx = common::fixtures();
    let (_, bin) = cpu_chain(fx, "live_unwind_trace");
    let text = rprobe_ok(
        &[
            "trace",
            "-x",
            s(&bin),
            "leaf",
            "--call-graph",
            "dwarf",
            "--",
            s(&bin),
            "30",
        ],
        &fx.perf_home,
    );
    // One stanza per hit of leaf: its frames, leaf first, each `ADDR SYM+OFF (DSO)`.
    let stanzas: Vec<Vec<&str>> = text
        .split("\n\n")
        .filter(|b| b.contains(":leaf: "))
        .map(|b| {
            b.lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().nth(1))
                .map(|sym| sym.split('+').next().unwrap_or(sym))
                .collect()
        })
        .collect();
    assert!(stanzas.len() >= 10, "{} hits:\n{text}", stanzas.len());
    for st in &stanzas {
        assert_eq!(
            st.get(..4),
            Some(&["leaf", "middle", "outer", "main"][..]),
            "{text}"
        );
        assert_eq!(st.last(), Some(&"_start"), "{text}");
    }
}

#[test]
fn stat_counts_dwarf_stacks_of_a_uprobe() {
    if !common::live_or_skip(
        "live_unwind::stat_counts_dwarf_stacks_of_a_uprobe",
        common::Needs::Tracefs,
    ) {
        return;
    }
    let fx = common::fixtures();
    let (_, bin) = cpu_chain(fx, "live_unwind_stat");
    let stat = |mode: &[&str]| {
        let mut args = vec!["stat", "-x", s(&bin), "leaf", "--count", "stack"];
        args.extend_from_slice(mode);
        args.extend_from_slice(&["--", s(&bin), "30"]);
        rprobe_ok(&args, &fx.perf_home)
    };
    // Every key is a whole stack, root first; with DWARF every counted hit of leaf has
    // main -> outer -> middle -> leaf under it, while frame pointers lose the callers of
    // the -O2 leaf.
    let full = |text: &str| {
        let (mut all, mut whole) = (0u64, 0u64);
        // `   COUNT  stack` rows: `      48  _start;...;main;outer;middle;leaf`.
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(n), Some(stack), None) = (words.next(), words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            all += n;
            if stack.contains(";main;outer;middle;leaf") && stack.ends_with(";leaf") {
                whole += n;
            }
        }
        (all, whole)
    };
    let dwarf = stat(&["--call-graph", "dwarf"]);
    let (all, whole) = full(&dwarf);
    assert!(
        all >= 10 && whole == all,
        "{whole} of {all} whole:\n{dwarf}"
    );
    let fp = stat(&[]);
    let (all, whole) = full(&fp);
    eprintln!("live_unwind: stat --count stack with frame pointers: {whole} of {all} hits whole");
    assert!(all >= 10 && whole < all, "{whole} of {all} whole:\n{fp}");
}

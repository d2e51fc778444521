//! `rprobe flamegraph --folded` against `perf script | inferno-collapse-perf` (inferno's own
//! collapser, run in-process on perf 6.1's text) on files perf records here: a CPU-bound
//! fixture, and the whole system with kernel frames, libraries and unknown frames. And the
//! SVG: the fixture's hot functions are its widest frames.

mod common;

use inferno::collapse::perf::{Folder, Options};
use inferno::collapse::Collapse;
use std::path::{Path, PathBuf};

fn fixture(dir: &Path) -> PathBuf {
    common::build_c_fixture(
        "cpu_chain.c",
        &[
            "-O2",
            "-fno-omit-frame-pointer",
            "-Wall",
            "-Wextra",
            "-Werror",
        ],
        &dir.join("cpu_chain_fp"),
    )
}

fn perf_record(home: &Path, data: &Path, args: &[&str], cmd: &[&str]) {
    let out = common::perf(home)
        .args(["record", "-q", "-o"])
        .arg(data)
        .args(args)
        .arg("--")
        .args(cmd)
        .output()
        .expect("perf record");
    assert!(out.status.success(), "{}", common::show_output(&out));
}

/// inferno-collapse-perf of `perf script -i data`.
fn inferno_folded(home: &Path, data: &Path) -> String {
    let out = common::perf(home)
        .arg("script")
        .arg("-i")
        .arg(data)
        .output()
        .expect("perf script");
    assert!(out.status.success(), "{}", common::show_output(&out));
    let mut folded = Vec::new();
    Folder::from(Options::default())
        .collapse(&out.stdout[..], &mut folded)
        .expect("inferno collapse");
    String::from_utf8(folded).expect("utf-8")
}

fn rprobe_folded(data: &Path) -> String {
    let out = common::rprobe(&[
        "flamegraph",
        "--folded",
        "-i",
        data.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", common::show_output(&out));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn assert_same(want: &str, got: &str, what: &str) {
    if want != got {
        let w: Vec<&str> = want.lines().collect();
        let g: Vec<&str> = got.lines().collect();
        let only_w: Vec<&&str> = w.iter().filter(|l| !g.contains(l)).take(10).collect();
        let only_g: Vec<&&str> = g.iter().filter(|l| !w.contains(l)).take(10).collect();
        panic!(
            "{what}: folded stacks differ ({} vs {} lines)\n  only inferno's: {only_w:#?}\n  only rprobe's: {only_g:#?}",
            w.len(),
            g.len()
        );
    }
}

#[test]
fn folded_stacks_equal_inferno_and_the_svg_shows_the_hot_path() {
    if !common::live_or_skip(
        "golden_flame::folded_stacks_equal_inferno_and_the_svg_shows_the_hot_path",
        common::Needs::TracefsAndPerf,
    ) {
        return;
    }
    let fx = common::fixtures();
    let dir = fx.dir.join("flame");
    std::fs::create_dir_all(&dir).expect("dir");
    let bin = fixture(&dir);
    let bin_s = bin.to_str().expect("utf-8");

    // The fixture alone, cpu-clock with frame-pointer callchains.
    let one = dir.join("fixture.data");
    perf_record(&fx.perf_home, &one, &["-F", "999", "-g"], &[bin_s, "400"]);
    let got = rprobe_folded(&one);
    assert_same(&inferno_folded(&fx.perf_home, &one), &got, "fixture");
    let total: u64 = got
        .lines()
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum();
    let hot: u64 = got
        .lines()
        .filter(|l| l.contains(";main;outer;") && l.contains("leaf "))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum();
    assert!(
        hot * 10 >= total * 8,
        "leaf under main;outer holds {hot} of {total}:\n{got}"
    );

    // The whole system while the fixture and a file walk run: kernel frames, libraries,
    // idle CPUs, unknown frames. Compared for the fixture and the idle task: other programs
    // (C++ and Rust compilers, binaries whose PLT lies under a stretched `_init`) carry names
    // rprobe does not make as perf does yet — libiberty's demangling, perf's rb-tree choice
    // between overlapping symbols (see the README, "PLT stubs" and "Flame graphs").
    let all = dir.join("system.data");
    let walk = format!("{bin_s} 300 & ls -R /usr/lib > /dev/null; wait");
    perf_record(
        &fx.perf_home,
        &all,
        &["-a", "-F", "999", "-g"],
        &["sh", "-c", &walk],
    );
    let ours = |text: &str| -> String {
        text.lines()
            .filter(|l| {
                ["cpu_chain_fp;", "swapper;"]
                    .iter()
                    .any(|c| l.starts_with(c))
            })
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let want = ours(&inferno_folded(&fx.perf_home, &all));
    assert!(
        want.lines().any(|l| l.contains(";main;outer;")),
        "the fixture's stacks are missing:\n{want}"
    );
    assert_same(&want, &ours(&rprobe_folded(&all)), "system-wide");

    // The SVG names the hot path with the largest share.
    let svg = dir.join("flame.svg");
    let out = common::rprobe(&[
        "flamegraph",
        "-i",
        one.to_str().expect("utf-8"),
        "-o",
        svg.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", common::show_output(&out));
    let text = std::fs::read_to_string(&svg).expect("svg");
    assert!(text.starts_with("<?xml"), "not an SVG");
    // <title>leaf (399,000,000 samples, 98.75%)</title>
    let share = |func: &str| -> f64 {
        let at = text
            .find(&format!("<title>{func} ("))
            .unwrap_or_else(|| panic!("no frame {func} in the SVG"));
        let t = &text[at..];
        let pct = &t[t.find(", ").expect("share") + 2..t.find("%)").expect("%")];
        pct.parse().expect("percentage")
    };
    assert!(share("leaf") >= 80.0, "leaf {}%", share("leaf"));
    assert!(share("main") >= share("leaf"));
}

/// The entry lines (`  100.00%   100.00%  comm  dso  [.] sym`) of a report, trimmed, sorted.
fn report_entries(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .filter(|l| {
            l.trim_start()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    v.sort();
    v
}

#[test]
fn report_entries_equal_perf_report() {
    if !common::live_or_skip(
        "golden_flame::report_entries_equal_perf_report",
        common::Needs::TracefsAndPerf,
    ) {
        return;
    }
    let fx = common::fixtures();
    let dir = fx.dir.join("report");
    std::fs::create_dir_all(&dir).expect("dir");
    let bin = fixture(&dir);
    let data = dir.join("report.data");
    perf_record(
        &fx.perf_home,
        &data,
        &["-F", "999", "-g"],
        &[bin.to_str().expect("utf-8"), "300"],
    );
    let d = data.to_str().expect("utf-8");
    for extra in [&[][..], &["--no-children"][..], &["--sort", "dso,sym"][..]] {
        let perf = common::perf(&fx.perf_home)
            .args(["report", "--stdio", "-i", d])
            .args(extra)
            .output()
            .expect("perf report");
        assert!(perf.status.success(), "{}", common::show_output(&perf));
        let mut args = vec!["report", "-i", d];
        args.extend(extra);
        let ours = common::rprobe(&args);
        assert!(ours.status.success(), "{}", common::show_output(&ours));
        let want = report_entries(&String::from_utf8_lossy(&perf.stdout));
        assert!(!want.is_empty(), "perf report printed no entries");
        assert_eq!(
            report_entries(&String::from_utf8_lossy(&ours.stdout)),
            want,
            "rprobe report {extra:?}"
        );
    }
}

//! `rprobe script` and `rprobe flamegraph --folded` on perf 6.1's own `--call-graph dwarf`
//! recording of a Rust release binary (`fixtures/src/rust_work.rs`, `rustc -O -g`):
//! byte-identical to `perf script` (inline frames named as perf names them: demangled Rust v0
//! and legacy names, the whole DWARF inline chain, the outermost function as the symbol with
//! its DSO; user frames unwound as perf's libunwind unwinds them), and folded stacks equal to
//! inferno-collapse-perf's of perf's text.
//!
//! The fixture is linked by the system linker (GNU ld): rustc 1.90+ links with its bundled lld
//! by default, whose layout (`.text` at a different address-minus-offset than `.eh_frame_hdr`)
//! perf 6.1's libunwind path looks the unwind table up wrongly in, so perf itself unwinds such
//! binaries to wrong or garbage frames (see README, "DWARF unwinding").
//!
//! Records with perf under the machine-wide kernel lock (taken here, or held by a caller).

mod common;

use inferno::collapse::perf::{Folder, Options};
use inferno::collapse::Collapse;
use std::path::{Path, PathBuf};
use std::process::Command;

const TEST: &str = "golden_rust::rust_dwarf_script_and_folded_equal_perfs";

/// `fixtures/src/rust_work.rs` built `rustc -O -g` and linked by `cc` with GNU ld (falling
/// back to rustc's default linker for a rustc without the linker-feature flags).
fn build(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/src/rust_work.rs");
    let out = dir.join("rust_work");
    let run = |extra: &[&str]| {
        Command::new("rustc")
            .args(["-O", "-g", "--edition", "2021"])
            .args(extra)
            .arg("-o")
            .arg(&out)
            .arg(&src)
            .output()
            .expect("run rustc")
    };
    let o = run(&[
        "-C",
        "linker-features=-lld",
        "-C",
        "link-self-contained=-linker",
    ]);
    if !o.status.success() {
        let o = run(&[]);
        assert!(o.status.success(), "rustc: {}", common::show_output(&o));
    }
    out
}

fn perf_ok(home: &Path, args: &[&str]) -> Vec<u8> {
    let out = common::perf(home).args(args).output().expect("run perf");
    assert!(
        out.status.success(),
        "{}\n{}",
        common::show_cmd("perf", args),
        common::show_output(&out)
    );
    out.stdout
}

fn rprobe_ok(args: &[&str]) -> Vec<u8> {
    let out = common::rprobe(args);
    assert!(
        out.status.success(),
        "{}\n{}",
        common::show_cmd("rprobe", args),
        common::show_output(&out)
    );
    out.stdout
}

/// Samples perf ends at a user frame in code without unwind information or symbol (a
/// library's `_init` in `.init`, run by `ld.so`'s `call_init`, has no FDE): libunwind then
/// guesses a frame-pointer frame and gives up when `rbp` does not look like one, while
/// framehop returns through `[sp]`. The one known difference left (README, "DWARF
/// unwinding"): perf's sample must be a prefix of rprobe's.
fn known_difference(perf: &str, ours: &str) -> bool {
    perf.lines()
        .last()
        .is_some_and(|l| l.contains(" [unknown] (/") && !l.contains("ffffffffffffffff"))
        && ours.starts_with(perf)
}

/// The samples of `want` and `got` that differ other than by [`known_difference`], with the
/// first of them, and how many differ by it.
fn compare(want: &str, got: &str) -> (Vec<String>, usize) {
    let (w, g): (Vec<&str>, Vec<&str>) =
        (want.split("\n\n").collect(), got.split("\n\n").collect());
    let mut bad = Vec::new();
    let mut known = 0;
    for i in 0..w.len().max(g.len()) {
        let (a, b) = (
            w.get(i).copied().unwrap_or(""),
            g.get(i).copied().unwrap_or(""),
        );
        if a == b {
            continue;
        }
        if known_difference(a, b) {
            known += 1;
        } else {
            bad.push(format!("--- perf script\n{a}\n--- rprobe script\n{b}"));
        }
    }
    (bad, known)
}

#[test]
fn rust_dwarf_script_and_folded_equal_perfs() {
    if !common::live_or_skip(TEST, common::Needs::TracefsAndPerf) {
        return;
    }
    let fx = common::fixtures();
    let home = &fx.perf_home;
    let dir = fx.dir.join("golden_rust");
    std::fs::create_dir_all(&dir).expect("dir");
    let bin = build(&dir);
    let data = dir.join("perf.rust.dwarf.data");
    let data_s = data.to_str().expect("utf-8 path");
    {
        let _lock = common::kernel_lock();
        perf_ok(
            home,
            &[
                "record",
                "-q",
                "-F",
                "2000",
                "--call-graph",
                "dwarf,16384",
                "-o",
                data_s,
                "--",
                bin.to_str().expect("utf-8 path"),
                "300",
            ],
        );
    }
    let want = String::from_utf8(perf_ok(home, &["script", "-i", data_s])).expect("utf-8");
    let got = String::from_utf8(rprobe_ok(&["script", "-i", data_s])).expect("utf-8");
    // The recording exercises what the comparison is about.
    assert!(
        want.matches("rust_work ").count() >= 100,
        "few samples:\n{want}"
    );
    for must in [
        "(inlined)",
        "std::rt::lang_start_internal",
        "{closure#0}",
        "rust_work::make_words",
        "__libc_start_call_main",
    ] {
        assert!(want.contains(must), "perf script shows no {must:?}");
    }
    let (bad, known) = compare(&want, &got);
    let samples = want.split("\n\n").count();
    assert!(
        bad.is_empty(),
        "{} of {samples} samples differ; first:\n{}",
        bad.len(),
        bad[0]
    );
    assert!(
        known * 50 <= samples,
        "{known} of {samples} samples end in code without unwind information"
    );

    // inferno on perf's text (on rprobe's when samples differ only as known_difference says:
    // the line-by-line comparison above pins everything else to perf's).
    let text = if known == 0 { &want } else { &got };
    let mut folded = Vec::new();
    Folder::from(Options::default())
        .collapse(text.as_bytes(), &mut folded)
        .expect("inferno collapse");
    let folded = String::from_utf8(folded).expect("utf-8");
    let ours =
        String::from_utf8(rprobe_ok(&["flamegraph", "--folded", "-i", data_s])).expect("utf-8");
    assert!(!folded.is_empty());
    assert_eq!(
        folded, ours,
        "folded stacks differ from inferno-collapse-perf's"
    );
}

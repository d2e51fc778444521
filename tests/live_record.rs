//! Live `rprobe record` tests on this machine's kernel (root): perf.data files that `perf
//! script` and `perf report` 6.1 read without a warning, with exact sample counts and argument
//! values from the fixture (`probe_args N` calls `work` 3N times with known arguments), comm
//! names, kernel symbols and user frames with their DSOs; a SIGKILLed recorder's file; and
//! bad input that fails with a clear message and leaves nothing behind.
//!
//! Run under the machine-wide kernel lock: `flock /tmp/rprobe-kernel.lock cargo test --test
//! live_record`. Probes live in a group private to the test process and are removed by a drop
//! guard.

mod common;

use common::{
    fixtures, group, live_or_skip, rprobe, show_output, tracefs_lock, EventGuard, Needs, Snapshot,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A scratch directory for one test's files.
fn scratch(tag: &str) -> tempfile::TempDir {
    let dir = fixtures().dir.join("record");
    std::fs::create_dir_all(&dir).expect("mkdir");
    tempfile::Builder::new()
        .prefix(tag)
        .tempdir_in(dir)
        .expect("tempdir")
}

fn record(args: &[&str]) -> Output {
    let out = rprobe(&[&["record"], args].concat());
    assert!(
        out.status.success(),
        "rprobe record {args:?} failed:\n{}",
        show_output(&out)
    );
    out
}

/// `[ rprobe record: Captured and wrote 0.420 MB up.data (3000 samples, lost 0) ]` ->
/// (samples, lost).
fn summary(out: &Output) -> (u64, u64) {
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("[ rprobe record: Captured and wrote "))
        .unwrap_or_else(|| panic!("no summary line:\n{err}"));
    let (_, rest) = line.split_once(" MB ").expect("MB");
    let (_, counts) = rest.split_once(" (").expect("(");
    let (samples, rest) = counts.split_once(" samples, lost ").expect("samples");
    let lost = rest.trim_end_matches(") ]");
    assert!(line.ends_with(") ]"), "{line}");
    (
        samples.parse().expect("samples"),
        lost.parse().expect("lost"),
    )
}

/// `perf ARGS -i FILE` with stdout returned; stderr must be empty (no warnings).
fn perf_clean(file: &Path, args: &[&str]) -> String {
    let out = common::perf(&fixtures().perf_home)
        .args(args)
        .arg("-i")
        .arg(file)
        .output()
        .expect("run perf");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "perf {args:?} -i {} warned or failed:\n{}",
        file.display(),
        show_output(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `perf report --stdio` of a file with losses: it must succeed; its stderr has perf's
/// "lost N chunks" warning, which is the point.
fn perf_report_with_losses(file: &Path) -> String {
    let out = common::perf(&fixtures().perf_home)
        .args(["report", "--stdio", "-i"])
        .arg(file)
        .output()
        .expect("perf");
    assert!(out.status.success(), "{}", show_output(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A probe group of this test with `work` (string and numeric args) and `add6` on the O0
/// fixture; deleted on drop.
struct Probes {
    grp: String,
    _guard: EventGuard,
    before: Snapshot,
    test: String,
}

impl Probes {
    fn add(test: &str, tag: &str) -> Probes {
        let grp = group(tag);
        let mut guard = EventGuard::new();
        guard.own_group(&grp);
        let before = Snapshot::take();
        let bin = fixture_bin();
        for spec in [
            format!("{grp}:work=work id=%di:s32 len=%si:s64 name=+0(%dx):string"),
            format!("{grp}:add6=add6 a=%di:s64 f=%r9:s64"),
        ] {
            let out = rprobe(&["add", "-x", &bin, &spec]);
            assert!(
                out.status.success(),
                "rprobe add {spec}:\n{}",
                show_output(&out)
            );
        }
        Probes {
            grp,
            _guard: guard,
            before,
            test: test.to_string(),
        }
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        self._guard.delete_all();
        if !std::thread::panicking() {
            let g = self.grp.clone();
            self.before.assert_restored(&self.test, &|l| {
                common::line_event(l).is_some_and(|(x, _)| x == g)
            });
        }
    }
}

/// One live test: the gate, the in-process lock, its probes (if any) and a scratch dir.
struct Case {
    probes: Option<Probes>,
    dir: tempfile::TempDir,
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl Case {
    /// `None` (after printing SKIP) when the test cannot run here.
    fn start(name: &str, probe_tag: Option<&str>, dir_tag: &str) -> Option<Case> {
        let test = format!("live_record::{name}");
        if !live_or_skip(&test, Needs::TracefsAndPerf) {
            return None;
        }
        let lock = tracefs_lock();
        fixtures();
        Some(Case {
            probes: probe_tag.map(|tag| Probes::add(&test, tag)),
            dir: scratch(dir_tag),
            _lock: lock,
        })
    }

    /// `GROUP:EVENT` of one of the case's probes.
    fn event(&self, event: &str) -> String {
        let p = self.probes.as_ref().expect("a case with probes");
        format!("{}:{event}", p.grp)
    }

    /// A file in the case's scratch directory.
    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// The probed fixture (`probe_args`, -O0, PIE, frame pointers).
fn fixture_bin() -> String {
    fixtures().o0.to_string_lossy().into_owned()
}

#[test]
fn uprobe_samples_exact_count_and_values() {
    let Some(c) = Case::start("uprobe_samples_exact_count_and_values", Some("recup"), "up") else {
        return;
    };
    let file = c.file("up.data");
    let ev = c.event("work");
    let bin = fixture_bin();
    let out = record(&[
        "-e",
        &ev,
        "-g",
        "-o",
        file.to_str().expect("utf8"),
        "--",
        &bin,
        "500",
    ]);
    assert_eq!(summary(&out), (1500, 0));
    let meta = std::fs::metadata(&file).expect("file");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let text = perf_clean(&file, &["script"]);
    let heads: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&format!(" {ev}: ")))
        .collect();
    assert_eq!(heads.len(), 1500, "{text:.2000}");
    let want = [
        ("1", "100", "alpha"),
        ("2", "200", "beta"),
        ("3", "-300", "gamma"),
    ];
    for (i, line) in heads.iter().enumerate() {
        let (id, len, name) = want[i % 3];
        let args = format!("id={id} len={len} name=\"{name}\"");
        assert!(line.starts_with("probe_args "), "comm: {line}");
        assert!(line.ends_with(&args), "sample {i}: {line} (want {args})");
    }
    // User frames are symbolized with their DSO.
    assert!(text.contains(&format!(" work+0x0 ({bin})")), "{text:.1500}");
    assert!(
        text.contains(" main+0x") && text.contains("(/usr/lib/x86_64-linux-gnu/libc.so.6)"),
        "{text:.1500}"
    );
    let report = perf_clean(&file, &["report", "--stdio"]);
    assert!(report.contains("# Samples: 1K of event"), "{report:.1500}");
    assert!(report.contains("[.] work"), "{report:.1500}");
    let header = perf_clean(&file, &["report", "--header-only"]);
    for want in [
        "# hostname :",
        "# os release :",
        "# nrcpus online :",
        "# cmdline :",
        &format!("name = {ev}"),
    ] {
        assert!(header.contains(want), "header lacks {want}:\n{header}");
    }
    // The build id of the probed binary is in the file.
    let ids = perf_clean(&file, &["buildid-list"]);
    assert!(ids.contains(&bin), "{ids}");
}

#[test]
fn several_events_in_one_file_and_pid_mode() {
    let Some(c) = Case::start(
        "several_events_in_one_file_and_pid_mode",
        Some("recmix"),
        "mix",
    ) else {
        return;
    };
    let file = c.file("mix.data");
    let work = c.event("work");
    let add6 = c.event("add6");
    let bin = fixture_bin();
    let f = file.to_str().expect("utf8");
    let out = record(&[
        "-e",
        &work,
        "-e",
        &add6,
        "-e",
        "sched:sched_switch",
        "-e",
        "cpu-clock",
        "-g",
        "-o",
        f,
        "--",
        &bin,
        "100",
    ]);
    let (samples, lost) = summary(&out);
    assert_eq!(lost, 0);
    let text = perf_clean(&file, &["script"]);
    let count = |ev: &str| {
        text.lines()
            .filter(|l| l.contains(&format!(" {ev}: ")))
            .count()
    };
    assert_eq!(count(&work), 300);
    assert_eq!(count(&add6), 200);
    assert!(
        text.contains("add6: (") && text.contains(" a=1 f=6"),
        "{text:.1500}"
    );
    assert_eq!(
        samples as usize,
        count(&work) + count(&add6) + count("sched:sched_switch") + count("cpu-clock")
    );
    perf_clean(&file, &["report", "--stdio"]);

    // -p follows the children a shell forks after the recorder attached.
    let file = c.file("pid.data");
    let mut sh = Command::new("sh")
        .args(["-c", &format!("sleep 1; {bin} 10; {bin} 20")])
        .stdout(Stdio::null())
        .spawn()
        .expect("sh");
    let pid = sh.id().to_string();
    let out = record(&["-e", &work, "-p", &pid, "-o", file.to_str().expect("utf8")]);
    let _ = sh.wait();
    assert_eq!(summary(&out), (90, 0));
    let text = perf_clean(&file, &["script"]);
    assert_eq!(
        text.lines()
            .filter(|l| l.trim_start().starts_with("probe_args "))
            .count(),
        90,
        "{text:.1000}"
    );
}

#[test]
fn tid_mode_follows_the_threads_children() {
    let Some(c) = Case::start(
        "tid_mode_follows_the_threads_children",
        Some("rectid"),
        "tid",
    ) else {
        return;
    };
    let file = c.file("tid.data");
    let work = c.event("work");
    let bin = fixture_bin();
    let mut sh = Command::new("sh")
        .args(["-c", &format!("sleep 1; {bin} 7")])
        .stdout(Stdio::null())
        .spawn()
        .expect("sh");
    let tid = sh.id().to_string();
    let out = record(&["-e", &work, "-t", &tid, "-o", file.to_str().expect("utf8")]);
    let _ = sh.wait();
    assert_eq!(summary(&out), (21, 0));
    perf_clean(&file, &["report", "--stdio"]);
}

#[test]
fn filter_keeps_only_matching_hits_and_globs_expand() {
    let Some(c) = Case::start(
        "filter_keeps_only_matching_hits_and_globs_expand",
        Some("recflt"),
        "flt",
    ) else {
        return;
    };
    let file = c.file("flt.data");
    let work = c.event("work");
    let all = format!("{}:*", c.probes.as_ref().expect("probes").grp);
    let bin = fixture_bin();
    // The filter applies to the -e before it only: work keeps id == 2, add6 (from the glob)
    // keeps all of its hits.
    let f = file.to_str().expect("utf8");
    let out = record(&[
        "-e", &work, "--filter", "id == 2", "-e", &all, "-o", f, "--", &bin, "40",
    ]);
    assert_eq!(summary(&out), (40 + 80, 0));
    let text = perf_clean(&file, &["script"]);
    let works: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&format!(" {work}: ")))
        .collect();
    assert_eq!(works.len(), 40);
    assert!(works.iter().all(|l| l.contains(" id=2 ")), "{works:?}");
    assert_eq!(text.lines().filter(|l| l.contains(":add6: ")).count(), 80);
}

#[test]
fn losses_are_counted_exactly() {
    let Some(c) = Case::start("losses_are_counted_exactly", Some("reclost"), "lost") else {
        return;
    };
    let file = c.file("lost.data");
    let work = c.event("work");
    let bin = fixture_bin();
    // One page of ring per CPU and 60 000 hits with callchains: the kernel drops records.
    let out = record(&[
        "-e",
        &work,
        "-g",
        "-m",
        "1",
        "-o",
        file.to_str().expect("utf8"),
        "--",
        &bin,
        "20000",
    ]);
    let (samples, lost) = summary(&out);
    let out = common::perf(&fixtures().perf_home)
        .args(["script", "--show-lost-events", "-i"])
        .arg(&file)
        .output()
        .expect("perf");
    let text = String::from_utf8_lossy(&out.stdout);
    let in_file: u64 = text
        .lines()
        .filter_map(|l| {
            l.split_once("PERF_RECORD_LOST lost ")?
                .1
                .trim()
                .parse::<u64>()
                .ok()
        })
        .sum();
    let hits = text
        .lines()
        .filter(|l| l.contains(&format!(" {work}: ")))
        .count() as u64;
    assert_eq!(hits, samples);
    // Every PERF_RECORD_LOST is in the file; the fds' PERF_FORMAT_LOST counts (written as
    // LOST_SAMPLES, which perf report sums) also hold what no LOST record reported yet.
    assert!(in_file <= lost, "LOST records {in_file}, lost {lost}");
    let report = perf_report_with_losses(&file);
    assert!(
        report.contains(&format!("# Total Lost Samples: {lost}\n")),
        "{report:.600}"
    );
    assert_eq!(samples + lost, 60_000, "samples {samples} lost {lost}");
}

#[test]
fn sched_switch_system_wide_with_kernel_frames_and_comms() {
    let Some(c) = Case::start(
        "sched_switch_system_wide_with_kernel_frames_and_comms",
        None,
        "ss",
    ) else {
        return;
    };
    let file = c.file("ss.data");
    let rec = Command::new(common::rprobe_bin())
        .args([
            "record",
            "-e",
            "sched:sched_switch",
            "-a",
            "-g",
            "--duration",
            "2.5",
            "-o",
        ])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Once recording (the header's data size is set by the first checkpoint, after the
    // synthesized records, right before the events are enabled), a known task that switches
    // out: sleep(1) calls in a loop.
    let t = Instant::now();
    let checkpointed = |f: &Path| {
        std::fs::read(f)
            .ok()
            .and_then(|b| Some(u64::from_ne_bytes(b.get(48..56)?.try_into().ok()?)))
            .is_some_and(|size| size > 0)
    };
    while !checkpointed(&file) && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let status = Command::new("sh")
        .args(["-c", "for i in 1 2 3 4 5 6 7 8; do sleep 0.05; done"])
        .status()
        .expect("sh");
    assert!(status.success());
    let out = rec.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", show_output(&out));
    let (samples, lost) = summary(&out);
    assert!(samples > 0);
    assert_eq!(lost, 0);
    let text = perf_clean(&file, &["script"]);
    assert!(
        text.contains("__schedule+0x") && text.contains("([kernel.kallsyms])"),
        "{text:.2000}"
    );
    assert!(
        text.contains("sleep ") && text.contains("prev_comm=sleep"),
        "{text:.2000}"
    );
    let heads: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" sched:sched_switch: "))
        .collect();
    assert_eq!(heads.len() as u64, samples);
    // The comm column is the switched-out task's name: for the known load (started after the
    // synthesis, named by the kernel's COMM at its exec) and for the recorder itself (named
    // from /proc).
    for comm in ["sleep", "rprobe"] {
        let own: Vec<&&str> = heads
            .iter()
            .filter(|l| l.contains(&format!(" prev_comm={comm} ")))
            .collect();
        assert!(!own.is_empty(), "no switch of {comm}");
        assert!(
            own.iter().all(|l| l.starts_with(&format!("{comm} "))),
            "{own:?}"
        );
    }
    perf_clean(&file, &["report", "--stdio"]);
}

#[test]
fn cpu_clock_of_a_command_stops_when_it_exits() {
    let Some(c) = Case::start("cpu_clock_of_a_command_stops_when_it_exits", None, "cc") else {
        return;
    };
    let file = c.file("cc.data");
    // An existing file is kept as FILE.old.
    std::fs::write(&file, b"previous").expect("write");
    let t = Instant::now();
    let out = record(&[
        "-F",
        "999",
        "-g",
        "-o",
        file.to_str().expect("utf8"),
        "--",
        "sh",
        "-c",
        "i=0; while [ $i -lt 60000 ]; do i=$((i+1)); done",
    ]);
    assert!(t.elapsed() < Duration::from_secs(20));
    let (samples, lost) = summary(&out);
    assert!(samples > 10, "{samples}");
    assert_eq!(lost, 0);
    let text = perf_clean(&file, &["script"]);
    let heads: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" cpu-clock: "))
        .collect();
    assert_eq!(heads.len() as u64, samples);
    assert!(
        heads.iter().all(|l| l.starts_with("sh ")),
        "{:?}",
        &heads[..3.min(heads.len())]
    );
    assert!(
        text.contains("(/usr/bin/dash)") || text.contains("(/usr/bin/bash)"),
        "{text:.1500}"
    );
    perf_clean(&file, &["report", "--stdio"]);
}

#[test]
fn killed_recorder_leaves_a_readable_file() {
    let Some(c) = Case::start("killed_recorder_leaves_a_readable_file", None, "kill") else {
        return;
    };
    let file = c.file("kill.data");
    let mut child = Command::new(common::rprobe_bin())
        .args(["record", "-e", "sched:sched_switch", "-a", "-g", "-q", "-o"])
        .arg(&file)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(1800));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let text = perf_clean(&file, &["script"]);
    let n = text
        .lines()
        .filter(|l| l.contains(" sched:sched_switch: "))
        .count();
    assert!(n > 0, "no samples before the kill");
    assert!(text.contains("([kernel.kallsyms])"));
    // rprobe script replays the same records, with the same text.
    let ours = common::rprobe(&["script", "-i", file.to_str().expect("utf-8")]);
    assert!(ours.status.success(), "{}", common::show_output(&ours));
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        text,
        "rprobe script vs perf script"
    );
}

/// A 2 MiB tmpfs mounted for one test; unmounted on drop.
struct SmallDisk(PathBuf);

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_keeps_the_file_up_to_the_last_checkpoint() {
    let Some(c) = Case::start(
        "full_disk_keeps_the_file_up_to_the_last_checkpoint",
        None,
        "full",
    ) else {
        return;
    };
    let mnt = c.file("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let ok = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=2m",
            "rprobe-test",
            mnt.to_str().expect("utf8"),
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        common::skip(
            "live_record::full_disk_keeps_the_file_up_to_the_last_checkpoint",
            "cannot mount a tmpfs",
        );
        return;
    }
    let _disk = SmallDisk(mnt.clone());
    let file = mnt.join("full.data");
    let mut load = Command::new("sh")
        .args([
            "-c",
            "i=0; while [ $i -lt 40000 ]; do i=$((i+1)); /bin/true; done",
        ])
        .spawn()
        .expect("sh");
    let out = rprobe(&[
        "record",
        "-e",
        "sched:sched_switch",
        "-a",
        "-g",
        "--duration",
        "30",
        "-o",
        file.to_str().expect("utf8"),
    ]);
    let _ = load.kill();
    let _ = load.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", show_output(&out));
    assert!(
        err.contains("No space left on device") && err.contains("last checkpoint"),
        "{err}"
    );
    let text = perf_clean(&file, &["script"]);
    assert!(
        text.lines()
            .filter(|l| l.contains(" sched:sched_switch: "))
            .count()
            > 0
    );
}

#[test]
fn sigint_stops_cleanly() {
    let Some(c) = Case::start("sigint_stops_cleanly", None, "int") else {
        return;
    };
    let file = c.file("int.data");
    let child = Command::new(common::rprobe_bin())
        .args(["record", "-e", "sched:sched_switch", "-a", "-o"])
        .arg(&file)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(700));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGINT,
    )
    .expect("kill");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", show_output(&out));
    let (samples, _) = summary(&out);
    let text = perf_clean(&file, &["script"]);
    assert_eq!(
        text.lines()
            .filter(|l| l.contains(" sched:sched_switch: "))
            .count() as u64,
        samples
    );
}

/// Runs `rprobe record ARGS` in `dir`, expects failure naming `want`, and checks that no
/// output file is left and an existing perf.data is back in place.
fn refused(dir: &Path, args: &[&str], want: &[&str]) {
    let old = dir.join("perf.data");
    std::fs::write(&old, b"old").expect("old");
    let out = Command::new(common::rprobe_bin())
        .arg("record")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{args:?} succeeded:\n{}",
        show_output(&out)
    );
    for w in want {
        assert!(err.contains(w), "{args:?}: message lacks {w:?}:\n{err}");
    }
    assert_eq!(err.trim().lines().count(), 1, "one line:\n{err}");
    assert_eq!(std::fs::read(&old).expect("old back"), b"old", "{args:?}");
    assert!(
        !dir.join("perf.data.old").exists(),
        "{args:?} left perf.data.old"
    );
}

#[test]
fn bad_input_fails_cleanly() {
    let Some(c) = Case::start("bad_input_fails_cleanly", None, "bad") else {
        return;
    };
    let d = c.dir.path();
    let before = Snapshot::take();
    refused(
        d,
        &["-e", "sched:sched_swich", "-a"],
        &[
            "unknown event 'sched:sched_swich'",
            "did you mean sched:sched_switch",
        ],
    );
    refused(d, &["-e", "cpu-clok", "-a"], &["did you mean cpu-clock"]);
    refused(
        d,
        &[
            "-e",
            "sched:sched_switch",
            "--filter",
            "prev_pid >>> 1",
            "-a",
            "--duration",
            "1",
        ],
        &["rejected --filter 'prev_pid >>> 1' for sched:sched_switch:"],
    );
    refused(
        d,
        &[
            "-e",
            "sched:sched_switch",
            "--filter",
            "nosuchfield == 1",
            "-a",
        ],
        &["rejected", "nosuchfield"],
    );
    refused(d, &["-p", "999999999"], &["-p 999999999: no such process"]);
    refused(
        d,
        &["--", "/nonexistent/cmd"],
        &["cannot run '/nonexistent/cmd'", "No such file"],
    );
    refused(
        d,
        &["-e", "cycles", "-a"],
        &["no hardware counter for 'cycles'", "cpu-clock"],
    );
    refused(d, &["-m", "3", "-a"], &["power of two"]);
    let out = rprobe(&[
        "record",
        "-a",
        "-o",
        "/proc/nope/perf.data",
        "--duration",
        "1",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot create /proc/nope/perf.data"),
        "{}",
        show_output(&out)
    );
    // Too many open files: 4 events on every CPU do not fit in 9 descriptors.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 9 && exec {} record -e cpu-clock -e page-faults -e context-switches -a -o lim.data --duration 1",
            common::rprobe_bin()
        ))
        .current_dir(d)
        .output()
        .expect("sh");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("too many open files") && err.contains("ulimit -n"),
        "{}",
        show_output(&out)
    );
    assert!(!d.join("lim.data").exists());
    // No permission: an unprivileged user (nobody) under perf_event_paranoid >= 1.
    let paranoid: i32 = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(2);
    if paranoid >= 1 && Path::new("/usr/bin/setpriv").exists() {
        let open = tempfile::tempdir().expect("tmp");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let out = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                common::rprobe_bin(),
            ])
            .args([
                "record",
                "-e",
                "cpu-clock",
                "-a",
                "--duration",
                "1",
                "-o",
                "np.data",
            ])
            .current_dir(open.path())
            .stdin(Stdio::null())
            .output()
            .expect("setpriv");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}", show_output(&out));
        for w in [
            "permission denied",
            &format!("perf_event_paranoid <= 0 (now {paranoid})"),
            "CAP_PERFMON",
        ] {
            assert!(err.contains(w), "lacks {w:?}: {err}");
        }
        assert!(!open.path().join("np.data").exists());
        // Its own command it may sample, in user space only (perf's fallback), with a warning.
        if paranoid == 2 {
            let out = Command::new("setpriv")
                .args([
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    common::rprobe_bin(),
                ])
                .args([
                    "record",
                    "-F",
                    "999",
                    "-g",
                    "-o",
                    "user.data",
                    "--",
                    "sh",
                    "-c",
                ])
                .arg("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done")
                .current_dir(open.path())
                .stdin(Stdio::null())
                .output()
                .expect("setpriv");
            assert!(out.status.success(), "{}", show_output(&out));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("recording user space only"), "{err}");
            let (samples, _) = summary(&out);
            assert!(samples > 0);
            let text = perf_clean(&open.path().join("user.data"), &["script", "-f"]);
            assert!(!text.contains("[kernel.kallsyms]"), "{text:.1000}");
        }
    }
    before.assert_restored("live_record::bad_input_fails_cleanly", &|_| true);
    let leftovers: Vec<PathBuf> = std::fs::read_dir(common::TRACEFS.to_string() + "/instances")
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        !leftovers
            .iter()
            .any(|p| p.to_string_lossy().contains("rprobe_filter_")),
        "{leftovers:?}"
    );
}

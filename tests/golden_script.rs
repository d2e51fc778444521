//! Golden comparisons of `rprobe script` with perf 6.1's `perf script` on perf.data files that
//! perf and `rprobe record` each record here (every scenario from both): sched_switch with -a -g, syscall tracepoints, uprobe and uretprobe
//! events with string and numeric arguments on a fixture, cpu-clock -F with -g of a CPU-bound
//! fixture, a file with several events; the default output, -F lists, -G, a LOST record with
//! and without --show-lost-events, and a file cut short.
//!
//! Live: needs root and perf. Every perf record / perf probe runs while this process holds the
//! machine-wide kernel lock (`/tmp/rprobe-kernel.lock`), taken only around those commands.

mod common;

use common::{fixtures, group, live_or_skip, perf, rprobe_bin, EventGuard, Needs};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Holds `/tmp/rprobe-kernel.lock` (flock) while alive; holds nothing when a process that
/// runs us (`flock /tmp/rprobe-kernel.lock cargo test ...`) has it already, which would
/// otherwise deadlock.
struct KernelLock(#[allow(dead_code)] Option<nix::fcntl::Flock<fs::File>>);

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

fn kernel_lock() -> KernelLock {
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

/// This process's scratch directory for recordings.
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("golden_script-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("scratch dir");
        d
    })
}

/// `cpu_hot` built from fixtures/src/cpu_hot.c with frame pointers.
fn cpu_hot() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = scratch().join("cpu_hot");
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/src/cpu_hot.c");
        let st = Command::new("gcc")
            .args([
                "-O0",
                "-g0",
                "-fno-omit-frame-pointer",
                "-Wall",
                "-Werror",
                "-o",
            ])
            .arg(&out)
            .arg(&src)
            .status()
            .expect("run gcc");
        assert!(st.success(), "gcc {} failed", src.display());
        out
    })
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Who records a scenario's file: perf 6.1 or `rprobe record`, with the same options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recorder {
    Perf,
    Rprobe,
}

/// Every scenario is replayed from both recorders' files.
const RECORDERS: [Recorder; 2] = [Recorder::Perf, Recorder::Rprobe];

/// `RECORDER record -q -o FILE ARGS` (the kernel lock held by the caller).
fn record_locked(rec: Recorder, file: &Path, args: &[&str]) {
    let home = &fixtures().perf_home;
    let mut cmd = match rec {
        Recorder::Perf => perf(home),
        Recorder::Rprobe => {
            let mut c = Command::new(rprobe_bin());
            c.env("HOME", home);
            c
        }
    };
    run(cmd.arg("record").arg("-q").arg("-o").arg(file).args(args));
}

/// `perf record ARGS -o FILE` under the kernel lock; returns FILE.
fn record(name: &str, args: &[&str]) -> PathBuf {
    record_by(Recorder::Perf, name, args)
}

/// [`record`] by `rec`.
fn record_by(rec: Recorder, name: &str, args: &[&str]) -> PathBuf {
    let file = scratch().join(format!("{name}-{rec:?}.data"));
    let _lock = kernel_lock();
    record_locked(rec, &file, args);
    file
}

fn perf_script(file: &Path, extra: &[&str]) -> Output {
    let home = &fixtures().perf_home;
    perf(home)
        .arg("script")
        .arg("-i")
        .arg(file)
        .args(extra)
        .output()
        .expect("run perf script")
}

fn rprobe_script(file: &Path, extra: &[&str]) -> Output {
    Command::new(rprobe_bin())
        .env("HOME", &fixtures().perf_home)
        .arg("script")
        .arg("-i")
        .arg(file)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run rprobe script")
}

/// The first differences between two texts, with line numbers.
fn diff(a: &str, b: &str) -> String {
    let (al, bl): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let mut out = String::new();
    let mut shown = 0;
    for i in 0..al.len().max(bl.len()) {
        let (x, y) = (al.get(i).copied(), bl.get(i).copied());
        if x != y {
            out += &format!("line {}:\n  perf:   {:?}\n  rprobe: {:?}\n", i + 1, x, y);
            shown += 1;
            if shown == 12 {
                out += "...\n";
                break;
            }
        }
    }
    out += &format!("({} lines from perf, {} from rprobe)\n", al.len(), bl.len());
    out
}

/// `rprobe script -i FILE EXTRA` prints exactly what `perf script` prints; returns the text.
fn assert_same(test: &str, file: &Path, extra: &[&str]) -> String {
    let p = perf_script(file, extra);
    assert!(
        p.status.success(),
        "{test}: perf script failed: {}",
        String::from_utf8_lossy(&p.stderr)
    );
    let r = rprobe_script(file, extra);
    assert!(
        r.status.success(),
        "{test}: rprobe script {extra:?} failed: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let (ps, rs) = (
        String::from_utf8_lossy(&p.stdout),
        String::from_utf8_lossy(&r.stdout),
    );
    assert!(
        ps == rs,
        "{test}: rprobe script {extra:?} differs from perf script on {}:\n{}",
        file.display(),
        diff(&ps, &rs)
    );
    assert!(
        !ps.is_empty(),
        "{test}: perf printed nothing for {}",
        file.display()
    );
    ps.into_owned()
}

#[test]
fn sched_switch_system_wide_with_callchains() {
    if !live_or_skip(
        "golden_script::sched_switch_system_wide_with_callchains",
        Needs::TracefsAndPerf,
    ) {
        return;
    }
    let fx = fixtures();
    let o0 = fx.o0.to_str().unwrap();
    for rec in RECORDERS {
        let f = record_by(
            rec,
            "sched",
            &["-e", "sched:sched_switch", "-a", "-g", "--", o0, "20"],
        );
        let text = assert_same(&format!("sched ({rec:?})"), &f, &[]);
        assert!(
            text.contains("sched:sched_switch: prev_comm="),
            "{text:.300}"
        );
        assert!(text.contains("__schedule+0x"), "no kernel frames ({rec:?})");
        assert!(text.contains("\n\n"), "no blank line after a callchain");
        assert_same(&format!("sched -G ({rec:?})"), &f, &["-G"]);
        assert_same(
            &format!("sched -F ({rec:?})"),
            &f,
            &["-F", "comm,tid,pid,cpu,time,event,ip,sym,dso,trace,period"],
        );
        assert_same(
            &format!("sched -F short ({rec:?})"),
            &f,
            &["-F", "comm,tid,time,event,trace"],
        );
    }
}

#[test]
fn syscall_tracepoints() {
    if !live_or_skip("golden_script::syscall_tracepoints", Needs::TracefsAndPerf) {
        return;
    }
    for rec in RECORDERS {
        let f = record_by(
            rec,
            "syscalls",
            &[
                "-e",
                "syscalls:sys_enter_openat",
                "-e",
                "syscalls:sys_exit_openat",
                "-e",
                "raw_syscalls:sys_enter",
                "--",
                "/bin/ls",
                "/usr",
            ],
        );
        let text = assert_same(&format!("syscalls ({rec:?})"), &f, &[]);
        assert!(
            text.contains("syscalls:sys_enter_openat: dfd: "),
            "{text:.400}"
        );
        assert!(text.contains("raw_syscalls:sys_enter: NR "), "{text:.400}");
        assert_same(
            &format!("syscalls -F ({rec:?})"),
            &f,
            &["-F", "comm,pid,tid,cpu,time,period,event,trace"],
        );
    }
}

#[test]
fn uprobe_and_uretprobe_with_arguments() {
    if !live_or_skip(
        "golden_script::uprobe_and_uretprobe_with_arguments",
        Needs::TracefsAndPerf,
    ) {
        return;
    }
    let fx = fixtures();
    let o0 = fx.o0.to_str().unwrap();
    let grp = group("script");
    // perf probe refuses an event name that exists in any group: make ours unique. A return
    // probe's event is named NAME__return even when NAME is given.
    let (ev, ev_ret) = (
        format!("work_{}", std::process::id()),
        format!("work_{}__return", std::process::id()),
    );
    let files = RECORDERS.map(|rec| (rec, scratch().join(format!("uprobe-{rec:?}.data"))));
    {
        let _lock = kernel_lock();
        let mut guard = EventGuard::with_perf(&fx.perf_home);
        guard.own_group(&grp);
        run(perf(&fx.perf_home).args([
            "probe",
            "-q",
            "-x",
            o0,
            "-a",
            &format!("{grp}:{ev}=work id=%di:s32 len=%si:s64 name=+0(%dx):string"),
        ]));
        run(perf(&fx.perf_home).args([
            "probe",
            "-q",
            "-x",
            o0,
            "-a",
            &format!("{grp}:{ev}=work%return ret=$retval:s64"),
        ]));
        for (rec, file) in &files {
            record_locked(
                *rec,
                file,
                &[
                    "-e",
                    &format!("{grp}:{ev}"),
                    "-e",
                    &format!("{grp}:{ev_ret}"),
                    "-g",
                    "--",
                    o0,
                    "2",
                ],
            );
        }
        drop(guard);
    }
    for (rec, file) in &files {
        uprobe_file_checks(*rec, file, &grp, &ev, &ev_ret);
    }
}

/// The uprobe scenario's checks on one recorder's file.
fn uprobe_file_checks(rec: Recorder, file: &Path, grp: &str, ev: &str, ev_ret: &str) {
    let file = file.to_path_buf();
    let text = assert_same(&format!("uprobe ({rec:?})"), &file, &[]);
    // 2 rounds of work(1, 100, "alpha"), work(2, 200, "beta"), work(3, -300, "gamma").
    let entries = text.matches(&format!("{grp}:{ev}: (")).count();
    let returns = text.matches(&format!("{grp}:{ev_ret}: (")).count();
    assert_eq!((entries, returns), (6, 6), "{text}");
    assert!(text.contains("id=3 len=-300 name=\"gamma\""), "{text}");
    assert!(
        text.contains(" <- "),
        "uretprobe without (func <- caller): {text}"
    );
    assert!(text.contains("ret=-297"), "{text}");
    assert!(text.contains(" work+0x0 ("), "entry frame: {text}");
    assert_same(&format!("uprobe -G ({rec:?})"), &file, &["-G"]);
    let j = rprobe_script(&file, &["--json"]);
    let json = String::from_utf8_lossy(&j.stdout);
    assert_eq!(json.lines().count(), 12, "{json}");
    assert!(
        json.contains("\"id\":3,\"len\":-300,\"name\":\"gamma\"}"),
        "{json}"
    );
    assert!(json.contains("\"ret\":-297}"), "{json}");
    assert!(json.contains("\"sym\":\"work\",\"off\":0,"), "{json}");
}

#[test]
fn cpu_clock_with_callchains() {
    if !live_or_skip(
        "golden_script::cpu_clock_with_callchains",
        Needs::TracefsAndPerf,
    ) {
        return;
    }
    let hot = cpu_hot().to_str().unwrap().to_string();
    for rec in RECORDERS {
        let f = record_by(
            rec,
            "cpuclock",
            &["-e", "cpu-clock", "-F", "999", "-g", "--", &hot, "20"],
        );
        let text = assert_same(&format!("cpu-clock ({rec:?})"), &f, &[]);
        assert!(
            text.contains(" cpu-clock: \n"),
            "no trailing space after the event: {text:.300}"
        );
        assert!(text.contains(" hot_leaf+0x"), "{text:.600}");
        assert_same(&format!("cpu-clock -G ({rec:?})"), &f, &["-G"]);
        assert_same(
            &format!("cpu-clock -F ({rec:?})"),
            &f,
            &["-F", "comm,tid,time,event,ip,sym,dso,period"],
        );
        assert_same(
            &format!("cpu-clock -F symoff ({rec:?})"),
            &f,
            &["-F", "comm,pid,tid,ip,sym,symoff,dso"],
        );
    }
}

#[test]
fn several_events_in_one_file() {
    if !live_or_skip(
        "golden_script::several_events_in_one_file",
        Needs::TracefsAndPerf,
    ) {
        return;
    }
    let hot = cpu_hot().to_str().unwrap().to_string();
    for rec in RECORDERS {
        let f = record_by(
            rec,
            "several",
            &[
                "-e",
                "sched:sched_switch",
                "-e",
                "syscalls:sys_enter_write",
                "-e",
                "cpu-clock",
                "-e",
                "sched:sched_process_exit",
                "-g",
                "--",
                &hot,
                "10",
            ],
        );
        let text = assert_same(&format!("several ({rec:?})"), &f, &[]);
        assert!(text.contains("cpu-clock: "), "{text:.300}");
        assert!(text.contains("sched:sched_process_exit: "), "{text:.300}");
        assert_same(&format!("several -G ({rec:?})"), &f, &["-G"]);
    }
}

/// `plt_calls` from fixtures/src/plt_calls.c (frame pointers, calls kept by -fno-builtin)
/// and a stripped copy, which has only `.dynsym`.
fn plt_calls() -> [PathBuf; 2] {
    let out = scratch().join("plt_calls");
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/src/plt_calls.c");
    run(Command::new("gcc")
        .args([
            "-O2",
            "-fno-builtin",
            "-fno-omit-frame-pointer",
            "-Wall",
            "-Werror",
            "-o",
        ])
        .arg(&out)
        .arg(&src));
    let stripped = scratch().join("plt_calls_stripped");
    run(Command::new("strip").arg("-o").arg(&stripped).arg(&out));
    [out, stripped]
}

#[test]
fn callchains_through_plt_stubs() {
    if !live_or_skip(
        "golden_script::callchains_through_plt_stubs",
        Needs::TracefsAndPerf,
    ) {
        return;
    }
    // perf synthesizes NAME@plt for each `.rela.plt` entry (`dso__synthesize_plt_symbols`);
    // samples in a stub print it, with or without `.symtab`.
    for bin in plt_calls() {
        let name = bin.file_name().unwrap().to_str().unwrap().to_string();
        for rec in RECORDERS {
            let f = record_by(
                rec,
                &name,
                &[
                    "-e",
                    "cpu-clock",
                    "-F",
                    "1999",
                    "-g",
                    "--",
                    bin.to_str().unwrap(),
                    "100",
                ],
            );
            let text = assert_same(&format!("{name} ({rec:?})"), &f, &[]);
            assert!(
                text.contains("@plt+0x0 ("),
                "{name} ({rec:?}): no sample in a PLT stub"
            );
            assert_same(
                &format!("{name} -F ({rec:?})"),
                &f,
                &["-F", "ip,sym,symoff,dso"],
            );
        }
    }
}

/// A copy of `file` with a PERF_RECORD_LOST appended to the data section (the feature table
/// moves along), its trailer laid out for the first attr.
fn with_lost_record(file: &Path, lost: u64) -> PathBuf {
    let mut b = fs::read(file).expect("read recording");
    let u64_at = |b: &[u8], o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().unwrap());
    let data_off = u64_at(&b, 40) as usize;
    let data_size = u64_at(&b, 48) as usize;
    let attrs_off = u64_at(&b, 24) as usize;
    let sample_type = u64_at(&b, attrs_off + 24);
    let ids_off = u64_at(&b, attrs_off + 128) as usize;
    let id = u64_at(&b, ids_off);
    let end = data_off + data_size;
    // A timestamp after every sample: the largest u64 at a TIME position is hard to find, so
    // use the feature SAMPLE_TIME's end when present, else a large value.
    let mut body = Vec::new();
    body.extend_from_slice(&id.to_ne_bytes());
    body.extend_from_slice(&lost.to_ne_bytes());
    let bits = [
        (1u64 << 1, 8usize),
        (1 << 2, 8),
        (1 << 6, 8),
        (1 << 9, 8),
        (1 << 7, 8),
        (1 << 16, 8),
    ];
    for (bit, _) in bits {
        if sample_type & bit == 0 {
            continue;
        }
        match bit {
            2 => {
                body.extend_from_slice(&1u32.to_ne_bytes());
                body.extend_from_slice(&1u32.to_ne_bytes());
            }
            4 => body.extend_from_slice(&(u64::MAX / 2).to_ne_bytes()),
            0x80 => body.extend_from_slice(&0u64.to_ne_bytes()),
            _ => body.extend_from_slice(&id.to_ne_bytes()),
        }
    }
    let mut rec = Vec::new();
    rec.extend_from_slice(&2u32.to_ne_bytes());
    rec.extend_from_slice(&0u16.to_ne_bytes());
    rec.extend_from_slice(&((body.len() + 8) as u16).to_ne_bytes());
    rec.extend_from_slice(&body);
    let n = rec.len() as u64;
    // Feature table entries (offset, size) follow the data; their payload offsets move too.
    let nfeat: u32 = (0..4).map(|i| u64_at(&b, 72 + i * 8).count_ones()).sum();
    for k in 0..nfeat as usize {
        let at = end + k * 16;
        let off = u64_at(&b, at) + n;
        b[at..at + 8].copy_from_slice(&off.to_ne_bytes());
    }
    b.splice(end..end, rec);
    b[48..56].copy_from_slice(&((data_size as u64) + n).to_ne_bytes());
    let out = file.with_extension("lost.data");
    fs::write(&out, b).expect("write copy");
    out
}

#[test]
fn lost_records_warning_and_show_lost_events() {
    if !live_or_skip(
        "golden_script::lost_records_warning_and_show_lost_events",
        Needs::TracefsAndPerf,
    ) {
        return;
    }
    let fx = fixtures();
    let o0 = fx.o0.to_str().unwrap();
    let f = record(
        "lostbase",
        &["-e", "sched:sched_switch", "-a", "--", o0, "1"],
    );
    let lost = with_lost_record(&f, 1234);
    assert_same("lost", &lost, &[]);
    let shown = assert_same("lost --show-lost-events", &lost, &["--show-lost-events"]);
    assert!(shown.contains("PERF_RECORD_LOST lost 1234"), "{shown}");
    let p = perf_script(&lost, &[]);
    let r = rprobe_script(&lost, &[]);
    let warning = |o: &Output| {
        let e = String::from_utf8_lossy(&o.stderr).into_owned();
        e.find("Warning:")
            .map(|i| e[i..].to_string())
            .unwrap_or_default()
    };
    assert!(
        warning(&p).contains("lost 1 chunks"),
        "perf: {}",
        warning(&p)
    );
    assert_eq!(warning(&r), warning(&p), "the lost-events warning differs");
}

#[test]
fn cut_short_file_reads_to_the_last_whole_record() {
    if !live_or_skip(
        "golden_script::cut_short_file_reads_to_the_last_whole_record",
        Needs::TracefsAndPerf,
    ) {
        return;
    }
    let hot = cpu_hot().to_str().unwrap().to_string();
    let f = record("cut", &["-e", "cpu-clock", "-F", "999", "--", &hot, "20"]);
    let full = rprobe_script(&f, &[]);
    assert!(full.status.success());
    let b = fs::read(&f).unwrap();
    let data_off = u64::from_ne_bytes(b[40..48].try_into().unwrap()) as usize;
    let data_size = u64::from_ne_bytes(b[48..56].try_into().unwrap()) as usize;
    let cut = scratch().join("cut-short.data");
    fs::write(&cut, &b[..data_off + data_size * 3 / 4 + 3]).unwrap();
    let r = rprobe_script(&cut, &[]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{err}");
    assert_eq!(err.matches("warning").count(), 1, "one warning: {err}");
    assert!(
        err.contains("offset 0x"),
        "the warning names the offset: {err}"
    );
    let (full, part) = (
        String::from_utf8_lossy(&full.stdout),
        String::from_utf8_lossy(&r.stdout),
    );
    let n = part.lines().count();
    assert!(n > 0 && n < full.lines().count(), "{n} lines");
    // Records of two CPUs interleave in the file, so the readable part is a subset, not a
    // prefix, of the whole file's samples. Each has its tid, time, period and ip there; its
    // comm and symbol too unless the COMM or MMAP that named them lies past the cut with an
    // earlier time (a CPU's buffer flushed late, as under load): almost all lines are whole.
    let whole: std::collections::HashSet<&str> = full.lines().collect();
    // `comm tid [cpu] time: period cpu-clock: ip sym+off (dso)` without comm and symbol.
    let key = |l: &str| -> String {
        let rest = l.trim_start().split_once(' ').map_or("", |(_, r)| r);
        let ip_end = rest.find("cpu-clock: ").map_or(rest.len(), |i| {
            let after = &rest[i + 11..];
            let ip = after.trim_start();
            i + 11 + (after.len() - ip.len()) + ip.find(' ').unwrap_or(ip.len())
        });
        rest[..ip_end].to_string()
    };
    let keys: std::collections::HashSet<String> = full.lines().map(key).collect();
    let mut same = 0;
    for l in part.lines() {
        assert!(
            keys.contains(&key(l)),
            "{l:?} is not a sample of the whole file"
        );
        same += usize::from(whole.contains(l));
    }
    assert!(
        same * 10 >= n * 9,
        "{same} of {n} lines as in the whole file"
    );
}

/// A real recording (tracepoints with callchains, cpu-clock, probes' formats) for fuzzing.
fn fuzz_input() -> Option<&'static [u8]> {
    static BYTES: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    BYTES
        .get_or_init(|| {
            if !live_or_skip(
                "golden_script::mutated_real_files_never_panic",
                Needs::TracefsAndPerf,
            ) {
                return None;
            }
            let hot = cpu_hot().to_str().unwrap().to_string();
            let f = record(
                "fuzz",
                &[
                    "-e",
                    "sched:sched_switch",
                    "-e",
                    "cpu-clock",
                    "-g",
                    "--",
                    &hot,
                    "3",
                ],
            );
            Some(fs::read(f).expect("read recording"))
        })
        .as_deref()
}

/// Replays `bytes` through the library as `rprobe script` does; errors are fine, panics not.
fn replay(bytes: &[u8]) -> usize {
    use rprobe::replay::{dso::NoFiles, script, session::Session};
    let Ok(mut s) = Session::new(bytes, None) else {
        return 0;
    };
    let opts = script::ScriptOptions::default();
    let Ok(plan) = script::plan(&s.evsels, &opts) else {
        return 0;
    };
    let mut out = Vec::new();
    let files = NoFiles;
    let mut w = script::Script::new(&mut out, &s.evsels, plan, opts, &files);
    let _ = s.run(&mut |m, ev, e| w.event(m, ev, e));
    let _ = w.flush();
    drop(w);
    out.len()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    #[test]
    fn mutated_real_files_never_panic(
        cut in 0.0f64..1.0,
        flips in proptest::collection::vec((0.0f64..1.0, proptest::prelude::any::<u8>()), 0..16),
        big in proptest::collection::vec(0.0f64..1.0, 0..4),
    ) {
        let Some(real) = fuzz_input() else { return Ok(()) };
        let mut b = real.to_vec();
        for (at, v) in flips {
            let i = (at * b.len() as f64) as usize;
            if let Some(x) = b.get_mut(i) { *x = v; }
        }
        // Impossible sizes and offsets: a u64 of all ones somewhere (often a size field).
        for at in big {
            let i = ((at * b.len() as f64) as usize) & !7;
            if i + 8 <= b.len() { b[i..i + 8].copy_from_slice(&[0xff; 8]); }
        }
        let n = ((cut * b.len() as f64) as usize).max(1);
        b.truncate(n);
        let _ = replay(&b);
    }
}

#[test]
fn the_real_file_replays_in_process() {
    let Some(real) = fuzz_input() else { return };
    assert!(
        replay(real) > 1000,
        "the unmutated recording prints its samples"
    );
}

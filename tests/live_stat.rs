//! `rprobe stat` on this kernel, with both engines: exact counts and histograms of
//! `fixtures/src/stat_calls.c` (whose distributions are known), function latencies in the
//! right log2 buckets, and run-queue latency under a CPU-bound load measured by both engines
//! at once, on the same load, agreeing within 1% of counts.

mod common;

use rprobe::aggregate::count::{Counts, KeyPart};
use rprobe::aggregate::hist::{LinearHist, Log2Hist};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const N: u32 = 300;
const ENGINES: [&str; 2] = ["user", "bpf"];

fn live(test: &str) -> bool {
    common::live_or_skip(test, common::Needs::Tracefs)
}

/// `-- sh -c 'exec BIN ARGS >/dev/null'`: the fixture with its own output out of the way
/// (the same process: `exec`).
fn quiet<'a>(bin: &'a str, args: &[&'a str]) -> Vec<String> {
    let mut v: Vec<String> = ["--", "sh", "-c", "exec \"$0\" \"$@\" >/dev/null", bin]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

/// `rprobe stat ARGS` with the engine's flag; the output, after checking it succeeded.
fn stat(engine: &str, args: &[&str], cmd: &[String]) -> Output {
    let mut all: Vec<&str> = vec!["stat"];
    if engine == "bpf" {
        all.push("--bpf");
    }
    all.extend_from_slice(args);
    all.extend(cmd.iter().map(String::as_str));
    let out = Command::new(common::rprobe_bin())
        .args(&all)
        .output()
        .expect("run rprobe stat");
    assert!(
        out.status.success(),
        "rprobe {}: {}",
        all.join(" "),
        common::show_output(&out)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What `stat_calls N` prints: the sum of sizes and name lengths.
fn fixture_total(n: u32) -> i64 {
    let names = ["alpha", "beta", "gamma"];
    (0..n as i64)
        .map(|i| i % 10 + 1 + names[(i % 3) as usize].len() as i64)
        .sum()
}

fn no_session_left() {
    let left: Vec<String> = common::uprobe_events()
        .lines()
        .filter(|l| l.contains("rprobe_"))
        .map(str::to_owned)
        .collect();
    assert!(left.is_empty(), "probes left behind: {left:?}");
}

#[test]
fn fixture_counts_and_histograms_are_exact_in_both_engines() {
    if !live("live_stat::fixture_counts_and_histograms_are_exact_in_both_engines") {
        return;
    }
    // One at a time: the load of one would shift another's latencies.
    let _lock = common::tracefs_lock();
    let bin = common::stat_calls();
    let b = bin.to_str().expect("path");
    let n = N.to_string();
    let names = ["alpha", "beta", "gamma"];
    // work(i % 10 + 1, names[i % 3]): each (name, size) pair N / 30 times.
    let mut want_counts = Counts::default();
    for i in 0..u64::from(N) {
        want_counts.add(vec![
            KeyPart::Str(names[(i % 3) as usize].into()),
            KeyPart::Int((i % 10 + 1) as i64),
        ]);
    }
    let mut want_sizes = Log2Hist::default();
    for i in 0..u64::from(N) {
        want_sizes.add(i % 10 + 1);
    }
    // write(fd, buf, i + 1), then printf's one write of the total.
    let printed = format!("{}\n", fixture_total(N)).len() as u64;
    let mut want_writes = Log2Hist::default();
    for v in (1..=u64::from(N)).chain([printed]) {
        want_writes.add(v);
    }
    let spec = "work size=%di:s64 name=+0(%si):ustring";
    for engine in ENGINES {
        let o = stat(
            engine,
            &["-x", b, spec, "--count", "name,size"],
            &quiet(b, &[&n]),
        );
        assert_eq!(
            stdout(&o),
            want_counts.render(&["name", "size"], None),
            "{engine}"
        );
        let o = stat(engine, &["-x", b, spec, "--hist", "size"], &quiet(b, &[&n]));
        assert_eq!(stdout(&o), want_sizes.render("size"), "{engine}");
        // A tracepoint seen by every process: only the command's writes count.
        let o = stat(
            engine,
            &["syscalls:sys_enter_write", "--hist", "count"],
            &quiet(b, &[&n]),
        );
        assert_eq!(stdout(&o), want_writes.render("count"), "{engine}");
        // --top and a pseudo key: the command's own pid column.
        let o = stat(
            engine,
            &[
                "syscalls:sys_enter_getppid",
                "--count",
                "comm",
                "--top",
                "1",
            ],
            &quiet(b, &[&n]),
        );
        // (The shell before its exec calls getppid too.)
        let text = stdout(&o);
        assert_eq!(
            text.lines().take(2).collect::<Vec<_>>(),
            ["   COUNT  comm", &format!("     {N}  stat_calls")],
            "{engine}: {text}"
        );
    }
    // Children of the command count too (the BPF engine follows forks in the kernel).
    for engine in ENGINES {
        let o = stat(
            engine,
            &["syscalls:sys_enter_getppid", "--count", "comm"],
            &[
                "--".into(),
                "sh".into(),
                "-c".into(),
                format!("{b} {n} >/dev/null; {b} {n} >/dev/null"),
            ],
        );
        let text = stdout(&o);
        let row = text.lines().find(|l| l.ends_with("  stat_calls"));
        assert_eq!(
            row.and_then(|l| l.split_whitespace().next()),
            Some((2 * N).to_string().as_str()),
            "{engine}: {text}"
        );
    }
    // Linear buckets, from both engines.
    let linear = ["-x", b, spec, "--hist", "size", "--linear", "3"];
    let mut want = LinearHist::new(3);
    for i in 0..u64::from(N) {
        want.add(i % 10 + 1);
    }
    for engine in ENGINES {
        let o = stat(engine, &linear, &quiet(b, &[&n]));
        assert_eq!(stdout(&o), want.render("size"), "{engine}");
    }
    // What the BPF engine cannot do: --bpf says so, --bpf=auto says why in one line and
    // counts in user space (here: a tracefs filter, which only perf samples pass through).
    let filtered = ["-x", b, spec, "--hist", "size", "--filter", "size > 5"];
    let mut cmd: Vec<&str> = vec!["stat", "--bpf"];
    cmd.extend_from_slice(&filtered);
    let q = quiet(b, &[&n]);
    cmd.extend(q.iter().map(String::as_str));
    let refused = Command::new(common::rprobe_bin())
        .args(&cmd)
        .output()
        .expect("run");
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("--bpf: --filter applies to perf samples; the BPF engine does not see it"),
        "{}",
        common::show_output(&refused)
    );
    let mut auto_args = vec!["--bpf=auto"];
    auto_args.extend_from_slice(&filtered);
    let auto = stat("user", &auto_args, &quiet(b, &[&n]));
    let mut want = Log2Hist::default();
    for i in 0..u64::from(N) {
        if i % 10 + 1 > 5 {
            want.add(i % 10 + 1);
        }
    }
    assert_eq!(stdout(&auto), want.render("size"));
    let err = String::from_utf8_lossy(&auto.stderr).into_owned();
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("rprobe stat: counting in user space: "))
            .count(),
        1,
        "{err}"
    );
    no_session_left();
}

/// `(low, count)` of every bucket line of a bcc-style histogram.
fn buckets(text: &str) -> Vec<(u64, u64)> {
    text.lines()
        .filter(|l| l.contains(" -> "))
        .filter_map(|l| {
            let (range, rest) = l.split_once(':')?;
            let low = range.split("->").next()?.trim().parse().ok()?;
            let count = rest.split('|').next()?.trim().parse().ok()?;
            Some((low, count))
        })
        .collect()
}

#[test]
fn function_latency_lands_in_the_right_log2_buckets() {
    if !live("live_stat::function_latency_lands_in_the_right_log2_buckets") {
        return;
    }
    // One at a time: the load of one would shift another's latencies.
    let _lock = common::tracefs_lock();
    let bin = common::stat_calls();
    let b = bin.to_str().expect("path");
    for engine in ENGINES {
        // Real-time priority (chrt execs the fixture): on a busy machine a woken CFS task
        // can wait a millisecond for a CPU, which would move a nap into the next bucket.
        let cmd: Vec<String> = ["--", "chrt", "-f", "10", b, "nap"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let o = stat(engine, &["-x", b, "--latency", "nap"], &cmd);
        let text = stdout(&o);
        // Two naps each of 1100, 2200, 4400 and 8800 us: 1024-2047 .. 8192-16383 (near each
        // bucket's low end: room for sleep overshoot).
        let got: Vec<(u64, u64)> = buckets(&text).into_iter().filter(|b| b.1 > 0).collect();
        assert_eq!(
            got,
            vec![(1024, 2), (2048, 2), (4096, 2), (8192, 2)],
            "{engine}:\n{text}"
        );
    }
    no_session_left();
}

/// Starts `rprobe stat ARGS` and waits for its "Counting" line (its events are enabled then).
#[allow(clippy::zombie_processes)]
fn start_stat(args: &[&str]) -> Child {
    let mut child = Command::new(common::rprobe_bin())
        .arg("stat")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rprobe stat");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut line = String::new();
    loop {
        line.clear();
        if err.read_line(&mut line).unwrap_or(0) == 0 || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rprobe stat ended before it started counting: {line}");
        }
        if line.starts_with("Counting") {
            // Keep draining stderr so the child never blocks on it.
            std::thread::spawn(move || {
                let mut rest = String::new();
                while err.read_line(&mut rest).unwrap_or(0) > 0 {}
            });
            return child;
        }
    }
}

fn interrupt(child: Child) -> String {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", common::show_output(&out));
    stdout(&out)
}

/// The `count` of a `--json` latency object.
fn json_count(text: &str) -> u64 {
    let line = text.lines().last().unwrap_or_default();
    let at = line.find("],\"count\":").map(|i| i + 10).expect("count");
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|d| d.parse().ok())
        .expect("a number")
}

#[test]
fn run_queue_latency_agrees_between_engines_under_load() {
    if !live("live_stat::run_queue_latency_agrees_between_engines_under_load") {
        return;
    }
    // One at a time: the load of one would shift another's latencies.
    let _lock = common::tracefs_lock();
    let bin = common::stat_calls();
    let args = [
        "--latency",
        "sched:sched_wakeup,sched:sched_switch",
        "-m",
        "256",
        "--json",
    ];
    let user = start_stat(&args);
    let mut bpf_args = vec!["--bpf"];
    bpf_args.extend_from_slice(&args);
    let bpf = start_stat(&bpf_args);
    // Two spinners per CPU keep the CPUs busy while a sleeper wakes 2000 times.
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let spinners: Vec<Child> = (0..2 * cpus)
        .map(|_| {
            Command::new(&bin)
                .args(["spin", "3000"])
                .spawn()
                .expect("spinner")
        })
        .collect();
    let sleeper = Command::new(&bin)
        .args(["wake", "2000", "200"])
        .status()
        .expect("sleeper");
    assert!(sleeper.success());
    for mut s in spinners {
        assert!(s.wait().expect("spinner").success());
    }
    // Both stop at once, before the load ends: perf samples miss hits that leave an idle
    // CPU (see the README), so an idle tail would widen the gap.
    let (u, b) = (interrupt(user), interrupt(bpf));
    let (nu, nb) = (json_count(&u), json_count(&b));
    assert!(nu >= 2000 && nb >= 2000, "user {nu}, bpf {nb}\n{u}\n{b}");
    let diff = nu.abs_diff(nb) as f64 / nu.max(nb) as f64;
    assert!(
        diff <= 0.01,
        "user {nu} vs bpf {nb} pairs: {:.2}% apart\n{u}\n{b}",
        diff * 100.0
    );
    // Sane: the sleeper's wakeups waited for the spinners, and none for a minute.
    for text in [&u, &b] {
        let line = text.lines().last().unwrap_or_default();
        assert!(line.contains("\"type\":\"latency\"") && line.contains("\"interval\":false"));
        assert!(!line.contains("\"low\":67108864"), "{line}");
    }
    assert!(u.contains("\"lost\":0"), "{u}");
}

#[test]
fn intervals_print_with_timestamps_and_a_final_total() {
    if !live("live_stat::intervals_print_with_timestamps_and_a_final_total") {
        return;
    }
    // One at a time: the load of one would shift another's latencies.
    let _lock = common::tracefs_lock();
    let bin = common::stat_calls();
    let b = bin.to_str().expect("path");
    for engine in ENGINES {
        // Ten sleeps of 100 ms: spread over about five intervals.
        let o = stat(
            engine,
            &[
                "syscalls:sys_enter_clock_nanosleep",
                "--count",
                "comm",
                "-i",
                "0.2",
            ],
            &quiet(b, &["wake", "10", "100000"]),
        );
        let text = stdout(&o);
        let stamps = text
            .lines()
            .filter(|l| l.len() == 10 && l.starts_with('[') && l.ends_with(']'))
            .count();
        assert!(stamps >= 2, "{engine}: {text}");
        // Rows of the fixture: per interval, then the whole run's.
        let rows: Vec<u64> = text
            .lines()
            .filter(|l| l.ends_with("  stat_calls"))
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        assert_eq!(rows.last(), Some(&10), "{engine}: {text}");
        assert_eq!(
            rows[..rows.len() - 1].iter().sum::<u64>(),
            10,
            "{engine}: {text}"
        );
        assert!(text.contains("Total over "), "{engine}: {text}");
    }
}

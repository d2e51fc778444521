//! The BPF engine on this kernel: programs rprobe emits are accepted by the verifier, run on
//! tracepoints and on uprobe events, and count exactly what `fixtures/src/stat_calls.c` does
//! (N getppid calls, write sizes 1..N, `work(i % 10 + 1, names[i % 3])`).

mod common;

use rprobe::aggregate::bpf::engine::Engine;
use rprobe::aggregate::bpf::prog::{Context, Plan, Source};
use rprobe::aggregate::count::KeyPart;
use rprobe::aggregate::hist::Log2Hist;
use rprobe::perf::abi::{perf_type, EventAttr};
use rprobe::probes::fetch::{FetchArg, FetchType, Num};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Command;

const N: u32 = 300;

fn run(bin: &Path) -> u32 {
    let child = Command::new(bin)
        .arg(N.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n", fixture_total(N))
    );
    pid
}

fn tracepoint_id(group: &str, event: &str) -> u64 {
    let path = format!("{}/events/{group}/{event}/id", common::TRACEFS);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .parse()
        .expect("id")
}

/// An enabled perf event on tracefs event `id` (on CPU 0), for one BPF program to ride on.
/// The program then runs on every hit of the event on every CPU (see `engine`'s docs).
fn open_event(id: u64) -> OwnedFd {
    let attr = EventAttr {
        type_: perf_type::TRACEPOINT,
        config: id,
        sample_period: 1,
        ..EventAttr::default()
    };
    rprobe::sys::perf_event::perf_event_open(&attr.encode(128), -1, 0, "tracepoint")
        .expect("perf_event_open")
}

fn live(test: &str) -> bool {
    common::live_or_skip(test, common::Needs::Tracefs)
}

/// bcc's buckets for `values`.
fn expected_hist(values: impl Iterator<Item = u64>) -> Log2Hist {
    let mut h = Log2Hist::default();
    for v in values {
        h.add(v);
    }
    h
}

#[test]
fn tracepoint_counts_and_histograms_are_exact() {
    if !live("live_bpf::tracepoint_counts_and_histograms_are_exact") {
        return;
    }
    let bin = common::stat_calls();
    let count_plan = Plan {
        key: vec![Source::Pid],
        hist: None,
        linear: None,
        string_cap: 16,
        context: Context::Tracepoint,
    };
    let counter = Engine::load(count_plan, 4096)
        .unwrap_or_else(|e| panic!("{e}\n{}", e.verifier_log().unwrap_or_default()));
    let getppid = open_event(tracepoint_id("syscalls", "sys_enter_getppid"));
    counter.attach(&getppid).expect("attach");
    // The same program again is refused: the kernel keeps it on the tracepoint already.
    let again = open_event(tracepoint_id("syscalls", "sys_enter_getppid"));
    let err = counter.attach(&again).expect_err("a second attach");
    assert_eq!(err.errno(), Some(libc::EEXIST), "{err}");
    // sys_enter_write: `size_t count` at offset 32.
    let hist_plan = Plan {
        key: vec![Source::Pid, Source::Comm],
        hist: Some(Source::Field {
            offset: 32,
            size: 8,
            signed: false,
        }),
        linear: None,
        string_cap: 16,
        context: Context::Tracepoint,
    };
    let hist = Engine::load(hist_plan, 4096)
        .unwrap_or_else(|e| panic!("{e}\n{}", e.verifier_log().unwrap_or_default()));
    let write = open_event(tracepoint_id("syscalls", "sys_enter_write"));
    hist.attach(&write).expect("attach");

    let pid = run(&bin);
    let counts = counter.counts();
    assert_eq!(counts.get(&[KeyPart::UInt(u64::from(pid))]), u64::from(N));
    let hists = hist.hists();
    let mine = hists
        .get(
            &[
                KeyPart::UInt(u64::from(pid)),
                KeyPart::Str("stat_calls".into()),
            ][..],
        )
        .unwrap_or_else(|| panic!("no histogram for {pid}: {:?}", hists.keys()));
    // The fixture's own writes (1..=N bytes) plus its final printf of the total.
    let printed = format!("{}\n", fixture_total(N)).len() as u64;
    let want = expected_hist((1..=u64::from(N)).chain([printed]));
    assert_eq!(mine, &want, "{}", mine.render("bytes"));
}

/// What `stat_calls N` prints: the sum of sizes and name lengths.
fn fixture_total(n: u32) -> i64 {
    let names = ["alpha", "beta", "gamma"];
    (0..n as i64)
        .map(|i| i % 10 + 1 + names[(i % 3) as usize].len() as i64)
        .sum()
}

#[test]
fn uprobe_args_count_by_string_and_histogram_by_number() {
    if !live("live_bpf::uprobe_args_count_by_string_and_histogram_by_number") {
        return;
    }
    let _lock = common::tracefs_lock();
    let bin = common::stat_calls();
    let table = rprobe::elf::parse_functions(&std::fs::read(&bin).expect("read")).expect("elf");
    let work = table.find_by_name("work").next().expect("work symbol");
    let off = work.file_offset.expect("file offset");
    let group = common::group("bpf");
    let mut guard = common::EventGuard::new();
    guard.own_group(&group);
    let line = format!(
        "p:{group}/work {}:{off:#x} size=%di:s64 name=+0(%si):ustring",
        bin.display()
    );
    common::write_uprobe_events(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
    let id = tracepoint_id(&group, "work");

    let ctx = Context::Uprobe { probe_offset: off };
    let size = Source::Fetch {
        arg: FetchArg::Reg("di"),
        ty: FetchType::S(64),
    };
    let name = Source::Fetch {
        arg: FetchArg::Deref {
            offset: Num::dec(0),
            user: false,
            inner: Box::new(FetchArg::Reg("si")),
        },
        ty: FetchType::Ustring,
    };
    let by_name = Engine::load(
        Plan {
            key: vec![Source::Pid, name, size.clone()],
            hist: None,
            linear: None,
            string_cap: 32,
            context: ctx,
        },
        4096,
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", e.verifier_log().unwrap_or_default()));
    let hist = Engine::load(
        Plan {
            key: vec![Source::Tid],
            hist: Some(size),
            linear: None,
            string_cap: 32,
            context: ctx,
        },
        4096,
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", e.verifier_log().unwrap_or_default()));
    // One perf event holds one program: two programs on one tracefs event need two.
    let (a, b) = (open_event(id), open_event(id));
    by_name.attach(&a).expect("attach");
    hist.attach(&b).expect("attach");
    let pid = run(&bin);
    drop((a, b));
    guard.delete_all();

    let counts = by_name.counts();
    let names = ["alpha", "beta", "gamma"];
    for i in 0..N as i64 {
        let key = [
            KeyPart::UInt(u64::from(pid)),
            KeyPart::Str(names[(i % 3) as usize].into()),
            KeyPart::Int(i % 10 + 1),
        ];
        // i % 3 and i % 10 repeat every 30 calls: each (name, size) pair N / 30 times.
        let table = counts.render(&["pid", "name", "size"], None);
        assert_eq!(counts.get(&key), u64::from(N / 30), "{key:?}\n{table}");
    }
    // Only the fixture runs its own copy: exactly N hits in 30 keys.
    assert_eq!((counts.total(), counts.len()), (u64::from(N), 30));
    let hists = hist.hists();
    let want = expected_hist((0..u64::from(N)).map(|i| i % 10 + 1));
    assert_eq!(hists.len(), 1, "{:?}", hists.keys());
    assert_eq!(hists.values().next(), Some(&want));
}

#[test]
fn a_refused_program_comes_back_with_the_verifier_log() {
    if !live("live_bpf::a_refused_program_comes_back_with_the_verifier_log") {
        return;
    }
    use rprobe::aggregate::bpf::insn::{encode_all, Insn, R0, R2};
    // Returns r2, which was never written: the verifier refuses to read it.
    let prog = [Insn::mov_reg(R0, R2), Insn::exit()];
    let err = rprobe::sys::bpf::Prog::load(
        rprobe::sys::bpf::PROG_TYPE_TRACEPOINT,
        &encode_all(&prog),
        "rprobe_bad",
    )
    .expect_err("the verifier refuses an uninitialised read");
    assert_eq!(err.error.errno(), Some(libc::EACCES), "{err}");
    assert!(err.log.contains("R2 !read_ok"), "{}", err.log);
}

#[test]
fn function_latency_lands_in_the_right_buckets() {
    if !live("live_bpf::function_latency_lands_in_the_right_buckets") {
        return;
    }
    use rprobe::aggregate::bpf::engine::LatencyEngine;
    use rprobe::aggregate::bpf::prog::LatencyPlan;
    let _lock = common::tracefs_lock();
    let bin = common::stat_calls();
    let table = rprobe::elf::parse_functions(&std::fs::read(&bin).expect("read")).expect("elf");
    let nap = table.find_by_name("nap").next().expect("nap symbol");
    let off = nap.file_offset.expect("file offset");
    let group = common::group("bpflat");
    let mut guard = common::EventGuard::new();
    guard.own_group(&group);
    for line in [
        format!("p:{group}/nap {}:{off:#x}", bin.display()),
        format!("r:{group}/nap_ret {}:{off:#x}", bin.display()),
    ] {
        common::write_uprobe_events(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    let ctx = Context::Uprobe { probe_offset: off };
    let plan = LatencyPlan {
        entry_key: Source::Tid,
        entry_ctx: ctx,
        exit_key: Source::Tid,
        exit_ctx: ctx,
        unit_ns: 1000,
    };
    let lat = LatencyEngine::load(&plan, 1024)
        .unwrap_or_else(|e| panic!("{e}\n{}", e.verifier_log().unwrap_or_default()));
    let entry = open_event(tracepoint_id(&group, "nap"));
    let exit = open_event(tracepoint_id(&group, "nap_ret"));
    lat.attach_entry(&entry).expect("attach entry");
    lat.attach_exit(&exit).expect("attach exit");
    // Real-time priority: on a busy machine a woken CFS task can wait a millisecond for a
    // CPU, which would move a nap into the next bucket.
    let out = Command::new("chrt")
        .args(["-f", "10"])
        .arg(&bin)
        .arg("nap")
        .output()
        .expect("run chrt");
    assert!(out.status.success());
    drop((entry, exit));
    guard.delete_all();
    let h = lat.hist();
    // Two naps each of 1100, 2200, 4400, 8800 us: buckets 11 (1024-2047) .. 14 (8192-16383),
    // each nap near its bucket's low end, leaving the most room for sleep overshoot on a busy machine.
    let mut want = Log2Hist::default();
    for b in 11..=14 {
        want.slots[b] = 2;
    }
    assert_eq!(h, want, "{}", h.render("usecs"));
}

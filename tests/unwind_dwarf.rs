//! DWARF unwinding of `perf record --call-graph dwarf` samples (REGS_USER + STACK_USER) with
//! `rprobe::unwind`, against perf 6.1's own unwinding of the same file: for every sample of a
//! CPU-bound -O2 fixture without frame pointers, the user frames (map-relative addresses, as
//! perf prints them) are the same, and the chain reaches from `leaf` up through `main`.

mod common;

use rprobe::perf::abi::{record, sample};
use rprobe::perf::reader::records::{parse_mmap2, parse_sample};
use rprobe::perf::reader::PerfFile;
use rprobe::unwind::{reg, user_reg, ProcessUnwinder};
use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::rc::Rc;

fn build_fixture(dir: &Path) -> PathBuf {
    common::build_c_fixture(
        "cpu_chain.c",
        &["-O2", "-Wall", "-Wextra", "-Werror"],
        &dir.join("cpu_chain"),
    )
}

/// `perf script -F tid,time,ip,sym --ns` blocks: time -> user frames (map-relative). perf
/// prints a frame inside inlined code once per inlined function, all at the frame's address
/// (`27304 __libc_start_main_impl (inlined)` with libc6-dbg installed): one frame each.
fn perf_frames(perf_home: &Path, data: &Path, tid: i32) -> BTreeMap<String, Vec<u64>> {
    let out = common::perf(perf_home)
        .args(["script", "-F", "tid,time,ip,sym", "--ns", "-i"])
        .arg(data)
        .output()
        .expect("perf script");
    assert!(out.status.success(), "{}", common::show_output(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut m = BTreeMap::new();
    let mut current: Option<(String, Vec<u64>)> = None;
    let mut prev_inlined = false;
    for line in text.lines() {
        if let Some(frame) = line.strip_prefix('\t') {
            let addr = frame.split_whitespace().next().unwrap_or_default();
            if let (Some((_, v)), Ok(a)) = (current.as_mut(), u64::from_str_radix(addr, 16)) {
                let inlined = frame.ends_with("(inlined)");
                let inline_repeat = (inlined || prev_inlined) && v.last() == Some(&a);
                prev_inlined = inlined;
                if a < 0xffff_8000_0000_0000 && !inline_repeat {
                    v.push(a);
                }
            }
        } else if let Some((t, time)) = line.trim().split_once(' ') {
            if let Some((k, v)) = current.take() {
                m.insert(k, v);
            }
            if t.trim().parse::<i32>() == Ok(tid) {
                current = Some((time.trim().trim_end_matches(':').to_string(), Vec::new()));
            }
        }
    }
    if let Some((k, v)) = current {
        m.insert(k, v);
    }
    m
}

#[test]
fn unwinds_what_perf_unwinds() {
    if !common::live_or_skip(
        "unwind_dwarf::unwinds_what_perf_unwinds",
        common::Needs::TracefsAndPerf,
    ) {
        return;
    }
    let fx = common::fixtures();
    let dir = fx.dir.join("unwind");
    std::fs::create_dir_all(&dir).expect("dir");
    let bin = build_fixture(&dir);
    let data = dir.join("dwarf.data");
    let out = common::perf(&fx.perf_home)
        .args(["record", "-q", "-F", "999", "--call-graph", "dwarf", "-o"])
        .arg(&data)
        .arg("--")
        .arg(&bin)
        .arg("300")
        .output()
        .expect("perf record");
    assert!(out.status.success(), "{}", common::show_output(&out));

    let bytes = std::fs::read(&data).expect("read perf.data");
    let file = PerfFile::parse(&bytes).expect("parse perf.data");
    let attr = file
        .attrs
        .iter()
        .map(|a| a.attr)
        .find(|a| a.samples(sample::STACK_USER))
        .expect("an attr with STACK_USER");
    // The fixture's pid: the one that maps it.
    let mut maps: Vec<(u64, u64, u64, String)> = Vec::new();
    let mut pid = None;
    for rec in file.records() {
        if rec.type_ == record::MMAP2 {
            if let Some(m) = parse_mmap2(rec.body, rec.misc) {
                let name = String::from_utf8_lossy(m.filename).into_owned();
                if name == bin.to_string_lossy() {
                    pid = Some(m.pid);
                }
                // Every executable map, [vdso] included (clock_gettime runs there): perf
                // prints its frames map-relative too.
                if m.prot & 4 != 0 {
                    maps.push((m.addr, m.addr + m.len, m.pgoff, name));
                }
            }
        }
    }
    let pid = pid.expect("an MMAP2 of the fixture");
    let want = perf_frames(&fx.perf_home, &data, pid);

    let mut unwinder = ProcessUnwinder::new();
    let mut files: BTreeMap<String, Rc<dyn Deref<Target = [u8]>>> = BTreeMap::new();
    for (start, end, pgoff, name) in maps.iter().filter(|m| m.3.starts_with('/')) {
        let img = files
            .entry(name.clone())
            .or_insert_with(|| Rc::new(std::fs::read(name).unwrap_or_default()))
            .clone();
        unwinder.add_mapping(name, img, *start, *end, *pgoff);
    }
    let rel = |a: u64| {
        maps.iter()
            .find(|(s, e, _, _)| (*s..*e).contains(&a))
            .map_or(a, |(s, _, off, _)| a - s + off)
    };
    let (mut compared, mut full_chain) = (0, 0);
    for rec in file.records() {
        if rec.type_ != record::SAMPLE {
            continue;
        }
        let Some(s) = parse_sample(&attr, rec.body) else {
            continue;
        };
        if s.tid != pid {
            continue;
        }
        let (Some((_, regs)), Some(stack)) = (s.regs_user, s.stack_user) else {
            continue;
        };
        let r = |i| user_reg(attr.sample_regs_user, regs, i).expect("register");
        let frames: Vec<u64> = unwinder
            .unwind(r(reg::IP), r(reg::SP), r(reg::BP), stack)
            .into_iter()
            .map(rel)
            .collect();
        let time = format!("{}.{:09}", s.time / 1_000_000_000, s.time % 1_000_000_000);
        let Some(expected) = want.get(&time) else {
            panic!("perf script has no sample at {time}");
        };
        assert_eq!(&frames, expected, "sample at {time}");
        compared += 1;
        if frames.len() >= 4 {
            full_chain += 1;
        }
    }
    assert!(compared >= 100, "only {compared} samples of the fixture");
    assert!(
        full_chain * 10 >= compared * 8,
        "{full_chain} of {compared} reach main"
    );
}

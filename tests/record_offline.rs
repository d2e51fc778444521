//! The perf.data writer end to end without root or a live kernel: a file built from a fixture
//! tracefs tree (a uprobe format with a string, a number and an array), a synthesized COMM
//! and hand-made samples, read back by `perf script` 6.1 with every field decoded; and the
//! checkpoint protocol, where a writer that never finishes (a killed recorder) leaves a file
//! perf reads up to the last checkpoint.

mod common;

use rprobe::perf::abi::record;
use rprobe::perf::attr::{event_attr, AttrOptions, EventKind};
use rprobe::perf::synth::{self, SampleId};
use rprobe::perf::tracing_data;
use rprobe::perf::writer::{AttrEntry, Features, PerfDataWriter};
use std::path::Path;
use std::process::Command;

/// The texts of this kernel's (6.18) `events/header_page` and `events/header_event`.
const HEADER_PAGE: &str = "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n\tfield: char data;\toffset:16;\tsize:4080;\tsigned:0;\n";
const HEADER_EVENT: &str = "# compressed entry header\n\ttype_len    :    5 bits\n\ttime_delta  :   27 bits\n\tarray       :   32 bits\n\n\tpadding     : type == 29\n\ttime_extend : type == 30\n\ttime_stamp : type == 31\n\tdata max type_len  == 28\n";

const ID: u64 = 77;

fn fake_tracefs(root: &Path) {
    let ev = root.join("events/rptest/ev");
    std::fs::create_dir_all(&ev).expect("mkdir");
    std::fs::write(root.join("events/header_page"), HEADER_PAGE).expect("w");
    std::fs::write(root.join("events/header_event"), HEADER_EVENT).expect("w");
    let format = include_str!("../fixtures/tracefs/uprobe_ev.format");
    std::fs::write(ev.join("format"), format).expect("w");
}

/// A SAMPLE of the recorder's layout (id, ip, pid/tid, time, cpu, period, raw) for the
/// fixture uprobe `rptest:ev` (id 2326): a, s and arr as given.
fn sample(pid: u32, time: u64, a: u32, s: &str, arr: [u8; 4]) -> Vec<u8> {
    let mut raw = Vec::new();
    raw.extend_from_slice(&2326u16.to_ne_bytes());
    raw.extend_from_slice(&[0, 0]);
    raw.extend_from_slice(&(pid as i32).to_ne_bytes());
    raw.extend_from_slice(&0x401000u64.to_ne_bytes());
    raw.extend_from_slice(&a.to_ne_bytes());
    let loc = ((s.len() as u32 + 1) << 16) | 28;
    raw.extend_from_slice(&loc.to_ne_bytes());
    raw.extend_from_slice(&arr);
    raw.extend_from_slice(s.as_bytes());
    raw.push(0);
    while (4 + raw.len()) % 8 != 0 {
        raw.push(0);
    }
    let mut r = Vec::new();
    r.extend_from_slice(&record::SAMPLE.to_ne_bytes());
    r.extend_from_slice(&2u16.to_ne_bytes()); // PERF_RECORD_MISC_USER
    r.extend_from_slice(&0u16.to_ne_bytes());
    for v in [ID, 0x401000] {
        r.extend_from_slice(&v.to_ne_bytes());
    }
    r.extend_from_slice(&pid.to_ne_bytes());
    r.extend_from_slice(&pid.to_ne_bytes());
    r.extend_from_slice(&time.to_ne_bytes());
    r.extend_from_slice(&[0; 8]); // cpu 0, res
    r.extend_from_slice(&1u64.to_ne_bytes()); // period
    r.extend_from_slice(&(raw.len() as u32).to_ne_bytes());
    r.extend_from_slice(&raw);
    let size = r.len() as u16;
    r[6..8].copy_from_slice(&size.to_ne_bytes());
    r
}

fn writer(dir: &Path, file: &Path) -> PerfDataWriter {
    fake_tracefs(dir);
    let texts = tracing_data::read_texts(dir, &[("rptest".into(), "ev".into())]).expect("texts");
    let kind = EventKind::Tracepoint {
        group: "rptest".into(),
        event: "ev".into(),
        id: 2326,
    };
    let opts = AttrOptions {
        callchain: false,
        dwarf_stack: 0,
        sampling: None,
        inherit: false,
        enable_on_exec: false,
        user_only: false,
        wakeup_watermark: 0,
    };
    let attrs = vec![AttrEntry {
        attr: event_attr(&kind, &opts),
        name: kind.name(),
        ids: vec![ID],
    }];
    let features = Features {
        tracing_data: Some(tracing_data::encode(&texts, 4096)),
        hostname: "offline".into(),
        ..Features::default()
    };
    let f = std::fs::File::create(file).expect("create");
    let mut w = PerfDataWriter::new(f, attrs, &features).expect("writer");
    let mut rec = Vec::new();
    synth::comm(
        &mut rec,
        42,
        42,
        "demo",
        &SampleId {
            pid: 42,
            tid: 42,
            id: ID,
            ..SampleId::default()
        },
    );
    synth::bare(&mut rec, record::FINISHED_INIT);
    w.write(&rec).expect("write");
    w
}

fn perf_script(file: &Path) -> Option<String> {
    let home = tempfile::tempdir().expect("home");
    let out = match Command::new("perf")
        .env("HOME", home.path())
        .args(["script", "-i"])
        .arg(file)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            common::skip("record_offline", &format!("needs perf: {e}"));
            return None;
        }
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "{}",
        common::show_output(&out)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn perf_decodes_every_field_of_a_written_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("perf.data");
    let mut w = writer(dir.path(), &file);
    w.write(&sample(42, 1_000_000_000, 7, "hi", [1, 2, 3, 4]))
        .expect("w");
    w.write(&sample(
        42,
        1_500_000_000,
        4_000_000_000,
        "two words",
        [0xff, 0, 0x10, 9],
    ))
    .expect("w");
    w.checkpoint().expect("cp");
    w.finish(&Features {
        sample_time: Some((1_000_000_000, 1_500_000_000)),
        ..Features::default()
    })
    .expect("finish");
    let Some(text) = perf_script(&file) else {
        return;
    };
    assert_eq!(
        text,
        "            demo    42 [000]     1.000000: rptest:ev: (401000) a=7 s=\"hi\" arr={0x1,0x2,0x3,0x4}\n\
         \x20           demo    42 [000]     1.500000: rptest:ev: (401000) a=4000000000 s=\"two words\" arr={0xff,0x0,0x10,0x9}\n"
    );
}

#[test]
fn an_unfinished_file_reads_up_to_its_last_checkpoint() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("perf.data");
    let mut w = writer(dir.path(), &file);
    for i in 0..3u32 {
        w.write(&sample(
            42,
            1_000_000_000 + u64::from(i),
            i,
            "before",
            [0; 4],
        ))
        .expect("w");
        w.checkpoint().expect("cp");
    }
    // Written but never claimed by a checkpoint: what a SIGKILL leaves behind.
    w.write(&sample(42, 2_000_000_000, 99, "after", [0; 4]))
        .expect("w");
    drop(w);
    let Some(text) = perf_script(&file) else {
        return;
    };
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for (i, l) in lines.iter().enumerate() {
        assert!(l.contains(&format!(" a={i} s=\"before\"")), "{l}");
    }
}

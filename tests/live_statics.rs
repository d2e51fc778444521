//! A static local of a PIE, read live through DWARF (`DW_OP_addr` → `@+OFF`): the values the
//! uprobe reads are the variable's, which holds only if OFF is relative to the probe's
//! mapping (the kernel's `translate_user_vaddr`), not the variable's own file offset.

mod common;

use common::{parse_trace, EventGuard, Instance};
use std::path::PathBuf;
use std::process::Command;

#[test]
fn static_local_values_read_back() {
    if !common::live_or_skip(
        "live_statics::static_local_values_read_back",
        common::Needs::Tracefs,
    ) {
        return;
    }
    let _lock = common::tracefs_lock();
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("statics-{}", std::process::id()));
    let bin = common::build_c_fixture(
        "static_local.c",
        &["-O0", "-g", "-Wall", "-Wextra", "-Werror"],
        &dir.join("static_local"),
    );
    let group = common::group("statics");
    let mut guard = EventGuard::new();
    guard.own_group(&group);
    let spec = format!("{group}:bump=bump counter");
    let out = common::rprobe(&["add", "-x", bin.to_str().expect("utf-8"), &spec]);
    assert!(out.status.success(), "{}", common::show_output(&out));
    let mut inst = Instance::create("statics");
    inst.enable(&group, "bump");
    let run = Command::new(&bin).output().expect("run fixture");
    assert_eq!(String::from_utf8_lossy(&run.stdout), "130\n");
    let trace = inst.trace();
    inst.disable_all();
    let seen: Vec<i128> = parse_trace(&trace)
        .iter()
        .filter(|r| r.event == "bump")
        .filter_map(|r| r.int("counter"))
        .collect();
    assert_eq!(seen, [40, 41, 43], "{trace}");
    drop(inst);
    guard.delete_all();
}

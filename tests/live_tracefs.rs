//! Live tests of `rprobe::tracefs` against this machine's tracefs: features, uprobe
//! append/read-back/format/enable/filter/delete, error_log capture, instances.
//!
//! Needs root and a mounted tracefs with `uprobe_events`. Without them each test prints
//! `SKIP <test>: <reason>` and passes, unless `CI` is set, where a skip is a failure. Every
//! probe lives in a group `rptest_<pid>_<test>` on the test's own copy of `true`, and is
//! removed by a drop guard even when a test panics; the guard uses plain file writes, not the
//! code under test.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSegment};
use rprobe::tracefs::{ProbeKind, Tracefs, TracefsError};

/// The tracefs to test, or None after printing why the test is skipped.
fn live(test: &str) -> Option<Tracefs> {
    let reason = if !nix::unistd::geteuid().is_root() {
        "needs root to write tracefs".to_owned()
    } else {
        match Tracefs::find() {
            Err(e) => format!("needs tracefs: {e}"),
            Ok(t) if !t.root().join("uprobe_events").is_file() => {
                "needs uprobe_events (CONFIG_UPROBE_EVENTS)".to_owned()
            }
            Ok(t) => return Some(t),
        }
    };
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {reason} (CI is set, so a skip is a failure)");
    }
    eprintln!("SKIP {test}: {reason}");
    None
}

/// A private copy of `true` and the file offset of its entry point.
///
/// Each test probes its own copy, so no other tool's uprobe shares its inode and offset, and
/// the entry point is an instruction boundary, so a probe there is safe.
struct Target {
    /// Removed after the probes (declare the `Target` before the `GroupGuard`).
    _dir: tempfile::TempDir,
    path: PathBuf,
    offset: u64,
    /// Length of the entry point's first instruction: `offset + second_insn` is the next
    /// instruction boundary.
    second_insn: u64,
}

fn target() -> Target {
    let original = ["/usr/bin/true", "/bin/true"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("no /usr/bin/true or /bin/true");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rptest_true");
    std::fs::copy(&original, &path).expect("copy true");
    let data = std::fs::read(&path).expect("read target binary");
    let file = object::File::parse(&*data).expect("parse target ELF");
    let entry = file.entry();
    let offset = file
        .segments()
        .find_map(|seg| {
            let (file_off, size) = seg.file_range();
            let addr = seg.address();
            (entry >= addr && entry < addr + size).then(|| file_off + (entry - addr))
        })
        .expect("entry point inside a segment");
    // `_start` opens with `endbr64` (f3 0f 1e fa) on CET builds, else `xor %ebp,%ebp` (31 ed).
    let first = data
        .get(offset as usize..offset as usize + 4)
        .expect("entry bytes");
    let second_insn = match first {
        [0xf3, 0x0f, 0x1e, 0xfa] => 4,
        [0x31, 0xed, ..] => 2,
        other => panic!("unexpected first instruction at _start: {other:02x?}"),
    };
    Target {
        _dir: dir,
        path,
        offset,
        second_insn,
    }
}

/// Deletes every uprobe of its group when dropped, with plain file writes.
struct GroupGuard {
    root: PathBuf,
    group: String,
}

impl GroupGuard {
    fn new(tracefs: &Tracefs, test: &str) -> GroupGuard {
        GroupGuard {
            root: tracefs.root().to_owned(),
            group: format!("rptest_{}_{test}", std::process::id()),
        }
    }

    /// Event names of this group still in uprobe_events.
    fn remaining(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.root.join("uprobe_events")).unwrap_or_default();
        let prefix = format!(":{}/", self.group);
        let mut events: Vec<String> = text
            .lines()
            .filter_map(|line| {
                let head = line.split_whitespace().next()?;
                let at = head.find(&prefix)?;
                Some(head.get(at + prefix.len()..)?.to_owned())
            })
            .collect();
        events.sort();
        events.dedup();
        events
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        for event in self.remaining() {
            let enable = self
                .root
                .join("events")
                .join(&self.group)
                .join(&event)
                .join("enable");
            if let Ok(mut f) = OpenOptions::new().write(true).open(&enable) {
                let _ = f.write(b"0");
            }
            if let Ok(mut f) = OpenOptions::new()
                .append(true)
                .open(self.root.join("uprobe_events"))
            {
                let _ = f.write(format!("-:{}/{event}\n", self.group).as_bytes());
            }
        }
    }
}

/// Removes an instance directory when dropped.
struct InstanceGuard(PathBuf);

impl Drop for InstanceGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn features_match_this_kernel() {
    let Some(tracefs) = live("live_tracefs::features_match_this_kernel") else {
        return;
    };
    let f = tracefs.features().expect("features");
    let root = tracefs.root();
    // Compare with what the files say, which holds on any kernel; on the Linux 6.18 test
    // machine that is: uprobes yes, kprobes no, no function_graph.
    assert!(f.uprobe_events);
    assert_eq!(f.kprobe_events, root.join("kprobe_events").is_file());
    assert_eq!(f.dynamic_events, root.join("dynamic_events").is_file());
    let tracers = read(&root.join("available_tracers"));
    assert_eq!(
        f.has_tracer("function_graph"),
        tracers.split_whitespace().any(|t| t == "function_graph")
    );
    assert!(f.has_tracer("nop"));
    let readme = read(&root.join("README"));
    assert_eq!(f.ustring, readme.contains("ustring"));
    assert_eq!(f.kretprobe_offset, readme.contains("place (kretprobe): "));
    eprintln!(
        "kprobe_events={} uprobe_events={} function_graph={} tracers={:?}",
        f.kprobe_events,
        f.uprobe_events,
        f.has_tracer("function_graph"),
        f.tracers
    );
}

#[test]
fn uprobe_roundtrip() {
    let Some(tracefs) = live("live_tracefs::uprobe_roundtrip") else {
        return;
    };
    let target = target();
    let guard = GroupGuard::new(&tracefs, "roundtrip");
    let g = guard.group.as_str();
    let (path, off) = (&target.path, target.offset);
    let line = format!(
        "p:{g}/ev {}:{off:#x} a=%di:u32 s=+0(%si):string arr=+0(%di):x8[4]",
        path.display()
    );
    tracefs
        .append_probe(ProbeKind::Uprobe, &line)
        .expect("append uprobe");

    let mine: Vec<_> = tracefs
        .probe_events(ProbeKind::Uprobe)
        .expect("read uprobe_events")
        .into_iter()
        .filter(|p| p.group == g)
        .collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    let p = &mine[0];
    assert_eq!((p.kind_char, p.event.as_str()), ('p', "ev"));
    assert_eq!(p.place, format!("{}:0x{off:016x}", path.display()));
    assert_eq!(
        p.args,
        ["a=%di:u32", "s=+0(%si):string", "arr=+0(%di):x8[4]"]
    );

    assert!(tracefs.event_exists(g, "ev"));
    let id = tracefs.event_id(g, "ev").expect("id");
    let format = tracefs.event_format(g, "ev").expect("format");
    assert_eq!((format.name.as_str(), format.id), ("ev", id));
    let names: Vec<&str> = format.event_fields().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["__probe_ip", "a", "s", "arr"]);
    let a = format.find_field("a").expect("a");
    assert_eq!((a.type_name.as_str(), a.offset, a.size), ("u32", 16, 4));
    assert!(format.find_field("s").expect("s").data_loc);
    assert_eq!(format.find_field("arr").expect("arr").elem_count(), Some(4));
    assert!(tracefs
        .list_events()
        .expect("available_events")
        .iter()
        .any(|e| e.group == g && e.event == "ev"));

    // A filter that never matches first, so enabling records nothing in the global buffer.
    let filter_path = tracefs.root().join(format!("events/{g}/ev/filter"));
    tracefs
        .set_filter(g, "ev", "a == 3735928559")
        .expect("set filter");
    assert_eq!(read(&filter_path).trim(), "a == 3735928559");
    tracefs.set_enabled(g, "ev", true).expect("enable");
    assert!(tracefs.is_enabled(g, "ev").expect("enable"));
    tracefs.set_enabled(g, "ev", false).expect("disable");
    assert!(!tracefs.is_enabled(g, "ev").expect("enable"));
    tracefs.set_filter(g, "ev", "0").expect("clear filter");
    assert_eq!(read(&filter_path).trim(), "none");

    // A filter the kernel refuses comes back with the kernel's message.
    let err = tracefs
        .set_filter(g, "ev", "nosuchfield == 1")
        .expect_err("bad filter");
    match &err {
        TracefsError::FilterRejected { message, .. } => {
            assert!(message.is_some(), "{err:?}")
        }
        other => panic!("unexpected {other:?}"),
    }
    tracefs.set_filter(g, "ev", "0").expect("clear filter");

    // Deleting an enabled event works because delete_probe disables it first (else EBUSY).
    tracefs
        .set_filter(g, "ev", "a == 3735928559")
        .expect("set filter");
    tracefs.set_enabled(g, "ev", true).expect("enable");
    tracefs
        .delete_probe(ProbeKind::Uprobe, g, "ev")
        .expect("delete enabled probe");
    assert!(!tracefs.event_exists(g, "ev"));
    assert!(tracefs
        .probe_events(ProbeKind::Uprobe)
        .expect("read uprobe_events")
        .iter()
        .all(|p| p.group != g));
    assert!(guard.remaining().is_empty());
}

#[test]
fn delete_group_removes_every_event_and_multiprobe_point() {
    let Some(tracefs) = live("live_tracefs::delete_group_removes_every_event_and_multiprobe_point")
    else {
        return;
    };
    let target = target();
    let guard = GroupGuard::new(&tracefs, "group");
    let g = guard.group.as_str();
    let (path, off) = (target.path.display(), target.offset);
    for line in [
        format!("p:{g}/one {path}:{off:#x} a=%di:u64"),
        format!("r:{g}/two {path}:{off:#x} ret=$retval:s32"),
    ] {
        tracefs.append_probe(ProbeKind::Uprobe, &line).expect(&line);
    }
    let features = tracefs.features().expect("features");
    if features.multiprobe {
        // Same name and args on another place: a second point of `one`. (The same place
        // again is refused with EEXIST, "There is already the exact same probe event".)
        let second = off + target.second_insn;
        let again = format!("p:{g}/one {path}:{second:#x} a=%di:u64");
        tracefs
            .append_probe(ProbeKind::Uprobe, &again)
            .expect("multi-probe append");
    }
    assert_eq!(guard.remaining(), ["one", "two"]);
    let deleted = tracefs
        .delete_group(ProbeKind::Uprobe, g)
        .expect("delete group");
    assert_eq!(deleted, 2);
    assert!(guard.remaining().is_empty());
}

#[test]
fn bad_line_is_rejected_with_error_log_and_caret() {
    let Some(tracefs) = live("live_tracefs::bad_line_is_rejected_with_error_log_and_caret") else {
        return;
    };
    let target = target();
    let guard = GroupGuard::new(&tracefs, "bad");
    let g = guard.group.as_str();
    let (path, off) = (&target.path, target.offset);
    let line = format!("p:{g}/bad {}:{off:#x} +0(%rdi):u32", path.display());
    let err = tracefs
        .append_probe(ProbeKind::Uprobe, &line)
        .expect_err("%rdi is not a register name");
    assert_eq!(
        err.to_string(),
        "kernel rejected probe: Invalid register name"
    );
    let TracefsError::ProbeRejected {
        command,
        source,
        log,
        ..
    } = &err
    else {
        panic!("unexpected {err:?}");
    };
    assert_eq!(command, &line);
    assert_eq!(source.raw_os_error(), Some(22), "EINVAL");
    let log = log.as_ref().expect("error_log entry");
    assert_eq!(log.source, "trace_uprobe");
    assert_eq!(log.command, line);
    assert_eq!(Some(log.caret), line.find("%rdi"));
    let rendered = err.render_caret();
    let lines: Vec<&str> = rendered.lines().collect();
    assert_eq!(lines.len(), 3, "{rendered}");
    assert_eq!(lines[1], format!("  {line}"));
    assert_eq!(lines[2].find('^'), Some(2 + log.caret), "{rendered}");
    assert!(!tracefs.event_exists(g, "bad"));

    // Same name, different args: EEXIST, with the caret under the argument that differs.
    let good = format!("p:{g}/dup {}:{off:#x} a=%di:u32", path.display());
    tracefs
        .append_probe(ProbeKind::Uprobe, &good)
        .expect("append");
    let clash = format!("p:{g}/dup {}:{off:#x} b=%di:u64", path.display());
    let err = tracefs
        .append_probe(ProbeKind::Uprobe, &clash)
        .expect_err("different args");
    let TracefsError::ProbeRejected { source, log, .. } = &err else {
        panic!("unexpected {err:?}");
    };
    assert_eq!(source.raw_os_error(), Some(17), "EEXIST");
    let log = log.as_ref().expect("error_log entry");
    assert_eq!(
        log.message,
        "Argument type or name is different from existing probe"
    );
    assert_eq!(
        Some(log.caret),
        clash.find("b=%di"),
        "caret {} in {clash:?}",
        log.caret
    );

    // Deleting an event that does not exist: ENOENT, and no error_log entry to show.
    let err = tracefs
        .delete_probe(ProbeKind::Uprobe, g, "nothere")
        .expect_err("no such event");
    let TracefsError::ProbeRejected { source, log, .. } = &err else {
        panic!("unexpected {err:?}");
    };
    assert_eq!(source.raw_os_error(), Some(2), "ENOENT");
    assert!(log.is_none(), "{log:?}");
    assert!(err.to_string().contains("no such event"), "{err}");
    drop(guard);
}

#[test]
fn newline_is_refused_before_any_write() {
    let Some(tracefs) = live("live_tracefs::newline_is_refused_before_any_write") else {
        return;
    };
    let target = target();
    let guard = GroupGuard::new(&tracefs, "newline");
    let g = guard.group.as_str();
    let (path, off) = (target.path.display(), target.offset);
    let line = format!("p:{g}/a {path}:{off:#x}\np:{g}/b {path}:{off:#x}");
    let err = tracefs
        .append_probe(ProbeKind::Uprobe, &line)
        .expect_err("newline");
    assert!(matches!(err, TracefsError::BadInput { .. }), "{err:?}");
    let comment = format!("p:{g}/c {path}:{off:#x} # a comment");
    let err = tracefs
        .append_probe(ProbeKind::Uprobe, &comment)
        .expect_err("comment");
    assert!(matches!(err, TracefsError::BadInput { .. }), "{err:?}");
    assert!(!tracefs.event_exists(g, "a") && !tracefs.event_exists(g, "b"));
    assert!(!tracefs.event_exists(g, "c"));
    assert!(guard.remaining().is_empty());
}

#[test]
fn tracepoint_formats_parse() {
    let Some(tracefs) = live("live_tracefs::tracepoint_formats_parse") else {
        return;
    };
    let sched = tracefs
        .event_format("sched", "sched_switch")
        .expect("sched_switch format");
    assert_eq!(
        tracefs.event_id("sched", "sched_switch").expect("id"),
        sched.id
    );
    let comm = sched.find_field("prev_comm").expect("prev_comm");
    assert_eq!((comm.array_len, comm.size), (Some(16), 16));
    assert_eq!(sched.common_fields().count(), 4);

    // Every format file of every event on this kernel parses.
    let mut parsed = 0;
    let mut failed = Vec::new();
    for event in tracefs.list_events().expect("available_events") {
        match tracefs.event_format(&event.group, &event.event) {
            Ok(f) => {
                assert_eq!(f.name, event.event);
                parsed += 1;
            }
            // Events can come and go while we read (other tools' probes).
            Err(TracefsError::NoSuchEvent { .. }) => {}
            Err(e) => failed.push(format!("{event}: {e}")),
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:#?}",
        failed.len(),
        parsed
    );
    assert!(parsed > 100, "only {parsed} formats");
}

#[test]
fn private_instance_create_and_remove() {
    let Some(tracefs) = live("live_tracefs::private_instance_create_and_remove") else {
        return;
    };
    let name = format!("rptest_{}_instance", std::process::id());
    let instance = tracefs.create_instance(&name).expect("mkdir instance");
    let guard = InstanceGuard(instance.root().to_owned());
    assert!(tracefs.instance_exists(&name));
    assert_eq!(read(&instance.root().join("current_tracer")).trim(), "nop");
    assert!(instance.tracefs().event_exists("sched", "sched_switch"));
    let err = tracefs.create_instance(&name).expect_err("exists");
    assert!(
        matches!(err, TracefsError::CreateInstance { .. }),
        "{err:?}"
    );
    drop(instance);
    assert!(
        tracefs.instance_exists(&name),
        "Instance's Drop must not remove"
    );
    tracefs.remove_instance(&name).expect("rmdir instance");
    assert!(!tracefs.instance_exists(&name));
    drop(guard);
}

#[test]
fn filter_functions_list_or_a_named_error() {
    let Some(tracefs) = live("live_tracefs::filter_functions_list_or_a_named_error") else {
        return;
    };
    // Lockdown or an LSM can close this file even to root (EPERM on the 6.18 test machine).
    match tracefs.available_filter_functions() {
        Ok(funcs) => {
            assert!(!funcs.is_empty());
            assert!(funcs.iter().all(|f| !f.contains(' ') && !f.is_empty()));
        }
        Err(e @ TracefsError::Read { .. }) => {
            let text = e.to_string();
            assert!(text.contains("available_filter_functions"), "{text}");
            eprintln!("available_filter_functions unreadable here: {text}");
        }
        Err(e) => panic!("unexpected {e:?}"),
    }
}

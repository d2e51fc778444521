//! `kprobe_events` / `uprobe_events`: reading the defined probes, appending and deleting them.
//!
//! Grammar: `Documentation/trace/kprobetrace.rst` and `uprobetracer.rst`. Reading the file
//! gives one line per probe point, normalised by the kernel (`trace_kprobe_show()`,
//! `trace_uprobe_show()`): `%return` becomes `r:`, uprobe offsets print as `0x%016lx`, a
//! kretprobe's maxactive follows the `r`, and every probe has `GROUP/EVENT`. A multi-probe
//! event (Linux 5.4+) shows one line per point with the same name. Args never hold spaces,
//! because the kernel splits the written line with `argv_split()`.
//!
//! Writing: each definition is appended with `O_WRONLY|O_APPEND` and one `write()`; opening
//! with `O_TRUNC` (shell `>`) would delete every probe of every tool. The kernel
//! (`trace_parse_run_command()`) cuts a line at `#` (a comment) and at `\n` (the next
//! command), so such lines are refused before anything is opened: the kernel would otherwise
//! create a probe other than the one asked for.

use std::fs::OpenOptions;
use std::io::Write;

use super::error_log::{find_new_entry, parse_error_log};
use super::{validate_name, ProbeKind, Tracefs, TracefsError};

/// The longest line the kernel accepts in one command (`WRITE_BUFSIZE - 2`).
pub const MAX_LINE_LEN: usize = 4094;

/// One line of `kprobe_events` or `uprobe_events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeEventLine {
    /// `'p'` for an entry probe, `'r'` for a return probe (other letters appear in
    /// `dynamic_events`: `'e'`, `'f'`, `'t'`).
    pub kind_char: char,
    /// The kretprobe maxactive after `r` (`r10:...`), if one was given.
    pub maxactive: Option<u32>,
    /// The group (system) name.
    pub group: String,
    /// The event name.
    pub event: String,
    /// Where the probe sits: `vfs_read+0`, `/usr/bin/bash:0x00000000000c6c20`.
    pub place: String,
    /// The fetch args as the kernel shows them: `arg1=+0($retval):string`.
    pub args: Vec<String>,
    /// The whole line, without its newline.
    pub raw: String,
}

// r:probe_bash/readline__return /usr/bin/bash:0x00000000000c6c20 arg1=+0($retval):string
/// Parse one line of `kprobe_events`, `uprobe_events` or `dynamic_events`; None if it does not
/// have the `K[N]:GROUP/EVENT PLACE` shape.
pub fn parse_probe_event_line(line: &str) -> Option<ProbeEventLine> {
    let raw = line.trim_end_matches(['\n', '\r']);
    let mut tokens = raw.split_whitespace();
    let head = tokens.next()?;
    let place = tokens.next()?;
    let (kind, name) = head.split_once(':')?;
    let mut kind_chars = kind.chars();
    let kind_char = kind_chars.next().filter(char::is_ascii_alphabetic)?;
    let digits = kind_chars.as_str();
    let maxactive = if digits.is_empty() {
        None
    } else {
        Some(digits.parse::<u32>().ok()?)
    };
    let (group, event) = name.split_once('/')?;
    if group.is_empty() || event.is_empty() {
        return None;
    }
    Some(ProbeEventLine {
        kind_char,
        maxactive,
        group: group.to_owned(),
        event: event.to_owned(),
        place: place.to_owned(),
        args: tokens.map(str::to_owned).collect(),
        raw: raw.to_owned(),
    })
}

/// Every probe line of a `*_events` file; lines that do not parse are skipped.
pub fn parse_probe_events(text: &str) -> Vec<ProbeEventLine> {
    text.lines().filter_map(parse_probe_event_line).collect()
}

/// Why `line` may not be written to an events file, if it may not.
pub fn check_probe_line(line: &str) -> Result<(), &'static str> {
    if line.trim().is_empty() {
        return Err("the line is empty");
    }
    if line.contains('\n') {
        return Err("it holds a newline, which the kernel takes as the start of another command");
    }
    if line.chars().any(char::is_control) {
        return Err("it holds a control character");
    }
    if line.contains('#') {
        return Err("it holds '#', where the kernel would cut the line as a comment");
    }
    if line.len() > MAX_LINE_LEN {
        return Err("it is longer than the kernel's 4094-byte command limit");
    }
    Ok(())
}

impl Tracefs {
    /// The probes currently defined in `kprobe_events` or `uprobe_events`.
    pub fn probe_events(&self, kind: ProbeKind) -> Result<Vec<ProbeEventLine>, TracefsError> {
        let path = self.root.join(kind.file_name());
        match std::fs::read(&path) {
            Ok(bytes) => Ok(parse_probe_events(&String::from_utf8_lossy(&bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(TracefsError::NoProbeEvents { kind, path })
            }
            Err(source) => Err(TracefsError::Read { path, source }),
        }
    }

    /// Append one definition line (`p:GROUP/EVENT PLACE ARGS`) to the kind's events file.
    ///
    /// Opens `O_WRONLY|O_APPEND` (never truncating) and writes the line and a newline in one
    /// `write()`. A line with a newline, control character or `#` is refused before anything
    /// is opened. When the kernel refuses the line, the `error_log` entry it wrote for this
    /// command (read before and after, newest new entry with this command) is returned in
    /// [`TracefsError::ProbeRejected`].
    pub fn append_probe(&self, kind: ProbeKind, line: &str) -> Result<(), TracefsError> {
        check_probe_line(line).map_err(|reason| TracefsError::BadInput {
            what: "probe definition",
            text: line.to_owned(),
            reason,
        })?;
        self.write_probe_command(kind, line)
    }

    /// Delete one probe event: write `0` to its `enable` if it reads `1`, then append
    /// `-:GROUP/EVENT`. The kernel still refuses (EBUSY) while perf has the event open.
    pub fn delete_probe(
        &self,
        kind: ProbeKind,
        group: &str,
        event: &str,
    ) -> Result<(), TracefsError> {
        validate_name("group name", group)?;
        validate_name("event name", event)?;
        self.disable_if_enabled(group, event)?;
        self.write_probe_command(kind, &format!("-:{group}/{event}"))
    }

    /// Delete every event of `group` defined in the kind's events file: each enabled one is
    /// disabled, then one `-:GROUP/EVENT` is written per event (the per-event form works on
    /// every kernel, unlike `-:GROUP/`). Returns how many events were deleted.
    pub fn delete_group(&self, kind: ProbeKind, group: &str) -> Result<usize, TracefsError> {
        validate_name("group name", group)?;
        let mut events: Vec<String> = self
            .probe_events(kind)?
            .into_iter()
            .filter(|p| p.group == group)
            .map(|p| p.event)
            .collect();
        // A multi-probe event has one line per point but is deleted once.
        events.sort();
        events.dedup();
        for event in &events {
            self.delete_probe(kind, group, event)?;
        }
        Ok(events.len())
    }

    fn disable_if_enabled(&self, group: &str, event: &str) -> Result<(), TracefsError> {
        let path = self
            .root
            .join("events")
            .join(group)
            .join(event)
            .join("enable");
        match std::fs::read_to_string(&path) {
            // "1", or "1*" when soft-enabled by a trigger.
            Ok(text) if text.trim_start().starts_with('1') => self.set_enabled(group, event, false),
            Ok(_) => Ok(()),
            // No event directory: let the kernel say what it makes of the delete.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(TracefsError::Read { path, source }),
        }
    }

    fn write_probe_command(&self, kind: ProbeKind, command: &str) -> Result<(), TracefsError> {
        let path = self.root.join(kind.file_name());
        let log_path = self.root.join("error_log");
        // A kernel without error_log (before 5.2) or an unreadable one just gives no entry.
        let read_log = || {
            std::fs::read(&log_path)
                .ok()
                .map(|b| parse_error_log(&String::from_utf8_lossy(&b)))
        };
        let before = read_log().unwrap_or_default();
        let mut file = match OpenOptions::new().append(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TracefsError::NoProbeEvents { kind, path });
            }
            Err(source) => {
                return Err(TracefsError::Write {
                    path,
                    data: command.to_owned(),
                    source,
                });
            }
        };
        let data = format!("{command}\n");
        let result = match file.write(data.as_bytes()) {
            Ok(n) if n == data.len() => Ok(()),
            Ok(n) => Err(std::io::Error::other(format!(
                "short write: {n} of {} bytes",
                data.len()
            ))),
            Err(e) => Err(e),
        };
        result.map_err(|source| {
            let after = read_log().unwrap_or_default();
            TracefsError::ProbeRejected {
                path,
                command: command.to_owned(),
                source,
                log: find_new_entry(&before, &after, command).map(Box::new),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// uprobe_events on Linux 6.18 after defining three probes on /usr/bin/true.
    const REAL_UPROBE_EVENTS: &str = include_str!("../../fixtures/tracefs/uprobe_events");

    #[test]
    fn real_uprobe_lines() {
        let probes = parse_probe_events(REAL_UPROBE_EVENTS);
        assert_eq!(probes.len(), 3);
        let ev = &probes[0];
        assert_eq!((ev.kind_char, ev.maxactive), ('p', None));
        assert_eq!(
            (ev.group.as_str(), ev.event.as_str()),
            ("rptest_fx4209", "ev")
        );
        assert_eq!(ev.place, "/usr/bin/true:0x00000000000023d0");
        assert_eq!(
            ev.args,
            ["a=%di:u32", "s=+0(%si):string", "arr=+0(%di):x8[4]"]
        );
        assert_eq!(
            ev.raw,
            REAL_UPROBE_EVENTS.lines().next().unwrap_or_default()
        );
        let ret = &probes[1];
        assert_eq!((ret.kind_char, ret.event.as_str()), ('r', "ret"));
        assert_eq!(ret.args, ["ret=$retval:s64", "c=$comm:string"]);
        assert_eq!(probes[2].args[0], "b=%ax:b3@2/32");
    }

    #[test]
    fn kprobe_lines_with_maxactive_and_no_args() {
        let p = parse_probe_event_line("r10:kprobes/r_vfs_read_0 vfs_read+0\n").expect("parses");
        assert_eq!((p.kind_char, p.maxactive), ('r', Some(10)));
        assert_eq!(
            (p.group.as_str(), p.event.as_str()),
            ("kprobes", "r_vfs_read_0")
        );
        assert_eq!(p.place, "vfs_read+0");
        assert!(p.args.is_empty());
        assert_eq!(p.raw, "r10:kprobes/r_vfs_read_0 vfs_read+0");
        let e = parse_probe_event_line("e:eprobes/openat syscalls.sys_enter_openat x=$filename")
            .expect("dynamic_events eprobe");
        assert_eq!(
            (e.kind_char, e.place.as_str()),
            ('e', "syscalls.sys_enter_openat")
        );
    }

    #[test]
    fn lines_cut_short_are_none() {
        let line = "r:probe_bash/readline__return /usr/bin/bash:0x00000000000c6c20 arg1=+0($retval):string";
        let place_at = line.find(' ').unwrap_or(0);
        for cut in 0..=place_at + 1 {
            assert_eq!(parse_probe_event_line(&line[..cut]), None, "cut at {cut}");
        }
        let short = parse_probe_event_line(&line[..place_at + 5]).expect("place cut short");
        assert_eq!(short.place, "/usr");
        assert!(parse_probe_event_line(line).is_some());
    }

    #[test]
    fn unknown_shapes_are_none() {
        for line in [
            "",
            "\n",
            "p vfs_read",
            "p:noslash vfs_read",
            "1:g/e x",
            "rx:g/e x",
            "p:/e x",
            "p:g/ x",
        ] {
            assert_eq!(parse_probe_event_line(line), None, "{line:?}");
        }
        assert_eq!(parse_probe_events("junk\n\np:g/e x\n").len(), 1);
    }

    #[test]
    fn line_checks() {
        assert!(check_probe_line("p:g/e /bin/true:0x10 a=%di").is_ok());
        assert!(check_probe_line("p:g/e x\np:g/f y").is_err());
        assert!(check_probe_line("p:g/e x\tb").is_err());
        assert!(check_probe_line("p:g/e x a=\\\"#1\\\"").is_err());
        assert!(check_probe_line("  ").is_err());
        assert!(check_probe_line(&"x".repeat(MAX_LINE_LEN + 1)).is_err());
    }

    use crate::tracefs::fake;

    #[test]
    fn append_adds_one_line_and_keeps_what_was_there() {
        let (dir, tracefs) = fake::tree();
        fake::write(dir.path(), "uprobe_events", "p:other/keep /bin/sh:0x10\n");
        let line = "p:rptest/ev /usr/bin/true:0x23d0 a=%di:u32";
        tracefs
            .append_probe(ProbeKind::Uprobe, line)
            .expect("append");
        tracefs
            .append_probe(ProbeKind::Uprobe, "r:rptest/ret /usr/bin/true:0x23d0")
            .expect("append");
        assert_eq!(
            fake::read(dir.path(), "uprobe_events"),
            "p:other/keep /bin/sh:0x10\np:rptest/ev /usr/bin/true:0x23d0 a=%di:u32\nr:rptest/ret /usr/bin/true:0x23d0\n"
        );
        let probes = tracefs.probe_events(ProbeKind::Uprobe).expect("read back");
        assert_eq!(probes.len(), 3);
        assert_eq!(probes[1].args, ["a=%di:u32"]);
    }

    #[test]
    fn bad_lines_are_refused_before_anything_is_opened() {
        let (dir, tracefs) = fake::tree();
        // With no events file at all, the error is still about the line: nothing was opened.
        std::fs::remove_file(dir.path().join("uprobe_events")).expect("rm");
        for line in [
            "p:g/a /bin/true:0x1\np:g/b /bin/true:0x2",
            "p:g/a x\r",
            "p:g/a x # c",
            "",
        ] {
            let err = tracefs
                .append_probe(ProbeKind::Uprobe, line)
                .expect_err(line);
            assert!(matches!(err, TracefsError::BadInput { .. }), "{err:?}");
        }
        assert!(!dir.path().join("uprobe_events").exists());
    }

    #[test]
    fn missing_events_file_names_the_kernel_option() {
        let (_dir, tracefs) = fake::tree();
        let err = tracefs
            .append_probe(ProbeKind::Kprobe, "p:g/e vfs_read")
            .expect_err("no kprobe_events");
        assert!(matches!(
            err,
            TracefsError::NoProbeEvents {
                kind: ProbeKind::Kprobe,
                ..
            }
        ));
        assert!(err.to_string().contains("CONFIG_KPROBE_EVENTS"), "{err}");
        assert!(matches!(
            tracefs.probe_events(ProbeKind::Kprobe),
            Err(TracefsError::NoProbeEvents { .. })
        ));
    }

    #[test]
    fn events_file_that_cannot_be_opened_is_a_write_error() {
        let (dir, tracefs) = fake::tree();
        std::fs::remove_file(dir.path().join("uprobe_events")).expect("rm");
        std::fs::create_dir(dir.path().join("uprobe_events")).expect("mkdir");
        let err = tracefs
            .append_probe(ProbeKind::Uprobe, "p:g/e /bin/true:0x1")
            .expect_err("a directory");
        assert!(matches!(err, TracefsError::Write { .. }), "{err:?}");
        assert!(err.to_string().contains("uprobe_events"), "{err}");
    }

    #[test]
    fn failed_write_is_rejected_without_someone_elses_log_entry() {
        let (dir, tracefs) = fake::tree();
        // /dev/full opens fine and fails every write with ENOSPC, like a kernel refusal.
        std::fs::remove_file(dir.path().join("uprobe_events")).expect("rm");
        std::os::unix::fs::symlink("/dev/full", dir.path().join("uprobe_events")).expect("symlink");
        let line = "p:rptest_4209/bad1 /usr/bin/true:0x23d0 +0(%rdi):u32";
        // An old entry for the very same command is not the entry for this write.
        fake::write(
            dir.path(),
            "error_log",
            "[  430.860770] trace_uprobe: error: Invalid register name\n  Command: p:rptest_4209/bad1 /usr/bin/true:0x23d0 +0(%rdi):u32\n                                                      ^\n",
        );
        let err = tracefs
            .append_probe(ProbeKind::Uprobe, line)
            .expect_err("ENOSPC");
        match &err {
            TracefsError::ProbeRejected {
                command,
                source,
                log,
                ..
            } => {
                assert_eq!(command, line);
                assert_eq!(source.raw_os_error(), Some(28));
                assert_eq!(log, &None);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            err.to_string().starts_with("kernel rejected probe: "),
            "{err}"
        );
    }

    #[test]
    fn delete_disables_first_then_appends_the_delete_line() {
        let (dir, tracefs) = fake::tree();
        let ev = dir.path().join("events/rptest/ev");
        fake::write(&ev, "enable", "1\n");
        tracefs
            .delete_probe(ProbeKind::Uprobe, "rptest", "ev")
            .expect("delete");
        assert_eq!(fake::read(&ev, "enable").trim(), "0");
        assert_eq!(fake::read(dir.path(), "uprobe_events"), "-:rptest/ev\n");
    }

    #[test]
    fn delete_disables_even_when_the_delete_fails() {
        let (dir, tracefs) = fake::tree();
        let ev = dir.path().join("events/rptest/ev");
        fake::write(&ev, "enable", "1*\n");
        std::fs::remove_file(dir.path().join("uprobe_events")).expect("rm");
        std::fs::create_dir(dir.path().join("uprobe_events")).expect("mkdir");
        assert!(tracefs
            .delete_probe(ProbeKind::Uprobe, "rptest", "ev")
            .is_err());
        assert!(fake::read(&ev, "enable").starts_with('0'));
    }

    #[test]
    fn delete_leaves_disabled_events_alone_and_checks_names() {
        let (dir, tracefs) = fake::tree();
        let ev = dir.path().join("events/rptest/ev");
        // Anything but "1" is left as it is: a write of "0" would change this.
        fake::write(&ev, "enable", "X\n");
        tracefs
            .delete_probe(ProbeKind::Uprobe, "rptest", "ev")
            .expect("delete");
        assert_eq!(fake::read(&ev, "enable"), "X\n");
        // No event directory: the kernel gets the delete and decides.
        tracefs
            .delete_probe(ProbeKind::Uprobe, "rptest", "gone")
            .expect("delete");
        let err = tracefs
            .delete_probe(ProbeKind::Uprobe, "..", "ev")
            .expect_err("path as group");
        assert!(matches!(err, TracefsError::BadInput { .. }));
        assert_eq!(
            fake::read(dir.path(), "uprobe_events"),
            "-:rptest/ev\n-:rptest/gone\n"
        );
    }

    #[test]
    fn delete_group_deletes_each_event_once_and_only_that_group() {
        let (dir, tracefs) = fake::tree();
        fake::write(
            dir.path(),
            "uprobe_events",
            "p:rptest/ev /bin/true:0x10\np:rptest/ev /bin/true:0x20\np:other/ev /bin/true:0x10\nr:rptest/ret /bin/true:0x10\n",
        );
        assert_eq!(
            tracefs
                .delete_group(ProbeKind::Uprobe, "rptest")
                .expect("delete"),
            2
        );
        let text = fake::read(dir.path(), "uprobe_events");
        assert!(
            text.ends_with("r:rptest/ret /bin/true:0x10\n-:rptest/ev\n-:rptest/ret\n"),
            "{text}"
        );
    }

    proptest! {
        #[test]
        fn never_panics(text in "(\\PC|\n|:|/| ){0,200}") {
            for p in parse_probe_events(&text) {
                prop_assert!(!p.group.is_empty() && !p.event.is_empty());
            }
            let _ = parse_probe_event_line(&text);
            let _ = check_probe_line(&text);
        }

        #[test]
        fn roundtrips_well_formed_lines(
            kind in "[pr]", group in "[a-z_][a-z0-9_]{0,10}", event in "[a-z_][a-z0-9_]{0,10}",
            place in "[a-z/_.:0-9]{1,20}", args in proptest::collection::vec("[a-z]=%[a-z]{2}", 0..4),
        ) {
            let mut line = format!("{kind}:{group}/{event} {place}");
            for a in &args {
                line.push(' ');
                line.push_str(a);
            }
            let p = parse_probe_event_line(&line).expect("well-formed");
            prop_assert_eq!(p.group, group);
            prop_assert_eq!(p.event, event);
            prop_assert_eq!(p.place, place);
            prop_assert_eq!(p.args, args);
        }
    }
}

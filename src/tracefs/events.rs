//! Trace events under `events/GROUP/EVENT/`: listing, `id`, `format`, `enable`, `filter`;
//! and the function list `available_filter_functions`.
//!
//! Files per event (`Documentation/trace/events.rst`): `id` (decimal), `format` (see
//! [`super::format`]), `enable` (`0`/`1`, with `*` appended when soft-enabled by a trigger),
//! `filter` (`none`, the filter text, or after a rejected write the filter, a caret line and
//! `parse_error: MESSAGE`). `available_events` lists every event as `GROUP:EVENT`.
//! `available_filter_functions` lists functions ftrace can hook, one per line with
//! ` [MODULE]` after module functions; it can be closed (EPERM) by lockdown or an LSM even to
//! root.
//!
//! Control files are written without `O_TRUNC`; every write is one `write()` of a short
//! string, which the kernel reads as a whole.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::format::{parse_format, EventFormat};
use super::{validate_name, Tracefs, TracefsError};

/// A trace event's full name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventName {
    /// The group (system): `sched`, `syscalls`, `probe_bash`.
    pub group: String,
    /// The event within the group: `sched_switch`.
    pub event: String,
}

impl std::fmt::Display for EventName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.group, self.event)
    }
}

// sched:sched_switch
/// Parse `available_events` (`GROUP:EVENT` per line), skipping lines of another shape.
pub fn parse_available_events(text: &str) -> Vec<EventName> {
    text.lines()
        .filter_map(|line| {
            let (group, event) = line.trim().split_once(':')?;
            if group.is_empty() || event.is_empty() || event.contains(':') {
                return None;
            }
            Some(EventName {
                group: group.to_owned(),
                event: event.to_owned(),
            })
        })
        .collect()
}

// snd_hda_codec_get_pincfg [snd_hda_codec]
/// Function names from `available_filter_functions`, in file order, without ` [MODULE]`.
pub fn parse_filter_functions(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

// bogus >>
//         ^
// parse_error: Invalid value (did you forget quotes)?
/// The kernel's message from a `filter` file read back after a rejected write.
pub fn parse_filter_error(text: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.trim().strip_prefix("parse_error:"))
        .map(|message| message.trim().to_owned())
}

impl Tracefs {
    fn event_dir(&self, group: &str, event: &str) -> Result<PathBuf, TracefsError> {
        validate_name("group name", group)?;
        validate_name("event name", event)?;
        Ok(self.root.join("events").join(group).join(event))
    }

    /// Whether `events/GROUP/EVENT` exists. False for names that are not valid event names.
    pub fn event_exists(&self, group: &str, event: &str) -> bool {
        self.event_dir(group, event).is_ok_and(|dir| dir.is_dir())
    }

    /// The event's id (`events/GROUP/EVENT/id`), the `config` of a perf tracepoint event.
    pub fn event_id(&self, group: &str, event: &str) -> Result<u32, TracefsError> {
        let path = self.event_dir(group, event)?.join("id");
        let text = read_event_file(&path, group, event)?;
        text.trim().parse::<u32>().map_err(|_| TracefsError::Parse {
            path,
            reason: format!("id is not a number: {:?}", text.trim()),
        })
    }

    /// The event's parsed `format` file.
    pub fn event_format(&self, group: &str, event: &str) -> Result<EventFormat, TracefsError> {
        let path = self.event_dir(group, event)?.join("format");
        let text = read_event_file(&path, group, event)?;
        parse_format(&text).map_err(|source| TracefsError::BadFormat { path, source })
    }

    /// Whether the event is enabled (its `enable` reads `1`, or `1*` when soft-enabled).
    pub fn is_enabled(&self, group: &str, event: &str) -> Result<bool, TracefsError> {
        let path = self.event_dir(group, event)?.join("enable");
        let text = read_event_file(&path, group, event)?;
        Ok(text.trim_start().starts_with('1'))
    }

    /// Write `1` or `0` to the event's `enable`.
    pub fn set_enabled(&self, group: &str, event: &str, on: bool) -> Result<(), TracefsError> {
        let path = self.event_dir(group, event)?.join("enable");
        let data = if on { "1" } else { "0" };
        write_control(&path, data).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => no_such_event(group, event, &path),
            _ => TracefsError::Write {
                path,
                data: data.to_owned(),
                source,
            },
        })
    }

    /// Set the event's filter (`events/GROUP/EVENT/filter`); `"0"` clears it.
    ///
    /// A filter the kernel refuses comes back as [`TracefsError::FilterRejected`] with the
    /// `parse_error:` message the kernel leaves in the filter file.
    pub fn set_filter(&self, group: &str, event: &str, filter: &str) -> Result<(), TracefsError> {
        let path = self.event_dir(group, event)?.join("filter");
        if filter.trim().is_empty() || filter.chars().any(char::is_control) {
            return Err(TracefsError::BadInput {
                what: "filter",
                text: filter.to_owned(),
                reason: "a filter is one non-empty line (use \"0\" to clear it)",
            });
        }
        write_control(&path, filter).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => no_such_event(group, event, &path),
            _ => {
                let message = read_in_one_call(&path)
                    .ok()
                    .and_then(|text| parse_filter_error(&text));
                TracefsError::FilterRejected {
                    path,
                    filter: filter.to_owned(),
                    source,
                    message,
                }
            }
        })
    }

    /// Every event in `available_events`, in file order.
    pub fn list_events(&self) -> Result<Vec<EventName>, TracefsError> {
        let path = self.root.join("available_events");
        let text = read_text(&path)?;
        Ok(parse_available_events(&text))
    }

    /// The events of one group, from the directories under `events/GROUP/`, sorted by name.
    pub fn group_events(&self, group: &str) -> Result<Vec<String>, TracefsError> {
        validate_name("group name", group)?;
        let path = self.root.join("events").join(group);
        let entries = std::fs::read_dir(&path).map_err(|source| TracefsError::Read {
            path: path.clone(),
            source,
        })?;
        let mut events = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| TracefsError::Read {
                path: path.clone(),
                source,
            })?;
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                events.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        events.sort();
        Ok(events)
    }

    /// Function names from `available_filter_functions`, module suffixes removed, in file
    /// order.
    pub fn available_filter_functions(&self) -> Result<Vec<String>, TracefsError> {
        let path = self.root.join("available_filter_functions");
        let text = read_text(&path)?;
        Ok(parse_filter_functions(&text))
    }
}

/// Read a whole tracefs file as text (invalid UTF-8 replaced).
pub(crate) fn read_text(path: &Path) -> Result<String, TracefsError> {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .map_err(|source| TracefsError::Read {
            path: path.to_owned(),
            source,
        })
}

/// Reads a control file with a single `read(2)`.
///
/// Some tracefs files answer only the first read: `events/*/*/filter` (`event_filter_read`)
/// returns 0 for any read at a non-zero position, so the 32-byte first read that
/// `std::fs::read` makes on a file whose size is 0 gets the start of a parse error and never
/// the `parse_error:` line. One large read gets it all.
pub(crate) fn read_in_one_call(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    let n = file.read(&mut buf)?;
    buf.truncate(n);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn read_event_file(path: &Path, group: &str, event: &str) -> Result<String, TracefsError> {
    read_text(path).map_err(|e| match e {
        TracefsError::Read { source, .. } if source.kind() == io::ErrorKind::NotFound => {
            no_such_event(group, event, path)
        }
        other => other,
    })
}

fn no_such_event(group: &str, event: &str, path: &Path) -> TracefsError {
    TracefsError::NoSuchEvent {
        group: group.to_owned(),
        event: event.to_owned(),
        path: path.to_owned(),
    }
}

/// One `write()` of `data` to an existing control file, without `O_TRUNC` or `O_CREAT`.
pub(crate) fn write_control(path: &Path, data: &str) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).open(path)?;
    let n = file.write(data.as_bytes())?;
    if n == data.len() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "short write: {n} of {} bytes",
            data.len()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn available_events_real_lines() {
        // First lines of available_events on Linux 6.18, plus a probe event.
        let text = "initcall:initcall_finish\ninitcall:initcall_start\nsched:sched_switch\nrptest_4209:ev2\n";
        let events = parse_available_events(text);
        assert_eq!(events.len(), 4);
        assert_eq!(events[2].to_string(), "sched:sched_switch");
        assert_eq!(events[3].group, "rptest_4209");
    }

    #[test]
    fn available_events_cut_and_unknown() {
        let events = parse_available_events("sched:sched_sw");
        assert_eq!(events[0].event, "sched_sw");
        for bad in ["sched", "sched:", ":x", "a:b:c", ""] {
            assert!(parse_available_events(bad).is_empty(), "{bad:?}");
        }
    }

    #[test]
    fn filter_functions_strip_modules_and_keep_order() {
        let text = "run_init_process\ntry_to_run_init_process\nsnd_hda_codec_get_pincfg [snd_hda_codec]\n\n__traceiter_xfs_attr_list_sf [xfs]\n";
        assert_eq!(
            parse_filter_functions(text),
            [
                "run_init_process",
                "try_to_run_init_process",
                "snd_hda_codec_get_pincfg",
                "__traceiter_xfs_attr_list_sf"
            ]
        );
        assert_eq!(parse_filter_functions("cut_sho"), ["cut_sho"]);
    }

    #[test]
    fn filter_error_from_real_filter_file() {
        // events/GROUP/EVENT/filter after writing `bogus >>` on Linux 6.18.
        let text = "bogus >>\n        ^\nparse_error: Invalid value (did you forget quotes)?\n";
        assert_eq!(
            parse_filter_error(text).as_deref(),
            Some("Invalid value (did you forget quotes)?")
        );
        assert_eq!(parse_filter_error("none\n"), None);
        assert_eq!(parse_filter_error("a > 5\n"), None);
    }

    use crate::tracefs::fake;

    #[test]
    fn id_format_and_existence_from_a_tree() {
        let (dir, tracefs) = fake::tree();
        assert!(tracefs.event_exists("rptest", "ev"));
        assert!(!tracefs.event_exists("rptest", "nope"));
        assert_eq!(tracefs.event_id("rptest", "ev").expect("id"), 2326);
        let format = tracefs.event_format("rptest", "ev").expect("format");
        assert_eq!(format.name, "ev");
        assert_eq!(format.event_fields().count(), 4);
        let err = tracefs.event_id("rptest", "nope").expect_err("missing");
        assert!(matches!(err, TracefsError::NoSuchEvent { .. }), "{err:?}");
        assert!(err.to_string().contains("rptest:nope"), "{err}");
        fake::write(&dir.path().join("events/rptest/ev"), "id", "twelve\n");
        assert!(matches!(
            tracefs.event_id("rptest", "ev"),
            Err(TracefsError::Parse { .. })
        ));
        fake::write(
            &dir.path().join("events/rptest/ev"),
            "format",
            "name: ev\nID: 1\n",
        );
        let err = tracefs.event_format("rptest", "ev").expect_err("cut short");
        assert!(matches!(err, TracefsError::BadFormat { .. }), "{err:?}");
        assert!(err.to_string().contains("format"), "{err}");
    }

    #[test]
    fn enable_and_filter_write_the_control_files() {
        let (dir, tracefs) = fake::tree();
        let ev = dir.path().join("events/rptest/ev");
        assert!(!tracefs.is_enabled("rptest", "ev").expect("enable"));
        tracefs.set_enabled("rptest", "ev", true).expect("enable");
        assert_eq!(fake::read(&ev, "enable").trim(), "1");
        assert!(tracefs.is_enabled("rptest", "ev").expect("enable"));
        tracefs.set_enabled("rptest", "ev", false).expect("disable");
        assert_eq!(fake::read(&ev, "enable").trim(), "0");
        // Plain files keep old bytes past the write: the kernel file would hold only the filter.
        fake::write(&ev, "filter", "");
        tracefs.set_filter("rptest", "ev", "a > 5").expect("filter");
        assert_eq!(fake::read(&ev, "filter"), "a > 5");
        let err = tracefs
            .set_filter("rptest", "ev", "a > 5\nb")
            .expect_err("newline");
        assert!(matches!(err, TracefsError::BadInput { what: "filter", .. }));
        let err = tracefs
            .set_enabled("rptest", "nope", true)
            .expect_err("missing");
        assert!(matches!(err, TracefsError::NoSuchEvent { .. }), "{err:?}");
    }

    #[test]
    fn filter_that_cannot_be_written_is_rejected_with_the_path() {
        let (dir, tracefs) = fake::tree();
        let ev = dir.path().join("events/rptest/ev");
        std::fs::remove_file(ev.join("filter")).expect("rm");
        std::fs::create_dir(ev.join("filter")).expect("mkdir");
        let err = tracefs
            .set_filter("rptest", "ev", "0")
            .expect_err("a directory");
        match &err {
            TracefsError::FilterRejected {
                path,
                filter,
                message,
                ..
            } => {
                assert!(path.ends_with("rptest/ev/filter"));
                assert_eq!((filter.as_str(), message), ("0", &None));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn lists_from_a_tree() {
        let (dir, tracefs) = fake::tree();
        let events = tracefs.list_events().expect("events");
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].to_string(), "rptest:ev");
        fake::add_event(dir.path(), "rptest", "a_first");
        assert_eq!(
            tracefs.group_events("rptest").expect("group"),
            ["a_first", "ev"]
        );
        assert!(matches!(
            tracefs.group_events("nogroup"),
            Err(TracefsError::Read { .. })
        ));
        assert!(matches!(
            tracefs.available_filter_functions(),
            Err(TracefsError::Read { .. })
        ));
        fake::write(dir.path(), "available_filter_functions", "b\na [m]\n");
        assert_eq!(
            tracefs.available_filter_functions().expect("funcs"),
            ["b", "a"]
        );
    }

    proptest! {
        #[test]
        fn never_panics(text in "(\\PC|\n|:|\\[){0,200}") {
            let _ = parse_available_events(&text);
            let _ = parse_filter_functions(&text);
            let _ = parse_filter_error(&text);
        }
    }
}

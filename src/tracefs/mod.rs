//! tracefs: the kernel's tracing filesystem, reached by plain file I/O under a root path.
//!
//! Everything here goes through [`Tracefs`], which holds only the root directory
//! (`/sys/kernel/tracing`, or `/sys/kernel/debug/tracing` on old systems, or a temporary tree
//! in tests). No syscalls beyond `std::fs`, no `unsafe`; mounting tracefs is `sys`'s job.
//! Each file format has its own submodule with its parser, which is pure and takes `&str`:
//!
//! | file | module | parser |
//! |---|---|---|
//! | `README`, `available_tracers` | [`features`] | [`parse_readme`], [`parse_available_tracers`] |
//! | `events/G/E/format` | [`format`] | [`parse_format`] |
//! | `error_log` | [`error_log`] | [`parse_error_log`] |
//! | `kprobe_events`, `uprobe_events` | [`probe_events`] | [`parse_probe_event_line`] |
//! | `available_events`, `available_filter_functions`, `events/G/E/*` | [`events`] | [`parse_available_events`], [`parse_filter_functions`] |
//! | `instances/NAME` | [`instance`] | — |
//! | `instances/NAME/{current_tracer,set_ftrace_*,per_cpu/cpuN/stats}` | [`ftrace`] | [`ftrace::parse_cpu_stats`] |
//! | `instances/NAME/trace_pipe` (function, function_graph) | [`graph`] | [`graph::parse_function_line`] |
//!
//! Rules this module keeps, because other tools share tracefs: events files are only ever
//! appended to (never `O_TRUNC`), and nothing here changes global ftrace state on its own —
//! the caller decides which events it owns, and ftrace control happens in an [`Instance`].

pub mod error;
pub mod error_log;
pub mod events;
pub mod features;
pub mod format;
pub mod ftrace;
pub mod graph;
pub mod instance;
pub mod probe_events;

use std::path::{Path, PathBuf};

pub use error::TracefsError;
pub use error_log::{parse_error_log, ErrorLogEntry};
pub use events::{parse_available_events, parse_filter_functions, EventName};
pub use features::{parse_available_tracers, parse_readme, EventFiles, Features};
pub use format::{parse_format, EventFormat, FormatError, FormatField};
pub use instance::Instance;
pub use probe_events::{parse_probe_event_line, ProbeEventLine};

/// The kind of dynamic probe event, which decides the events file written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// Kernel probes, `kprobe_events` (`CONFIG_KPROBE_EVENTS`).
    Kprobe,
    /// User-space probes, `uprobe_events` (`CONFIG_UPROBE_EVENTS`).
    Uprobe,
}

impl ProbeKind {
    /// The events file under the tracefs root: `"kprobe_events"` or `"uprobe_events"`.
    pub fn file_name(self) -> &'static str {
        match self {
            ProbeKind::Kprobe => "kprobe_events",
            ProbeKind::Uprobe => "uprobe_events",
        }
    }

    /// The kernel option that provides the events file.
    pub fn config_option(self) -> &'static str {
        match self {
            ProbeKind::Kprobe => "CONFIG_KPROBE_EVENTS",
            ProbeKind::Uprobe => "CONFIG_UPROBE_EVENTS",
        }
    }

    /// The source name the kernel puts on this kind's `error_log` entries.
    pub fn error_log_source(self) -> &'static str {
        match self {
            ProbeKind::Kprobe => "trace_kprobe",
            ProbeKind::Uprobe => "trace_uprobe",
        }
    }
}

/// A tracefs mount (or an instance, or a test tree), addressed by its root directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracefs {
    root: PathBuf,
}

impl Tracefs {
    /// Where tracefs is looked for, in order: its own mount point (Linux 4.1+), then the
    /// debugfs path that older systems use.
    pub const CANDIDATES: [&'static str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

    /// A tracefs at `root`. Does no I/O.
    pub fn at(root: impl Into<PathBuf>) -> Tracefs {
        Tracefs { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The first of `candidates` that holds a tracefs (a `README` file or an `events/`
    /// directory). [`TracefsError::NotMounted`] lists the paths tried and the mount command;
    /// mounting is left to the caller.
    pub fn find_in(candidates: &[&Path]) -> Result<Tracefs, TracefsError> {
        candidates
            .iter()
            .find(|dir| dir.join("README").is_file() || dir.join("events").is_dir())
            .map(|dir| Tracefs::at(*dir))
            .ok_or_else(|| TracefsError::NotMounted {
                tried: candidates.iter().map(|p| p.to_path_buf()).collect(),
            })
    }

    /// [`Tracefs::find_in`] over [`Tracefs::CANDIDATES`].
    pub fn find() -> Result<Tracefs, TracefsError> {
        let candidates = Tracefs::CANDIDATES.map(Path::new);
        Tracefs::find_in(&candidates)
    }

    /// What this kernel supports: `README` (required), `available_tracers` (an empty list if
    /// unreadable) and which probe-event files exist.
    pub fn features(&self) -> Result<Features, TracefsError> {
        let readme = events::read_text(&self.root.join("README"))?;
        let tracers = events::read_text(&self.root.join("available_tracers"))
            .map(|text| parse_available_tracers(&text))
            .unwrap_or_default();
        let files = EventFiles {
            kprobe_events: self.root.join("kprobe_events").is_file(),
            uprobe_events: self.root.join("uprobe_events").is_file(),
            dynamic_events: self.root.join("dynamic_events").is_file(),
        };
        Ok(parse_readme(&readme, files, tracers))
    }
}

/// Refuse names that would leave the directory they name an entry of (`..`, `a/b`) or that no
/// tracefs entry has (empty, whitespace, control characters).
pub(crate) fn validate_name(what: &'static str, name: &str) -> Result<(), TracefsError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name == "." || name == ".." || name.contains('/') {
        Some("it is a path, not a name")
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("it holds whitespace or a control character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(TracefsError::BadInput {
            what,
            text: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A temporary directory laid out like tracefs, for tests of the I/O functions.
#[cfg(test)]
pub(crate) mod fake {
    use std::fs;
    use std::path::Path;

    use super::Tracefs;

    /// The README of the Linux 6.18 test machine.
    pub const README: &str = include_str!("../../fixtures/tracefs/README");

    /// A tree with `README`, `available_tracers`, `uprobe_events`, `dynamic_events`,
    /// `error_log`, `available_events`, `instances/` and one uprobe event `rptest/ev` with
    /// the real format of a uprobe (id 2326).
    pub fn tree() -> (tempfile::TempDir, Tracefs) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "README", README);
        write(root, "available_tracers", "blk function nop\n");
        write(root, "uprobe_events", "");
        write(root, "dynamic_events", "");
        write(root, "error_log", "");
        write(root, "available_events", "sched:sched_switch\nrptest:ev\n");
        fs::create_dir(root.join("instances")).expect("mkdir");
        add_event(root, "rptest", "ev");
        let tracefs = Tracefs::at(root);
        (dir, tracefs)
    }

    /// Add `events/GROUP/EVENT/{id,format,enable,filter}`, disabled and unfiltered.
    pub fn add_event(root: &Path, group: &str, event: &str) {
        let dir = root.join("events").join(group).join(event);
        fs::create_dir_all(&dir).expect("mkdir");
        write(&dir, "id", "2326\n");
        write(
            &dir,
            "format",
            include_str!("../../fixtures/tracefs/uprobe_ev.format"),
        );
        write(&dir, "enable", "0\n");
        write(&dir, "filter", "none\n");
    }

    /// Write `text` to `dir/name`, creating or replacing it.
    pub fn write(dir: &Path, name: &str, text: &str) {
        fs::write(dir.join(name), text).expect("write fixture file");
    }

    /// The contents of `dir/name`.
    pub fn read(dir: &Path, name: &str) -> String {
        fs::read_to_string(dir.join(name)).expect("read fixture file")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_in_takes_the_first_candidate_with_readme_or_events() {
        let (dir, _) = fake::tree();
        let empty = tempfile::tempdir().expect("tempdir");
        let events_only = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(events_only.path().join("events")).expect("mkdir");
        let found = Tracefs::find_in(&[empty.path(), dir.path()]).expect("found");
        assert_eq!(found.root(), dir.path());
        let found = Tracefs::find_in(&[events_only.path(), dir.path()]).expect("found");
        assert_eq!(found.root(), events_only.path());
    }

    #[test]
    fn find_in_lists_what_it_tried() {
        let empty = tempfile::tempdir().expect("tempdir");
        let missing = empty.path().join("nope");
        let err = Tracefs::find_in(&[empty.path(), &missing]).expect_err("not mounted");
        match &err {
            TracefsError::NotMounted { tried } => assert_eq!(tried.len(), 2),
            other => panic!("unexpected {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains(&missing.display().to_string()), "{text}");
        assert!(
            text.contains("mount -t tracefs nodev /sys/kernel/tracing"),
            "{text}"
        );
    }

    #[test]
    fn features_read_readme_tracers_and_files() {
        let (dir, tracefs) = fake::tree();
        let f = tracefs.features().expect("features");
        assert!(f.uprobe_events && f.dynamic_events && !f.kprobe_events);
        assert!(f.has_tracer("function") && !f.has_tracer("function_graph"));
        assert!(f.ustring && !f.kretprobe_offset);
        fake::write(dir.path(), "kprobe_events", "");
        std::fs::remove_file(dir.path().join("available_tracers")).expect("rm");
        let f = tracefs.features().expect("features");
        assert!(f.kprobe_events && f.tracers.is_empty());
        std::fs::remove_file(dir.path().join("README")).expect("rm");
        assert!(matches!(tracefs.features(), Err(TracefsError::Read { .. })));
    }

    #[test]
    fn at_does_no_io_and_names_are_checked() {
        let t = Tracefs::at("/definitely/not/here");
        assert_eq!(t.root(), Path::new("/definitely/not/here"));
        for bad in ["", ".", "..", "a/b", "a b", "a\nb"] {
            assert!(validate_name("event name", bad).is_err(), "{bad:?}");
            assert!(!t.event_exists(bad, "x") && !t.event_exists("x", bad));
        }
        assert!(validate_name("group name", "9p").is_ok());
        assert_eq!(ProbeKind::Uprobe.file_name(), "uprobe_events");
        assert_eq!(ProbeKind::Kprobe.file_name(), "kprobe_events");
    }
}

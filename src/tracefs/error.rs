//! `TracefsError`: every failure of the tracefs module, each naming the path and what failed.
//!
//! Display is one line that says what to do next; [`TracefsError::render_caret`] gives the
//! three-line form for a probe the kernel rejected (message, command, caret under the bad part),
//! built from the kernel's own `error_log` entry.

use std::io;
use std::path::PathBuf;

use super::error_log::ErrorLogEntry;
use super::format::FormatError;
use super::ProbeKind;

/// An error from reading or writing tracefs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TracefsError {
    /// No candidate directory holds a tracefs (neither `README` nor `events/` exists).
    #[error(
        "tracefs is not mounted (tried {}); mount it with: mount -t tracefs nodev /sys/kernel/tracing",
        join_paths(.tried)
    )]
    NotMounted {
        /// The directories that were checked, in order.
        tried: Vec<PathBuf>,
    },

    /// Reading a tracefs file failed.
    #[error("cannot read {}: {source}{}", .path.display(), io_hint(.source))]
    Read {
        /// The file that was read.
        path: PathBuf,
        /// The error from the OS.
        source: io::Error,
    },

    /// Opening or writing a tracefs control file failed.
    #[error("cannot write {data:?} to {}: {source}{}", .path.display(), io_hint(.source))]
    Write {
        /// The file that was written.
        path: PathBuf,
        /// What was being written.
        data: String,
        /// The error from the OS.
        source: io::Error,
    },

    /// This kernel has no `kprobe_events`/`uprobe_events` file.
    #[error(
        "this kernel has no {} ({} is missing): it was built without {}",
        .kind.file_name(), .path.display(), .kind.config_option()
    )]
    NoProbeEvents {
        /// Which kind of probe events was asked for.
        kind: ProbeKind,
        /// The missing file.
        path: PathBuf,
    },

    /// The event `GROUP/EVENT` has no directory under `events/`.
    #[error("no event {group}:{event} ({} does not exist); see `rprobe list`", .path.display())]
    NoSuchEvent {
        /// The event's group (system).
        group: String,
        /// The event's name.
        event: String,
        /// The directory or file that was missing.
        path: PathBuf,
    },

    /// Input was refused before anything was opened or written.
    #[error("refusing to write {what} {text:?}: {reason}")]
    BadInput {
        /// What the input is: "probe definition", "filter", "group name", ...
        what: &'static str,
        /// The rejected input.
        text: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// The kernel refused a line written to `kprobe_events`/`uprobe_events` (a definition or a
    /// `-:GROUP/EVENT` deletion).
    #[error("kernel rejected probe: {}", rejection_message(.log.as_deref(), .source))]
    ProbeRejected {
        /// The events file that was written.
        path: PathBuf,
        /// The line as written (without the trailing newline).
        command: String,
        /// The error `write()` returned (EINVAL, E2BIG, EEXIST, ENOENT, EBUSY, ...).
        source: io::Error,
        /// The kernel's `error_log` entry for this command, when it wrote one (boxed to keep
        /// the error small).
        log: Option<Box<ErrorLogEntry>>,
    },

    /// The kernel refused an event filter.
    #[error(
        "kernel rejected filter {filter:?} in {}: {}",
        .path.display(),
        .message.as_deref().map_or_else(|| .source.to_string(), str::to_owned)
    )]
    FilterRejected {
        /// The `filter` file that was written.
        path: PathBuf,
        /// The filter as written.
        filter: String,
        /// The error `write()` returned.
        source: io::Error,
        /// The `parse_error:` text the kernel left in the filter file, if any.
        message: Option<String>,
    },

    /// A file held something this module could not parse.
    #[error("cannot parse {}: {reason}", .path.display())]
    Parse {
        /// The file that was read.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },

    /// An event `format` file could not be parsed.
    #[error("cannot parse {}: {source}", .path.display())]
    BadFormat {
        /// The `format` file.
        path: PathBuf,
        /// What was wrong with it.
        source: FormatError,
    },

    /// `mkdir instances/NAME` failed.
    #[error("cannot create tracefs instance {}: {source}{}", .path.display(), instance_hint(.source))]
    CreateInstance {
        /// The instance directory.
        path: PathBuf,
        /// The error from the OS.
        source: io::Error,
    },

    /// `rmdir instances/NAME` failed.
    #[error("cannot remove tracefs instance {}: {source}{}", .path.display(), instance_hint(.source))]
    RemoveInstance {
        /// The instance directory.
        path: PathBuf,
        /// The error from the OS.
        source: io::Error,
    },
}

impl TracefsError {
    /// The multi-line form of the error for a terminal.
    ///
    /// For [`TracefsError::ProbeRejected`] with an `error_log` entry this is three lines: the
    /// one-line message, the command as the kernel saw it, and a caret under the part the
    /// kernel complained about:
    ///
    /// ```text
    /// kernel rejected probe: Invalid register name
    ///   p:g/bad1 /usr/bin/true:0x23d0 +0(%rdi):u32
    ///                                    ^
    /// ```
    ///
    /// Every other error renders as its one-line `Display`.
    pub fn render_caret(&self) -> String {
        match self {
            TracefsError::ProbeRejected { log: Some(log), .. } => {
                format!("{self}\n{}", log.caret_lines())
            }
            _ => self.to_string(),
        }
    }

    /// The OS error behind this error, if there is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            TracefsError::Read { source, .. }
            | TracefsError::Write { source, .. }
            | TracefsError::ProbeRejected { source, .. }
            | TracefsError::FilterRejected { source, .. }
            | TracefsError::CreateInstance { source, .. }
            | TracefsError::RemoveInstance { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn join_paths(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}

/// The kernel's message when it logged one, else what the errno means for a probe write.
fn rejection_message(log: Option<&ErrorLogEntry>, source: &io::Error) -> String {
    if let Some(log) = log {
        return log.message.clone();
    }
    let meaning = match source.raw_os_error() {
        Some(libc_errno::EINVAL) => {
            "invalid definition and no error_log entry (dmesg may say why, e.g. a notrace \
             function or a ref_ctr_offset mismatch)"
        }
        Some(libc_errno::E2BIG) => "too many arguments or an argument longer than 63 chars",
        Some(libc_errno::ENOENT) => "no such event or probe point",
        Some(libc_errno::EEXIST) => "the group/event name is already used by another event",
        Some(libc_errno::EBUSY) => {
            "the event is in use (enabled, or open in perf); disable it and close perf first"
        }
        _ => "",
    };
    if meaning.is_empty() {
        source.to_string()
    } else {
        format!("{meaning} ({source})")
    }
}

fn io_hint(source: &io::Error) -> &'static str {
    match source.kind() {
        io::ErrorKind::PermissionDenied => {
            " (tracefs needs root or CAP_SYS_ADMIN; some files are also closed by kernel \
             lockdown or an LSM)"
        }
        _ => "",
    }
}

fn instance_hint(source: &io::Error) -> &'static str {
    match source.kind() {
        io::ErrorKind::AlreadyExists => {
            " (an instance of that name exists; if no tracer owns it, remove it with rmdir)"
        }
        io::ErrorKind::NotFound => " (no such instance, or tracefs has no instances/ directory)",
        io::ErrorKind::ResourceBusy => " (the instance is in use: close its trace_pipe readers)",
        io::ErrorKind::PermissionDenied => " (needs root or CAP_SYS_ADMIN)",
        _ => "",
    }
}

/// The errno values the messages above distinguish. Linux numbers, identical on every
/// architecture rprobe targets; spelled out so this module needs no `libc`.
mod libc_errno {
    pub const ENOENT: i32 = 2;
    pub const E2BIG: i32 = 7;
    pub const EBUSY: i32 = 16;
    pub const EEXIST: i32 = 17;
    pub const EINVAL: i32 = 22;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> ErrorLogEntry {
        ErrorLogEntry {
            timestamp: "430.860770".into(),
            source: "trace_uprobe".into(),
            message: "Invalid register name".into(),
            command: "p:g/bad1 /usr/bin/true:0x23d0 +0(%rdi):u32".into(),
            caret: 33,
        }
    }

    #[test]
    fn rejected_display_is_one_line_with_the_log_message() {
        let e = TracefsError::ProbeRejected {
            path: "/sys/kernel/tracing/uprobe_events".into(),
            command: entry().command,
            source: io::Error::from_raw_os_error(22),
            log: Some(Box::new(entry())),
        };
        assert_eq!(
            e.to_string(),
            "kernel rejected probe: Invalid register name"
        );
        assert_eq!(
            e.render_caret(),
            "kernel rejected probe: Invalid register name\n\
             \x20 p:g/bad1 /usr/bin/true:0x23d0 +0(%rdi):u32\n\
             \x20                                  ^"
        );
    }

    #[test]
    fn rejected_without_log_explains_the_errno() {
        let e = TracefsError::ProbeRejected {
            path: "/t/uprobe_events".into(),
            command: "-:g/e".into(),
            source: io::Error::from_raw_os_error(16),
            log: None,
        };
        let text = e.to_string();
        assert!(
            text.starts_with("kernel rejected probe: the event is in use"),
            "{text}"
        );
        assert_eq!(e.render_caret(), text);
    }

    #[test]
    fn not_mounted_lists_paths_and_the_fix() {
        let e = TracefsError::NotMounted {
            tried: vec!["/a".into(), "/b".into()],
        };
        assert_eq!(
            e.to_string(),
            "tracefs is not mounted (tried /a, /b); mount it with: \
             mount -t tracefs nodev /sys/kernel/tracing"
        );
    }

    #[test]
    fn permission_errors_carry_a_hint() {
        let e = TracefsError::Read {
            path: "/t/available_filter_functions".into(),
            source: io::Error::from_raw_os_error(1),
        };
        assert!(e.to_string().contains("needs root"), "{e}");
    }
}

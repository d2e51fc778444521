//! ftrace control in a private instance: tracer, function filters, pid filters, options,
//! `tracing_on`, and the per-CPU `stats` that count lost events.
//!
//! Every setter here is a method of [`Instance`], never of [`Tracefs`], so the global
//! `current_tracer`, `set_ftrace_filter` and `tracing_on` that other tools rely on cannot be
//! changed by mistake (`Documentation/trace/ftrace.rst`, "Instances").
//!
//! What the kernels do (seen on Linux 6.18 on the development machine and on Debian's 6.1 and
//! 6.12 in the kernel lab):
//!
//! - `available_tracers` of an instance lists only tracers with `allow_instances`:
//!   `function nop` on 6.1 and 6.18, `function_graph function nop` on 6.12. The top level of
//!   6.1 lists `function_graph` too, but only for the global buffer. An instance has no
//!   `set_graph_function` and no `max_graph_depth` on any of them (those are global), so a
//!   graph rooted at a function and cut at a depth is selected from the output by the reader
//!   ([`super::graph`]).
//! - Function filters (`set_ftrace_filter`, `set_ftrace_notrace`) take one pattern per write:
//!   a name or a glob (`*`, `?`, `[...]`); a pattern that matches no traceable function is
//!   refused with EINVAL, which is how "not traceable" shows. Opening without `O_TRUNC` adds to
//!   the list.
//! - `set_ftrace_pid` takes pids separated by spaces; it accepts a pid that does not exist.
//!   The `function-fork` option adds the children of a traced task as they fork.
//! - On the 6.18 development machine (kernel "locked down from Kernel configuration") every
//!   file of `kernel/trace/ftrace.c` that lists or sets functions or pids —
//!   `available_filter_functions`, `set_ftrace_filter`, `set_ftrace_notrace`,
//!   `set_ftrace_pid`, `enabled_functions` — fails to open with EPERM, for reading and for
//!   writing, at the top level and in instances, even for root; and writing `function` to an
//!   instance's `current_tracer` fails with EIO. `set_event_pid`, `trace_pipe` and the
//!   options work. So that kernel cannot trace functions from an instance at all; the errors
//!   below say which file refused and what it means.
//!
//! `per_cpu/cpuN/stats` (`tracing_stats_read()`):
//!
//! ```text
//! entries: 0
//! overrun: 0
//! commit overrun: 0
//! bytes: 0
//! oldest event ts:     0.000000
//! now ts:   734.075181
//! dropped events: 0
//! read events: 0
//! ```
//!
//! `overrun` counts events overwritten before they were read (overwrite mode, the default),
//! `dropped events` those refused because the buffer was full (overwrite off); their sum is
//! what a reader lost.

use std::io;
use std::path::{Path, PathBuf};

use super::events::{read_text, write_control};
use super::{parse_available_tracers, Instance, TracefsError};

/// An error from ftrace control in an instance.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FtraceError {
    /// The instance does not offer the tracer.
    #[error(
        "the {tracer} tracer is not available {}{}",
        if *.top_level { "in tracefs instances on this kernel (only the global tracer has it, and rprobe never changes the global tracer)" } else { "on this kernel" },
        tracer_hint(.tracer, *.top_level, .available)
    )]
    NoTracer {
        /// The tracer asked for.
        tracer: String,
        /// The top level lists it.
        top_level: bool,
        /// What the instance offers.
        available: Vec<String>,
    },

    /// Writing the tracer's name to the instance's `current_tracer` failed.
    #[error("the kernel refused to start the {tracer} tracer in {}: {error}{}", .path.display(), refusal_hint(.error))]
    TracerRefused {
        /// The tracer.
        tracer: String,
        /// The instance's `current_tracer`.
        path: PathBuf,
        /// The write's error (shown in the message, so not a `source`).
        error: io::Error,
    },

    /// An ftrace filter file could not be opened.
    #[error("cannot open {}: {error}{}", .path.display(), closed_hint(.error))]
    FilterClosed {
        /// The file.
        path: PathBuf,
        /// The open's error (shown in the message, so not a `source`).
        error: io::Error,
    },

    /// The kernel refused a function pattern (EINVAL: it matches no traceable function).
    #[error("no traceable function matches '{pattern}' ({} refused it: {error}); ftrace cannot trace it (notrace, inlined or not a function)", .path.display())]
    NoMatch {
        /// The pattern written.
        pattern: String,
        /// The filter file.
        path: PathBuf,
        /// The write's error (shown in the message, so not a `source`).
        error: io::Error,
    },

    /// Any other tracefs failure.
    #[error(transparent)]
    Tracefs(#[from] TracefsError),
}

fn tracer_hint(tracer: &str, top_level: bool, available: &[String]) -> String {
    let offered = if available.is_empty() {
        String::new()
    } else {
        format!("; instances offer: {}", available.join(" "))
    };
    let why = match (tracer, top_level) {
        ("function_graph", true) => {
            "; function_graph runs in instances from Linux 6.11 (the lab's 6.12 has it, 6.1 \
             does not)"
        }
        ("function_graph", false) => "; the kernel was built without CONFIG_FUNCTION_GRAPH_TRACER",
        ("function", false) => "; the kernel was built without CONFIG_FUNCTION_TRACER",
        _ => "",
    };
    format!("{why}{offered}")
}

fn refusal_hint(source: &io::Error) -> &'static str {
    match source.raw_os_error() {
        Some(5) => {
            " (EIO: ftrace could not hook the kernel's functions; on a locked-down kernel \
             function tracing is closed to instances)"
        }
        Some(16) => " (EBUSY: another tracer holds the function hooks)",
        _ => "",
    }
}

fn closed_hint(source: &io::Error) -> &'static str {
    match source.raw_os_error() {
        Some(1) => {
            " (EPERM even for root: this kernel closes ftrace's function and pid filter files, \
             as kernel lockdown or an LSM does; function tracing needs a kernel that allows it)"
        }
        Some(2) => " (the kernel was built without CONFIG_DYNAMIC_FTRACE)",
        _ => "",
    }
}

/// Which function list of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionList {
    /// `set_ftrace_filter`: only these are traced (all when empty).
    Trace,
    /// `set_ftrace_notrace`: these are never traced.
    NoTrace,
}

impl FunctionList {
    /// The file name.
    pub fn file_name(self) -> &'static str {
        match self {
            FunctionList::Trace => "set_ftrace_filter",
            FunctionList::NoTrace => "set_ftrace_notrace",
        }
    }
}

/// One CPU's ring-buffer counters from `per_cpu/cpuN/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuStats {
    /// `entries`: events in the buffer now.
    pub entries: u64,
    /// `overrun`: events overwritten before they were read.
    pub overrun: u64,
    /// `commit overrun`: events lost while a commit was in progress.
    pub commit_overrun: u64,
    /// `dropped events`: events refused because the buffer was full.
    pub dropped: u64,
    /// `read events`: events consumed by readers.
    pub read: u64,
}

impl CpuStats {
    /// Events that a reader never saw.
    pub fn lost(&self) -> u64 {
        self.overrun
            .saturating_add(self.commit_overrun)
            .saturating_add(self.dropped)
    }
}

// overrun: 0
/// Parse a `per_cpu/cpuN/stats` file; missing or malformed counters are 0.
pub fn parse_cpu_stats(text: &str) -> CpuStats {
    let mut stats = CpuStats::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let Ok(n) = value.trim().parse::<u64>() else {
            continue;
        };
        match key.trim() {
            "entries" => stats.entries = n,
            "overrun" => stats.overrun = n,
            "commit overrun" => stats.commit_overrun = n,
            "dropped events" => stats.dropped = n,
            "read events" => stats.read = n,
            _ => {}
        }
    }
    stats
}

impl Instance {
    fn file(&self, name: &str) -> PathBuf {
        self.root().join(name)
    }

    /// The tracers this instance offers (`available_tracers`).
    pub fn available_tracers(&self) -> Result<Vec<String>, TracefsError> {
        Ok(parse_available_tracers(&read_text(
            &self.file("available_tracers"),
        )?))
    }

    /// The instance's `current_tracer`.
    pub fn current_tracer(&self) -> Result<String, TracefsError> {
        Ok(read_text(&self.file("current_tracer"))?.trim().to_owned())
    }

    /// Start `tracer` in the instance (`nop` stops it). `top_level_tracers` (the global
    /// `available_tracers`) only shapes the error when the instance does not offer it.
    pub fn set_tracer(
        &self,
        tracer: &str,
        top_level_tracers: &[String],
    ) -> Result<(), FtraceError> {
        let available = self.available_tracers()?;
        if !available.iter().any(|t| t == tracer) {
            return Err(FtraceError::NoTracer {
                tracer: tracer.to_owned(),
                top_level: top_level_tracers.iter().any(|t| t == tracer),
                available,
            });
        }
        let path = self.file("current_tracer");
        write_control(&path, tracer).map_err(|error| FtraceError::TracerRefused {
            tracer: tracer.to_owned(),
            path,
            error,
        })
    }

    /// Add one function name or glob to a function list. EINVAL (nothing matches) comes back
    /// as [`FtraceError::NoMatch`].
    pub fn add_function(&self, list: FunctionList, pattern: &str) -> Result<(), FtraceError> {
        check_pattern(pattern)?;
        let path = self.file(list.file_name());
        let file = open_filter(&path)?;
        write_once(file, pattern).map_err(|source| match source.raw_os_error() {
            Some(22) => FtraceError::NoMatch {
                pattern: pattern.to_owned(),
                path,
                error: source,
            },
            _ => FtraceError::Tracefs(TracefsError::Write {
                path,
                data: pattern.to_owned(),
                source,
            }),
        })
    }

    /// The functions a list holds now, one per line as the kernel prints them (globs
    /// expanded; an empty list reads as nothing, or as a `#### all functions enabled ####`
    /// comment, which is skipped).
    pub fn functions(&self, list: FunctionList) -> Result<Vec<String>, FtraceError> {
        let path = self.file(list.file_name());
        let text = read_filter(&path)?;
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.split_whitespace().next().unwrap_or(l).to_owned())
            .collect())
    }

    /// Trace only these tasks (`set_ftrace_pid`), in one write.
    pub fn add_ftrace_pids(&self, pids: &[u32]) -> Result<(), FtraceError> {
        let path = self.file("set_ftrace_pid");
        let file = open_filter(&path)?;
        let data = join_pids(pids);
        write_once(file, &data)
            .map_err(|source| FtraceError::Tracefs(TracefsError::Write { path, data, source }))
    }

    /// Record events only of these tasks (`set_event_pid`), in one write.
    pub fn add_event_pids(&self, pids: &[u32]) -> Result<(), TracefsError> {
        let path = self.file("set_event_pid");
        let data = join_pids(pids);
        write_control(&path, &data).map_err(|source| TracefsError::Write { path, data, source })
    }

    /// Set `options/NAME`; false when this kernel has no such option.
    pub fn set_option(&self, name: &str, on: bool) -> Result<bool, TracefsError> {
        super::validate_name("option", name)?;
        let path = self.file("options").join(name);
        if !path.is_file() {
            return Ok(false);
        }
        let data = if on { "1" } else { "0" };
        write_control(&path, data).map_err(|source| TracefsError::Write {
            path,
            data: data.to_owned(),
            source,
        })?;
        Ok(true)
    }

    /// Write the instance's `tracing_on`.
    pub fn set_tracing_on(&self, on: bool) -> Result<(), TracefsError> {
        let path = self.file("tracing_on");
        let data = if on { "1" } else { "0" };
        write_control(&path, data).map_err(|source| TracefsError::Write {
            path,
            data: data.to_owned(),
            source,
        })
    }

    /// Set `buffer_percent` (0: wake `trace_pipe` readers on every event); false when the
    /// kernel has no such file (before 5.1).
    pub fn set_buffer_percent(&self, percent: u32) -> Result<bool, TracefsError> {
        let path = self.file("buffer_percent");
        if !path.is_file() {
            return Ok(false);
        }
        let data = percent.to_string();
        write_control(&path, &data).map_err(|source| TracefsError::Write { path, data, source })?;
        Ok(true)
    }

    /// Set the ring buffer of each CPU to `kb` KiB (`buffer_size_kb`).
    pub fn set_buffer_size_kb(&self, kb: u64) -> Result<(), TracefsError> {
        let path = self.file("buffer_size_kb");
        let data = kb.to_string();
        write_control(&path, &data).map_err(|source| TracefsError::Write { path, data, source })
    }

    /// The counters of every CPU (`per_cpu/cpuN/stats`), in CPU order.
    pub fn cpu_stats(&self) -> Result<Vec<CpuStats>, TracefsError> {
        let dir = self.file("per_cpu");
        let entries = std::fs::read_dir(&dir).map_err(|source| TracefsError::Read {
            path: dir.clone(),
            source,
        })?;
        let mut cpus: Vec<(u32, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let n = name.to_str()?.strip_prefix("cpu")?.parse::<u32>().ok()?;
                Some((n, e.path().join("stats")))
            })
            .collect();
        cpus.sort();
        cpus.into_iter()
            .map(|(_, path)| read_text(&path).map(|t| parse_cpu_stats(&t)))
            .collect()
    }

    /// The instance's `trace_pipe`.
    pub fn trace_pipe_path(&self) -> PathBuf {
        self.file("trace_pipe")
    }
}

fn join_pids(pids: &[u32]) -> String {
    let words: Vec<String> = pids.iter().map(u32::to_string).collect();
    words.join(" ")
}

/// Refuse what a filter file would read as something other than one function pattern:
/// `!` (removal), `:` (module and command syntax), whitespace (several patterns).
fn check_pattern(pattern: &str) -> Result<(), TracefsError> {
    let reason = if pattern.is_empty() {
        Some("it is empty")
    } else if pattern.starts_with('!') {
        Some("'!' would remove functions; use -N to exclude them")
    } else if pattern.contains(':') {
        Some("':' starts ftrace's module and command syntax")
    } else if pattern.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("it holds whitespace or a control character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(TracefsError::BadInput {
            what: "function pattern",
            text: pattern.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

fn open_filter(path: &Path) -> Result<std::fs::File, FtraceError> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|error| FtraceError::FilterClosed {
            path: path.to_owned(),
            error,
        })
}

fn read_filter(path: &Path) -> Result<String, FtraceError> {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|error| FtraceError::FilterClosed {
            path: path.to_owned(),
            error,
        })
}

fn write_once(mut file: std::fs::File, data: &str) -> io::Result<()> {
    use std::io::Write;
    let n = file.write(data.as_bytes())?;
    if n != data.len() {
        return Err(io::Error::other(format!(
            "short write: {n} of {} bytes",
            data.len()
        )));
    }
    // ftrace applies a filter write when the file is closed (ftrace_regex_release); an error
    // there is not reported to close(2), so the caller reads the list back when it matters.
    drop(file);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracefs::fake;
    use proptest::prelude::*;

    /// `per_cpu/cpu0/stats` of an instance on Linux 6.18.
    const STATS: &str = "entries: 0\noverrun: 0\ncommit overrun: 0\nbytes: 0\noldest event ts:     0.000000\nnow ts:   734.075181\ndropped events: 0\nread events: 0\n";

    #[test]
    fn stats_of_a_real_cpu_and_of_a_busy_one() {
        assert_eq!(parse_cpu_stats(STATS), CpuStats::default());
        let busy = STATS
            .replace("overrun: 0\ncommit", "overrun: 1234\ncommit")
            .replace("dropped events: 0", "dropped events: 5")
            .replace("read events: 0", "read events: 77")
            .replace("entries: 0", "entries: 9");
        let s = parse_cpu_stats(&busy);
        assert_eq!(
            s,
            CpuStats {
                entries: 9,
                overrun: 1234,
                commit_overrun: 0,
                dropped: 5,
                read: 77
            }
        );
        assert_eq!(s.lost(), 1239);
        // Cut short at every byte: never a panic, counters seen so far kept.
        for cut in 0..busy.len() {
            let _ = parse_cpu_stats(&busy[..cut]);
        }
        assert_eq!(parse_cpu_stats("overrun: x\nbogus\n"), CpuStats::default());
    }

    fn instance_tree() -> (tempfile::TempDir, Instance) {
        let (dir, tracefs) = fake::tree();
        let inst = tracefs.create_instance("rprobe_1").expect("mkdir");
        for (name, text) in [
            ("available_tracers", "function nop\n"),
            ("current_tracer", "nop\n"),
            ("set_ftrace_filter", ""),
            ("set_ftrace_notrace", ""),
            ("set_ftrace_pid", ""),
            ("set_event_pid", ""),
            ("tracing_on", "1"),
            ("buffer_percent", "50\n"),
        ] {
            fake::write(inst.root(), name, text);
        }
        std::fs::create_dir_all(inst.root().join("options")).expect("mkdir");
        fake::write(&inst.root().join("options"), "function-fork", "0\n");
        for cpu in 0..2 {
            let d = inst.root().join(format!("per_cpu/cpu{cpu}"));
            std::fs::create_dir_all(&d).expect("mkdir");
            fake::write(
                &d,
                "stats",
                &STATS.replace(
                    "overrun: 0\ncommit",
                    &format!("overrun: {}\ncommit", cpu + 1),
                ),
            );
        }
        (dir, inst)
    }

    #[test]
    fn control_writes_land_in_the_instance() {
        let (_dir, inst) = instance_tree();
        inst.set_tracer("function", &[]).expect("tracer");
        assert_eq!(inst.current_tracer().expect("read"), "function");
        inst.add_function(FunctionList::Trace, "vfs_*")
            .expect("filter");
        assert_eq!(fake::read(inst.root(), "set_ftrace_filter"), "vfs_*");
        inst.add_ftrace_pids(&[12, 34]).expect("pids");
        assert_eq!(fake::read(inst.root(), "set_ftrace_pid"), "12 34");
        inst.add_event_pids(&[12]).expect("pids");
        assert_eq!(fake::read(inst.root(), "set_event_pid"), "12");
        assert!(inst.set_option("function-fork", true).expect("option"));
        assert!(!inst.set_option("no-such-option", true).expect("option"));
        inst.set_tracing_on(false).expect("off");
        assert_eq!(
            fake::read(inst.root(), "tracing_on"),
            "0\n".replacen("0\n", "0", 1)
        );
        assert!(inst.set_buffer_percent(0).expect("percent"));
        fake::write(inst.root(), "buffer_size_kb", "1408\n");
        inst.set_buffer_size_kb(8192).expect("size");
        assert_eq!(fake::read(inst.root(), "buffer_size_kb"), "8192\n");
        let stats = inst.cpu_stats().expect("stats");
        assert_eq!(stats.iter().map(CpuStats::lost).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn a_tracer_the_instance_lacks_is_named_with_the_reason() {
        let (_dir, inst) = instance_tree();
        let top = vec!["function_graph".to_owned(), "function".to_owned()];
        let err = inst
            .set_tracer("function_graph", &top)
            .expect_err("not in instances");
        let text = err.to_string();
        assert!(
            text.contains("not available in tracefs instances"),
            "{text}"
        );
        assert!(text.contains("instances offer: function nop"), "{text}");
        let err = inst
            .set_tracer("function_graph", &[])
            .expect_err("not built");
        assert!(
            err.to_string().contains("CONFIG_FUNCTION_GRAPH_TRACER"),
            "{err}"
        );
        assert_eq!(inst.current_tracer().expect("read"), "nop");
    }

    #[test]
    fn patterns_are_checked_before_any_write() {
        let (_dir, inst) = instance_tree();
        for bad in [
            "",
            "!vfs_read",
            "vfs_read:traceoff",
            ":mod:ext4",
            "a b",
            "a\nb",
        ] {
            let err = inst
                .add_function(FunctionList::NoTrace, bad)
                .expect_err(bad);
            assert!(
                matches!(err, FtraceError::Tracefs(TracefsError::BadInput { .. })),
                "{bad:?}: {err:?}"
            );
        }
        assert_eq!(fake::read(inst.root(), "set_ftrace_notrace"), "");
    }

    #[test]
    fn a_filter_file_that_cannot_be_opened_says_why() {
        let (_dir, inst) = instance_tree();
        std::fs::remove_file(inst.root().join("set_ftrace_pid")).expect("rm");
        let err = inst.add_ftrace_pids(&[1]).expect_err("missing");
        assert!(matches!(err, FtraceError::FilterClosed { .. }), "{err:?}");
        let e = FtraceError::FilterClosed {
            path: "/t/set_ftrace_filter".into(),
            error: io::Error::from_raw_os_error(1),
        };
        assert!(
            std::error::Error::source(&e).is_none(),
            "the io error is in the message only"
        );
        assert!(e.to_string().contains("EPERM even for root"), "{e}");
        let e = FtraceError::TracerRefused {
            tracer: "function".into(),
            path: "/t/current_tracer".into(),
            error: io::Error::from_raw_os_error(5),
        };
        assert!(e.to_string().contains("locked-down"), "{e}");
    }

    #[test]
    fn functions_read_back_skip_comments() {
        let (_dir, inst) = instance_tree();
        fake::write(
            inst.root(),
            "set_ftrace_filter",
            "#### all functions enabled ####\n",
        );
        assert!(inst
            .functions(FunctionList::Trace)
            .expect("read")
            .is_empty());
        fake::write(
            inst.root(),
            "set_ftrace_filter",
            "vfs_read\nvfs_readv\next4_read [ext4]\n",
        );
        assert_eq!(
            inst.functions(FunctionList::Trace).expect("read"),
            ["vfs_read", "vfs_readv", "ext4_read"]
        );
    }

    proptest! {
        #[test]
        fn stats_never_panic(text in "(\\PC|\n|:){0,200}") {
            let s = parse_cpu_stats(&text);
            prop_assert!(s.lost() >= s.overrun);
        }
    }
}

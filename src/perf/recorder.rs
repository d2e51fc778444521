//! The recorder loop as a library: open events on CPUs or tasks, share one ring buffer per
//! CPU, and hand out the raw records of each drain. `rprobe record` writes them to perf.data;
//! `trace` and `stat` can consume the same drains without a file.
//!
//! This is the one adapter inside `perf`: it calls `crate::sys` for the syscalls (no `unsafe`
//! here) and reads `/proc` for synthesis; the byte work is [`super::ring`], [`super::synth`]
//! and [`super::stream`].
//!
//! perf's scheme, which the kernel forces: an inherited per-task event cannot be mmapped with
//! `cpu = -1` (`perf_mmap`: "Don't allow mmap() of inherited per-task counters"), so per-task
//! and command events are opened once per (task, CPU), and every fd of a CPU is redirected
//! with `PERF_EVENT_IOC_SET_OUTPUT` into the ring of the first fd opened on that CPU (SET_OUTPUT
//! requires the same CPU). The set of fds is fixed once opened, so the ids table is known
//! before any record is written and perf's own file layout works.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::attr::{event_attr, tracking_attr, AttrOptions, EventKind, TRACKING_NAME};
use super::ring::{self, RingError};
use super::synth::{self, SampleId};
use super::writer::AttrEntry;
use crate::sys::perf_event::{self as pe, RingMap};
use crate::sys::SyscallError;

/// One event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    /// What it is.
    pub kind: EventKind,
    /// A tracefs filter expression (tracepoints and probe events only).
    pub filter: Option<String>,
}

/// What the events watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every online CPU (`-a`).
    AllCpus,
    /// These threads (`-p` expanded to its threads, or `-t`), following their children.
    Tasks(Vec<i32>),
    /// A parked command (its pid): events start at its exec and follow its children.
    Command(i32),
}

/// Recorder options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecorderOptions {
    /// `-g`.
    pub callchain: bool,
    /// `--call-graph dwarf,SIZE`: SIZE (0: none).
    pub dwarf_stack: u32,
    /// `-F` / `-c`.
    pub sampling: Option<super::attr::Sampling>,
    /// Data pages per ring buffer (a power of two).
    pub pages: usize,
    /// User space only (see [`AttrOptions::user_only`]).
    pub user_only: bool,
}

/// Which step of opening failed, for the caller's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenStep {
    /// `perf_event_open`.
    Open,
    /// `mmap` of the ring buffer.
    Mmap,
    /// `PERF_EVENT_IOC_SET_FILTER`.
    Filter,
    /// Another ioctl.
    Ioctl,
}

/// Opening an event failed.
#[derive(Debug, thiserror::Error)]
#[error("{event} (cpu {cpu}, pid {pid}): {source}")]
pub struct OpenError {
    /// Event name.
    pub event: String,
    /// CPU.
    pub cpu: i32,
    /// pid (−1 for all).
    pub pid: i32,
    /// Which step.
    pub step: OpenStep,
    /// The syscall error.
    #[source]
    pub source: SyscallError,
}

#[derive(Debug)]
struct Opened {
    entry: AttrEntry,
    fds: Vec<OwnedFd>,
}

/// Open events and their ring buffers.
#[derive(Debug)]
pub struct Recorder {
    events: Vec<Opened>,
    rings: Vec<(u32, RingMap, RawFd)>,
    cpus: Vec<u32>,
}

/// The online CPUs (`/sys/devices/system/cpu/online`).
pub fn online_cpus() -> Vec<u32> {
    crate::sys::read_sys_text("/sys/devices/system/cpu/online")
        .and_then(|t| synth::parse_cpu_list(&t))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| vec![0])
}

impl Recorder {
    /// Open every event (plus the tracking event, last) on every CPU and task of `scope`,
    /// map one ring per CPU and redirect the rest into it, set filters. Nothing is enabled
    /// yet, except the tracking event outside command mode.
    pub fn open(
        specs: &[EventSpec],
        scope: &Scope,
        opts: &RecorderOptions,
    ) -> Result<Recorder, OpenError> {
        let cpus = online_cpus();
        // Wake at an eighth of the ring rather than the kernel's default of half: what
        // loses records is the reader's scheduling latency on a busy machine, and an early
        // wakeup leaves 7/8 of the ring for it. Passes are cheap, so the extra wakeups cost
        // little.
        let watermark = (opts.pages * pe::page_size() / 8).clamp(8, u32::MAX as usize) as u32;
        // (pids, inherit, enable_on_exec)
        let (pids, inherit, enable_on_exec) = match scope {
            Scope::AllCpus => (vec![-1], false, false),
            Scope::Tasks(t) => (t.clone(), true, false),
            Scope::Command(pid) => (vec![*pid], true, true),
        };
        let aopts = AttrOptions {
            callchain: opts.callchain,
            dwarf_stack: opts.dwarf_stack,
            sampling: opts.sampling,
            inherit,
            enable_on_exec,
            user_only: opts.user_only,
            wakeup_watermark: watermark,
        };
        let mut all: Vec<(AttrEntry, Option<String>)> = specs
            .iter()
            .map(|s| {
                (
                    AttrEntry {
                        attr: event_attr(&s.kind, &aopts),
                        name: s.kind.name(),
                        ids: Vec::new(),
                    },
                    s.filter.clone(),
                )
            })
            .collect();
        all.push((
            AttrEntry {
                attr: tracking_attr(&aopts),
                name: TRACKING_NAME.to_string(),
                ids: Vec::new(),
            },
            None,
        ));
        // Kernels before 6.0 refuse PERF_FORMAT_LOST with EINVAL: probe with the first event.
        if let (Some((first, _)), Some(&cpu)) = (all.first(), cpus.first()) {
            let bytes = first.attr.encode(super::abi::ATTR_SIZE_VER7);
            if let Err(e) = pe::perf_event_open(&bytes, pids[0], cpu as i32, &first.name) {
                if e.errno() == Some(libc::EINVAL) {
                    for (a, _) in &mut all {
                        a.attr.read_format &= !super::abi::read_format::LOST;
                    }
                }
            }
        }
        let mut events: Vec<Opened> = Vec::new();
        let mut rings: Vec<(u32, RingMap, RawFd)> = Vec::new();
        for (entry, filter) in all {
            let bytes = entry.attr.encode(super::abi::ATTR_SIZE_VER7);
            let mut opened = Opened {
                entry,
                fds: Vec::new(),
            };
            for &cpu in &cpus {
                for &pid in &pids {
                    let err = |step, source| OpenError {
                        event: opened.entry.name.clone(),
                        cpu: cpu as i32,
                        pid,
                        step,
                        source,
                    };
                    let fd = pe::perf_event_open(&bytes, pid, cpu as i32, &opened.entry.name)
                        .map_err(|e| err(OpenStep::Open, e))?;
                    if let Some(f) = &filter {
                        pe::set_filter(&fd, f).map_err(|e| err(OpenStep::Filter, e))?;
                    }
                    let id = pe::event_id(&fd).map_err(|e| err(OpenStep::Ioctl, e))?;
                    match rings.iter().find(|r| r.0 == cpu) {
                        Some(r) => {
                            pe::set_output_raw(&fd, r.2).map_err(|e| err(OpenStep::Ioctl, e))?
                        }
                        None => {
                            let map = RingMap::map(&fd, opts.pages, &opened.entry.name)
                                .map_err(|e| err(OpenStep::Mmap, e))?;
                            rings.push((cpu, map, fd.as_raw_fd()));
                        }
                    }
                    opened.entry.ids.push(id);
                    opened.fds.push(fd);
                }
            }
            events.push(opened);
        }
        Ok(Recorder {
            events,
            rings,
            cpus,
        })
    }

    /// The attrs with their ids, in file order (the tracking event last).
    pub fn attrs(&self) -> Vec<AttrEntry> {
        self.events.iter().map(|e| e.entry.clone()).collect()
    }

    /// The CPUs the rings are on.
    pub fn cpus(&self) -> &[u32] {
        &self.cpus
    }

    /// Number of perf event fds.
    pub fn fd_count(&self) -> usize {
        self.events.iter().map(|e| e.fds.len()).sum()
    }

    /// The sample-id trailer for synthesized records (the tracking event's first id).
    pub fn synth_id(&self) -> SampleId {
        SampleId {
            id: self
                .events
                .last()
                .and_then(|e| e.entry.ids.first().copied())
                .unwrap_or(0),
            ..SampleId::default()
        }
    }

    /// `(id, lost samples)` of every fd of the sampling events (not the tracking event), from
    /// `read(2)` with `PERF_FORMAT_LOST`: all samples the kernel could not write, including
    /// those a PERF_RECORD_LOST already reported. `None` when the kernel predates
    /// `PERF_FORMAT_LOST` (the events were opened without it).
    pub fn lost_samples(&self) -> Option<Vec<(u64, u64)>> {
        let n = self.events.len().saturating_sub(1);
        let mut out = Vec::new();
        for e in &self.events[..n] {
            if e.entry.attr.read_format & super::abi::read_format::LOST == 0 {
                return None;
            }
            for (fd, &id) in e.fds.iter().zip(&e.entry.ids) {
                // {value, id, lost}
                let w = pe::read_words(fd, 3).ok()?;
                out.push((id, w[2]));
            }
        }
        Some(out)
    }

    /// Enable every event (`PERF_EVENT_IOC_ENABLE`).
    pub fn enable(&self) -> Result<(), SyscallError> {
        for e in &self.events {
            for fd in &e.fds {
                pe::set_enabled(fd, true)?;
            }
        }
        Ok(())
    }

    /// Disable every event; what is in the rings stays there for a last drain.
    pub fn disable(&self) {
        for e in &self.events {
            for fd in &e.fds {
                let _ = pe::set_enabled(fd, false);
            }
        }
    }

    /// The ring fds, to poll.
    pub fn poll_fds(&self) -> Vec<RawFd> {
        self.rings.iter().map(|r| r.2).collect()
    }

    /// Append the unread records of every ring to `out` (one full pass) and release them to
    /// the kernel. Returns the bytes appended. A ring with corrupt indices is skipped to its
    /// head and reported after the others were drained.
    pub fn drain(&mut self, out: &mut Vec<u8>) -> Result<usize, RingError> {
        let start = out.len();
        let mut first_err = None;
        for (_, map, _) in &self.rings {
            let head = map.data_head();
            let tail = map.data_tail();
            match ring::copy_unread(map.data(), head, tail, out) {
                Ok(t) => map.set_data_tail(t),
                Err(e) => {
                    map.set_data_tail(head);
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out.len() - start),
        }
    }
}

/// The numeric entries of a `/proc` directory, sorted; empty when it cannot be read.
fn numeric_entries(dir: &str) -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// The threads of process `pid` (`/proc/PID/task`), sorted; empty when it does not exist.
pub fn threads_of(pid: i32) -> Vec<i32> {
    numeric_entries(&format!("/proc/{pid}/task"))
}

// 1234 (my prog) S 1 1234 ...
/// Whether a `/proc/PID/stat` text describes a task that still runs (not a zombie or dead).
pub fn stat_is_alive(stat: &str) -> bool {
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
        .is_some_and(|state| !matches!(state, 'Z' | 'X' | 'x'))
}

/// Whether task `pid` exists and has not exited (a zombie waiting for its parent counts as
/// exited).
pub fn task_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| stat_is_alive(&s))
}

/// Every process in `/proc`, sorted.
pub fn all_pids() -> Vec<i32> {
    numeric_entries("/proc")
}

/// Synthesize FORK+COMM per thread and MMAP2 per executable mapping of each process in `pids`
/// (from `/proc`), appending to `out`. Processes that vanish meanwhile are skipped. Kernel
/// threads (no maps) get only their COMM, as with perf.
pub fn synthesize_tasks(out: &mut Vec<u8>, pids: &[i32], id: &SampleId) {
    for &pid in pids {
        let tids = threads_of(pid);
        for &tid in &tids {
            let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status"))
            else {
                continue;
            };
            let Some((name, tgid, ppid)) = synth::parse_status(&status) else {
                continue;
            };
            let (p, t) = (tgid, tid as u32);
            let sid = SampleId {
                pid: p,
                tid: t,
                ..*id
            };
            if tid == pid {
                synth::fork(out, p, ppid, t, ppid, &sid);
            } else {
                synth::fork(out, p, p, t, p, &sid);
            }
            synth::comm(out, p, t, &name, &sid);
        }
        if let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) {
            let sid = SampleId {
                pid: pid as u32,
                tid: pid as u32,
                ..*id
            };
            for m in synth::parse_maps(&maps).iter().filter(|m| m.is_exec()) {
                synth::mmap2(out, pid as u32, pid as u32, m, &sid);
            }
        }
    }
}

/// MMAP2 records (`PERF_RECORD_MISC_MMAP_DATA`) for the file mappings without PROT_EXEC of each
/// process in `pids`, as perf synthesizes them with `mmap_data`: `--call-graph dwarf` files
/// need them for perf's unwinder, which reads `.eh_frame_hdr` through the maps.
pub fn synthesize_data_maps(out: &mut Vec<u8>, pids: &[i32], id: &SampleId) {
    for &pid in pids {
        let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
            continue;
        };
        let sid = SampleId {
            pid: pid as u32,
            tid: pid as u32,
            ..*id
        };
        for m in synth::parse_maps(&maps)
            .iter()
            .filter(|m| !m.is_exec() && m.path.starts_with('/'))
        {
            let at = out.len();
            synth::mmap2(out, pid as u32, pid as u32, m, &sid);
            let misc = super::abi::misc::USER | super::abi::misc::MMAP_DATA;
            out[at + 4..at + 6].copy_from_slice(&misc.to_ne_bytes());
        }
    }
}

/// The kernel map record from `/proc/kallsyms` (`_text` .. `_etext`). `None` when kallsyms
/// hides addresses (`kptr_restrict`) or cannot be read.
pub fn kernel_map(out: &mut Vec<u8>, id: &SampleId) -> Option<()> {
    let text = std::fs::read_to_string("/proc/kallsyms").ok()?;
    let (mut start, mut end) = (None, None);
    for line in text.lines() {
        if line.ends_with(" _text") || line.ends_with(" _etext") {
            if let Some(s) = crate::elf::kallsyms::parse_line(line) {
                match s.name.as_str() {
                    "_text" => start = Some(s.addr),
                    _ => end = Some(s.addr),
                }
            }
            if start.is_some() && end.is_some() {
                break;
            }
        }
    }
    let (start, end) = (start?, end?);
    if start == 0 {
        return None;
    }
    synth::kernel_mmap(out, start, end, id);
    Some(())
}

/// Build ids of the kernel (when a sample hit it; from `/sys/kernel/notes`) and of each user
/// DSO a sample hit (from its ELF notes). Files that are gone or have no build id are left
/// out; perf then falls back to their paths.
pub fn build_ids(stats: &super::stream::StreamStats) -> Vec<super::writer::BuildIdEntry> {
    use object::Object;
    let mut v = Vec::new();
    if stats.kernel_hit {
        if let Some(id) = std::fs::read("/sys/kernel/notes")
            .ok()
            .and_then(|n| super::stream::find_build_id_note(&n))
        {
            v.push(super::writer::BuildIdEntry {
                kernel: true,
                id,
                filename: "[kernel.kallsyms]".into(),
            });
        }
    }
    for path in stats.hit_dsos() {
        if !path.starts_with('/') || path.starts_with("//") {
            continue;
        }
        let Ok(map) = crate::sys::map_file(std::path::Path::new(path)) else {
            continue;
        };
        let id = object::File::parse(&*map)
            .ok()
            .and_then(|f| f.build_id().ok().flatten().map(<[u8]>::to_vec));
        if let Some(id) = id {
            v.push(super::writer::BuildIdEntry {
                kernel: false,
                id,
                filename: path.to_string(),
            });
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zombies_are_not_alive() {
        assert!(stat_is_alive("1234 (my (odd) prog) S 1 1234 1234 0 -1"));
        assert!(!stat_is_alive("1234 (sh) Z 1 1234 1234 0 -1"));
        assert!(!stat_is_alive("garbage"));
        assert!(task_alive(std::process::id() as i32));
    }
}

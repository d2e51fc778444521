//! `perf_event_attr` for each kind of event the recorder opens, and the names perf gives them.
//!
//! Every attr shares one sample-id layout: `sample_type` always holds IDENTIFIER, IP, TID,
//! TIME, CPU and PERIOD (plus CALLCHAIN with `-g`, RAW for tracepoints), and `sample_id_all`
//! is set, so the trailer of every non-sample record is TID, TIME, CPU, IDENTIFIER and a
//! sample body starts `id, ip, pid/tid, time, cpu, period`. perf refuses files whose attrs
//! disagree on the id position ("non matching sample_type"); this layout never does. perf
//! itself leaves CPU out for per-task cpu-clock; keeping it costs 8 bytes a sample and makes
//! `perf script` print the `[CPU]` column there too.
//!
//! Side-band records (MMAP, MMAP2, COMM, FORK, EXIT) come from a `PERF_COUNT_SW_DUMMY`
//! event per CPU (perf's `dummy:HG`) with mmap, mmap2, comm, comm_exec, task. The kernel
//! accepts an attr of size 128 (VER7) on every version that has `sig_data`, and any older
//! kernel reads the prefix it knows as long as the rest is zero.

use super::abi::{flag, perf_type, read_format, sample, sw, EventAttr, ATTR_SIZE_VER7};

/// What an event is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A tracepoint or probe event: `group:event`, config = tracefs id.
    Tracepoint {
        /// Group (system).
        group: String,
        /// Event.
        event: String,
        /// `events/G/E/id`.
        id: u32,
    },
    /// A software event (`PERF_COUNT_SW_*`).
    Software {
        /// Config.
        config: u64,
    },
    /// A hardware event (`PERF_COUNT_HW_*`).
    Hardware {
        /// Config.
        config: u64,
    },
}

/// How often a sampling (software or hardware) event samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// `-F FREQ`: samples per second (freq=1).
    Freq(u64),
    /// `-c PERIOD`: one sample every PERIOD events (ns for clocks).
    Period(u64),
}

/// perf's default sampling frequency for clocks and hardware events.
pub const DEFAULT_FREQ: u64 = 4000;

/// Options that shape every attr of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttrOptions {
    /// `-g`: kernel and user frame-pointer callchains.
    pub callchain: bool,
    /// `--call-graph dwarf,SIZE`: SIZE bytes of user stack and the user registers per
    /// sample, the kernel callchain only (0: no DWARF callchains).
    pub dwarf_stack: u32,
    /// `-F`/`-c` (tracepoints always sample every hit unless `-c` is given).
    pub sampling: Option<Sampling>,
    /// Per-task or command events: follow children (`inherit`).
    pub inherit: bool,
    /// The command mode: events start at the exec of the parked child.
    pub enable_on_exec: bool,
    /// User space only (`exclude_kernel`, `exclude_hv`, `exclude_callchain_kernel`): what an
    /// unprivileged user may sample under `perf_event_paranoid = 2`, perf's fallback too.
    pub user_only: bool,
    /// Wake the reader when this many bytes are in the ring (`watermark`); 0 leaves the
    /// kernel's default of half the ring.
    pub wakeup_watermark: u32,
}

/// Software event names as perf spells them, with their config.
pub const SOFTWARE_EVENTS: &[(&str, u64)] = &[
    ("cpu-clock", sw::CPU_CLOCK),
    ("task-clock", sw::TASK_CLOCK),
    ("page-faults", sw::PAGE_FAULTS),
    ("faults", sw::PAGE_FAULTS),
    ("context-switches", sw::CONTEXT_SWITCHES),
    ("cs", sw::CONTEXT_SWITCHES),
    ("cpu-migrations", sw::CPU_MIGRATIONS),
    ("migrations", sw::CPU_MIGRATIONS),
    ("minor-faults", sw::PAGE_FAULTS_MIN),
    ("major-faults", sw::PAGE_FAULTS_MAJ),
    ("alignment-faults", sw::ALIGNMENT_FAULTS),
    ("emulation-faults", sw::EMULATION_FAULTS),
    ("dummy", sw::DUMMY),
];

/// Hardware event names (`PERF_COUNT_HW_*`).
pub const HARDWARE_EVENTS: &[(&str, u64)] = &[
    ("cycles", 0),
    ("cpu-cycles", 0),
    ("instructions", 1),
    ("cache-references", 2),
    ("cache-misses", 3),
    ("branches", 4),
    ("branch-instructions", 4),
    ("branch-misses", 5),
    ("bus-cycles", 6),
    ("stalled-cycles-frontend", 7),
    ("stalled-cycles-backend", 8),
    ("ref-cycles", 9),
];

/// The software or hardware event named `name` (perf's spelling).
pub fn find_builtin(name: &str) -> Option<EventKind> {
    if let Some((_, c)) = SOFTWARE_EVENTS.iter().find(|(n, _)| *n == name) {
        return Some(EventKind::Software { config: *c });
    }
    HARDWARE_EVENTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| EventKind::Hardware { config: *c })
}

impl EventKind {
    /// The name perf shows: `sched:sched_switch`, `cpu-clock`, `cycles`.
    pub fn name(&self) -> String {
        match self {
            EventKind::Tracepoint { group, event, .. } => format!("{group}:{event}"),
            EventKind::Software { config } => SOFTWARE_EVENTS
                .iter()
                .find(|(_, c)| c == config)
                .map(|(n, _)| n.to_string())
                .unwrap_or_else(|| format!("software:{config}")),
            EventKind::Hardware { config } => HARDWARE_EVENTS
                .iter()
                .find(|(_, c)| c == config)
                .map(|(n, _)| n.to_string())
                .unwrap_or_else(|| format!("hardware:{config}")),
        }
    }
}

fn base(type_: u32, config: u64, o: &AttrOptions) -> EventAttr {
    let mut sample_type =
        sample::IDENTIFIER | sample::IP | sample::TID | sample::TIME | sample::CPU | sample::PERIOD;
    if o.callchain || o.dwarf_stack > 0 {
        sample_type |= sample::CALLCHAIN;
    }
    let mut flags = flag::DISABLED | flag::SAMPLE_ID_ALL;
    let (mut regs, mut stack) = (0, 0);
    if o.dwarf_stack > 0 {
        // perf's evsel__config_callchain for CALLCHAIN_DWARF: user registers and stack, and
        // no user part in the kernel callchain (the unwinder makes it).
        sample_type |= sample::REGS_USER | sample::STACK_USER;
        flags |= flag::EXCLUDE_CALLCHAIN_USER;
        regs = crate::unwind::PERF_REGS_MASK;
        stack = o.dwarf_stack;
    }
    if o.inherit {
        flags |= flag::INHERIT;
    }
    if o.enable_on_exec {
        flags |= flag::ENABLE_ON_EXEC;
    }
    if o.user_only {
        flags |= flag::EXCLUDE_KERNEL | flag::EXCLUDE_HV | flag::EXCLUDE_CALLCHAIN_KERNEL;
    }
    if o.wakeup_watermark > 0 {
        flags |= flag::WATERMARK;
    }
    EventAttr {
        type_,
        size: ATTR_SIZE_VER7,
        config,
        sample_period: 1,
        sample_type,
        // ID|LOST as perf 6.1: a read(2) of the fd at the end gives the samples lost while
        // the ring was full that no PERF_RECORD_LOST reported yet (Linux 6.0+).
        read_format: read_format::ID | read_format::LOST,
        flags,
        wakeup: o.wakeup_watermark,
        sample_regs_user: regs,
        sample_stack_user: stack,
        ..Default::default()
    }
}

/// The attr of a recorded event.
pub fn event_attr(kind: &EventKind, o: &AttrOptions) -> EventAttr {
    match kind {
        EventKind::Tracepoint { id, .. } => {
            let mut a = base(perf_type::TRACEPOINT, *id as u64, o);
            a.sample_type |= sample::RAW;
            if let Some(Sampling::Period(p)) = o.sampling {
                a.sample_period = p.max(1);
            }
            a
        }
        EventKind::Software { config } | EventKind::Hardware { config } => {
            let type_ = if matches!(kind, EventKind::Software { .. }) {
                perf_type::SOFTWARE
            } else {
                perf_type::HARDWARE
            };
            let mut a = base(type_, *config, o);
            match o.sampling.unwrap_or(Sampling::Freq(DEFAULT_FREQ)) {
                Sampling::Freq(f) => {
                    a.flags |= flag::FREQ;
                    a.sample_period = f.max(1);
                }
                Sampling::Period(p) => a.sample_period = p.max(1),
            }
            a
        }
    }
}

/// The tracking event (perf's `dummy:HG`): MMAP/MMAP2/COMM/FORK/EXIT records, no samples.
/// Enabled from the start unless the recording starts at an exec.
pub fn tracking_attr(o: &AttrOptions) -> EventAttr {
    let mut a = base(perf_type::SOFTWARE, sw::DUMMY, o);
    // perf's dummy:HG has no aux samples (`no_aux_samples`): no callchain, registers or stack.
    a.sample_type &= !(sample::CALLCHAIN | sample::REGS_USER | sample::STACK_USER);
    a.flags &= !flag::EXCLUDE_CALLCHAIN_USER;
    a.sample_regs_user = 0;
    a.sample_stack_user = 0;
    a.flags |= flag::MMAP | flag::MMAP2 | flag::COMM | flag::COMM_EXEC | flag::TASK;
    if o.dwarf_stack > 0 {
        // perf's record_opts__parse_callchain: "Enable data address sampling for DWARF
        // unwind". perf's libunwind reads `.eh_frame_hdr` through the process's maps, and
        // that section sits in a read-only segment, mapped without PROT_EXEC.
        a.flags |= flag::MMAP_DATA;
    }
    if !o.enable_on_exec {
        a.flags &= !flag::DISABLED;
    }
    a
}

/// The name perf gives the tracking event.
pub const TRACKING_NAME: &str = "dummy:HG";

#[cfg(test)]
mod tests {
    use super::*;

    const SYSWIDE: AttrOptions = AttrOptions {
        callchain: true,
        dwarf_stack: 0,
        sampling: None,
        inherit: false,
        enable_on_exec: false,
        user_only: false,
        wakeup_watermark: 0,
    };

    #[test]
    fn tracepoint_attr_samples_every_hit_with_raw_data() {
        let k = EventKind::Tracepoint {
            group: "sched".into(),
            event: "sched_switch".into(),
            id: 0x174,
        };
        let a = event_attr(&k, &SYSWIDE);
        assert_eq!((a.type_, a.config, a.sample_period), (2, 0x174, 1));
        // perf's 0x105a7 (IP|TID|TIME|CALLCHAIN|CPU|PERIOD|RAW|IDENTIFIER)
        assert_eq!(a.sample_type, 0x105a7);
        assert!(a.has_flag(flag::DISABLED) && a.has_flag(flag::SAMPLE_ID_ALL));
        assert!(!a.has_flag(flag::FREQ));
        assert_eq!(k.name(), "sched:sched_switch");
    }

    #[test]
    fn clock_attr_uses_frequency() {
        let o = AttrOptions {
            callchain: true,
            dwarf_stack: 0,
            sampling: Some(Sampling::Freq(999)),
            inherit: true,
            enable_on_exec: true,
            user_only: false,
            wakeup_watermark: 0,
        };
        let k = find_builtin("cpu-clock").expect("cpu-clock");
        let a = event_attr(&k, &o);
        assert_eq!((a.type_, a.config, a.sample_period), (1, 0, 999));
        assert!(
            a.has_flag(flag::FREQ) && a.has_flag(flag::ENABLE_ON_EXEC) && a.has_flag(flag::INHERIT)
        );
        assert_eq!(a.sample_type & !sample::RAW, a.sample_type);
        let c = event_attr(
            &k,
            &AttrOptions {
                sampling: Some(Sampling::Period(5)),
                ..o
            },
        );
        assert_eq!((c.sample_period, c.has_flag(flag::FREQ)), (5, false));
        assert_eq!(k.name(), "cpu-clock");
        assert_eq!(
            find_builtin("cs").map(|k| k.name()).as_deref(),
            Some("context-switches")
        );
        assert_eq!(
            find_builtin("cycles"),
            Some(EventKind::Hardware { config: 0 })
        );
        assert_eq!(find_builtin("bogus"), None);
    }

    #[test]
    fn tracking_attr_is_perfs_dummy() {
        let a = tracking_attr(&SYSWIDE);
        assert_eq!((a.type_, a.config), (1, 9));
        assert_eq!(a.sample_type, 0x10187);
        for f in [
            flag::MMAP,
            flag::MMAP2,
            flag::COMM,
            flag::COMM_EXEC,
            flag::TASK,
            flag::SAMPLE_ID_ALL,
        ] {
            assert!(a.has_flag(f));
        }
        assert!(!a.has_flag(flag::DISABLED));
        let b = tracking_attr(&AttrOptions {
            enable_on_exec: true,
            ..SYSWIDE
        });
        assert!(b.has_flag(flag::DISABLED) && b.has_flag(flag::ENABLE_ON_EXEC));
    }
}

//! The perf ABI that the recorder, the perf.data writer and the reader share: record types,
//! `sample_type` and attr flag bits, feature bits, callchain context markers, and
//! `perf_event_attr` as a plain struct that encodes to and parses from its on-disk bytes.
//!
//! Source: `include/uapi/linux/perf_event.h` and `tools/perf/util/header.h` (perf 6.1).
//! Everything is native-endian on disk (x86_64: little-endian); a byte-swapped magic means a
//! file from the other byte order, which this crate reports instead of reading.
//!
//! `perf_event_attr` is kept as a Rust struct rather than the bindgen layout of
//! `perf-event-open-sys` so that the same type can be parsed from a file written by another
//! perf version (any `size` from VER0 up; larger attrs keep only the known prefix) and
//! written at exactly the size perf 6.1 accepts (at most 128 bytes, VER7).

/// `PERF_TYPE_*`: the `type` of an attr.
pub mod perf_type {
    /// `PERF_TYPE_HARDWARE`.
    pub const HARDWARE: u32 = 0;
    /// `PERF_TYPE_SOFTWARE`.
    pub const SOFTWARE: u32 = 1;
    /// `PERF_TYPE_TRACEPOINT`: tracepoints, kprobe and uprobe events (config = tracefs id).
    pub const TRACEPOINT: u32 = 2;
    /// `PERF_TYPE_HW_CACHE`.
    pub const HW_CACHE: u32 = 3;
    /// `PERF_TYPE_RAW`.
    pub const RAW: u32 = 4;
    /// `PERF_TYPE_BREAKPOINT`.
    pub const BREAKPOINT: u32 = 5;
}

/// `PERF_COUNT_SW_*`: `config` of a software event.
pub mod sw {
    /// `cpu-clock`.
    pub const CPU_CLOCK: u64 = 0;
    /// `task-clock`.
    pub const TASK_CLOCK: u64 = 1;
    /// `page-faults`.
    pub const PAGE_FAULTS: u64 = 2;
    /// `context-switches`.
    pub const CONTEXT_SWITCHES: u64 = 3;
    /// `cpu-migrations`.
    pub const CPU_MIGRATIONS: u64 = 4;
    /// `minor-faults`.
    pub const PAGE_FAULTS_MIN: u64 = 5;
    /// `major-faults`.
    pub const PAGE_FAULTS_MAJ: u64 = 6;
    /// `alignment-faults`.
    pub const ALIGNMENT_FAULTS: u64 = 7;
    /// `emulation-faults`.
    pub const EMULATION_FAULTS: u64 = 8;
    /// `dummy`: perf's side-band event for MMAP/COMM/FORK/EXIT records.
    pub const DUMMY: u64 = 9;
}

/// `PERF_SAMPLE_*`: bits of `sample_type`.
pub mod sample {
    /// `PERF_SAMPLE_IP`.
    pub const IP: u64 = 1 << 0;
    /// `PERF_SAMPLE_TID`.
    pub const TID: u64 = 1 << 1;
    /// `PERF_SAMPLE_TIME`.
    pub const TIME: u64 = 1 << 2;
    /// `PERF_SAMPLE_ADDR`.
    pub const ADDR: u64 = 1 << 3;
    /// `PERF_SAMPLE_READ`.
    pub const READ: u64 = 1 << 4;
    /// `PERF_SAMPLE_CALLCHAIN`.
    pub const CALLCHAIN: u64 = 1 << 5;
    /// `PERF_SAMPLE_ID`.
    pub const ID: u64 = 1 << 6;
    /// `PERF_SAMPLE_CPU`.
    pub const CPU: u64 = 1 << 7;
    /// `PERF_SAMPLE_PERIOD`.
    pub const PERIOD: u64 = 1 << 8;
    /// `PERF_SAMPLE_STREAM_ID`.
    pub const STREAM_ID: u64 = 1 << 9;
    /// `PERF_SAMPLE_RAW`.
    pub const RAW: u64 = 1 << 10;
    /// `PERF_SAMPLE_BRANCH_STACK`.
    pub const BRANCH_STACK: u64 = 1 << 11;
    /// `PERF_SAMPLE_REGS_USER`.
    pub const REGS_USER: u64 = 1 << 12;
    /// `PERF_SAMPLE_STACK_USER`.
    pub const STACK_USER: u64 = 1 << 13;
    /// `PERF_SAMPLE_WEIGHT`.
    pub const WEIGHT: u64 = 1 << 14;
    /// `PERF_SAMPLE_DATA_SRC`.
    pub const DATA_SRC: u64 = 1 << 15;
    /// `PERF_SAMPLE_IDENTIFIER`.
    pub const IDENTIFIER: u64 = 1 << 16;
    /// `PERF_SAMPLE_TRANSACTION`.
    pub const TRANSACTION: u64 = 1 << 17;
    /// `PERF_SAMPLE_REGS_INTR`.
    pub const REGS_INTR: u64 = 1 << 18;
    /// `PERF_SAMPLE_PHYS_ADDR`.
    pub const PHYS_ADDR: u64 = 1 << 19;
    /// `PERF_SAMPLE_AUX`.
    pub const AUX: u64 = 1 << 20;
    /// `PERF_SAMPLE_CGROUP`.
    pub const CGROUP: u64 = 1 << 21;
    /// `PERF_SAMPLE_DATA_PAGE_SIZE`.
    pub const DATA_PAGE_SIZE: u64 = 1 << 22;
    /// `PERF_SAMPLE_CODE_PAGE_SIZE`.
    pub const CODE_PAGE_SIZE: u64 = 1 << 23;
    /// `PERF_SAMPLE_WEIGHT_STRUCT`.
    pub const WEIGHT_STRUCT: u64 = 1 << 24;
}

/// `PERF_FORMAT_*`: bits of `read_format`.
pub mod read_format {
    /// `PERF_FORMAT_TOTAL_TIME_ENABLED`.
    pub const TOTAL_TIME_ENABLED: u64 = 1 << 0;
    /// `PERF_FORMAT_TOTAL_TIME_RUNNING`.
    pub const TOTAL_TIME_RUNNING: u64 = 1 << 1;
    /// `PERF_FORMAT_ID`.
    pub const ID: u64 = 1 << 2;
    /// `PERF_FORMAT_GROUP`.
    pub const GROUP: u64 = 1 << 3;
    /// `PERF_FORMAT_LOST`.
    pub const LOST: u64 = 1 << 4;
}

/// Bits of the attr's flag word (the bitfield after `read_format`, at offset 40).
pub mod flag {
    /// `disabled`.
    pub const DISABLED: u64 = 1 << 0;
    /// `inherit`.
    pub const INHERIT: u64 = 1 << 1;
    /// `pinned`.
    pub const PINNED: u64 = 1 << 2;
    /// `exclusive`.
    pub const EXCLUSIVE: u64 = 1 << 3;
    /// `exclude_user`.
    pub const EXCLUDE_USER: u64 = 1 << 4;
    /// `exclude_kernel`.
    pub const EXCLUDE_KERNEL: u64 = 1 << 5;
    /// `exclude_hv`.
    pub const EXCLUDE_HV: u64 = 1 << 6;
    /// `exclude_idle`.
    pub const EXCLUDE_IDLE: u64 = 1 << 7;
    /// `mmap`.
    pub const MMAP: u64 = 1 << 8;
    /// `comm`.
    pub const COMM: u64 = 1 << 9;
    /// `freq`: `sample_period` holds `sample_freq`.
    pub const FREQ: u64 = 1 << 10;
    /// `inherit_stat`.
    pub const INHERIT_STAT: u64 = 1 << 11;
    /// `enable_on_exec`.
    pub const ENABLE_ON_EXEC: u64 = 1 << 12;
    /// `task`: FORK and EXIT records.
    pub const TASK: u64 = 1 << 13;
    /// `watermark`: `wakeup` counts bytes, not events.
    pub const WATERMARK: u64 = 1 << 14;
    /// `precise_ip` (two bits, 15–16): shift.
    pub const PRECISE_IP_SHIFT: u32 = 15;
    /// `mmap_data`.
    pub const MMAP_DATA: u64 = 1 << 17;
    /// `sample_id_all`: every non-sample record carries the sample id trailer.
    pub const SAMPLE_ID_ALL: u64 = 1 << 18;
    /// `exclude_host`.
    pub const EXCLUDE_HOST: u64 = 1 << 19;
    /// `exclude_guest`.
    pub const EXCLUDE_GUEST: u64 = 1 << 20;
    /// `exclude_callchain_kernel`.
    pub const EXCLUDE_CALLCHAIN_KERNEL: u64 = 1 << 21;
    /// `exclude_callchain_user`.
    pub const EXCLUDE_CALLCHAIN_USER: u64 = 1 << 22;
    /// `mmap2`.
    pub const MMAP2: u64 = 1 << 23;
    /// `comm_exec`: COMM records from exec carry `misc` COMM_EXEC.
    pub const COMM_EXEC: u64 = 1 << 24;
    /// `use_clockid`.
    pub const USE_CLOCKID: u64 = 1 << 25;
    /// `context_switch`.
    pub const CONTEXT_SWITCH: u64 = 1 << 26;
    /// `write_backward`.
    pub const WRITE_BACKWARD: u64 = 1 << 27;
    /// `namespaces`.
    pub const NAMESPACES: u64 = 1 << 28;
    /// `ksymbol`.
    pub const KSYMBOL: u64 = 1 << 29;
    /// `bpf_event`.
    pub const BPF_EVENT: u64 = 1 << 30;
    /// `aux_output`.
    pub const AUX_OUTPUT: u64 = 1 << 31;
    /// `cgroup`.
    pub const CGROUP: u64 = 1 << 32;
    /// `text_poke`.
    pub const TEXT_POKE: u64 = 1 << 33;
    /// `build_id`: MMAP2 records carry a build id instead of device and inode.
    pub const BUILD_ID: u64 = 1 << 34;
}

/// `PERF_RECORD_*`: kernel record types (`perf_event_header.type`).
pub mod record {
    /// `PERF_RECORD_MMAP`.
    pub const MMAP: u32 = 1;
    /// `PERF_RECORD_LOST`.
    pub const LOST: u32 = 2;
    /// `PERF_RECORD_COMM`.
    pub const COMM: u32 = 3;
    /// `PERF_RECORD_EXIT`.
    pub const EXIT: u32 = 4;
    /// `PERF_RECORD_THROTTLE`.
    pub const THROTTLE: u32 = 5;
    /// `PERF_RECORD_UNTHROTTLE`.
    pub const UNTHROTTLE: u32 = 6;
    /// `PERF_RECORD_FORK`.
    pub const FORK: u32 = 7;
    /// `PERF_RECORD_READ`.
    pub const READ: u32 = 8;
    /// `PERF_RECORD_SAMPLE`.
    pub const SAMPLE: u32 = 9;
    /// `PERF_RECORD_MMAP2`.
    pub const MMAP2: u32 = 10;
    /// `PERF_RECORD_AUX`.
    pub const AUX: u32 = 11;
    /// `PERF_RECORD_ITRACE_START`.
    pub const ITRACE_START: u32 = 12;
    /// `PERF_RECORD_LOST_SAMPLES`.
    pub const LOST_SAMPLES: u32 = 13;
    /// `PERF_RECORD_SWITCH`.
    pub const SWITCH: u32 = 14;
    /// `PERF_RECORD_SWITCH_CPU_WIDE`.
    pub const SWITCH_CPU_WIDE: u32 = 15;
    /// `PERF_RECORD_NAMESPACES`.
    pub const NAMESPACES: u32 = 16;
    /// `PERF_RECORD_KSYMBOL`.
    pub const KSYMBOL: u32 = 17;
    /// `PERF_RECORD_BPF_EVENT`.
    pub const BPF_EVENT: u32 = 18;
    /// `PERF_RECORD_CGROUP`.
    pub const CGROUP: u32 = 19;
    /// `PERF_RECORD_TEXT_POKE`.
    pub const TEXT_POKE: u32 = 20;
    /// `PERF_RECORD_AUX_OUTPUT_HW_ID`.
    pub const AUX_OUTPUT_HW_ID: u32 = 21;

    // perf's own (user) record types, written by the tool, never by the kernel.
    /// `PERF_RECORD_HEADER_ATTR` (pipe mode).
    pub const HEADER_ATTR: u32 = 64;
    /// `PERF_RECORD_HEADER_EVENT_TYPE` (obsolete).
    pub const HEADER_EVENT_TYPE: u32 = 65;
    /// `PERF_RECORD_HEADER_TRACING_DATA` (pipe mode).
    pub const HEADER_TRACING_DATA: u32 = 66;
    /// `PERF_RECORD_HEADER_BUILD_ID` (pipe mode).
    pub const HEADER_BUILD_ID: u32 = 67;
    /// `PERF_RECORD_FINISHED_ROUND`: everything before the previous round may be sorted out.
    pub const FINISHED_ROUND: u32 = 68;
    /// `PERF_RECORD_ID_INDEX`.
    pub const ID_INDEX: u32 = 69;
    /// `PERF_RECORD_AUXTRACE_INFO`.
    pub const AUXTRACE_INFO: u32 = 70;
    /// `PERF_RECORD_AUXTRACE`.
    pub const AUXTRACE: u32 = 71;
    /// `PERF_RECORD_AUXTRACE_ERROR`.
    pub const AUXTRACE_ERROR: u32 = 72;
    /// `PERF_RECORD_THREAD_MAP`.
    pub const THREAD_MAP: u32 = 73;
    /// `PERF_RECORD_CPU_MAP`.
    pub const CPU_MAP: u32 = 74;
    /// `PERF_RECORD_STAT_CONFIG`.
    pub const STAT_CONFIG: u32 = 75;
    /// `PERF_RECORD_STAT`.
    pub const STAT: u32 = 76;
    /// `PERF_RECORD_STAT_ROUND`.
    pub const STAT_ROUND: u32 = 77;
    /// `PERF_RECORD_EVENT_UPDATE`.
    pub const EVENT_UPDATE: u32 = 78;
    /// `PERF_RECORD_TIME_CONV`.
    pub const TIME_CONV: u32 = 79;
    /// `PERF_RECORD_HEADER_FEATURE` (pipe mode).
    pub const HEADER_FEATURE: u32 = 80;
    /// `PERF_RECORD_COMPRESSED`.
    pub const COMPRESSED: u32 = 81;
    /// `PERF_RECORD_FINISHED_INIT`: the synthesized records end here.
    pub const FINISHED_INIT: u32 = 82;
}

/// `perf_event_header.misc` bits.
pub mod misc {
    /// Mask of the cpumode bits.
    pub const CPUMODE_MASK: u16 = 7;
    /// `PERF_RECORD_MISC_CPUMODE_UNKNOWN`.
    pub const CPUMODE_UNKNOWN: u16 = 0;
    /// `PERF_RECORD_MISC_KERNEL`.
    pub const KERNEL: u16 = 1;
    /// `PERF_RECORD_MISC_USER`.
    pub const USER: u16 = 2;
    /// `PERF_RECORD_MISC_HYPERVISOR`.
    pub const HYPERVISOR: u16 = 3;
    /// `PERF_RECORD_MISC_GUEST_KERNEL`.
    pub const GUEST_KERNEL: u16 = 4;
    /// `PERF_RECORD_MISC_GUEST_USER`.
    pub const GUEST_USER: u16 = 5;
    /// `PERF_RECORD_MISC_PROC_MAP_PARSE_TIMEOUT` (synthesized maps cut short).
    pub const PROC_MAP_PARSE_TIMEOUT: u16 = 1 << 12;
    /// `PERF_RECORD_MISC_MMAP_DATA` (MMAP/MMAP2) and `PERF_RECORD_MISC_COMM_EXEC` (COMM): same bit.
    pub const MMAP_DATA: u16 = 1 << 13;
    /// `PERF_RECORD_MISC_COMM_EXEC`.
    pub const COMM_EXEC: u16 = 1 << 13;
    /// `PERF_RECORD_MISC_SWITCH_OUT`.
    pub const SWITCH_OUT: u16 = 1 << 13;
    /// `PERF_RECORD_MISC_MMAP_BUILD_ID`: an MMAP2 with a build id instead of maj/min/ino.
    pub const MMAP_BUILD_ID: u16 = 1 << 14;
    /// `PERF_RECORD_MISC_EXACT_IP` (samples).
    pub const EXACT_IP: u16 = 1 << 14;
    /// `PERF_RECORD_MISC_EXT_RESERVED`.
    pub const EXT_RESERVED: u16 = 1 << 15;
}

/// Callchain context markers (`enum perf_callchain_context`): entries at or above
/// [`context::MAX`] are markers that say whose frames follow, never addresses.
pub mod context {
    /// `PERF_CONTEXT_HV`.
    pub const HV: u64 = -32i64 as u64;
    /// `PERF_CONTEXT_KERNEL`.
    pub const KERNEL: u64 = -128i64 as u64;
    /// `PERF_CONTEXT_USER`.
    pub const USER: u64 = -512i64 as u64;
    /// `PERF_CONTEXT_GUEST`.
    pub const GUEST: u64 = -2048i64 as u64;
    /// `PERF_CONTEXT_GUEST_KERNEL`.
    pub const GUEST_KERNEL: u64 = -2176i64 as u64;
    /// `PERF_CONTEXT_GUEST_USER`.
    pub const GUEST_USER: u64 = -2560i64 as u64;
    /// `PERF_CONTEXT_MAX`: the lowest marker value.
    pub const MAX: u64 = -4095i64 as u64;
}

/// `HEADER_*` feature bits of the perf.data header (`tools/perf/util/header.h`).
pub mod feature {
    /// `HEADER_TRACING_DATA`: the tracefs formats of the recorded events.
    pub const TRACING_DATA: u32 = 1;
    /// `HEADER_BUILD_ID`.
    pub const BUILD_ID: u32 = 2;
    /// `HEADER_HOSTNAME`.
    pub const HOSTNAME: u32 = 3;
    /// `HEADER_OSRELEASE`.
    pub const OSRELEASE: u32 = 4;
    /// `HEADER_VERSION`.
    pub const VERSION: u32 = 5;
    /// `HEADER_ARCH`.
    pub const ARCH: u32 = 6;
    /// `HEADER_NRCPUS`.
    pub const NRCPUS: u32 = 7;
    /// `HEADER_CPUDESC`.
    pub const CPUDESC: u32 = 8;
    /// `HEADER_CPUID`.
    pub const CPUID: u32 = 9;
    /// `HEADER_TOTAL_MEM`.
    pub const TOTAL_MEM: u32 = 10;
    /// `HEADER_CMDLINE`.
    pub const CMDLINE: u32 = 11;
    /// `HEADER_EVENT_DESC`.
    pub const EVENT_DESC: u32 = 12;
    /// `HEADER_CPU_TOPOLOGY`.
    pub const CPU_TOPOLOGY: u32 = 13;
    /// `HEADER_NUMA_TOPOLOGY`.
    pub const NUMA_TOPOLOGY: u32 = 14;
    /// `HEADER_BRANCH_STACK`.
    pub const BRANCH_STACK: u32 = 15;
    /// `HEADER_PMU_MAPPINGS`.
    pub const PMU_MAPPINGS: u32 = 16;
    /// `HEADER_GROUP_DESC`.
    pub const GROUP_DESC: u32 = 17;
    /// `HEADER_AUXTRACE`.
    pub const AUXTRACE: u32 = 18;
    /// `HEADER_STAT`.
    pub const STAT: u32 = 19;
    /// `HEADER_CACHE`.
    pub const CACHE: u32 = 20;
    /// `HEADER_SAMPLE_TIME`.
    pub const SAMPLE_TIME: u32 = 21;
    /// `HEADER_MEM_TOPOLOGY`.
    pub const MEM_TOPOLOGY: u32 = 22;
    /// `HEADER_CLOCKID`.
    pub const CLOCKID: u32 = 23;
    /// `HEADER_DIR_FORMAT`.
    pub const DIR_FORMAT: u32 = 24;
    /// `HEADER_BPF_PROG_INFO`.
    pub const BPF_PROG_INFO: u32 = 25;
    /// `HEADER_BPF_BTF`.
    pub const BPF_BTF: u32 = 26;
    /// `HEADER_COMPRESSED`.
    pub const COMPRESSED: u32 = 27;
    /// `HEADER_CPU_PMU_CAPS`.
    pub const CPU_PMU_CAPS: u32 = 28;
    /// `HEADER_CLOCK_DATA`.
    pub const CLOCK_DATA: u32 = 29;
    /// `HEADER_HYBRID_TOPOLOGY`.
    pub const HYBRID_TOPOLOGY: u32 = 30;
    /// `HEADER_PMU_CAPS`.
    pub const PMU_CAPS: u32 = 31;
}

/// `"PERFILE2"` as perf writes it on a little-endian machine.
pub const FILE_MAGIC: [u8; 8] = *b"PERFILE2";
/// Size of `struct perf_file_header`.
pub const FILE_HEADER_SIZE: u64 = 104;
/// Size of `struct perf_event_header`.
pub const EVENT_HEADER_SIZE: usize = 8;
/// The largest attr perf 6.1 reads (`PERF_ATTR_SIZE_VER7`); a larger one is refused as
/// "a more recent and unsupported ABI".
pub const ATTR_SIZE_VER7: u32 = 128;
/// `PERF_ATTR_SIZE_VER0`: the smallest attr any perf wrote.
pub const ATTR_SIZE_VER0: u32 = 64;

/// `struct perf_event_attr`, field by field (`include/uapi/linux/perf_event.h`).
///
/// `sample_period` doubles as `sample_freq` when [`flag::FREQ`] is set; `wakeup` is
/// `wakeup_events` or, with [`flag::WATERMARK`], `wakeup_watermark`; `config1`/`config2` are
/// also `bp_addr`/`bp_len` and the kprobe/uprobe PMU's `kprobe_func`/`probe_offset`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventAttr {
    /// `type`: one of [`perf_type`].
    pub type_: u32,
    /// `size`: the size this attr was written with (0 means VER0 to the kernel).
    pub size: u32,
    /// `config`.
    pub config: u64,
    /// `sample_period` or `sample_freq`.
    pub sample_period: u64,
    /// `sample_type`: bits of [`sample`].
    pub sample_type: u64,
    /// `read_format`: bits of [`read_format`].
    pub read_format: u64,
    /// The flag bitfield: bits of [`flag`].
    pub flags: u64,
    /// `wakeup_events` / `wakeup_watermark`.
    pub wakeup: u32,
    /// `bp_type`.
    pub bp_type: u32,
    /// `config1` (`bp_addr`, `kprobe_func`, `uprobe_path`).
    pub config1: u64,
    /// `config2` (`bp_len`, `kprobe_addr`, `probe_offset`).
    pub config2: u64,
    /// `branch_sample_type`.
    pub branch_sample_type: u64,
    /// `sample_regs_user`: which user registers a sample carries.
    pub sample_regs_user: u64,
    /// `sample_stack_user`: bytes of user stack a sample copies.
    pub sample_stack_user: u32,
    /// `clockid` (used with [`flag::USE_CLOCKID`]).
    pub clockid: i32,
    /// `sample_regs_intr`.
    pub sample_regs_intr: u64,
    /// `aux_watermark`.
    pub aux_watermark: u32,
    /// `sample_max_stack`.
    pub sample_max_stack: u16,
    /// `aux_sample_size`.
    pub aux_sample_size: u32,
    /// `sig_data`.
    pub sig_data: u64,
}

impl EventAttr {
    /// Whether [`flag`] bit `f` is set.
    pub fn has_flag(&self, f: u64) -> bool {
        self.flags & f != 0
    }

    /// Whether [`sample`] bit `s` is set in `sample_type`.
    pub fn samples(&self, s: u64) -> bool {
        self.sample_type & s != 0
    }

    /// The attr's bytes at `size` bytes (64 ≤ size ≤ 128, a multiple of 8): the fields that
    /// fit, with `size` itself written as given.
    pub fn encode(&self, size: u32) -> Vec<u8> {
        let size = size.clamp(ATTR_SIZE_VER0, ATTR_SIZE_VER7) & !7;
        let mut b = Vec::with_capacity(ATTR_SIZE_VER7 as usize);
        b.extend_from_slice(&self.type_.to_ne_bytes());
        b.extend_from_slice(&size.to_ne_bytes());
        for v in [
            self.config,
            self.sample_period,
            self.sample_type,
            self.read_format,
            self.flags,
        ] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        b.extend_from_slice(&self.wakeup.to_ne_bytes());
        b.extend_from_slice(&self.bp_type.to_ne_bytes());
        for v in [
            self.config1,
            self.config2,
            self.branch_sample_type,
            self.sample_regs_user,
        ] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        b.extend_from_slice(&self.sample_stack_user.to_ne_bytes());
        b.extend_from_slice(&self.clockid.to_ne_bytes());
        b.extend_from_slice(&self.sample_regs_intr.to_ne_bytes());
        b.extend_from_slice(&self.aux_watermark.to_ne_bytes());
        b.extend_from_slice(&self.sample_max_stack.to_ne_bytes());
        b.extend_from_slice(&0u16.to_ne_bytes()); // __reserved_2
        b.extend_from_slice(&self.aux_sample_size.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes()); // __reserved_3
        b.extend_from_slice(&self.sig_data.to_ne_bytes());
        debug_assert_eq!(b.len(), ATTR_SIZE_VER7 as usize);
        b.truncate(size as usize);
        b
    }

    /// Parses an attr from `bytes`, which hold at least its `size` field. Fields past the
    /// attr's own `size` (or past the end of `bytes`) read as zero, as perf does for older
    /// attrs; fields of newer ABIs beyond VER7 are ignored. `None` when `bytes` is shorter than
    /// VER0 or than the size the attr claims.
    pub fn parse(bytes: &[u8]) -> Option<EventAttr> {
        let size = u32_at(bytes, 4)?;
        let claimed = if size == 0 { ATTR_SIZE_VER0 } else { size };
        if claimed < ATTR_SIZE_VER0 || bytes.len() < claimed as usize {
            return None;
        }
        let known = &bytes[..claimed.min(ATTR_SIZE_VER7) as usize];
        let u64f = |off: usize| u64_at(known, off).unwrap_or(0);
        let u32f = |off: usize| u32_at(known, off).unwrap_or(0);
        Some(EventAttr {
            type_: u32f(0),
            size,
            config: u64f(8),
            sample_period: u64f(16),
            sample_type: u64f(24),
            read_format: u64f(32),
            flags: u64f(40),
            wakeup: u32f(48),
            bp_type: u32f(52),
            config1: u64f(56),
            config2: u64f(64),
            branch_sample_type: u64f(72),
            sample_regs_user: u64f(80),
            sample_stack_user: u32f(88),
            clockid: u32f(92) as i32,
            sample_regs_intr: u64f(96),
            aux_watermark: u32f(104),
            sample_max_stack: known
                .get(108..110)
                .map(|b| u16::from_ne_bytes([b[0], b[1]]))
                .unwrap_or(0),
            aux_sample_size: u32f(112),
            sig_data: u64f(120),
        })
    }
}

/// The `u64` at `off`, native-endian; `None` past the end.
pub fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(8)?)?;
    Some(u64::from_ne_bytes(s.try_into().ok()?))
}

/// The `u32` at `off`, native-endian; `None` past the end.
pub fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_ne_bytes(s.try_into().ok()?))
}

/// The `u16` at `off`, native-endian; `None` past the end.
pub fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_ne_bytes(s.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first attr of `perf record -e sched:sched_switch -a -g` (perf 6.1, kernel 6.18),
    /// 128 bytes as in the file.
    const SCHED_SWITCH_ATTR: [u8; 128] = {
        let mut b = [0u8; 128];
        // type 2, size 128
        b[0] = 2;
        b[4] = 128;
        // config 0x174
        b[8] = 0x74;
        b[9] = 0x01;
        // sample_period 1
        b[16] = 1;
        // sample_type 0x105a7
        b[24] = 0xa7;
        b[25] = 0x05;
        b[26] = 0x01;
        // read_format 0x14
        b[32] = 0x14;
        // flags: disabled, inherit, sample_id_all (bit 18), exclude_guest (bit 20)
        b[40] = 0x03;
        b[42] = 0x14;
        // wakeup 1
        b[48] = 1;
        b
    };

    #[test]
    fn parse_real_attr() {
        let a = EventAttr::parse(&SCHED_SWITCH_ATTR).expect("attr");
        assert_eq!(a.type_, perf_type::TRACEPOINT);
        assert_eq!(a.size, 128);
        assert_eq!(a.config, 0x174);
        assert_eq!(a.sample_type, 0x105a7);
        assert!(a.samples(sample::IDENTIFIER) && a.samples(sample::CALLCHAIN));
        assert!(a.has_flag(flag::SAMPLE_ID_ALL) && a.has_flag(flag::EXCLUDE_GUEST));
        assert!(a.has_flag(flag::DISABLED) && a.has_flag(flag::INHERIT));
        assert!(!a.has_flag(flag::FREQ));
        assert_eq!(a.encode(128), SCHED_SWITCH_ATTR);
    }

    #[test]
    fn smaller_attrs_read_zero_past_their_size_and_larger_ones_keep_the_known_part() {
        let mut a = EventAttr::parse(&SCHED_SWITCH_ATTR).expect("attr");
        a.sig_data = 7;
        a.sample_regs_intr = 9;
        let small = a.encode(96);
        assert_eq!(small.len(), 96);
        let back = EventAttr::parse(&small).expect("VER4-ish attr");
        assert_eq!(
            (back.size, back.sample_regs_intr, back.sig_data),
            (96, 0, 0)
        );
        assert_eq!(back.sample_type, a.sample_type);

        let mut big = a.encode(128);
        big[4] = 136;
        big.extend_from_slice(&[0xff; 8]);
        let back = EventAttr::parse(&big).expect("VER8 attr");
        assert_eq!((back.size, back.sig_data), (136, 7));
    }

    #[test]
    fn cut_short_attrs_are_none() {
        for n in 0..SCHED_SWITCH_ATTR.len() {
            assert_eq!(
                EventAttr::parse(&SCHED_SWITCH_ATTR[..n]),
                None,
                "cut at {n}"
            );
        }
        let mut tiny = SCHED_SWITCH_ATTR;
        tiny[4] = 32;
        assert_eq!(EventAttr::parse(&tiny), None, "size below VER0");
    }

    #[test]
    fn context_markers() {
        assert_eq!(context::KERNEL, 0xffff_ffff_ffff_ff80);
        assert_eq!(context::USER, 0xffff_ffff_ffff_fe00);
        const { assert!(context::GUEST_USER >= context::MAX) };
    }
}

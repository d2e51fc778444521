//! Loading a [`Plan`]'s program, attaching it to perf events, and reading its map back into
//! the user-space engine's tables.
//!
//! The map is a plain `BPF_MAP_TYPE_HASH` of `u64` counters updated with atomic adds, so one
//! map serves every CPU's event; reading it is a `GET_NEXT_KEY` walk, done once per interval.
//!
//! Attaching (`PERF_EVENT_IOC_SET_BPF`, measured on 6.18): the kernel keeps the program on the
//! *tracefs event* (its `prog_array`), not on the perf fd, and runs it on every hit of that
//! event on every CPU and in every task — so one perf event (on any CPU, kept open) is enough,
//! and attaching the same program through a second perf event of the same tracefs event fails
//! with EEXIST. A perf event holds one program (EEXIST again), so two programs on one event
//! need two perf events. For uprobe events the perf event must not be bound to a task, or the
//! uprobe's filter limits hits to that task.

use super::insn::encode_all;
use super::prog::{fork_follower, BpfError, Context, LatencyPlan, Plan};
use crate::aggregate::count::{Counts, KeyPart};
use crate::aggregate::hist::{LinearHist, Log2Hist, LOG2_SLOTS};
use crate::sys::bpf::{
    LoadError, Map, Prog, MAP_TYPE_HASH, PROG_TYPE_KPROBE, PROG_TYPE_TRACEPOINT,
};
use crate::sys::SyscallError;
use std::collections::BTreeMap;
use std::os::fd::OwnedFd;

/// Why the BPF engine cannot run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The plan has no BPF translation.
    #[error(transparent)]
    Plan(#[from] BpfError),
    /// `bpf(2)` refused to create the map (no permission, BPF disabled).
    #[error("{source}: {hint}")]
    Map {
        /// The failed call.
        source: SyscallError,
        /// What to change.
        hint: String,
    },
    /// The verifier or the kernel refused the program.
    #[error("the kernel refused rprobe's BPF program: {source}")]
    Load {
        /// The failed load, with the verifier's log.
        source: LoadError,
    },
}

impl EngineError {
    /// The verifier's log, when the kernel produced one.
    pub fn verifier_log(&self) -> Option<&str> {
        match self {
            EngineError::Load { source } if !source.log.is_empty() => Some(&source.log),
            _ => None,
        }
    }
}

/// Why `bpf(2)` is refused, from the errno and the system's settings.
pub fn refusal_hint(errno: Option<i32>) -> String {
    let unpriv = crate::sys::read_sys_text("/proc/sys/kernel/unprivileged_bpf_disabled")
        .map(|t| t.trim().to_owned());
    let lockdown = crate::sys::read_sys_text("/sys/kernel/security/lockdown").and_then(|t| {
        t.split('[')
            .nth(1)
            .and_then(|r| r.split(']').next())
            .map(str::to_owned)
    });
    match errno {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            let mut why = String::from("BPF needs CAP_BPF and CAP_PERFMON (or root)");
            if let Some(u) = unpriv.filter(|u| u != "0") {
                why.push_str(&format!(
                    "; kernel.unprivileged_bpf_disabled = {u} refuses it to other users"
                ));
            }
            if let Some(l) = lockdown.filter(|l| l != "none") {
                why.push_str(&format!("; lockdown is '{l}', which may forbid it"));
            }
            why.push_str("; the user-space engine (without --bpf) needs none of this");
            why
        }
        Some(libc::ENOSYS) => {
            "this kernel has no bpf(2) (CONFIG_BPF_SYSCALL); use the user-space engine".into()
        }
        Some(libc::ENOMEM) => {
            "out of locked memory for BPF maps (raise ulimit -l on kernels before 5.11)".into()
        }
        _ => "use the user-space engine (without --bpf)".into(),
    }
}

/// Whether `bpf(2)` works here: creates (and drops) a one-entry map, so that a refusal is
/// known before any event is opened.
pub fn check_bpf() -> Result<(), EngineError> {
    create_map(8, 1).map(drop)
}

/// The processes a filtered [`Engine`] counts: a hash map of tgids, and the program that
/// adds the children they fork (attach it to `sched:sched_process_fork`).
#[derive(Debug)]
pub struct ProcessFilter {
    map: Map,
    prog: Prog,
}

impl ProcessFilter {
    /// The map (room for `max` processes) and the fork program; `child_pid_offset` is the
    /// `child_pid` field's offset in this kernel's `sched_process_fork` format.
    pub fn load(max: u32, child_pid_offset: u32) -> Result<ProcessFilter, EngineError> {
        let map = create_map(8, max)?;
        let insns = fork_follower(map.raw_fd(), child_pid_offset);
        let prog = Prog::load(PROG_TYPE_TRACEPOINT, &encode_all(&insns), "rprobe_fork")
            .map_err(|source| EngineError::Load { source })?;
        Ok(ProcessFilter { map, prog })
    }

    /// Counts the process `tgid` (and, once the fork program runs, its future children).
    pub fn add(&self, tgid: u32) -> Result<(), SyscallError> {
        let k = u64::from(tgid).to_ne_bytes();
        self.map.update(&k, &k)
    }

    /// Runs the fork program on the `sched_process_fork` perf event `event`.
    pub fn attach(&self, event: &OwnedFd) -> Result<(), SyscallError> {
        self.prog.attach(event)
    }
}

/// A loaded program and its map.
#[derive(Debug)]
pub struct Engine {
    map: Map,
    prog: Prog,
    plan: Plan,
}

impl Engine {
    /// Creates the map (at most `max_entries` keys), generates and loads the program.
    pub fn load(plan: Plan, max_entries: u32) -> Result<Engine, EngineError> {
        Engine::load_for(plan, max_entries, None)
    }

    /// [`Engine::load`] counting only hits in the processes of `filter` (all without one).
    pub fn load_for(
        plan: Plan,
        max_entries: u32,
        filter: Option<&ProcessFilter>,
    ) -> Result<Engine, EngineError> {
        let (_, key_size) = plan.layout();
        let map = create_map(key_size, max_entries)?;
        let insns = plan.codegen_for(map.raw_fd(), filter.map(|f| f.map.raw_fd()))?;
        let prog = Prog::load(prog_type(plan.context), &encode_all(&insns), "rprobe_stat")
            .map_err(|source| EngineError::Load { source })?;
        Ok(Engine { map, prog, plan })
    }

    /// Runs the program on every hit of the perf event `event` (one per CPU or task).
    pub fn attach(&self, event: &OwnedFd) -> Result<(), SyscallError> {
        self.prog.attach(event)
    }

    /// The plan this engine runs.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    fn entries(&self) -> Vec<(Vec<KeyPart>, Option<usize>, u64)> {
        self.map
            .keys()
            .into_iter()
            .filter_map(|k| {
                let v = self.map.lookup(&k)?;
                let count = u64::from_ne_bytes(v.get(..8)?.try_into().ok()?);
                let (parts, bucket) = self.plan.decode_key(&k);
                Some((parts, bucket, count))
            })
            .collect()
    }

    /// Counts per key (for a plan without a histogram).
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for (parts, _, n) in self.entries() {
            c.add_n(parts, n);
        }
        c
    }

    /// A linear histogram of buckets of `step` per key (for a plan with `linear`).
    pub fn linear_hists(&self, step: u64) -> BTreeMap<Vec<KeyPart>, LinearHist> {
        let mut m: BTreeMap<Vec<KeyPart>, LinearHist> = BTreeMap::new();
        for (parts, bucket, n) in self.entries() {
            let h = m.entry(parts).or_insert_with(|| LinearHist::new(step));
            let slot = h.buckets.entry(bucket.unwrap_or(0) as u64).or_insert(0);
            *slot = slot.saturating_add(n);
        }
        m
    }

    /// A histogram per key (for a plan with one).
    pub fn hists(&self) -> BTreeMap<Vec<KeyPart>, Log2Hist> {
        let mut m: BTreeMap<Vec<KeyPart>, Log2Hist> = BTreeMap::new();
        for (parts, bucket, n) in self.entries() {
            let h = m.entry(parts).or_default();
            let b = bucket.unwrap_or(0).min(LOG2_SLOTS - 1);
            h.slots[b] = h.slots[b].saturating_add(n);
        }
        m
    }
}

fn prog_type(ctx: Context) -> u32 {
    match ctx {
        Context::Tracepoint => PROG_TYPE_TRACEPOINT,
        Context::Kprobe | Context::Uprobe { .. } => PROG_TYPE_KPROBE,
    }
}

fn create_map(key: u32, max_entries: u32) -> Result<Map, EngineError> {
    Map::create(MAP_TYPE_HASH, key, 8, max_entries).map_err(|source| EngineError::Map {
        hint: refusal_hint(source.errno()),
        source,
    })
}

/// The two programs of a latency measurement and their maps.
#[derive(Debug)]
pub struct LatencyEngine {
    _start: Map,
    hist: Map,
    entry: Prog,
    exit: Prog,
}

impl LatencyEngine {
    /// Creates the start map (`max_open` pending entries) and the histogram map, and loads
    /// both programs.
    pub fn load(plan: &LatencyPlan, max_open: u32) -> Result<LatencyEngine, EngineError> {
        let start = create_map(LatencyPlan::KEY_SIZE, max_open)?;
        let hist = create_map(LatencyPlan::KEY_SIZE, LOG2_SLOTS as u32)?;
        let entry = plan.codegen_entry(start.raw_fd())?;
        let exit = plan.codegen_exit(start.raw_fd(), hist.raw_fd())?;
        let load = |ctx, insns: &[super::insn::Insn], name| {
            Prog::load(prog_type(ctx), &encode_all(insns), name)
                .map_err(|source| EngineError::Load { source })
        };
        Ok(LatencyEngine {
            entry: load(plan.entry_ctx, &entry, "rprobe_lat_in")?,
            exit: load(plan.exit_ctx, &exit, "rprobe_lat_out")?,
            _start: start,
            hist,
        })
    }

    /// Runs the entry program on the perf event `event`.
    pub fn attach_entry(&self, event: &OwnedFd) -> Result<(), SyscallError> {
        self.entry.attach(event)
    }

    /// Runs the exit program on the perf event `event`.
    pub fn attach_exit(&self, event: &OwnedFd) -> Result<(), SyscallError> {
        self.exit.attach(event)
    }

    /// The histogram so far.
    pub fn hist(&self) -> Log2Hist {
        let mut h = Log2Hist::default();
        for k in self.hist.keys() {
            let (Some(v), Ok(kb)) = (self.hist.lookup(&k), <[u8; 8]>::try_from(k.as_slice()))
            else {
                continue;
            };
            let bucket = (u64::from_ne_bytes(kb) as usize).min(LOG2_SLOTS - 1);
            let n = v
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_ne_bytes);
            h.slots[bucket] = h.slots[bucket].saturating_add(n);
        }
        h
    }
}

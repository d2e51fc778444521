//! The in-kernel counting program: a key built from event data, and either a count per key or
//! a log2 histogram (bucket as the last key part) in one BPF hash map of `u64` counters.
//!
//! Two contexts, chosen by the event:
//! - **tracepoints** (`BPF_PROG_TYPE_TRACEPOINT`): `r1` points at the raw trace record, laid
//!   out as the event's `format` says; fields are copied with `bpf_probe_read_kernel` from
//!   `ctx + offset` (probe-event fields are packed and unaligned, and direct ctx loads must be
//!   aligned and skip the first 8 bytes, so one uniform path is simpler).
//! - **kprobe/uprobe events** (`BPF_PROG_TYPE_KPROBE`): `r1` is `struct pt_regs *`, and the
//!   program evaluates the same fetch-arg AST that was written to tracefs: registers are ctx
//!   loads at their `pt_regs` offsets, `+OFF(X)` is a `bpf_probe_read_user` (uprobes, or `+u`)
//!   or `bpf_probe_read_kernel` of the type's size at `X + OFF`, `:string` a `_str` read,
//!   `@+OFF` on a uprobe is `ip - probe_offset + OFF` (the kernel's own `translate_user_vaddr`),
//!   and the type's width, sign and bitfield are applied as the kernel applies them.
//!
//! Key layout: each part takes 8 bytes (numbers, stored as `u64`/`i64`) or its string
//! capacity rounded up to 8 (NUL-terminated, zero-filled), in order; a histogram appends an
//! 8-byte bucket. The key area is zeroed first so that padding never splits equal keys.

use super::insn::{helper, Alu, Cond, Insn, Reg, Size, FP, R0, R1, R2, R3, R4, R6, R7, R8, R9};
use crate::aggregate::count::KeyPart;
use crate::probes::fetch::{FetchArg, FetchType};
use crate::probes::regs::pt_regs_offset;

/// Errors building a program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BpfError {
    /// Something the generator cannot express.
    #[error("the BPF engine cannot compute {what}: {why}")]
    Unsupported {
        /// The part of the key or value.
        what: String,
        /// Why, and what to do instead.
        why: &'static str,
    },
    /// The key does not fit the 512-byte BPF stack.
    #[error("the key is {bytes} bytes; the BPF stack holds keys up to {max} bytes (use fewer or shorter string keys)")]
    KeyTooLarge {
        /// Key size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
}

/// Where a key part or the histogram's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A numeric tracepoint field: `size` bytes at `offset` of the raw record.
    Field {
        /// Byte offset in the record.
        offset: u32,
        /// Size in bytes (1, 2, 4 or 8).
        size: u32,
        /// Sign-extend.
        signed: bool,
    },
    /// A `char[N]` tracepoint field, read as a string of at most `len` bytes.
    CharArray {
        /// Byte offset in the record.
        offset: u32,
        /// Array length.
        len: u32,
    },
    /// A `__data_loc char[]` tracepoint field (a `u32` of `len << 16 | offset`).
    DataLocStr {
        /// Byte offset of the `u32` locator.
        offset: u32,
    },
    /// A probe-event argument: the fetch arg and type written to tracefs.
    Fetch {
        /// The fetch arg.
        arg: FetchArg,
        /// Its type.
        ty: FetchType,
    },
    /// The current task's command name (16 bytes).
    Comm,
    /// The current process id (tgid).
    Pid,
    /// The current thread id.
    Tid,
}

impl Source {
    fn is_string(&self) -> bool {
        matches!(
            self,
            Source::CharArray { .. } | Source::DataLocStr { .. } | Source::Comm
        ) || matches!(
            self,
            Source::Fetch {
                ty: FetchType::String | FetchType::Ustring,
                ..
            }
        )
    }

    fn signed(&self) -> bool {
        match self {
            Source::Field { signed, .. } => *signed,
            Source::Fetch { ty, .. } => matches!(ty, FetchType::S(_)),
            _ => false,
        }
    }

    fn key_bytes(&self, string_cap: u32) -> u32 {
        match self {
            Source::Comm => 16,
            Source::CharArray { len, .. } => len.div_ceil(8) * 8,
            s if s.is_string() => string_cap.div_ceil(8) * 8,
            _ => 8,
        }
    }
}

/// The kind of event the program runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// A tracepoint: the context is the raw record.
    Tracepoint,
    /// A kprobe event: `pt_regs`, kernel memory.
    Kprobe,
    /// A uprobe event at `probe_offset` of its file: `pt_regs`, user memory.
    Uprobe {
        /// The probe's file offset (for `@+OFF`).
        probe_offset: u64,
    },
}

/// What to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The key parts, in order (may be empty: one global counter).
    pub key: Vec<Source>,
    /// `None`: count per key. `Some(v)`: a histogram of `v` per key.
    pub hist: Option<Source>,
    /// The histogram's buckets: `None` log2 (bcc's `bpf_log2l`), `Some(step)` linear,
    /// bucket `v / step` (unsigned).
    pub linear: Option<u64>,
    /// Bytes kept of each string key (including the NUL).
    pub string_cap: u32,
    /// The event kind.
    pub context: Context,
}

/// What every program returns. The kernel reads a tracing program's result as "deliver
/// this hit to perf": on 6.18 `perf_trace_run_bpf_submit()` (tracepoints),
/// `kprobe_perf_func()` and `__uprobe_perf_func()` return early when it is 0, so a program
/// returning 0 would hide the event from every other perf user of it (`perf record`,
/// `rprobe trace`, another `rprobe stat`) on every CPU. 1 keeps them whole; the program's
/// own perf event is a counting event (no samples), which costs a counter increment.
pub const PASS: i32 = 1;

/// Bytes of BPF stack the key may take (the rest holds scratch slots).
pub const MAX_KEY_BYTES: usize = 448;
const SCRATCH: i16 = -8; // fp-8: one u64 for reads and the initial counter value

impl Plan {
    /// Offsets of each key part in the key, and the key's size.
    pub fn layout(&self) -> (Vec<u32>, u32) {
        let mut offs = Vec::with_capacity(self.key.len());
        let mut at = 0u32;
        for part in &self.key {
            offs.push(at);
            at += part.key_bytes(self.string_cap);
        }
        if self.hist.is_some() {
            at += 8;
        }
        (offs, at.max(8))
    }

    /// Splits a key read back from the map into its parts, and the histogram bucket.
    pub fn decode_key(&self, key: &[u8]) -> (Vec<KeyPart>, Option<usize>) {
        let (offs, size) = self.layout();
        let u64_at = |at: u32| {
            key.get(at as usize..at as usize + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_ne_bytes)
                .unwrap_or(0)
        };
        let parts = self
            .key
            .iter()
            .zip(offs)
            .map(|(part, at)| {
                if part.is_string() {
                    let len = part.key_bytes(self.string_cap) as usize;
                    let bytes = key.get(at as usize..at as usize + len).unwrap_or_default();
                    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
                    KeyPart::Str(String::from_utf8_lossy(&bytes[..end]).into_owned())
                } else if part.signed() {
                    KeyPart::Int(u64_at(at) as i64)
                } else if matches!(
                    part,
                    Source::Fetch {
                        ty: FetchType::X(_),
                        ..
                    }
                ) {
                    KeyPart::Hex(u64_at(at))
                } else {
                    KeyPart::UInt(u64_at(at))
                }
            })
            .collect();
        let bucket = self.hist.as_ref().map(|_| u64_at(size - 8) as usize);
        (parts, bucket)
    }

    /// The program, for the hash map behind `map_fd` (keys of [`Plan::layout`] size, `u64`
    /// values).
    pub fn codegen(&self, map_fd: i32) -> Result<Vec<Insn>, BpfError> {
        self.codegen_for(map_fd, None)
    }

    /// [`Plan::codegen`] counting only hits in the processes whose tgid is a key of the hash
    /// map behind `filter_fd` (all hits without one): a program runs on every hit of its
    /// event in every task, so `-p` and a command's scope are checked in the program
    /// (`bpf_get_current_pid_tgid() >> 32`); [`fork_follower`] keeps the map current.
    pub fn codegen_for(&self, map_fd: i32, filter_fd: Option<i32>) -> Result<Vec<Insn>, BpfError> {
        let (offs, size) = self.layout();
        if size as usize > MAX_KEY_BYTES {
            return Err(BpfError::KeyTooLarge {
                bytes: size as usize,
                max: MAX_KEY_BYTES,
            });
        }
        let key_base = SCRATCH as i32 - size as i32; // the key sits just below the scratch slot
        let mut g = Gen {
            p: Vec::new(),
            ctx: self.context,
        };
        g.p.push(Insn::mov_reg(R6, R1));
        if let Some(fd) = filter_fd {
            g.current_tgid_in(fd);
        }
        for i in 0..size / 8 {
            g.p.push(Insn::store_imm(
                Size::DW,
                FP,
                (key_base + 8 * i as i32) as i16,
                0,
            ));
        }
        for (part, at) in self.key.iter().zip(offs) {
            let slot = key_base + at as i32;
            g.part(part, slot, part.key_bytes(self.string_cap))?;
        }
        if let Some(v) = &self.hist {
            if v.is_string() {
                return Err(BpfError::Unsupported {
                    what: "a histogram of a string".into(),
                    why: "histograms need a number; count strings with --count",
                });
            }
            let slot = key_base + size as i32 - 8;
            g.part(v, slot, 8)?;
            g.p.push(Insn::load(Size::DW, R7, FP, slot as i16));
            match self.linear {
                Some(step) => {
                    g.p.push(Insn::mov_reg(R8, R7));
                    let [a, b] = Insn::ld_imm64(R1, step.max(1));
                    g.p.extend([a, b]);
                    g.p.push(Insn::alu_reg(Alu::Div, R8, R1));
                }
                None => g.log2_bucket(),
            }
            g.p.push(Insn::store_reg(Size::DW, FP, slot as i16, R8));
        }
        g.increment(map_fd, key_base as i16);
        Ok(g.p)
    }
}

/// Latency between paired events: the entry program stores `bpf_ktime_get_ns()` under the
/// pairing key, the exit program looks it up, deletes it and counts the difference (in units
/// of `unit_ns`) into a log2 histogram keyed by its bucket alone (bcc's `runqlat` and
/// `funclatency` shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyPlan {
    /// The pairing key at the entry event (`Tid` for function entry, `Field` of
    /// `sched_wakeup`'s `pid` for run-queue latency).
    pub entry_key: Source,
    /// The entry event's kind.
    pub entry_ctx: Context,
    /// The pairing key at the exit event (`Tid`, or `sched_switch`'s `next_pid`).
    pub exit_key: Source,
    /// The exit event's kind.
    pub exit_ctx: Context,
    /// Nanoseconds per histogram unit (1000 for usecs).
    pub unit_ns: u64,
}

impl LatencyPlan {
    /// Key size of the start map (one u64) and of the histogram map (the bucket).
    pub const KEY_SIZE: u32 = 8;

    fn check(key: &Source) -> Result<(), BpfError> {
        if key.is_string() {
            return Err(BpfError::Unsupported {
                what: "a string pairing key".into(),
                why: "latencies pair events by a number (thread or pid)",
            });
        }
        Ok(())
    }

    /// `start[key] = ktime_get_ns()`.
    pub fn codegen_entry(&self, start_fd: i32) -> Result<Vec<Insn>, BpfError> {
        let (mut g, key) = Gen::with_pairing_key(self.entry_ctx, &self.entry_key)?;
        g.p.push(Insn::call(helper::KTIME_GET_NS));
        g.p.push(Insn::store_reg(Size::DW, FP, SCRATCH, R0));
        let [a, b] = Insn::ld_map_fd(R1, start_fd);
        g.p.extend([a, b]);
        g.fp_ptr(R2, key);
        g.fp_ptr(R3, SCRATCH as i32);
        g.p.push(Insn::mov_imm(R4, 0)); // BPF_ANY: the innermost entry wins
        g.p.push(Insn::call(helper::MAP_UPDATE_ELEM));
        g.p.push(Insn::mov_imm(R0, PASS));
        g.p.push(Insn::exit());
        Ok(g.p)
    }

    /// `if start[key]: hist[log2((now - start[key]) / unit)] += 1; delete start[key]`.
    pub fn codegen_exit(&self, start_fd: i32, hist_fd: i32) -> Result<Vec<Insn>, BpfError> {
        let (mut g, key) = Gen::with_pairing_key(self.exit_ctx, &self.exit_key)?;
        let bucket = key - 8;
        let [a, b] = Insn::ld_map_fd(R1, start_fd);
        g.p.extend([a, b]);
        g.fp_ptr(R2, key);
        g.p.push(Insn::call(helper::MAP_LOOKUP_ELEM));
        let no_start = g.p.len();
        g.p.push(Insn::jmp_imm(Cond::Eq, R0, 0, 0));
        g.p.push(Insn::load(Size::DW, R9, R0, 0));
        g.p.push(Insn::call(helper::KTIME_GET_NS));
        g.p.push(Insn::mov_reg(R7, R0));
        g.p.push(Insn::alu_reg(Alu::Sub, R7, R9));
        if self.unit_ns > 1 {
            let [a, b] = Insn::ld_imm64(R8, self.unit_ns);
            g.p.extend([a, b]);
            g.p.push(Insn::alu_reg(Alu::Div, R7, R8));
        }
        let [a, b] = Insn::ld_map_fd(R1, start_fd);
        g.p.extend([a, b]);
        g.fp_ptr(R2, key);
        g.p.push(Insn::call(helper::MAP_DELETE_ELEM));
        g.log2_bucket();
        g.p.push(Insn::store_reg(Size::DW, FP, bucket as i16, R8));
        g.increment(hist_fd, bucket as i16);
        let exit_at = g.p.len() - 2; // increment ends in `r0 = PASS; exit`
        g.p[no_start].off = (exit_at - no_start - 1) as i16;
        Ok(g.p)
    }
}

/// The program on `sched:sched_process_fork` that adds a child to the process filter
/// `filter_fd` when its parent is in it (the parent is the current task; `child_pid_offset`
/// is the `child_pid` field's offset in this kernel's format), so that a command's children
/// are counted as the user-space engine's inherited perf events count them.
pub fn fork_follower(filter_fd: i32, child_pid_offset: u32) -> Vec<Insn> {
    let mut g = Gen {
        p: vec![Insn::mov_reg(R6, R1)],
        ctx: Context::Tracepoint,
    };
    g.current_tgid_in(filter_fd);
    // fp-16 = (u64) child_pid; filter[fp-16] = fp-16
    g.p.push(Insn::store_imm(Size::DW, FP, SCRATCH - 8, 0));
    g.p.push(Insn::mov_reg(R3, R6));
    g.p.push(Insn::alu_imm(Alu::Add, R3, child_pid_offset as i32));
    g.read_into(helper::PROBE_READ_KERNEL, SCRATCH as i32 - 8, 4);
    let [a, b] = Insn::ld_map_fd(R1, filter_fd);
    g.p.extend([a, b]);
    g.fp_ptr(R2, SCRATCH as i32 - 8);
    g.fp_ptr(R3, SCRATCH as i32 - 8);
    g.p.push(Insn::mov_imm(R4, 0)); // BPF_ANY
    g.p.push(Insn::call(helper::MAP_UPDATE_ELEM));
    g.p.push(Insn::mov_imm(R0, PASS));
    g.p.push(Insn::exit());
    g.p
}

struct Gen {
    p: Vec<Insn>,
    ctx: Context,
}

impl Gen {
    /// A latency program's start: the context saved in `r6`, and the pairing key (a number)
    /// computed into the 8-byte stack slot whose offset is returned.
    fn with_pairing_key(ctx: Context, source: &Source) -> Result<(Gen, i32), BpfError> {
        LatencyPlan::check(source)?;
        let key = SCRATCH as i32 - 8;
        let mut g = Gen {
            p: vec![
                Insn::mov_reg(R6, R1),
                Insn::store_imm(Size::DW, FP, key as i16, 0),
            ],
            ctx,
        };
        g.part(source, key, 8)?;
        Ok((g, key))
    }

    /// Returns PASS unless the current tgid is a key of the hash map `fd` (8-byte keys).
    /// Uses the scratch slot; `r6` must hold the context already.
    fn current_tgid_in(&mut self, fd: i32) {
        self.p.push(Insn::call(helper::GET_CURRENT_PID_TGID));
        self.p.push(Insn::alu_imm(Alu::Rsh, R0, 32));
        self.p.push(Insn::store_reg(Size::DW, FP, SCRATCH, R0));
        let [a, b] = Insn::ld_map_fd(R1, fd);
        self.p.extend([a, b]);
        self.fp_ptr(R2, SCRATCH as i32);
        self.p.push(Insn::call(helper::MAP_LOOKUP_ELEM));
        self.p.push(Insn::jmp_imm(Cond::Ne, R0, 0, 2));
        self.p.push(Insn::mov_imm(R0, PASS));
        self.p.push(Insn::exit());
    }

    /// `r1 = fp + off`.
    fn fp_ptr(&mut self, dst: Reg, off: i32) {
        self.p.push(Insn::mov_reg(dst, FP));
        self.p.push(Insn::alu_imm(Alu::Add, dst, off));
    }

    /// `helper(fp + slot, len, r3)` with r3 already set; the helper is a probe_read variant.
    fn read_into(&mut self, helper: i32, slot: i32, len: u32) {
        self.fp_ptr(R1, slot);
        self.p.push(Insn::mov_imm(R2, len as i32));
        self.p.push(Insn::call(helper));
    }

    fn user_memory(&self, deref_user: bool) -> bool {
        matches!(self.ctx, Context::Uprobe { .. }) || deref_user
    }

    fn part(&mut self, part: &Source, slot: i32, bytes: u32) -> Result<(), BpfError> {
        match part {
            Source::Field {
                offset,
                size,
                signed,
            } => {
                if Size::of_bytes(*size).is_none() {
                    return Err(BpfError::Unsupported {
                        what: format!("a {size}-byte field"),
                        why: "numeric fields are 1, 2, 4 or 8 bytes",
                    });
                }
                self.p.push(Insn::mov_reg(R3, R6));
                self.p.push(Insn::alu_imm(Alu::Add, R3, *offset as i32));
                self.read_into(helper::PROBE_READ_KERNEL, slot, *size);
                if *signed && *size < 8 {
                    self.sign_extend_slot(slot, *size * 8);
                }
            }
            Source::CharArray { offset, len } => {
                self.p.push(Insn::mov_reg(R3, R6));
                self.p.push(Insn::alu_imm(Alu::Add, R3, *offset as i32));
                self.read_into(helper::PROBE_READ_KERNEL_STR, slot, (*len).min(bytes));
            }
            Source::DataLocStr { offset } => {
                // r3 = ctx + (*(u32 *)(ctx + offset) & 0xffff)
                self.p.push(Insn::mov_reg(R3, R6));
                self.p.push(Insn::alu_imm(Alu::Add, R3, *offset as i32));
                self.read_into(helper::PROBE_READ_KERNEL, SCRATCH as i32, 4);
                self.p.push(Insn::load(Size::W, R3, FP, SCRATCH));
                self.p.push(Insn::alu_imm(Alu::And, R3, 0xffff));
                self.p.push(Insn::alu_reg(Alu::Add, R3, R6));
                self.read_into(helper::PROBE_READ_KERNEL_STR, slot, bytes);
            }
            Source::Comm => {
                self.fp_ptr(R1, slot);
                self.p.push(Insn::mov_imm(R2, 16));
                self.p.push(Insn::call(helper::GET_CURRENT_COMM));
            }
            Source::Pid | Source::Tid => {
                self.p.push(Insn::call(helper::GET_CURRENT_PID_TGID));
                if matches!(part, Source::Pid) {
                    self.p.push(Insn::alu_imm(Alu::Rsh, R0, 32));
                } else {
                    self.p.push(Insn::alu_imm(Alu::Lsh, R0, 32));
                    self.p.push(Insn::alu_imm(Alu::Rsh, R0, 32));
                }
                self.p.push(Insn::store_reg(Size::DW, FP, slot as i16, R0));
            }
            Source::Fetch { arg, ty } => self.fetch(arg, ty, slot, bytes)?,
        }
        Ok(())
    }

    /// Sign-extends the low `bits` of the u64 at `slot` in place.
    fn sign_extend_slot(&mut self, slot: i32, bits: u32) {
        self.p.push(Insn::load(Size::DW, R0, FP, slot as i16));
        self.p.push(Insn::alu_imm(Alu::Lsh, R0, 64 - bits as i32));
        self.p.push(Insn::alu_imm(Alu::Arsh, R0, 64 - bits as i32));
        self.p.push(Insn::store_reg(Size::DW, FP, slot as i16, R0));
    }

    fn unsupported(arg: &FetchArg, why: &'static str) -> BpfError {
        BpfError::Unsupported {
            what: format!("'{arg}'"),
            why,
        }
    }

    /// Evaluates a fetch arg's address or value into `r7` (callee-saved across helper calls).
    fn eval(&mut self, arg: &FetchArg) -> Result<(), BpfError> {
        let reg_load =
            |name: &str| pt_regs_offset(name).map(|o| Insn::load(Size::DW, R7, R6, o as i16));
        match arg {
            FetchArg::Reg(name) => {
                let insn = reg_load(name)
                    .ok_or_else(|| Gen::unsupported(arg, "not a pt_regs register"))?;
                self.require_regs(arg)?;
                self.p.push(insn);
            }
            FetchArg::Retval => {
                self.require_regs(arg)?;
                self.p.push(reg_load("ax").expect("ax is a register"));
            }
            FetchArg::StackPtr => {
                self.require_regs(arg)?;
                self.p.push(reg_load("sp").expect("sp is a register"));
            }
            FetchArg::Stack(n) => {
                self.require_regs(arg)?;
                self.p.push(reg_load("sp").expect("sp is a register"));
                self.p.push(Insn::alu_imm(Alu::Add, R7, 8 * *n as i32));
                self.load_through_r7(8, self.user_memory(false));
            }
            FetchArg::Arg(n) => {
                self.require_regs(arg)?;
                let name = crate::probes::regs::SYSV_ARGS
                    .get((*n as usize).wrapping_sub(1))
                    .ok_or_else(|| Gen::unsupported(arg, "only $arg1..$arg6 are in registers"))?;
                self.p
                    .push(reg_load(name).expect("SysV registers are registers"));
            }
            FetchArg::Imm(n) => {
                let [a, b] = Insn::ld_imm64(R7, n.value as u64);
                self.p.extend([a, b]);
            }
            FetchArg::Addr(n) => {
                let [a, b] = Insn::ld_imm64(R7, n.value as u64);
                self.p.extend([a, b]);
                self.load_through_r7(8, self.user_memory(false));
            }
            FetchArg::FileOffset(n) => {
                let Context::Uprobe { probe_offset } = self.ctx else {
                    return Err(Gen::unsupported(arg, "@+OFF exists only on uprobes"));
                };
                self.p.push(reg_load("ip").expect("ip is a register"));
                let delta = n.value.wrapping_sub(probe_offset as i64);
                let [a, b] = Insn::ld_imm64(R8, delta as u64);
                self.p.extend([a, b]);
                self.p.push(Insn::alu_reg(Alu::Add, R7, R8));
                self.load_through_r7(8, true);
            }
            FetchArg::Deref {
                offset,
                user,
                inner,
            } => {
                self.eval(inner)?;
                self.add_r7(offset.value);
                self.load_through_r7(8, self.user_memory(*user));
            }
            FetchArg::Symbol { .. } => {
                return Err(Gen::unsupported(
                    arg,
                    "kernel symbols are not resolved for BPF yet; use the user-space engine",
                ))
            }
            _ => {
                return Err(Gen::unsupported(
                    arg,
                    "no BPF translation for this fetch arg",
                ))
            }
        }
        Ok(())
    }

    fn require_regs(&self, arg: &FetchArg) -> Result<(), BpfError> {
        if self.ctx == Context::Tracepoint {
            return Err(Gen::unsupported(
                arg,
                "registers exist only on probe events",
            ));
        }
        Ok(())
    }

    fn add_r7(&mut self, v: i64) {
        if v == 0 {
            return;
        }
        if let Ok(small) = i32::try_from(v) {
            self.p.push(Insn::alu_imm(Alu::Add, R7, small));
        } else {
            let [a, b] = Insn::ld_imm64(R8, v as u64);
            self.p.extend([a, b]);
            self.p.push(Insn::alu_reg(Alu::Add, R7, R8));
        }
    }

    /// `r7 = *(size *)r7` through a probe_read into the scratch slot (zero-extended).
    fn load_through_r7(&mut self, size: u32, user: bool) {
        self.p.push(Insn::store_imm(Size::DW, FP, SCRATCH, 0));
        self.p.push(Insn::mov_reg(R3, R7));
        self.read_memory(SCRATCH as i32, size, user, false);
        self.p.push(Insn::load(Size::DW, R7, FP, SCRATCH));
    }

    /// Reads `len` bytes (a string: at most `len`, NUL included) at the address in `r3`
    /// into `fp + slot`. User memory for uprobes and `+u`; for other kprobe loads, what the
    /// kernel's own fetch does (`probe_mem_read()`, `kern_fetch_store_string()`): a user
    /// address (the lower half, below the x86_64 kernel's top-bit addresses) is read as
    /// user memory, anything else as kernel memory — `+0(%si):string` on a syscall's user
    /// pointer reads the user's string.
    fn read_memory(&mut self, slot: i32, len: u32, user: bool, string: bool) {
        let (uh, kh) = if string {
            (helper::PROBE_READ_USER_STR, helper::PROBE_READ_KERNEL_STR)
        } else {
            (helper::PROBE_READ_USER, helper::PROBE_READ_KERNEL)
        };
        if user || !matches!(self.ctx, Context::Kprobe) {
            self.read_into(if user { uh } else { kh }, slot, len);
            return;
        }
        // if r3 >= 1 << 63 goto kernel; user read; goto out; kernel: kernel read; out:
        let [a, b] = Insn::ld_imm64(R1, 1u64 << 63);
        self.p.extend([a, b]);
        self.p.push(Insn::jmp_reg(Cond::Ge, R3, R1, 5));
        self.read_into(uh, slot, len);
        self.p.push(Insn::ja(4));
        self.read_into(kh, slot, len);
    }

    fn fetch(
        &mut self,
        arg: &FetchArg,
        ty: &FetchType,
        slot: i32,
        bytes: u32,
    ) -> Result<(), BpfError> {
        let string = matches!(ty, FetchType::String | FetchType::Ustring);
        if matches!(arg, FetchArg::Comm { .. }) {
            return self.part(&Source::Comm, slot, bytes);
        }
        if string {
            // `+OFF(X):string` reads the string at X + OFF (the outermost load is the string).
            let FetchArg::Deref {
                offset,
                user,
                inner,
            } = arg
            else {
                return Err(Gen::unsupported(
                    arg,
                    "strings are read through a memory fetch",
                ));
            };
            self.eval(inner)?;
            self.add_r7(offset.value);
            self.p.push(Insn::mov_reg(R3, R7));
            let user = matches!(ty, FetchType::Ustring) || self.user_memory(*user);
            self.read_memory(slot, bytes, user, true);
            return Ok(());
        }
        let bits = match ty {
            FetchType::U(b) | FetchType::S(b) | FetchType::X(b) => u32::from(*b),
            FetchType::Char => 8,
            FetchType::Bitfield { container, .. } => u32::from(*container),
            FetchType::Symbol => 64,
            _ => {
                return Err(BpfError::Unsupported {
                    what: format!("type {ty}"),
                    why: "the BPF engine counts numbers and strings",
                })
            }
        };
        // The outermost load reads the type's own size, as the kernel does.
        match arg {
            FetchArg::Deref {
                offset,
                user,
                inner,
            } => {
                self.eval(inner)?;
                self.add_r7(offset.value);
                self.load_through_r7(bits / 8, self.user_memory(*user));
            }
            _ => self.eval(arg)?,
        }
        match ty {
            FetchType::Bitfield { width, offset, .. } => {
                if *offset > 0 {
                    self.p.push(Insn::alu_imm(Alu::Rsh, R7, i32::from(*offset)));
                }
                let [a, b] = Insn::ld_imm64(R8, (1u64 << width) - 1);
                self.p.extend([a, b]);
                self.p.push(Insn::alu_reg(Alu::And, R7, R8));
            }
            FetchType::S(b) if *b < 64 => {
                self.p.push(Insn::alu_imm(Alu::Lsh, R7, 64 - i32::from(*b)));
                self.p
                    .push(Insn::alu_imm(Alu::Arsh, R7, 64 - i32::from(*b)));
            }
            FetchType::U(b) | FetchType::X(b) if *b < 64 => {
                self.p.push(Insn::alu_imm(Alu::Lsh, R7, 64 - i32::from(*b)));
                self.p.push(Insn::alu_imm(Alu::Rsh, R7, 64 - i32::from(*b)));
            }
            FetchType::Char => {
                self.p.push(Insn::alu_imm(Alu::And, R7, 0xff));
            }
            _ => {}
        }
        self.p.push(Insn::store_reg(Size::DW, FP, slot as i16, R7));
        Ok(())
    }

    /// `r8 = bpf_log2l(r7)` as bcc computes it: `floor(log2(v)) + 1`, and 1 for 0.
    fn log2_bucket(&mut self) {
        self.p.push(Insn::mov_imm(R8, 0));
        for shift in [32, 16, 8, 4, 2, 1] {
            // if r7 < (1 << shift) skip; else r7 >>= shift; r8 += shift
            let [a, b] = Insn::ld_imm64(R1, 1u64 << shift);
            self.p.extend([a, b]);
            self.p.push(Insn::jmp_reg(Cond::Lt, R7, R1, 2));
            self.p.push(Insn::alu_imm(Alu::Rsh, R7, shift));
            self.p.push(Insn::alu_imm(Alu::Add, R8, shift));
        }
        self.p.push(Insn::alu_imm(Alu::Add, R8, 1));
    }

    /// `map[key] += 1`, creating the entry when it is missing; `r0 = PASS; exit`.
    fn increment(&mut self, map_fd: i32, key: i16) {
        let lookup = |p: &mut Vec<Insn>| {
            let [a, b] = Insn::ld_map_fd(R1, map_fd);
            p.extend([a, b]);
            p.push(Insn::mov_reg(R2, FP));
            p.push(Insn::alu_imm(Alu::Add, R2, i32::from(key)));
            p.push(Insn::call(helper::MAP_LOOKUP_ELEM));
        };
        lookup(&mut self.p);
        // if r0 == 0 goto create; lock *r0 += 1; goto out
        self.p.push(Insn::jmp_imm(Cond::Eq, R0, 0, 3));
        self.p.push(Insn::mov_imm(R1, 1));
        self.p.push(Insn::atomic_add64(R0, 0, R1));
        let out_jump = self.p.len();
        self.p.push(Insn::ja(0));
        // create: scratch = 1; update(map, key, &scratch, BPF_NOEXIST)
        self.p.push(Insn::store_imm(Size::DW, FP, SCRATCH, 1));
        let [a, b] = Insn::ld_map_fd(R1, map_fd);
        self.p.extend([a, b]);
        self.p.push(Insn::mov_reg(R2, FP));
        self.p.push(Insn::alu_imm(Alu::Add, R2, i32::from(key)));
        self.p.push(Insn::mov_reg(R3, FP));
        self.p.push(Insn::alu_imm(Alu::Add, R3, i32::from(SCRATCH)));
        self.p.push(Insn::mov_imm(R4, 1)); // BPF_NOEXIST
        self.p.push(Insn::call(helper::MAP_UPDATE_ELEM));
        // Another CPU created it first (-EEXIST): add to theirs.
        let raced = self.p.len();
        self.p.push(Insn::jmp_imm(Cond::Eq, R0, 0, 0));
        lookup(&mut self.p);
        self.p.push(Insn::jmp_imm(Cond::Eq, R0, 0, 2));
        self.p.push(Insn::mov_imm(R1, 1));
        self.p.push(Insn::atomic_add64(R0, 0, R1));
        let out = self.p.len();
        self.p.push(Insn::mov_imm(R0, PASS));
        self.p.push(Insn::exit());
        self.p[out_jump].off = (out - out_jump - 1) as i16;
        self.p[raced].off = (out - raced - 1) as i16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::fetch::Num;

    fn tp_plan(key: Vec<Source>, hist: Option<Source>) -> Plan {
        Plan {
            key,
            hist,
            linear: None,
            string_cap: 64,
            context: Context::Tracepoint,
        }
    }

    #[test]
    fn layout_rounds_strings_and_appends_the_bucket() {
        let p = tp_plan(
            vec![Source::Comm, Source::Pid, Source::DataLocStr { offset: 8 }],
            Some(Source::Field {
                offset: 32,
                size: 8,
                signed: false,
            }),
        );
        assert_eq!(p.layout(), (vec![0, 16, 24], 16 + 8 + 64 + 8));
        let mut key = vec![0u8; 96];
        key[..4].copy_from_slice(b"bash");
        key[16..24].copy_from_slice(&4242u64.to_ne_bytes());
        key[24..35].copy_from_slice(b"/etc/passwd");
        key[88..96].copy_from_slice(&7u64.to_ne_bytes());
        let (parts, bucket) = p.decode_key(&key);
        assert_eq!(
            parts,
            [
                KeyPart::Str("bash".into()),
                KeyPart::UInt(4242),
                KeyPart::Str("/etc/passwd".into())
            ]
        );
        assert_eq!(bucket, Some(7));
    }

    #[test]
    fn a_process_filter_returns_early_for_other_processes() {
        let p = tp_plan(vec![Source::Tid], None);
        let plain = p.codegen(3).expect("program");
        let prog = p.codegen_for(3, Some(4)).expect("program");
        // r6 = r1; call; r0 >>= 32; store; ld_map_fd (2); r2 = fp - 8 (2); lookup;
        // if r0 != 0 skip; r0 = PASS; exit.
        assert_eq!(prog.len(), plain.len() + 11);
        assert_eq!(prog[4].imm, 4, "the filter map");
        assert_eq!((prog[9].code, prog[9].off), (0x55, 2));
        assert_eq!((prog[10].imm, prog[11].code), (PASS, 0x95));
        let fork = fork_follower(4, 20);
        assert_eq!(fork.last().map(|i| i.code), Some(0x95));
        assert!(fork.iter().any(|i| i.imm == 20), "reads child_pid at 20");
    }

    #[test]
    fn kprobe_loads_read_user_addresses_as_user_memory() {
        let name = Source::Fetch {
            arg: FetchArg::Deref {
                offset: Num::dec(0),
                user: false,
                inner: Box::new(FetchArg::Reg("si")),
            },
            ty: FetchType::String,
        };
        let plan = |context| Plan {
            key: vec![name.clone()],
            hist: None,
            linear: None,
            string_cap: 32,
            context,
        };
        let calls = |p: &[Insn], h: i32| p.iter().filter(|i| i.code == 0x85 && i.imm == h).count();
        let k = plan(Context::Kprobe).codegen(3).expect("program");
        assert_eq!(calls(&k, helper::PROBE_READ_USER_STR), 1);
        assert_eq!(calls(&k, helper::PROBE_READ_KERNEL_STR), 1);
        let at = k
            .iter()
            .position(|i| i.code == 0x3d)
            .expect("the address test");
        // The jump lands on the kernel read: past the user read (4) and the `ja` (1).
        assert_eq!(k[at].off, 5);
        assert_eq!(k[at + 5].code, 0x05);
        let u = plan(Context::Uprobe { probe_offset: 0 })
            .codegen(3)
            .expect("program");
        assert_eq!(calls(&u, helper::PROBE_READ_KERNEL_STR), 0);
        for prog in [&k, &u] {
            for (i, insn) in prog.iter().enumerate() {
                if insn.code & 0x07 == 0x05 && insn.code != 0x85 && insn.code != 0x95 {
                    let target = i as i64 + 1 + i64::from(insn.off);
                    assert!((0..prog.len() as i64).contains(&target), "jump at {i}");
                }
            }
        }
    }

    #[test]
    fn jumps_land_inside_the_program_and_it_ends_in_exit() {
        let p = tp_plan(vec![Source::Tid], None);
        let prog = p.codegen(3).expect("program");
        assert_eq!(prog.last().map(|i| i.code), Some(0x95));
        for (i, insn) in prog.iter().enumerate() {
            if insn.code & 0x07 == 0x05 && insn.code != 0x85 && insn.code != 0x95 {
                let target = i as i64 + 1 + i64::from(insn.off);
                assert!((0..prog.len() as i64).contains(&target), "jump at {i}");
            }
        }
    }

    #[test]
    fn what_cannot_be_computed_is_said() {
        let p = tp_plan(
            vec![Source::Fetch {
                arg: FetchArg::Reg("di"),
                ty: FetchType::U(64),
            }],
            None,
        );
        let e = p.codegen(3).expect_err("registers on a tracepoint");
        assert!(
            e.to_string()
                .contains("registers exist only on probe events"),
            "{e}"
        );
        let p = tp_plan(vec![], Some(Source::Comm));
        assert!(p.codegen(3).is_err());
        let p = tp_plan(vec![Source::DataLocStr { offset: 8 }; 8], None);
        assert!(matches!(p.codegen(3), Err(BpfError::KeyTooLarge { .. })));
        let p = Plan {
            context: Context::Kprobe,
            ..tp_plan(
                vec![Source::Fetch {
                    arg: FetchArg::FileOffset(Num::dec(16)),
                    ty: FetchType::U(64),
                }],
                None,
            )
        };
        assert!(p.codegen(3).is_err());
    }
}

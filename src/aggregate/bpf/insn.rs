//! eBPF instructions and their encoding (`include/uapi/linux/bpf.h`,
//! `Documentation/bpf/standardization/instruction-set.rst`).
//!
//! Written by hand because rprobe emits a handful of fixed program shapes and needs no
//! assembler, object files or relocations: an instruction is 8 bytes, little-endian on x86_64:
//!
//! ```text
//! struct bpf_insn { u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm; };
//! ```
//!
//! `code` is `class | size | mode` for loads and stores, `class | op | source` for ALU and
//! jumps. A 64-bit immediate load (`BPF_LD | BPF_DW | BPF_IMM`) takes two slots; with
//! `src_reg = BPF_PSEUDO_MAP_FD` its immediate is a map fd the kernel replaces by the map.
//! Jump offsets count instructions (slots) from the one after the jump.

/// A register, `r0`..`r10` (`r10` is the read-only frame pointer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reg(pub u8);

/// `r0`: return value of calls and of the program.
pub const R0: Reg = Reg(0);
/// `r1`: first argument; the context pointer at entry.
pub const R1: Reg = Reg(1);
/// `r2`: second argument.
pub const R2: Reg = Reg(2);
/// `r3`: third argument.
pub const R3: Reg = Reg(3);
/// `r4`: fourth argument.
pub const R4: Reg = Reg(4);
/// `r5`: fifth argument.
pub const R5: Reg = Reg(5);
/// `r6`: callee-saved.
pub const R6: Reg = Reg(6);
/// `r7`: callee-saved.
pub const R7: Reg = Reg(7);
/// `r8`: callee-saved.
pub const R8: Reg = Reg(8);
/// `r9`: callee-saved.
pub const R9: Reg = Reg(9);
/// `r10`: the frame pointer (stack grows down from it, 512 bytes).
pub const FP: Reg = Reg(10);

// Classes.
const LD: u8 = 0x00;
const LDX: u8 = 0x01;
const ST: u8 = 0x02;
const STX: u8 = 0x03;
const ALU64: u8 = 0x07;
const JMP: u8 = 0x05;
// Sizes and modes.
const IMM: u8 = 0x00;
const MEM: u8 = 0x60;
const ATOMIC: u8 = 0xc0;
// Sources.
const K: u8 = 0x00;
const X: u8 = 0x08;

/// Access size of a load or store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// 1 byte (`BPF_B`).
    B,
    /// 2 bytes (`BPF_H`).
    H,
    /// 4 bytes (`BPF_W`).
    W,
    /// 8 bytes (`BPF_DW`).
    DW,
}

impl Size {
    const fn code(self) -> u8 {
        match self {
            Size::W => 0x00,
            Size::H => 0x08,
            Size::B => 0x10,
            Size::DW => 0x18,
        }
    }

    /// The size of `bytes` (1, 2, 4 or 8).
    pub fn of_bytes(bytes: u32) -> Option<Size> {
        match bytes {
            1 => Some(Size::B),
            2 => Some(Size::H),
            4 => Some(Size::W),
            8 => Some(Size::DW),
            _ => None,
        }
    }
}

/// 64-bit ALU operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alu {
    /// `+=`.
    Add = 0x00,
    /// `-=`.
    Sub = 0x10,
    /// `*=`.
    Mul = 0x20,
    /// `/=` (unsigned).
    Div = 0x30,
    /// `|=`.
    Or = 0x40,
    /// `&=`.
    And = 0x50,
    /// `<<=`.
    Lsh = 0x60,
    /// `>>=` (logical).
    Rsh = 0x70,
    /// `%=` (unsigned).
    Mod = 0x90,
    /// `^=`.
    Xor = 0xa0,
    /// `=`.
    Mov = 0xb0,
    /// `>>=` (arithmetic).
    Arsh = 0xc0,
}

/// Conditional jumps (64-bit compare).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    /// `==`.
    Eq = 0x10,
    /// `>` unsigned.
    Gt = 0x20,
    /// `>=` unsigned.
    Ge = 0x30,
    /// `!=`.
    Ne = 0x50,
    /// `>` signed.
    Sgt = 0x60,
    /// `<` unsigned.
    Lt = 0xa0,
}

/// One instruction slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u8,
    /// Destination register.
    pub dst: u8,
    /// Source register.
    pub src: u8,
    /// Offset.
    pub off: i16,
    /// Immediate.
    pub imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            dst: dst.0,
            src: src.0,
            off,
            imm,
        }
    }

    /// The 8 bytes the kernel reads.
    pub fn encode(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.dst & 0x0f) | (self.src << 4);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }

    /// `dst OP= imm` (64-bit).
    pub const fn alu_imm(op: Alu, dst: Reg, imm: i32) -> Insn {
        Insn::new(ALU64 | op as u8 | K, dst, Reg(0), 0, imm)
    }

    /// `dst OP= src` (64-bit).
    pub const fn alu_reg(op: Alu, dst: Reg, src: Reg) -> Insn {
        Insn::new(ALU64 | op as u8 | X, dst, src, 0, 0)
    }

    /// `dst = imm` (sign-extended 32-bit immediate).
    pub const fn mov_imm(dst: Reg, imm: i32) -> Insn {
        Insn::alu_imm(Alu::Mov, dst, imm)
    }

    /// `dst = src`.
    pub const fn mov_reg(dst: Reg, src: Reg) -> Insn {
        Insn::alu_reg(Alu::Mov, dst, src)
    }

    /// `dst = *(size *)(src + off)`.
    pub const fn load(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(LDX | size.code() | MEM, dst, src, off, 0)
    }

    /// `*(size *)(dst + off) = src`.
    pub const fn store_reg(size: Size, dst: Reg, off: i16, src: Reg) -> Insn {
        Insn::new(STX | size.code() | MEM, dst, src, off, 0)
    }

    /// `*(size *)(dst + off) = imm`.
    pub const fn store_imm(size: Size, dst: Reg, off: i16, imm: i32) -> Insn {
        Insn::new(ST | size.code() | MEM, dst, Reg(0), off, imm)
    }

    /// `lock *(u64 *)(dst + off) += src` (`BPF_ATOMIC` with `BPF_ADD`, the old `BPF_XADD`).
    pub const fn atomic_add64(dst: Reg, off: i16, src: Reg) -> Insn {
        Insn::new(STX | Size::DW.code() | ATOMIC, dst, src, off, 0)
    }

    /// `if dst COND imm goto +off`.
    pub const fn jmp_imm(cond: Cond, dst: Reg, imm: i32, off: i16) -> Insn {
        Insn::new(JMP | cond as u8 | K, dst, Reg(0), off, imm)
    }

    /// `if dst COND src goto +off`.
    pub const fn jmp_reg(cond: Cond, dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(JMP | cond as u8 | X, dst, src, off, 0)
    }

    /// `goto +off`.
    pub const fn ja(off: i16) -> Insn {
        Insn::new(JMP, Reg(0), Reg(0), off, 0)
    }

    /// `call helper`.
    pub const fn call(helper: i32) -> Insn {
        Insn::new(JMP | 0x80, Reg(0), Reg(0), 0, helper)
    }

    /// `exit`.
    pub const fn exit() -> Insn {
        Insn::new(JMP | 0x90, Reg(0), Reg(0), 0, 0)
    }

    /// `dst = imm64`: two slots.
    pub const fn ld_imm64(dst: Reg, imm: u64) -> [Insn; 2] {
        [
            Insn::new(
                LD | Size::DW.code() | IMM,
                dst,
                Reg(0),
                0,
                imm as u32 as i32,
            ),
            Insn::new(0, Reg(0), Reg(0), 0, (imm >> 32) as u32 as i32),
        ]
    }

    /// `dst = map` for the map behind `fd` (`BPF_PSEUDO_MAP_FD`): two slots.
    pub const fn ld_map_fd(dst: Reg, fd: i32) -> [Insn; 2] {
        [
            Insn::new(LD | Size::DW.code() | IMM, dst, Reg(PSEUDO_MAP_FD), 0, fd),
            Insn::new(0, Reg(0), Reg(0), 0, 0),
        ]
    }
}

/// `BPF_PSEUDO_MAP_FD`.
const PSEUDO_MAP_FD: u8 = 1;

/// Helper function numbers (`enum bpf_func_id`).
pub mod helper {
    /// `bpf_map_lookup_elem(map, key)`.
    pub const MAP_LOOKUP_ELEM: i32 = 1;
    /// `bpf_map_update_elem(map, key, value, flags)`.
    pub const MAP_UPDATE_ELEM: i32 = 2;
    /// `bpf_map_delete_elem(map, key)`.
    pub const MAP_DELETE_ELEM: i32 = 3;
    /// `bpf_ktime_get_ns()`.
    pub const KTIME_GET_NS: i32 = 5;
    /// `bpf_get_current_pid_tgid()`: tgid << 32 | pid.
    pub const GET_CURRENT_PID_TGID: i32 = 14;
    /// `bpf_get_current_comm(buf, size)`.
    pub const GET_CURRENT_COMM: i32 = 16;
    /// `bpf_probe_read_user(dst, size, src)` (5.5).
    pub const PROBE_READ_USER: i32 = 112;
    /// `bpf_probe_read_kernel(dst, size, src)` (5.5).
    pub const PROBE_READ_KERNEL: i32 = 113;
    /// `bpf_probe_read_user_str(dst, size, src)` (5.5).
    pub const PROBE_READ_USER_STR: i32 = 114;
    /// `bpf_probe_read_kernel_str(dst, size, src)` (5.5).
    pub const PROBE_READ_KERNEL_STR: i32 = 115;
}

/// Flattens a program into the bytes `BPF_PROG_LOAD` takes.
pub fn encode_all(prog: &[Insn]) -> Vec<u8> {
    prog.iter().flat_map(|i| i.encode()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodings as `llvm-objdump -d` and `bpftool prog dump xlated opcodes` show them.
    #[test]
    fn known_encodings() {
        // b7 00 00 00 00 00 00 00   r0 = 0
        assert_eq!(Insn::mov_imm(R0, 0).encode(), [0xb7, 0, 0, 0, 0, 0, 0, 0]);
        // bf 16 00 00 00 00 00 00   r6 = r1
        assert_eq!(
            Insn::mov_reg(R6, R1).encode(),
            [0xbf, 0x16, 0, 0, 0, 0, 0, 0]
        );
        // 79 61 08 00 00 00 00 00   r1 = *(u64 *)(r6 + 8)
        assert_eq!(
            Insn::load(Size::DW, R1, R6, 8).encode(),
            [0x79, 0x61, 8, 0, 0, 0, 0, 0]
        );
        // 61 12 10 00 00 00 00 00   r2 = *(u32 *)(r1 + 16)
        assert_eq!(
            Insn::load(Size::W, R2, R1, 16).encode(),
            [0x61, 0x12, 0x10, 0, 0, 0, 0, 0]
        );
        // 7b 1a f8 ff 00 00 00 00   *(u64 *)(r10 - 8) = r1
        assert_eq!(
            Insn::store_reg(Size::DW, FP, -8, R1).encode(),
            [0x7b, 0x1a, 0xf8, 0xff, 0, 0, 0, 0]
        );
        // 7a 0a f0 ff 01 00 00 00   *(u64 *)(r10 - 16) = 1
        assert_eq!(
            Insn::store_imm(Size::DW, FP, -16, 1).encode(),
            [0x7a, 0x0a, 0xf0, 0xff, 1, 0, 0, 0]
        );
        // 07 02 00 00 f8 ff ff ff   r2 += -8
        assert_eq!(
            Insn::alu_imm(Alu::Add, R2, -8).encode(),
            [0x07, 0x02, 0, 0, 0xf8, 0xff, 0xff, 0xff]
        );
        // 77 01 00 00 20 00 00 00   r1 >>= 32
        assert_eq!(
            Insn::alu_imm(Alu::Rsh, R1, 32).encode(),
            [0x77, 0x01, 0, 0, 0x20, 0, 0, 0]
        );
        // 15 00 02 00 00 00 00 00   if r0 == 0 goto +2
        assert_eq!(
            Insn::jmp_imm(Cond::Eq, R0, 0, 2).encode(),
            [0x15, 0, 2, 0, 0, 0, 0, 0]
        );
        // 2d 17 01 00 00 00 00 00   if r7 > r1 goto +1
        assert_eq!(
            Insn::jmp_reg(Cond::Gt, R7, R1, 1).encode(),
            [0x2d, 0x17, 1, 0, 0, 0, 0, 0]
        );
        // db 10 00 00 00 00 00 00   lock *(u64 *)(r0 + 0) += r1
        assert_eq!(
            Insn::atomic_add64(R0, 0, R1).encode(),
            [0xdb, 0x10, 0, 0, 0, 0, 0, 0]
        );
        // 85 00 00 00 01 00 00 00   call 1
        assert_eq!(Insn::call(1).encode(), [0x85, 0, 0, 0, 1, 0, 0, 0]);
        // 95 00 00 00 00 00 00 00   exit
        assert_eq!(Insn::exit().encode(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
        // 18 11 00 00 05 00 00 00 00 00 00 00 00 00 00 00   r1 = map[fd 5]
        let [a, b] = Insn::ld_map_fd(R1, 5);
        assert_eq!(a.encode(), [0x18, 0x11, 0, 0, 5, 0, 0, 0]);
        assert_eq!(b.encode(), [0; 8]);
        // 18 01 00 00 ff ff ff ff 00 00 00 00 00 00 00 00   r1 = 0xffffffff ll
        let [a, b] = Insn::ld_imm64(R1, 0xffff_ffff);
        assert_eq!(a.encode(), [0x18, 0x01, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(b.encode(), [0; 8]);
    }

    #[test]
    fn sizes() {
        assert_eq!(Size::of_bytes(4), Some(Size::W));
        assert_eq!(Size::of_bytes(3), None);
        assert_eq!(Size::DW.code(), 0x18);
    }
}

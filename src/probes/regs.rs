//! x86_64 register names as tracefs spells them, and the SysV calling convention.
//!
//! tracefs accepts the names `regs_query_register_offset()` knows (arch/x86/kernel/ptrace.c):
//! `ax bx cx dx si di bp sp r8..r15 ip flags cs ss orig_ax`, never the `%rdi` spelling. The
//! DWARF register numbers map as in perf's `dwarf-regs-table.h` (0 %ax, 1 %dx, 2 %cx, 3 %bx,
//! 4 %si, 5 %di, 6 %bp, 7 %sp, 8–15 %r8–%r15).

/// Register names tracefs accepts on x86_64, in `pt_regs` order.
pub const REGISTERS: &[&str] = &[
    "r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx", "si", "di",
    "orig_ax", "ip", "cs", "flags", "sp", "ss",
];

/// Integer/pointer argument registers of the SysV x86_64 ABI, in order (`arg1` = `di`).
pub const SYSV_ARGS: [&str; 6] = ["di", "si", "dx", "cx", "r8", "r9"];

/// Byte offset of each register inside `struct pt_regs`, as a syscall wrapper
/// (`__x64_sys_*(const struct pt_regs *regs)`) sees it.
pub fn pt_regs_offset(name: &str) -> Option<u32> {
    REGISTERS
        .iter()
        .position(|r| *r == name)
        .map(|i| i as u32 * 8)
}

/// Whether tracefs knows this register name (without the `%`).
pub fn is_register(name: &str) -> bool {
    REGISTERS.contains(&name)
}

/// The tracefs name for a register written the assembler way (`rdi`, `edi`, `r12d`, `al`),
/// used to suggest a fix and to convert USDT operands.
pub fn canonical_register(name: &str) -> Option<&'static str> {
    let n = name.trim_start_matches('%');
    if let Some(r) = REGISTERS.iter().find(|r| **r == n) {
        return Some(r);
    }
    let table: &[(&[&str], &str)] = &[
        (&["rax", "eax", "ax", "al", "ah"], "ax"),
        (&["rbx", "ebx", "bx", "bl", "bh"], "bx"),
        (&["rcx", "ecx", "cx", "cl", "ch"], "cx"),
        (&["rdx", "edx", "dx", "dl", "dh"], "dx"),
        (&["rsi", "esi", "si", "sil"], "si"),
        (&["rdi", "edi", "di", "dil"], "di"),
        (&["rbp", "ebp", "bp", "bpl"], "bp"),
        (&["rsp", "esp", "sp", "spl"], "sp"),
        (&["rip", "eip", "ip"], "ip"),
        (&["rflags", "eflags"], "flags"),
    ];
    for (aliases, canon) in table {
        if aliases.contains(&n) {
            return Some(canon);
        }
    }
    // r8..r15 with d/w/b suffixes
    let base = n.trim_end_matches(['d', 'w', 'b']);
    if let Some(num) = base.strip_prefix('r') {
        if let Ok(k) = num.parse::<u8>() {
            if (8..=15).contains(&k) {
                return REGISTERS.iter().copied().find(|r| *r == base);
            }
        }
    }
    None
}

/// tracefs name for a DWARF x86_64 register number, or `None` for numbers tracefs cannot fetch
/// (the return address column and the SSE registers).
pub fn dwarf_register(regno: u16) -> Option<&'static str> {
    const NAMES: [&str; 16] = [
        "ax", "dx", "cx", "bx", "si", "di", "bp", "sp", "r8", "r9", "r10", "r11", "r12", "r13",
        "r14", "r15",
    ];
    NAMES.get(regno as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pt_regs_offsets_match_the_kernel_layout() {
        assert_eq!(pt_regs_offset("r15"), Some(0));
        assert_eq!(pt_regs_offset("si"), Some(104));
        assert_eq!(pt_regs_offset("di"), Some(112));
        assert_eq!(pt_regs_offset("r10"), Some(56));
        assert_eq!(pt_regs_offset("ss"), Some(160));
        assert_eq!(pt_regs_offset("rdi"), None);
    }

    #[test]
    fn assembler_names_map_to_tracefs_names() {
        assert_eq!(canonical_register("%rdi"), Some("di"));
        assert_eq!(canonical_register("eax"), Some("ax"));
        assert_eq!(canonical_register("r12d"), Some("r12"));
        assert_eq!(canonical_register("r9"), Some("r9"));
        assert_eq!(canonical_register("r16"), None);
        assert_eq!(canonical_register("xmm0"), None);
    }

    #[test]
    fn dwarf_numbers() {
        assert_eq!(dwarf_register(5), Some("di"));
        assert_eq!(dwarf_register(15), Some("r15"));
        assert_eq!(dwarf_register(16), None);
    }
}

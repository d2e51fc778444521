//! USDT (SystemTap SDT) probes: the `.note.stapsdt` notes of an ELF file, where each probe
//! sits as a uprobe file offset, its semaphore, and its argument specs as fetch args.
//!
//! Format (systemtap's `sys/sdt.h`, "UserSpaceProbeImplementation" on the systemtap wiki):
//! each note has owner `stapsdt`, type 3 (`NT_STAPSDT`) and a descriptor of three addresses
//! (8 bytes each on ELF64, 4 on ELF32) — the probe's `pc`, the link-time address of the
//! `.stapsdt.base` section (`base`) and the semaphore's address (0 for none) — followed by
//! three NUL-terminated strings: provider, name and arguments.
//!
//! ```text
//! 08000000 3b000000 03000000 "stapsdt\0" | pc 0xa7f05 | base 0x1c5973 | sem 0 |
//! "libstdcxx\0catch\08@%rdx 8@-80(%rbx)\0"
//! ```
//!
//! - The probe's address is `pc - base + sh_addr(.stapsdt.base)`: a prelinked file moves the
//!   section and the note keeps the old `base`, so the difference re-bases `pc`. The uprobe
//!   offset is that address as a file offset (through the `PT_LOAD` that holds it).
//! - The semaphore is a `u16` in `.probes`; its file offset is
//!   `sem - (sh_addr(.probes) - sh_offset(.probes))`, written as `PATH:OFF(SEMOFF)` so the
//!   kernel counts it up in every process that maps the file while the probe is enabled
//!   (`ref_ctr_offset`, 4.20+). Without that the program never takes the probe's path.
//! - Arguments are `[-]SIZE@OPERAND`, SIZE 1/2/4/8 and `-` for signed, OPERAND a GNU as
//!   operand. perf converts only `%reg` and `±N(%reg)`; rprobe also converts `$imm` to `\IMM`
//!   and `sym(%rip)` to a `@+OFF` load. Indexed operands (`N(%base,%index,scale)`) have no
//!   fetch-arg form: such an argument is reported, not guessed.
//! - `@+OFF` is not a plain file offset, whatever `uprobetracer.rst` says: the kernel
//!   (`translate_user_vaddr`) adds OFF to *the probe's* mapping base, `bp_addr - offset`. For a
//!   symbol in another segment whose `p_vaddr - p_offset` differs from the probe's (a PIE's
//!   `.data` at vaddr 0x4020, file offset 0x3020, code at vaddr = offset), OFF must be
//!   `st_value - (p_vaddr - p_offset)` of the *probe's* segment: 0x4020, not 0x3020, which
//!   reads the wrong page (measured on 6.18). [`SdtNote::bias`] is that difference.

use super::fetch::{FetchArg, FetchType, Num};
use super::regs::canonical_register;
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};

/// Errors reading SDT notes.
#[derive(Debug, thiserror::Error)]
pub enum UsdtError {
    /// The bytes are not an ELF file.
    #[error("not a readable ELF file: {0}")]
    Parse(String),
    /// A note runs past the end of its section.
    #[error(".note.stapsdt: note at offset {offset:#x} is cut short")]
    Truncated {
        /// Offset of the note inside the section.
        offset: usize,
    },
}

/// One SDT probe from `.note.stapsdt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdtNote {
    /// Provider (`libstdcxx`, `python`).
    pub provider: String,
    /// Probe name (`catch`, `function__entry`).
    pub name: String,
    /// The note's `pc` as stored (what `readelf -n` shows as Location).
    pub pc: u64,
    /// The note's `base` as stored.
    pub base: u64,
    /// The note's semaphore address as stored (0: none).
    pub semaphore: u64,
    /// The argument string as stored, e.g. `8@%rdx 8@-80(%rbx)`.
    pub args: String,
    /// The uprobe file offset of the probe, when a `PT_LOAD` holds its address.
    pub file_offset: Option<u64>,
    /// The semaphore's file offset, when there is one and `.probes` holds it.
    pub semaphore_offset: Option<u64>,
    /// `p_vaddr - p_offset` of the segment holding the probe: a link-time address minus the
    /// bias is what `@+OFF` needs (module docs).
    pub bias: u64,
}

/// One converted argument: the fetch arg and its type, or why it cannot be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdtArg {
    /// A fetch arg with its type.
    Fetch(FetchArg, FetchType),
    /// The operand has no fetch-arg form (the original text and the reason).
    Unsupported {
        /// The argument as written in the note.
        text: String,
        /// Why it cannot be converted.
        reason: &'static str,
    },
}

/// Every SDT note of an ELF image, in file order. A file without `.note.stapsdt` has none.
pub fn parse_notes(data: &[u8]) -> Result<Vec<SdtNote>, UsdtError> {
    let file = object::File::parse(data).map_err(|e| UsdtError::Parse(e.to_string()))?;
    let Some(section) = file.section_by_name(".note.stapsdt") else {
        return Ok(Vec::new());
    };
    let bytes = section
        .data()
        .map_err(|e| UsdtError::Parse(e.to_string()))?;
    let addr_size = if file.is_64() { 8 } else { 4 };
    let little = file.is_little_endian();
    let stapsdt_base = file.section_by_name(".stapsdt.base").map(|s| s.address());
    let probes = file
        .section_by_name(".probes")
        .and_then(|s| s.file_range().map(|(off, _)| (s.address(), off)));
    let loads: Vec<(u64, u64, u64)> = file
        .segments()
        .map(|seg| {
            let (off, size) = seg.file_range();
            (seg.address(), off, size)
        })
        .collect();
    let segment = |addr: u64| {
        loads
            .iter()
            .find(|(va, _, sz)| addr >= *va && addr - *va < *sz)
            .copied()
    };

    let mut notes = Vec::new();
    let mut pos = 0usize;
    while pos + 12 <= bytes.len() {
        let truncated = UsdtError::Truncated { offset: pos };
        let word = |at: usize| read_uint(bytes, at, 4, little);
        let (Some(namesz), Some(descsz), Some(kind)) = (word(pos), word(pos + 4), word(pos + 8))
        else {
            return Err(truncated);
        };
        let name_at = pos + 12;
        let desc_at = name_at
            .checked_add(align4(namesz as usize))
            .ok_or(UsdtError::Truncated { offset: pos })?;
        let next = desc_at
            .checked_add(align4(descsz as usize))
            .ok_or(UsdtError::Truncated { offset: pos })?;
        let (Some(owner), Some(desc)) = (
            bytes.get(name_at..name_at + namesz as usize),
            bytes.get(desc_at..desc_at + descsz as usize),
        ) else {
            return Err(truncated);
        };
        pos = next;
        if kind != 3 || owner != b"stapsdt\0" {
            continue;
        }
        let addr = |i: usize| read_uint(desc, i * addr_size, addr_size, little);
        let (Some(pc), Some(base), Some(semaphore)) = (addr(0), addr(1), addr(2)) else {
            return Err(UsdtError::Truncated { offset: desc_at });
        };
        let mut strings = desc
            .get(3 * addr_size..)
            .unwrap_or_default()
            .split(|b| *b == 0)
            .map(|s| String::from_utf8_lossy(s).into_owned());
        let provider = strings.next().unwrap_or_default();
        let name = strings.next().unwrap_or_default();
        let args = strings.next().unwrap_or_default();
        let probe_addr = match stapsdt_base {
            Some(sh_addr) if base != 0 => pc.wrapping_sub(base).wrapping_add(sh_addr),
            _ => pc,
        };
        let semaphore_offset = match probes {
            Some((sh_addr, sh_offset)) if semaphore != 0 => {
                Some(semaphore.wrapping_sub(sh_addr.wrapping_sub(sh_offset)))
            }
            _ => None,
        };
        let seg = segment(probe_addr);
        notes.push(SdtNote {
            provider,
            name,
            pc,
            base,
            semaphore,
            args,
            file_offset: seg.map(|(va, off, _)| probe_addr - va + off),
            semaphore_offset,
            bias: seg.map_or(0, |(va, off, _)| va.wrapping_sub(off)),
        });
    }
    Ok(notes)
}

fn align4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

fn read_uint(b: &[u8], at: usize, size: usize, little: bool) -> Option<u64> {
    let s = b.get(at..at.checked_add(size)?)?;
    let mut v = 0u64;
    for (i, byte) in s.iter().enumerate() {
        let shift = if little { i * 8 } else { (size - 1 - i) * 8 };
        v |= u64::from(*byte) << shift;
    }
    Some(v)
}

/// Symbol addresses for `sym(%rip)` operands: a name to its link-time address.
pub trait SymbolAddrs {
    /// The address of `name`, if the file defines it.
    fn addr_of(&self, name: &str) -> Option<u64>;
}

/// The symbols of one ELF image, for [`convert_args`].
#[derive(Debug, Default)]
pub struct ElfAddrs {
    symbols: std::collections::HashMap<String, u64>,
}

impl ElfAddrs {
    /// Data and function symbols (`.symtab` and `.dynsym`) and `PT_LOAD` segments of `data`.
    pub fn parse(data: &[u8]) -> Result<ElfAddrs, UsdtError> {
        let file = object::File::parse(data).map_err(|e| UsdtError::Parse(e.to_string()))?;
        let mut symbols = std::collections::HashMap::new();
        for sym in file.symbols().chain(file.dynamic_symbols()) {
            if let Ok(name) = sym.name() {
                if sym.is_definition() && !name.is_empty() {
                    symbols.entry(name.to_owned()).or_insert(sym.address());
                }
            }
        }
        Ok(ElfAddrs { symbols })
    }
}

impl SymbolAddrs for ElfAddrs {
    fn addr_of(&self, name: &str) -> Option<u64> {
        self.symbols.get(name).copied()
    }
}

/// Converts a note's argument string (`8@%rdx -4@-4348(%rbp) 8@foo(%rip) -4@$5`) to fetch
/// args, one per argument, in order. A bare `N(%rip)` is relative to the end of an
/// instruction the note does not describe, so it is reported, not guessed. `bias` is the
/// note's [`SdtNote::bias`].
pub fn convert_args(args: &str, syms: &dyn SymbolAddrs, bias: u64) -> Vec<SdtArg> {
    args.split_whitespace()
        .map(|text| convert_arg(text, syms, bias))
        .collect()
}

fn convert_arg(text: &str, syms: &dyn SymbolAddrs, bias: u64) -> SdtArg {
    let unsupported = |reason| SdtArg::Unsupported {
        text: text.to_owned(),
        reason,
    };
    let Some((size, operand)) = text.split_once('@') else {
        // Old notes without a size: a bare operand, 8 bytes unsigned.
        return convert_operand(text, FetchType::U(64), syms, bias).unwrap_or_else(unsupported);
    };
    let (signed, digits) = match size.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, size),
    };
    let bits = match digits {
        "1" => 8,
        "2" => 16,
        "4" => 32,
        "8" => 64,
        _ => return unsupported("the size is not 1, 2, 4 or 8"),
    };
    let ty = if signed {
        FetchType::S(bits)
    } else {
        FetchType::U(bits)
    };
    convert_operand(operand, ty, syms, bias).unwrap_or_else(unsupported)
}

fn convert_operand(
    operand: &str,
    ty: FetchType,
    syms: &dyn SymbolAddrs,
    bias: u64,
) -> Result<SdtArg, &'static str> {
    if let Some(imm) = operand.strip_prefix('$') {
        let value = parse_int(imm).ok_or("the immediate is not a number")?;
        return Ok(SdtArg::Fetch(FetchArg::Imm(Num::dec(value)), ty));
    }
    if let Some(reg) = operand.strip_prefix('%') {
        let reg = canonical_register(reg).ok_or("not a register tracefs can fetch")?;
        return Ok(SdtArg::Fetch(FetchArg::Reg(reg), ty));
    }
    let open = operand.find('(').ok_or("not a GNU as operand")?;
    let inner = operand
        .get(open + 1..)
        .and_then(|s| s.strip_suffix(')'))
        .ok_or("unbalanced parentheses")?;
    if inner.contains(',') {
        return Err("indexed operands (base, index, scale) have no fetch-arg form");
    }
    let disp = operand.get(..open).unwrap_or_default();
    let reg = inner
        .strip_prefix('%')
        .ok_or("the base is not a register")?;
    if reg == "rip" || reg == "eip" {
        // sym(%rip) or sym+N(%rip): the symbol's address, relative to the probe's mapping.
        let (name, extra) = match disp.rsplit_once(['+', '-']) {
            Some((n, off)) if !n.is_empty() && parse_int(off).is_some() => {
                let off = parse_int(off).unwrap_or(0);
                let neg = disp.as_bytes().get(n.len()) == Some(&b'-');
                (n, if neg { -off } else { off })
            }
            _ => (disp, 0),
        };
        if name.is_empty() || parse_int(name).is_some() {
            return Err("a %rip-relative number depends on the instruction's length");
        }
        let addr = syms
            .addr_of(name)
            .ok_or("the %rip-relative symbol is not in the file's symbol tables")?;
        let off = addr.wrapping_add_signed(extra).wrapping_sub(bias);
        return Ok(SdtArg::Fetch(
            FetchArg::FileOffset(Num {
                value: off as i64,
                hex: true,
            }),
            ty,
        ));
    }
    let reg = canonical_register(reg).ok_or("not a register tracefs can fetch")?;
    let offset = if disp.is_empty() {
        0
    } else {
        parse_int(disp).ok_or("the displacement is not a number")?
    };
    Ok(SdtArg::Fetch(
        FetchArg::Deref {
            offset: Num::dec(offset),
            user: false,
            inner: Box::new(FetchArg::Reg(reg)),
        },
        ty,
    ))
}

fn parse_int(text: &str) -> Option<i64> {
    let (neg, t) = match text.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let v = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => i64::from_str_radix(hex, 16).ok()?,
        None => t.parse::<i64>().ok()?,
    };
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    struct NoSyms;
    impl SymbolAddrs for NoSyms {
        fn addr_of(&self, name: &str) -> Option<u64> {
            (name == "counter").then_some(0x4010)
        }
    }

    fn fetch(text: &str) -> String {
        match convert_arg(text, &NoSyms, 0x1000) {
            SdtArg::Fetch(arg, ty) => format!("{arg}:{ty}"),
            SdtArg::Unsupported { reason, .. } => format!("unsupported: {reason}"),
        }
    }

    #[test]
    fn operands_as_perf_converts_them_and_more() {
        // Real argument strings from libstdc++ and python3.11 notes.
        assert_eq!(fetch("8@%rdx"), "%dx:u64");
        assert_eq!(fetch("8@-80(%rbx)"), "-80(%bx):u64");
        assert_eq!(fetch("-4@%eax"), "%ax:s32");
        assert_eq!(fetch("-4@-4348(%rbp)"), "-4348(%bp):s32");
        assert_eq!(fetch("8@%r12"), "%r12:u64");
        assert_eq!(fetch("-4@%r13d"), "%r13:s32");
        assert_eq!(fetch("1@%al"), "%ax:u8");
        assert_eq!(fetch("8@(%rsp)"), "+0(%sp):u64");
        assert_eq!(fetch("-4@$5"), "\\5:s32");
        assert_eq!(fetch("8@counter(%rip)"), "@+0x3010:u64");
        assert_eq!(fetch("8@counter+8(%rip)"), "@+0x3018:u64");
    }

    #[test]
    fn operands_without_a_fetch_arg_form_are_reported() {
        assert!(fetch("8@8(%rax,%rbx,8)").starts_with("unsupported: indexed"));
        assert!(fetch("8@16(%rip)").starts_with("unsupported: a %rip-relative number"));
        assert!(fetch("8@nosuch(%rip)").starts_with("unsupported: the %rip-relative symbol"));
        assert!(fetch("3@%rax").starts_with("unsupported: the size"));
        assert!(fetch("8@%xmm0").starts_with("unsupported: not a register"));
        assert!(fetch("8@4(%rax").starts_with("unsupported: unbalanced"));
    }

    /// An ELF64 note section holding the libstdc++ `catch` note, as `readelf -x` shows it.
    fn catch_note() -> Vec<u8> {
        let mut n = Vec::new();
        n.extend_from_slice(&8u32.to_le_bytes());
        n.extend_from_slice(&0x3bu32.to_le_bytes());
        n.extend_from_slice(&3u32.to_le_bytes());
        n.extend_from_slice(b"stapsdt\0");
        n.extend_from_slice(&0xa7f05u64.to_le_bytes());
        n.extend_from_slice(&0x1c5973u64.to_le_bytes());
        n.extend_from_slice(&0u64.to_le_bytes());
        n.extend_from_slice(b"libstdcxx\0catch\08@%rdx 8@-80(%rbx)\0");
        while n.len() % 4 != 0 {
            n.push(0);
        }
        n
    }

    #[test]
    fn note_bytes_read_back() {
        let n = catch_note();
        assert_eq!(n.len(), 12 + 8 + 0x3c);
        assert_eq!(read_uint(&n, 20, 8, true), Some(0xa7f05));
        assert_eq!(read_uint(&[1, 2], 0, 2, false), Some(0x0102));
        assert_eq!(read_uint(&[1, 2], 1, 2, true), None);
    }

    #[test]
    fn non_elf_input_is_an_error() {
        assert!(matches!(
            parse_notes(b"not an elf"),
            Err(UsdtError::Parse(_))
        ));
    }

    proptest! {
        #[test]
        fn never_panics_on_arg_text(text in "[-0-9@%a-z(),$+x ]{0,40}") {
            let _ = convert_args(&text, &NoSyms, 0);
        }

        #[test]
        fn never_panics_on_mutated_notes(
            flips in proptest::collection::vec((0usize..4096, any::<u8>()), 0..16),
            cut in 0usize..8192,
        ) {
            // libstdc++ carries real notes; mutate its note section and cut the file short.
            let Ok(mut data) = std::fs::read("/usr/lib/x86_64-linux-gnu/libstdc++.so.6") else {
                return Ok(());
            };
            let at = {
                let file = object::File::parse(&*data).expect("libstdc++ parses");
                file.section_by_name(".note.stapsdt")
                    .and_then(|s| s.file_range())
                    .map_or(0, |(off, _)| off as usize)
            };
            for (i, b) in flips {
                if let Some(slot) = data.get_mut(at + i) { *slot = b; }
            }
            let _ = parse_notes(&data);
            data.truncate(data.len().saturating_sub(cut));
            let _ = parse_notes(&data);
        }
    }
}

//! `/proc/kallsyms`: the running kernel's symbols.
//!
//! ```text
//! ffffffff81200c50 T vfs_read
//! ffffffffc0a01000 t nf_tables_init    [nf_tables]
//! ```
//! Address (all zeros when `kptr_restrict` hides it), type letter (`t`/`T` text, `w`/`W`
//! weak), name, and `[module]` for module symbols.

/// One kernel symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSymbol {
    /// Address (0 when hidden by `kptr_restrict`).
    pub addr: u64,
    /// Type letter from `nm` (`T`, `t`, `D`, …).
    pub kind: char,
    /// Name.
    pub name: String,
    /// Module, for module symbols.
    pub module: Option<String>,
}

impl KernelSymbol {
    /// A function (text) symbol.
    pub fn is_text(&self) -> bool {
        matches!(self.kind, 't' | 'T' | 'w' | 'W')
    }
}

// ffffffffc0a01000 t nf_tables_init    [nf_tables]
/// Parse one line; `None` for lines that are not symbols.
pub fn parse_line(line: &str) -> Option<KernelSymbol> {
    let mut it = line.split_ascii_whitespace();
    let addr = u64::from_str_radix(it.next()?, 16).ok()?;
    let kind = it.next()?.chars().next()?;
    let name = it.next()?.to_string();
    let module = it
        .next()
        .and_then(|m| m.strip_prefix('[')?.strip_suffix(']'))
        .map(str::to_string);
    Some(KernelSymbol {
        addr,
        kind,
        name,
        module,
    })
}

/// Parse the whole file, skipping lines that do not parse.
pub fn parse(text: &str) -> Vec<KernelSymbol> {
    text.lines().filter_map(parse_line).collect()
}

/// Address of `_text`, the base perf uses for `_text+OFF` probe places.
pub fn text_base(syms: &[KernelSymbol]) -> Option<u64> {
    syms.iter()
        .find(|s| s.name == "_text" && s.module.is_none())
        .map(|s| s.addr)
}

// 0xffffffff81001000-0xffffffff81001010	kprobe_int3_handler
/// Function names on the kprobe blacklist (`/sys/kernel/debug/kprobes/blacklist`): an address
/// range and a name per line. Kprobes refuse these with only "Failed to register probe event".
pub fn parse_kprobe_blacklist(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_ascii_whitespace();
            let range = it.next()?;
            range.starts_with("0x").then_some(())?;
            Some(it.next()?.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let t = "ffffffff81000000 T _text\nffffffff81200c50 T vfs_read\n\
                 ffffffffc0a01000 t nf_tables_init\t[nf_tables]\n0000000000000000 D x\nbad\n";
        let s = parse(t);
        assert_eq!(s.len(), 4);
        assert_eq!(s[1].name, "vfs_read");
        assert!(s[1].is_text());
        assert_eq!(s[2].module.as_deref(), Some("nf_tables"));
        assert!(!s[3].is_text());
        assert_eq!(text_base(&s), Some(0xffffffff81000000));
        assert_eq!(parse_line("zz T x"), None);
        assert_eq!(parse_line("ffff"), None);
        assert_eq!(parse_line("ffff T"), None);
    }

    #[test]
    fn blacklist() {
        let t = "0xffffffff81001000-0xffffffff81001010\tkprobe_int3_handler\n\
                 0xffffffff81002000-0xffffffff81002040\tdo_int3 [x]\nbad\n0x1\n";
        assert_eq!(
            parse_kprobe_blacklist(t),
            vec!["kprobe_int3_handler", "do_int3"]
        );
    }
}

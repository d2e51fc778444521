//! Function symbols of an ELF file and the file offset a uprobe needs for each.
//!
//! A uprobe is placed at a **file offset**, not a virtual address: the offset is
//! `st_value - p_vaddr + p_offset` of the `PT_LOAD` segment that holds the symbol (see
//! `Documentation/trace/uprobetracer.rst`). That is the same computation for PIE executables,
//! non-PIE executables and shared libraries; only the numbers differ.
//!
//! Symbols come from `.symtab` when present and `.dynsym` always (a stripped binary keeps only
//! `.dynsym`). `STT_FUNC` and `STT_GNU_IFUNC` count as functions (libc's `strlen` is an IFUNC:
//! probing it probes the resolver, as perf does). Version suffixes such as `@@GLIBC_2.2.5` are
//! not part of the names `object` returns, so `malloc` matches libc's versioned `malloc`.

use object::{Object, ObjectSegment, ObjectSymbol, SymbolKind};

/// Errors reading an ELF file's symbols.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// The bytes are not an ELF file `object` can read.
    #[error("not a readable ELF file: {0}")]
    Parse(String),
}

/// A function symbol with the file offset of its first byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuncSymbol {
    /// Symbol name as stored (mangled for C++/Rust).
    pub name: String,
    /// Link-time virtual address (`st_value`).
    pub addr: u64,
    /// Size in bytes (`st_size`, 0 when unknown).
    pub size: u64,
    /// File offset of `addr`, when a `PT_LOAD` segment holds it.
    pub file_offset: Option<u64>,
    /// Found in `.dynsym` (exported) rather than only `.symtab`.
    pub dynamic: bool,
    /// Global or weak binding.
    pub global: bool,
    /// A non-default symbol version (`name@VER`, not `name@@VER`).
    pub hidden_version: bool,
}

/// The function symbols of one file.
#[derive(Debug, Clone, Default)]
pub struct SymbolTable {
    /// Functions sorted by address, then name; one entry per (name, address).
    pub funcs: Vec<FuncSymbol>,
    /// Whether the file has a `.symtab` (false for stripped binaries).
    pub has_symtab: bool,
    /// Whether the file is an executable without PIE (`ET_EXEC`).
    pub is_exec: bool,
    /// Build id from `.note.gnu.build-id`.
    pub build_id: Option<Vec<u8>>,
    /// `PT_LOAD` segments as (vaddr, file offset, file size).
    pub loads: Vec<(u64, u64, u64)>,
}

impl SymbolTable {
    /// Functions named exactly `name`.
    pub fn find_by_name<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a FuncSymbol> + 'a {
        self.funcs.iter().filter(move |f| f.name == name)
    }

    /// The file offset of a link-time address, when a `PT_LOAD` segment holds it.
    pub fn file_offset(&self, addr: u64) -> Option<u64> {
        self.loads
            .iter()
            .find(|(va, _, sz)| addr >= *va && addr - *va < *sz)
            .map(|(va, off, _)| addr - va + off)
    }

    /// What a uprobe's `@+OFF` fetch needs to read link-time address `addr` from a probe at
    /// link-time address `probe`: the kernel adds OFF to the probe mapping's base,
    /// `bp_addr - probe_file_offset` (`translate_user_vaddr`), so OFF is `addr` minus the
    /// probe segment's `p_vaddr - p_offset` — not `addr`'s own file offset, which differs
    /// whenever its segment is laid out with another delta (a PIE's `.data`). `None` when
    /// either address is outside the loaded segments.
    pub fn mapping_offset(&self, addr: u64, probe: u64) -> Option<u64> {
        self.file_offset(addr)?;
        let (va, off, _) = self
            .loads
            .iter()
            .find(|(va, _, sz)| probe >= *va && probe - *va < *sz)?;
        Some(addr.wrapping_sub(va.wrapping_sub(*off)))
    }

    /// Unique function names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.funcs.iter().map(|f| f.name.as_str()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Read the function symbols of an ELF image.
pub fn parse_functions(data: &[u8]) -> Result<SymbolTable, ElfError> {
    let file = object::read::elf::ElfFile64::<object::Endianness>::parse(data)
        .map_err(|e| ElfError::Parse(e.to_string()))?;
    // `.gnu.version`: a dynamic symbol whose version is hidden (`memcpy@GLIBC_2.2.5`, not
    // the default `memcpy@@GLIBC_2.14`) is an old ABI kept for old binaries. perf, reading
    // debuginfo, probes the default one; so does rprobe.
    let versions = file
        .elf_section_table()
        .versions(file.endian(), file.data())
        .ok()
        .flatten();
    let loads: Vec<(u64, u64, u64)> = file
        .segments()
        .filter_map(|s| {
            let (off, filesz) = s.file_range();
            Some((s.address(), off, filesz)).filter(|_| filesz > 0)
        })
        .collect();
    let to_offset = |addr: u64| {
        loads
            .iter()
            .find(|(va, _, sz)| addr >= *va && addr - *va < *sz)
            .map(|(va, off, _)| addr - va + off)
    };
    let mut funcs: Vec<FuncSymbol> = Vec::new();
    let mut has_symtab = false;
    for (syms, dynamic) in [(file.symbols(), false), (file.dynamic_symbols(), true)] {
        for s in syms {
            if !dynamic {
                has_symtab = true;
            }
            // Not `is_definition()`: object leaves STT_GNU_IFUNC out of it.
            if s.kind() != SymbolKind::Text || s.is_undefined() || s.address() == 0 {
                continue;
            }
            let Ok(name) = s.name() else { continue };
            if name.is_empty() {
                continue;
            }
            let hidden = dynamic
                && versions
                    .as_ref()
                    .is_some_and(|v| v.version_index(file.endian(), s.index()).is_hidden());
            // In .symtab, versioned names keep their suffix: `memcpy@GLIBC_2.2.5` is
            // hidden, `memcpy@@GLIBC_2.14` is the default.
            let (name, hidden) = match name.split_once('@') {
                Some((base, rest)) if !base.is_empty() => (base, hidden || !rest.starts_with('@')),
                _ => (name, hidden),
            };
            funcs.push(FuncSymbol {
                name: name.to_string(),
                addr: s.address(),
                size: s.size(),
                file_offset: to_offset(s.address()),
                dynamic,
                global: s.is_global() || s.is_weak(),
                hidden_version: hidden,
            });
        }
    }
    funcs.sort_by(|a, b| (a.addr, &a.name, !a.dynamic).cmp(&(b.addr, &b.name, !b.dynamic)));
    // One entry per (name, address): keep the .dynsym one, merging the size.
    let mut out: Vec<FuncSymbol> = Vec::with_capacity(funcs.len());
    for f in funcs {
        match out.last_mut() {
            Some(last) if last.addr == f.addr && last.name == f.name => {
                last.dynamic |= f.dynamic;
                last.size = last.size.max(f.size);
                last.global |= f.global;
            }
            _ => out.push(f),
        }
    }
    // Old versions of a name give way to its default version.
    let defaults: std::collections::HashSet<String> = out
        .iter()
        .filter(|f| !f.hidden_version)
        .map(|f| f.name.clone())
        .collect();
    out.retain(|f| !f.hidden_version || !defaults.contains(&f.name));
    let is_exec = matches!(file.kind(), object::ObjectKind::Executable);
    let build_id = file.build_id().ok().flatten().map(<[u8]>::to_vec);
    Ok(SymbolTable {
        funcs: out,
        has_symtab,
        is_exec,
        build_id,
        loads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_offsets_are_relative_to_the_probe_segment() {
        // A PIE's text at vaddr = offset and .data at vaddr 0x3d90 from offset 0x2d90
        // (readelf -l of a gcc 12 -O2 binary).
        let t = SymbolTable {
            loads: vec![(0x1000, 0x1000, 0x21d), (0x3d90, 0x2d90, 0x29c)],
            ..SymbolTable::default()
        };
        assert_eq!(t.file_offset(0x4020), Some(0x3020));
        assert_eq!(t.mapping_offset(0x4020, 0x1200), Some(0x4020));
        assert_eq!(t.mapping_offset(0x9000, 0x1200), None);
        assert_eq!(t.mapping_offset(0x4020, 0x9000), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_functions(b"").is_err());
        assert!(parse_functions(b"\x7fELF\x02\x01\x01").is_err());
        assert!(parse_functions(&[0u8; 64]).is_err());
    }

    #[test]
    fn own_test_binary_has_functions_with_offsets() {
        let exe = std::env::current_exe().unwrap();
        let data = std::fs::read(exe).unwrap();
        let t = parse_functions(&data).unwrap();
        assert!(t.has_symtab);
        assert!(t.funcs.iter().all(|f| !f.name.contains('@')));
        let main = t
            .find_by_name("main")
            .next()
            .expect("main in the test binary");
        let off = main.file_offset.expect("main is in a PT_LOAD");
        // The bytes at that file offset are the function's code: the same bytes the
        // loader maps at the address.
        assert!(off > 0 && (off as usize) < data.len());
        assert!(t.names().windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn old_symbol_versions_give_way_to_the_default() {
        // glibc keeps memcpy@GLIBC_2.2.5 beside the default memcpy@@GLIBC_2.14.
        let Ok(data) = std::fs::read("/lib/x86_64-linux-gnu/libc.so.6") else {
            println!("SKIP elf::old_symbol_versions_give_way_to_the_default: no glibc");
            return;
        };
        let t = parse_functions(&data).unwrap();
        for name in ["memcpy", "pthread_cond_init", "malloc"] {
            let n = t.find_by_name(name).count();
            assert_eq!(n, 1, "{name} has {n} entries");
        }
        assert!(t.find_by_name("memcpy").all(|f| !f.hidden_version));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_mangled_elf(cut in 0usize..4096, flip in 0usize..4096, val: u8) {
            let exe = std::fs::read("/bin/true").unwrap_or_default();
            let mut data: Vec<u8> = exe.into_iter().take(4096 + cut).collect();
            if let Some(b) = data.get_mut(flip) { *b = val; }
            let _ = parse_functions(&data);
        }
    }
}

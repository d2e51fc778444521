//! Symbol tables as perf 6.1 builds them, so that `sym+off` agrees with `perf script`.
//!
//! **ELF** (`util/symbol-elf.c: dso__load_sym`): `.symtab` of the best file (see
//! [`crate::replay::dso`]), else `.dynsym`; functions (`STT_FUNC`, `STT_GNU_IFUNC`), objects
//! and zero-size `STT_NOTYPE` labels in `*text*` sections, with a name, defined, in an
//! `SHF_ALLOC` section. Names are kept as stored, so `.symtab` version suffixes stay
//! (`sched_setaffinity@@GLIBC_2.3.4` is what perf prints), then demangled. Addresses are
//! turned into file offsets with the `PT_LOAD` that holds them (`st_value - p_vaddr +
//! p_offset`, perf's `adjust_symbols` for user DSOs), so a map-relative address
//! (`ip - map.start + map.pgoff`) is looked up directly. Then perf's two fix-ups:
//! `symbols__fixup_end` (a zero-size symbol ends where the next one starts; the last one at
//! the next page boundary + 4096) and `symbols__fixup_duplicate` (of symbols at the same
//! address keep one: non-zero size, then not weak, then global, then fewer leading
//! underscores, then the longer name, then the first).
//!
//! **kallsyms** (`util/symbol.c: dso__load_kallsyms`): types `T t W w D d B b`, every symbol
//! zero-sized and ended by the next; the duplicate pass runs after the end pass, so of
//! symbols at one address the last listed is kept (the others are empty).

use object::elf;
use object::read::elf::{ElfFile64, ProgramHeader, SectionHeader, Sym};
use object::{Endianness, Object};
use std::rc::Rc;

/// One symbol: `[start, end)` in the table's address space (file offsets for ELF, kernel
/// addresses for kallsyms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// The table's names, one string; this symbol's is `names[off..off + len]`. One
    /// allocation per table instead of one per symbol (libLLVM has 3·10^5 symbols).
    names: Rc<str>,
    off: u32,
    len: u32,
    /// Whether to demangle the name for display.
    demangle: bool,
    /// The display name, demangled on first use (a big C++ library has 10^5 symbols; a
    /// profile touches a few hundred).
    shown: std::cell::OnceCell<Box<str>>,
}

impl Symbol {
    /// The name as stored.
    pub fn raw(&self) -> &str {
        let (a, b) = (self.off as usize, (self.off + self.len) as usize);
        self.names.get(a..b).unwrap_or("")
    }

    /// The name perf prints (demangled).
    pub fn name(&self) -> &str {
        if !self.demangle {
            return self.raw();
        }
        self.shown
            .get_or_init(|| perf_demangle(self.raw()).into_boxed_str())
    }
}

/// A name as perf 6.1 shows it: `bfd_demangle(name, DMGL_NO_OPTS)`, i.e. C++ without
/// parameters, return types or clone suffixes (`llvm::EVT::getEVT`), Rust without the hash
/// (`core::fmt::write`, `<T as Trait>::f`); anything else unchanged.
pub fn perf_demangle(name: &str) -> String {
    // A compiler suffix (`.llvm.123`, BOLT's `.warm`) is dropped, as libiberty does. v0
    // names (`_R`) never hold '.'; legacy ones (`_ZN..E`) use `..` for `::`, so their suffix
    // starts at an `E.` followed only by suffix characters.
    let rust = if name.starts_with("_R") {
        name.split('.').next().unwrap_or(name)
    } else if name.starts_with("_ZN") {
        let cut = name.match_indices("E.").map(|(i, _)| i + 1).find(|&i| {
            name[i..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
        });
        cut.map_or(name, |i| &name[..i])
    } else {
        name
    };
    if let Ok(d) = rustc_demangle::try_demangle(rust) {
        return format!("{d:#}");
    }
    if name.starts_with("_Z") {
        let opts = cpp_demangle::DemangleOptions::new()
            .no_params()
            .no_return_type();
        if let Ok(sym) = cpp_demangle::Symbol::new(name) {
            if let Ok(s) = sym.demangle_with_options(&opts) {
                // Without parameters libiberty leaves out the function's own cv- and
                // ref-qualifiers too (`Foo::bar() const` is `Foo::bar`).
                let mut t = s.as_str();
                while let Some(rest) = [" const", " volatile", " &&", " &"]
                    .iter()
                    .find_map(|q| t.strip_suffix(q))
                {
                    t = rest;
                }
                return libiberty_style(t);
            }
        }
    }
    name.to_string()
}

/// Where cpp_demangle and libiberty (perf's `bfd_demangle`) print C++ differently: integer
/// template arguments (`(unsigned int)4` is `4u`, `(int)4` is `4`) and empty parameter packs
/// (`Foo<A, >` is `Foo<A>`).
fn libiberty_style(s: &str) -> String {
    const SUFFIX: [(&str, &str); 6] = [
        ("(unsigned long long)", "ull"),
        ("(long long)", "ll"),
        ("(unsigned long)", "ul"),
        ("(unsigned int)", "u"),
        ("(long)", "l"),
        ("(int)", ""),
    ];
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    'scan: while !rest.is_empty() {
        if rest.starts_with('(') {
            for (cast, suffix) in SUFFIX {
                if let Some(after) = rest.strip_prefix(cast) {
                    let digits = after
                        .char_indices()
                        .take_while(|(i, c)| c.is_ascii_digit() || (*i == 0 && *c == '-'))
                        .count();
                    if digits > 0 && after[..digits].chars().any(|c| c.is_ascii_digit()) {
                        out.push_str(&after[..digits]);
                        out.push_str(suffix);
                        rest = &after[digits..];
                        continue 'scan;
                    }
                }
            }
        }
        if let Some(after) = rest.strip_prefix(", >") {
            out.push('>');
            rest = after;
            continue;
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// A sorted table of non-duplicate symbols.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SymbolMap {
    syms: Vec<Symbol>,
    /// perf's load reported an error (see [`SymbolMap::from_elf`]): the lookup that loaded
    /// the table finds nothing (perf's `map__load` fails once), later ones use what loaded.
    pub load_failed: bool,
}

/// A symbol before the fix-ups; its name is `arena[off..off + len]`.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    start: u64,
    end: u64,
    bind: u8,
    /// A kallsyms module symbol (`[mod]` column).
    module: bool,
    off: u32,
    len: u32,
}

impl Candidate {
    fn name<'a>(&self, arena: &'a str) -> &'a str {
        arena
            .get(self.off as usize..(self.off + self.len) as usize)
            .unwrap_or("")
    }
}

/// Names of candidates, appended as they are read.
#[derive(Debug, Default)]
struct Arena(String);

impl Arena {
    fn add(&mut self, name: &str) -> (u32, u32) {
        let off = self.0.len() as u32;
        self.0.push_str(name);
        (off, name.len() as u32)
    }
}

const STB_GLOBAL: u8 = 1;
const STB_WEAK: u8 = 2;

fn underscores(s: &str) -> usize {
    s.bytes().take_while(|&b| b == b'_').count()
}

/// perf's `choose_best_symbol`: true when `a` is kept over `b`. Names compare as displayed
/// (perf demangles before inserting).
fn keep_first(a: &Candidate, b: &Candidate, arena: &str, demangle: bool) -> bool {
    let (la, lb) = (a.end - a.start, b.end - b.start);
    if lb == 0 && la > 0 {
        return true;
    }
    if la == 0 && lb > 0 {
        return false;
    }
    let (wa, wb) = (a.bind == STB_WEAK, b.bind == STB_WEAK);
    if wb && !wa {
        return true;
    }
    if wa && !wb {
        return false;
    }
    let (ga, gb) = (a.bind == STB_GLOBAL, b.bind == STB_GLOBAL);
    if ga && !gb {
        return true;
    }
    if gb && !ga {
        return false;
    }
    if a.name(arena) == b.name(arena) {
        // The same symbol from .symtab and .dynsym: the first stays.
        return true;
    }
    let shown = |c: &Candidate| -> std::borrow::Cow<'_, str> {
        if demangle {
            std::borrow::Cow::Owned(perf_demangle(c.name(arena)))
        } else {
            std::borrow::Cow::Borrowed(c.name(arena))
        }
    };
    let (na, nb) = (shown(a), shown(b));
    let (ua, ub) = (underscores(&na), underscores(&nb));
    if ub > ua {
        return true;
    }
    if ua > ub {
        return false;
    }
    na.len() >= nb.len()
}

/// `symbols__fixup_end`.
fn fixup_end(c: &mut [Candidate], kallsyms: bool) {
    for i in 1..c.len() {
        let next_start = c[i].start;
        let next_mod = c[i].module;
        let prev = &mut c[i - 1];
        if prev.end == prev.start {
            if kallsyms && prev.module != next_mod {
                prev.end = prev
                    .end
                    .saturating_add(4096)
                    .div_ceil(4096)
                    .saturating_mul(4096);
            } else {
                prev.end = next_start;
            }
        }
    }
    if let Some(last) = c.last_mut() {
        if last.end == last.start {
            last.end = last
                .start
                .div_ceil(4096)
                .saturating_mul(4096)
                .saturating_add(4096);
        }
    }
}

/// `symbols__fixup_duplicate` over candidates sorted by start (stable).
fn fixup_duplicate(c: Vec<Candidate>, arena: &str, demangle: bool) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::with_capacity(c.len());
    for next in c {
        match out.last() {
            Some(curr) if curr.start == next.start => {
                if !keep_first(curr, &next, arena, demangle) {
                    out.pop();
                    out.push(next);
                }
            }
            _ => out.push(next),
        }
    }
    out
}

impl SymbolMap {
    fn build(mut c: Vec<Candidate>, arena: Arena, kallsyms: bool, demangle: bool) -> SymbolMap {
        // Names are appended in insertion order, so (start, off) is the stable order.
        c.sort_unstable_by_key(|s| (s.start, s.off));
        fixup_end(&mut c, kallsyms);
        let c = fixup_duplicate(c, &arena.0, demangle);
        SymbolMap::from_fixed(c, arena, demangle)
    }

    fn from_fixed(c: Vec<Candidate>, arena: Arena, demangle: bool) -> SymbolMap {
        let names: Rc<str> = Rc::from(arena.0);
        let syms = c
            .into_iter()
            .map(|s| Symbol {
                start: s.start,
                end: s.end,
                names: names.clone(),
                off: s.off,
                len: s.len,
                demangle,
                shown: std::cell::OnceCell::new(),
            })
            .collect();
        SymbolMap {
            syms,
            load_failed: false,
        }
    }

    /// The symbol holding `addr`: the one with the nearest start, and of several with that
    /// start (left by a failed load) the first inserted, which perf's rb-tree meets first.
    pub fn find(&self, addr: u64) -> Option<&Symbol> {
        let i = self.syms.partition_point(|s| s.start <= addr);
        let nearest = self.syms[..i].last()?.start;
        let j = self.syms[..i].partition_point(|s| s.start < nearest);
        if let Some(s) = self.syms[j..i].iter().find(|s| addr < s.end) {
            return Some(s);
        }
        // An enclosing bigger symbol before it otherwise.
        self.syms[..j].iter().rev().take(4).find(|s| addr < s.end)
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.syms.len()
    }

    /// No symbols.
    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }

    /// The symbols, sorted by start.
    pub fn symbols(&self) -> &[Symbol] {
        &self.syms
    }

    // ffffffff82265908 T __schedule
    /// The kernel's symbols from kallsyms text (module symbols included, `[mod]` kept apart).
    pub fn from_kallsyms(text: &str) -> SymbolMap {
        let mut c = Vec::new();
        let mut arena = Arena::default();
        for line in text.lines() {
            let mut it = line.split_ascii_whitespace();
            let (Some(addr), Some(ty), Some(name)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            let Ok(addr) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            let t = ty.as_bytes().first().copied().unwrap_or(b'?');
            if !matches!(t.to_ascii_uppercase(), b'T' | b'W' | b'D' | b'B') || name.starts_with('$')
            {
                continue;
            }
            let bind = if t == b'W' {
                STB_WEAK
            } else if t.is_ascii_uppercase() {
                STB_GLOBAL
            } else {
                0
            };
            let module = it.next().is_some_and(|m| m.starts_with('['));
            let (off, len) = arena.add(name);
            c.push(Candidate {
                start: addr,
                end: addr,
                bind,
                module,
                off,
                len,
            });
        }
        SymbolMap::build(c, arena, true, false)
    }

    /// The symbols of an ELF file: from `symfile` (the file with the best symbol table, e.g.
    /// a debug file), with program headers from `runtime` (the mapped binary itself).
    /// `None` when `symfile` is not a 64-bit ELF file.
    pub fn from_elf(symfile: &[u8], runtime: &[u8]) -> Option<SymbolMap> {
        let sf = ElfFile64::<Endianness>::parse(symfile).ok()?;
        let rt = ElfFile64::<Endianness>::parse(runtime).ok();
        let loads: Vec<(u64, u64, u64)> = match &rt {
            Some(r) => load_segments(r),
            None => load_segments(&sf),
        };
        // perf 6.1 `dso__load_sym`: `.symtab`, fixed up; then `.dynsym` into the same table,
        // fixed up again. A symbol in a section that does not exist ends a pass with an error
        // (`elf_getscn` fails): what was inserted stays, unfixed, and the load reports failure.
        let mut c = Vec::new();
        let mut arena = Arena::default();
        let mut failed = false;
        if !sf.elf_symbol_table().is_empty() {
            failed = elf_pass(&sf, sf.elf_symbol_table(), &loads, &mut c, &mut arena);
            // Names are appended in insertion order, so (start, off) is the stable order.
            c.sort_unstable_by_key(|s| (s.start, s.off));
            if !failed && !c.is_empty() {
                fixup_end(&mut c, false);
                c = fixup_duplicate(c, &arena.0, true);
            }
        }
        // A debug file's `.dynsym` is NOBITS: libelf hands perf no symbols from it.
        let dynsym_nobits = sf
            .elf_section_table()
            .section_by_name(sf.endian(), b".dynsym")
            .is_some_and(|(_, h)| h.sh_type(sf.endian()) == elf::SHT_NOBITS);
        if !failed && !dynsym_nobits {
            let mut d = Vec::new();
            failed = elf_pass(
                &sf,
                sf.elf_dynamic_symbol_table(),
                &loads,
                &mut d,
                &mut arena,
            );
            let added = !d.is_empty();
            c.extend(d);
            // Names are appended in insertion order, so (start, off) is the stable order.
            c.sort_unstable_by_key(|s| (s.start, s.off));
            if !failed && added {
                fixup_end(&mut c, false);
                c = fixup_duplicate(c, &arena.0, true);
            }
        }
        if !failed && !c.is_empty() {
            if let Some(r) = &rt {
                // Inserted after the fix-ups, as perf does.
                let start = c.len();
                plt_symbols(r, &mut c, &mut arena);
                if c.len() > start {
                    c.sort_unstable_by_key(|s| (s.start, s.off));
                }
            }
        }
        let mut m = SymbolMap::from_fixed(c, arena, true);
        m.load_failed = failed;
        Some(m)
    }
}

/// perf 6.1's `dso__synthesize_plt_symbols` (x86-64): one `NAME@plt` symbol per `.rela.plt`
/// entry, in relocation order, `sh_entsize` bytes each, after a header of the same size, from
/// the start of `.plt` (file offsets). Names are demangled before `@plt` is added.
fn plt_symbols(f: &ElfFile64<'_, Endianness>, c: &mut Vec<Candidate>, arena: &mut Arena) {
    let e = f.endian();
    let sections = f.elf_section_table();
    let dynsym = f.elf_dynamic_symbol_table();
    if dynsym.is_empty() {
        return;
    }
    let (Some((_, rela)), Some((_, plt))) = (
        sections.section_by_name(e, b".rela.plt"),
        sections.section_by_name(e, b".plt"),
    ) else {
        return;
    };
    if rela.sh_link(e) as usize != dynsym.section().0 || rela.sh_type(e) != elf::SHT_RELA {
        return;
    }
    let Ok(data) = rela.data(e, f.data()) else {
        return;
    };
    let entsize = plt.sh_entsize(e);
    let mut at = plt.sh_offset(e).saturating_add(entsize);
    let strings = dynsym.strings();
    for r in data.chunks_exact(24) {
        let info = u64::from_le_bytes(r[8..16].try_into().unwrap_or([0; 8]));
        let Some(sym) = dynsym.symbols().get((info >> 32) as usize) else {
            return;
        };
        let name = sym.name(e, strings).unwrap_or(b"");
        let name = perf_demangle(&String::from_utf8_lossy(name)) + "@plt";
        let (off, len) = arena.add(&name);
        c.push(Candidate {
            start: at,
            end: at.saturating_add(entsize),
            bind: STB_GLOBAL,
            module: false,
            off,
            len,
        });
        at = at.saturating_add(entsize);
    }
}

/// One pass of `dso__load_sym_internal` over `table`, appending candidates; true when it
/// stopped at a symbol whose section does not exist.
fn elf_pass(
    sf: &ElfFile64<'_, Endianness>,
    table: &object::read::elf::SymbolTable<'_, object::elf::FileHeader64<Endianness>>,
    loads: &[(u64, u64, u64)],
    c: &mut Vec<Candidate>,
    arena: &mut Arena,
) -> bool {
    let e = sf.endian();
    let sections = sf.elf_section_table();
    let strings = table.strings();
    for sym in table.symbols().iter().skip(1) {
        let ty = sym.st_type();
        let shndx = sym.st_shndx(e);
        if sym.st_name(e) == 0 || shndx == elf::SHN_UNDEF {
            continue;
        }
        let size = sym.st_size(e);
        let is_label = ty == elf::STT_NOTYPE && shndx != elf::SHN_ABS && size == 0;
        let kept = matches!(ty, elf::STT_FUNC | elf::STT_GNU_IFUNC | elf::STT_OBJECT);
        if !is_label && !kept {
            continue;
        }
        // Reserved indexes (SHN_ABS version symbols such as glibc's `GLIBC_2.8`) are passed
        // over; an ordinary index past the section table stops the pass, as perf's failing
        // `elf_getscn` does (librustc_driver's `.dynsym` has one, index 48 of 44).
        let Some(index) = shndx.index() else { continue };
        let Ok(sec) = sections.section(object::SectionIndex(usize::from(index))) else {
            return true;
        };
        if sec.sh_flags(e).0 & elf::SHF_ALLOC.0 == 0 {
            continue;
        }
        if is_label {
            let name = sections.section_name(e, sec).unwrap_or(b"");
            if !name.windows(4).any(|w| w == b"text") {
                continue;
            }
        }
        let Ok(name) = sym.name(e, strings) else {
            continue;
        };
        let value = sym.st_value(e);
        let Some(&(va, off, _)) = loads
            .iter()
            .find(|(va, _, mem)| value >= *va && value - va < *mem)
        else {
            continue;
        };
        let start = value.wrapping_sub(va).wrapping_add(off);
        let (noff, nlen) = match std::str::from_utf8(name) {
            Ok(n) => arena.add(n),
            Err(_) => arena.add(&String::from_utf8_lossy(name)),
        };
        c.push(Candidate {
            start,
            end: start.saturating_add(size),
            bind: sym.st_bind().0,
            module: false,
            off: noff,
            len: nlen,
        });
    }
    false
}

/// `PT_LOAD` segments as (p_vaddr, p_offset, p_memsz).
fn load_segments(f: &ElfFile64<'_, Endianness>) -> Vec<(u64, u64, u64)> {
    let e = f.endian();
    f.elf_program_headers()
        .iter()
        .filter(|p| p.p_type(e) == elf::PT_LOAD)
        .map(|p| (p.p_vaddr(e), p.p_offset(e), p.p_memsz(e)))
        .collect()
}

/// Whether an ELF image has a non-empty `.symtab`.
pub fn has_symtab(data: &[u8]) -> bool {
    ElfFile64::<Endianness>::parse(data).is_ok_and(|f| !f.elf_symbol_table().is_empty())
}

/// The `.note.gnu.build-id` of an ELF image.
pub fn build_id(data: &[u8]) -> Option<Vec<u8>> {
    let f = ElfFile64::<Endianness>::parse(data).ok()?;
    f.build_id().ok().flatten().map(<[u8]>::to_vec)
}

/// The `.gnu_debuglink` file name of an ELF image.
pub fn debuglink(data: &[u8]) -> Option<String> {
    let f = ElfFile64::<Endianness>::parse(data).ok()?;
    let (name, _crc) = f.gnu_debuglink().ok().flatten()?;
    Some(String::from_utf8_lossy(name).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kallsyms_keeps_the_last_alias_and_ends_at_the_next() {
        let m = SymbolMap::from_kallsyms(
            "ffffffff81000000 T _text\nffffffff81000000 T startup_64\n\
             ffffffff81000100 t secondary\nffffffff81000200 r rodata_thing\n\
             ffffffff81000300 W weakfn\nffffffff81000400 A absolute\n",
        );
        let names: Vec<&str> = m.symbols().iter().map(|s| s.name()).collect();
        assert_eq!(names, vec!["startup_64", "secondary", "weakfn"]);
        assert_eq!(
            m.find(0xffffffff810000ff).map(|s| s.name()),
            Some("startup_64")
        );
        assert_eq!(
            m.find(0xffffffff81000250).map(|s| s.name()),
            Some("secondary")
        );
        // The last symbol ends a page after its page.
        assert_eq!(m.symbols()[2].end, 0xffffffff81001000 + 4096);
        assert_eq!(m.find(0xffffffff80ffffff), None);
    }

    #[test]
    fn duplicates_follow_perf() {
        let build = |list: &[(u64, u64, u8, &str)]| {
            let mut arena = Arena::default();
            let c = list
                .iter()
                .map(|&(start, end, bind, name)| {
                    let (off, len) = arena.add(name);
                    Candidate {
                        start,
                        end,
                        bind,
                        module: false,
                        off,
                        len,
                    }
                })
                .collect();
            SymbolMap::build(c, arena, false, false)
        };
        // libc's write: locals beat weak ones, then the longest name.
        let m = build(&[
            (0x100, 0x19d, 0, "__GI___write"),
            (0x100, 0x19d, STB_WEAK, "__write"),
            (0x100, 0x19d, 0, "__GI___libc_write"),
            (0x100, 0x19d, 0, "__libc_write"),
            (0x100, 0x19d, STB_WEAK, "write"),
        ]);
        assert_eq!(m.find(0x150).unwrap().name(), "__GI___libc_write");
        // A global beats locals with fewer underscores.
        let m = build(&[
            (0x200, 0x222, 0, "__GI___sched_setaffinity_new"),
            (0x200, 0x222, STB_GLOBAL, "sched_setaffinity@@GLIBC_2.3.4"),
        ]);
        assert_eq!(
            m.find(0x207).unwrap().name(),
            "sched_setaffinity@@GLIBC_2.3.4"
        );
    }

    #[test]
    fn demangled_as_perf_shows_them() {
        assert_eq!(
            perf_demangle("_ZN4llvm3EVT6getEVTEPNS_4TypeEb"),
            "llvm::EVT::getEVT"
        );
        assert_eq!(
            perf_demangle("_ZN12_GLOBAL__N_111X86FastISelD2Ev.llvm.16963785926101038422"),
            "(anonymous namespace)::X86FastISel::~X86FastISel"
        );
        assert_eq!(
            perf_demangle("_ZN4core3fmt5write17h0123456789abcdefE"),
            "core::fmt::write"
        );
        assert_eq!(perf_demangle("malloc"), "malloc");
        assert_eq!(
            perf_demangle("_ZNK4llvm5Value7getTypeEv"),
            "llvm::Value::getType"
        );
        assert_eq!(
            perf_demangle("_ZN6rprobe5dwarf5types47_$LT$impl$u20$rprobe..debuginfo..TypeSource$GT$4peel17h04927346cbd9d5b6E"),
            "rprobe::dwarf::types::<impl rprobe::debuginfo::TypeSource>::peel"
        );
        assert_eq!(
            perf_demangle("_ZN4core3fmt5write17h0123456789abcdefE.llvm.42"),
            "core::fmt::write"
        );
        assert_eq!(
            libiberty_style("llvm::SmallVector<llvm::MachineInstr*, (unsigned int)2>, (int)-3"),
            "llvm::SmallVector<llvm::MachineInstr*, 2u>, -3"
        );
        assert_eq!(
            libiberty_style(
                "llvm::PassManager<llvm::Module, llvm::AnalysisManager<llvm::Module, >, >::run"
            ),
            "llvm::PassManager<llvm::Module, llvm::AnalysisManager<llvm::Module>>::run"
        );
        assert_eq!(
            perf_demangle("_RNvMs3_NtNtCsdadwybgsbvk_12rustc_middle2ty7contextNtB5_13CtxtInterners16intern_predicate.warm"),
            "<rustc_middle::ty::context::CtxtInterners>::intern_predicate"
        );
    }

    #[test]
    fn plt_entries_are_named_after_their_relocations() {
        // coreutils' true: .plt at file offset 0x2020, 16-byte entries, .rela.plt starts with
        // free and abort (Debian 12; skip where the layout differs).
        let Ok(t) = std::fs::read("/usr/bin/true") else {
            return;
        };
        let m = SymbolMap::from_elf(&t, &t).expect("elf");
        let plt: Vec<&Symbol> = m
            .symbols()
            .iter()
            .filter(|s| s.name().ends_with("@plt"))
            .collect();
        if plt.first().map(|s| s.start) != Some(0x2030) {
            println!("SKIP plt_entries_are_named_after_their_relocations: another /usr/bin/true");
            return;
        }
        assert_eq!(plt[0].name(), "free@plt");
        assert_eq!(plt[1].name(), "abort@plt");
        assert_eq!((plt[1].start, plt[1].end), (0x2040, 0x2050));
        assert_eq!(m.find(0x2044).map(|s| s.name()), Some("abort@plt"));
    }

    #[test]
    fn own_binary_symbols_are_file_offsets() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let m = SymbolMap::from_elf(&exe, &exe).expect("elf");
        assert!(m.len() > 100);
        let t = crate::elf::parse_functions(&exe).unwrap();
        let main = t.find_by_name("main").next().unwrap();
        let off = main.file_offset.unwrap();
        assert_eq!(m.find(off).map(|s| s.name()), Some("main"));
        assert!(SymbolMap::from_elf(b"junk", b"junk").is_none());
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_mangled_elf_or_kallsyms(
            cut in 0usize..70000,
            flips in proptest::collection::vec((0usize..70000, proptest::prelude::any::<u8>()), 0..24),
            text in "(\\PC|\n| ){0,300}",
        ) {
            let mut data = std::fs::read("/bin/true").unwrap_or_default();
            for (at, v) in flips {
                if let Some(b) = data.get_mut(at) { *b = v; }
            }
            data.truncate(cut.max(64));
            if let Some(m) = SymbolMap::from_elf(&data, &data) {
                for s in m.symbols().iter().take(50) {
                    let _ = m.find(s.start);
                    let _ = s.name();
                }
            }
            let k = SymbolMap::from_kallsyms(&text);
            let _ = k.find(0xffff_ffff_8100_0000);
        }
    }
}

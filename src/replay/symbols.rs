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

use super::dso::FileData;
use object::elf;
use object::read::elf::{ElfFile64, ProgramHeader, SectionHeader, Sym};
use object::{Endianness, Object};
use std::sync::Arc;

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
    names: Arc<Arena>,
    off: u32,
    len: u32,
    /// Whether to demangle the name for display.
    demangle: bool,
    /// ELF binding (`STB_*`), for choosing among duplicates on lookup.
    bind: u8,
    /// [`NORMAL`], [`PENDING`] or [`EXTRA`].
    state: u8,
    /// In the first symbol of a [`PENDING`] group: the index of the group's chosen symbol
    /// once a lookup has chosen it (`u32::MAX` before).
    winner: std::cell::Cell<u32>,
    /// The display name, demangled on first use (a big C++ library has 10^5 symbols; a
    /// profile touches a few hundred).
    shown: std::cell::OnceCell<Box<str>>,
}

impl Symbol {
    /// The name as stored.
    pub fn raw(&self) -> &str {
        self.names.get(self.off, self.len)
    }

    /// The name perf prints (demangled).
    pub fn name(&self) -> &str {
        if !self.demangle {
            return self.raw();
        }
        self.shown.get_or_init(|| {
            let b = self.names.bytes(self.off, self.len);
            match std::str::from_utf8(b) {
                Ok(n) => perf_demangle(n).into_boxed_str(),
                Err(_) => String::from_utf8_lossy(b).into(),
            }
        })
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
    /// [`NORMAL`], [`PENDING`] or [`EXTRA`].
    state: u8,
    /// Insertion order (perf's rb-tree keeps equal starts in it).
    seq: u32,
    off: u32,
    len: u32,
}

/// A symbol that is alone at its address, or the one perf's duplicate pass kept.
const NORMAL: u8 = 0;
/// A member of a group of symbols at one address whose choice needs demangled names; the
/// group is kept whole and chosen from on the first lookup that lands in it (a big C++
/// library has 10^5 such groups, constructor aliases mostly, and a profile touches a few).
const PENDING: u8 = 1;
/// Inserted after the fix-ups (PLT symbols): never a duplicate candidate.
const EXTRA: u8 = 2;

impl Candidate {
    fn name<'a>(&self, arena: &'a Arena) -> &'a str {
        arena.get(self.off, self.len)
    }
}

/// Names of candidates: appended as they are read, or (an offset with [`IN_FILE`] set) in
/// the symbol file's own string table, which the arena keeps mapped. A big library's names
/// are tens of megabytes: copying them cost more than reading the symbols.
#[derive(Default)]
struct Arena {
    text: String,
    file: Option<Arc<FileData>>,
    /// Candidates numbered so far.
    count: u32,
}

/// The bit of a name offset that says it is in [`Arena::file`].
const IN_FILE: u32 = 1 << 31;

/// The length of a name in [`Arena::file`] not measured yet: it ends at its NUL. Finding
/// the NULs and checking UTF-8 of 10^5 names nobody looks at cost a tenth of a replay.
const LAZY: u32 = u32::MAX;

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena")
            .field("text", &self.text.len())
            .field("file", &self.file_bytes().len())
            .finish()
    }
}

impl PartialEq for Arena {
    fn eq(&self, o: &Arena) -> bool {
        self.text == o.text && self.file_bytes() == o.file_bytes()
    }
}

impl Eq for Arena {}

impl Arena {
    /// The next insertion number.
    fn seq(&mut self) -> u32 {
        self.count += 1;
        self.count
    }

    fn add(&mut self, name: &str) -> (u32, u32) {
        let off = self.text.len() as u32;
        self.text.push_str(name);
        (off, name.len() as u32)
    }

    fn file_bytes(&self) -> &[u8] {
        self.file.as_deref().map_or(&[], |f| f.as_ref())
    }

    /// A name read from the file: kept where it is when it is UTF-8 and within reach of
    /// an offset, else copied.
    fn add_bytes(&mut self, name: &[u8]) -> (u32, u32) {
        let base = self.file_bytes();
        let at = (name.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
        let within = at <= base.len() && name.len() <= base.len() - at;
        if within && at < IN_FILE as usize && std::str::from_utf8(name).is_ok() {
            return (at as u32 | IN_FILE, name.len() as u32);
        }
        match std::str::from_utf8(name) {
            Ok(n) => self.add(n),
            Err(_) => self.add(&String::from_utf8_lossy(name)),
        }
    }

    /// A name's bytes; a [`LAZY`] length runs to the NUL that ends it in the file.
    fn bytes(&self, off: u32, len: u32) -> &[u8] {
        let a = (off & !IN_FILE) as usize;
        if off & IN_FILE == 0 {
            return self.text.as_bytes().get(a..a + len as usize).unwrap_or(b"");
        }
        let rest = self.file_bytes().get(a..).unwrap_or(b"");
        if len == LAZY {
            let n = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            return &rest[..n];
        }
        rest.get(..len as usize).unwrap_or(b"")
    }

    /// A name as text (empty when it is not UTF-8; [`Symbol::name`] shows those lossily).
    fn get(&self, off: u32, len: u32) -> &str {
        std::str::from_utf8(self.bytes(off, len)).unwrap_or("")
    }
}

const STB_GLOBAL: u8 = 1;
const STB_WEAK: u8 = 2;

fn underscores(s: &str) -> usize {
    s.bytes().take_while(|&b| b == b'_').count()
}

/// perf's `choose_best_symbol`: true when `a` is kept over `b`. Names compare as displayed
/// (perf demangles before inserting).
fn keep_first(a: &Candidate, b: &Candidate, arena: &Arena, demangle: bool) -> bool {
    keep_first_cheap(a, b, arena, demangle).unwrap_or_else(|| {
        let (na, nb) = (perf_demangle(a.name(arena)), perf_demangle(b.name(arena)));
        by_shown_name(&na, &nb)
    })
}

/// The last rule of `choose_best_symbol`: fewer leading underscores, then the longer name.
fn by_shown_name(na: &str, nb: &str) -> bool {
    let (ua, ub) = (underscores(na), underscores(nb));
    if ub > ua {
        return true;
    }
    if ua > ub {
        return false;
    }
    na.len() >= nb.len()
}

/// [`keep_first`] without demangling: None when only the demangled names can decide.
fn keep_first_cheap(a: &Candidate, b: &Candidate, arena: &Arena, demangle: bool) -> Option<bool> {
    let (la, lb) = (a.end - a.start, b.end - b.start);
    if lb == 0 && la > 0 {
        return Some(true);
    }
    if la == 0 && lb > 0 {
        return Some(false);
    }
    let (wa, wb) = (a.bind == STB_WEAK, b.bind == STB_WEAK);
    if wb && !wa {
        return Some(true);
    }
    if wa && !wb {
        return Some(false);
    }
    let (ga, gb) = (a.bind == STB_GLOBAL, b.bind == STB_GLOBAL);
    if ga && !gb {
        return Some(true);
    }
    if gb && !ga {
        return Some(false);
    }
    if arena.bytes(a.off, a.len) == arena.bytes(b.off, b.len) {
        // The same symbol from .symtab and .dynsym: the first stays.
        return Some(true);
    }
    if demangle {
        return None;
    }
    Some(by_shown_name(a.name(arena), b.name(arena)))
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

/// `symbols__fixup_duplicate` over candidates sorted by start (stable): of each group at one
/// address the one [`keep_first`] folds to stays. With `lazy`, a group whose choice needs
/// demangled names (or holds [`PENDING`] members of an earlier pass) is kept whole, marked
/// [`PENDING`], for [`SymbolMap::find`] to fold the same way on first use: the fold keeps
/// one candidate at a time, so folding the whole group later is the same as folding the
/// earlier pass's choice with the rest.
fn fixup_duplicate(c: &mut Vec<Candidate>, arena: &Arena, demangle: bool, lazy: bool) {
    // In place: each group writes at most as many candidates as it has, before itself.
    let mut w = 0;
    let mut i = 0;
    while i < c.len() {
        let start = c[i].start;
        let j = i + c[i..].iter().take_while(|x| x.start == start).count();
        let mut cur = c[i];
        let mut pending = lazy && cur.state == PENDING;
        for next in &c[i + 1..j] {
            if pending {
                break;
            }
            if next.state == PENDING {
                pending = true;
                break;
            }
            let keep = if lazy {
                match keep_first_cheap(&cur, next, arena, demangle) {
                    Some(k) => k,
                    None => {
                        pending = true;
                        break;
                    }
                }
            } else {
                keep_first(&cur, next, arena, demangle)
            };
            if !keep {
                cur = *next;
            }
        }
        if pending {
            for k in i..j {
                c[w] = Candidate {
                    state: PENDING,
                    ..c[k]
                };
                w += 1;
            }
        } else {
            c[w] = cur;
            w += 1;
        }
        i = j;
    }
    c.truncate(w);
}

/// The parsed and fixed-up symbols of a kallsyms text, before they become a [`SymbolMap`]
/// (with the address of `_text`, which the table does not keep).
#[derive(Debug, Default)]
pub struct Kallsyms {
    c: Vec<Candidate>,
    names: String,
    count: u32,
    /// The address of `_text` (the first line naming it), to relocate against the file's
    /// kernel map.
    pub text: Option<u64>,
}

impl Kallsyms {
    /// Parse kallsyms text (`ADDR TYPE NAME [\t[MODULE]]` lines). Lines that do not parse are
    /// skipped; of the types only text, weak, data and bss symbols are kept, as perf keeps
    /// them. A hand-written scanner: kallsyms has 10^5 lines and `split_ascii_whitespace`
    /// with `from_str_radix` cost a quarter of a small flame graph.
    pub fn parse(text: &[u8]) -> Kallsyms {
        // One UTF-8 check for the whole text (lossy only when it fails).
        let text = match std::str::from_utf8(text) {
            Ok(t) => std::borrow::Cow::Borrowed(t),
            Err(_) => String::from_utf8_lossy(text),
        };
        let mut c = Vec::with_capacity(text.len() / 40);
        let mut arena = Arena::default();
        // Names are a third of the text or so.
        arena.text.reserve(text.len() / 2);
        let mut text_addr = None;
        let mut at = 0;
        while at < text.len() {
            let end = memchr::memchr(b'\n', &text.as_bytes()[at..]).map_or(text.len(), |n| at + n);
            let line = &text[at..end];
            at = end + 1;
            let Some(l) = KallsymsLine::parse(line) else {
                continue;
            };
            if text_addr.is_none() && l.name == "_text" {
                text_addr = l.addr;
            }
            let t = l.ty;
            if !matches!(t.to_ascii_uppercase(), b'T' | b'W' | b'D' | b'B')
                || l.name.starts_with('$')
            {
                continue;
            }
            let Some(addr) = l.addr else {
                continue;
            };
            let bind = if t == b'W' {
                STB_WEAK
            } else if t.is_ascii_uppercase() {
                STB_GLOBAL
            } else {
                0
            };
            let (off, len) = arena.add(l.name);
            c.push(Candidate {
                start: addr,
                end: addr,
                bind,
                module: l.module,
                state: NORMAL,
                seq: arena.seq(),
                off,
                len,
            });
        }
        c.sort_unstable_by_key(|s| (s.start, s.seq));
        fixup_end(&mut c, true);
        fixup_duplicate(&mut c, &arena, false, false);
        let Arena { text, count, .. } = arena;
        Kallsyms {
            c,
            names: text,
            count,
            text: text_addr,
        }
    }

    /// No symbols were kept.
    pub fn is_empty(&self) -> bool {
        self.c.is_empty()
    }

    /// The symbol table.
    pub fn into_map(self) -> SymbolMap {
        let arena = Arena {
            text: self.names,
            file: None,
            count: self.count,
        };
        SymbolMap::from_fixed(self.c, arena, false)
    }
}

/// One kallsyms line's fields, split at ASCII whitespace as `split_ascii_whitespace` would.
struct KallsymsLine<'a> {
    /// The address, when the first field is hex that fits 64 bits.
    addr: Option<u64>,
    /// The type letter (the second field's first byte).
    ty: u8,
    name: &'a str,
    /// A fourth field starting with `[`.
    module: bool,
}

impl<'a> KallsymsLine<'a> {
    fn parse(line: &'a str) -> Option<KallsymsLine<'a>> {
        let b = line.as_bytes();
        // The kernel's layout: 16 hex digits, a space, the type, a space, the name, and
        // for modules a tab and `[module]`.
        if b.len() > 19 && b[16] == b' ' && b[18] == b' ' && !b[17].is_ascii_whitespace() {
            if let Some(addr) = parse_hex16(&b[..16]) {
                // Kernel symbol names hold no whitespace; a tab or space ends one.
                let rest = &line[19..];
                let name_end = memchr::memchr2(b'\t', b' ', rest.as_bytes()).unwrap_or(rest.len());
                if name_end > 0 && !rest.ends_with('\r') {
                    let tail =
                        rest[name_end..].trim_start_matches(|c: char| c.is_ascii_whitespace());
                    return Some(KallsymsLine {
                        addr: Some(addr),
                        ty: b[17],
                        name: &rest[..name_end],
                        module: tail.starts_with('['),
                    });
                }
            }
        }
        let mut fields = line.split_ascii_whitespace();
        let addr = fields.next()?;
        let ty = *fields.next()?.as_bytes().first()?;
        let name = fields.next()?;
        let module = fields.next().is_some_and(|m| m.starts_with('['));
        Some(KallsymsLine {
            addr: parse_hex(addr.as_bytes()),
            ty,
            name,
            module,
        })
    }
}

/// Sixteen hex digits (no overflow to check).
fn parse_hex16(s: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    let mut bad = false;
    for &b in s {
        let d = HEX[b as usize];
        bad |= d > 15;
        v = v << 4 | u64::from(d & 15);
    }
    (!bad).then_some(v)
}

/// Hex digit values by byte (0xff: not a digit).
const HEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// `u64::from_str_radix(s, 16)` on bytes.
fn parse_hex(s: &[u8]) -> Option<u64> {
    let digits = s.strip_prefix(b"+").unwrap_or(s);
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in digits {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        v = v.checked_mul(16)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

impl SymbolMap {
    #[cfg(test)]
    fn build(mut c: Vec<Candidate>, arena: Arena, kallsyms: bool, demangle: bool) -> SymbolMap {
        // Names are appended in insertion order, so (start, off) is the stable order.
        c.sort_unstable_by_key(|s| (s.start, s.seq));
        fixup_end(&mut c, kallsyms);
        fixup_duplicate(&mut c, &arena, demangle, false);
        SymbolMap::from_fixed(c, arena, demangle)
    }

    fn from_fixed(c: Vec<Candidate>, arena: Arena, demangle: bool) -> SymbolMap {
        let names = Arc::new(arena);
        let syms = c
            .into_iter()
            .map(|s| Symbol {
                start: s.start,
                end: s.end,
                names: names.clone(),
                off: s.off,
                len: s.len,
                demangle,
                bind: s.bind,
                state: s.state,
                winner: std::cell::Cell::new(u32::MAX),
                shown: std::cell::OnceCell::new(),
            })
            .collect();
        SymbolMap {
            syms,
            load_failed: false,
        }
    }

    /// The symbol holding `addr`: the one with the nearest start, and of several with that
    /// start (left by a failed load) the first inserted, which perf's rb-tree meets first;
    /// otherwise an enclosing bigger symbol among the four before it. A [`PENDING`] group
    /// counts as the symbol perf's duplicate pass would have kept (and any [`EXTRA`] ones).
    pub fn find(&self, addr: u64) -> Option<&Symbol> {
        let i = self.syms.partition_point(|s| s.start <= addr);
        let nearest = self.syms[..i].last()?.start;
        let j = self.syms[..i].partition_point(|s| s.start < nearest);
        if let Some(s) = self.visible(j, i).find(|s| addr < s.end) {
            return Some(s);
        }
        // An enclosing bigger symbol before it otherwise.
        let mut end = j;
        let mut left = 4usize;
        while end > 0 && left > 0 {
            let start = self.syms[end - 1].start;
            let j = self.syms[..end].partition_point(|s| s.start < start);
            let group: Vec<&Symbol> = self.visible(j, end).collect();
            for s in group.into_iter().rev().take(left) {
                if addr < s.end {
                    return Some(s);
                }
                left -= 1;
            }
            end = j;
        }
        None
    }

    /// The symbols of the group `syms[j..i]` (one start) that perf's table holds, in order.
    fn visible(&self, j: usize, i: usize) -> impl Iterator<Item = &Symbol> {
        let group = &self.syms[j..i];
        let pending = group.first().is_some_and(|s| s.state == PENDING);
        let winner = if pending { self.winner(j, i) } else { None };
        winner
            .into_iter()
            .chain(group.iter().filter(move |s| !pending || s.state != PENDING))
    }

    /// perf's choice among the [`PENDING`] members of `syms[j..i]`, folded once and kept.
    fn winner(&self, j: usize, i: usize) -> Option<&Symbol> {
        let first = self.syms.get(j)?;
        let known = first.winner.get();
        if known != u32::MAX {
            return self.syms.get(known as usize);
        }
        let cand = |s: &Symbol| Candidate {
            start: s.start,
            end: s.end,
            bind: s.bind,
            module: false,
            state: s.state,
            seq: 0,
            off: s.off,
            len: s.len,
        };
        let arena: &Arena = &first.names;
        let mut best = j;
        for k in j + 1..i {
            if self.syms[k].state != PENDING {
                continue;
            }
            if !keep_first(&cand(&self.syms[best]), &cand(&self.syms[k]), arena, true) {
                best = k;
            }
        }
        first.winner.set(best as u32);
        self.syms.get(best)
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
        Kallsyms::parse(text.as_bytes()).into_map()
    }

    /// The symbols of an ELF file: from `symfile` (the file with the best symbol table, e.g.
    /// a debug file), with program headers from `runtime` (the mapped binary itself).
    /// `None` when `symfile` is not a 64-bit ELF file.
    pub fn from_elf(symfile: &[u8], runtime: &[u8]) -> Option<SymbolMap> {
        SymbolMap::from_elf_in(symfile, None, runtime)
    }

    /// [`SymbolMap::from_elf`] of a file the table keeps (mapped), with names left in the
    /// file's string tables instead of copied.
    pub fn from_elf_shared(symfile: Arc<FileData>, runtime: &[u8]) -> Option<SymbolMap> {
        let keep = symfile.clone();
        SymbolMap::from_elf_in((*symfile).as_ref(), Some(keep), runtime)
    }

    fn from_elf_in(
        symfile: &[u8],
        keep: Option<Arc<FileData>>,
        runtime: &[u8],
    ) -> Option<SymbolMap> {
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
        let mut arena = Arena {
            file: keep,
            ..Arena::default()
        };
        if arena.file.is_none() {
            // Room for every name up front: growing a big library's arena copies megabytes.
            let string_bytes: u64 = [b".strtab".as_slice(), b".dynstr"]
                .iter()
                .filter_map(|n| sf.elf_section_table().section_by_name(sf.endian(), n))
                .map(|(_, h)| h.sh_size(sf.endian()))
                .sum();
            arena
                .text
                .reserve(usize::try_from(string_bytes.min(1 << 30)).unwrap_or(0));
        }
        let mut failed = false;
        if !sf.elf_symbol_table().is_empty() {
            failed = elf_pass(&sf, sf.elf_symbol_table(), &loads, &mut c, &mut arena);
            fix_pass(&mut c, &arena, !failed, true);
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
            // Sorted apart, then one merge of the two sorted runs (a stable sort finds them).
            d.sort_unstable_by_key(|s| (s.start, s.seq));
            c.extend(d);
            c.sort_by_key(|s| (s.start, s.seq));
            fix_pass(&mut c, &arena, !failed && added, true);
        }
        if !failed && !c.is_empty() {
            if let Some(r) = &rt {
                // Inserted after the fix-ups, as perf does.
                let start = c.len();
                plt_symbols(r, &mut c, &mut arena);
                if c.len() > start {
                    c.sort_unstable_by_key(|s| (s.start, s.seq));
                }
            }
        }
        let mut m = SymbolMap::from_fixed(c, arena, true);
        m.load_failed = failed;
        Some(m)
    }
}

/// The end of one `dso__load_sym` pass over an ELF symbol table: sorted, and with `fix`
/// perf's two fix-ups (duplicates resolved `lazy`ly, see [`fixup_duplicate`]).
fn fix_pass(c: &mut Vec<Candidate>, arena: &Arena, fix: bool, lazy: bool) {
    // Names are appended in insertion order, so (start, off) is the stable order.
    c.sort_unstable_by_key(|s| (s.start, s.seq));
    if fix && !c.is_empty() {
        fixup_end(c, false);
        fixup_duplicate(c, arena, true, lazy);
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
            state: EXTRA,
            seq: arena.seq(),
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
    c.reserve(table.symbols().len());
    // Where the names are in the file, when the arena keeps the file: they are then
    // referred to by offset and measured on first use.
    let in_place = arena
        .file
        .is_some()
        .then(|| sections.section(table.string_section()).ok())
        .flatten()
        .map(|h| (h.sh_offset(e), h.sh_size(e)))
        .filter(|&(off, size)| {
            off.checked_add(size).is_some_and(|end| {
                end <= arena.file_bytes().len() as u64 && end < u64::from(IN_FILE)
            }) && sf.data().as_ptr() == arena.file_bytes().as_ptr()
        });
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
        let lazy = in_place.and_then(|(off, size)| {
            let at = u64::from(sym.st_name(e));
            (at < size).then(|| (off + at) as u32 | IN_FILE)
        });
        let name = match lazy {
            Some(_) => &[][..],
            None => match sym.name(e, strings) {
                Ok(n) => n,
                Err(_) => continue,
            },
        };
        let value = sym.st_value(e);
        let Some(&(va, off, _)) = loads
            .iter()
            .find(|(va, _, mem)| value >= *va && value - va < *mem)
        else {
            continue;
        };
        let start = value.wrapping_sub(va).wrapping_add(off);
        let (noff, nlen) = match lazy {
            Some(off) => (off, LAZY),
            None => arena.add_bytes(name),
        };
        c.push(Candidate {
            start,
            end: start.saturating_add(size),
            bind: sym.st_bind().0,
            module: false,
            state: NORMAL,
            seq: arena.seq(),
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

    /// (start, end, bind, name) of each symbol, and `_text`.
    type Parsed = (Vec<(u64, u64, u8, String)>, Option<u64>);

    /// What the kallsyms scanner must agree with: fields split at ASCII whitespace.
    fn reference_kallsyms(text: &str) -> Parsed {
        let mut c = Vec::new();
        let mut arena = Arena::default();
        let mut text_addr = None;
        for line in text.lines() {
            let mut it = line.split_ascii_whitespace();
            let (Some(addr), Some(ty), Some(name)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            if text_addr.is_none() && name == "_text" {
                text_addr = u64::from_str_radix(addr, 16).ok();
            }
            let t = ty.as_bytes()[0];
            if !matches!(t.to_ascii_uppercase(), b'T' | b'W' | b'D' | b'B') || name.starts_with('$')
            {
                continue;
            }
            let Ok(addr) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            let bind = match t {
                b'W' => STB_WEAK,
                t if t.is_ascii_uppercase() => STB_GLOBAL,
                _ => 0,
            };
            let module = it.next().is_some_and(|m| m.starts_with('['));
            let (off, len) = arena.add(name);
            c.push(Candidate {
                start: addr,
                end: addr,
                bind,
                module,
                state: NORMAL,
                seq: arena.seq(),
                off,
                len,
            });
        }
        let m = SymbolMap::build(c, arena, true, false);
        (symbol_list(&m), text_addr)
    }

    fn symbol_list(m: &SymbolMap) -> Vec<(u64, u64, u8, String)> {
        m.symbols()
            .iter()
            .map(|s| (s.start, s.end, s.bind, s.name().to_string()))
            .collect()
    }

    fn scanned_kallsyms(text: &str) -> Parsed {
        let k = Kallsyms::parse(text.as_bytes());
        let t = k.text;
        (symbol_list(&k.into_map()), t)
    }

    #[test]
    fn kallsyms_scanner_agrees_with_whitespace_splitting() {
        let text = "ffffffff81000000 T _text\n\
                    ffffffff81000000 T startup_64\n\
                    ffffffff81000010 t  two_spaces\n\
                    \tffffffff81000020 t leading_tab\n\
                    ffffffff81000030 W weak\n\
                    ffffffffc0a01000 t mod_fn\t[ext4]\n\
                    ffffffffc0a01010 T mod_fn2\t[ext4]  \n\
                    ffffffffc0a01020 t after_space [xfs]\n\
                    fffffffgc0a01030 t not_hex\n\
                    +fffffffc0a01040 t plus_sign\n\
                    1ffffffffc0a01050 t too_long_for_u64\n\
                    ffffffff81000040 T\n\
                    ffffffff81000050\n\
                    \n\
                    ffffffff81000060 b bss_thing\r\n\
                    ffffffff81000070 d $x_mapping\n\
                    ffffffff81000080 TT double_type\n\
                    ffffffff81000090 T caf\u{e9}\n\
                    ffffffff810000a0 A absolute\n\
                    ffffffff810000b0 T last";
        assert_eq!(scanned_kallsyms(text), reference_kallsyms(text));
        assert_eq!(scanned_kallsyms(text).1, Some(0xffffffff81000000));
    }

    #[test]
    fn kallsyms_scanner_agrees_on_this_machine() {
        // Every line of a real kallsyms (unreadable as a user: addresses are zero then, and
        // the comparison still holds).
        let Ok(text) = std::fs::read_to_string("/proc/kallsyms") else {
            return;
        };
        let (a, b) = (scanned_kallsyms(&text), reference_kallsyms(&text));
        assert_eq!(a.1, b.1);
        assert_eq!(a.0.len(), b.0.len());
        assert!(a.0 == b.0);
    }

    proptest::proptest! {
        #[test]
        fn kallsyms_scanner_agrees_on_any_text(
            lines in proptest::collection::vec(
                (
                    proptest::prelude::any::<u64>(),
                    proptest::sample::select(vec!["T", "t", "W", "d", "B", "r", "A", "TT", ""]),
                    "[ \t]{0,2}",
                    "[a-z_$\\[\\]]{0,6}",
                    proptest::sample::select(vec!["", "\t[ext4]", " [m]", "\r", " ", "\tx"]),
                    proptest::prelude::any::<bool>(),
                ),
                0..30,
            ),
        ) {
            let text: String = lines
                .iter()
                .map(|(a, t, sep, name, tail, short)| {
                    let addr = if *short { format!("{a:x}") } else { format!("{a:016x}") };
                    format!("{addr} {t}{sep} {name}{tail}\n")
                })
                .collect();
            proptest::prop_assert_eq!(scanned_kallsyms(&text), reference_kallsyms(&text));
        }
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
                        state: NORMAL,
                        seq: arena.seq(),
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
        // Names left in the mapped file make the same table as copied ones.
        let shared = SymbolMap::from_elf_shared(Arc::new(exe.clone()), &exe).expect("elf");
        let view = |m: &SymbolMap| -> Vec<(u64, u64, String)> {
            m.symbols()
                .iter()
                .map(|s| (s.start, s.end, s.name().to_string()))
                .collect()
        };
        assert_eq!(view(&shared), view(&m));
        assert_eq!(shared.find(off).map(|s| s.name()), Some("main"));
    }

    proptest::proptest! {
        /// Choosing among duplicates on first lookup finds what choosing at load time does,
        /// over two passes (`.symtab`, then `.dynsym`) and PLT symbols added afterwards.
        #[test]
        fn lazy_duplicates_find_what_eager_ones_do(
            syms in proptest::collection::vec((0u64..6, 0u64..3, 0u8..3, 0usize..8, proptest::prelude::any::<bool>()), 1..40),
            plt in proptest::collection::vec(0u64..6, 0..3),
        ) {
            const NAMES: [&str; 8] = ["_ZN3FooC1Ev", "_ZN3FooC2Ev", "_ZN1a1bEv", "__x",
                "_ZN3BarD2Ev", "_Z3bazv", "baz", "__GI_baz"];
            let maps: Vec<SymbolMap> = [false, true].into_iter().map(|lazy| {
                let mut arena = Arena::default();
                let mut pass = [Vec::new(), Vec::new()];
                // All `.symtab` names are read before the `.dynsym` ones.
                for (p, want) in pass.iter_mut().zip([false, true]) {
                    for &(start, size, bind, name, dynsym) in &syms {
                        if dynsym != want {
                            continue;
                        }
                        let (off, len) = arena.add(NAMES[name]);
                        p.push(Candidate {
                            start: start * 16, end: start * 16 + size * 8, bind, module: false,
                            state: NORMAL, seq: arena.seq(), off, len,
                        });
                    }
                }
                let [mut c, d] = pass;
                fix_pass(&mut c, &arena, true, lazy);
                c.extend(d);
                fix_pass(&mut c, &arena, true, lazy);
                for &p in &plt {
                    let (off, len) = arena.add("p@plt");
                    c.push(Candidate { start: p * 16 + 4, end: p * 16 + 12, bind: STB_GLOBAL,
                        module: false, state: EXTRA, seq: arena.seq(), off, len });
                }
                c.sort_unstable_by_key(|s| (s.start, s.seq));
                SymbolMap::from_fixed(c, arena, true)
            }).collect();
            for addr in 0..120 {
                let [e, l] = [&maps[0], &maps[1]].map(|m| m.find(addr).map(|s| (s.start, s.end, s.raw().to_string())));
                proptest::prop_assert_eq!(e, l, "addr {}", addr);
            }
        }

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
            // Names left in the (mangled) file, measured on use.
            if let Some(m) = SymbolMap::from_elf_shared(Arc::new(data.clone()), &data) {
                for s in m.symbols().iter().take(50) {
                    let _ = m.find(s.start);
                    let _ = (s.name(), s.raw());
                }
            }
            let k = SymbolMap::from_kallsyms(&text);
            let _ = k.find(0xffff_ffff_8100_0000);
        }
    }
}

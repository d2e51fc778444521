//! Inline frames and source lines of callchain frames, from the DWARF of the file a DSO's
//! symbols come from (perf's `symsrc_filename`: the binary, or its debug file such as Debian's
//! `libc6-dbg` build-id file).
//!
//! perf 6.1 (`machine.c: append_inlines`, `srcline.c`) asks `addr2line -a -i -f` about each
//! frame its DWARF unwinder gives (`unwind_entry`; not the frames of a recorded callchain,
//! frame-pointer ones included: `add_callchain_ip` does not ask), when the frame has a symbol
//! (inline names are on by default, `--no-inline` turns them off) and replaces the frame by the function names addr2line gives, innermost first: a name
//! equal to the frame's symbol is that symbol (printed as usual, with its DSO); any other
//! name is an inlined function, printed `NAME+0xOFF (inlined)` with the offset from the
//! frame symbol's start and no DSO. Without DWARF for the address, addr2line falls back to
//! the symbol table's name, so the frame stays as it is. Source lines (`-F +srcline`,
//! `--srcline`) are the line table's `basename:line` for the address, printed on the next
//! line after two spaces, for every line of the frame.
//!
//! Files are mapped once per DSO and kept for the rest of the process (the parsed DWARF
//! borrows them); replay runs are one process per input file.

use super::dso::FileSource;
use crate::dwarf::Dwarf;
use object::{Object, ObjectSegment};
use std::collections::HashMap;
use std::rc::Rc;

/// One name addr2line gives for an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineName {
    /// The function name as addr2line gives it ([`Dwarf::addr2line_name`]).
    pub name: Box<str>,
}

struct DsoDebug {
    dwarf: Dwarf<'static>,
    /// `(file offset, size, vaddr)` of the binary's load segments.
    loads: Vec<(u64, u64, u64)>,
}

/// Per-DSO DWARF and per-address answers.
#[derive(Default)]
pub struct Inlines {
    dsos: HashMap<u32, Option<DsoDebug>>,
    names: HashMap<(u32, u64), Rc<[InlineName]>>,
    lines: HashMap<(u32, u64), Option<Rc<str>>>,
}

impl std::fmt::Debug for Inlines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Inlines({} dsos)", self.dsos.len())
    }
}

/// Keeps a file read through `files` for the rest of the process.
fn leak(files: &dyn FileSource, path: &str) -> Option<&'static [u8]> {
    let b: &'static dyn AsRef<[u8]> = Box::leak(files.read(path)?);
    Some(b.as_ref())
}

impl Inlines {
    /// Nothing loaded yet.
    pub fn new() -> Inlines {
        Inlines::default()
    }

    fn debug(
        &mut self,
        dso: u32,
        binary: &str,
        symfile: impl FnOnce() -> Option<String>,
        files: &dyn FileSource,
    ) -> Option<&DsoDebug> {
        self.dsos
            .entry(dso)
            .or_insert_with(|| {
                let bin = leak(files, binary)?;
                let file = object::File::parse(bin).ok()?;
                let loads = file
                    .segments()
                    .map(|s| {
                        let (off, size) = s.file_range();
                        (off, size, s.address())
                    })
                    .collect();
                let path = symfile()?;
                let sym = if path == binary {
                    bin
                } else {
                    leak(files, &path)?
                };
                let dwarf = Dwarf::parse(sym).ok()?;
                Some(DsoDebug { dwarf, loads })
            })
            .as_ref()
    }

    /// The function names addr2line gives for the DSO-relative address `addr` (a file
    /// offset, as perf's map-relative addresses are) of DSO `dso`, innermost first; empty
    /// without DWARF there. `binary` is the DSO's path; `symfile` finds the file its
    /// symbols come from.
    pub fn names(
        &mut self,
        dso: u32,
        addr: u64,
        binary: &str,
        symfile: impl FnOnce() -> Option<String>,
        files: &dyn FileSource,
    ) -> Rc<[InlineName]> {
        if let Some(v) = self.names.get(&(dso, addr)) {
            return v.clone();
        }
        let v: Rc<[InlineName]> = match self.debug(dso, binary, symfile, files) {
            Some(d) => match vaddr(&d.loads, addr) {
                Some(pc) => addr2line_names(d, pc),
                None => Rc::from(Vec::new()),
            },
            None => Rc::from(Vec::new()),
        };
        self.names.insert((dso, addr), v.clone());
        v
    }

    /// perf's srcline of `addr` in DSO `dso`: `basename:line`, None when unknown.
    pub fn srcline(
        &mut self,
        dso: u32,
        addr: u64,
        binary: &str,
        symfile: impl FnOnce() -> Option<String>,
        files: &dyn FileSource,
    ) -> Option<Rc<str>> {
        if let Some(v) = self.lines.get(&(dso, addr)) {
            return v.clone();
        }
        let v = self.debug(dso, binary, symfile, files).and_then(|d| {
            let pc = vaddr(&d.loads, addr)?;
            let (file, line) = d.dwarf.line_at(pc)?;
            let base = file.rsplit('/').next().unwrap_or(&file);
            Some(Rc::from(format!("{base}:{line}")))
        });
        self.lines.insert((dso, addr), v.clone());
        v
    }
}

/// What binutils' `addr2line -i -f` prints for `pc`, innermost first, demangled as perf
/// names inline frames. The first is the function instance with the smallest range holding
/// `pc` (of several with the same range, the last in the file, as bfd's
/// `lookup_address_in_function_table` picks); then, as `bfd_find_inliner_info` walks
/// `caller_func`, the instance whose DIE encloses it, up to the concrete subprogram. The
/// walk follows the DIE tree, not the ranges: a function inlined whole into another often
/// has exactly its caller's range (Rust's `get_stack_start` in `stack_start_aligned`).
fn addr2line_names(d: &DsoDebug, pc: u64) -> Rc<[InlineName]> {
    let insts = d.dwarf.instances_at(pc);
    let size = |f: &crate::dwarf::FuncInstance| {
        f.ranges
            .iter()
            .find(|(b, e)| (*b..*e).contains(&pc))
            .map_or(0, |(b, e)| e - b)
    };
    let Some(first) = insts
        .iter()
        .min_by_key(|f| (size(f), std::cmp::Reverse(f.die)))
    else {
        return Rc::from(Vec::new());
    };
    let by_die: HashMap<u64, &crate::dwarf::FuncInstance> =
        insts.iter().map(|f| (f.die, f)).collect();
    let mut chain = vec![first];
    while let Some(up) = chain
        .last()
        .and_then(|f| f.caller)
        .and_then(|c| by_die.get(&c))
    {
        if chain.len() > insts.len() {
            break;
        }
        chain.push(up);
    }
    chain
        .into_iter()
        .map(|f| InlineName {
            name: inline_frame_name(&d.dwarf.addr2line_name(f)).into(),
        })
        .collect()
}

/// The name perf 6.1 gives an inline frame (`srcline.c: new_inline_sym`): the function name
/// addr2line prints (the DWARF linkage name when there is one, as bfd prefers
/// `DW_AT_linkage_name` to `DW_AT_name`; perf runs addr2line without `-C`), demangled by
/// `dso__demangle_sym` like a symbol-table name (Rust v0 and legacy, C++ without
/// parameters); a name that does not demangle stays as it is.
pub fn inline_frame_name(addr2line_name: &str) -> String {
    super::symbols::perf_demangle(addr2line_name)
}

/// The link-time address of file offset `off`, through the load segment holding it.
fn vaddr(loads: &[(u64, u64, u64)], off: u64) -> Option<u64> {
    loads
        .iter()
        .find(|(o, size, _)| off >= *o && off < o + size)
        .map(|(o, _, v)| v + (off - o))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_offsets_become_link_addresses_through_their_segment() {
        let loads = [(0, 0x1000, 0x400000), (0x1000, 0x2000, 0x401000)];
        assert_eq!(vaddr(&loads, 0x1234), Some(0x401234));
        assert_eq!(vaddr(&loads, 0x10), Some(0x400010));
        assert_eq!(vaddr(&loads, 0x5000), None);
    }

    #[test]
    fn inline_names_are_demangled_as_perf_demangles_symbols() {
        // Rust v0 (std since 1.8x): crate hashes dropped, generic arguments and closures kept.
        assert_eq!(
            inline_frame_name(
                "_RNvNtNtNtNtNtCsjrHSEGnQ3l9_3std3sys3pal4unix14stack_overflow3imp15get_stack_start"
            ),
            "std::sys::pal::unix::stack_overflow::imp::get_stack_start"
        );
        assert_eq!(
            inline_frame_name("_RNCNvNtCsjrHSEGnQ3l9_3std2rt19lang_start_internal0B5_"),
            "std::rt::lang_start_internal::{closure#0}"
        );
        // Legacy: the hash suffix dropped, `$LT$`-style escapes decoded.
        assert_eq!(
            inline_frame_name("_ZN12clap_builder7builder3arg3Arg9long_help17hd943be7204961c8bE"),
            "clap_builder::builder::arg::Arg::long_help"
        );
        assert_eq!(
            inline_frame_name(
                "_ZN5alloc7raw_vec19RawVec$LT$T$C$A$GT$8grow_one17h97417871b37dfd62E"
            ),
            "alloc::raw_vec::RawVec<T,A>::grow_one"
        );
        // C++ without parameters; C and DW_AT_name-only names unchanged.
        assert_eq!(inline_frame_name("_ZN3foo3barEi"), "foo::bar");
        assert_eq!(
            inline_frame_name("elf_dynamic_do_Rela"),
            "elf_dynamic_do_Rela"
        );
        assert_eq!(inline_frame_name("{closure#0}"), "{closure#0}");
    }

    #[test]
    fn a_dso_without_a_file_has_no_names() {
        let mut i = Inlines::new();
        let v = i.names(
            1,
            0x10,
            "/nonexistent",
            || None,
            &super::super::dso::NoFiles,
        );
        assert!(v.is_empty());
        assert!(i
            .srcline(
                1,
                0x10,
                "/nonexistent",
                || None,
                &super::super::dso::NoFiles
            )
            .is_none());
    }
}

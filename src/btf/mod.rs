//! BTF, the kernel's compact type information: the types of kernel functions and structs
//! without DWARF, so `vfs_read file->f_path.dentry` resolves to offsets on any kernel built
//! with `CONFIG_DEBUG_INFO_BTF=y` (5.2+; `/sys/kernel/btf/vmlinux` since 5.4, modules'
//! `/sys/kernel/btf/<module>` since 5.11).
//!
//! # The format
//!
//! Specified by `include/uapi/linux/btf.h` and `Documentation/bpf/btf.rst`. A 24-byte header
//! (`magic 0xEB9F`, `version 1`, `flags`, `hdr_len`, then `type_off`, `type_len`, `str_off`,
//! `str_len`, offsets counted from the end of the header) is followed by a type section and a
//! string section. Types are numbered from 1 in the order they appear; id 0 is `void`. Each
//! type is a 12-byte record (`name_off`, `info`, `size` or `type`) followed by a tail whose
//! length depends on the kind (see [`Kind`]): the only way to find type *n* is to walk the
//! *n − 1* before it, so [`Btf::parse`] walks them once and keeps a 16-byte entry per type;
//! tails are decoded when asked for. The byte order is the writer's: the magic reads `9f eb`
//! little-endian and `eb 9f` big-endian, and both are accepted.
//!
//! Module BTF is *split* BTF ([`Btf::parse_split`]): its type ids continue after the base's last
//! id, and its string offsets after the base's string section length, so a module's struct can
//! refer to `struct file` in vmlinux by id.
//!
//! ELF files (a `vmlinux` or `.ko`) carry the same bytes in a `.BTF` section, which
//! [`Btf::parse`] finds with `object`. `.BTF.ext` (line info for BPF programs) is not needed.
//!
//! # Kernel-version differences
//!
//! - `kind_flag` on STRUCT/UNION (5.0; pahole sets it on structs with bitfields): when set, a
//!   member's `offset` holds the bitfield size in bits 24–31 and the bit offset in bits 0–23.
//!   Without it, `offset` is the bit offset and a bitfield's width and extra bit offset come
//!   from the member's INT encoding (bits 0–7 width, 16–23 offset).
//!   [`members`](crate::debuginfo::TypeSource::members) handles both.
//! - FLOAT 5.13, DECL_TAG 5.16, TYPE_TAG 5.17 (`__user`, `__rcu` on pointers; skipped by
//!   `peel` like a qualifier), ENUM64 6.0 (64-bit enums; kind_flag marks signed enums, also on
//!   ENUM since 6.0). A kind above 19 stops parsing with [`BtfError::UnknownKind`], since its
//!   record length is unknown.
//!
//! # Choices
//!
//! - Pointers are 8 bytes: rprobe probes x86-64 kernels, and BTF does not record the width.
//! - An array with `nelems == 0` (a flexible `[]` or a GNU `[0]`, which BTF does not tell
//!   apart) peels to `count: None`; [`type_name`](crate::debuginfo::TypeSource::type_name)
//!   spells it `[0]` as pahole does.
//! - When several FUNCs share a name (static functions of different files), the first wins.
//! - Type names are the kernel's own (`long unsigned int`, `size_t`): typedef names are kept,
//!   as pahole and perf show them.
//!
//! Parsing `/sys/kernel/btf/vmlinux` (5.5 MB, 126 610 types, 6.18 x86-64) takes about 11 ms
//! in a release build, name index included (3 ms copying the bytes, 2 ms walking the records,
//! 6 ms hashing and sorting 69 000 names); a name lookup then takes a few microseconds.

mod error;
mod names;
mod query;
mod raw;
#[cfg(test)]
pub(crate) mod testutil;

use std::path::Path;
use std::sync::Arc;

pub use error::BtfError;
pub use raw::Kind;
use raw::{Entry, Layer};

use crate::debuginfo::TypeId;

/// The most typedefs, qualifiers or nested arrays a walk follows before calling it a cycle.
pub const MAX_HOPS: usize = 64;

/// One parsed blob with its name index.
struct Part {
    layer: Layer,
    /// `(name_hash(name), id)` of every named FUNC, STRUCT, UNION and TYPEDEF, sorted. A
    /// lookup binary-searches the hash and compares the names of the ids found; this builds
    /// in a few milliseconds for vmlinux's 70 000 names, where a `HashMap<String, _>` took 20.
    names: Vec<(u64, u32)>,
}

impl std::fmt::Debug for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Part")
            .field("layer", &self.layer)
            .field("names", &self.names.len())
            .finish()
    }
}

/// FxHash over the name's bytes: fast, and collisions only cost a string comparison.
fn name_hash(name: &str) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h: u64 = name.len() as u64;
    let mut chunks = name.as_bytes().chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    for &b in chunks.remainder() {
        h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
    }
    h
}

/// Parsed BTF: vmlinux's, or a module's split BTF with its base. Cloning is cheap (the parsed
/// data is shared).
#[derive(Debug, Clone)]
pub struct Btf {
    /// Base first, then the split BTF on top of it.
    parts: Vec<Arc<Part>>,
}

impl Btf {
    /// Parse raw BTF (as in `/sys/kernel/btf/vmlinux`) or an ELF file's `.BTF` section.
    pub fn parse(data: &[u8]) -> Result<Btf, BtfError> {
        Btf::parse_vec(btf_section(data)?)
    }

    /// [`Btf::parse`] without copying raw BTF.
    fn parse_vec(data: Vec<u8>) -> Result<Btf, BtfError> {
        let data = if is_elf(&data) {
            btf_section(&data)?
        } else {
            data
        };
        let mut btf = Btf { parts: Vec::new() };
        btf.push(data, 1, 0)?;
        Ok(btf)
    }

    /// Parse split BTF (a module's `/sys/kernel/btf/<module>` or `.ko`) on top of `base`: its
    /// type ids continue after `base`'s last id and its string offsets after `base`'s strings.
    pub fn parse_split(data: &[u8], base: &Btf) -> Result<Btf, BtfError> {
        let mut btf = base.clone();
        let first_id = base.last_id().checked_add(1).ok_or(BtfError::BadTypeId {
            id: u64::from(base.last_id()) + 1,
            last: base.last_id(),
        })?;
        let str_base = base
            .parts
            .last()
            .map(|p| u64::from(p.layer.str_base) + p.layer.str_len() as u64)
            .unwrap_or(0);
        // Past u32 the top blob's strings are unreachable, which is harmless.
        let str_base = u32::try_from(str_base).unwrap_or(u32::MAX);
        btf.push(btf_section(data)?, first_id, str_base)?;
        Ok(btf)
    }

    /// Read and parse a file: raw BTF or an ELF file with `.BTF`. Errors name the path.
    pub fn load(path: impl AsRef<Path>) -> Result<Btf, BtfError> {
        let path = path.as_ref();
        Btf::parse_vec(read(path)?).map_err(|e| in_file(path, e))
    }

    /// Read and parse a module's split BTF on top of `base` (see [`Btf::parse_split`]).
    pub fn load_split(path: impl AsRef<Path>, base: &Btf) -> Result<Btf, BtfError> {
        let path = path.as_ref();
        let data = read(path)?;
        Btf::parse_split(&data, base).map_err(|e| in_file(path, e))
    }

    fn push(&mut self, bytes: Vec<u8>, first_id: u32, str_base: u32) -> Result<(), BtfError> {
        let layer = Layer::parse(bytes, first_id, str_base)?;
        let mut names = Vec::new();
        for (i, e) in layer.entries.iter().enumerate() {
            let indexed = matches!(
                e.kind,
                Kind::Func | Kind::Struct | Kind::Union | Kind::Typedef
            );
            if !indexed || e.name_off == 0 {
                continue;
            }
            let id = layer.first_id + i as u32;
            // Split BTF may name its types with the base's strings.
            let name = match e.name_off.checked_sub(layer.str_base) {
                Some(off) => layer.str_at(off),
                None => self.str_at(e.name_off),
            };
            let name = name.ok_or(BtfError::BadString {
                offset: e.name_off,
                id,
            })?;
            names.push((name_hash(name), id));
        }
        names.sort_unstable();
        self.parts.push(Arc::new(Part { layer, names }));
        Ok(())
    }

    /// The highest type id (ids run from 1; 0 is `void`).
    pub fn last_id(&self) -> u32 {
        self.parts.last().map(|p| p.layer.last_id()).unwrap_or(0)
    }

    /// The first type id of the top blob: 1 for vmlinux, past vmlinux's for split BTF.
    pub fn first_own_id(&self) -> u32 {
        self.parts.last().map(|p| p.layer.first_id).unwrap_or(1)
    }

    /// The kind of type `ty`; `None` for `void` (id 0).
    pub fn kind(&self, ty: TypeId) -> Result<Option<Kind>, BtfError> {
        if ty.0 == 0 {
            return Ok(None);
        }
        Ok(Some(self.entry(ty.0)?.1.kind))
    }

    /// The name of type `ty`, empty for anonymous types and `void`.
    pub fn name(&self, ty: TypeId) -> Result<&str, BtfError> {
        if ty.0 == 0 {
            return Ok("");
        }
        let (_, e, id) = self.entry(ty.0)?;
        self.name_of(&e, id)
    }

    /// FUNC, STRUCT, UNION and TYPEDEF types named `name`: split BTF's own first, then the
    /// base's, each in id order.
    pub fn find_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = TypeId> + 'a {
        let h = name_hash(name);
        self.parts.iter().rev().flat_map(move |p| {
            let start = p.names.partition_point(|&(ph, _)| ph < h);
            p.names
                .get(start..)
                .unwrap_or_default()
                .iter()
                .take_while(move |&&(ph, _)| ph == h)
                .filter(move |&&(_, id)| self.name(TypeId(u64::from(id))).ok() == Some(name))
                .map(|&(_, id)| TypeId(u64::from(id)))
        })
    }

    /// The first type named `name` whose kind is one of `kinds`.
    fn find_kind(&self, name: &str, kinds: &[Kind]) -> Option<TypeId> {
        self.find_named(name)
            .find(|&ty| matches!(self.kind(ty), Ok(Some(k)) if kinds.contains(&k)))
    }

    /// The FUNC named `name`.
    pub fn find_func(&self, name: &str) -> Option<TypeId> {
        self.find_kind(name, &[Kind::Func])
    }

    /// All FUNCs named `name`: more than one when static functions of different files share a
    /// name and differ in prototype.
    pub fn find_funcs(&self, name: &str) -> Vec<TypeId> {
        self.find_named(name)
            .filter(|&ty| matches!(self.kind(ty), Ok(Some(Kind::Func))))
            .collect()
    }

    /// The struct or union named `name` (`"file"` for `struct file`).
    pub fn find_struct(&self, name: &str) -> Option<TypeId> {
        self.find_kind(name, &[Kind::Struct, Kind::Union])
    }

    /// The typedef named `name`.
    pub fn find_typedef(&self, name: &str) -> Option<TypeId> {
        self.find_kind(name, &[Kind::Typedef])
    }

    /// Names of all functions, sorted and without duplicates (for `rprobe funcs`).
    pub fn function_names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .parts
            .iter()
            .flat_map(|p| p.layer.entries.iter())
            .filter(|e| e.kind == Kind::Func)
            .filter_map(|e| self.str_at(e.name_off))
            .filter(|n| !n.is_empty())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The layer holding `id` and its entry (`id` ≥ 1).
    fn entry(&self, id: u64) -> Result<(&Layer, Entry, u32), BtfError> {
        let bad = || BtfError::BadTypeId {
            id,
            last: self.last_id(),
        };
        let id32 = u32::try_from(id).map_err(|_| bad())?;
        let layer = self
            .parts
            .iter()
            .rev()
            .map(|p| &p.layer)
            .find(|l| id32 >= l.first_id)
            .ok_or_else(bad)?;
        let e = layer
            .entries
            .get((id32 - layer.first_id) as usize)
            .ok_or_else(bad)?;
        Ok((layer, *e, id32))
    }

    /// The string at `off`, counting the base's strings first for split BTF.
    fn str_at(&self, off: u32) -> Option<&str> {
        let layer = self
            .parts
            .iter()
            .rev()
            .map(|p| &p.layer)
            .find(|l| off >= l.str_base)?;
        layer.str_at(off - layer.str_base)
    }

    /// The name of entry `e` (type `id`).
    fn name_of(&self, e: &Entry, id: u32) -> Result<&str, BtfError> {
        self.str_at(e.name_off).ok_or(BtfError::BadString {
            offset: e.name_off,
            id,
        })
    }
}

/// The BTF bytes of `data`: all of it, or an ELF file's `.BTF` section.
fn btf_section(data: &[u8]) -> Result<Vec<u8>, BtfError> {
    use object::{Object, ObjectSection};
    if !is_elf(data) {
        return Ok(data.to_vec());
    }
    let file = object::File::parse(data).map_err(|e| BtfError::Elf(e.to_string()))?;
    let section = file.section_by_name(".BTF").ok_or(BtfError::NoBtfSection)?;
    let bytes = section.data().map_err(|e| BtfError::Elf(e.to_string()))?;
    Ok(bytes.to_vec())
}

fn is_elf(data: &[u8]) -> bool {
    data.starts_with(b"\x7fELF")
}

/// The BTF bytes of `path`: the whole file for raw BTF, only the `.BTF` section of an ELF
/// file (a vmlinux is 590 MB with DWARF; its `.BTF` about 4 MB), read through a mapping.
fn read(path: &Path) -> Result<Vec<u8>, BtfError> {
    use std::io::Read;
    let io = |source| BtfError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut magic = [0u8; 4];
    let head = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut magic))
        .map_err(io)?;
    if head == 4 && is_elf(&magic) {
        if let Ok(map) = crate::sys::map_file(path) {
            return btf_section(&map);
        }
    }
    std::fs::read(path).map_err(io)
}

fn in_file(path: &Path, e: BtfError) -> BtfError {
    BtfError::InFile {
        path: path.to_path_buf(),
        source: Box::new(e),
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::{elf_with_btf, sample, BtfBuilder};
    use super::*;
    use crate::debuginfo::{CType, TypeSource};
    use proptest::prelude::*;

    const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

    fn t(id: u32) -> TypeId {
        TypeId(u64::from(id))
    }

    #[test]
    fn finds_by_name_and_kind() {
        let (blob, s) = sample(false);
        let btf = Btf::parse(&blob).unwrap();
        assert_eq!(btf.find_func("vfs_read"), Some(t(s.vfs_read)));
        assert_eq!(btf.find_struct("qstr"), Some(t(s.qstr)));
        assert_eq!(btf.find_struct("u"), Some(t(s.union_u)));
        assert_eq!(btf.find_typedef("size_t"), Some(t(s.size_t)));
        assert_eq!(btf.find_struct("vfs_read"), None);
        assert_eq!(btf.find_func("int"), None);
        assert_eq!(btf.function_names(), ["noargs", "printk", "vfs_read"]);
        assert_eq!(btf.name(t(s.qstr)).unwrap(), "qstr");
        assert_eq!(btf.kind(t(s.big)).unwrap(), Some(Kind::Enum64));
        assert_eq!(btf.kind(TypeId(0)).unwrap(), None);
        // Debug stays short: counts, not the data.
        let debug = format!("{btf:?}");
        assert!(debug.contains("types: 34") && debug.len() < 300, "{debug}");
    }

    #[test]
    fn reads_btf_from_an_elf_section() {
        let (blob, s) = sample(false);
        let btf = Btf::parse(&elf_with_btf(&blob)).unwrap();
        assert_eq!(btf.find_func("vfs_read"), Some(t(s.vfs_read)));
        // An ELF file without .BTF, and ELF bytes cut short.
        let mut no_btf = elf_with_btf(&blob);
        let at = no_btf.windows(5).position(|w| w == b".BTF\0").unwrap();
        no_btf[at + 1] = b'X';
        assert!(matches!(Btf::parse(&no_btf), Err(BtfError::NoBtfSection)));
        let elf = elf_with_btf(&blob);
        for len in 4..elf.len() {
            assert!(Btf::parse(&elf[..len]).is_err(), "cut at {len}");
        }
    }

    #[test]
    fn load_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = Btf::load(&missing).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        let bad = dir.path().join("bad");
        std::fs::write(&bad, b"hello world, not BTF").unwrap();
        let e = Btf::load(&bad).unwrap_err();
        assert!(e.to_string().contains("bad: not BTF"), "{e}");
        let good = dir.path().join("good");
        std::fs::write(&good, sample(false).0).unwrap();
        assert!(Btf::load(&good).unwrap().find_func("vfs_read").is_some());
    }

    /// A module's split BTF: ids and string offsets continue after the base's, and its types
    /// refer to the base's.
    #[test]
    fn split_btf_continues_the_base() {
        let (blob, s) = sample(false);
        let base = Btf::parse(&blob).unwrap();
        let str_len = u32::from_le_bytes(blob[20..24].try_into().unwrap());
        let mut m = BtfBuilder::split(base.last_id() + 1, str_len);
        let ptr = m.ptr(s.qstr);
        let st = m.strukt("mod_state", 16, false, &[("q", ptr, 0), ("n", s.uint, 64)]);
        let st_ptr = m.ptr(st);
        let proto = m.func_proto(s.int, &[("st", st_ptr)]);
        let f = m.func("mod_fn", proto);
        let split = Btf::parse_split(&m.build(), &base).unwrap();
        assert_eq!(split.first_own_id(), base.last_id() + 1);
        assert_eq!(split.last_id(), f);
        assert_eq!(split.find_struct("mod_state"), Some(t(st)));
        // Base names are still found, through the split.
        assert_eq!(split.find_func("vfs_read"), Some(t(s.vfs_read)));
        let members = split.members(t(st)).unwrap();
        assert_eq!(split.type_name(members[0].ty), "struct qstr *");
        assert_eq!(split.type_name(members[1].ty), "unsigned int");
        let p = split.function("mod_fn").unwrap();
        assert_eq!(split.type_name(p.params[0].ty), "struct mod_state *");
        assert_eq!(split.size_of(t(st)), Ok(16));
        // The base alone does not know the module's ids.
        assert!(base.peel(t(st)).is_err());
    }

    #[test]
    fn split_btf_may_use_base_strings() {
        let (blob, s) = sample(false);
        let base = Btf::parse(&blob).unwrap();
        let str_len = u32::from_le_bytes(blob[20..24].try_into().unwrap());
        let qstr_off = blob.windows(6).position(|w| w == b"\0qstr\0").unwrap() as u32 + 1
            - 24
            - u32::from_le_bytes(blob[16..20].try_into().unwrap());
        let mut m = BtfBuilder::split(base.last_id() + 1, str_len);
        // A typedef of the module named with the base's "qstr" string.
        m.raw("", 8, 0, false, s.qstr, &[]);
        let mut bytes = m.build();
        bytes[24..28].copy_from_slice(&qstr_off.to_le_bytes());
        let split = Btf::parse_split(&bytes, &base).unwrap();
        assert_eq!(split.find_typedef("qstr"), Some(t(base.last_id() + 1)));
    }

    /// The running kernel's BTF, when readable: well-known types and the parse time.
    #[test]
    fn parses_the_running_kernel() {
        let Ok(data) = std::fs::read(VMLINUX) else {
            println!("SKIP btf::tests::parses_the_running_kernel: cannot read {VMLINUX}");
            return;
        };
        let start = std::time::Instant::now();
        let btf = Btf::parse(&data).unwrap();
        println!(
            "parsed {} bytes, {} types in {:?}",
            data.len(),
            btf.last_id(),
            start.elapsed()
        );
        let task = btf.find_struct("task_struct").unwrap();
        assert!(matches!(btf.peel(task), Ok(CType::Struct { .. })));
        let f = btf.function("vfs_read").unwrap();
        let names: Vec<_> = f.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["file", "buf", "count", "pos"]);
        let types: Vec<_> = f.params.iter().map(|p| btf.type_name(p.ty)).collect();
        assert_eq!(types, ["struct file *", "char *", "size_t", "loff_t *"]);
        assert_eq!(btf.type_name(f.ret.unwrap()), "ssize_t");
        // Every type answers every query.
        for id in 0..=u64::from(btf.last_id()) {
            let _ = btf.peel(TypeId(id));
            let _ = btf.size_of(TypeId(id));
            let _ = btf.members(TypeId(id));
        }
    }

    /// A sample of real BTF: the first 64 KiB of vmlinux's type section (cut at a record
    /// boundary) with its whole string section, or the hand-built blob when that is unreadable.
    fn fuzz_seed() -> Vec<u8> {
        let Ok(data) = std::fs::read(VMLINUX) else {
            return sample(false).0;
        };
        let Ok(layer) = Layer::parse(data.clone(), 1, 0) else {
            return sample(false).0;
        };
        let word = |off: usize| u32::from_le_bytes(data[off..off + 4].try_into().unwrap());
        let (hdr, str_off, str_len) = (word(4) as usize, word(16) as usize, word(20) as usize);
        let cut = layer
            .entries
            .iter()
            .map(|e| e.off as usize - hdr)
            .take_while(|&off| off <= 64 * 1024)
            .last()
            .unwrap_or(0);
        let mut out = data[..24].to_vec();
        out[4..8].copy_from_slice(&24u32.to_le_bytes());
        out[8..12].copy_from_slice(&0u32.to_le_bytes());
        out[12..16].copy_from_slice(&(cut as u32).to_le_bytes());
        out[16..20].copy_from_slice(&(cut as u32).to_le_bytes());
        out.extend_from_slice(&data[hdr..hdr + cut]);
        out.extend_from_slice(&data[hdr + str_off..hdr + str_off + str_len]);
        out
    }

    fn exercise(btf: &Btf) {
        let last = u64::from(btf.last_id());
        for id in (0..=last + 1).step_by(((last / 2000) as usize).max(1)) {
            let _ = btf.peel(TypeId(id));
            let _ = btf.size_of(TypeId(id));
            let _ = btf.members(TypeId(id));
            let _ = btf.type_name(TypeId(id));
        }
        for name in btf.function_names().into_iter().take(200) {
            let _ = btf.function(name);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Flipped bytes in the header and types of real BTF: parse and query never panic.
        #[test]
        fn mutated_btf_never_panics(
            flips in prop::collection::vec((0usize..66 * 1024, any::<u8>()), 1..16)
        ) {
            thread_local! {
                static SEED: Vec<u8> = fuzz_seed();
            }
            let mut data = SEED.with(|s| s.clone());
            let header_and_types = data.len().min(66 * 1024);
            for (at, byte) in flips {
                if let Some(b) = data.get_mut(at % header_and_types) {
                    *b ^= byte;
                }
            }
            if let Ok(btf) = Btf::parse(&data) {
                exercise(&btf);
            }
        }

        /// The same on the hand-built blob, which has one of every shape.
        #[test]
        fn mutated_sample_never_panics(
            flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8)
        ) {
            let mut data = sample(false).0;
            let len = data.len();
            for (at, byte) in flips {
                if let Some(b) = data.get_mut(at % len) {
                    *b ^= byte;
                }
            }
            if let Ok(btf) = Btf::parse(&data) {
                for id in 0..=u64::from(btf.last_id()) + 1 {
                    let _ = btf.peel(TypeId(id));
                    let _ = btf.size_of(TypeId(id));
                    let _ = btf.members(TypeId(id));
                    let _ = btf.type_name(TypeId(id));
                }
                for f in ["vfs_read", "noargs", "printk"] {
                    let _ = btf.function(f);
                }
            }
        }
    }
}

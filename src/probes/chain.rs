//! Field chains: `file->f_path.dentry->d_name.name:string` into `+0(+40(+24(%di))):string`,
//! over any [`TypeSource`] (BTF or DWARF), with perf's rules for the default types.
//!
//! The walk keeps one of two states: the chain's current value is held by a fetch arg
//! (`Value`: a register, `$retval`, a stack slot), or it lives in memory at an address plus a
//! byte offset not loaded yet (`Memory`). `->` loads the pointer (if it is in memory) and
//! moves into the pointee at the member's offset; `.` adds the member's offset and needs the
//! struct in memory ("a structure in a register is not supported", as perf says); `[i]` adds
//! `i * size` inside an array, or loads a pointer first. Anonymous struct and union members
//! are searched through, adding their offsets. At the leaf, a value still in memory is loaded
//! once, with the type:
//! - an explicit `:string`/`:ustring` wants a `char` array (read in place) or a `char *`
//!   (one more `+0(...)`);
//! - an explicit integer type is kept as given;
//! - otherwise perf's default (`convert_variable_type()` in perf's probe-finder.c): a
//!   bitfield `b<width>@<bit>/<container bits>`, a signed integer `sNN`, anything else with a
//!   size `xNN` (pointers `x64`), NN the size in bits capped at 64.
//!
//! Bitfields: the container is the member type's size, placed at the aligned offset that
//! holds the field (the kernel's bit offset counts from the LSB of the loaded container on
//! little-endian x86_64); a field that straddles that alignment uses the smallest aligned
//! container that holds it.

use super::error::SpecError;
use super::fetch::{FetchArg, FetchType};
use super::spec::Field;
use crate::debuginfo::{CType, Member, TypeId, TypeSource};

/// The result of a chain: what to fetch, its type, and perf's default name for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The fetch arg.
    pub fetch: FetchArg,
    /// Its type.
    pub ty: FetchType,
    /// The last member name of the chain, or the variable's name.
    pub name: String,
}

/// Where a variable's value is when the probe fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// Held by a fetch arg: a register, `$retval`, a stack slot, an immediate.
    Value(FetchArg),
    /// In memory at the address `addr` evaluates to, plus `offset`.
    Memory(FetchArg, i64),
    /// In the probed file's data at this file offset (a global or static of a user
    /// program): loaded with `@+OFFSET`.
    FileData(i64),
}

enum State {
    Value(FetchArg),
    Memory { addr: FetchArg, offset: i64 },
    FileData(i64),
}

impl State {
    /// The value of the current (pointer or scalar) item as a fetch arg.
    fn load(self, user: bool) -> FetchArg {
        match self {
            State::Value(v) => v,
            State::Memory { addr, offset } => addr.deref(offset, user),
            State::FileData(off) => FetchArg::FileOffset(super::fetch::Num::dec(off)),
        }
    }

    /// Move `delta` bytes further into the item in memory; false for a register value.
    fn advance(&mut self, delta: i64) -> bool {
        match self {
            State::Memory { offset, .. } | State::FileData(offset) => {
                *offset += delta;
                true
            }
            State::Value(_) => false,
        }
    }
}

/// A bitfield found at the leaf.
struct Bits {
    bit_offset: u64,
    width: u32,
}

/// Walk `fields` from a variable whose value is `base` (of type `ty`), and type the leaf.
/// `var` is the variable's name (for messages and the default name), `pos` the argument's
/// position in the spec, `user` marks loads as user-memory loads (`@user` on kprobes).
#[allow(clippy::too_many_arguments)]
pub fn resolve_chain(
    src: &dyn TypeSource,
    var: &str,
    base: Base,
    ty: TypeId,
    fields: &[Field],
    want: Option<&FetchType>,
    user: bool,
    pos: usize,
) -> Result<Resolved, SpecError> {
    let err = |problem: String, fix: String| SpecError::at(pos, problem, fix);
    let bad = |e: crate::debuginfo::DebugInfoError| err(e.to_string(), String::new());
    let mut state = match base {
        Base::Value(v) => State::Value(v),
        Base::Memory(addr, offset) => State::Memory { addr, offset },
        Base::FileData(off) => State::FileData(off),
    };
    let mut cur = ty;
    let mut path = var.to_string();
    let mut name = var.to_string();
    let mut bits: Option<Bits> = None;
    for f in fields {
        if bits.is_some() {
            return Err(err(
                format!("{path} is a bitfield"),
                "a bitfield has no fields".into(),
            ));
        }
        match f {
            Field::Member { name: m, arrow } => {
                let peeled = src.peel(cur).map_err(bad)?;
                let (struct_ty, is_ptr) = match &peeled {
                    CType::Pointer { target } => (*target, true),
                    CType::Struct { .. } => (cur, false),
                    _ => {
                        return Err(err(
                            format!(
                                "{path} is {}, not a struct or a pointer to one",
                                src.type_name(cur)
                            ),
                            format!("{path} has no member {m}"),
                        ))
                    }
                };
                if is_ptr && !matches!(src.peel(struct_ty).map_err(bad)?, CType::Struct { .. }) {
                    return Err(err(
                        format!(
                            "{path} points to {}, not a struct",
                            src.type_name(struct_ty)
                        ),
                        "only struct and union pointers have members".into(),
                    ));
                }
                match (is_ptr, arrow) {
                    (true, false) => {
                        return Err(err(
                            format!("{path} is a pointer ({})", src.type_name(cur)),
                            format!("write {path}->{m}"),
                        ))
                    }
                    (false, true) => {
                        return Err(err(
                            format!("{path} is not a pointer ({})", src.type_name(cur)),
                            format!("write {path}.{m}"),
                        ))
                    }
                    _ => {}
                }
                let Some((member, bit_off)) = find_member(src, struct_ty, m, 0).map_err(bad)?
                else {
                    let all: Vec<String> = all_member_names(src, struct_ty).map_err(bad)?;
                    return Err(err(
                        format!("{} has no member '{m}'", src.type_name(struct_ty)),
                        format!("its members are: {}", all.join(", ")),
                    ));
                };
                if is_ptr {
                    state = State::Memory {
                        addr: state.load(user),
                        offset: 0,
                    };
                } else if matches!(state, State::Value(_)) {
                    return Err(err(
                        format!("{path} is a structure held in a register"),
                        "a structure in a register is not supported; probe where it is in memory"
                            .into(),
                    ));
                }
                if member.bitfield_size.is_none() {
                    state.advance((bit_off / 8) as i64);
                }
                if let Some(width) = member.bitfield_size {
                    bits = Some(Bits {
                        bit_offset: bit_off,
                        width,
                    });
                }
                path = format!("{path}{}{m}", if *arrow { "->" } else { "." });
                name = m.clone();
                cur = member.ty;
            }
            Field::Index(i) => {
                let peeled = src.peel(cur).map_err(bad)?;
                let (elem, through_ptr) = match peeled {
                    CType::Array { elem, .. } => (elem, false),
                    CType::Pointer { target } => (target, true),
                    _ => {
                        return Err(err(
                            format!(
                                "{path} is {}, neither an array nor a pointer",
                                src.type_name(cur)
                            ),
                            "only arrays and pointers take [N]".into(),
                        ))
                    }
                };
                let size = src.size_of(elem).map_err(bad)? as i64;
                let delta = size
                    .checked_mul(*i)
                    .ok_or_else(|| err("index too large".into(), String::new()))?;
                if through_ptr {
                    state = State::Memory {
                        addr: state.load(user),
                        offset: delta,
                    };
                } else if !state.advance(delta) {
                    return Err(err(
                        format!("{path} is an array held in a register"),
                        "probe where it is in memory".into(),
                    ));
                }
                path = format!("{path}[{i}]");
                cur = elem;
            }
        }
    }
    let leaf = src.peel(cur).map_err(bad)?;
    if let Some(Bits { bit_offset, width }) = bits {
        let cbytes = src.size_of(cur).map_err(bad)?.clamp(1, 8);
        let (cbyte, cbit, cbytes) = bitfield_container(bit_offset, width, cbytes);
        if !state.advance(cbyte) {
            return Err(err(
                format!("{path} is a bitfield in a register"),
                String::new(),
            ));
        }
        let fetch = state.load(user);
        if let Some(t) = want {
            if !matches!(t, FetchType::Bitfield { .. }) {
                // An explicit type reads the container whole.
                return Ok(Resolved {
                    fetch,
                    ty: t.clone(),
                    name,
                });
            }
        }
        let ty = FetchType::Bitfield {
            width: width as u8,
            offset: cbit as u8,
            container: (cbytes * 8) as u8,
        };
        return Ok(Resolved { fetch, ty, name });
    }
    if let Some(t) = want.filter(|t| t.is_string()) {
        // In user memory the string itself is read with `ustring` (the loads leading to it
        // stay `+u`): `+0(+u8(X)):ustring` rather than `+u0(+u8(X)):string`.
        let t = if user && *t == FetchType::String {
            &FetchType::Ustring
        } else {
            t
        };
        let fetch = match &leaf {
            CType::Array { elem, .. } if is_char(src, *elem) => match state {
                State::Memory { addr, offset } => addr.deref(offset, false),
                State::FileData(off) => FetchArg::FileOffset(super::fetch::Num::dec(off)),
                State::Value(_) => {
                    return Err(err(
                        format!("{path} is a char array in a register"),
                        String::new(),
                    ))
                }
            },
            CType::Pointer { target } if is_char(src, *target) => state.load(user).deref(0, false),
            _ => {
                return Err(err(
                    format!("{path} is {}, not a string", src.type_name(cur)),
                    "the string types read char arrays and char pointers".into(),
                ))
            }
        };
        return Ok(Resolved {
            fetch,
            ty: t.clone(),
            name,
        });
    }
    let fetch = state.load(user);
    let ty = match want {
        Some(t) => t.clone(),
        None => default_type(src, cur, &leaf).map_err(bad)?,
    };
    Ok(Resolved { fetch, ty, name })
}

/// perf's default type for a value of type `ty`.
pub fn default_type(
    src: &dyn TypeSource,
    ty: TypeId,
    leaf: &CType,
) -> Result<FetchType, crate::debuginfo::DebugInfoError> {
    let bits = (src.size_of(ty)? * 8).clamp(8, 64) as u8;
    let bits = match bits {
        0..=8 => 8,
        9..=16 => 16,
        17..=32 => 32,
        _ => 64,
    };
    Ok(match leaf {
        CType::Int { signed: true, .. } => FetchType::S(bits),
        _ => FetchType::X(bits),
    })
}

fn is_char(src: &dyn TypeSource, ty: TypeId) -> bool {
    matches!(
        src.peel(ty),
        Ok(CType::Int { is_char: true, .. }) | Ok(CType::Int { size: 1, .. })
    )
}

/// Byte offset of the container, bit offset inside it, container size in bytes.
fn bitfield_container(bit_offset: u64, width: u32, cbytes: u64) -> (i64, u64, u64) {
    let mut size = cbytes.next_power_of_two().clamp(1, 8);
    loop {
        let cbits = size * 8;
        let start = bit_offset / cbits * cbits;
        if bit_offset - start + u64::from(width) <= cbits || size == 8 {
            return ((start / 8) as i64, bit_offset - start, size);
        }
        size *= 2;
    }
}

/// Find member `name` of struct `ty`, searching anonymous members; the bit offset is from
/// the start of `ty`.
fn find_member(
    src: &dyn TypeSource,
    ty: TypeId,
    name: &str,
    depth: u32,
) -> Result<Option<(Member, u64)>, crate::debuginfo::DebugInfoError> {
    if depth > 16 {
        return Ok(None);
    }
    for m in src.members(ty)? {
        if m.name == name {
            let off = m.bit_offset;
            return Ok(Some((m, off)));
        }
        if m.name.is_empty() {
            if let Some((inner, off)) = find_member(src, m.ty, name, depth + 1)? {
                return Ok(Some((inner, off + m.bit_offset)));
            }
        }
    }
    Ok(None)
}

fn all_member_names(
    src: &dyn TypeSource,
    ty: TypeId,
) -> Result<Vec<String>, crate::debuginfo::DebugInfoError> {
    let mut out = Vec::new();
    for m in src.members(ty)? {
        if m.name.is_empty() {
            out.extend(all_member_names(src, m.ty).unwrap_or_default());
        } else {
            out.push(m.name);
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::debuginfo::{DebugInfoError, FuncProto, Param};
    use std::collections::HashMap;

    /// A tiny in-memory type source: ids index `types`.
    #[derive(Default)]
    pub(crate) struct Fake {
        pub types: Vec<(String, CType, u64)>,
        pub members: HashMap<u64, Vec<Member>>,
        pub funcs: HashMap<String, FuncProto>,
    }

    impl Fake {
        pub fn add(&mut self, name: &str, t: CType, size: u64) -> TypeId {
            self.types.push((name.into(), t, size));
            TypeId(self.types.len() as u64 - 1)
        }
        pub fn member(&mut self, s: TypeId, name: &str, ty: TypeId, bit: u64, bf: Option<u32>) {
            self.members.entry(s.0).or_default().push(Member {
                name: name.into(),
                ty,
                bit_offset: bit,
                bitfield_size: bf,
            });
        }
    }

    impl TypeSource for Fake {
        fn function(&self, name: &str) -> Result<FuncProto, DebugInfoError> {
            self.funcs
                .get(name)
                .cloned()
                .ok_or_else(|| DebugInfoError::NoFunction(name.into()))
        }
        fn peel(&self, ty: TypeId) -> Result<CType, DebugInfoError> {
            self.types
                .get(ty.0 as usize)
                .map(|t| t.1.clone())
                .ok_or(DebugInfoError::BadType(ty))
        }
        fn size_of(&self, ty: TypeId) -> Result<u64, DebugInfoError> {
            self.types
                .get(ty.0 as usize)
                .map(|t| t.2)
                .ok_or(DebugInfoError::BadType(ty))
        }
        fn members(&self, ty: TypeId) -> Result<Vec<Member>, DebugInfoError> {
            Ok(self.members.get(&ty.0).cloned().unwrap_or_default())
        }
        fn type_name(&self, ty: TypeId) -> String {
            self.types
                .get(ty.0 as usize)
                .map(|t| t.0.clone())
                .unwrap_or_default()
        }
    }

    /// Kernel-like types laid out as on Debian's 6.1 kernel (perf's lab output there is
    /// `+0(+40(+24(%di))):string`): file.f_path at 16, path.dentry at 8, dentry.d_name at 32,
    /// qstr.name at 8 behind an anonymous union, plus a bitfield and a char array in dentry.
    pub(crate) fn kernel_like() -> (Fake, TypeId) {
        let mut f = Fake::default();
        let ch = f.add(
            "char",
            CType::Int {
                size: 1,
                signed: true,
                is_char: true,
            },
            1,
        );
        let uchar = f.add(
            "unsigned char",
            CType::Int {
                size: 1,
                signed: false,
                is_char: true,
            },
            1,
        );
        let cstr = f.add("const unsigned char *", CType::Pointer { target: uchar }, 8);
        let u32t = f.add(
            "unsigned int",
            CType::Int {
                size: 4,
                signed: false,
                is_char: false,
            },
            4,
        );
        let i64t = f.add(
            "long",
            CType::Int {
                size: 8,
                signed: true,
                is_char: false,
            },
            8,
        );
        let qstr = f.add(
            "struct qstr",
            CType::Struct {
                name: "qstr".into(),
                size: 16,
                is_union: false,
            },
            16,
        );
        let anon = f.add(
            "union {...}",
            CType::Struct {
                name: String::new(),
                size: 8,
                is_union: true,
            },
            8,
        );
        f.member(anon, "hash_len", i64t, 0, None);
        f.member(qstr, "", anon, 0, None);
        f.member(qstr, "name", cstr, 64, None);
        let dentry = f.add(
            "struct dentry",
            CType::Struct {
                name: "dentry".into(),
                size: 192,
                is_union: false,
            },
            192,
        );
        let iname = f.add(
            "char[32]",
            CType::Array {
                elem: ch,
                count: Some(32),
            },
            32,
        );
        f.member(dentry, "d_flags", u32t, 0, None);
        f.member(dentry, "d_name", qstr, 256, None);
        f.member(dentry, "d_iname", iname, 448, None);
        f.member(dentry, "d_bits", u32t, 96, Some(3));
        let pdentry = f.add("struct dentry *", CType::Pointer { target: dentry }, 8);
        let path = f.add(
            "struct path",
            CType::Struct {
                name: "path".into(),
                size: 16,
                is_union: false,
            },
            16,
        );
        f.member(path, "dentry", pdentry, 64, None);
        let file = f.add(
            "struct file",
            CType::Struct {
                name: "file".into(),
                size: 232,
                is_union: false,
            },
            232,
        );
        f.member(file, "f_path", path, 128, None);
        f.member(file, "f_count", i64t, 448, None);
        let pfile = f.add("struct file *", CType::Pointer { target: file }, 8);
        let pchar = f.add("char *", CType::Pointer { target: ch }, 8);
        let sizet = f.add(
            "size_t",
            CType::Int {
                size: 8,
                signed: false,
                is_char: false,
            },
            8,
        );
        f.funcs.insert(
            "vfs_read".into(),
            FuncProto {
                params: vec![
                    Param {
                        name: "file".into(),
                        ty: pfile,
                    },
                    Param {
                        name: "buf".into(),
                        ty: pchar,
                    },
                    Param {
                        name: "count".into(),
                        ty: sizet,
                    },
                ],
                ret: Some(i64t),
            },
        );
        (f, pfile)
    }

    fn field(s: &str) -> Vec<Field> {
        match crate::probes::spec::parse_spec(&format!("f x{s}"))
            .unwrap()
            .args[0]
            .value
            .clone()
        {
            crate::probes::spec::ArgValue::Var { fields, .. } => fields,
            other => panic!("{other:?}"),
        }
    }

    fn walk(chain: &str, want: Option<FetchType>) -> Result<String, SpecError> {
        let (f, pfile) = kernel_like();
        let r = resolve_chain(
            &f,
            "file",
            Base::Value(FetchArg::Reg("di")),
            pfile,
            &field(chain),
            want.as_ref(),
            false,
            0,
        )?;
        Ok(format!("{}={}:{}", r.name, r.fetch, r.ty))
    }

    #[test]
    fn chains_like_perf() {
        assert_eq!(
            walk("->f_path.dentry->d_name.name", Some(FetchType::String)).unwrap(),
            "name=+0(+40(+24(%di))):string"
        );
        assert_eq!(
            walk("->f_path.dentry", None).unwrap(),
            "dentry=+24(%di):x64"
        );
        assert_eq!(walk("->f_count", None).unwrap(), "f_count=+56(%di):s64");
        assert_eq!(
            walk("->f_path.dentry->d_flags", None).unwrap(),
            "d_flags=+0(+24(%di)):x32"
        );
        assert_eq!(
            walk("->f_path.dentry->d_iname", Some(FetchType::String)).unwrap(),
            "d_iname=+56(+24(%di)):string"
        );
        assert_eq!(
            walk("->f_path.dentry->d_iname[3]", None).unwrap(),
            "d_iname=+59(+24(%di)):s8"
        );
        // Anonymous union member.
        assert_eq!(
            walk("->f_path.dentry->d_name.hash_len", None).unwrap(),
            "hash_len=+32(+24(%di)):s64"
        );
        // Bitfield: 3 bits at bit 96 of the struct = byte 12, bit 0 of a 32-bit container.
        assert_eq!(
            walk("->f_path.dentry->d_bits", None).unwrap(),
            "d_bits=+12(+24(%di)):b3@0/32"
        );
        assert_eq!(
            walk("->f_path.dentry->d_name.name", Some(FetchType::U(64))).unwrap(),
            "name=+40(+24(%di)):u64"
        );
    }

    #[test]
    fn wrong_operators_and_names() {
        let e = walk(".f_path", None).unwrap_err();
        assert!(
            e.to_string().contains("is a pointer") && e.fix.contains("file->f_path"),
            "{e}"
        );
        let e = walk("->f_path->dentry", None).unwrap_err();
        assert!(e.fix.contains("file->f_path.dentry"), "{e}");
        let e = walk("->f_pth", None).unwrap_err();
        assert!(
            e.to_string().contains("no member 'f_pth'") && e.fix.contains("f_path, f_count"),
            "{e}"
        );
        let e = walk("->f_count", Some(FetchType::String)).unwrap_err();
        assert!(e.to_string().contains("not a string"), "{e}");
        assert!(walk("->f_path.dentry->d_bits.x", None).is_err());
        assert!(walk("->f_count->x", None).is_err());
        assert!(walk("->f_count[2]", None).is_err());
    }

    #[test]
    fn containers() {
        assert_eq!(bitfield_container(96, 3, 4), (12, 0, 4));
        assert_eq!(bitfield_container(9539, 1, 1), (1192, 3, 1));
        assert_eq!(bitfield_container(9539, 1, 4), (1192, 3, 4));
        assert_eq!(bitfield_container(30, 4, 4), (0, 30, 8));
        assert_eq!(bitfield_container(5, 2, 1), (0, 5, 1));
    }
}

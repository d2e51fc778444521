//! [`TypeSource`] over BTF: functions, peeling, sizes and members.
//!
//! Every walk is a bounded loop ([`MAX_HOPS`]), so a corrupt file whose typedef refers to
//! itself gives [`BtfError::TooDeep`] instead of hanging.

use super::raw::{Entry, Kind, Layer};
use super::{Btf, BtfError, MAX_HOPS};
use crate::debuginfo::{CType, DebugInfoError, FuncProto, Member, Param, TypeId, TypeSource};

/// Size of a pointer on x86-64, the only architecture rprobe probes.
const POINTER_SIZE: u64 = 8;

/// INT encoding flags (`BTF_INT_ENCODING`, bits 24–27 of the encoding word).
const BTF_INT_SIGNED: u32 = 1;
const BTF_INT_CHAR: u32 = 2;

fn truncated(what: &'static str, e: &Entry) -> BtfError {
    BtfError::Truncated {
        what,
        offset: u64::from(e.off) + 12,
    }
}

fn wrong_kind(id: u64, found: Kind, expected: &'static str) -> BtfError {
    BtfError::WrongKind {
        id,
        found: found.name(),
        expected,
    }
}

impl Btf {
    /// `ty` with typedefs, qualifiers and type tags skipped: the id of what is left (0 for void).
    pub fn skip_modifiers(&self, ty: TypeId) -> Result<TypeId, BtfError> {
        let mut id = ty.0;
        for _ in 0..=MAX_HOPS {
            if id == 0 {
                return Ok(TypeId(0));
            }
            let (_, e, _) = self.entry(id)?;
            if !e.kind.is_modifier() {
                return Ok(TypeId(id));
            }
            id = u64::from(e.size_type);
        }
        Err(BtfError::TooDeep {
            id: ty.0,
            limit: MAX_HOPS,
        })
    }

    fn int_encoding(layer: &Layer, e: &Entry) -> Result<u32, BtfError> {
        layer
            .tail_u32(e, 0)
            .ok_or_else(|| truncated("INT encoding", e))
    }

    fn peel_btf(&self, ty: TypeId) -> Result<CType, BtfError> {
        let ty = self.skip_modifiers(ty)?;
        if ty.0 == 0 {
            return Ok(CType::Void);
        }
        let (layer, e, id) = self.entry(ty.0)?;
        Ok(match e.kind {
            Kind::Int => {
                let flags = (Self::int_encoding(layer, &e)? >> 24) & 0xf;
                CType::Int {
                    size: e.size_type,
                    signed: flags & BTF_INT_SIGNED != 0,
                    is_char: flags & BTF_INT_CHAR != 0,
                }
            }
            Kind::Ptr => CType::Pointer {
                target: TypeId(u64::from(e.size_type)),
            },
            Kind::Array => {
                let elem = layer
                    .tail_u32(&e, 0)
                    .ok_or_else(|| truncated("ARRAY info", &e))?;
                let nelems = layer
                    .tail_u32(&e, 2)
                    .ok_or_else(|| truncated("ARRAY info", &e))?;
                CType::Array {
                    elem: TypeId(u64::from(elem)),
                    count: (nelems != 0).then_some(u64::from(nelems)),
                }
            }
            Kind::Struct | Kind::Union => CType::Struct {
                name: self.name_of(&e, id)?.to_string(),
                size: e.size_type,
                is_union: e.kind == Kind::Union,
            },
            Kind::Fwd => CType::Struct {
                name: self.name_of(&e, id)?.to_string(),
                size: 0,
                is_union: e.kflag,
            },
            Kind::Enum | Kind::Enum64 => CType::Enum {
                size: e.size_type,
                signed: e.kflag,
            },
            Kind::Float => CType::Float { size: e.size_type },
            Kind::Func | Kind::FuncProto => CType::Function,
            _ => CType::Void,
        })
    }

    fn size_of_btf(&self, ty: TypeId) -> Result<u64, BtfError> {
        let mut count: u64 = 1;
        let mut cur = ty;
        for _ in 0..=MAX_HOPS {
            cur = self.skip_modifiers(cur)?;
            if cur.0 == 0 {
                return Ok(0);
            }
            let (layer, e, _) = self.entry(cur.0)?;
            let size = match e.kind {
                Kind::Int
                | Kind::Struct
                | Kind::Union
                | Kind::Enum
                | Kind::Enum64
                | Kind::Float
                | Kind::Datasec => u64::from(e.size_type),
                Kind::Ptr => POINTER_SIZE,
                Kind::Fwd => 0,
                Kind::Var => {
                    cur = TypeId(u64::from(e.size_type));
                    continue;
                }
                Kind::Array => {
                    let nelems = layer
                        .tail_u32(&e, 2)
                        .ok_or_else(|| truncated("ARRAY info", &e))?;
                    let elem = layer
                        .tail_u32(&e, 0)
                        .ok_or_else(|| truncated("ARRAY info", &e))?;
                    count = count
                        .checked_mul(u64::from(nelems))
                        .ok_or(BtfError::SizeOverflow { id: ty.0 })?;
                    cur = TypeId(u64::from(elem));
                    continue;
                }
                k => return Err(wrong_kind(cur.0, k, "a type with a size")),
            };
            return count
                .checked_mul(size)
                .ok_or(BtfError::SizeOverflow { id: ty.0 });
        }
        Err(BtfError::TooDeep {
            id: ty.0,
            limit: MAX_HOPS,
        })
    }

    fn members_btf(&self, ty: TypeId) -> Result<Vec<Member>, BtfError> {
        let ty = self.skip_modifiers(ty)?;
        if ty.0 == 0 {
            return Err(BtfError::WrongKind {
                id: 0,
                found: "void",
                expected: "a struct or union",
            });
        }
        let (layer, e, id) = self.entry(ty.0)?;
        if !matches!(e.kind, Kind::Struct | Kind::Union) {
            return Err(wrong_kind(ty.0, e.kind, "a struct or union"));
        }
        let mut out = Vec::with_capacity(usize::from(e.vlen));
        for i in 0..usize::from(e.vlen) {
            let word = |w: usize| {
                layer
                    .tail_u32(&e, 3 * i + w)
                    .ok_or_else(|| truncated("struct/union members", &e))
            };
            let (name_off, mty, offset) = (word(0)?, word(1)?, word(2)?);
            let name = self.str_at(name_off).ok_or(BtfError::BadString {
                offset: name_off,
                id,
            })?;
            let (bit_offset, bitfield_size) = if e.kflag {
                (u64::from(offset & 0xff_ffff), Some(offset >> 24))
            } else {
                self.int_bitfield(TypeId(u64::from(mty)), offset)?
            };
            out.push(Member {
                name: name.to_string(),
                ty: TypeId(u64::from(mty)),
                bit_offset,
                bitfield_size: bitfield_size.filter(|&b| b != 0),
            });
        }
        Ok(out)
    }

    /// Without kind_flag a bitfield's member type is an INT whose encoding carries the width
    /// (bits 0–7) and an extra bit offset (bits 16–23); an INT of its full size is no bitfield.
    fn int_bitfield(&self, mty: TypeId, offset: u32) -> Result<(u64, Option<u32>), BtfError> {
        let plain = (u64::from(offset), None);
        let peeled = self.skip_modifiers(mty)?;
        if peeled.0 == 0 {
            return Ok(plain);
        }
        let (layer, e, _) = self.entry(peeled.0)?;
        if e.kind != Kind::Int {
            return Ok(plain);
        }
        let enc = Self::int_encoding(layer, &e)?;
        let (bits, int_off) = (enc & 0xff, (enc >> 16) & 0xff);
        if int_off == 0 && u64::from(bits) == u64::from(e.size_type) * 8 {
            return Ok(plain);
        }
        Ok((u64::from(offset) + u64::from(int_off), Some(bits)))
    }

    fn function_btf(&self, name: &str) -> Result<FuncProto, BtfError> {
        let func = self
            .find_func(name)
            .ok_or_else(|| BtfError::NoFunction(name.to_string()))?;
        self.func_proto(func)
    }

    /// The prototype of the FUNC (or FUNC_PROTO) `func`: for one of several static functions
    /// sharing a name (see [`Btf::find_funcs`]), where [`TypeSource::function`] takes the first.
    pub fn func_proto(&self, func: TypeId) -> Result<FuncProto, BtfError> {
        let (_, f, _) = self.entry(func.0)?;
        if f.kind == Kind::FuncProto {
            return self.proto_params(func.0);
        }
        if f.kind != Kind::Func {
            return Err(wrong_kind(func.0, f.kind, "a FUNC"));
        }
        let proto = u64::from(f.size_type);
        if proto == 0 {
            return Err(BtfError::WrongKind {
                id: 0,
                found: "void",
                expected: "a FUNC_PROTO",
            });
        }
        let (_, p, _) = self.entry(proto)?;
        if p.kind != Kind::FuncProto {
            return Err(wrong_kind(proto, p.kind, "a FUNC_PROTO"));
        }
        self.proto_params(proto)
    }

    fn proto_params(&self, proto: u64) -> Result<FuncProto, BtfError> {
        let (layer, p, id) = self.entry(proto)?;
        let mut params = Vec::with_capacity(usize::from(p.vlen));
        for i in 0..usize::from(p.vlen) {
            let word = |w: usize| {
                layer
                    .tail_u32(&p, 2 * i + w)
                    .ok_or_else(|| truncated("FUNC_PROTO params", &p))
            };
            let (name_off, ty) = (word(0)?, word(1)?);
            if ty == 0 && name_off == 0 {
                // The last param {0, 0} marks varargs (`...`).
                continue;
            }
            let name = self.str_at(name_off).ok_or(BtfError::BadString {
                offset: name_off,
                id,
            })?;
            params.push(Param {
                name: name.to_string(),
                ty: TypeId(u64::from(ty)),
            });
        }
        Ok(FuncProto {
            params,
            ret: (p.size_type != 0).then_some(TypeId(u64::from(p.size_type))),
        })
    }
}

impl From<BtfError> for DebugInfoError {
    fn from(e: BtfError) -> DebugInfoError {
        match e {
            BtfError::NoFunction(name) => DebugInfoError::NoFunction(name),
            BtfError::BadTypeId { id, .. } | BtfError::WrongKind { id, .. } => {
                DebugInfoError::BadType(TypeId(id))
            }
            e => DebugInfoError::Corrupt(e.to_string()),
        }
    }
}

impl TypeSource for Btf {
    /// FUNC `name` → its FUNC_PROTO: parameter names and types, return type (`None` for void).
    fn function(&self, name: &str) -> Result<FuncProto, DebugInfoError> {
        Ok(self.function_btf(name)?)
    }

    fn peel(&self, ty: TypeId) -> Result<CType, DebugInfoError> {
        Ok(self.peel_btf(ty)?)
    }

    fn size_of(&self, ty: TypeId) -> Result<u64, DebugInfoError> {
        Ok(self.size_of_btf(ty)?)
    }

    /// Members with kind_flag bitfields or INT-encoded ones alike (see the module docs).
    fn members(&self, ty: TypeId) -> Result<Vec<Member>, DebugInfoError> {
        Ok(self.members_btf(ty)?)
    }

    fn type_name(&self, ty: TypeId) -> String {
        self.spell(ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::testutil::{cut_types, sample, BtfBuilder};

    fn t(id: u32) -> TypeId {
        TypeId(u64::from(id))
    }

    #[test]
    fn peel_skips_typedefs_and_qualifiers() {
        for big_endian in [false, true] {
            let (blob, s) = sample(big_endian);
            let btf = Btf::parse(&blob).unwrap();
            let ulong = CType::Int {
                size: 8,
                signed: false,
                is_char: false,
            };
            assert_eq!(btf.peel(t(s.sz2)).unwrap(), ulong);
            assert_eq!(btf.peel(t(s.volatile)).unwrap(), ulong);
            assert_eq!(
                btf.peel(t(s.const_char)).unwrap(),
                CType::Int {
                    size: 1,
                    signed: true,
                    is_char: true
                }
            );
            assert_eq!(
                btf.peel(t(s.user_tag)).unwrap(),
                btf.peel(t(s.char_)).unwrap()
            );
            assert_eq!(
                btf.peel(t(s.const_char_ptr)).unwrap(),
                CType::Pointer {
                    target: t(s.const_char)
                }
            );
            assert_eq!(
                btf.peel(t(s.char16)).unwrap(),
                CType::Array {
                    elem: t(s.char_),
                    count: Some(16)
                }
            );
            assert_eq!(
                btf.peel(t(s.qstr)).unwrap(),
                CType::Struct {
                    name: "qstr".into(),
                    size: 32,
                    is_union: false
                }
            );
            assert_eq!(
                btf.peel(t(s.union_u)).unwrap(),
                CType::Struct {
                    name: "u".into(),
                    size: 8,
                    is_union: true
                }
            );
            assert_eq!(
                btf.peel(t(s.fwd)).unwrap(),
                CType::Struct {
                    name: "fwdstruct".into(),
                    size: 0,
                    is_union: false
                }
            );
            assert_eq!(
                btf.peel(t(s.big)).unwrap(),
                CType::Enum {
                    size: 8,
                    signed: true
                }
            );
            assert_eq!(btf.peel(t(s.double)).unwrap(), CType::Float { size: 8 });
            assert_eq!(btf.peel(t(s.read_proto)).unwrap(), CType::Function);
            assert_eq!(btf.peel(t(s.vfs_read)).unwrap(), CType::Function);
            assert_eq!(btf.peel(t(s.decl_tag)).unwrap(), CType::Void);
            assert_eq!(btf.peel(TypeId(0)).unwrap(), CType::Void);
        }
    }

    #[test]
    fn cycles_and_bad_ids_are_errors() {
        let (blob, s) = sample(false);
        let btf = Btf::parse(&blob).unwrap();
        for ty in [s.loop_td, s.loop_const] {
            let e = btf.peel_btf(t(ty)).unwrap_err();
            assert!(matches!(e, BtfError::TooDeep { limit: 64, .. }), "{e}");
            assert!(matches!(btf.peel(t(ty)), Err(DebugInfoError::Corrupt(_))));
            assert!(btf.size_of(t(ty)).is_err());
            assert!(btf.members(t(ty)).is_err());
        }
        let past = TypeId(u64::from(btf.last_id()) + 1);
        assert_eq!(btf.peel(past), Err(DebugInfoError::BadType(past)));
        assert_eq!(
            btf.peel(TypeId(u64::MAX)),
            Err(DebugInfoError::BadType(TypeId(u64::MAX)))
        );
        assert_eq!(
            btf.members(t(s.int)),
            Err(DebugInfoError::BadType(t(s.int)))
        );
    }

    #[test]
    fn sizes() {
        let (blob, s) = sample(false);
        let btf = Btf::parse(&blob).unwrap();
        let cases = [
            (s.int, 4),
            (s.char_, 1),
            (s.char_ptr, 8),
            (s.fn_ptr, 8),
            (s.sz2, 8),
            (s.char16, 16),
            (s.char4x16, 64),
            (s.qstr, 32),
            (s.old, 12),
            (s.union_u, 8),
            (s.big, 8),
            (s.fwd, 0),
            (0, 0),
        ];
        for (ty, size) in cases {
            assert_eq!(btf.size_of(t(ty)), Ok(size), "{}", btf.type_name(t(ty)));
        }
        assert!(btf.size_of(t(s.read_proto)).is_err());
    }

    #[test]
    fn huge_arrays_overflow_into_an_error() {
        let mut b = BtfBuilder::new();
        let int = b.int("char", 1, true);
        let a = b.array(int, int, u32::MAX);
        let aa = b.array(a, int, u32::MAX);
        let aaa = b.array(aa, int, u32::MAX);
        let btf = Btf::parse(&b.build()).unwrap();
        assert_eq!(
            btf.size_of(t(aa)),
            Ok(u64::from(u32::MAX) * u64::from(u32::MAX))
        );
        let e = btf.size_of_btf(t(aaa)).unwrap_err();
        assert!(matches!(e, BtfError::SizeOverflow { .. }), "{e}");
    }

    #[test]
    fn members_with_kind_flag_bitfields() {
        let (blob, s) = sample(false);
        let btf = Btf::parse(&blob).unwrap();
        let m = btf.members(t(s.qstr)).unwrap();
        let got: Vec<_> = m
            .iter()
            .map(|m| (m.name.as_str(), m.bit_offset, m.bitfield_size))
            .collect();
        assert_eq!(
            got,
            [
                ("name", 0, None),
                ("len", 64, Some(20)),
                ("hash", 84, Some(12)),
                ("buf", 128, None)
            ]
        );
        assert_eq!(m[0].ty, t(s.const_char_ptr));
        // Members of a typedef or const struct are the struct's.
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4, true);
        let st = b.strukt("s", 4, false, &[("i", int, 0)]);
        let td = b.typedef("s_t", st);
        let c = b.modifier(10, td);
        let btf = Btf::parse(&b.build()).unwrap();
        assert_eq!(btf.members(t(c)).unwrap(), btf.members(t(st)).unwrap());
    }

    #[test]
    fn members_with_int_encoded_bitfields() {
        let (blob, s) = sample(false);
        let btf = Btf::parse(&blob).unwrap();
        let got: Vec<_> = btf
            .members(t(s.old))
            .unwrap()
            .into_iter()
            .map(|m| (m.name, m.bit_offset, m.bitfield_size))
            .collect();
        let want = [
            ("a", 0, None),
            ("b", 32, Some(3)),
            ("c", 34, Some(5)),
            ("d", 64, None),
        ]
        .map(|(n, o, b)| (n.to_string(), o, b));
        assert_eq!(got, want);
    }

    #[test]
    fn functions() {
        let (blob, s) = sample(false);
        let btf = Btf::parse(&blob).unwrap();
        let f = btf.function("vfs_read").unwrap();
        let params: Vec<_> = f.params.iter().map(|p| (p.name.as_str(), p.ty)).collect();
        assert_eq!(
            params,
            [
                ("file", t(s.qstr_ptr)),
                ("buf", t(s.char_ptr)),
                ("count", t(s.size_t))
            ]
        );
        assert_eq!(f.ret, Some(t(s.size_t)));
        assert_eq!(btf.find_funcs("vfs_read"), [t(s.vfs_read)]);
        assert_eq!(btf.func_proto(t(s.vfs_read)).unwrap(), f);
        assert_eq!(btf.func_proto(t(s.read_proto)).unwrap(), f);
        assert!(btf.func_proto(t(s.int)).is_err());
        let f = btf.function("noargs").unwrap();
        assert_eq!((f.params.len(), f.ret), (0, None));
        // printk(const char *fmt, ...): the varargs marker is not a parameter.
        let f = btf.function("printk").unwrap();
        assert_eq!(f.params.len(), 1);
        assert_eq!(f.ret, Some(t(s.int)));
        assert_eq!(
            btf.function("nope"),
            Err(DebugInfoError::NoFunction("nope".into()))
        );
    }

    #[test]
    fn a_func_whose_type_is_not_a_proto_is_an_error() {
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4, true);
        b.func("f", int);
        b.func("g", 0);
        b.func("h", 99);
        let btf = Btf::parse(&b.build()).unwrap();
        for name in ["f", "g", "h"] {
            assert!(matches!(
                btf.function(name),
                Err(DebugInfoError::BadType(_))
            ));
        }
    }

    /// Every type of every prefix of the sample (cut at each byte of the type section): the
    /// parse either fails or every query answers without panicking.
    #[test]
    fn queries_on_every_cut_do_not_panic() {
        let (blob, _) = sample(false);
        let type_len = u32::from_le_bytes(blob[12..16].try_into().unwrap());
        for len in 0..=type_len {
            let Ok(btf) = Btf::parse(&cut_types(&blob, len)) else {
                continue;
            };
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

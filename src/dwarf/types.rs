//! C types from DWARF type DIEs: [`TypeSource`] for [`Dwarf`].
//!
//! A [`TypeId`] is the `.debug_info` offset of a type DIE, with two extensions:
//! `TypeId(0)` is `void` (offset 0 is always a unit header, never a DIE, and BTF also uses 0
//! for void), and the top 16 bits select a dimension of a multi-dimensional array, because
//! gcc describes `int grid[2][3]` as one `DW_TAG_array_type` with two `DW_TAG_subrange_type`
//! children: `TypeId(off)` is `int[2][3]`, `TypeId(off | 1 << 48)` is its element `int[3]`.
//!
//! Member offsets: `DW_AT_data_member_location` is a byte offset (a constant, or in DWARF 2
//! an expression `DW_OP_plus_uconst N`); a bitfield adds `DW_AT_data_bit_offset` (DWARF 4+,
//! bits from the start of the struct, replacing the byte offset) or, as gcc still emits for
//! `-gdwarf-4`, the DWARF 2/3 `DW_AT_bit_offset`, counted from the most significant bit of a
//! storage unit of `DW_AT_byte_size` bytes at `DW_AT_data_member_location`, so on a
//! little-endian target the offset from the LSB is `byte_size*8 - bit_offset - bit_size`.

use gimli::constants as dw;

use super::die::Die;
use super::error::DwarfError;
use super::Dwarf;
use crate::debuginfo::{CType, DebugInfoError, FuncProto, Member, Param, TypeId, TypeSource};

/// Qualifier and typedef chains longer than this are treated as a cycle.
const MAX_DEPTH: usize = 32;
/// DIEs [`TypeSource::type_name`] visits at most for one name.
const MAX_NAME_STEPS: usize = 256;
const DIM_SHIFT: u32 = 48;
const OFF_MASK: u64 = (1 << DIM_SHIFT) - 1;

/// `DW_TAG_atomic_type` (DWARF 5), `DW_TAG_immutable_type` (DWARF 5, D).
const TAG_ATOMIC: dw::DwTag = dw::DwTag(0x47);
const TAG_IMMUTABLE: dw::DwTag = dw::DwTag(0x4b);

fn is_qualifier(tag: dw::DwTag) -> bool {
    matches!(
        tag,
        dw::DW_TAG_typedef
            | dw::DW_TAG_const_type
            | dw::DW_TAG_volatile_type
            | dw::DW_TAG_restrict_type
            | TAG_ATOMIC
            | TAG_IMMUTABLE
    )
}

fn type_id(off: Option<u64>) -> TypeId {
    TypeId(off.unwrap_or(0))
}

impl<'a> Dwarf<'a> {
    /// The DIE of `ty` and the array dimension it selects.
    fn type_die(&self, ty: TypeId) -> Result<(Die<'a>, u64), DebugInfoError> {
        let die = self
            .die_at(ty.0 & OFF_MASK)
            .map_err(|_| DebugInfoError::BadType(ty))?;
        Ok((die, ty.0 >> DIM_SHIFT))
    }

    /// The `DW_TAG_subrange_type`/`DW_TAG_enumeration_type` children giving array bounds.
    fn array_dims(&self, die: &Die<'a>) -> Result<Vec<Option<u64>>, DwarfError> {
        let mut dims = Vec::new();
        for child in self.children(die)? {
            if child.tag() != dw::DW_TAG_subrange_type {
                continue;
            }
            let count = child.udata(dw::DW_AT_count).or_else(|| {
                let upper = child.udata(dw::DW_AT_upper_bound)?;
                let lower = child.udata(dw::DW_AT_lower_bound).unwrap_or(0);
                // `char x[0]` is upper_bound 0xffff...ffff in gcc's DWARF 2-4 output.
                (upper != u64::MAX).then(|| upper.wrapping_sub(lower).wrapping_add(1))
            });
            dims.push(count);
        }
        Ok(dims)
    }

    /// `ty` with typedefs and qualifiers removed: the offset of the first other DIE, with its
    /// dimension bits kept (0 for void).
    fn strip(&self, ty: TypeId) -> Result<TypeId, DebugInfoError> {
        let mut cur = ty;
        for _ in 0..MAX_DEPTH {
            if cur.0 == 0 {
                return Ok(cur);
            }
            let (die, _) = self.type_die(cur)?;
            if !is_qualifier(die.tag()) {
                return Ok(cur);
            }
            cur = type_id(self.ref_attr(&die, dw::DW_AT_type));
        }
        Err(DebugInfoError::Corrupt(format!(
            "type chain longer than {MAX_DEPTH} at .debug_info+{:#x}",
            ty.0 & OFF_MASK
        )))
    }

    fn byte_size(&self, die: &Die<'a>) -> u32 {
        die.udata(dw::DW_AT_byte_size)
            .and_then(|s| u32::try_from(s).ok())
            .unwrap_or(0)
    }

    fn enum_signed(&self, die: &Die<'a>) -> bool {
        if let Some(base) = self.ref_attr(die, dw::DW_AT_type) {
            if let Ok(CType::Int { signed, .. }) = self.peel(TypeId(base)) {
                return signed;
            }
        }
        self.children(die).unwrap_or_default().iter().any(|e| {
            matches!(
                e.attr(dw::DW_AT_const_value),
                Some(gimli::AttributeValue::Sdata(v)) if v < 0
            )
        })
    }

    fn member_of(&self, parent_size: u64, m: &Die<'a>) -> Member {
        let ty = type_id(self.ref_attr(m, dw::DW_AT_type));
        let bit_size = m.udata(dw::DW_AT_bit_size);
        let byte_off = match m.attr(dw::DW_AT_data_member_location) {
            Some(gimli::AttributeValue::Exprloc(expr)) => plus_uconst(expr, m.unit, self),
            Some(v) => v.udata_value().unwrap_or(0),
            None => 0,
        };
        let bit_offset = if let Some(bits) = m.udata(dw::DW_AT_data_bit_offset) {
            bits
        } else if let (Some(msb), Some(size)) = (m.udata(dw::DW_AT_bit_offset), bit_size) {
            let storage = m
                .udata(dw::DW_AT_byte_size)
                .or_else(|| self.size_of(ty).ok())
                .unwrap_or(parent_size);
            let lsb = (storage * 8).wrapping_sub(msb).wrapping_sub(size);
            byte_off.wrapping_mul(8).wrapping_add(lsb)
        } else {
            byte_off.wrapping_mul(8)
        };
        Member {
            name: self.str_attr(m, dw::DW_AT_name).unwrap_or_default(),
            ty,
            bit_offset,
            bitfield_size: bit_size.and_then(|b| u32::try_from(b).ok()),
        }
    }

    fn name_rec(&self, ty: TypeId, steps: &mut usize) -> String {
        if ty.0 == 0 {
            return "void".into();
        }
        // A budget of DIEs visited, not a depth: function types branch on each parameter,
        // so corrupt self-referencing ones would otherwise blow up exponentially.
        *steps += 1;
        if *steps > MAX_NAME_STEPS {
            return "?".into();
        }
        let Ok((die, dim)) = self.type_die(ty) else {
            return "?".into();
        };
        let inner = || type_id(self.ref_attr(&die, dw::DW_AT_type));
        let named = |kw: &str| match self.str_attr(&die, dw::DW_AT_name) {
            Some(n) if kw.is_empty() => n,
            Some(n) => format!("{kw} {n}"),
            None if kw.is_empty() => "?".into(),
            None => format!("{kw} {{...}}"),
        };
        match die.tag() {
            dw::DW_TAG_base_type | dw::DW_TAG_typedef | dw::DW_TAG_unspecified_type => named(""),
            dw::DW_TAG_structure_type => named("struct"),
            dw::DW_TAG_union_type => named("union"),
            dw::DW_TAG_enumeration_type => named("enum"),
            dw::DW_TAG_class_type => named("class"),
            dw::DW_TAG_pointer_type
            | dw::DW_TAG_reference_type
            | dw::DW_TAG_rvalue_reference_type => {
                let sigil = match die.tag() {
                    dw::DW_TAG_pointer_type => "*",
                    dw::DW_TAG_reference_type => "&",
                    _ => "&&",
                };
                let target = inner();
                if let Ok((t, _)) = self.type_die(target) {
                    if t.tag() == dw::DW_TAG_subroutine_type {
                        return self.fn_name(&t, &format!("({sigil})"), steps);
                    }
                }
                let base = self.name_rec(target, steps);
                if base.ends_with(['*', '&']) {
                    format!("{base}{sigil}")
                } else {
                    format!("{base} {sigil}")
                }
            }
            dw::DW_TAG_const_type
            | dw::DW_TAG_volatile_type
            | dw::DW_TAG_restrict_type
            | TAG_ATOMIC => {
                let kw = match die.tag() {
                    dw::DW_TAG_const_type => "const",
                    dw::DW_TAG_volatile_type => "volatile",
                    dw::DW_TAG_restrict_type => "restrict",
                    _ => "_Atomic",
                };
                let base = self.name_rec(inner(), steps);
                if base.ends_with('*') {
                    format!("{base}{kw}")
                } else {
                    format!("{kw} {base}")
                }
            }
            dw::DW_TAG_array_type => {
                let dims = self.array_dims(&die).unwrap_or_default();
                let mut s = self.name_rec(inner(), steps);
                for d in dims.iter().skip(usize::try_from(dim).unwrap_or(usize::MAX)) {
                    match d {
                        Some(n) => s.push_str(&format!("[{n}]")),
                        None => s.push_str("[]"),
                    }
                }
                s
            }
            dw::DW_TAG_subroutine_type => self.fn_name(&die, "", steps),
            _ => named(""),
        }
    }

    /// `RET NAME(ARGS)` for a subroutine type, NAME being `(*)` for a pointer to one.
    fn fn_name(&self, die: &Die<'a>, declarator: &str, steps: &mut usize) -> String {
        let ret = self.name_rec(type_id(self.ref_attr(die, dw::DW_AT_type)), steps);
        let mut args = Vec::new();
        for p in self.children(die).unwrap_or_default() {
            match p.tag() {
                dw::DW_TAG_formal_parameter => {
                    args.push(self.name_rec(type_id(self.ref_attr(&p, dw::DW_AT_type)), steps))
                }
                dw::DW_TAG_unspecified_parameters => args.push("...".into()),
                _ => {}
            }
        }
        if args.is_empty() && die.flag(dw::DW_AT_prototyped) {
            args.push("void".into());
        }
        let sep = if declarator.is_empty() { "" } else { " " };
        format!("{ret}{sep}{declarator}({})", args.join(", "))
    }

    /// The prototype of the subprogram (or abstract instance) `die`.
    pub(crate) fn proto_of(&self, die: &Die<'a>) -> Result<FuncProto, DwarfError> {
        let mut params = Vec::new();
        for c in self.children(die)? {
            if c.tag() == dw::DW_TAG_formal_parameter {
                params.push(Param {
                    name: self.name_of(&c).unwrap_or_default(),
                    ty: type_id(self.type_of(&c)),
                });
            }
        }
        Ok(FuncProto {
            params,
            ret: self.type_of(die).map(TypeId),
        })
    }
}

/// `N` of a DWARF 2 member location `DW_OP_plus_uconst N`; 0 otherwise.
fn plus_uconst(
    expr: gimli::Expression<super::reader::Bytes<'_>>,
    unit: usize,
    dw: &Dwarf<'_>,
) -> u64 {
    let Ok(u) = dw.unit(unit) else { return 0 };
    let mut ops = expr.operations(u.encoding());
    match ops.next() {
        Ok(Some(gimli::Operation::PlusConstant { value })) => value,
        Ok(Some(gimli::Operation::UnsignedConstant { value })) => value,
        _ => 0,
    }
}

impl TypeSource for Dwarf<'_> {
    fn function(&self, name: &str) -> Result<FuncProto, DebugInfoError> {
        let index = self.index()?;
        let insts = index
            .by_name
            .get(name)
            .ok_or_else(|| DebugInfoError::NoFunction(name.to_string()))?;
        // A concrete instance if there is one, else the abstract origin of an inline one.
        let inst = insts
            .iter()
            .find(|i| !i.inlined)
            .or_else(|| insts.first())
            .ok_or_else(|| DebugInfoError::NoFunction(name.to_string()))?;
        let mut die = self.die_at(inst.die)?;
        if inst.inlined {
            if let Some(origin) = self.ref_attr(&die, dw::DW_AT_abstract_origin) {
                die = self.die_at(origin)?;
            }
        }
        // An out-of-line copy of an inline function lists its parameters by abstract origin;
        // name_of/type_of follow it.
        Ok(self.proto_of(&die)?)
    }

    fn peel(&self, ty: TypeId) -> Result<CType, DebugInfoError> {
        let ty = self.strip(ty)?;
        if ty.0 == 0 {
            return Ok(CType::Void);
        }
        let (die, dim) = self.type_die(ty)?;
        let size = self.byte_size(&die);
        Ok(match die.tag() {
            dw::DW_TAG_base_type => match die.udata(dw::DW_AT_encoding).map(|e| dw::DwAte(e as u8))
            {
                Some(dw::DW_ATE_float) | Some(dw::DW_ATE_complex_float) => CType::Float { size },
                Some(dw::DW_ATE_signed) => CType::Int {
                    size,
                    signed: true,
                    is_char: false,
                },
                Some(dw::DW_ATE_signed_char) => CType::Int {
                    size,
                    signed: true,
                    is_char: true,
                },
                Some(dw::DW_ATE_unsigned_char) => CType::Int {
                    size,
                    signed: false,
                    is_char: true,
                },
                Some(dw::DW_ATE_unsigned)
                | Some(dw::DW_ATE_boolean)
                | Some(dw::DW_ATE_UTF)
                | Some(dw::DW_ATE_address) => CType::Int {
                    size,
                    signed: false,
                    is_char: false,
                },
                _ => CType::Void,
            },
            dw::DW_TAG_pointer_type
            | dw::DW_TAG_reference_type
            | dw::DW_TAG_rvalue_reference_type => CType::Pointer {
                target: type_id(self.ref_attr(&die, dw::DW_AT_type)),
            },
            dw::DW_TAG_array_type => {
                let dims = self.array_dims(&die)?;
                let d = usize::try_from(dim).unwrap_or(usize::MAX);
                let count = dims.get(d).copied().flatten();
                let elem = if d + 1 < dims.len() {
                    TypeId((ty.0 & OFF_MASK) | ((dim + 1) << DIM_SHIFT))
                } else {
                    type_id(self.ref_attr(&die, dw::DW_AT_type))
                };
                CType::Array { elem, count }
            }
            dw::DW_TAG_structure_type | dw::DW_TAG_class_type | dw::DW_TAG_union_type => {
                CType::Struct {
                    name: self.str_attr(&die, dw::DW_AT_name).unwrap_or_default(),
                    size,
                    is_union: die.tag() == dw::DW_TAG_union_type,
                }
            }
            dw::DW_TAG_enumeration_type => CType::Enum {
                size,
                signed: self.enum_signed(&die),
            },
            dw::DW_TAG_subroutine_type => CType::Function,
            _ => CType::Void,
        })
    }

    fn size_of(&self, ty: TypeId) -> Result<u64, DebugInfoError> {
        let mut cur = ty;
        let mut mult: u64 = 1;
        for _ in 0..MAX_DEPTH {
            let stripped = self.strip(cur)?;
            if stripped.0 == 0 {
                return Ok(0);
            }
            let (die, _) = self.type_die(stripped)?;
            match self.peel(stripped)? {
                CType::Array { elem, count } => {
                    mult = mult.saturating_mul(count.unwrap_or(0));
                    cur = elem;
                }
                CType::Pointer { .. } => {
                    let addr = self.unit(die.unit).map_or(8, |u| u.encoding().address_size);
                    let size = die.udata(dw::DW_AT_byte_size).unwrap_or(u64::from(addr));
                    return Ok(mult.saturating_mul(size));
                }
                _ => return Ok(mult.saturating_mul(die.udata(dw::DW_AT_byte_size).unwrap_or(0))),
            }
        }
        Err(DebugInfoError::Corrupt(format!(
            "array nesting deeper than {MAX_DEPTH} at .debug_info+{:#x}",
            ty.0 & OFF_MASK
        )))
    }

    fn members(&self, ty: TypeId) -> Result<Vec<Member>, DebugInfoError> {
        let stripped = self.strip(ty)?;
        if stripped.0 == 0 {
            return Err(DebugInfoError::BadType(ty));
        }
        let (die, _) = self.type_die(stripped)?;
        if !matches!(
            die.tag(),
            dw::DW_TAG_structure_type | dw::DW_TAG_class_type | dw::DW_TAG_union_type
        ) {
            return Err(DebugInfoError::BadType(ty));
        }
        let size = u64::from(self.byte_size(&die));
        Ok(self
            .children(&die)?
            .iter()
            .filter(|c| c.tag() == dw::DW_TAG_member && !c.flag(dw::DW_AT_declaration))
            .map(|m| self.member_of(size, m))
            .collect())
    }

    fn type_name(&self, ty: TypeId) -> String {
        self.name_rec(ty, &mut 0)
    }
}

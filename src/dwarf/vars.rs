//! Parameters and locals of a function instance at an address, and where each lives there,
//! following perf's `convert_variable_location` (`probe-finder.c`).
//!
//! The location is `DW_AT_location` as a single expression, or the entry of its location list
//! whose range holds the address (none: [`Location::OptimizedOut`]); without one,
//! `DW_AT_const_value` gives [`Location::Const`]. As in perf, only the **first operation**
//! decides: `DW_OP_regN`/`regx` → a register, `DW_OP_bregN`/`bregx` → memory at register +
//! offset, `DW_OP_addr`/`addrx` → a static address, `DW_OP_fbreg N` → memory at the frame
//! base + N, where the frame base (`DW_AT_frame_base` of the concrete function the code runs
//! in) is itself a register + offset: `DW_OP_call_frame_cfa` resolved through CFI at the
//! address (at an x86_64 entry the CFA is `%sp + 8`, so `fbreg -20` is `-12(%sp)`),
//! `DW_OP_bregN`, or `DW_OP_regN`.
//!
//! One deliberate difference: perf ignores whatever follows the first operation, so
//! `DW_OP_breg0 0, DW_OP_breg2 0, DW_OP_plus, DW_OP_stack_value` (a computed value, common at
//! `-O2`) becomes a load from `%ax`, which is not the variable. Here a first operation
//! followed by anything but `DW_OP_piece` is [`Location::Unsupported`], naming both
//! operations; a first piece (`DW_OP_reg5, DW_OP_piece 4, ...`) is taken as perf takes it.

use gimli::constants as dw;
use gimli::{AttributeValue, Expression, Operation};

use super::die::Die;
use super::error::DwarfError;
use super::frame::Cfa;
use super::reader::Bytes;
use super::{Dwarf, FuncInstance};
use crate::debuginfo::{CType, Location, TypeId, TypeSource, Variable};

/// Lexical blocks nested deeper than this are not searched.
const MAX_NESTING: usize = 64;

/// A location a fetch arg can read.
fn readable(l: &Location) -> bool {
    matches!(
        l,
        Location::Reg(_) | Location::Mem { .. } | Location::Addr(_) | Location::Const(_)
    )
}

/// The name of the operation an expression starts with (`DW_OP_piece`).
fn op_name(expr: &Expression<Bytes<'_>>) -> String {
    match expr.0.slice().first() {
        Some(b) => dw::DwOp(*b)
            .static_string()
            .map_or_else(|| format!("DW_OP_{b:#x}"), str::to_string),
        None => "empty expression".into(),
    }
}

impl<'a> Dwarf<'a> {
    /// Parameters and locals of `f` in scope at `pc` (those of nested lexical blocks and of
    /// functions inlined into `f` when their code covers `pc`, as perf searches them), in
    /// DIE order, each with its location at `pc`.
    pub fn variables_at(&self, f: &FuncInstance, pc: u64) -> Result<Vec<Variable>, DwarfError> {
        let die = self.die_at(f.die)?;
        let mut out = Vec::new();
        self.collect_vars(f, &die, pc, 0, &mut out)?;
        Ok(out)
    }

    fn collect_vars(
        &self,
        f: &FuncInstance,
        scope: &Die<'a>,
        pc: u64,
        depth: usize,
        out: &mut Vec<Variable>,
    ) -> Result<(), DwarfError> {
        if depth > MAX_NESTING {
            return Ok(());
        }
        for child in self.children(scope)? {
            match child.tag() {
                dw::DW_TAG_formal_parameter | dw::DW_TAG_variable => {
                    if child.flag(dw::DW_AT_declaration) {
                        continue;
                    }
                    let ty = TypeId(self.type_of(&child).unwrap_or(0));
                    let location = self.location_of(f, &child, ty, pc);
                    let live = if readable(&location) {
                        Vec::new()
                    } else {
                        self.live_ranges(f, &child)
                    };
                    out.push(Variable {
                        name: self.name_of(&child).unwrap_or_default(),
                        ty,
                        location,
                        is_param: child.tag() == dw::DW_TAG_formal_parameter,
                        live,
                    });
                }
                // As perf's die_find_variable_at and $vars: blocks and inlined calls
                // that hold `pc` are searched too, in DIE order.
                dw::DW_TAG_lexical_block | dw::DW_TAG_inlined_subroutine => {
                    let ranges = self.ranges_of(&child)?;
                    if ranges.is_empty() || ranges.iter().any(|(b, e)| (*b..*e).contains(&pc)) {
                        self.collect_vars(f, &child, pc, depth + 1, out)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The ranges of `var`'s location list whose location rprobe can read (at most 64).
    fn live_ranges(&self, f: &FuncInstance, var: &Die<'a>) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let Ok(unit) = self.unit(var.unit) else {
            return out;
        };
        let Some(v @ (AttributeValue::LocationListsRef(_) | AttributeValue::DebugLocListsIndex(_))) =
            var.attr(dw::DW_AT_location)
        else {
            return out;
        };
        let Ok(Some(mut iter)) = self.dwarf.attr_locations(unit, v) else {
            return out;
        };
        while let Ok(Some(entry)) = iter.next() {
            let r = entry.range;
            if r.begin < r.end && readable(&self.convert(f, var.unit, &entry.data, r.begin)) {
                out.push((r.begin, r.end));
            }
            if out.len() >= 64 {
                break;
            }
        }
        out
    }

    /// Where `var` (of type `ty`) is at `pc`.
    fn location_of(&self, f: &FuncInstance, var: &Die<'a>, ty: TypeId, pc: u64) -> Location {
        let Ok(unit) = self.unit(var.unit) else {
            return Location::Unsupported("unreadable unit".into());
        };
        match var.attr(dw::DW_AT_location) {
            Some(AttributeValue::Exprloc(expr)) => self.convert(f, var.unit, &expr, pc),
            Some(
                v @ (AttributeValue::LocationListsRef(_) | AttributeValue::DebugLocListsIndex(_)),
            ) => {
                let mut iter = match self.dwarf.attr_locations(unit, v) {
                    Ok(Some(iter)) => iter,
                    Ok(None) => return Location::OptimizedOut,
                    Err(e) => return Location::Unsupported(format!("bad location list: {e}")),
                };
                loop {
                    match iter.next() {
                        Ok(Some(entry)) if (entry.range.begin..entry.range.end).contains(&pc) => {
                            return self.convert(f, var.unit, &entry.data, pc);
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => return Location::OptimizedOut,
                        Err(e) => return Location::Unsupported(format!("bad location list: {e}")),
                    }
                }
            }
            Some(other) => Location::Unsupported(format!("DW_AT_location of form {other:?}")),
            None => match self
                .integrate(var, dw::DW_AT_const_value)
                .and_then(|d| d.attr(dw::DW_AT_const_value))
            {
                Some(v) => self.const_value(v, ty),
                None => Location::OptimizedOut,
            },
        }
    }

    /// `DW_AT_const_value` as an integer; `DW_FORM_dataN` is sign-extended when `ty` is a
    /// signed type.
    fn const_value(&self, v: AttributeValue<Bytes<'a>>, ty: TypeId) -> Location {
        let signed = matches!(
            self.peel(ty),
            Ok(CType::Int { signed: true, .. }) | Ok(CType::Enum { signed: true, .. })
        );
        let c = match v {
            AttributeValue::Sdata(x) => x,
            AttributeValue::Udata(x) => x as i64,
            AttributeValue::Data1(x) if signed => i64::from(x as i8),
            AttributeValue::Data1(x) => i64::from(x),
            AttributeValue::Data2(x) if signed => i64::from(x as i16),
            AttributeValue::Data2(x) => i64::from(x),
            AttributeValue::Data4(x) if signed => i64::from(x as i32),
            AttributeValue::Data4(x) => i64::from(x),
            AttributeValue::Data8(x) => x as i64,
            other => {
                return Location::Unsupported(format!("DW_AT_const_value of form {other:?}"));
            }
        };
        Location::Const(c)
    }

    /// perf's reading of a location expression: see the module docs.
    fn convert(
        &self,
        f: &FuncInstance,
        unit_idx: usize,
        expr: &Expression<Bytes<'a>>,
        pc: u64,
    ) -> Location {
        let Ok(unit) = self.unit(unit_idx) else {
            return Location::Unsupported("unreadable unit".into());
        };
        let mut ops = expr.clone().operations(unit.encoding());
        let first = match ops.next() {
            Ok(Some(op)) => op,
            Ok(None) => return Location::OptimizedOut,
            Err(e) => return Location::Unsupported(format!("bad expression: {e}")),
        };
        let first_name = op_name(expr);
        let rest = ops.offset_from(expr);
        match ops.next() {
            Ok(None) | Ok(Some(Operation::Piece { .. })) => {}
            _ => {
                let mut tail = expr.clone();
                let second = match gimli::Reader::skip(&mut tail.0, rest) {
                    Ok(()) => op_name(&tail),
                    Err(_) => "a bad operation".into(),
                };
                return Location::Unsupported(format!("{first_name} followed by {second}"));
            }
        }
        match first {
            Operation::Register { register } => Location::Reg(register.0),
            Operation::RegisterOffset {
                register, offset, ..
            } => Location::Mem {
                reg: register.0,
                offset,
            },
            Operation::Address { address } => Location::Addr(address),
            Operation::AddressIndex { index } => match self.dwarf.address(unit, index) {
                Ok(a) => Location::Addr(a),
                Err(e) => Location::Unsupported(format!("DW_OP_addrx: {e}")),
            },
            Operation::FrameOffset { offset } => self.frame_base(f, pc, offset),
            _ => Location::Unsupported(first_name),
        }
    }

    /// `DW_OP_fbreg offset` at `pc`: the frame base of `f`'s concrete function, plus offset.
    fn frame_base(&self, f: &FuncInstance, pc: u64, offset: i64) -> Location {
        let unsupported = |why: &str| Location::Unsupported(format!("DW_OP_fbreg: {why}"));
        let Ok(frame) = self.die_at(f.frame_die) else {
            return unsupported("unreadable function DIE");
        };
        let Ok(unit) = self.unit(frame.unit) else {
            return unsupported("unreadable unit");
        };
        let expr = match frame.attr(dw::DW_AT_frame_base) {
            Some(AttributeValue::Exprloc(e)) => e,
            Some(
                v @ (AttributeValue::LocationListsRef(_) | AttributeValue::DebugLocListsIndex(_)),
            ) => {
                let Ok(Some(mut iter)) = self.dwarf.attr_locations(unit, v) else {
                    return unsupported("bad frame base list");
                };
                loop {
                    match iter.next() {
                        Ok(Some(e)) if (e.range.begin..e.range.end).contains(&pc) => break e.data,
                        Ok(Some(_)) => {}
                        _ => return unsupported("no frame base at this address"),
                    }
                }
            }
            _ => return unsupported("function has no DW_AT_frame_base"),
        };
        let mut ops = expr.clone().operations(unit.encoding());
        match ops.next() {
            Ok(Some(Operation::CallFrameCFA)) => match self.frames.cfa_at(pc) {
                Cfa::RegOffset { reg, offset: cfa } => Location::Mem {
                    reg,
                    offset: cfa.wrapping_add(offset),
                },
                Cfa::Expression => unsupported("the CFA here is a DWARF expression"),
                Cfa::Unknown => unsupported(
                    "no call frame information covers this address (for a separate debug \
                     file, load the binary's .eh_frame with use_frames_of)",
                ),
            },
            Ok(Some(Operation::RegisterOffset {
                register,
                offset: o,
                ..
            })) => Location::Mem {
                reg: register.0,
                offset: o.wrapping_add(offset),
            },
            Ok(Some(Operation::Register { register })) => Location::Mem {
                reg: register.0,
                offset,
            },
            _ => unsupported(&format!("frame base {}", op_name(&expr))),
        }
    }
}

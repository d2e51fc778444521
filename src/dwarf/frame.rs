//! The canonical frame address (CFA) at an address, from call frame information, for frame
//! bases `DW_OP_call_frame_cfa` (what gcc emits for every function at `-O0` and `-O2`).
//!
//! `.eh_frame` is read first, then `.debug_frame`, as perf does (`probe-finder.c`,
//! `get_cfa`/`dwarf_cfi_addrframe`). A separate debug file keeps `.eh_frame` as `NOBITS`,
//! so its CFI must come from the binary: see [`super::Dwarf::use_frames_of`]. FDEs are
//! searched linearly (gimli's `unwind_info_for_address`); a probe resolves a handful of
//! addresses, so the `.eh_frame_hdr` binary search table is not worth its complexity yet.

use gimli::{BaseAddresses, CfaRule, DebugFrame, EhFrame, UnwindContext, UnwindSection};
use object::{Object, ObjectSection};

use super::error::DwarfError;
use super::reader::Bytes;
use super::sections::section;

/// Call frame information of one file.
#[derive(Debug)]
pub(crate) struct Frames<'a> {
    eh_frame: Option<(EhFrame<Bytes<'a>>, BaseAddresses)>,
    debug_frame: Option<DebugFrame<Bytes<'a>>>,
}

/// The CFA as register + offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cfa {
    /// CFA = value of DWARF register `reg` + `offset`.
    RegOffset { reg: u16, offset: i64 },
    /// The rule is a DWARF expression: rprobe cannot turn it into a fetch arg.
    Expression,
    /// No FDE covers the address.
    Unknown,
}

impl<'a> Frames<'a> {
    pub(crate) fn load(file: &object::File<'a>) -> Result<Self, DwarfError> {
        let addr_of = |name: &str| file.section_by_name(name).map(|s| s.address());
        let (eh, eh_addr) = section(file, ".eh_frame")?;
        let eh_frame = (!gimli::Reader::is_empty(&eh)).then(|| {
            let mut bases = BaseAddresses::default();
            if let Some(a) = eh_addr {
                bases = bases.set_eh_frame(a);
            }
            if let Some(a) = addr_of(".eh_frame_hdr") {
                bases = bases.set_eh_frame_hdr(a);
            }
            if let Some(a) = addr_of(".text") {
                bases = bases.set_text(a);
            }
            if let Some(a) = addr_of(".got") {
                bases = bases.set_got(a);
            }
            let mut frame = EhFrame::from(eh);
            frame.set_address_size(8);
            (frame, bases)
        });
        let (dbg, _) = section(file, ".debug_frame")?;
        let debug_frame = (!gimli::Reader::is_empty(&dbg)).then(|| {
            let mut frame = DebugFrame::from(dbg);
            frame.set_address_size(8);
            frame
        });
        Ok(Frames {
            eh_frame,
            debug_frame,
        })
    }

    /// The CFA rule at `pc`.
    pub(crate) fn cfa_at(&self, pc: u64) -> Cfa {
        let mut ctx = UnwindContext::new();
        if let Some((eh, bases)) = &self.eh_frame {
            if let Ok(row) =
                eh.unwind_info_for_address(bases, &mut ctx, pc, EhFrame::cie_from_offset)
            {
                return rule(row.cfa());
            }
        }
        if let Some(dbg) = &self.debug_frame {
            let bases = BaseAddresses::default();
            if let Ok(row) =
                dbg.unwind_info_for_address(&bases, &mut ctx, pc, DebugFrame::cie_from_offset)
            {
                return rule(row.cfa());
            }
        }
        Cfa::Unknown
    }
}

fn rule(r: &CfaRule<usize>) -> Cfa {
    match r {
        CfaRule::RegisterAndOffset { register, offset } => Cfa::RegOffset {
            reg: register.0,
            offset: *offset,
        },
        CfaRule::Expression(_) => Cfa::Expression,
    }
}

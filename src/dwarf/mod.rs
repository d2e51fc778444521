//! DWARF queries for probes, over gimli: functions and their inline instances, the address
//! after the prologue, variables and where they live at an address, C types for field chains
//! (`req->url`), and line tables.
//!
//! The format is DWARF 4 and 5 (<https://dwarfstd.org/>); what is asked of it follows perf
//! probe (`tools/perf/util/probe-finder.c` and `dwarf-aux.c`), summarised in
//! `reference/probe-events.md` §10. Everything here is pure over the bytes of an ELF file the
//! caller has mapped: [`Dwarf::parse`] borrows them (compressed sections are inflated into
//! owned buffers, see `sections.rs`), and [`debug_candidates`] only names the files where
//! separate debuginfo may be, without opening them.
//!
//! Addresses are link-time addresses as the DWARF records them (for a PIE or shared object,
//! offsets from its load base); turning them into file offsets or `_text+OFF` is the caller's
//! business. A type is addressed by the offset of its DIE in `.debug_info`
//! ([`crate::debuginfo::TypeId`]), which is unique across units.
//!
//! Cost: `parse` reads only unit headers. The first name lookup ([`Dwarf::functions`],
//! [`crate::debuginfo::TypeSource::function`]) builds a name index by walking every DIE of
//! every unit once (attributes are decoded only for subprograms and inlined subroutines);
//! gcc does not emit `.debug_names`, and `.debug_aranges` maps addresses, not names, to
//! units, so neither can replace that walk for a lookup by name. Units are parsed lazily and
//! kept. Not supported: `.debug_types` type units (`-fdebug-types-section`), dwz
//! supplementary files (`.gnu_debugaltlink`), split DWARF (`.dwo`), relocatable objects
//! (`.ko`, `.o`: their DWARF needs relocations applied first), big-endian files.

mod byaddr;
mod die;
mod error;
mod find;
mod frame;
mod funcs;
mod index;
mod lines;
mod reader;
mod sections;
mod types;
mod vars;

use std::sync::OnceLock;

use gimli::{SectionId, Unit, UnitHeader};
use object::Object;

pub use error::DwarfError;
pub use find::debug_candidates;
pub use funcs::FuncInstance;
pub use lines::path_matches;

use reader::Bytes;

/// The DWARF of one ELF file, parsed lazily.
#[derive(Debug)]
pub struct Dwarf<'a> {
    dwarf: gimli::Dwarf<Bytes<'a>>,
    units: Vec<UnitSlot<'a>>,
    header_error: Option<DwarfError>,
    frames: frame::Frames<'a>,
    index: OnceLock<Result<index::NameIndex, DwarfError>>,
    unit_ranges: OnceLock<byaddr::UnitRanges>,
}

/// One unit of `.debug_info`: its header, read at parse time, and the unit itself (its
/// abbreviations, root DIE and line program header), read on first use.
#[derive(Debug)]
struct UnitSlot<'a> {
    offset: u64,
    end: u64,
    header: UnitHeader<Bytes<'a>>,
    unit: OnceLock<Result<Unit<Bytes<'a>>, DwarfError>>,
    lines: OnceLock<Result<lines::UnitLines, DwarfError>>,
    optimized: OnceLock<bool>,
    names: OnceLock<Result<index::UnitNames, DwarfError>>,
}

/// Sections gimli may ask for that rprobe never reads: not inflated, not borrowed.
const UNUSED: [SectionId; 5] = [
    SectionId::DebugMacinfo,
    SectionId::DebugMacro,
    SectionId::DebugTypes,
    SectionId::DebugCuIndex,
    SectionId::DebugTuIndex,
];

impl<'a> Dwarf<'a> {
    /// Reads the DWARF sections of the ELF file `elf` and the headers of its units.
    pub fn parse(elf: &'a [u8]) -> Result<Self, DwarfError> {
        let file = object::File::parse(elf).map_err(|e| DwarfError::Elf(e.to_string()))?;
        if !file.is_little_endian() {
            return Err(DwarfError::Elf("big-endian files are not supported".into()));
        }
        let dwarf = gimli::Dwarf::load(|id| -> Result<Bytes<'a>, DwarfError> {
            if UNUSED.contains(&id) {
                return Ok(Bytes::borrowed(&[]));
            }
            Ok(sections::section(&file, id.name())?.0)
        })?;
        let frames = frame::Frames::load(&file)?;
        let mut units = Vec::new();
        let mut header_error = None;
        let mut iter = dwarf.units();
        loop {
            match iter.next() {
                Ok(Some(header)) => {
                    let offset = header.offset().0 as u64;
                    let end = offset.saturating_add(header.length_including_self() as u64);
                    units.push(UnitSlot {
                        offset,
                        end,
                        header,
                        unit: OnceLock::new(),
                        lines: OnceLock::new(),
                        optimized: OnceLock::new(),
                        names: OnceLock::new(),
                    });
                }
                Ok(None) => break,
                Err(source) => {
                    let offset = units.last().map_or(0, |u: &UnitSlot<'_>| u.end);
                    header_error = Some(DwarfError::UnitHeader { offset, source });
                    break;
                }
            }
        }
        if units.is_empty() {
            return Err(header_error.unwrap_or(DwarfError::NoDebugInfo));
        }
        Ok(Dwarf {
            dwarf,
            units,
            header_error,
            frames,
            index: OnceLock::new(),
            unit_ranges: OnceLock::new(),
        })
    }

    /// Takes call frame information (`.eh_frame`, `.eh_frame_hdr`, `.debug_frame`) from the
    /// binary itself, for a `Dwarf` parsed from a separate debug file, whose `.eh_frame` is
    /// `NOBITS`. Needed to resolve `DW_OP_call_frame_cfa` frame bases.
    pub fn use_frames_of(&mut self, binary: &'a [u8]) -> Result<(), DwarfError> {
        let file = object::File::parse(binary).map_err(|e| DwarfError::Elf(e.to_string()))?;
        self.frames = frame::Frames::load(&file)?;
        Ok(())
    }

    /// Number of units in `.debug_info`.
    pub fn unit_count(&self) -> usize {
        self.units.len()
    }

    /// The error that stopped reading unit headers, if one did: units before it are usable.
    pub fn header_error(&self) -> Option<&DwarfError> {
        self.header_error.as_ref()
    }

    /// The unit `idx`, parsed on first use.
    fn unit(&self, idx: usize) -> Result<&Unit<Bytes<'a>>, DwarfError> {
        let slot = self.units.get(idx).ok_or(DwarfError::NoDie(0))?;
        slot.unit
            .get_or_init(|| {
                self.dwarf
                    .unit(slot.header.clone())
                    .map_err(|source| DwarfError::Unit {
                        unit: slot.offset,
                        source,
                    })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Index of the unit holding the `.debug_info` offset `off`.
    fn unit_of(&self, off: u64) -> Option<usize> {
        let idx = self
            .units
            .partition_point(|u| u.offset <= off)
            .checked_sub(1)?;
        let slot = self.units.get(idx)?;
        (off < slot.end).then_some(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dwarf_can_be_shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Dwarf<'static>>();
    }

    #[test]
    fn non_elf_and_elf_without_dwarf_are_errors() {
        assert!(matches!(Dwarf::parse(b"\x7fELF"), Err(DwarfError::Elf(_))));
        assert!(matches!(Dwarf::parse(&[]), Err(DwarfError::Elf(_))));
        // The test binary itself may or may not carry DWARF; /bin/true never does on Debian.
        if let Ok(bytes) = std::fs::read("/bin/true") {
            assert!(matches!(Dwarf::parse(&bytes), Err(DwarfError::NoDebugInfo)));
        }
    }
}

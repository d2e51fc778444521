//! Errors of the DWARF module: each says what was being read and where (section, unit
//! offset, DIE offset, all in `.debug_info` coordinates as `readelf --debug-dump=info` prints
//! them), so a report can be checked against the file by hand.

use crate::debuginfo::DebugInfoError;

/// What went wrong reading DWARF.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DwarfError {
    /// The bytes are not an ELF file `object` can read.
    #[error("not a readable ELF file: {0}")]
    Elf(String),
    /// The file has no `.debug_info` (stripped, or debuginfo lives in a separate file).
    #[error(
        "no DWARF in this file (.debug_info is missing or empty); \
         install the -dbg/-debuginfo package or point rprobe at the separate debug file"
    )]
    NoDebugInfo,
    /// A compressed section in a format rprobe does not inflate.
    #[error(
        "section {section} is compressed with {format}, which rprobe cannot inflate; \
         decompress it with `objcopy --decompress-debug-sections`"
    )]
    Compressed {
        /// Section name.
        section: String,
        /// The compression format.
        format: String,
    },
    /// A zlib-compressed section that did not inflate to its recorded size.
    #[error("section {section}: bad zlib data ({reason})")]
    Inflate {
        /// Section name.
        section: String,
        /// What the inflater said.
        reason: String,
    },
    /// A unit header that could not be read.
    #[error("bad unit header at .debug_info+{offset:#x}: {source}")]
    UnitHeader {
        /// Section offset of the header.
        offset: u64,
        /// gimli's complaint.
        source: gimli::Error,
    },
    /// A unit (its abbreviations, root DIE or line program header) that could not be read.
    #[error("bad unit at .debug_info+{unit:#x}: {source}")]
    Unit {
        /// Section offset of the unit.
        unit: u64,
        /// gimli's complaint.
        source: gimli::Error,
    },
    /// A DIE (or something it refers to) that could not be read.
    #[error("bad DIE at .debug_info+{die:#x} (unit at +{unit:#x}) reading {what}: {source}")]
    Die {
        /// Section offset of the unit.
        unit: u64,
        /// Section offset of the DIE.
        die: u64,
        /// What was being read (`DW_AT_location`, `children`, ...).
        what: &'static str,
        /// gimli's complaint.
        source: gimli::Error,
    },
    /// An offset that lies in no unit of `.debug_info`.
    #[error("no DIE at .debug_info+{0:#x}")]
    NoDie(u64),
    /// A DIE of the wrong kind for the question.
    #[error("DIE at .debug_info+{die:#x} is a {tag}, expected {expected}")]
    WrongTag {
        /// Section offset of the DIE.
        die: u64,
        /// Its tag (`DW_TAG_variable`).
        tag: String,
        /// What was asked for.
        expected: &'static str,
    },
    /// A line program that could not be read.
    #[error("bad line program of the unit at .debug_info+{unit:#x}: {source}")]
    Line {
        /// Section offset of the unit.
        unit: u64,
        /// gimli's complaint.
        source: gimli::Error,
    },
}

impl From<DwarfError> for DebugInfoError {
    fn from(e: DwarfError) -> Self {
        DebugInfoError::Corrupt(e.to_string())
    }
}

//! What can go wrong reading BTF, each variant naming what was read and where.

use std::path::PathBuf;

/// Errors parsing or querying BTF.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BtfError {
    /// The data ends before a field or record does.
    #[error("BTF truncated: {what} at byte offset {offset} runs past the end of the data")]
    Truncated {
        /// What was being read (`"header"`, `"type record"`, `"struct members"`, …).
        what: &'static str,
        /// Offset of that item from the start of the BTF data.
        offset: u64,
    },
    /// The first two bytes are not 0xEB9F in either byte order.
    #[error(
        "not BTF: magic bytes {found:02x?}, expected 9f eb (little-endian) or eb 9f (big-endian); \
         give /sys/kernel/btf/vmlinux or an ELF file with a .BTF section"
    )]
    BadMagic {
        /// The first bytes found.
        found: [u8; 2],
    },
    /// A BTF version other than 1.
    #[error("unsupported BTF version {0} (rprobe reads version 1)")]
    BadVersion(u8),
    /// The header's own length is impossible.
    #[error("bad BTF header: hdr_len {hdr_len} (must be at least 24 and fit in the data)")]
    BadHeader {
        /// The `hdr_len` field.
        hdr_len: u32,
    },
    /// A section given by the header lies outside the data.
    #[error(
        "BTF {section} section at offset {offset}, length {len} lies outside the {data_len} bytes \
         after the header"
    )]
    SectionOutOfBounds {
        /// `"type"` or `"string"`.
        section: &'static str,
        /// Offset from the end of the header.
        offset: u32,
        /// Length.
        len: u32,
        /// Bytes available after the header.
        data_len: u64,
    },
    /// A kind this parser does not know; its record length is unknown, so parsing stops.
    #[error(
        "unknown BTF kind {kind} at type id {id} (BTF from a kernel newer than rprobe \
         understands; kinds 1..=19 are known)"
    )]
    UnknownKind {
        /// The kind number (`info >> 24 & 0x1f`).
        kind: u8,
        /// The type id of the record.
        id: u32,
    },
    /// A string offset outside the string section, unterminated, or not UTF-8.
    #[error("bad BTF string at string offset {offset} (used by type id {id})")]
    BadString {
        /// Offset into the string section (split BTF: counting the base's strings).
        offset: u32,
        /// The type that refers to it.
        id: u32,
    },
    /// A type id that does not exist.
    #[error("BTF type id {id} does not exist (the last id is {last})")]
    BadTypeId {
        /// The id asked for.
        id: u64,
        /// The highest id present.
        last: u32,
    },
    /// A chain of typedefs, qualifiers or array elements too long to be real.
    #[error("BTF type chain from id {id} is longer than {limit} hops (a reference cycle?)")]
    TooDeep {
        /// The id the walk started from.
        id: u64,
        /// The hop limit.
        limit: usize,
    },
    /// A type of one kind where another was required.
    #[error("BTF type id {id} is a {found}, expected {expected}")]
    WrongKind {
        /// The id.
        id: u64,
        /// Its kind's name.
        found: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// An array too large to have a size.
    #[error("size of BTF type id {id} overflows 64 bits")]
    SizeOverflow {
        /// The id.
        id: u64,
    },
    /// No `FUNC` of that name.
    #[error("no function '{0}' in the BTF")]
    NoFunction(String),
    /// An ELF file without `.BTF`.
    #[error(
        "ELF file has no .BTF section (build the kernel with CONFIG_DEBUG_INFO_BTF=y, or give a \
         raw BTF file such as /sys/kernel/btf/vmlinux)"
    )]
    NoBtfSection,
    /// Bytes that start like ELF but `object` cannot read.
    #[error("not a readable ELF file: {0}")]
    Elf(String),
    /// Reading the file failed.
    #[error("cannot read BTF from {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file that did parse, with the path added.
    #[error("{}: {source}", .path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: Box<BtfError>,
    },
}

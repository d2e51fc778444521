//! The BTF wire format: the header, the type records and the string section, read with bounds
//! checks only (every read is `get()` and returns `Option`; the caller names what failed).
//!
//! ```text
//! header (24 bytes, uapi struct btf_header):
//!   u16 magic 0xEB9F | u8 version 1 | u8 flags | u32 hdr_len
//!   u32 type_off | u32 type_len | u32 str_off | u32 str_len      (offsets from the header end)
//! type record (uapi struct btf_type, 12 bytes) + a tail that depends on the kind:
//!   u32 name_off | u32 info (vlen 0-15, kind 24-28, kind_flag 31) | u32 size or type
//! ```

use std::ops::Range;

use super::error::BtfError;

/// The length of the version 1 header; `hdr_len` may be larger for future fields.
pub(crate) const HEADER_LEN: usize = 24;

/// The kind of a BTF type record (`BTF_KIND_*` in `include/uapi/linux/btf.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// `BTF_KIND_INT` (1): integer, `char`, `_Bool`; tail: u32 encoding.
    Int,
    /// `BTF_KIND_PTR` (2).
    Ptr,
    /// `BTF_KIND_ARRAY` (3); tail: u32 type, u32 index_type, u32 nelems.
    Array,
    /// `BTF_KIND_STRUCT` (4); tail: vlen × {u32 name_off, u32 type, u32 offset}.
    Struct,
    /// `BTF_KIND_UNION` (5); tail as for a struct.
    Union,
    /// `BTF_KIND_ENUM` (6); tail: vlen × {u32 name_off, s32 val}.
    Enum,
    /// `BTF_KIND_FWD` (7): a forward declaration; kind_flag set for a union.
    Fwd,
    /// `BTF_KIND_TYPEDEF` (8).
    Typedef,
    /// `BTF_KIND_VOLATILE` (9).
    Volatile,
    /// `BTF_KIND_CONST` (10).
    Const,
    /// `BTF_KIND_RESTRICT` (11).
    Restrict,
    /// `BTF_KIND_FUNC` (12): a function, whose type is a `FUNC_PROTO`.
    Func,
    /// `BTF_KIND_FUNC_PROTO` (13); tail: vlen × {u32 name_off, u32 type}.
    FuncProto,
    /// `BTF_KIND_VAR` (14); tail: u32 linkage.
    Var,
    /// `BTF_KIND_DATASEC` (15); tail: vlen × {u32 type, u32 offset, u32 size}.
    Datasec,
    /// `BTF_KIND_FLOAT` (16, Linux 5.13).
    Float,
    /// `BTF_KIND_DECL_TAG` (17, Linux 5.16); tail: s32 component_idx.
    DeclTag,
    /// `BTF_KIND_TYPE_TAG` (18, Linux 5.17).
    TypeTag,
    /// `BTF_KIND_ENUM64` (19, Linux 6.0); tail: vlen × {u32 name_off, u32 val_lo32, u32 val_hi32}.
    Enum64,
}

impl Kind {
    /// The kind for its number, `None` for numbers this parser does not know.
    pub fn from_raw(kind: u8) -> Option<Kind> {
        Some(match kind {
            1 => Kind::Int,
            2 => Kind::Ptr,
            3 => Kind::Array,
            4 => Kind::Struct,
            5 => Kind::Union,
            6 => Kind::Enum,
            7 => Kind::Fwd,
            8 => Kind::Typedef,
            9 => Kind::Volatile,
            10 => Kind::Const,
            11 => Kind::Restrict,
            12 => Kind::Func,
            13 => Kind::FuncProto,
            14 => Kind::Var,
            15 => Kind::Datasec,
            16 => Kind::Float,
            17 => Kind::DeclTag,
            18 => Kind::TypeTag,
            19 => Kind::Enum64,
            _ => return None,
        })
    }

    /// The kernel's name for the kind, as `bpftool btf dump` prints it (`STRUCT`, `FUNC_PROTO`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Int => "INT",
            Kind::Ptr => "PTR",
            Kind::Array => "ARRAY",
            Kind::Struct => "STRUCT",
            Kind::Union => "UNION",
            Kind::Enum => "ENUM",
            Kind::Fwd => "FWD",
            Kind::Typedef => "TYPEDEF",
            Kind::Volatile => "VOLATILE",
            Kind::Const => "CONST",
            Kind::Restrict => "RESTRICT",
            Kind::Func => "FUNC",
            Kind::FuncProto => "FUNC_PROTO",
            Kind::Var => "VAR",
            Kind::Datasec => "DATASEC",
            Kind::Float => "FLOAT",
            Kind::DeclTag => "DECL_TAG",
            Kind::TypeTag => "TYPE_TAG",
            Kind::Enum64 => "ENUM64",
        }
    }

    /// Bytes after the 12-byte record, and what they hold (for truncation errors).
    fn tail(self, vlen: u16) -> (u64, &'static str) {
        let n = u64::from(vlen);
        match self {
            Kind::Int => (4, "INT encoding"),
            Kind::Array => (12, "ARRAY info"),
            Kind::Struct | Kind::Union => (12 * n, "struct/union members"),
            Kind::Enum => (8 * n, "ENUM values"),
            Kind::FuncProto => (8 * n, "FUNC_PROTO params"),
            Kind::Var => (4, "VAR linkage"),
            Kind::Datasec => (12 * n, "DATASEC entries"),
            Kind::DeclTag => (4, "DECL_TAG component_idx"),
            Kind::Enum64 => (12 * n, "ENUM64 values"),
            _ => (0, ""),
        }
    }

    /// Kinds that only qualify or rename another type; [`crate::debuginfo::TypeSource::peel`]
    /// skips them.
    pub fn is_modifier(self) -> bool {
        matches!(
            self,
            Kind::Typedef | Kind::Volatile | Kind::Const | Kind::Restrict | Kind::TypeTag
        )
    }
}

/// One type record's fixed part, decoded once at parse time (16 bytes a type).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    /// Byte offset of the record in [`Layer::bytes`]; the tail follows at `off + 12`.
    pub off: u32,
    pub kind: Kind,
    pub vlen: u16,
    pub kflag: bool,
    pub name_off: u32,
    /// `size` for INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC; `type` for the others.
    pub size_type: u32,
}

/// One BTF blob: vmlinux's, or a module's split BTF on top of it.
pub(crate) struct Layer {
    bytes: Vec<u8>,
    big_endian: bool,
    /// The string section, as a range of `bytes`.
    strs: Range<usize>,
    /// The id of the first type (1 for base BTF).
    pub first_id: u32,
    /// The string offset this blob's strings start at (0 for base BTF).
    pub str_base: u32,
    pub entries: Vec<Entry>,
}

impl std::fmt::Debug for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layer")
            .field("bytes", &self.bytes.len())
            .field("big_endian", &self.big_endian)
            .field("first_id", &self.first_id)
            .field("types", &self.entries.len())
            .field("str_base", &self.str_base)
            .field("str_len", &self.strs.len())
            .finish()
    }
}

fn truncated(what: &'static str, offset: usize) -> BtfError {
    BtfError::Truncated {
        what,
        offset: offset as u64,
    }
}

fn u32_in(bytes: &[u8], off: usize, big_endian: bool) -> Option<u32> {
    let b: [u8; 4] = bytes.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    })
}

impl Layer {
    /// Parse a raw BTF blob whose types are numbered from `first_id` and whose string offsets
    /// start at `str_base` (split BTF continues both after its base).
    // 9f eb 01 00 18 00 00 00  00 00 00 00 58 b0 30 00  58 b0 30 00 39 7d 23 00
    // (6.18 vmlinux, little-endian: hdr_len 24, type_off 0, type_len 0x30b058,
    //  str_off 0x30b058, str_len 0x237d39)
    pub fn parse(bytes: Vec<u8>, first_id: u32, str_base: u32) -> Result<Layer, BtfError> {
        let big_endian = match bytes.get(0..2) {
            Some(&[0x9f, 0xeb]) => false,
            Some(&[0xeb, 0x9f]) => true,
            Some(&[a, b]) => return Err(BtfError::BadMagic { found: [a, b] }),
            _ => return Err(truncated("header magic", 0)),
        };
        let field =
            |off: usize| u32_in(&bytes, off, big_endian).ok_or_else(|| truncated("header", off));
        let version = *bytes.get(2).ok_or_else(|| truncated("header", 2))?;
        if version != 1 {
            return Err(BtfError::BadVersion(version));
        }
        let hdr_len = field(4)?;
        let (type_off, type_len) = (field(8)?, field(12)?);
        let (str_off, str_len) = (field(16)?, field(20)?);
        let hdr = hdr_len as usize;
        if hdr < HEADER_LEN || hdr > bytes.len() {
            return Err(BtfError::BadHeader { hdr_len });
        }
        let data_len = (bytes.len() - hdr) as u64;
        let section = |name, off: u32, len: u32| {
            let end = u64::from(off) + u64::from(len);
            if end > data_len {
                return Err(BtfError::SectionOutOfBounds {
                    section: name,
                    offset: off,
                    len,
                    data_len,
                });
            }
            Ok(hdr + off as usize..hdr + end as usize)
        };
        let types = section("type", type_off, type_len)?;
        let strs = section("string", str_off, str_len)?;

        let mut entries = Vec::with_capacity(types.len() / 24);
        let mut pos = types.start;
        while pos < types.end {
            let id = u32::try_from(entries.len())
                .ok()
                .and_then(|n| first_id.checked_add(n))
                .ok_or(BtfError::BadTypeId {
                    id: u64::from(first_id) + entries.len() as u64,
                    last: u32::MAX,
                })?;
            if types.end - pos < 12 {
                return Err(truncated("type record", pos));
            }
            let word = |i: usize| u32_in(&bytes, pos + 4 * i, big_endian);
            let (Some(name_off), Some(info), Some(size_type)) = (word(0), word(1), word(2)) else {
                return Err(truncated("type record", pos));
            };
            let raw_kind = ((info >> 24) & 0x1f) as u8;
            let kind =
                Kind::from_raw(raw_kind).ok_or(BtfError::UnknownKind { kind: raw_kind, id })?;
            let vlen = (info & 0xffff) as u16;
            let (tail, what) = kind.tail(vlen);
            let end = (pos as u64) + 12 + tail;
            if end > types.end as u64 {
                return Err(truncated(what, pos + 12));
            }
            entries.push(Entry {
                off: u32::try_from(pos).map_err(|_| truncated("type record", pos))?,
                kind,
                vlen,
                kflag: info >> 31 == 1,
                name_off,
                size_type,
            });
            pos = end as usize;
        }
        Ok(Layer {
            bytes,
            big_endian,
            strs,
            first_id,
            str_base,
            entries,
        })
    }

    /// The `i`-th u32 of the tail of `e`.
    pub fn tail_u32(&self, e: &Entry, i: usize) -> Option<u32> {
        let off = (e.off as usize)
            .checked_add(12)?
            .checked_add(i.checked_mul(4)?)?;
        u32_in(&self.bytes, off, self.big_endian)
    }

    /// The NUL-terminated string at `off` in this layer's own string section.
    pub fn str_at(&self, off: u32) -> Option<&str> {
        let start = self.strs.start.checked_add(off as usize)?;
        let rest = self.bytes.get(start..self.strs.end)?;
        let len = rest.iter().position(|&b| b == 0)?;
        std::str::from_utf8(rest.get(..len)?).ok()
    }

    /// Length of the string section.
    pub fn str_len(&self) -> usize {
        self.strs.len()
    }

    /// The highest type id in this layer (`first_id - 1` when it has none).
    pub fn last_id(&self) -> u32 {
        // Parse made sure first_id + len fits.
        self.first_id
            .saturating_add(self.entries.len() as u32)
            .saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::testutil::{cut_types, sample, BtfBuilder};

    #[test]
    fn parses_header_and_records() {
        let (blob, s) = sample(false);
        let l = Layer::parse(blob, 1, 0).unwrap();
        assert_eq!(l.last_id(), s.const_ptr);
        let e = l.entries[(s.qstr - 1) as usize];
        assert_eq!(
            (e.kind, e.vlen, e.kflag, e.size_type),
            (Kind::Struct, 4, true, 32)
        );
        assert_eq!(l.str_at(e.name_off), Some("qstr"));
        assert_eq!(l.entries[(s.big - 1) as usize].kind, Kind::Enum64);
        assert_eq!(l.entries[(s.user_tag - 1) as usize].kind, Kind::TypeTag);
        assert_eq!(l.entries[(s.decl_tag - 1) as usize].kind, Kind::DeclTag);
    }

    #[test]
    fn big_endian_reads_the_same() {
        let (le, _) = sample(false);
        let (be, _) = sample(true);
        assert_eq!(&be[..2], &[0xeb, 0x9f]);
        let (le, be) = (
            Layer::parse(le, 1, 0).unwrap(),
            Layer::parse(be, 1, 0).unwrap(),
        );
        assert_eq!(le.entries.len(), be.entries.len());
        for (a, b) in le.entries.iter().zip(&be.entries) {
            assert_eq!(
                (a.kind, a.vlen, a.kflag, a.size_type),
                (b.kind, b.vlen, b.kflag, b.size_type)
            );
            assert_eq!(le.str_at(a.name_off), be.str_at(b.name_off));
            if a.kind.tail(a.vlen).0 > 0 {
                assert_eq!(le.tail_u32(a, 0), be.tail_u32(b, 0));
            }
        }
    }

    #[test]
    fn every_cut_of_the_file_is_an_error() {
        let (blob, _) = sample(false);
        for len in 0..blob.len() {
            let r = Layer::parse(blob[..len].to_vec(), 1, 0);
            assert!(r.is_err(), "cut at {len} parsed");
        }
    }

    #[test]
    fn a_type_section_cut_inside_a_record_is_truncated() {
        let (blob, _) = sample(false);
        let full = Layer::parse(blob.clone(), 1, 0).unwrap();
        let ends: Vec<usize> = full
            .entries
            .iter()
            .skip(1)
            .map(|e| e.off as usize - HEADER_LEN)
            .chain([full.strs.start - HEADER_LEN])
            .collect();
        let type_len = full.strs.start - HEADER_LEN;
        for len in 0..type_len {
            match Layer::parse(cut_types(&blob, len as u32), 1, 0) {
                Ok(l) => {
                    assert!(len == 0 || ends.contains(&len), "cut at {len} parsed");
                    assert_eq!(ends.iter().filter(|&&e| e <= len).count(), l.entries.len());
                }
                Err(BtfError::Truncated { offset, .. }) => {
                    assert!(!ends.contains(&len), "cut at record end {len} failed");
                    assert!(offset as usize <= HEADER_LEN + len);
                }
                Err(e) => panic!("cut at {len}: {e}"),
            }
        }
    }

    #[test]
    fn header_errors_say_what() {
        let (blob, _) = sample(false);
        let mut bad = blob.clone();
        bad[0] = 0x7f;
        assert!(matches!(
            Layer::parse(bad, 1, 0),
            Err(BtfError::BadMagic {
                found: [0x7f, 0xeb]
            })
        ));
        let mut bad = blob.clone();
        bad[2] = 2;
        assert!(matches!(
            Layer::parse(bad, 1, 0),
            Err(BtfError::BadVersion(2))
        ));
        let mut bad = blob.clone();
        bad[4] = 8;
        assert!(matches!(
            Layer::parse(bad, 1, 0),
            Err(BtfError::BadHeader { hdr_len: 8 })
        ));
        let mut bad = blob.clone();
        bad[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = Layer::parse(bad, 1, 0).unwrap_err();
        assert!(
            matches!(
                e,
                BtfError::SectionOutOfBounds {
                    section: "string",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("string section"), "{e}");
    }

    #[test]
    fn unknown_kind_names_the_id() {
        let mut b = BtfBuilder::new();
        b.int("int", 4, true);
        b.raw("future", 25, 0, false, 0, &[]);
        let e = Layer::parse(b.build(), 1, 0).unwrap_err();
        assert!(
            matches!(e, BtfError::UnknownKind { kind: 25, id: 2 }),
            "{e}"
        );
        assert!(e.to_string().contains("kind 25 at type id 2"), "{e}");
    }

    #[test]
    fn longer_header_is_skipped() {
        // hdr_len 32: a future header with two more fields; sections still count from its end.
        let (blob, _) = sample(false);
        let mut long = blob[..24].to_vec();
        long[4..8].copy_from_slice(&32u32.to_le_bytes());
        long.extend_from_slice(&[0; 8]);
        long.extend_from_slice(&blob[24..]);
        let l = Layer::parse(long, 1, 0).unwrap();
        assert_eq!(
            l.entries.len(),
            Layer::parse(blob, 1, 0).unwrap().entries.len()
        );
    }

    #[test]
    fn strings_are_bounded() {
        let (blob, _) = sample(false);
        let l = Layer::parse(blob, 1, 0).unwrap();
        assert_eq!(l.str_at(0), Some(""));
        assert_eq!(l.str_at(l.str_len() as u32), None);
        assert_eq!(l.str_at(u32::MAX), None);
    }
}

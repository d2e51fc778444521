//! The perf.data reader: file header, attrs and their ids, feature sections, and the records of
//! the data section in the order `perf script` delivers them.
//!
//! Layout (`tools/perf/Documentation/perf.data-file-format.txt`, perf 6.1 `util/header.c`):
//! a 104-byte `perf_file_header` (`"PERFILE2"`, size, attr_size, attrs, data, event_types,
//! a 256-bit feature bitmap), the attrs section (`attr_size`-byte entries: a
//! `perf_event_attr` and a `perf_file_section` pointing at the attr's `u64` ids), the data
//! section of records, and the feature table at exactly `data.offset + data.size` (one
//! `perf_file_section` per set feature bit, in bit order).
//!
//! The reader works on one `&[u8]` (the mapped file) and never copies record bytes: a
//! [`RawRecord`] is a view into the file and [`records`] parses it on demand.
//!
//! What is refused, with the offset: a wrong magic (a byte-swapped `2ELIFREP` is a file from
//! the other byte order), a header or attr size perf 6.1 would not read, sections outside the
//! file, ids that do not fit. What is read with one warning: a data section that runs past the
//! end of the file or that a killed recorder left at size 0 (the records up to the last whole
//! one), a record with an impossible size (the data stops there).

pub mod features;
pub mod order;
pub mod records;
pub mod tracing_data;

use super::abi::{self, u32_at, u64_at, EventAttr};
use std::collections::BTreeMap;

/// Why a perf.data file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Shorter than the file header.
    #[error(
        "{len} bytes is too short for a perf.data header (104 bytes); is this a perf.data file?"
    )]
    TooShort {
        /// The file's length.
        len: usize,
    },
    /// The magic is not `PERFILE2`.
    #[error("offset 0: bad magic {found:?}, not a perf.data file (expected \"PERFILE2\")")]
    BadMagic {
        /// The first 8 bytes, lossily as text.
        found: String,
    },
    /// The magic is `PERFILE2` byte-swapped: written on a machine of the other byte order.
    #[error("offset 0: the file was written on a machine of the other byte order (magic \"2ELIFREP\"); read it on that machine with perf")]
    OtherEndian,
    /// Pipe-mode file (`perf record -o -`): header size 16.
    #[error("offset 8: a pipe-mode perf.data (header size 16) is not supported; record to a file with -o FILE")]
    PipeMode,
    /// A header field holds a value perf would not read.
    #[error("offset {offset}: {what}")]
    BadHeader {
        /// Where the field is.
        offset: u64,
        /// What is wrong and what to do.
        what: String,
    },
    /// A section lies outside the file.
    #[error("offset {offset}: {name} section [{start:#x}, +{size:#x}) lies outside the {len}-byte file (truncated or corrupt)")]
    SectionOutside {
        /// Where the section descriptor is.
        offset: u64,
        /// Which section.
        name: &'static str,
        /// Its start.
        start: u64,
        /// Its size.
        size: u64,
        /// File length.
        len: u64,
    },
}

/// One entry of the attrs section: the attr and the ids of the fds opened for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrEntry {
    /// The `perf_event_attr`.
    pub attr: EventAttr,
    /// Ids of the kernel events (one per CPU or thread) that recorded with this attr.
    pub ids: Vec<u64>,
}

/// A record of the data section, as a view into the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// File offset of the record header.
    pub offset: u64,
    /// `perf_event_header.type`.
    pub type_: u32,
    /// `perf_event_header.misc`.
    pub misc: u16,
    /// The bytes after the 8-byte header (`size - 8` bytes).
    pub body: &'a [u8],
}

/// A problem the reader worked around; the caller prints each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// The data section stops early; `records` whole records were read.
    Truncated {
        /// Where the first incomplete or impossible record starts.
        offset: u64,
        /// Why the data stops there.
        reason: String,
    },
    /// The header says the data section is empty but records follow it (a killed recorder).
    DataSizeZero,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::Truncated { offset, reason } => write!(
                f,
                "data section stops at offset {offset:#x} ({reason}); read the records before it (was the recorder killed?)"
            ),
            Warning::DataSizeZero => write!(
                f,
                "the header's data size is 0 (the recorder did not finish); reading the records that follow the header up to the last whole one"
            ),
        }
    }
}

/// A parsed perf.data file: header, attrs, feature sections; the records stay in the bytes.
#[derive(Debug)]
pub struct PerfFile<'a> {
    bytes: &'a [u8],
    /// The attrs in file order.
    pub attrs: Vec<AttrEntry>,
    /// Feature bit → (offset, size) of its payload, for the bits set in the header.
    pub features: BTreeMap<u32, (u64, u64)>,
    /// Start of the data section.
    pub data_offset: u64,
    /// End of the readable data section (clipped to the file).
    pub data_end: u64,
    /// The data size the header claims.
    pub data_size: u64,
    /// Things the reader worked around (e.g. a data section past the end of the file).
    pub warnings: Vec<Warning>,
    id_to_attr: BTreeMap<u64, usize>,
}

/// Offset of the `attrs` section descriptor in the file header.
const ATTRS_AT: u64 = 24;
/// Offset of the `data` section descriptor.
const DATA_AT: u64 = 40;
/// Offset of the feature bitmap.
const FEATURES_AT: usize = 72;

fn section_at(bytes: &[u8], at: u64, name: &'static str) -> Result<(u64, u64), ReadError> {
    let start = u64_at(bytes, at as usize).unwrap_or(0);
    let size = u64_at(bytes, at as usize + 8).unwrap_or(0);
    let len = bytes.len() as u64;
    match start.checked_add(size) {
        Some(end) if end <= len => Ok((start, size)),
        _ => Err(ReadError::SectionOutside {
            offset: at,
            name,
            start,
            size,
            len,
        }),
    }
}

impl<'a> PerfFile<'a> {
    /// Parse the header, attrs and feature table of `bytes` (a whole perf.data file).
    pub fn parse(bytes: &'a [u8]) -> Result<PerfFile<'a>, ReadError> {
        let len = bytes.len() as u64;
        if bytes.len() < abi::FILE_HEADER_SIZE as usize {
            if bytes.len() >= 16 && bytes[..8] == abi::FILE_MAGIC && u64_at(bytes, 8) == Some(16) {
                return Err(ReadError::PipeMode);
            }
            return Err(ReadError::TooShort { len: bytes.len() });
        }
        let magic = &bytes[..8];
        if magic != abi::FILE_MAGIC {
            let mut swapped = abi::FILE_MAGIC;
            swapped.reverse();
            if magic == swapped {
                return Err(ReadError::OtherEndian);
            }
            return Err(ReadError::BadMagic {
                found: String::from_utf8_lossy(magic).into_owned(),
            });
        }
        let header_size = u64_at(bytes, 8).unwrap_or(0);
        if header_size == 16 {
            return Err(ReadError::PipeMode);
        }
        if header_size != abi::FILE_HEADER_SIZE {
            return Err(ReadError::BadHeader {
                offset: 8,
                what: format!(
                    "header size {header_size} (perf 6.1 writes and reads 104); corrupt file?"
                ),
            });
        }
        let attr_size = u64_at(bytes, 16).unwrap_or(0);
        let (attrs_off, attrs_size) = section_at(bytes, ATTRS_AT, "attrs")?;
        let (data_offset, data_size) = match section_at(bytes, DATA_AT, "data") {
            Ok(s) => s,
            // A data section past the end: read what is there.
            Err(ReadError::SectionOutside { start, size, .. }) if start <= len => (start, size),
            Err(e) => return Err(e),
        };
        let mut warnings = Vec::new();
        let data_end = if data_size == 0 {
            if data_offset < len && data_offset >= abi::FILE_HEADER_SIZE {
                warnings.push(Warning::DataSizeZero);
                len
            } else {
                data_offset
            }
        } else {
            match data_offset.checked_add(data_size) {
                Some(end) if end <= len => end,
                _ => {
                    warnings.push(Warning::Truncated {
                        offset: len,
                        reason: format!(
                            "the header says the data section ends at {:#x}, the file at {len:#x}",
                            data_offset.saturating_add(data_size)
                        ),
                    });
                    len
                }
            }
        };

        let attrs = parse_attrs(bytes, attrs_off, attrs_size, attr_size)?;
        let mut id_to_attr = BTreeMap::new();
        for (i, a) in attrs.iter().enumerate() {
            for id in &a.ids {
                id_to_attr.entry(*id).or_insert(i);
            }
        }
        let features = if data_size == 0 || data_end != data_offset.saturating_add(data_size) {
            BTreeMap::new()
        } else {
            parse_feature_table(bytes, data_end)
        };
        Ok(PerfFile {
            bytes,
            attrs,
            features,
            data_offset,
            data_end,
            data_size,
            warnings,
            id_to_attr,
        })
    }

    /// The whole file.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The payload of feature `bit`, when the header has it and it lies inside the file.
    pub fn feature(&self, bit: u32) -> Option<&'a [u8]> {
        let (off, size) = *self.features.get(&bit)?;
        let end = off.checked_add(size)?;
        self.bytes
            .get(usize::try_from(off).ok()?..usize::try_from(end).ok()?)
    }

    /// The index of the attr that recorded the event with `id`.
    pub fn attr_of_id(&self, id: u64) -> Option<usize> {
        self.id_to_attr.get(&id).copied()
    }

    /// The records of the data section in file order. The iterator stops at the first record
    /// that does not fit (see [`FileRecords::stopped`]).
    pub fn records(&self) -> FileRecords<'a> {
        FileRecords {
            bytes: self.bytes,
            pos: self.data_offset,
            end: self.data_end,
            stopped: None,
        }
    }
}

fn parse_attrs(
    bytes: &[u8],
    off: u64,
    size: u64,
    attr_size: u64,
) -> Result<Vec<AttrEntry>, ReadError> {
    if size == 0 {
        return Ok(Vec::new());
    }
    if attr_size < u64::from(abi::ATTR_SIZE_VER0) + 16 || attr_size > 4096 {
        return Err(ReadError::BadHeader {
            offset: 16,
            what: format!(
                "attr_size {attr_size} is impossible (perf 6.1 writes 144); corrupt file?"
            ),
        });
    }
    if size % attr_size != 0 {
        return Err(ReadError::BadHeader {
            offset: ATTRS_AT + 8,
            what: format!(
                "attrs section size {size} is not a multiple of attr_size {attr_size}; corrupt file?"
            ),
        });
    }
    let n = size / attr_size;
    let mut out = Vec::with_capacity(n.min(4096) as usize);
    for i in 0..n {
        let at = off + i * attr_size;
        let entry = &bytes[at as usize..(at + attr_size) as usize];
        let claimed = u64::from(u32_at(entry, 4).unwrap_or(0));
        if claimed > attr_size - 16 {
            return Err(ReadError::BadHeader {
                offset: at + 4,
                what: format!(
                    "attr {i} has size {claimed}, more than the {} bytes its entry holds; corrupt file?",
                    attr_size - 16
                ),
            });
        }
        if claimed > u64::from(abi::ATTR_SIZE_VER7) + 8 {
            return Err(ReadError::BadHeader {
                offset: at + 4,
                what: format!(
                    "attr {i} has size {claimed}: a more recent and unsupported ABI (perf 6.1 reads up to 136)"
                ),
            });
        }
        let attr = EventAttr::parse(&entry[..(attr_size - 16) as usize]).ok_or_else(|| {
            ReadError::BadHeader {
                offset: at,
                what: format!("attr {i} is cut short"),
            }
        })?;
        let ids_desc = at + attr_size - 16;
        let (ids_off, ids_size) = section_at(bytes, ids_desc, "ids")?;
        if ids_size % 8 != 0 {
            return Err(ReadError::BadHeader {
                offset: ids_desc + 8,
                what: format!("ids section of attr {i} has size {ids_size}, not a multiple of 8"),
            });
        }
        let ids = (0..ids_size / 8)
            .filter_map(|k| u64_at(bytes, (ids_off + k * 8) as usize))
            .collect();
        out.push(AttrEntry { attr, ids });
    }
    Ok(out)
}

/// The feature table: one `perf_file_section` per set bit of the header's bitmap, in bit
/// order, at `table`. Entries outside the file are dropped (their feature reads as absent).
fn parse_feature_table(bytes: &[u8], table: u64) -> BTreeMap<u32, (u64, u64)> {
    let mut out = BTreeMap::new();
    let mut at = table;
    for bit in 0..256u32 {
        let word = u64_at(bytes, FEATURES_AT + (bit as usize / 64) * 8).unwrap_or(0);
        if word & (1 << (bit % 64)) == 0 {
            continue;
        }
        let (Some(off), Some(size)) = (u64_at(bytes, at as usize), u64_at(bytes, at as usize + 8))
        else {
            break;
        };
        at += 16;
        if off
            .checked_add(size)
            .is_some_and(|e| e <= bytes.len() as u64)
        {
            out.insert(bit, (off, size));
        }
    }
    out
}

/// The records of the data section in file order.
#[derive(Debug, Clone)]
pub struct FileRecords<'a> {
    bytes: &'a [u8],
    pos: u64,
    end: u64,
    stopped: Option<Warning>,
}

impl FileRecords<'_> {
    /// Why the iteration ended before the end of the data section, if it did.
    pub fn stopped(&self) -> Option<&Warning> {
        self.stopped.as_ref()
    }
}

impl<'a> Iterator for FileRecords<'a> {
    type Item = RawRecord<'a>;

    fn next(&mut self) -> Option<RawRecord<'a>> {
        if self.pos >= self.end {
            return None;
        }
        let at = self.pos as usize;
        let left = self.end - self.pos;
        let stop = |this: &mut Self, reason: String| {
            this.stopped = Some(Warning::Truncated {
                offset: this.pos,
                reason,
            });
            this.pos = this.end;
            None
        };
        if left < abi::EVENT_HEADER_SIZE as u64 {
            return stop(
                self,
                format!("{left} bytes left, less than a record header"),
            );
        }
        let type_ = u32_at(self.bytes, at)?;
        let misc = abi::u16_at(self.bytes, at + 4)?;
        let size = u64::from(abi::u16_at(self.bytes, at + 6)?);
        if size < abi::EVENT_HEADER_SIZE as u64 {
            return stop(self, format!("record of type {type_} has size {size}"));
        }
        if size > left {
            return stop(
                self,
                format!(
                    "record of type {type_} and size {size} runs past the end ({left} bytes left)"
                ),
            );
        }
        let body = &self.bytes[at + abi::EVENT_HEADER_SIZE..at + size as usize];
        let rec = RawRecord {
            offset: self.pos,
            type_,
            misc,
            body,
        };
        self.pos += size;
        Some(rec)
    }
}

#[cfg(test)]
pub(crate) mod testfile {
    //! A small perf.data built in memory, laid out the way perf 6.1 writes `perf record -e
    //! sched:sched_switch` (header, ids, attrs, data, feature table), for the reader's tests.
    use super::*;
    use crate::perf::abi::{flag, perf_type, record, sample};

    /// A tracepoint attr with `sample_type` as perf 6.1 writes for `-a -g`.
    pub fn tp_attr() -> EventAttr {
        EventAttr {
            type_: perf_type::TRACEPOINT,
            size: 128,
            config: 0x174,
            sample_period: 1,
            sample_type: 0x105a7,
            read_format: 0x14,
            flags: flag::DISABLED | flag::INHERIT | flag::SAMPLE_ID_ALL | flag::EXCLUDE_GUEST,
            wakeup: 1,
            ..EventAttr::default()
        }
    }

    /// A record with `body` (padded to 8).
    pub fn rec(type_: u32, misc: u16, body: &[u8]) -> Vec<u8> {
        let mut b = body.to_vec();
        while (b.len() + 8) % 8 != 0 {
            b.push(0);
        }
        let mut r = Vec::new();
        r.extend_from_slice(&type_.to_ne_bytes());
        r.extend_from_slice(&misc.to_ne_bytes());
        r.extend_from_slice(&((b.len() + 8) as u16).to_ne_bytes());
        r.extend_from_slice(&b);
        r
    }

    /// A sample of [`tp_attr`]: id, ip, pid/tid, time, cpu, period, an empty callchain and raw.
    pub fn sample_rec(id: u64, time: u64, cpu: u32, raw: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [id, 0xffffffff81000000u64] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        b.extend_from_slice(&7u32.to_ne_bytes());
        b.extend_from_slice(&7u32.to_ne_bytes());
        b.extend_from_slice(&time.to_ne_bytes());
        b.extend_from_slice(&cpu.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&1u64.to_ne_bytes());
        b.extend_from_slice(&0u64.to_ne_bytes()); // callchain nr
        let mut raw = raw.to_vec();
        while (raw.len() + 4) % 8 != 0 {
            raw.push(0);
        }
        b.extend_from_slice(&(raw.len() as u32).to_ne_bytes());
        b.extend_from_slice(&raw);
        let _ = sample::RAW;
        rec(record::SAMPLE, 1, &b)
    }

    /// A whole file: one attr with ids `ids`, `data` records, and `features` (bit, payload).
    pub fn file(
        attrs: &[(EventAttr, Vec<u64>)],
        data: &[u8],
        features: &[(u32, Vec<u8>)],
    ) -> Vec<u8> {
        let mut f = vec![0u8; 104];
        let mut ids_at = Vec::new();
        for (_, ids) in attrs {
            ids_at.push((f.len() as u64, ids.len() as u64 * 8));
            for id in ids {
                f.extend_from_slice(&id.to_ne_bytes());
            }
        }
        let attrs_off = f.len() as u64;
        for ((a, _), (o, s)) in attrs.iter().zip(&ids_at) {
            f.extend_from_slice(&a.encode(128));
            f.extend_from_slice(&o.to_ne_bytes());
            f.extend_from_slice(&s.to_ne_bytes());
        }
        let data_off = f.len() as u64;
        f.extend_from_slice(data);
        let table = f.len();
        f.resize(table + features.len() * 16, 0);
        let mut bitmap = [0u64; 4];
        for (i, (bit, payload)) in features.iter().enumerate() {
            bitmap[*bit as usize / 64] |= 1 << (bit % 64);
            let off = f.len() as u64;
            f.extend_from_slice(payload);
            f[table + i * 16..table + i * 16 + 8].copy_from_slice(&off.to_ne_bytes());
            f[table + i * 16 + 8..table + i * 16 + 16]
                .copy_from_slice(&(payload.len() as u64).to_ne_bytes());
        }
        f[..8].copy_from_slice(b"PERFILE2");
        f[8..16].copy_from_slice(&104u64.to_ne_bytes());
        f[16..24].copy_from_slice(&144u64.to_ne_bytes());
        f[24..32].copy_from_slice(&attrs_off.to_ne_bytes());
        f[32..40].copy_from_slice(&(attrs.len() as u64 * 144).to_ne_bytes());
        f[40..48].copy_from_slice(&data_off.to_ne_bytes());
        f[48..56].copy_from_slice(&(data.len() as u64).to_ne_bytes());
        for (i, w) in bitmap.iter().enumerate() {
            f[72 + i * 8..80 + i * 8].copy_from_slice(&w.to_ne_bytes());
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::testfile::*;
    use super::*;
    use crate::perf::abi::record;

    fn two_samples() -> Vec<u8> {
        let mut data = sample_rec(32, 200, 0, &[0x74, 1, 0, 0]);
        data.extend(sample_rec(33, 100, 1, &[0x74, 1, 0, 0]));
        data.extend(rec(record::FINISHED_ROUND, 0, &[]));
        file(
            &[(tp_attr(), vec![32, 33])],
            &data,
            &[(3, b"\x08\0\0\0host\0\0\0\0".to_vec())],
        )
    }

    #[test]
    fn header_attrs_ids_features_and_records() {
        let bytes = two_samples();
        let f = PerfFile::parse(&bytes).expect("parse");
        assert_eq!(f.attrs.len(), 1);
        assert_eq!(f.attrs[0].attr.config, 0x174);
        assert_eq!(f.attrs[0].ids, vec![32, 33]);
        assert_eq!(f.attr_of_id(33), Some(0));
        assert_eq!(f.attr_of_id(34), None);
        assert!(f.warnings.is_empty());
        let recs: Vec<_> = f.records().collect();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].type_, record::SAMPLE);
        assert_eq!(recs[2].type_, record::FINISHED_ROUND);
        assert_eq!(recs[2].body.len(), 0);
        assert_eq!(f.feature(3).map(<[u8]>::len), Some(12));
        assert_eq!(f.feature(1), None);
    }

    #[test]
    fn foreign_files_are_errors() {
        assert!(matches!(
            PerfFile::parse(b"PERF"),
            Err(ReadError::TooShort { len: 4 })
        ));
        let mut b = two_samples();
        b[..8].copy_from_slice(b"2ELIFREP");
        assert_eq!(PerfFile::parse(&b).unwrap_err(), ReadError::OtherEndian);
        b[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\0");
        assert!(matches!(
            PerfFile::parse(&b),
            Err(ReadError::BadMagic { .. })
        ));
        let mut p = b"PERFILE2".to_vec();
        p.extend_from_slice(&16u64.to_ne_bytes());
        assert_eq!(PerfFile::parse(&p).unwrap_err(), ReadError::PipeMode);
        let mut b = two_samples();
        b[16] = 0xff;
        b[17] = 0xff;
        assert!(matches!(
            PerfFile::parse(&b),
            Err(ReadError::BadHeader { offset: 16, .. })
        ));
        let mut b = two_samples();
        b[24..32].copy_from_slice(&u64::MAX.to_ne_bytes());
        let e = PerfFile::parse(&b).unwrap_err();
        assert!(e.to_string().contains("attrs section"), "{e}");
    }

    #[test]
    fn cut_short_files_read_up_to_the_last_whole_record() {
        let whole = two_samples();
        let f = PerfFile::parse(&whole).unwrap();
        let data_off = f.data_offset as usize;
        let first_len = f.records().next().unwrap().body.len() + 8;
        // Up to the end of the data: past it the records are whole and only features miss.
        for cut in data_off..f.data_end as usize {
            let b = &whole[..cut];
            let f = PerfFile::parse(b).expect("readable");
            let mut it = f.records();
            let n = it.by_ref().count();
            let expect = usize::from(cut >= data_off + first_len)
                + usize::from(cut >= data_off + 2 * first_len)
                + usize::from(cut >= data_off + 2 * first_len + 8);
            assert_eq!(n, expect, "cut at {cut}");
            let warned = !f.warnings.is_empty() || it.stopped().is_some();
            assert!(warned, "cut at {cut}: no warning");
        }
    }

    #[test]
    fn impossible_record_sizes_stop_the_data() {
        let mut b = two_samples();
        let f = PerfFile::parse(&b).unwrap();
        let at = f.data_offset as usize;
        b[at + 6] = 3; // size 3 < header
        b[at + 7] = 0;
        let f = PerfFile::parse(&b).unwrap();
        let mut it = f.records();
        assert_eq!(it.by_ref().count(), 0);
        let w = it.stopped().expect("warning").to_string();
        assert!(w.contains("size 3"), "{w}");
    }

    #[test]
    fn data_size_zero_reads_what_follows() {
        let mut b = two_samples();
        b[48..56].copy_from_slice(&0u64.to_ne_bytes());
        let f = PerfFile::parse(&b).unwrap();
        assert_eq!(f.warnings, vec![Warning::DataSizeZero]);
        assert!(f.features.is_empty());
        // The feature payload after the data reads as records until one does not fit.
        assert!(f.records().count() >= 3);
    }
}

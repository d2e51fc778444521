//! The perf.data writer, in perf's own layout:
//!
//! ```text
//! 0     perf_file_header (104)          magic, sizes, attrs/data sections, feature bitmap
//! 104   u64 ids[]                       per attr, one per opened fd
//! ...   {perf_event_attr (128); perf_file_section ids} per attr
//! data  records, streamed               data.size rewritten at every checkpoint
//! end   feature table + payloads        only at finish; the bitmap is set only then
//! ```
//! Crash safety: the header is rewritten at checkpoints with the size of the data flushed so
//! far and an empty feature bitmap, so a file whose writer dies (SIGKILL, a full disk) reads
//! as everything up to the last checkpoint (records past it are ignored by readers, which stop
//! at `data.offset + data.size`). Tracepoint formats, which perf must have, are therefore
//! written into the data section as a `HEADER_TRACING_DATA` record first; perf 6.1 reads that
//! record in file mode too. At finish the same blob also goes into the `TRACING_DATA` feature,
//! for readers that only look there.
//!
//! `data.size = 0` makes perf refuse a file, so the first checkpoint is taken after the
//! synthesized records, before any event is enabled.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;

use super::abi::{feature, EventAttr, ATTR_SIZE_VER7, FILE_HEADER_SIZE, FILE_MAGIC};

/// One attr of the file: its attr, name (for EVENT_DESC) and the ids of its fds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrEntry {
    /// The attr as opened.
    pub attr: EventAttr,
    /// `sched:sched_switch`, `cpu-clock`, `dummy:HG`.
    pub name: String,
    /// `PERF_EVENT_IOC_ID` of each fd.
    pub ids: Vec<u64>,
}

/// A DSO's build id for the `BUILD_ID` feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildIdEntry {
    /// Kernel (`[kernel.kallsyms]`) or user.
    pub kernel: bool,
    /// The build id (up to 20 bytes).
    pub id: Vec<u8>,
    /// The DSO path, or `[kernel.kallsyms]`.
    pub filename: String,
}

/// The feature sections written at finish. Empty strings and `None`s are left out.
#[derive(Debug, Clone, Default)]
pub struct Features {
    /// `HEADER_TRACING_DATA` payload ([`super::tracing_data::encode`]).
    pub tracing_data: Option<Vec<u8>>,
    /// `HEADER_BUILD_ID`.
    pub build_ids: Vec<BuildIdEntry>,
    /// `HEADER_HOSTNAME`.
    pub hostname: String,
    /// `HEADER_OSRELEASE`.
    pub osrelease: String,
    /// `HEADER_VERSION` (perf's version string; rprobe writes its own).
    pub version: String,
    /// `HEADER_ARCH`.
    pub arch: String,
    /// `HEADER_NRCPUS`: (available, online).
    pub nrcpus: Option<(u32, u32)>,
    /// `HEADER_CMDLINE`.
    pub cmdline: Vec<String>,
    /// `HEADER_SAMPLE_TIME`: first and last sample time.
    pub sample_time: Option<(u64, u64)>,
}

/// `{u32 len; char s[len]}`, NUL-terminated and padded to 64 as perf does.
fn header_string(out: &mut Vec<u8>, s: &str) {
    let len = (s.len() + 1).div_ceil(64) * 64;
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(s.as_bytes());
    out.resize(out.len() + len - s.len(), 0);
}

/// The on-disk entry size of one attr (attr + ids section).
pub const ATTR_ENTRY_SIZE: u64 = ATTR_SIZE_VER7 as u64 + 16;

/// `struct perf_file_header`.
pub fn encode_header(attrs: (u64, u64), data: (u64, u64), features: &[u32]) -> [u8; 104] {
    let mut h = [0u8; 104];
    h[0..8].copy_from_slice(&FILE_MAGIC);
    let words = [
        FILE_HEADER_SIZE,
        ATTR_ENTRY_SIZE,
        attrs.0,
        attrs.1,
        data.0,
        data.1,
        0,
        0,
    ];
    for (i, w) in words.iter().enumerate() {
        h[8 + i * 8..16 + i * 8].copy_from_slice(&w.to_ne_bytes());
    }
    for &f in features {
        let (word, bit) = ((f / 64) as usize, f % 64);
        let off = 72 + word * 8;
        let mut v = u64::from_ne_bytes(h[off..off + 8].try_into().unwrap_or_default());
        v |= 1 << bit;
        h[off..off + 8].copy_from_slice(&v.to_ne_bytes());
    }
    h
}

/// The ids and attrs sections starting at [`FILE_HEADER_SIZE`]: returns the bytes, the attrs
/// section `(offset, size)`, and where data starts.
pub fn encode_attrs(attrs: &[AttrEntry]) -> (Vec<u8>, (u64, u64), u64) {
    let mut b = Vec::new();
    let mut id_sections = Vec::new();
    for a in attrs {
        let off = FILE_HEADER_SIZE + b.len() as u64;
        for id in &a.ids {
            b.extend_from_slice(&id.to_ne_bytes());
        }
        id_sections.push((off, 8 * a.ids.len() as u64));
    }
    let attrs_off = FILE_HEADER_SIZE + b.len() as u64;
    for (a, (off, size)) in attrs.iter().zip(id_sections) {
        b.extend_from_slice(&a.attr.encode(ATTR_SIZE_VER7));
        b.extend_from_slice(&off.to_ne_bytes());
        b.extend_from_slice(&size.to_ne_bytes());
    }
    let attrs_size = attrs.len() as u64 * ATTR_ENTRY_SIZE;
    (b, (attrs_off, attrs_size), attrs_off + attrs_size)
}

/// The feature payloads, each with its bit, in bit order.
pub fn encode_features(f: &Features, attrs: &[AttrEntry]) -> Vec<(u32, Vec<u8>)> {
    let mut out: Vec<(u32, Vec<u8>)> = Vec::new();
    if let Some(t) = &f.tracing_data {
        out.push((feature::TRACING_DATA, t.clone()));
    }
    if !f.build_ids.is_empty() {
        let mut b = Vec::new();
        for e in &f.build_ids {
            let name_len = (e.filename.len() + 1).div_ceil(64) * 64;
            let size = 8 + 4 + 24 + name_len;
            b.extend_from_slice(&0u32.to_ne_bytes());
            // PERF_RECORD_MISC_KERNEL/USER | PERF_RECORD_MISC_BUILD_ID_SIZE
            let misc: u16 = if e.kernel { 1 } else { 2 } | 0x8000;
            b.extend_from_slice(&misc.to_ne_bytes());
            b.extend_from_slice(&(size as u16).to_ne_bytes());
            b.extend_from_slice(&(-1i32).to_ne_bytes());
            let mut id = [0u8; 24];
            let n = e.id.len().min(20);
            id[..n].copy_from_slice(&e.id[..n]);
            id[20] = n as u8;
            b.extend_from_slice(&id);
            b.extend_from_slice(e.filename.as_bytes());
            b.resize(b.len() + name_len - e.filename.len(), 0);
        }
        out.push((feature::BUILD_ID, b));
    }
    for (bit, s) in [
        (feature::HOSTNAME, &f.hostname),
        (feature::OSRELEASE, &f.osrelease),
        (feature::VERSION, &f.version),
        (feature::ARCH, &f.arch),
    ] {
        if !s.is_empty() {
            let mut b = Vec::new();
            header_string(&mut b, s);
            out.push((bit, b));
        }
    }
    if let Some((avail, online)) = f.nrcpus {
        let mut b = avail.to_ne_bytes().to_vec();
        b.extend_from_slice(&online.to_ne_bytes());
        out.push((feature::NRCPUS, b));
    }
    if !f.cmdline.is_empty() {
        let mut b = (f.cmdline.len() as u32).to_ne_bytes().to_vec();
        for s in &f.cmdline {
            header_string(&mut b, s);
        }
        out.push((feature::CMDLINE, b));
    }
    if !attrs.is_empty() {
        let mut b = (attrs.len() as u32).to_ne_bytes().to_vec();
        b.extend_from_slice(&ATTR_SIZE_VER7.to_ne_bytes());
        for a in attrs {
            b.extend_from_slice(&a.attr.encode(ATTR_SIZE_VER7));
            b.extend_from_slice(&(a.ids.len() as u32).to_ne_bytes());
            header_string(&mut b, &a.name);
            for id in &a.ids {
                b.extend_from_slice(&id.to_ne_bytes());
            }
        }
        out.push((feature::EVENT_DESC, b));
    }
    if let Some((first, last)) = f.sample_time {
        let mut b = first.to_ne_bytes().to_vec();
        b.extend_from_slice(&last.to_ne_bytes());
        out.push((feature::SAMPLE_TIME, b));
    }
    out.sort_by_key(|(bit, _)| *bit);
    out
}

/// A feature payload already on disk: `(bit, offset, size)`.
type Placed = (u32, u64, u64);

/// The feature table: one `perf_file_section` per feature, in bit order.
pub fn encode_table(entries: &[Placed]) -> Vec<u8> {
    let mut sorted = entries.to_vec();
    sorted.sort_by_key(|e| e.0);
    let mut b = Vec::with_capacity(16 * sorted.len());
    for (_, off, size) in sorted {
        b.extend_from_slice(&off.to_ne_bytes());
        b.extend_from_slice(&size.to_ne_bytes());
    }
    b
}

fn round_header(size: usize) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[0..4].copy_from_slice(&super::abi::record::FINISHED_ROUND.to_ne_bytes());
    h[6..8].copy_from_slice(&(size as u16).to_ne_bytes());
    h
}

/// A perf.data file being written.
///
/// Checkpoints keep the file readable at every moment, tracepoint formats included (perf
/// 6.1 refuses a tracepoint file without the `TRACING_DATA` feature, checked when the header
/// is read, and refuses a second copy of the formats as a `HEADER_TRACING_DATA` record in
/// the data). The static feature payloads (everything but `BUILD_ID` and `SAMPLE_TIME`) are
/// written once, between the attrs and the data. Each checkpoint appends an 8-byte
/// `FINISHED_ROUND` and a feature table pointing at those payloads, then rewrites the header
/// to end the data right after that `FINISHED_ROUND`, so the table sits exactly at the data
/// end. Records written afterwards go after the table; at the next checkpoint the old
/// `FINISHED_ROUND` is grown to cover the old table (readers skip a record by its size, and
/// perf ignores a FINISHED_ROUND's body), and only then does the header move on.
#[derive(Debug)]
pub struct PerfDataWriter {
    out: BufWriter<File>,
    attrs_section: (u64, u64),
    data_offset: u64,
    /// Bytes of the data section so far (buffered or not), old tables included.
    data_size: u64,
    /// Bytes of data the header last claimed.
    checkpointed: u64,
    static_features: Vec<Placed>,
    /// File offset of the FINISHED_ROUND in front of the last table, and the table's size.
    last_table: Option<(u64, usize)>,
}

impl PerfDataWriter {
    /// Start a file: write the ids, the attrs and the static feature payloads of `features`
    /// (its `build_ids` and `sample_time` are ignored here), and leave room for the header
    /// (written at the first [`PerfDataWriter::checkpoint`]). `file` must be empty.
    pub fn new(
        file: File,
        attrs: Vec<AttrEntry>,
        features: &Features,
    ) -> io::Result<PerfDataWriter> {
        let (mut bytes, attrs_section, mut data_offset) = encode_attrs(&attrs);
        let stat = Features {
            build_ids: Vec::new(),
            sample_time: None,
            ..features.clone()
        };
        let mut static_features = Vec::new();
        for (bit, payload) in encode_features(&stat, &attrs) {
            static_features.push((bit, data_offset, payload.len() as u64));
            data_offset += payload.len() as u64;
            bytes.extend_from_slice(&payload);
        }
        let pad = data_offset.next_multiple_of(8) - data_offset;
        bytes.resize(bytes.len() + pad as usize, 0);
        data_offset += pad;
        file.write_all_at(&bytes, FILE_HEADER_SIZE)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        use std::io::Seek;
        out.seek(io::SeekFrom::Start(data_offset))?;
        Ok(PerfDataWriter {
            out,
            attrs_section,
            data_offset,
            data_size: 0,
            checkpointed: 0,
            static_features,
            last_table: None,
        })
    }

    /// Append records (whole records only) to the data section.
    pub fn write(&mut self, records: &[u8]) -> io::Result<()> {
        self.out.write_all(records)?;
        self.data_size += records.len() as u64;
        Ok(())
    }

    /// Bytes of the data section so far.
    pub fn data_size(&self) -> u64 {
        self.data_size
    }

    /// The whole file size so far.
    pub fn file_size(&self) -> u64 {
        self.data_offset + self.data_size
    }

    fn bits(&self) -> Vec<u32> {
        self.static_features.iter().map(|f| f.0).collect()
    }

    /// Make everything written so far readable: see the type's documentation.
    pub fn checkpoint(&mut self) -> io::Result<()> {
        if self.checkpointed == self.data_size && self.last_table.is_some() {
            return Ok(());
        }
        let table = encode_table(&self.static_features);
        let slot = self.data_offset + self.data_size;
        self.out.write_all(&round_header(8))?;
        self.out.write_all(&table)?;
        self.out.flush()?;
        let file = self.out.get_ref();
        if let Some((at, len)) = self.last_table {
            file.write_all_at(&round_header(8 + len), at)?;
        }
        let claimed = self.data_size + 8;
        let h = encode_header(
            self.attrs_section,
            (self.data_offset, claimed),
            &self.bits(),
        );
        file.write_all_at(&h, 0)?;
        self.last_table = Some((slot, table.len()));
        self.data_size += 8 + table.len() as u64;
        self.checkpointed = self.data_size;
        Ok(())
    }

    /// Write the final feature table (static features plus `features.build_ids` and
    /// `features.sample_time`) after the data and the final header; returns the file size.
    pub fn finish(mut self, features: &Features) -> io::Result<u64> {
        self.out.flush()?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        if let Some((at, len)) = self.last_table {
            file.write_all_at(&round_header(8 + len), at)?;
        }
        let dynamic = Features {
            build_ids: features.build_ids.clone(),
            sample_time: features.sample_time,
            ..Features::default()
        };
        let extra = encode_features(&dynamic, &[]);
        let at = self.data_offset + self.data_size;
        let mut entries = self.static_features.clone();
        let mut off = at + 16 * (entries.len() + extra.len()) as u64;
        for (bit, p) in &extra {
            entries.push((*bit, off, p.len() as u64));
            off += p.len() as u64;
        }
        let mut block = encode_table(&entries);
        for (_, p) in &extra {
            block.extend_from_slice(p);
        }
        file.write_all_at(&block, at)?;
        file.set_len(at + block.len() as u64)?;
        let mut bits: Vec<u32> = entries.iter().map(|e| e.0).collect();
        bits.sort_unstable();
        let h = encode_header(
            self.attrs_section,
            (self.data_offset, self.data_size),
            &bits,
        );
        file.write_all_at(&h, 0)?;
        Ok(at + block.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perf::abi::{perf_type, u64_at};

    fn entry(name: &str, ids: &[u64]) -> AttrEntry {
        AttrEntry {
            attr: EventAttr {
                type_: perf_type::SOFTWARE,
                size: 128,
                ..Default::default()
            },
            name: name.into(),
            ids: ids.to_vec(),
        }
    }

    #[test]
    fn header_matches_perfs_field_positions() {
        // From `perf record -e sched:sched_switch -a -g` (perf 6.1): attrs {0x88, 0x120},
        // data {0x1a8, 0x1d0a0}.
        let h = encode_header((0x88, 0x120), (0x1a8, 0x1d0a0), &[1, 3, 64 + 4]);
        assert_eq!(&h[0..8], b"PERFILE2");
        assert_eq!(u64_at(&h, 8), Some(104));
        assert_eq!(u64_at(&h, 16), Some(0x90));
        assert_eq!(u64_at(&h, 24), Some(0x88));
        assert_eq!(u64_at(&h, 40), Some(0x1a8));
        assert_eq!(u64_at(&h, 48), Some(0x1d0a0));
        assert_eq!(u64_at(&h, 72), Some(0b1010));
        assert_eq!(u64_at(&h, 80), Some(0b10000));
    }

    #[test]
    fn attrs_follow_their_ids_as_in_perfs_files() {
        let attrs = [entry("a", &[32, 33]), entry("b", &[34, 35])];
        let (b, section, data) = encode_attrs(&attrs);
        assert_eq!(section, (0x88, 0x120));
        assert_eq!(data, 0x1a8);
        assert_eq!(u64_at(&b, 0), Some(32));
        // attr[0]'s ids section is {0x68, 0x10}, attr[1]'s {0x78, 0x10}
        assert_eq!(u64_at(&b, 0x88 - 104 + 128), Some(0x68));
        assert_eq!(u64_at(&b, 0x88 - 104 + 136), Some(0x10));
        assert_eq!(u64_at(&b, 0x118 - 104 + 128), Some(0x78));
    }

    #[test]
    fn features_in_bit_order_with_a_table_at_the_data_end() {
        let f = Features {
            hostname: "vm".into(),
            nrcpus: Some((2, 2)),
            cmdline: vec!["rprobe".into(), "record".into()],
            sample_time: Some((5, 9)),
            build_ids: vec![BuildIdEntry {
                kernel: true,
                id: vec![0xab; 20],
                filename: "[kernel.kallsyms]".into(),
            }],
            ..Default::default()
        };
        let feats = encode_features(&f, &[entry("cpu-clock", &[7])]);
        let bits: Vec<u32> = feats.iter().map(|(b, _)| *b).collect();
        assert_eq!(bits, vec![2, 3, 7, 11, 12, 21]);
        assert_eq!(feats[1].1.len(), 4 + 64);
        assert_eq!(&feats[1].1[0..6], &[64, 0, 0, 0, b'v', b'm']);
        assert_eq!(feats[0].1.len(), 36 + 64);
        assert_eq!(&feats[0].1[4..8], &[1, 0x80, 100, 0]);
        // EVENT_DESC: nr 1, attr_size 128, attr, nr_ids 1, name, id 7.
        let ed = &feats[4].1;
        assert_eq!(ed.len(), 8 + 128 + 4 + 4 + 64 + 8);
        assert_eq!(u64_at(ed, ed.len() - 8), Some(7));
        let table = encode_table(&[(7, 500, 8), (3, 400, 68)]);
        assert_eq!(table.len(), 32);
        assert_eq!(
            (u64_at(&table, 0), u64_at(&table, 16)),
            (Some(400), Some(500))
        );
    }

    #[test]
    fn checkpoints_keep_a_table_at_the_data_end() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("perf.data");
        let file = File::create(&path).expect("create");
        let f = Features {
            hostname: "vm".into(),
            ..Default::default()
        };
        let mut w = PerfDataWriter::new(file, vec![entry("cpu-clock", &[7])], &f).expect("new");
        let data_off = w.data_offset;
        let mut rec = Vec::new();
        crate::perf::synth::bare(&mut rec, crate::perf::abi::record::FINISHED_INIT);
        let table_at = |d: &[u8]| u64_at(d, 40).unwrap_or(0) + u64_at(d, 48).unwrap_or(0);
        let check = |d: &[u8], records: usize| {
            // Records from data.offset to data end parse and are `records` many.
            let (off, size) = (
                u64_at(d, 40).unwrap_or(0) as usize,
                u64_at(d, 48).unwrap_or(0) as usize,
            );
            let n = crate::perf::ring::records(&d[off..off + size]).count();
            assert_eq!(n, records);
            // The table's first entry points at the hostname payload.
            let t = table_at(d) as usize;
            let (p, len) = (
                u64_at(d, t).unwrap_or(0) as usize,
                u64_at(d, t + 8).unwrap_or(0),
            );
            assert_eq!((len, &d[p + 4..p + 6]), (68, &b"vm"[..]));
        };
        w.write(&rec).expect("write");
        w.checkpoint().expect("cp");
        let d = std::fs::read(&path).expect("read");
        assert_eq!(u64_at(&d, 40), Some(data_off));
        assert_eq!(
            u64_at(&d, 72),
            Some((1 << feature::HOSTNAME) | (1 << feature::EVENT_DESC))
        );
        check(&d, 2); // FINISHED_INIT + the FINISHED_ROUND slot
                      // Records after the checkpoint are not claimed yet: the old state still reads.
        w.write(&rec).expect("write");
        w.write(&rec).expect("write");
        w.out.flush().expect("flush");
        check(&std::fs::read(&path).expect("read"), 2);
        w.checkpoint().expect("cp");
        // The old slot grew over the old table: 1 + slot + 2 + new slot.
        check(&std::fs::read(&path).expect("read"), 5);
        w.write(&rec).expect("write");
        let size = w
            .finish(&Features {
                sample_time: Some((1, 2)),
                ..Default::default()
            })
            .expect("finish");
        let d = std::fs::read(&path).expect("read");
        assert_eq!(d.len() as u64, size);
        let (off, size) = (
            u64_at(&d, 40).unwrap_or(0) as usize,
            u64_at(&d, 48).unwrap_or(0) as usize,
        );
        assert_eq!(crate::perf::ring::records(&d[off..off + size]).count(), 6);
        assert_eq!(
            u64_at(&d, 72),
            Some(
                (1 << feature::HOSTNAME) | (1 << feature::EVENT_DESC) | (1 << feature::SAMPLE_TIME)
            )
        );
        // SAMPLE_TIME is the third table entry.
        let t = table_at(&d) as usize + 32;
        let p = u64_at(&d, t).unwrap_or(0) as usize;
        assert_eq!((u64_at(&d, p), u64_at(&d, p + 8)), (Some(1), Some(2)));
    }
}

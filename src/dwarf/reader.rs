//! The gimli [`Reader`] rprobe reads DWARF through: a window on section bytes that either
//! borrow the caller's mapping or, for a `SHF_COMPRESSED` section, are owned after inflating.
//!
//! gimli's own `EndianSlice` can only borrow, and its `EndianArcSlice` always owns, so a
//! mapped file with a mix of plain and compressed sections (Debian's `libc6-dbg` compresses
//! everything but `.debug_str`) would need either a copy of the plain sections or a
//! self-referential struct. This reader is the safe middle: plain sections stay borrowed,
//! compressed ones live in an `Arc<[u8]>` that clones cheaply.

use std::borrow::Cow;
use std::sync::Arc;

use gimli::{Error, LittleEndian, Reader, ReaderOffsetId, Result};

/// Where the bytes of a section live.
#[derive(Debug, Clone)]
enum Source<'a> {
    Borrowed(&'a [u8]),
    Owned(Arc<[u8]>),
}

/// A little-endian window `start..end` on a section's bytes.
#[derive(Debug, Clone)]
pub(crate) struct Bytes<'a> {
    source: Source<'a>,
    start: usize,
    end: usize,
}

impl<'a> Bytes<'a> {
    /// A reader over bytes of the caller's mapping.
    pub(crate) fn borrowed(data: &'a [u8]) -> Self {
        Bytes {
            source: Source::Borrowed(data),
            start: 0,
            end: data.len(),
        }
    }

    /// A reader over inflated bytes.
    pub(crate) fn owned(data: Vec<u8>) -> Self {
        let end = data.len();
        Bytes {
            source: Source::Owned(data.into()),
            start: 0,
            end,
        }
    }

    /// The bytes still to read.
    pub(crate) fn slice(&self) -> &[u8] {
        let all: &[u8] = match &self.source {
            Source::Borrowed(b) => b,
            Source::Owned(b) => b,
        };
        all.get(self.start..self.end).unwrap_or(&[])
    }

    fn eof(&self) -> Error {
        Error::UnexpectedEof(self.offset_id())
    }
}

impl Reader for Bytes<'_> {
    type Endian = LittleEndian;
    type Offset = usize;

    fn endian(&self) -> LittleEndian {
        LittleEndian
    }

    fn len(&self) -> usize {
        self.end - self.start
    }

    fn empty(&mut self) {
        self.start = self.end;
    }

    fn truncate(&mut self, len: usize) -> Result<()> {
        if len > self.len() {
            return Err(self.eof());
        }
        self.end = self.start + len;
        Ok(())
    }

    fn offset_from(&self, base: &Self) -> usize {
        self.start.wrapping_sub(base.start)
    }

    fn offset_id(&self) -> ReaderOffsetId {
        ReaderOffsetId(self.slice().as_ptr() as u64)
    }

    fn lookup_offset_id(&self, id: ReaderOffsetId) -> Option<usize> {
        let base = self.slice().as_ptr() as u64;
        let len = self.len() as u64;
        if id.0 >= base && id.0 <= base.saturating_add(len) {
            usize::try_from(id.0 - base).ok()
        } else {
            None
        }
    }

    fn find(&self, byte: u8) -> Result<usize> {
        self.slice()
            .iter()
            .position(|b| *b == byte)
            .ok_or_else(|| self.eof())
    }

    fn skip(&mut self, len: usize) -> Result<()> {
        if len > self.len() {
            return Err(self.eof());
        }
        self.start += len;
        Ok(())
    }

    fn split(&mut self, len: usize) -> Result<Self> {
        if len > self.len() {
            return Err(self.eof());
        }
        let head = Bytes {
            source: self.source.clone(),
            start: self.start,
            end: self.start + len,
        };
        self.start += len;
        Ok(head)
    }

    fn to_slice(&self) -> Result<Cow<'_, [u8]>> {
        Ok(Cow::Borrowed(self.slice()))
    }

    fn to_string(&self) -> Result<Cow<'_, str>> {
        std::str::from_utf8(self.slice())
            .map(Cow::Borrowed)
            .map_err(|_| Error::BadUtf8)
    }

    fn to_string_lossy(&self) -> Result<Cow<'_, str>> {
        Ok(String::from_utf8_lossy(self.slice()))
    }

    fn read_slice(&mut self, buf: &mut [u8]) -> Result<()> {
        let src = self.slice().get(..buf.len()).ok_or_else(|| self.eof())?;
        buf.copy_from_slice(src);
        self.start += buf.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_and_owned_read_alike() {
        for mut r in [
            Bytes::borrowed(&[1, 0, 0, 0, b'h', b'i', 0, 7]),
            Bytes::owned(vec![1, 0, 0, 0, b'h', b'i', 0, 7]),
        ] {
            assert_eq!(r.read_u32().ok(), Some(1));
            let s = r.read_null_terminated_slice().expect("string");
            assert_eq!(s.to_string().ok().as_deref(), Some("hi"));
            assert_eq!(r.read_u8().ok(), Some(7));
            assert!(r.read_u8().is_err());
            assert!(r.skip(1).is_err());
        }
    }

    #[test]
    fn split_and_truncate_stay_in_bounds() {
        let mut r = Bytes::borrowed(&[1, 2, 3, 4]);
        let base = r.clone();
        let mut head = r.split(2).expect("split");
        assert_eq!(head.slice(), &[1, 2]);
        assert_eq!(r.offset_from(&base), 2);
        assert!(r.split(3).is_err());
        assert!(head.truncate(3).is_err());
        head.truncate(1).expect("truncate");
        assert_eq!(head.slice(), &[1]);
        let id = r.offset_id();
        assert_eq!(base.lookup_offset_id(id), Some(2));
    }
}

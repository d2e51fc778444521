//! Ring-buffer arithmetic over `(data, head, tail)`: which bytes of a perf ring buffer hold
//! unread records, and copying them out in order, including a record split across the end of
//! the buffer.
//!
//! The kernel writes records at `data_head` (a byte count that only grows) and never past
//! `data_tail + size`; the reader consumes from `data_tail`. Positions are taken modulo the
//! data size, a power of two. `head - tail` is at most the size: a buffer that is exactly full
//! has `head - tail == size` and `head % size == tail % size`. The kernel advances `data_head`
//! only past whole records, so the bytes between tail and head are a sequence of complete
//! `perf_event_header`-prefixed records; a header whose size is 0, not a multiple of 8, or
//! runs past head means the indices are corrupt, and the reader must not trust the buffer.

use super::abi::EVENT_HEADER_SIZE;

/// Why the unread part of a ring buffer cannot be taken as records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// `data_head - data_tail` exceeds the buffer size (or head is behind tail).
    #[error("ring buffer indices are inconsistent: head {head}, tail {tail}, size {size}")]
    BadIndices {
        /// `data_head`.
        head: u64,
        /// `data_tail`.
        tail: u64,
        /// Size of the data area.
        size: usize,
    },
    /// A record header with an impossible size.
    #[error("ring buffer record at position {pos} has size {size}, with {left} bytes unread")]
    BadRecord {
        /// Ring position of the header.
        pos: u64,
        /// Its `size` field.
        size: u16,
        /// Bytes between it and head.
        left: u64,
    },
    /// The data area is not a power of two in size.
    #[error("ring buffer data size {0} is not a power of two")]
    BadSize(usize),
}

/// Append the unread bytes `tail..head` of `data` to `out`, in order (the part after the
/// wrap-around last), and check that they are whole records. Returns the new tail (= head).
/// On an error nothing is appended.
pub fn copy_unread(data: &[u8], head: u64, tail: u64, out: &mut Vec<u8>) -> Result<u64, RingError> {
    let size = data.len();
    if size == 0 || !size.is_power_of_two() {
        return Err(RingError::BadSize(size));
    }
    let avail = head.wrapping_sub(tail);
    if avail > size as u64 {
        return Err(RingError::BadIndices { head, tail, size });
    }
    let start = out.len();
    let from = (tail % size as u64) as usize;
    let n = avail as usize;
    let first = n.min(size - from);
    out.extend_from_slice(&data[from..from + first]);
    out.extend_from_slice(&data[..n - first]);
    if let Err(e) = check_records(&out[start..], tail) {
        out.truncate(start);
        return Err(e);
    }
    Ok(head)
}

fn check_records(bytes: &[u8], tail: u64) -> Result<(), RingError> {
    let mut off = 0usize;
    while off < bytes.len() {
        let left = (bytes.len() - off) as u64;
        let size = bytes
            .get(off + 6..off + 8)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
            .unwrap_or(0);
        if (size as usize) < EVENT_HEADER_SIZE || size % 8 != 0 || size as u64 > left {
            return Err(RingError::BadRecord {
                pos: tail + off as u64,
                size,
                left,
            });
        }
        off += size as usize;
    }
    Ok(())
}

/// One record of a byte run that [`copy_unread`] checked: `(type, misc, whole record)`.
pub fn records(bytes: &[u8]) -> Records<'_> {
    Records { bytes }
}

/// Iterator of [`records`].
#[derive(Debug, Clone)]
pub struct Records<'a> {
    bytes: &'a [u8],
}

/// A raw record: its header fields and all its bytes (header included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// `perf_event_header.type`.
    pub type_: u32,
    /// `perf_event_header.misc`.
    pub misc: u16,
    /// The whole record.
    pub bytes: &'a [u8],
}

impl<'a> Iterator for Records<'a> {
    type Item = RawRecord<'a>;
    fn next(&mut self) -> Option<RawRecord<'a>> {
        let b = self.bytes;
        let type_ = super::abi::u32_at(b, 0)?;
        let misc = super::abi::u16_at(b, 4)?;
        let size = super::abi::u16_at(b, 6)? as usize;
        if size < EVENT_HEADER_SIZE || size > b.len() {
            self.bytes = &[];
            return None;
        }
        let (rec, rest) = b.split_at(size);
        self.bytes = rest;
        Some(RawRecord {
            type_,
            misc,
            bytes: rec,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(type_: u32, payload: &[u8]) -> Vec<u8> {
        let size = (8 + payload.len()) as u16;
        let mut v = type_.to_ne_bytes().to_vec();
        v.extend_from_slice(&0u16.to_ne_bytes());
        v.extend_from_slice(&size.to_ne_bytes());
        v.extend_from_slice(payload);
        v
    }

    /// Write `bytes` into a ring of `size` starting at position `pos`, as the kernel would.
    fn ring_with(size: usize, pos: u64, bytes: &[u8]) -> Vec<u8> {
        let mut ring = vec![0xeeu8; size];
        for (i, b) in bytes.iter().enumerate() {
            ring[((pos as usize) + i) % size] = *b;
        }
        ring
    }

    #[test]
    fn contiguous_records_copy_in_order() {
        let mut stream = rec(9, &[1; 16]);
        stream.extend(rec(2, &[2; 8]));
        let ring = ring_with(64, 0, &stream);
        let mut out = Vec::new();
        let tail = copy_unread(&ring, stream.len() as u64, 0, &mut out).expect("ok");
        assert_eq!(tail, 40);
        assert_eq!(out, stream);
        let types: Vec<u32> = records(&out).map(|r| r.type_).collect();
        assert_eq!(types, vec![9, 2]);
    }

    #[test]
    fn record_split_across_the_end() {
        // A 24-byte record starting 8 bytes before the end of a 64-byte ring.
        let stream = rec(9, &[7, 7, 7, 7, 7, 7, 7, 7, 8, 8, 8, 8, 8, 8, 8, 8]);
        let tail = 56u64 + 64 * 3; // the ring has wrapped three times before
        let ring = ring_with(64, tail, &stream);
        let mut out = vec![0xaa];
        let new_tail = copy_unread(&ring, tail + 24, tail, &mut out).expect("ok");
        assert_eq!(new_tail, tail + 24);
        assert_eq!(&out[1..], &stream[..]);
        assert_eq!(records(&out[1..]).count(), 1);
    }

    #[test]
    fn header_itself_split_across_the_end() {
        let stream = rec(3, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let ring = ring_with(32, 28, &stream);
        let mut out = Vec::new();
        copy_unread(&ring, 28 + 16, 28, &mut out).expect("ok");
        assert_eq!(out, stream);
    }

    #[test]
    fn exactly_full_buffer() {
        let mut stream = Vec::new();
        for i in 0..4u8 {
            stream.extend(rec(9, &[i; 8]));
        }
        assert_eq!(stream.len(), 64);
        let ring = ring_with(64, 32, &stream);
        let mut out = Vec::new();
        copy_unread(&ring, 32 + 64, 32, &mut out).expect("full ring");
        assert_eq!(out, stream);
    }

    #[test]
    fn empty_and_bad_indices() {
        let ring = vec![0u8; 64];
        let mut out = Vec::new();
        assert_eq!(copy_unread(&ring, 100, 100, &mut out), Ok(100));
        assert!(out.is_empty());
        assert!(matches!(
            copy_unread(&ring, 200, 100, &mut out),
            Err(RingError::BadIndices { .. })
        ));
        assert!(matches!(
            copy_unread(&ring, 10, 100, &mut out),
            Err(RingError::BadIndices { .. })
        ));
        assert_eq!(
            copy_unread(&[0u8; 48], 0, 0, &mut out),
            Err(RingError::BadSize(48))
        );
    }

    #[test]
    fn corrupt_sizes_are_refused_and_nothing_is_appended() {
        let mut stream = rec(9, &[0; 8]);
        stream[6] = 0; // size 0
        stream[7] = 0;
        let ring = ring_with(64, 0, &stream);
        let mut out = vec![1, 2, 3];
        assert!(matches!(
            copy_unread(&ring, 16, 0, &mut out),
            Err(RingError::BadRecord { size: 0, .. })
        ));
        assert_eq!(out, vec![1, 2, 3]);
        // A record that claims more bytes than head allows.
        let stream = rec(9, &[0; 24]);
        let ring = ring_with(64, 0, &stream);
        assert!(matches!(
            copy_unread(&ring, 16, 0, &mut out),
            Err(RingError::BadRecord {
                size: 32,
                left: 16,
                ..
            })
        ));
    }

    proptest::proptest! {
        #[test]
        fn any_indices_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 64),
                                   head in proptest::num::u64::ANY, tail in proptest::num::u64::ANY) {
            let mut out = Vec::new();
            let _ = copy_unread(&data, head, tail, &mut out);
            let _ = records(&data).count();
        }
    }
}

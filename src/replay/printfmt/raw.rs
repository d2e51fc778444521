//! Bounded reads from a raw sample (`PERF_SAMPLE_RAW` payload, little-endian x86-64).
//!
//! libtraceevent reads wherever an offset points; here a read past the end yields zeros or
//! an empty slice, so a corrupt record can never panic or read outside its bytes.

/// `tep_read_number()`: an unsigned little-endian number of 1, 2, 4 or 8 bytes; any other
/// size reads as 0, as in libtraceevent.
pub(crate) fn read_number(data: &[u8], offset: usize, size: usize) -> u64 {
    if !matches!(size, 1 | 2 | 4 | 8) {
        return 0;
    }
    let Some(bytes) = offset
        .checked_add(size)
        .and_then(|end| data.get(offset..end))
    else {
        return 0;
    };
    let mut word = [0u8; 8];
    word[..size].copy_from_slice(bytes);
    u64::from_le_bytes(word)
}

/// Up to `len` bytes from `offset`, cut at the end of the data.
pub(crate) fn slice(data: &[u8], offset: usize, len: usize) -> &[u8] {
    let start = offset.min(data.len());
    let end = offset.saturating_add(len).min(data.len());
    &data[start..end]
}

/// The bytes from `offset` to the end of the data.
pub(crate) fn tail(data: &[u8], offset: usize) -> &[u8] {
    data.get(offset..).unwrap_or(&[])
}

/// The bytes before the first NUL.
pub(crate) fn c_str(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => &bytes[..end],
        None => bytes,
    }
}

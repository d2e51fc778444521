//! Section bytes for gimli, taken from an ELF file with `object`.
//!
//! Plain sections are borrowed from the caller's bytes. `SHF_COMPRESSED` sections with
//! `ELFCOMPRESS_ZLIB` (and GNU `.zdebug_*`, which `object` reports the same way) are inflated
//! with flate2, bounded by the size their header records, because distributions ship
//! compressed debug files: Debian 12's `libc6-dbg` compresses `.debug_info`, `.debug_line`,
//! `.debug_loclists` and more. `ELFCOMPRESS_ZSTD` is refused with [`DwarfError::Compressed`].

use std::io::Read;

use object::{CompressionFormat, Object, ObjectSection};

use super::error::DwarfError;
use super::reader::Bytes;

/// Bytes of the section called `name`, empty when the file has none (gimli treats an empty
/// section as absent). `NOBITS` sections (debug files keep `.eh_frame` as one) read as empty.
pub(crate) fn section<'a>(
    file: &object::File<'a>,
    name: &str,
) -> Result<(Bytes<'a>, Option<u64>), DwarfError> {
    let Some(sec) = file.section_by_name(name) else {
        return Ok((Bytes::borrowed(&[]), None));
    };
    let addr = Some(sec.address());
    if sec.kind() == object::SectionKind::UninitializedData {
        return Ok((Bytes::borrowed(&[]), addr));
    }
    let compressed = sec
        .compressed_data()
        .map_err(|e| DwarfError::Elf(format!("{name}: {e}")))?;
    match compressed.format {
        CompressionFormat::None => Ok((Bytes::borrowed(compressed.data), addr)),
        CompressionFormat::Zlib => {
            let data = inflate(name, compressed.data, compressed.uncompressed_size)?;
            Ok((Bytes::owned(data), addr))
        }
        other => Err(DwarfError::Compressed {
            section: name.to_string(),
            format: format!("{other:?}"),
        }),
    }
}

/// Inflates zlib `data` that should come to exactly `size` bytes. The size comes from the
/// file, so it only bounds the output (never preallocated beyond what deflate can produce
/// from `data`, about 1032:1).
fn inflate(name: &str, data: &[u8], size: u64) -> Result<Vec<u8>, DwarfError> {
    let bad = |reason: String| DwarfError::Inflate {
        section: name.to_string(),
        reason,
    };
    let cap = size.min((data.len() as u64).saturating_mul(1032));
    let mut out = Vec::with_capacity(usize::try_from(cap).unwrap_or(0));
    flate2::read::ZlibDecoder::new(data)
        .take(size)
        .read_to_end(&mut out)
        .map_err(|e| bad(e.to_string()))?;
    if out.len() as u64 != size {
        return Err(bad(format!(
            "inflated to {} bytes, header says {size}",
            out.len()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn inflate_checks_the_recorded_size() {
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"hello dwarf").expect("write");
        let z = enc.finish().expect("finish");
        assert_eq!(
            inflate(".debug_info", &z, 11).expect("inflate"),
            b"hello dwarf"
        );
        assert!(matches!(
            inflate(".debug_info", &z, 12),
            Err(DwarfError::Inflate { .. })
        ));
        // Truncated to 5: the take() stops early, and the size check passes only on equality.
        assert_eq!(inflate(".debug_info", &z, 5).expect("inflate"), b"hello");
        assert!(inflate(".debug_info", &z[..4], 11).is_err());
        assert!(inflate(".debug_info", &[], u64::MAX).is_err());
    }
}

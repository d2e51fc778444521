//! A fast non-cryptographic hasher (the Fx multiply-rotate scheme rustc uses) for replay's
//! per-sample lookups by callchain bytes, where SipHash's cost per byte shows up in
//! profiles. Keys come from one trusted file at a time, so HashDoS resistance buys nothing.

use std::hash::{BuildHasherDefault, Hasher};

/// The hasher.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl FxHasher {
    fn add(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(K);
    }
}

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        for b in chunks.remainder() {
            self.add(u64::from(*b));
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.add(v);
    }

    fn write_usize(&mut self, v: usize) {
        self.add(v as u64);
    }

    fn write_u32(&mut self, v: u32) {
        self.add(u64::from(v));
    }

    fn write_u16(&mut self, v: u16) {
        self.add(u64::from(v));
    }
}

/// `HashMap` with [`FxHasher`].
pub type FxHashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

    #[test]
    fn equal_keys_hash_equal_and_bytes_matter() {
        let h = |b: &[u8]| {
            let mut s = FxHasher::default();
            b.hash(&mut s);
            s.finish()
        };
        assert_eq!(
            h(&[1, 2, 3, 4, 5, 6, 7, 8, 9]),
            h(&[1, 2, 3, 4, 5, 6, 7, 8, 9])
        );
        assert_ne!(
            h(&[1, 2, 3, 4, 5, 6, 7, 8, 9]),
            h(&[1, 2, 3, 4, 5, 6, 7, 8, 8])
        );
        let mut m: FxHashMap<Vec<u8>, u32> = FxHashMap::default();
        m.insert(vec![1, 2], 7);
        assert_eq!(m.get(&[1u8, 2][..]), Some(&7));
    }
}

//! Small, fast, non-cryptographic hashing for keys sluice builds itself (label sets,
//! template shapes): an FxHash-style word mixer and a hasher for keys that are already
//! hashes. Not for anything an attacker chooses the keys of and a collision matters.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

const K: u64 = 0x517c_c1b7_2722_0a95;

/// Mix one word into a running hash.
#[inline]
pub fn mix(h: u64, v: u64) -> u64 {
    (h.rotate_left(5) ^ v).wrapping_mul(K)
}

/// Hash of a short byte string into `h`: whole words, then the last (overlapping) word;
/// short tails by two overlapping loads. No copies, no calls.
#[inline]
pub fn hash_bytes(mut h: u64, b: &[u8]) -> u64 {
    let n = b.len();
    let w8 = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
    let w4 = |i: usize| u64::from(u32::from_le_bytes(b[i..i + 4].try_into().unwrap()));
    let w2 = |i: usize| u64::from(u16::from_le_bytes(b[i..i + 2].try_into().unwrap()));
    if n >= 8 {
        let mut i = 0;
        while i + 8 <= n {
            h = mix(h, w8(i));
            i += 8;
        }
        if i < n {
            h = mix(h, w8(n - 8));
        }
    } else if n >= 4 {
        h = mix(h, w4(0) | (w4(n - 4) << 32));
    } else if n >= 2 {
        h = mix(h, w2(0) | (w2(n - 2) << 16));
    } else if n == 1 {
        h = mix(h, u64::from(b[0]));
    }
    mix(h, n as u64)
}

/// Hasher for `u64` keys that are already good hashes: no re-hashing.
#[derive(Default)]
pub struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// A map keyed by precomputed hashes.
pub type HashKeyed<V> = HashMap<u64, V, BuildHasherDefault<IdentityHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_and_byte_counts() {
        let base = b"0123456789abcdefghij";
        let mut seen = std::collections::HashSet::new();
        for n in 0..base.len() {
            assert!(seen.insert(hash_bytes(0, &base[..n])), "length {n}");
            let mut v = base[..n].to_vec();
            for i in 0..n {
                v[i] ^= 1;
                assert_ne!(hash_bytes(0, &v), hash_bytes(0, &base[..n]), "byte {i} of {n}");
                v[i] ^= 1;
            }
        }
    }
}

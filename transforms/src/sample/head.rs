//! Head sampling: a stable hash of the key decides, identically across restarts and
//! instances.

/// A stable 64-bit hash of a key: FNV-1a then a splitmix64 finaliser (uniform bits).
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

#[inline]
pub(super) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[inline]
pub(super) fn keep_hash(h: u64, p: f64) -> bool {
    p >= 1.0 || ((h >> 11) as f64) < p * (1u64 << 53) as f64
}

/// Whether head sampling at keep probability `p` keeps events whose key is `key`: the
/// same answer in every process and instance (what scale-out relies on).
pub fn keeps(key: &[u8], p: f64) -> bool {
    keep_hash(key_hash(key), p)
}

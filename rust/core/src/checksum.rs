//! The core's hash functions: content fingerprints of arrays (FNV-1a, 64 bit,
//! computed in parallel chunks) and the SplitMix64 mixer behind every seeded
//! random stream (ray batches, random control masks).
//!
//! Fingerprints tie a checkpoint to the exact scene images it was trained on, so
//! that resuming on different data fails loudly instead of silently mixing scenes.

use rayon::prelude::*;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// Bytes hashed per parallel chunk; fixed so the result never depends on thread count.
pub const CHUNK: usize = 1 << 20;

/// SplitMix64 finaliser (Steele et al. 2014): a cheap, well-mixed 64-bit hash.
/// Batches and random masks are pure functions of it: changing it changes every run.
#[inline]
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Plain sequential FNV-1a of a byte slice.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// Fingerprint of a byte buffer: FNV-1a of each `CHUNK`-sized piece, combined in
/// order with FNV-1a over the chunk hashes and the total length. Deterministic and
/// independent of the number of threads.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    let chunk_hashes: Vec<u64> = bytes.par_chunks(CHUNK).map(fnv1a64).collect();
    let mut combined = Vec::with_capacity(chunk_hashes.len() * 8 + 8);
    for h in &chunk_hashes {
        combined.extend_from_slice(&h.to_le_bytes());
    }
    combined.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    fnv1a64(&combined)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_fnv_vectors() {
        // Reference values of the FNV-1a 64-bit specification.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn known_splitmix64_vectors() {
        // The first outputs of the reference SplitMix64 generator seeded with 0
        // (state advances by the golden gamma; the output is the finaliser).
        let gamma = 0x9E37_79B9_7F4A_7C15u64;
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(gamma), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(splitmix64(gamma.wrapping_mul(2)), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn multi_chunk_buffers_differ_by_one_byte() {
        let mut a = vec![7u8; CHUNK * 2 + 5];
        let h = fingerprint(&a);
        a[CHUNK + 3] ^= 1;
        assert_ne!(h, fingerprint(&a));
    }

    proptest! {
        #[test]
        fn fingerprint_is_deterministic_and_length_sensitive(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            prop_assert_eq!(fingerprint(&data), fingerprint(&data));
            let mut longer = data.clone();
            longer.push(0);
            prop_assert_ne!(fingerprint(&data), fingerprint(&longer));
        }
    }
}

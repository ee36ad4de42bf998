//! A compact, versioned file format for a set of named masks.
//!
//! Layout (all integers little-endian):
//! ```text
//! magic    4 bytes  b"NPMK"
//! version  u16      1
//! flags    u16      0 (reserved)
//! count    u32      number of masks
//! count times:
//!   name_len u16, name (UTF-8, unique)
//!   ndim     u8 (0..=8), dims u64 x ndim   (bit count = product of dims)
//!   bits     ceil(bits / 8) bytes, bit i at byte i/8, position i%8 (LSB first);
//!            padding bits of the last byte are 0
//! checksum u64      FNV-1a 64 of every preceding byte
//! ```
//! About 1 bit per weight: a 95 %-pruned default NeRF (~1.2 M weights) is ~150 kB.
//! Decoding never panics: corrupt input is a [`CoreError::CorruptMasks`].

use super::bitset::Bitset;
use crate::checksum::fnv1a64;
use crate::{CoreError, CoreResult};
use std::collections::HashSet;

const MAGIC: &[u8; 4] = b"NPMK";
/// The format version this code writes (and the only one it reads).
pub const VERSION: u16 = 1;
const MAX_NDIM: usize = 8;

/// A mask with its parameter name and shape (e.g. `coarse.pts.0.weight`, `[256, 63]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedMask {
    pub name: String,
    pub shape: Vec<usize>,
    pub bits: Bitset,
}

/// Serialise masks; errors if a name is too long or duplicated, or a shape does not match its bits.
pub fn encode(masks: &[NamedMask]) -> CoreResult<Vec<u8>> {
    let bad = |m: String| Err(CoreError::InvalidArgument(format!("save masks: {m}")));
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    let Ok(count) = u32::try_from(masks.len()) else {
        return bad("too many masks".into());
    };
    out.extend_from_slice(&count.to_le_bytes());
    let mut seen = HashSet::new();
    for m in masks {
        let Ok(name_len) = u16::try_from(m.name.len()) else {
            return bad(format!(
                "name longer than 65535 bytes: {:?}...",
                m.name.chars().take(32).collect::<String>()
            ));
        };
        if !seen.insert(m.name.as_str()) {
            return bad(format!("duplicate mask name {:?}", m.name));
        }
        if m.shape.len() > MAX_NDIM || m.shape.iter().product::<usize>() != m.bits.len() {
            return bad(format!(
                "mask {:?}: shape {:?} does not hold {} bits",
                m.name,
                m.shape,
                m.bits.len()
            ));
        }
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(m.name.as_bytes());
        out.push(m.shape.len() as u8);
        for &d in &m.shape {
            out.extend_from_slice(&(d as u64).to_le_bytes());
        }
        let nbytes = m.bits.len().div_ceil(8);
        out.extend(m.bits.words().iter().flat_map(|w| w.to_le_bytes()).take(nbytes));
    }
    let sum = fnv1a64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    Ok(out)
}

/// A bounds-checked reader over the body; `origin` names the file in errors.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    origin: &'a str,
}

impl<'a> Cursor<'a> {
    fn corrupt(&self, message: String) -> CoreError {
        CoreError::CorruptMasks { origin: self.origin.to_string(), message }
    }
    fn take(&mut self, n: usize, what: &str) -> CoreResult<&'a [u8]> {
        if self.data.len() - self.pos < n {
            return Err(
                self.corrupt(format!("truncated while reading {what} at byte {}", self.pos))
            );
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u64(&mut self, what: &str) -> CoreResult<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }
    fn u16(&mut self, what: &str) -> CoreResult<u16> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().unwrap()))
    }
}

/// Parse bytes written by [`encode`]; `origin` (usually the file path) prefixes every error.
pub fn decode(bytes: &[u8], origin: &str) -> CoreResult<Vec<NamedMask>> {
    let corrupt = |message: String| CoreError::CorruptMasks { origin: origin.to_string(), message };
    if bytes.len() < 4 || &bytes[..4] != MAGIC {
        return Err(corrupt("not a nerfprune mask file (bad magic bytes)".into()));
    }
    if bytes.len() < 4 + 2 + 2 + 4 + 8 {
        return Err(corrupt(format!("truncated: only {} bytes", bytes.len())));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != VERSION {
        return Err(corrupt(format!(
            "unsupported format version {version} (this nerfprune reads version {VERSION})"
        )));
    }
    let (body, tail) = bytes.split_at(bytes.len() - 8);
    let stored = u64::from_le_bytes(tail.try_into().unwrap());
    if fnv1a64(body) != stored {
        return Err(corrupt("checksum mismatch (the file is damaged or truncated)".into()));
    }
    let mut cur = Cursor { data: body, pos: 6, origin };
    if cur.u16("flags")? != 0 {
        return Err(corrupt("unknown flags set in the header".into()));
    }
    let count = u32::from_le_bytes(cur.take(4, "mask count")?.try_into().unwrap()) as usize;
    let mut masks = Vec::new();
    let mut seen = HashSet::new();
    for i in 0..count {
        let name_len = cur.u16("a name length")? as usize;
        let name = std::str::from_utf8(cur.take(name_len, "a name")?)
            .map_err(|_| corrupt(format!("mask {i}: name is not valid UTF-8")))?
            .to_string();
        if !seen.insert(name.clone()) {
            return Err(corrupt(format!("duplicate mask name {name:?}")));
        }
        let ndim = cur.take(1, "a rank")?[0] as usize;
        if ndim > MAX_NDIM {
            return Err(corrupt(format!("mask {name:?}: rank {ndim} > {MAX_NDIM}")));
        }
        let mut shape = Vec::with_capacity(ndim);
        let mut len: usize = 1;
        for _ in 0..ndim {
            let d = usize::try_from(cur.u64("a dimension")?).ok();
            len = match d.and_then(|d| len.checked_mul(d).map(|l| (d, l))) {
                Some((d, l)) => {
                    shape.push(d);
                    l
                }
                None => return Err(corrupt(format!("mask {name:?}: shape too large"))),
            };
        }
        let packed = cur.take(len.div_ceil(8), &format!("the bits of mask {name:?}"))?;
        let mut words = vec![0u64; len.div_ceil(64)];
        for (b, &byte) in packed.iter().enumerate() {
            words[b / 8] |= (byte as u64) << (8 * (b % 8));
        }
        let bits = Bitset::from_words(len, words)
            .map_err(|_| corrupt(format!("mask {name:?}: padding bits are set")))?;
        masks.push(NamedMask { name, shape, bits });
    }
    if cur.pos != body.len() {
        return Err(corrupt(format!(
            "{} unexpected bytes after the last mask",
            body.len() - cur.pos
        )));
    }
    Ok(masks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<NamedMask> {
        vec![
            NamedMask {
                name: "a.weight".into(),
                shape: vec![3, 5],
                bits: Bitset::from_bools(&[true; 15]),
            },
            NamedMask {
                name: "a.bias".into(),
                shape: vec![3],
                bits: Bitset::from_bools(&[false, true, false]),
            },
        ]
    }

    #[test]
    fn corrupt_inputs_are_errors_naming_the_origin() {
        let good = encode(&sample()).unwrap();
        let msg = |b: &[u8]| decode(b, "m.npmk").unwrap_err().to_string();
        assert!(msg(b"").contains("bad magic"));
        assert!(msg(&good[..10]).contains("truncated"));
        let mut v = good.clone();
        v[4] = 9;
        assert!(msg(&v).contains("version 9"));
        let mut flipped = good.clone();
        flipped[20] ^= 1;
        assert!(msg(&flipped).starts_with("m.npmk: corrupt mask file: checksum mismatch"));
        // Every truncation and every single-byte change is an error, never a panic.
        for cut in 0..good.len() {
            assert!(decode(&good[..cut], "x").is_err());
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad, "x").is_err());
        }
    }

    #[test]
    fn encoding_rejects_inconsistent_masks() {
        let mut m = sample();
        m[1].shape = vec![4];
        assert!(encode(&m).is_err());
        let mut d = sample();
        d[1].name = "a.weight".into();
        assert!(encode(&d).is_err());
    }

    proptest! {
        #[test]
        fn round_trips(layers in proptest::collection::vec((0usize..5, 0usize..70, any::<u64>()), 0..6)) {
            let masks: Vec<NamedMask> = layers.iter().enumerate().map(|(i, &(r, c, seed))| {
                let bits: Vec<bool> = (0..r * c).map(|k| (seed.rotate_left(k as u32 % 64) & 1) == 1).collect();
                NamedMask { name: format!("net.layer{i}.weight"), shape: vec![r, c], bits: Bitset::from_bools(&bits) }
            }).collect();
            let bytes = encode(&masks).unwrap();
            prop_assert_eq!(decode(&bytes, "mem").unwrap(), masks);
        }

        #[test]
        fn random_bytes_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&data, "junk");
            if data.len() >= 8 { data[..4].copy_from_slice(MAGIC); data[4] = 1; data[5] = 0; }
            let _ = decode(&data, "junk");
        }
    }
}

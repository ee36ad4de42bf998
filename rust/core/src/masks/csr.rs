//! Export of masked weights in compressed-sparse-row form.

use super::bitset::Bitset;
use crate::{CoreError, CoreResult};

/// A `[rows, cols]` matrix in CSR form (the layout `torch.sparse_csr_tensor` takes).
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    pub rows: usize,
    pub cols: usize,
    /// `[rows + 1]`: row `r` holds entries `indptr[r]..indptr[r + 1]`.
    pub indptr: Vec<i64>,
    /// `[nnz]`: column of each entry, ascending within a row.
    pub indices: Vec<i64>,
    /// `[nnz]`: the weight of each entry.
    pub values: Vec<f32>,
}

/// The live entries of a row-major `[rows, cols]` weight matrix under `mask`.
/// Every live position is stored, even where its weight happens to be 0.
pub fn to_csr(weights: &[f32], rows: usize, cols: usize, mask: &Bitset) -> CoreResult<Csr> {
    let n = rows
        .checked_mul(cols)
        .ok_or_else(|| CoreError::InvalidArgument(format!("to_csr: {rows} x {cols} overflows")))?;
    if weights.len() != n {
        return Err(CoreError::InvalidArgument(format!(
            "to_csr: a {rows} x {cols} matrix needs {n} weights, got {}",
            weights.len()
        )));
    }
    if mask.len() != n {
        return Err(CoreError::MaskMismatch(format!(
            "to_csr: a {rows} x {cols} matrix needs {n} mask bits, got {}",
            mask.len()
        )));
    }
    let nnz = mask.count_ones();
    let mut indptr = vec![0i64; rows + 1];
    let mut indices = Vec::with_capacity(nnz);
    let mut values = Vec::with_capacity(nnz);
    for flat in mask.ones() {
        indptr[flat / cols + 1] += 1;
        indices.push((flat % cols) as i64);
        values.push(weights[flat]);
    }
    for r in 0..rows {
        indptr[r + 1] += indptr[r];
    }
    Ok(Csr { rows, cols, indptr, indices, values })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wrong_sizes_are_errors() {
        let short_mask = to_csr(&[1.0; 6], 2, 3, &Bitset::new(5, true));
        assert!(matches!(short_mask, Err(CoreError::MaskMismatch(_))));
        let short_weights = to_csr(&[1.0; 5], 2, 3, &Bitset::new(6, true));
        assert!(matches!(short_weights, Err(CoreError::InvalidArgument(_))));
    }

    proptest! {
        #[test]
        fn csr_densifies_to_the_masked_matrix(rows in 0usize..8, cols in 1usize..8, seed in proptest::collection::vec((-3.0f32..3.0, any::<bool>()), 64)) {
            let n = rows * cols;
            let w: Vec<f32> = seed[..n].iter().map(|p| p.0).collect();
            let m: Vec<bool> = seed[..n].iter().map(|p| p.1).collect();
            let csr = to_csr(&w, rows, cols, &Bitset::from_bools(&m)).unwrap();
            let mut dense = vec![0.0f32; n];
            for r in 0..rows {
                for e in csr.indptr[r] as usize..csr.indptr[r + 1] as usize {
                    dense[r * cols + csr.indices[e] as usize] = csr.values[e];
                }
            }
            let expect: Vec<f32> = (0..n).map(|i| if m[i] { w[i] } else { 0.0 }).collect();
            prop_assert_eq!(dense, expect);
            prop_assert_eq!(csr.values.len(), m.iter().filter(|&&b| b).count());
        }
    }
}

//! Flat-array statistics: counting-sort grouping of values by key, quantiles of sorted slices.

use rayon::prelude::*;

/// Rows per parallel chunk.
pub(crate) const CHUNK: usize = 1 << 16;

/// The quantile at `p` of sorted `values` by linear interpolation between closest ranks
/// (Hyndman–Fan type 7, as numpy, pandas and DuckDB's `quantile_cont`); NaN when empty.
pub fn quantile_sorted(values: &[f64], p: f64) -> f64 {
    match values.len() {
        0 => f64::NAN,
        1 => values[0],
        n => {
            let h = (n - 1) as f64 * p.clamp(0.0, 1.0);
            let lo = h.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            values[lo] + (h - lo as f64) * (values[hi] - values[lo])
        }
    }
}

/// Values grouped by key: `values[offsets[g]..offsets[g + 1]]` are group `g`'s.
#[derive(Debug, Clone, Default)]
pub struct Grouped {
    pub offsets: Vec<usize>,
    pub values: Vec<f64>,
}

impl Grouped {
    /// Groups the rows for which `key_of` gives `(group, value)` (a counting sort: a parallel
    /// histogram, prefix sums, one scatter pass). Groups keep row order until sorted.
    pub fn new(
        groups: usize,
        rows: usize,
        key_of: impl Fn(usize) -> Option<(u32, f64)> + Sync,
    ) -> Self {
        let counts = (0..rows)
            .into_par_iter()
            .with_min_len(CHUNK)
            .fold(
                || vec![0usize; groups],
                |mut acc, i| {
                    if let Some((g, _)) = key_of(i) {
                        acc[g as usize] += 1;
                    }
                    acc
                },
            )
            .reduce(|| vec![0usize; groups], add_into);
        let mut offsets = Vec::with_capacity(groups + 1);
        offsets.push(0);
        for c in &counts {
            offsets.push(offsets.last().copied().unwrap_or(0) + c);
        }
        let mut cursor = offsets.clone();
        let mut values = vec![0.0; offsets[groups]];
        for i in 0..rows {
            if let Some((g, v)) = key_of(i) {
                let at = &mut cursor[g as usize];
                values[*at] = v;
                *at += 1;
            }
        }
        Self { offsets, values }
    }

    pub fn groups(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Group `g`'s values.
    pub fn group(&self, g: usize) -> &[f64] {
        &self.values[self.offsets[g]..self.offsets[g + 1]]
    }

    /// The values of groups `from..to` (contiguous).
    pub fn range(&self, from: usize, to: usize) -> &[f64] {
        &self.values[self.offsets[from]..self.offsets[to]]
    }

    /// Sorts, in parallel, each run of `span` consecutive groups as one (`span` 1: each group).
    /// Runs already sorted inside (after a finer call) merge cheaply.
    pub fn sort_spans(&mut self, span: usize) {
        let groups = self.groups();
        let span = span.max(1);
        let mut slices = Vec::with_capacity(groups / span + 1);
        let mut rest = self.values.as_mut_slice();
        let mut g = 0;
        while g < groups {
            let end = (g + span).min(groups);
            let (head, tail) = rest.split_at_mut(self.offsets[end] - self.offsets[g]);
            if head.len() > 1 {
                slices.push(head);
            }
            rest = tail;
            g = end;
        }
        slices
            .into_par_iter()
            .for_each(|s| s.sort_by(f64::total_cmp));
    }
}

pub(crate) fn add_into<T: std::ops::AddAssign + Copy>(mut a: Vec<T>, b: Vec<T>) -> Vec<T> {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
    a
}

/// Count, mean and the quantiles of a sorted, non-empty slice.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub mean: f64,
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
    /// At 0 %, 5 %, ..., 100 %.
    pub quantiles: Vec<f64>,
}

/// Quantile levels in a time-in-stage table: 0, 0.05, ..., 1 (21 values).
pub const QUANTILE_LEVELS: usize = 21;

impl Summary {
    pub fn of_sorted(values: &[f64]) -> Self {
        let n = values.len();
        Self {
            count: n as u64,
            mean: values.iter().sum::<f64>() / n as f64,
            median: quantile_sorted(values, 0.5),
            p10: quantile_sorted(values, 0.1),
            p90: quantile_sorted(values, 0.9),
            quantiles: (0..QUANTILE_LEVELS)
                .map(|i| quantile_sorted(values, i as f64 / (QUANTILE_LEVELS - 1) as f64))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_between_closest_ranks() {
        let v = [1.0, 2.0, 4.0, 8.0];
        assert_eq!(quantile_sorted(&v, 0.0), 1.0);
        assert_eq!(quantile_sorted(&v, 1.0), 8.0);
        assert_eq!(quantile_sorted(&v, 0.5), 3.0);
        // h = 3 × 0.1 = 0.3: 1 + 0.3 × (2 − 1)
        assert!((quantile_sorted(&v, 0.1) - 1.3).abs() < 1e-12);
        assert!(quantile_sorted(&[], 0.5).is_nan());
        assert_eq!(quantile_sorted(&[5.0], 0.9), 5.0);
    }

    #[test]
    fn grouping_is_a_counting_sort_and_spans_sort_together() {
        let keys = [2u32, 0, 2, 1, 0, 9];
        let vals = [5.0, 3.0, 1.0, 7.0, 2.0, 0.0];
        let mut g = Grouped::new(3, keys.len(), |i| (keys[i] < 3).then(|| (keys[i], vals[i])));
        assert_eq!(g.offsets, [0, 2, 3, 5]);
        assert_eq!(g.group(0), [3.0, 2.0]);
        assert_eq!(g.group(2), [5.0, 1.0]);
        g.sort_spans(1);
        assert_eq!(g.group(0), [2.0, 3.0]);
        g.sort_spans(3);
        assert_eq!(g.range(0, 3), [1.0, 2.0, 3.0, 5.0, 7.0]);
        let s = Summary::of_sorted(g.range(0, 3));
        assert_eq!((s.count, s.mean, s.median), (5, 3.6, 3.0));
        assert_eq!(s.quantiles.len(), 21);
        assert_eq!(s.quantiles[20], 7.0);
    }
}

//! Summaries of a deal's runs: win probability with its Wilson interval, days to close with
//! percentiles, steps, and the distribution of winning close dates over calendar months.

use chrono::{Datelike, Months, NaiveDate};

use super::engine::{Outcome, RunOutcomes};

/// z for a two-sided 95 % interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// Calendar months from an as-of date, for close-date distributions: month 0 is the as-of
/// date's month, then `months - 1` more, then a last bucket for anything later.
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    as_of: NaiveDate,
    labels: Vec<String>,
    /// Bucket of each whole day after `as_of`, up to the start of the "later" bucket.
    day_bucket: Vec<u8>,
}

impl Calendar {
    /// Months from `as_of` (1 to 120; clamped).
    pub fn new(as_of: NaiveDate, months: u32) -> Self {
        let months = months.clamp(1, 120);
        let first = as_of.with_day(1).expect("day 1 exists in every month");
        let mut labels = Vec::with_capacity(months as usize + 1);
        let mut day_bucket = Vec::new();
        for m in 0..months {
            let start = first + Months::new(m);
            let end = first + Months::new(m + 1);
            labels.push(start.format("%Y-%m").to_string());
            let days = (end - as_of).num_days().max(0) as usize;
            day_bucket.resize(days, m as u8);
        }
        labels.push("later".to_string());
        Self {
            as_of,
            labels,
            day_bucket,
        }
    }

    pub fn as_of(&self) -> NaiveDate {
        self.as_of
    }

    /// Bucket labels: `YYYY-MM` per month, then `later`.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The bucket of a close `days` after the as-of date.
    #[inline]
    pub fn bucket(&self, days: f32) -> usize {
        let day = days.max(0.0) as usize;
        match self.day_bucket.get(day) {
            Some(b) => *b as usize,
            None => self.labels.len() - 1,
        }
    }
}

/// What a deal's runs say.
#[derive(Debug, Clone, PartialEq)]
pub struct DealStats {
    pub runs: u32,
    pub won: u32,
    pub lost: u32,
    /// Runs still open at the step cap or stuck in a stage without a way out.
    pub open: u32,
    /// won / runs.
    pub p_win: f64,
    /// 95 % Wilson score interval of `p_win`.
    pub p_win_low: f64,
    pub p_win_high: f64,
    /// Mean days to close (won or lost), over the runs that closed; `None` if none did.
    pub expected_days: Option<f64>,
    /// 2.5th and 97.5th percentiles of days to close.
    pub days_p2_5: Option<f64>,
    pub days_p97_5: Option<f64>,
    /// Mean and standard deviation of the steps (stage moves) of the runs that closed.
    pub expected_steps: f64,
    pub steps_sd: f64,
    /// Share of runs won with a close date in each [`Calendar`] bucket (sums to `p_win`).
    pub won_by_month: Vec<f64>,
}

/// Reusable buffers of [`DealStats::from_runs`].
#[derive(Debug, Default)]
pub struct StatsScratch {
    closed: Vec<f32>,
    picked: Vec<f32>,
    counts: Vec<u32>,
}

impl DealStats {
    /// Summarizes `runs`, in run order (so the sums are the same whatever simulated them).
    pub fn from_runs(
        runs: RunOutcomes<'_>,
        calendar: &Calendar,
        scratch: &mut StatsScratch,
    ) -> Self {
        let n = runs.len().min(runs.outcome.len()).min(runs.steps.len());
        let (outcome, days, steps) = (&runs.outcome[..n], &runs.days[..n], &runs.steps[..n]);
        // One pass over the runs: counts and sums (branch-free; the days in eight interleaved
        // partial sums, fixed in order, so the same on every machine), the winning months (one
        // more bucket for the runs not won), and the closed runs' days with their histogram
        // (for the percentiles).
        let months = calendar.labels().len();
        let mut by_month = vec![0u32; months + 1];
        if scratch.closed.len() < n {
            scratch.closed.resize(n, 0.0);
        }
        scratch.counts.clear();
        scratch.counts.resize(BINS, 0);
        let (closed, counts) = (&mut scratch.closed[..n], &mut scratch.counts[..BINS]);
        let (mut won, mut lost) = (0u32, 0u32);
        let (mut steps_sum, mut steps_sq) = (0u64, 0u64);
        let mut days_sum = [0.0f64; 8];
        let mut c = 0;
        for i in 0..n {
            let o = outcome[i];
            let d = days[i];
            let is_won = o == Outcome::Won as u8;
            let is_closed = o != Outcome::Open as u8;
            won += u32::from(is_won);
            lost += u32::from(o == Outcome::Lost as u8);
            days_sum[i % 8] += f64::from(d) * f64::from(u8::from(is_closed));
            let s = u64::from(steps[i]) * u64::from(is_closed);
            steps_sum += s;
            steps_sq += s * s;
            by_month[if is_won { calendar.bucket(d) } else { months }] += 1;
            closed[c.min(n - 1)] = d;
            c += usize::from(is_closed);
            counts[bin(d)] += u32::from(is_closed);
        }
        let closed = &scratch.closed[..c];
        let days_sum: f64 = days_sum.iter().sum();
        let (p_win_low, p_win_high) = wilson(u64::from(won), n as u64);
        let (expected_days, days_p2_5, days_p97_5) = if c == 0 {
            (None, None, None)
        } else {
            let (lo, hi) =
                percentiles_from_histogram(closed, counts, 0.025, 0.975, &mut scratch.picked);
            (Some(days_sum / c as f64), Some(lo), Some(hi))
        };
        let (expected_steps, steps_sd) = if c == 0 {
            (0.0, 0.0)
        } else {
            let mean = steps_sum as f64 / c as f64;
            let var = if c > 1 {
                ((steps_sq as f64 - steps_sum as f64 * mean) / (c - 1) as f64).max(0.0)
            } else {
                0.0
            };
            (mean, var.sqrt())
        };
        let n_f = n.max(1) as f64;
        Self {
            runs: n as u32,
            won,
            lost,
            open: n as u32 - won - lost,
            p_win: f64::from(won) / n_f,
            p_win_low,
            p_win_high,
            expected_days,
            days_p2_5,
            days_p97_5,
            expected_steps,
            steps_sd,
            won_by_month: by_month[..months]
                .iter()
                .map(|c| f64::from(*c) / n_f)
                .collect(),
        }
    }

    /// Expected value of a deal worth `amount` when won.
    pub fn expected_value(&self, amount: f64) -> f64 {
        amount * self.p_win
    }

    /// 2.5th and 97.5th percentiles of the value (`amount` when won, 0 otherwise), with the
    /// same interpolation as the day percentiles.
    pub fn value_interval(&self, amount: f64) -> (f64, f64) {
        let n = self.runs as usize;
        let won = self.won as usize;
        // Sorted values: n - won zeros, then `won` times `amount`.
        let at = |p: f64| {
            if n == 0 {
                return 0.0;
            }
            let pos = p * (n - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            let v = |i: usize| if i >= n - won { amount } else { 0.0 };
            v(lo) + (pos - lo as f64) * (v(hi) - v(lo))
        };
        (at(0.025), at(0.975))
    }
}

/// The 95 % Wilson score interval of `successes` out of `n` (`(0, 1)` when `n` is 0).
pub fn wilson(successes: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n = n as f64;
    let p = successes as f64 / n;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((center - half).max(0.0), (center + half).min(1.0))
}

/// Histogram bins of [`percentile_pair`]: the top bits of an `f32`'s pattern (sign cleared).
const BINS: usize = 1 << 11;

/// The bin of a non-negative float: for non-negative floats the bit pattern orders like the
/// value, so bins are monotone (4 per octave); `-0.0` falls with `0.0`.
#[inline(always)]
fn bin(v: f32) -> usize {
    ((v.to_bits() & 0x7FFF_FFFF) >> 20) as usize
}

/// Percentiles `a ≤ b` of non-negative `values` (non-empty), linearly interpolated between
/// order statistics (numpy's default), exactly.
///
/// Two passes instead of a selection: a histogram over the floats' bit patterns finds the bins
/// of the four order statistics needed, then only the values in those bins are sorted.
pub fn percentile_pair(values: &[f32], a: f64, b: f64, picked: &mut Vec<f32>) -> (f64, f64) {
    let mut counts = vec![0u32; BINS];
    for v in values {
        counts[bin(*v)] += 1;
    }
    percentiles_from_histogram(values, &counts, a, b, picked)
}

/// [`percentile_pair`] with the histogram of `values` over [`bin`] already counted.
fn percentiles_from_histogram(
    values: &[f32],
    counts: &[u32],
    a: f64,
    b: f64,
    picked: &mut Vec<f32>,
) -> (f64, f64) {
    let n = values.len();
    assert!(n > 0, "percentiles of no values");
    let pos = |p: f64| p.clamp(0.0, 1.0) * (n - 1) as f64;
    let (pa, pb) = (pos(a), pos(b));
    let (la, lb) = (pa.floor() as usize, pb.floor() as usize);
    let ranks = [la, (la + 1).min(n - 1), lb, (lb + 1).min(n - 1)];
    // The bin of each rank and how many values lie in lower bins.
    let (mut bins, mut below) = ([0usize; 4], [0usize; 4]);
    let (mut cum, mut k) = (0usize, 0usize);
    for (i, count) in counts.iter().enumerate() {
        let next = cum + *count as usize;
        while k < 4 && ranks[k] < next {
            bins[k] = i;
            below[k] = cum;
            k += 1;
        }
        cum = next;
        if k == 4 {
            break;
        }
    }
    picked.clear();
    picked.extend(values.iter().copied().filter(|v| bins.contains(&bin(*v))));
    picked.sort_unstable_by(f32::total_cmp);
    // Rank r in bin B sits after the picked values of the (distinct) picked bins below B.
    let value = |k: usize| {
        let mut skip = 0usize;
        let mut prev = usize::MAX;
        for &other in &bins {
            if other < bins[k] && other != prev {
                skip += counts[other] as usize;
            }
            prev = other;
        }
        f64::from(picked[skip + ranks[k] - below[k]])
    };
    let (va, va1, vb, vb1) = (value(0), value(1), value(2), value(3));
    (
        va + (pa - la as f64) * (va1 - va),
        vb + (pb - lb as f64) * (vb1 - vb),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_published_values() {
        // 81 of 263 (Wilson 1927 via Newcombe 1998, table I): 0.2553 to 0.3662.
        let (lo, hi) = wilson(81, 263);
        assert!(
            (lo - 0.2553).abs() < 1e-4 && (hi - 0.3662).abs() < 1e-4,
            "{lo} {hi}"
        );
        // 0 of 10: 0 to 0.2775.
        let (lo, hi) = wilson(0, 10);
        assert!(lo == 0.0 && (hi - 0.2775).abs() < 1e-4, "{hi}");
        assert_eq!(wilson(0, 0), (0.0, 1.0));
        let (lo, hi) = wilson(10, 10);
        assert!(
            (hi - 1.0).abs() < 1e-12 && (lo - 0.7225).abs() < 1e-4,
            "{lo} {hi}"
        );
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        // numpy.percentile(range(1, 101), [2.5, 97.5]) = [3.475, 97.525]
        let mut picked = Vec::new();
        let v: Vec<f32> = (1..=100).rev().map(|x| x as f32).collect();
        let (a, b) = percentile_pair(&v, 0.025, 0.975, &mut picked);
        assert!(
            (a - 3.475).abs() < 1e-9 && (b - 97.525).abs() < 1e-9,
            "{a} {b}"
        );
        assert_eq!(
            percentile_pair(&[7.0], 0.025, 0.975, &mut picked),
            (7.0, 7.0)
        );
        // Ties and two values: numpy gives [1.025, 1.975] for [1, 2].
        let (a, b) = percentile_pair(&[2.0, 1.0], 0.025, 0.975, &mut picked);
        assert!(
            (a - 1.025).abs() < 1e-9 && (b - 1.975).abs() < 1e-9,
            "{a} {b}"
        );
        assert_eq!(
            percentile_pair(&[3.0; 50], 0.025, 0.975, &mut picked),
            (3.0, 3.0)
        );
        // Against sorting, on skewed data with ties and zeros (negative zero included).
        let mut x: u64 = 7;
        for n in [1usize, 2, 3, 39, 40, 41, 1_000, 10_007] {
            let v: Vec<f32> = (0..n)
                .map(|i| {
                    x = crate::simulate::rng::mix64(x.wrapping_add(i as u64));
                    match x % 10 {
                        0 => 0.0,
                        1 => -0.0,
                        2 => 12.5,
                        _ => ((x >> 11) as f64 / (1u64 << 53) as f64).powi(3) as f32 * 900.0,
                    }
                })
                .collect();
            let mut sorted = v.clone();
            sorted.sort_by(f32::total_cmp);
            let at = |p: f64| {
                let pos = p * (n - 1) as f64;
                let lo = pos.floor() as usize;
                let hi = (lo + 1).min(n - 1);
                f64::from(sorted[lo])
                    + (pos - lo as f64) * (f64::from(sorted[hi]) - f64::from(sorted[lo]))
            };
            let got = percentile_pair(&v, 0.025, 0.975, &mut picked);
            assert_eq!(got, (at(0.025), at(0.975)), "n = {n}");
        }
    }

    #[test]
    fn calendar_buckets_days_into_months() {
        let cal = Calendar::new(NaiveDate::from_ymd_opt(2025, 1, 30).unwrap(), 3);
        assert_eq!(cal.labels(), ["2025-01", "2025-02", "2025-03", "later"]);
        assert_eq!(cal.bucket(0.0), 0);
        assert_eq!(cal.bucket(1.9), 0, "Jan 31");
        assert_eq!(cal.bucket(2.0), 1, "Feb 1");
        assert_eq!(cal.bucket(29.9), 1, "Feb 28");
        assert_eq!(cal.bucket(30.0), 2, "Mar 1");
        assert_eq!(cal.bucket(61.0), 3, "Apr 1");
        assert_eq!(cal.bucket(1e9), 3);
    }

    #[test]
    fn stats_count_outcomes_and_intervals() {
        let cal = Calendar::new(NaiveDate::from_ymd_opt(2025, 6, 1).unwrap(), 2);
        let days = [10.0, 40.0, 5.0, 100.0];
        let outcome = [1u8, 1, 0, 2];
        let steps = [2u16, 3, 1, 9];
        let runs = RunOutcomes {
            days: &days,
            outcome: &outcome,
            steps: &steps,
        };
        let s = DealStats::from_runs(runs, &cal, &mut StatsScratch::default());
        assert_eq!((s.won, s.lost, s.open), (2, 1, 1));
        assert_eq!(s.p_win, 0.5);
        assert_eq!(s.expected_days, Some(55.0 / 3.0));
        assert_eq!(s.expected_steps, 2.0);
        assert_eq!(s.steps_sd, 1.0);
        assert_eq!(s.won_by_month, [0.25, 0.25, 0.0]);
        assert_eq!(s.expected_value(1000.0), 500.0);
        // Values sorted [0, 0, 1000, 1000]: positions 0.075 and 2.925.
        assert_eq!(s.value_interval(1000.0), (0.0, 1000.0));
        let none = RunOutcomes {
            days: &[1.0],
            outcome: &[2],
            steps: &[1],
        };
        let s = DealStats::from_runs(none, &cal, &mut StatsScratch::default());
        assert_eq!((s.expected_days, s.p_win), (None, 0.0));
    }
}

//! How good a probability model is on held-out examples: ROC-AUC, log-loss and a calibration
//! table by deciles of the predicted probability.

use serde::{Deserialize, Serialize};

/// ROC-AUC: the probability that a random positive is scored above a random negative, ties
/// counting one half (the Mann–Whitney U statistic over average ranks). `None` without both
/// classes.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let n = scores.len().min(labels.len());
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let positives = labels[..n].iter().filter(|l| **l).count();
    let negatives = n - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    // Sum of the (1-based, tie-averaged) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let average_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += order[i..=j].iter().filter(|&&k| labels[k]).count() as f64 * average_rank;
        i = j + 1;
    }
    let p = positives as f64;
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64))
}

/// Mean negative log-likelihood, probabilities clipped to [1e-15, 1 − 1e-15] (as scikit-learn
/// does). `None` when empty.
pub fn log_loss(probabilities: &[f64], labels: &[bool]) -> Option<f64> {
    let n = probabilities.len().min(labels.len());
    if n == 0 {
        return None;
    }
    let total: f64 = probabilities
        .iter()
        .zip(labels)
        .map(|(&p, &y)| {
            let p = p.clamp(1e-15, 1.0 - 1e-15);
            if y { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum();
    Some(total / n as f64)
}

/// One bin of a calibration table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    /// 1 = the lowest predicted probabilities.
    pub decile: u32,
    pub count: u64,
    pub mean_predicted: f64,
    pub observed_rate: f64,
}

/// Examples sorted by predicted probability and cut into (up to) ten bins of equal count; each
/// bin's mean prediction beside its observed positive rate.
pub fn calibration_deciles(probabilities: &[f64], labels: &[bool]) -> Vec<CalibrationBin> {
    let n = probabilities.len().min(labels.len());
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b]));
    let bins = n.min(10);
    (0..bins)
        .map(|b| {
            let lo = b * n / bins;
            let hi = (b + 1) * n / bins;
            let members = &order[lo..hi];
            let count = members.len() as f64;
            CalibrationBin {
                decile: b as u32 + 1,
                count: members.len() as u64,
                mean_predicted: members.iter().map(|&i| probabilities[i]).sum::<f64>() / count,
                observed_rate: members.iter().filter(|&&i| labels[i]).count() as f64 / count,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores 0.1 0.4 0.35 0.8 with labels − − + +: of the 4 positive–negative pairs,
    /// (0.35 vs 0.1) ✓, (0.35 vs 0.4) ✗, (0.8 vs both) ✓✓ → 3/4.
    #[test]
    fn auc_of_a_hand_computed_example() {
        let auc = roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
        assert!((auc - 0.75).abs() < 1e-12, "{auc}");
    }

    /// A tie between a positive and a negative counts one half: pairs (0.5+ vs 0.5−) = ½,
    /// (0.5+ vs 0.2−) = 1, (0.9+ vs both) = 2 → 3.5 / 4.
    #[test]
    fn auc_counts_ties_as_halves() {
        let auc = roc_auc(&[0.5, 0.5, 0.2, 0.9], &[true, false, false, true]).unwrap();
        assert!((auc - 0.875).abs() < 1e-12, "{auc}");
        assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(roc_auc(&[0.3, 0.3, 0.3], &[true, false, true]), Some(0.5));
    }

    #[test]
    fn log_loss_of_a_hand_computed_example() {
        // −(ln 0.8 + ln 0.6) / 2
        let l = log_loss(&[0.8, 0.4], &[true, false]).unwrap();
        assert!((l - (-(0.8f64.ln() + 0.6f64.ln()) / 2.0)).abs() < 1e-12);
        assert!(log_loss(&[0.0], &[true]).unwrap().is_finite());
    }

    #[test]
    fn calibration_bins_hold_equal_counts_in_order() {
        let p: Vec<f64> = (0..100).map(|i| i as f64 / 100.0).collect();
        let y: Vec<bool> = (0..100).map(|i| i % 10 < i / 10).collect();
        let bins = calibration_deciles(&p, &y);
        assert_eq!(bins.len(), 10);
        assert!(bins.iter().all(|b| b.count == 10));
        assert!((bins[0].mean_predicted - 0.045).abs() < 1e-12);
        assert_eq!(bins[0].observed_rate, 0.0);
        assert!((bins[9].observed_rate - 0.9).abs() < 1e-12);
        assert_eq!(calibration_deciles(&[0.5, 0.6], &[true, false]).len(), 2);
    }
}

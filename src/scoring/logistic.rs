//! L2-regularized logistic regression fitted by IRLS (Newton's method), on standardized
//! features.
//!
//! The objective, over standardized features `z = (x − mean) / std` (population std; a
//! constant column gets std 1, so it is all zeros and its coefficient 0):
//!
//! ```text
//! minimize  Σᵢ −yᵢ·ln pᵢ − (1−yᵢ)·ln(1−pᵢ)  +  λ/2 · Σⱼ βⱼ²,     pᵢ = σ(β₀ + zᵢ·β)
//! ```
//!
//! The intercept `β₀` is not penalized. This is scikit-learn's `LogisticRegression(C = 1/λ)`
//! on `StandardScaler`-ed features (its L2 penalty is ½‖β‖² with the loss summed, not averaged,
//! and no penalty on the intercept), so the two agree to solver tolerance
//! (`scripts/sklearn_risk_check.py`).
//!
//! Each Newton step solves `(Xᵀ W X + λ D) δ = Xᵀ(y − p) − λ D β` (`W = diag(p(1−p))`, `D` the
//! identity with a zero for the intercept) with the LU solver of [`crate::simulate::linalg`];
//! a step that does not lower the objective is halved.

use serde::{Deserialize, Serialize};

use super::error::{Result, ScoringError};
use crate::simulate::linalg::{Lu, Matrix};

/// Settings of a fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitOptions {
    /// L2 strength λ on the standardized coefficients (scikit-learn's `C` is `1/λ`).
    pub l2: f64,
    /// Newton iterations at most.
    pub max_iter: usize,
    /// Converged when the largest coefficient change of a step is below this.
    pub tol: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            l2: 1.0,
            max_iter: 100,
            tol: 1e-10,
        }
    }
}

/// A fitted model: the standardization and the coefficients on the standardized scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logistic {
    pub intercept: f64,
    /// One per feature, on the standardized scale.
    pub coefficients: Vec<f64>,
    pub means: Vec<f64>,
    pub stds: Vec<f64>,
    pub l2: f64,
    /// Newton iterations the fit took.
    pub iterations: usize,
    pub converged: bool,
}

/// The logistic function, stable for large |t|.
pub fn sigmoid(t: f64) -> f64 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let e = t.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + e^t)`, stable for large |t|.
fn softplus(t: f64) -> f64 {
    if t > 30.0 {
        t
    } else if t < -30.0 {
        t.exp()
    } else {
        t.exp().ln_1p()
    }
}

/// Column means and population standard deviations of `rows` (`p` columns each).
pub fn standardization(rows: &[Vec<f64>], p: usize) -> (Vec<f64>, Vec<f64>) {
    let n = rows.len().max(1) as f64;
    let mut means = vec![0.0; p];
    for r in rows {
        for (m, x) in means.iter_mut().zip(r) {
            *m += x;
        }
    }
    for m in &mut means {
        *m /= n;
    }
    let mut vars = vec![0.0; p];
    for r in rows {
        for ((v, x), m) in vars.iter_mut().zip(r).zip(&means) {
            *v += (x - m) * (x - m);
        }
    }
    let stds = vars
        .into_iter()
        .map(|v| {
            let s = (v / n).sqrt();
            if s > 1e-12 { s } else { 1.0 }
        })
        .collect();
    (means, stds)
}

impl Logistic {
    /// Fits `y` (true = positive) on `rows` (one `Vec` of `p` raw features per example).
    pub fn fit(rows: &[Vec<f64>], y: &[bool], options: &FitOptions) -> Result<Self> {
        let n = rows.len();
        if n == 0 || n != y.len() {
            return Err(ScoringError::Fit {
                reason: format!("{n} feature rows for {} labels", y.len()),
            });
        }
        let p = rows[0].len();
        if let Some(i) = rows.iter().position(|r| r.len() != p) {
            return Err(ScoringError::Fit {
                reason: format!("row {i} has {} features, row 0 has {p}", rows[i].len()),
            });
        }
        if let Some(i) = rows.iter().position(|r| r.iter().any(|x| !x.is_finite())) {
            return Err(ScoringError::Fit {
                reason: format!("row {i} has a feature that is not a finite number"),
            });
        }
        if !(options.l2 >= 0.0 && options.l2.is_finite()) {
            return Err(ScoringError::Fit {
                reason: format!("the L2 strength must be ≥ 0, got {}", options.l2),
            });
        }
        let (means, stds) = standardization(rows, p);
        // The design matrix with a leading 1 for the intercept.
        let k = p + 1;
        let design: Vec<f64> = rows
            .iter()
            .flat_map(|r| {
                std::iter::once(1.0).chain(
                    r.iter()
                        .zip(&means)
                        .zip(&stds)
                        .map(|((x, m), s)| (x - m) / s),
                )
            })
            .collect();
        let row = |i: usize| &design[i * k..(i + 1) * k];
        let objective = |beta: &[f64]| -> f64 {
            let mut loss = 0.0;
            for (i, &yi) in y.iter().enumerate() {
                let t: f64 = row(i).iter().zip(beta).map(|(a, b)| a * b).sum();
                // −y ln σ(t) − (1−y) ln(1−σ(t)) = softplus(t) − y t
                loss += softplus(t) - if yi { t } else { 0.0 };
            }
            loss + 0.5 * options.l2 * beta[1..].iter().map(|b| b * b).sum::<f64>()
        };

        let mut beta = vec![0.0; k];
        let mut current = objective(&beta);
        let mut converged = false;
        let mut iterations = 0;
        for _ in 0..options.max_iter {
            iterations += 1;
            let mut hessian = Matrix::zeros(k, k);
            let mut gradient = vec![0.0; k];
            for (i, &yi) in y.iter().enumerate() {
                let x = row(i);
                let t: f64 = x.iter().zip(&beta).map(|(a, b)| a * b).sum();
                let pi = sigmoid(t);
                let w = (pi * (1.0 - pi)).max(1e-12);
                let r = (if yi { 1.0 } else { 0.0 }) - pi;
                for a in 0..k {
                    gradient[a] += x[a] * r;
                    let wa = w * x[a];
                    for b in a..k {
                        hessian[(a, b)] += wa * x[b];
                    }
                }
            }
            for a in 0..k {
                for b in 0..a {
                    hessian[(a, b)] = hessian[(b, a)];
                }
                if a > 0 {
                    hessian[(a, a)] += options.l2;
                    gradient[a] -= options.l2 * beta[a];
                }
            }
            let step = Lu::factor(&hessian)
                .and_then(|lu| lu.solve(&gradient))
                .map_err(|e| ScoringError::Fit {
                    reason: format!(
                        "the Newton system is singular ({e}): add L2 regularization or drop collinear features"
                    ),
                })?;
            // Halve the step until the objective does not rise.
            let mut scale = 1.0;
            let mut next: Vec<f64>;
            let mut value;
            loop {
                next = beta.iter().zip(&step).map(|(b, s)| b + scale * s).collect();
                value = objective(&next);
                if value <= current + 1e-12 * current.abs().max(1.0) || scale < 1e-8 {
                    break;
                }
                scale *= 0.5;
            }
            let change = step
                .iter()
                .map(|s| (s * scale).abs())
                .fold(0.0_f64, f64::max);
            beta = next;
            current = value;
            if change < options.tol {
                converged = true;
                break;
            }
        }
        Ok(Self {
            intercept: beta[0],
            coefficients: beta[1..].to_vec(),
            means,
            stds,
            l2: options.l2,
            iterations,
            converged,
        })
    }

    /// The standardized features of one raw row.
    pub fn standardize(&self, x: &[f64]) -> Vec<f64> {
        x.iter()
            .zip(&self.means)
            .zip(&self.stds)
            .map(|((x, m), s)| (x - m) / s)
            .collect()
    }

    /// The linear predictor (log-odds) of one raw row.
    pub fn log_odds(&self, x: &[f64]) -> f64 {
        self.intercept
            + x.iter()
                .zip(&self.means)
                .zip(&self.stds)
                .zip(&self.coefficients)
                .map(|(((x, m), s), b)| b * (x - m) / s)
                .sum::<f64>()
    }

    /// P(positive) of one raw row.
    pub fn predict(&self, x: &[f64]) -> f64 {
        sigmoid(self.log_odds(x))
    }

    /// Each feature's additive share of the log-odds, `βⱼ · zⱼ` (relative to an average deal).
    pub fn contributions(&self, x: &[f64]) -> Vec<f64> {
        self.standardize(x)
            .iter()
            .zip(&self.coefficients)
            .map(|(z, b)| z * b)
            .collect()
    }

    /// The coefficients on the raw feature scale, and the raw-scale intercept.
    pub fn raw_coefficients(&self) -> (f64, Vec<f64>) {
        let coefs: Vec<f64> = self
            .coefficients
            .iter()
            .zip(&self.stds)
            .map(|(b, s)| b / s)
            .collect();
        let intercept = self.intercept
            - coefs
                .iter()
                .zip(&self.means)
                .map(|(b, m)| b * m)
                .sum::<f64>();
        (intercept, coefs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logit(p: f64) -> f64 {
        (p / (1.0 - p)).ln()
    }

    /// One binary feature, no penalty: the maximum-likelihood fit reproduces the two groups'
    /// observed rates exactly (a closed-form solution).
    #[test]
    fn unpenalized_fit_on_a_binary_feature_matches_the_group_rates() {
        let mut rows = Vec::new();
        let mut y = Vec::new();
        for i in 0..10 {
            rows.push(vec![0.0]);
            y.push(i < 3);
        }
        for i in 0..10 {
            rows.push(vec![1.0]);
            y.push(i < 8);
        }
        let options = FitOptions {
            l2: 0.0,
            ..FitOptions::default()
        };
        let m = Logistic::fit(&rows, &y, &options).unwrap();
        assert!(m.converged);
        let (b0, b) = m.raw_coefficients();
        assert!((b0 - logit(0.3)).abs() < 1e-9, "{b0}");
        assert!((b[0] - (logit(0.8) - logit(0.3))).abs() < 1e-9, "{b:?}");
        assert!((m.predict(&[0.0]) - 0.3).abs() < 1e-9);
        assert!((m.predict(&[1.0]) - 0.8).abs() < 1e-9);
    }

    /// x = ±1 (already standard), k of n positives at +1 and n−k at −1: by symmetry β₀ = 0 and
    /// β solves 2n·σ(β) − 2k + λβ = 0, found here by bisection independently of Newton.
    #[test]
    fn penalized_fit_solves_the_symmetric_stationarity_equation() {
        let (n, k, l2) = (50usize, 35usize, 4.0);
        let mut rows = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            rows.push(vec![1.0]);
            y.push(i < k);
            rows.push(vec![-1.0]);
            y.push(i >= k);
        }
        let m = Logistic::fit(
            &rows,
            &y,
            &FitOptions {
                l2,
                ..FitOptions::default()
            },
        )
        .unwrap();
        // The derivative in β with β₀ = 0: n(σ(β) − σ(−β)) − 2k + n + λβ = 2n·σ(β) − 2k + λβ.
        let g = |b: f64| 2.0 * n as f64 * sigmoid(b) - 2.0 * k as f64 + l2 * b;
        let (mut lo, mut hi) = (-10.0, 10.0);
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if g(mid) > 0.0 {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        let expected = 0.5 * (lo + hi);
        assert!(m.intercept.abs() < 1e-9, "{}", m.intercept);
        assert!(
            (m.coefficients[0] - expected).abs() < 1e-9,
            "{} vs {expected}",
            m.coefficients[0]
        );
    }

    /// Two correlated features, L2 = 1: the reference coefficients are scikit-learn 1.9.1's
    /// `LogisticRegression(C=1.0, tol=1e-12, max_iter=10000)` on `StandardScaler`-ed data.
    #[test]
    fn penalized_fit_matches_a_reference_solution() {
        let x: [[f64; 2]; 12] = [
            [0.5, 1.0],
            [1.5, 0.0],
            [2.0, 1.0],
            [2.5, 3.0],
            [3.0, 2.0],
            [3.5, 4.0],
            [4.0, 3.0],
            [4.5, 5.0],
            [5.0, 4.0],
            [1.0, 2.0],
            [3.2, 1.0],
            [4.2, 2.0],
        ];
        let y = [
            false, false, true, false, true, false, true, true, true, false, false, true,
        ];
        let rows: Vec<Vec<f64>> = x.iter().map(|r| r.to_vec()).collect();
        let m = Logistic::fit(&rows, &y, &FitOptions::default()).unwrap();
        let expected = REFERENCE;
        assert!((m.intercept - expected.0).abs() < 1e-6, "{}", m.intercept);
        for (got, want) in m.coefficients.iter().zip(expected.1) {
            assert!(
                (got - want).abs() < 1e-6,
                "{:?} vs {:?}",
                m.coefficients,
                expected.1
            );
        }
    }

    /// (intercept, coefficients) of the reference fit above.
    const REFERENCE: (f64, [f64; 2]) = (-0.020322681205, [1.049881480297, 0.049461699146]);

    #[test]
    fn stationarity_holds_at_the_solution() {
        let rows: Vec<Vec<f64>> = (0..40)
            .map(|i| vec![(i % 7) as f64, ((i * 3) % 5) as f64, 1.0])
            .collect();
        let y: Vec<bool> = (0..40).map(|i| (i * 7 + 3) % 10 < 4 + i % 3).collect();
        let m = Logistic::fit(&rows, &y, &FitOptions::default()).unwrap();
        assert!(m.converged);
        // The constant column has std 1 after centering: all zeros, coefficient 0.
        assert!(m.coefficients[2].abs() < 1e-12);
        let mut grad = vec![0.0; 2];
        let mut grad0 = 0.0;
        for (r, &yi) in rows.iter().zip(&y) {
            let z = m.standardize(r);
            let resid = m.predict(r) - if yi { 1.0 } else { 0.0 };
            grad0 += resid;
            for j in 0..2 {
                grad[j] += z[j] * resid;
            }
        }
        assert!(grad0.abs() < 1e-8);
        for j in 0..2 {
            assert!(
                (grad[j] + m.l2 * m.coefficients[j]).abs() < 1e-8,
                "{grad:?}"
            );
        }
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(Logistic::fit(&[], &[], &FitOptions::default()).is_err());
        assert!(
            Logistic::fit(
                &[vec![1.0], vec![1.0, 2.0]],
                &[true, false],
                &FitOptions::default()
            )
            .is_err()
        );
        assert!(Logistic::fit(&[vec![f64::NAN]], &[true], &FitOptions::default()).is_err());
    }
}

//! The exact oracle: absorption probabilities, expected steps (with their variance) and
//! expected days of a chain's context-free rows, from the fundamental matrix
//! `N = (I − Q)^-1`.
//!
//! With the open stages as transient states, `Q` their transition block and `R` the block into
//! the absorbing states (won, lost, and the virtual *open* of stages without a way out):
//!
//! ```text
//! B = N·R              absorption probabilities by start stage
//! t = N·1              expected steps to absorption
//! Var = (2N − I)·t − t∘t   variance of the steps
//! d = N·m              expected days, m = mean time in each stage
//! ```
//!
//! The Monte Carlo engine is tested against it: for every start stage its estimate must fall
//! within 3 of its own standard errors of the exact value.

use super::error::{Result, SimulateError};
use super::linalg::{Lu, Matrix};
use super::model::ChainModel;

/// The exact absorption results of one start stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Absorption {
    /// The stage code.
    pub stage: u16,
    pub p_win: f64,
    pub p_lost: f64,
    /// Probability of ending in a stage without a way out.
    pub p_stuck: f64,
    pub expected_steps: f64,
    pub steps_variance: f64,
    /// Expected days to absorption from entering the stage (no days already spent).
    pub expected_days: f64,
}

/// Exact results for every open stage of `model`'s context-free chain, in stage-code order.
pub fn absorption(model: &ChainModel) -> Result<Vec<Absorption>> {
    let transient: Vec<u16> = (0..model.stages().len() as u16)
        .filter(|c| !model.is_absorbing(*c))
        .collect();
    let t = transient.len();
    let pos = |code: u16| transient.iter().position(|c| *c == code);
    let mut i_q = Matrix::identity(t);
    // Columns of R: won, lost, stuck.
    let mut r = Matrix::zeros(t, 3);
    let mut mean_days = vec![0.0; t];
    for (i, &from) in transient.iter().enumerate() {
        mean_days[i] = model.durations(0, from).map_or(0.0, |q| q.mean());
        let Some(row) = model.own_row(0, from) else {
            r[(i, 2)] = 1.0;
            continue;
        };
        for (to, &p) in row.iter().enumerate() {
            let to = to as u16;
            if to == model.won() {
                r[(i, 0)] += p;
            } else if to == model.lost() {
                r[(i, 1)] += p;
            } else if let Some(j) = pos(to) {
                i_q[(i, j)] -= p;
            }
        }
    }
    let lu = Lu::factor(&i_q).map_err(|e| SimulateError::Singular {
        reason: format!("{e}: some open stage never reaches closed_won, closed_lost or a dead end"),
    })?;
    let n = lu.inverse();
    let b = n.mul(&r).expect("N is t×t and R is t×3");
    let steps = n.mul_vec(&vec![1.0; t]).expect("N is t×t");
    let days = n.mul_vec(&mean_days).expect("N is t×t");
    // (2N − I)·t = 2·N·t − t.
    let n_t = n.mul_vec(&steps).expect("N is t×t");
    Ok(transient
        .iter()
        .enumerate()
        .map(|(i, &stage)| Absorption {
            stage,
            p_win: b[(i, 0)],
            p_lost: b[(i, 1)],
            p_stuck: b[(i, 2)],
            expected_steps: steps[i],
            steps_variance: (2.0 * n_t[i] - steps[i] - steps[i] * steps[i]).max(0.0),
            expected_days: days[i],
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::model::{CLOSED_LOST, CLOSED_WON};

    #[test]
    fn gamblers_ruin_by_hand() {
        // a ⇄ b: a → b 0.5 | lost 0.5; b → a 0.5 | won 0.5.
        // p_win(b) = 0.5 + 0.5·p_win(a), p_win(a) = 0.5·p_win(b)  =>  p_win(a) = 1/3, (b) = 2/3.
        // steps: t_a = 1 + 0.5 t_b, t_b = 1 + 0.5 t_a  =>  t = 2 for both.
        let m = ChainModel::from_arrays(
            &["a", "b", CLOSED_WON, CLOSED_LOST],
            &[
                vec![0.0, 0.5, 0.0, 0.5],
                vec![0.5, 0.0, 0.5, 0.0],
                vec![0.0; 4],
                vec![0.0; 4],
            ],
            &[vec![2.0, 2.0], vec![0.0, 10.0], vec![], vec![]],
        )
        .unwrap();
        let exact = absorption(&m).unwrap();
        assert_eq!(exact.len(), 2);
        let (a, b) = (&exact[0], &exact[1]);
        assert!((a.p_win - 1.0 / 3.0).abs() < 1e-12 && (b.p_win - 2.0 / 3.0).abs() < 1e-12);
        assert!((a.p_lost + a.p_win - 1.0).abs() < 1e-12);
        assert!((a.expected_steps - 2.0).abs() < 1e-12);
        // Every step absorbs with probability 1/2 from either stage, so the steps are
        // Geometric(1/2) on {1, 2, …}: variance (1 - p) / p² = 2.
        assert!(
            (a.steps_variance - 2.0).abs() < 1e-9,
            "{}",
            a.steps_variance
        );
        // Days: d_a = 2 + 0.5 d_b, d_b = 5 + 0.5 d_a  =>  d_a = 6, d_b = 8.
        assert!((a.expected_days - 6.0).abs() < 1e-12 && (b.expected_days - 8.0).abs() < 1e-12);
        assert_eq!(a.p_stuck, 0.0);
    }

    #[test]
    fn dead_ends_absorb_as_stuck_and_closed_loops_are_singular() {
        let m = ChainModel::from_arrays(
            &["a", "limbo", CLOSED_WON, CLOSED_LOST],
            &[
                vec![0.0, 0.25, 0.75, 0.0],
                vec![0.0; 4],
                vec![0.0; 4],
                vec![0.0; 4],
            ],
            &[vec![1.0, 1.0], vec![], vec![], vec![]],
        )
        .unwrap();
        let exact = absorption(&m).unwrap();
        assert!((exact[0].p_stuck - 0.25).abs() < 1e-12 && (exact[0].p_win - 0.75).abs() < 1e-12);
        let looping = ChainModel::from_arrays(
            &["a", "b", CLOSED_WON, CLOSED_LOST],
            &[
                vec![0.0, 1.0, 0.0, 0.0],
                vec![1.0, 0.0, 0.0, 0.0],
                vec![0.0; 4],
                vec![0.0; 4],
            ],
            &[vec![1.0, 1.0], vec![1.0, 1.0], vec![], vec![]],
        )
        .unwrap();
        assert!(matches!(
            absorption(&looping),
            Err(SimulateError::Singular { .. })
        ));
    }
}

//! The stage order that defines forward, backward (rework) and skipping moves.

use std::collections::HashMap;
use std::path::Path;

use super::encode::Dict;
use super::error::{MiningError, Result};

/// Stages in process order; stages outside it (lost outcomes, foreign activities) are never
/// rework, skips or advances.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageOrder {
    stages: Vec<String>,
}

impl StageOrder {
    /// An order as listed, first stage first.
    pub fn new<S: AsRef<str>>(stages: &[S]) -> Self {
        Self {
            stages: stages.iter().map(|s| s.as_ref().to_string()).collect(),
        }
    }

    /// The order of `stage_mappings.csv` (columns `stage` and `probability`): stages by their
    /// lowest probability, ties by first row. A stage whose probability is 0 in every row (a
    /// lost outcome such as `closed_lost`) is left out. A missing file gives an empty order.
    pub fn from_seed(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Ok(Self::default());
        }
        let bad = |reason: String| MiningError::StageOrder {
            path: path.to_path_buf(),
            reason,
        };
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_path(path)
            .map_err(|e| bad(e.to_string()))?;
        let headers = reader.headers().map_err(|e| bad(e.to_string()))?.clone();
        let column = |name: &str| {
            headers
                .iter()
                .position(|h| h.eq_ignore_ascii_case(name))
                .ok_or_else(|| bad(format!("no `{name}` column")))
        };
        let (stage_col, prob_col) = (column("stage")?, column("probability")?);
        // stage -> (lowest probability, highest probability, first row)
        let mut seen: HashMap<String, (f64, f64, usize)> = HashMap::new();
        for (row, record) in reader.records().enumerate() {
            let record = record.map_err(|e| bad(e.to_string()))?;
            let stage = record.get(stage_col).unwrap_or("").to_string();
            let p: f64 = record
                .get(prob_col)
                .unwrap_or("")
                .parse()
                .map_err(|_| bad(format!("row {}: probability is not a number", row + 2)))?;
            if stage.is_empty() {
                continue;
            }
            let e = seen.entry(stage).or_insert((p, p, row));
            e.0 = e.0.min(p);
            e.1 = e.1.max(p);
        }
        let mut stages: Vec<(String, f64, usize)> = seen
            .into_iter()
            .filter(|(_, (_, high, _))| *high > 0.0)
            .map(|(s, (low, _, row))| (s, low, row))
            .collect();
        stages.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.2.cmp(&b.2)));
        Ok(Self {
            stages: stages.into_iter().map(|(s, _, _)| s).collect(),
        })
    }

    pub fn stages(&self) -> &[String] {
        &self.stages
    }

    /// The rank of each code of `dict` (`None`: outside the order).
    pub fn ranks(&self, dict: &Dict) -> Vec<Option<u16>> {
        let rank: HashMap<&str, u16> = self
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), i as u16))
            .collect();
        dict.names()
            .iter()
            .map(|n| rank.get(n.as_str()).copied())
            .collect()
    }
}

/// How a move relates to the stage order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoveKind {
    /// To an earlier stage.
    pub rework: bool,
    /// Stages of the order jumped over by a forward move.
    pub skipped: u16,
    /// To a later stage.
    pub advance: bool,
}

impl MoveKind {
    pub fn of(from: Option<u16>, to: Option<u16>) -> Self {
        match (from, to) {
            (Some(f), Some(t)) => Self {
                rework: t < f,
                skipped: t.saturating_sub(f).saturating_sub(1),
                advance: t > f,
            },
            _ => Self {
                rework: false,
                skipped: 0,
                advance: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_orders_stages_by_probability_and_leaves_out_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stage_mappings.csv");
        std::fs::write(
            &path,
            "source,raw_stage,stage,probability\n\
             a,P,lead,0.10\na,Q,qualification,0.10\na,N,discovery,0.20\na,W,closed_won,1.0\n\
             a,L,closed_lost,0\nb,x,qualification,0.40\nb,y,lead,0.2\nb,z,negotiation,0.9\n",
        )
        .unwrap();
        let order = StageOrder::from_seed(&path).unwrap();
        assert_eq!(
            order.stages(),
            [
                "lead",
                "qualification",
                "discovery",
                "negotiation",
                "closed_won"
            ]
        );
        assert_eq!(
            StageOrder::from_seed(&dir.path().join("none.csv")).unwrap(),
            StageOrder::default()
        );
    }

    #[test]
    fn moves_are_classified_by_rank() {
        let back = MoveKind::of(Some(3), Some(1));
        assert!(back.rework && !back.advance && back.skipped == 0);
        let skip = MoveKind::of(Some(1), Some(4));
        assert!(!skip.rework && skip.advance && skip.skipped == 2);
        let next = MoveKind::of(Some(1), Some(2));
        assert_eq!(next.skipped, 0);
        let lost = MoveKind::of(Some(1), None);
        assert!(!lost.rework && !lost.advance);
        let same = MoveKind::of(Some(2), Some(2));
        assert!(!same.rework && !same.advance);
    }
}

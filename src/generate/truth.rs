//! The generator's ground truth (`<out>/truth.json`): what later tests of the pipeline can
//! check the CSV import, staging, mining and forecasting against.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::deal::{Deal, Outcome};
use super::model::{BLOCKER, CHAMPION, INDUSTRIES, LEAD_SOURCES, SIZE_BANDS};

/// Ground truth of one generated org.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Truth {
    pub seed: u64,
    pub deals: u64,
    pub hubspot_share: f64,
    /// First possible deal created date, `YYYY-MM-DD`.
    pub start: String,
    /// The org's "today", `YYYY-MM-DD`.
    pub as_of: String,
    /// Data rows (header excluded) per file, by path relative to the output directory.
    pub files: BTreeMap<String, u64>,
    pub salesforce: SourceTruth,
    pub hubspot: SourceTruth,
    /// Stage changes over all deals (moves after the first stage entered).
    pub stage_transitions: u64,
    /// HubSpot companies whose domain is also a Salesforce account's domain.
    pub shared_domains: u64,
    /// Closed deals and win rates per level of each context factor, over both CRMs.
    pub factors: FactorTruth,
}

/// Counts of one CRM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceTruth {
    pub deals: u64,
    pub won: u64,
    pub lost: u64,
    pub open: u64,
    pub stage_transitions: u64,
    pub accounts: u64,
    pub contacts: u64,
    pub users: u64,
}

/// One level of a context factor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelTruth {
    pub level: String,
    pub deals: u64,
    pub closed: u64,
    pub won: u64,
    /// won / closed (0 when nothing closed).
    pub win_rate: f64,
}

/// Per-factor truth. Level names: champion `present`/`absent`, blocker `unresolved`/`none`,
/// size band `small`/`mid`/`large`/`enterprise`, industry and lead source as exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactorTruth {
    pub champion: Vec<LevelTruth>,
    pub blocker: Vec<LevelTruth>,
    pub size_band: Vec<LevelTruth>,
    pub industry: Vec<LevelTruth>,
    pub lead_source: Vec<LevelTruth>,
}

impl FactorTruth {
    /// The level `level` of factor `factor` (`champion`, `blocker`, `size_band`, `industry`,
    /// `lead_source`).
    pub fn level(&self, factor: &str, level: &str) -> Option<&LevelTruth> {
        let levels = match factor {
            "champion" => &self.champion,
            "blocker" => &self.blocker,
            "size_band" => &self.size_band,
            "industry" => &self.industry,
            "lead_source" => &self.lead_source,
            _ => return None,
        };
        levels.iter().find(|l| l.level == level)
    }
}

/// Counters while deals stream.
pub struct Tally {
    pub salesforce: SourceTruth,
    pub hubspot: SourceTruth,
    /// [factor][level] = (deals, closed, won)
    factors: [Vec<[u64; 3]>; 5],
}

impl Tally {
    pub fn new() -> Self {
        Tally {
            salesforce: SourceTruth::default(),
            hubspot: SourceTruth::default(),
            factors: [
                vec![[0; 3]; CHAMPION.len()],
                vec![[0; 3]; BLOCKER.len()],
                vec![[0; 3]; SIZE_BANDS.len()],
                vec![[0; 3]; INDUSTRIES.len()],
                vec![[0; 3]; LEAD_SOURCES.len()],
            ],
        }
    }

    /// Counts one deal with `moves` stages entered.
    pub fn record(&mut self, hubspot: bool, deal: &Deal, moves: usize) {
        let source = if hubspot {
            &mut self.hubspot
        } else {
            &mut self.salesforce
        };
        source.deals += 1;
        source.stage_transitions += moves.saturating_sub(1) as u64;
        match deal.outcome {
            Outcome::Won => source.won += 1,
            Outcome::Lost => source.lost += 1,
            Outcome::Open => source.open += 1,
        }
        let ctx = &deal.ctx;
        let levels = [
            usize::from(!ctx.champion),
            usize::from(!ctx.blocker),
            ctx.band,
            ctx.industry,
            ctx.source,
        ];
        for (counts, level) in self.factors.iter_mut().zip(levels) {
            let c = &mut counts[level];
            c[0] += 1;
            if deal.outcome != Outcome::Open {
                c[1] += 1;
            }
            if deal.outcome == Outcome::Won {
                c[2] += 1;
            }
        }
    }

    /// The factor truth from the counters.
    pub fn factors(&self) -> FactorTruth {
        let levels = |i: usize, names: Vec<&str>| -> Vec<LevelTruth> {
            names
                .into_iter()
                .zip(&self.factors[i])
                .map(|(name, c)| LevelTruth {
                    level: name.to_string(),
                    deals: c[0],
                    closed: c[1],
                    won: c[2],
                    win_rate: if c[1] == 0 {
                        0.0
                    } else {
                        c[2] as f64 / c[1] as f64
                    },
                })
                .collect()
        };
        FactorTruth {
            champion: levels(0, CHAMPION.iter().map(|e| e.name).collect()),
            blocker: levels(1, BLOCKER.iter().map(|e| e.name).collect()),
            size_band: levels(2, SIZE_BANDS.iter().map(|e| e.name).collect()),
            industry: levels(3, INDUSTRIES.iter().map(|i| i.sf_label).collect()),
            lead_source: levels(4, LEAD_SOURCES.iter().map(|e| e.name).collect()),
        }
    }
}

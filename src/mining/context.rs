//! Contexts as mixed-radix integers: each factor has a few levels, a context is one level per
//! factor, and its index is `Σ level_j × stride_j` with the first factor most significant.
//!
//! Because the first factor is the most significant digit, the contexts that share the first
//! `k` factors' levels (the children of one prefix context) form one contiguous index range,
//! and the prefix context of a full index is `index / stride_{k-1}`: marginalizing to a
//! coarser level is a division, and grouped data sorted by full index is grouped by every
//! prefix too.

use super::config::{Factor, MiningConfig, band_labels};
use super::encode::{NONE16, NONE32};
use super::error::{MiningError, Result};
use super::log::WorkspaceLog;

/// The most contexts one workspace may have at its finest level.
pub const MAX_CONTEXTS: u64 = 1_000_000;

/// One factor's levels.
#[derive(Debug, Clone, PartialEq)]
pub struct FactorLevels {
    pub factor: Factor,
    pub levels: Vec<String>,
}

/// The contexts spanned by an ordered list of factors.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextSpace {
    pub factors: Vec<FactorLevels>,
    /// `strides[k]` = product of the radices of factors `k..`; `strides[0]` is the size.
    strides: Vec<u64>,
}

impl ContextSpace {
    pub fn new(workspace: &str, factors: Vec<FactorLevels>) -> Result<Self> {
        let mut strides = vec![1u64; factors.len() + 1];
        let mut total: u128 = 1;
        for k in (0..factors.len()).rev() {
            total *= factors[k].levels.len().max(1) as u128;
            if total > MAX_CONTEXTS as u128 {
                return Err(MiningError::TooManyContexts {
                    workspace: workspace.to_string(),
                    factors: factors
                        .iter()
                        .map(|f| f.factor.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                    contexts: factors
                        .iter()
                        .map(|f| f.levels.len().max(1) as u128)
                        .product(),
                    max: MAX_CONTEXTS,
                });
            }
            strides[k] = total as u64;
        }
        Ok(Self { factors, strides })
    }

    /// Contexts at the finest level.
    pub fn size(&self) -> u64 {
        self.strides[0]
    }

    /// Levels: `0` (`*`) to the number of factors.
    pub fn depth(&self) -> usize {
        self.factors.len()
    }

    /// The stride of factor `k` (product of the radices after it).
    pub fn stride(&self, k: usize) -> u64 {
        self.strides[k + 1]
    }

    /// Contexts at level `k` (the first `k` factors).
    pub fn size_at(&self, k: usize) -> u64 {
        self.strides[0] / self.strides[k]
    }

    /// The level-`k` context of a finest-level index.
    pub fn prefix(&self, full: u64, k: usize) -> u64 {
        full / self.strides[k]
    }

    /// Children of one level-`k` context per level-`k+1` context: the radix of factor `k`.
    pub fn radix(&self, k: usize) -> u64 {
        self.factors[k].levels.len() as u64
    }

    /// The key of context `index` at level `k`: `factor=level` pairs sorted by factor name and
    /// joined by `|` (`*` at level 0), as the simulator parses them.
    pub fn key(&self, k: usize, index: u64) -> String {
        if k == 0 {
            return "*".into();
        }
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(k);
        let mut rest = index;
        for j in (0..k).rev() {
            let radix = self.radix(j);
            let level = (rest % radix) as usize;
            rest /= radix;
            pairs.push((
                self.factors[j].factor.name(),
                &self.factors[j].levels[level],
            ));
        }
        pairs.sort();
        pairs
            .iter()
            .map(|(f, l)| format!("{f}={l}"))
            .collect::<Vec<_>>()
            .join("|")
    }
}

/// The contexts of a workspace and each deal's part of its context index.
#[derive(Debug, Clone)]
pub struct DealContexts {
    /// All effective factors (transition contexts).
    pub transitions: ContextSpace,
    /// The per-deal factors only (time-in-stage contexts).
    pub durations: ContextSpace,
    /// Per deal code (the last entry: a row without a known deal), the per-deal factors' part
    /// of the transition context index.
    pub transition_base: Vec<u32>,
    /// Per deal code (last: unknown deal), the duration context index.
    pub duration_index: Vec<u32>,
    /// Position in `transitions.factors` of the per-transition factors.
    pub stage_days_at: Option<usize>,
    pub engagement_at: Option<usize>,
}

impl DealContexts {
    /// The context index base of deal code `deal` ([`NONE32`] allowed).
    #[inline]
    pub fn slot(&self, deal: u32) -> usize {
        if deal == NONE32 || deal as usize >= self.transition_base.len() - 1 {
            self.transition_base.len() - 1
        } else {
            deal as usize
        }
    }
}

/// Builds the contexts of `log` under `config`: the factors that apply (deal factors only when
/// the workspace has `staging.deals` rows), their levels, and every deal's levels.
pub fn deal_contexts(log: &WorkspaceLog, config: &MiningConfig) -> Result<DealContexts> {
    let deals = &log.deals;
    let has_deals = deals.known() > 0;
    let factors: Vec<Factor> = config
        .factors
        .iter()
        .copied()
        .filter(|f| has_deals || f.is_per_transition())
        .collect();
    let slots = deals.count + 1;
    // Per factor: its levels and, for per-deal factors, each deal's level.
    let mut spaces = Vec::with_capacity(factors.len());
    let mut per_deal: Vec<Option<Vec<u8>>> = Vec::with_capacity(factors.len());
    for f in &factors {
        let (levels, codes) = factor_levels(*f, log, config, slots);
        spaces.push(FactorLevels { factor: *f, levels });
        per_deal.push(codes);
    }
    let transitions = ContextSpace::new(&log.workspace, spaces.clone())?;
    let static_spaces: Vec<FactorLevels> = spaces
        .iter()
        .filter(|s| !s.factor.is_per_transition())
        .cloned()
        .collect();
    let durations = ContextSpace::new(&log.workspace, static_spaces)?;
    let mut transition_base = vec![0u32; slots];
    let mut duration_index = vec![0u32; slots];
    let mut d = 0usize;
    for (k, codes) in per_deal.iter().enumerate() {
        let Some(codes) = codes else { continue };
        let t_stride = transitions.stride(k) as u32;
        let d_stride = durations.stride(d) as u32;
        for (slot, level) in codes.iter().enumerate() {
            transition_base[slot] += *level as u32 * t_stride;
            duration_index[slot] += *level as u32 * d_stride;
        }
        d += 1;
    }
    let position = |f: Factor| factors.iter().position(|x| *x == f);
    Ok(DealContexts {
        stage_days_at: position(Factor::StageDays),
        engagement_at: position(Factor::Engagement),
        transitions,
        durations,
        transition_base,
        duration_index,
    })
}

/// A factor's level names, and for a per-deal factor each deal slot's level (the last slot is
/// a row without a known deal).
fn factor_levels(
    factor: Factor,
    log: &WorkspaceLog,
    config: &MiningConfig,
    slots: usize,
) -> (Vec<String>, Option<Vec<u8>>) {
    let deals = &log.deals;
    let known = deals.known();
    let yes_no = |flags: &dyn Fn(usize) -> bool| {
        let codes = (0..slots).map(|i| (i < known && flags(i)) as u8).collect();
        (vec!["false".to_string(), "true".to_string()], Some(codes))
    };
    match factor {
        Factor::Champion => yes_no(&|i| deals.champion[i]),
        Factor::Blocker => yes_no(&|i| deals.blocker[i]),
        Factor::Icp => {
            let icp: Vec<bool> = deals
                .industries
                .names()
                .iter()
                .map(|n| {
                    config
                        .icp_industries
                        .iter()
                        .any(|i| i.trim().eq_ignore_ascii_case(n.trim()))
                })
                .collect();
            yes_no(&|i| deals.industry[i] != NONE16 && icp[deals.industry[i] as usize])
        }
        Factor::Size => {
            let median = median_of(&deals.amount_usd);
            let [low, high] = config.size_ratios;
            let codes = (0..slots)
                .map(|i| {
                    let a = if i < known {
                        deals.amount_usd[i]
                    } else {
                        f64::NAN
                    };
                    match median {
                        Some(m) if a.is_finite() && m > 0.0 => {
                            if a < low * m {
                                0
                            } else if a > high * m {
                                2
                            } else {
                                1
                            }
                        }
                        _ => 3,
                    }
                })
                .collect();
            (
                ["below", "at", "above", "unknown"]
                    .map(String::from)
                    .to_vec(),
                Some(codes),
            )
        }
        Factor::LeadSource => {
            // Lower-cased, trimmed names; spellings that differ only in case share a level.
            let mut names: Vec<String> = deals
                .lead_sources
                .names()
                .iter()
                .map(|n| n.trim().to_lowercase())
                .filter(|n| !n.is_empty() && n != "unknown")
                .collect();
            names.sort();
            names.dedup();
            let unknown = names.len() as u8;
            let code_of: Vec<u8> = deals
                .lead_sources
                .names()
                .iter()
                .map(|n| {
                    let n = n.trim().to_lowercase();
                    names.binary_search(&n).map_or(unknown, |i| i as u8)
                })
                .collect();
            let codes = (0..slots)
                .map(|i| {
                    if i < known && deals.lead_source[i] != NONE16 {
                        code_of[deals.lead_source[i] as usize]
                    } else {
                        unknown
                    }
                })
                .collect();
            names.push("unknown".into());
            (names, Some(codes))
        }
        Factor::StageDays => (band_labels(&config.stage_days_bands), None),
        Factor::Engagement => {
            let mut labels = band_labels(&config.engagement_days_bands);
            if let Some(last) = labels.last_mut() {
                *last = "none".into();
            }
            (labels, None)
        }
    }
}

/// The median of the finite values (`None` without any).
pub(crate) fn median_of(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_unstable_by(f64::total_cmp);
    Some(super::stats::quantile_sorted(&v, 0.5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mining::log::{DealFacts, LogBuilder};

    fn facts(amount: f64, source: &str, champion: bool) -> DealFacts {
        DealFacts {
            amount_usd: Some(amount),
            lead_source: Some(source.into()),
            champion,
            ..DealFacts::default()
        }
    }

    #[test]
    fn context_indexes_are_mixed_radix_and_keys_sort_factors() {
        let log = LogBuilder::new("w")
            .deal("a", facts(100.0, "Inbound", true))
            .deal("b", facts(10.0, "inbound ", false))
            .deal("c", facts(1000.0, "Partner", false))
            .build();
        let config = MiningConfig::from_toml(
            "factors = [\"lead_source\", \"champion\", \"size\", \"stage_days\"]",
        )
        .unwrap();
        let ctx = deal_contexts(&log, &config).unwrap();
        let t = &ctx.transitions;
        // lead_source: inbound, partner, unknown (3) × champion (2) × size (4) × stage_days (5)
        assert_eq!(t.size(), 3 * 2 * 4 * 5);
        assert_eq!(t.stride(0), 40);
        assert_eq!(ctx.durations.size(), 3 * 2 * 4);
        // deal a: inbound (0), champion true (1), size at (1): 0*40 + 1*20 + 1*5
        assert_eq!(ctx.transition_base[0], 25);
        // deal b: inbound, false, below (10 < 0.5 × median 100)
        assert_eq!(ctx.transition_base[1], 0);
        // deal c: partner (1), false, above: 40 + 2*5
        assert_eq!(ctx.transition_base[2], 50);
        // a row without a deal: unknown source (2), false, unknown size (3)
        assert_eq!(
            ctx.transition_base[ctx.slot(crate::mining::encode::NONE32)],
            95
        );
        assert_eq!(ctx.duration_index[2], 8 + 2);
        assert_eq!(
            t.key(4, 25 + 1),
            "champion=true|lead_source=inbound|size=at|stage_days=8-30"
        );
        assert_eq!(
            t.key(2, t.prefix(50, 2)),
            "champion=false|lead_source=partner"
        );
        assert_eq!(t.key(0, 0), "*");
        assert_eq!(ctx.stage_days_at, Some(3));
    }

    #[test]
    fn a_workspace_without_deals_keeps_only_per_transition_factors() {
        let log = LogBuilder::new("w")
            .transition("case1", None, "a", None, 0)
            .build();
        let ctx = deal_contexts(&log, &MiningConfig::default()).unwrap();
        assert_eq!(ctx.transitions.depth(), 1);
        assert_eq!(ctx.transitions.factors[0].factor, Factor::StageDays);
        assert_eq!(ctx.durations.depth(), 0);
        assert_eq!(ctx.durations.size(), 1);
    }
}

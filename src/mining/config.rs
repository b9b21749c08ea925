//! `[mining]` in a pipeline file: which factors make up a context, their bands, the prior.
//!
//! ```toml
//! [mining]
//! factors = ["champion", "blocker", "size", "lead_source", "stage_days"]
//! stage_days_bands = [7, 30, 90]          # 0-7, 8-30, 31-90, 90+ days in the stage
//! size_ratios = [0.5, 2.0]                # below / at / above the workspace's median amount
//! prior = { type = "fixed", strength = 10 }
//! ```
//!
//! Every key is optional; unknown keys are refused, and values are checked when the pipeline
//! loads, so a bad band is reported with the pipeline file and line.

use serde::{Deserialize, Serialize};

use super::error::{MiningError, Result};

/// A context factor: one attribute of a transition whose levels split the counts.
///
/// Deal factors are fixed per deal (from `staging.deals` and `staging.deal_contacts`); time
/// factors are measured at each transition ([`Factor::is_per_transition`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Factor {
    /// A contact with role `champion` on the deal: `true` / `false`.
    Champion,
    /// A contact with role `blocker` on the deal (an unresolved blocker): `true` / `false`.
    Blocker,
    /// The deal's `amount_usd` against the workspace's median: `below` / `at` / `above` /
    /// `unknown` (no amount), split at [`MiningConfig::size_ratios`].
    Size,
    /// The deal's `lead_source`, lower-cased (`unknown` when empty).
    LeadSource,
    /// The deal's industry is one of [`MiningConfig::icp_industries`]: `true` / `false`.
    Icp,
    /// Days spent in the stage before the transition, banded by
    /// [`MiningConfig::stage_days_bands`] (`0-7`, `8-30`, `31-90`, `90+`).
    StageDays,
    /// Days from the deal's last activity to the transition, banded by
    /// [`MiningConfig::engagement_days_bands`]; `none` without an earlier activity.
    Engagement,
}

impl Factor {
    /// The name in context keys and in the config.
    pub fn name(self) -> &'static str {
        match self {
            Factor::Champion => "champion",
            Factor::Blocker => "blocker",
            Factor::Size => "size",
            Factor::LeadSource => "lead_source",
            Factor::Icp => "icp",
            Factor::StageDays => "stage_days",
            Factor::Engagement => "engagement",
        }
    }

    /// Whether the level is measured at each transition rather than fixed per deal. Such
    /// factors split the transition matrix but not the time-in-stage tables (whose context is
    /// known before the time is spent).
    pub fn is_per_transition(self) -> bool {
        matches!(self, Factor::StageDays | Factor::Engagement)
    }
}

/// How much a context borrows from its parent context (its factor list minus the last factor).
///
/// A context's probabilities are the posterior mean under a Dirichlet prior centred on the
/// parent's probabilities: `p = (n_to + α · p_parent) / (n + α)`; `α` is the prior's strength,
/// in pseudo-observations.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Prior {
    /// The same `α` everywhere (default 10): a context with 10 observations out of a stage
    /// weighs its own data and the parent's equally.
    Fixed {
        #[serde(default = "default_strength")]
        strength: f64,
    },
    /// `α` per (level, from-stage) by the method of moments: from how much more the sibling
    /// contexts' observed shares spread around the parent than sampling noise alone explains
    /// (Dirichlet-multinomial overdispersion), clamped to `[min, max]`; `fallback` when fewer
    /// than two siblings have two or more observations.
    Moments {
        #[serde(default = "default_strength")]
        fallback: f64,
        #[serde(default = "default_min_strength")]
        min: f64,
        #[serde(default = "default_max_strength")]
        max: f64,
    },
}

impl Default for Prior {
    fn default() -> Self {
        Prior::Fixed {
            strength: default_strength(),
        }
    }
}

impl Prior {
    /// The strength used where no estimate applies (advance rates, and the fallback).
    pub fn base_strength(&self) -> f64 {
        match *self {
            Prior::Fixed { strength } => strength,
            Prior::Moments { fallback, .. } => fallback,
        }
    }
}

fn default_strength() -> f64 {
    10.0
}
fn default_min_strength() -> f64 {
    1.0
}
fn default_max_strength() -> f64 {
    1000.0
}

/// The `[mining]` section of a pipeline file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "RawMiningConfig")]
pub struct MiningConfig {
    /// The factors whose levels make up a context, most general first. Contexts are mined at
    /// every prefix of the list (`*`, then the first factor, the first two, ...), each smoothed
    /// toward the one before. Default: champion, blocker, size, lead_source, stage_days.
    pub factors: Vec<Factor>,
    /// Upper edges, in days and inclusive, of the days-in-stage bands: `[7, 30, 90]` gives
    /// `0-7`, `8-30`, `31-90`, `90+`. Also the bands of the advance rates.
    pub stage_days_bands: Vec<f64>,
    /// Deal size against the workspace's median `amount_usd`: below `size_ratios[0]` × median
    /// is `below`, above `size_ratios[1]` × median is `above`, else `at`. Default `[0.5, 2.0]`.
    pub size_ratios: [f64; 2],
    /// Upper edges, in days, of the engagement-recency bands. Default `[7, 30]`.
    pub engagement_days_bands: Vec<f64>,
    /// Industries of the ideal customer profile, for the `icp` factor (case-insensitive).
    pub icp_industries: Vec<String>,
    /// The smoothing prior. Default: fixed, strength 10.
    pub prior: Prior,
    /// Stage order for rework, skipped stages and advance rates, first stage first. Default:
    /// the order of `datasets/seeds/stage_mappings.csv` by probability (stages whose
    /// probability is 0 everywhere, such as `closed_lost`, are outside the order).
    pub stage_order: Vec<String>,
    /// Closed deals below which the outputs are marked `low_confidence`. Default 50.
    pub min_closed_deals: u64,
    /// Closed deals recommended for stable estimates (reported, not enforced). Default 200.
    pub recommended_closed_deals: u64,
}

impl Default for MiningConfig {
    fn default() -> Self {
        MiningConfig::try_from(RawMiningConfig::default())
            .expect("the default mining settings are valid")
    }
}

/// `[mining]` as written; [`MiningConfig`] is its checked form.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMiningConfig {
    #[serde(default = "default_factors")]
    factors: Vec<Factor>,
    #[serde(default = "default_stage_days_bands")]
    stage_days_bands: Vec<f64>,
    #[serde(default = "default_size_ratios")]
    size_ratios: [f64; 2],
    #[serde(default = "default_engagement_days_bands")]
    engagement_days_bands: Vec<f64>,
    #[serde(default)]
    icp_industries: Vec<String>,
    #[serde(default)]
    prior: Prior,
    #[serde(default)]
    stage_order: Vec<String>,
    #[serde(default = "default_min_closed_deals")]
    min_closed_deals: u64,
    #[serde(default = "default_recommended_closed_deals")]
    recommended_closed_deals: u64,
}

impl Default for RawMiningConfig {
    fn default() -> Self {
        Self {
            factors: default_factors(),
            stage_days_bands: default_stage_days_bands(),
            size_ratios: default_size_ratios(),
            engagement_days_bands: default_engagement_days_bands(),
            icp_industries: Vec::new(),
            prior: Prior::default(),
            stage_order: Vec::new(),
            min_closed_deals: default_min_closed_deals(),
            recommended_closed_deals: default_recommended_closed_deals(),
        }
    }
}

fn default_factors() -> Vec<Factor> {
    vec![
        Factor::Champion,
        Factor::Blocker,
        Factor::Size,
        Factor::LeadSource,
        Factor::StageDays,
    ]
}
fn default_stage_days_bands() -> Vec<f64> {
    vec![7.0, 30.0, 90.0]
}
fn default_size_ratios() -> [f64; 2] {
    [0.5, 2.0]
}
fn default_engagement_days_bands() -> Vec<f64> {
    vec![7.0, 30.0]
}
fn default_min_closed_deals() -> u64 {
    50
}
fn default_recommended_closed_deals() -> u64 {
    200
}

impl TryFrom<RawMiningConfig> for MiningConfig {
    type Error = String;

    fn try_from(raw: RawMiningConfig) -> std::result::Result<Self, String> {
        let mut seen = Vec::new();
        for f in &raw.factors {
            if seen.contains(f) {
                return Err(format!("factor `{}` is listed twice", f.name()));
            }
            seen.push(*f);
        }
        check_edges("stage_days_bands", &raw.stage_days_bands)?;
        check_edges("engagement_days_bands", &raw.engagement_days_bands)?;
        let [low, high] = raw.size_ratios;
        if !(low.is_finite() && high.is_finite() && 0.0 < low && low < high) {
            return Err(format!(
                "size_ratios must be two finite ratios with 0 < first < second, got [{low}, {high}]"
            ));
        }
        if raw.factors.contains(&Factor::Icp) && raw.icp_industries.is_empty() {
            return Err("the `icp` factor needs `icp_industries`".into());
        }
        let strength_ok = |s: f64| s.is_finite() && s > 0.0;
        match raw.prior {
            Prior::Fixed { strength } if !strength_ok(strength) => {
                return Err(format!(
                    "prior strength must be a positive number, got {strength}"
                ));
            }
            Prior::Moments { fallback, min, max }
                if !(strength_ok(fallback)
                    && strength_ok(min)
                    && min <= max
                    && max.is_finite()) =>
            {
                return Err(format!(
                    "moments prior needs positive fallback, min <= max, got fallback {fallback}, min {min}, max {max}"
                ));
            }
            _ => {}
        }
        let mut order_seen = std::collections::HashSet::new();
        for s in &raw.stage_order {
            if s.trim().is_empty() || !order_seen.insert(s.as_str()) {
                return Err(format!("stage_order: `{s}` is empty or listed twice"));
            }
        }
        if raw.min_closed_deals > raw.recommended_closed_deals {
            return Err(format!(
                "min_closed_deals ({}) is above recommended_closed_deals ({})",
                raw.min_closed_deals, raw.recommended_closed_deals
            ));
        }
        Ok(Self {
            factors: raw.factors,
            stage_days_bands: raw.stage_days_bands,
            size_ratios: raw.size_ratios,
            engagement_days_bands: raw.engagement_days_bands,
            icp_industries: raw.icp_industries,
            prior: raw.prior,
            stage_order: raw.stage_order,
            min_closed_deals: raw.min_closed_deals,
            recommended_closed_deals: raw.recommended_closed_deals,
        })
    }
}

fn check_edges(name: &str, edges: &[f64]) -> std::result::Result<(), String> {
    if edges.is_empty() || edges.len() > 32 {
        return Err(format!("{name} needs 1 to 32 band edges"));
    }
    let ok =
        edges.iter().all(|e| e.is_finite() && *e > 0.0) && edges.windows(2).all(|w| w[0] < w[1]);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name} must be positive and increasing, got {edges:?}"
        ))
    }
}

impl MiningConfig {
    /// Parses a `[mining]` table's text (as in a pipeline file, without the header).
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| MiningError::InvalidConfig {
            reason: e.message().to_string(),
        })
    }

    /// The label of each days-in-stage band, then `unknown`.
    pub fn stage_days_labels(&self) -> Vec<String> {
        band_labels(&self.stage_days_bands)
    }

    /// The band of `days` (index into [`MiningConfig::stage_days_labels`]); `unknown` for NaN.
    pub fn stage_days_band(&self, days: f64) -> u8 {
        band_of(&self.stage_days_bands, days)
    }
}

/// `[7, 30, 90]` → `0-7`, `8-30`, `31-90`, `90+`, `unknown`.
pub(crate) fn band_labels(edges: &[f64]) -> Vec<String> {
    let mut labels = Vec::with_capacity(edges.len() + 2);
    let mut low = 0.0;
    for (i, e) in edges.iter().enumerate() {
        let start = if i == 0 { 0.0 } else { (low + 1.0f64).floor() };
        labels.push(format!("{}-{}", fmt_days(start), fmt_days(*e)));
        low = *e;
    }
    labels.push(format!("{}+", fmt_days(low)));
    labels.push("unknown".into());
    labels
}

fn fmt_days(d: f64) -> String {
    if d.fract() == 0.0 {
        format!("{d:.0}")
    } else {
        format!("{d}")
    }
}

/// Index of the band holding `days` (edges inclusive); the last index (`unknown`) for NaN.
pub(crate) fn band_of(edges: &[f64], days: f64) -> u8 {
    if days.is_nan() {
        return (edges.len() + 1) as u8;
    }
    edges.partition_point(|e| *e < days) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_documented_bands() {
        let c = MiningConfig::default();
        assert_eq!(
            c.stage_days_labels(),
            ["0-7", "8-30", "31-90", "90+", "unknown"]
        );
        assert_eq!(c.stage_days_band(0.0), 0);
        assert_eq!(c.stage_days_band(7.0), 0);
        assert_eq!(c.stage_days_band(7.5), 1);
        assert_eq!(c.stage_days_band(30.0), 1);
        assert_eq!(c.stage_days_band(90.0), 2);
        assert_eq!(c.stage_days_band(90.01), 3);
        assert_eq!(c.stage_days_band(f64::NAN), 4);
        assert_eq!(c.prior, Prior::Fixed { strength: 10.0 });
        assert_eq!(c.factors.len(), 5);
    }

    #[test]
    fn a_mining_table_parses_and_refuses_bad_values() {
        let c = MiningConfig::from_toml(
            "factors = [\"icp\", \"stage_days\"]\nicp_industries = [\"Technology\"]\nprior = { type = \"moments\" }\nstage_days_bands = [14]",
        )
        .unwrap();
        assert_eq!(c.factors, [Factor::Icp, Factor::StageDays]);
        assert_eq!(c.stage_days_labels(), ["0-14", "14+", "unknown"]);
        assert!(matches!(c.prior, Prior::Moments { fallback, .. } if fallback == 10.0));
        for bad in [
            "factors = [\"size\", \"size\"]",
            "factors = [\"icp\"]",
            "stage_days_bands = [30, 7]",
            "size_ratios = [2.0, 0.5]",
            "prior = { type = \"fixed\", strength = 0 }",
            "colour = \"red\"",
            "factors = [\"weather\"]",
            "min_closed_deals = 500",
        ] {
            assert!(MiningConfig::from_toml(bad).is_err(), "{bad}");
        }
    }
}

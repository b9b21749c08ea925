//! The chain model the simulator runs: stages as codes, two absorbing outcomes, and per context
//! the transition probabilities out of each stage and the time spent in it.
//!
//! A [`ChainModel`] is independent of how it was mined: it is built from plain arrays
//! ([`ChainModel::from_arrays`], [`ChainModelBuilder`]) or from the mining marts
//! ([`ChainModel::from_marts`](crate::simulate::ChainModel::from_marts)).
//!
//! ```text
//!                 ┌── context `*` (context-free) ─┬─ row (from = demo): P(to) over stage codes
//! ChainModel ─────┤                               └─ durations (stage = demo): 21 quantiles
//!                 └── context `champion=true|…`  ─ …   (missing rows fall back to `*`)
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use super::error::{Result, SimulateError};

/// Quantiles in a time-in-stage table: 0 %, 5 %, …, 100 %.
pub const QUANTILES: usize = 21;
/// The absorbing stage of won deals.
pub const CLOSED_WON: &str = "closed_won";
/// The absorbing stage of lost deals.
pub const CLOSED_LOST: &str = "closed_lost";
/// The open stages of the taxonomy, in process order (codes follow this order).
pub const OPEN_STAGES: [&str; 6] = [
    "lead",
    "qualification",
    "discovery",
    "demo",
    "proposal",
    "negotiation",
];
/// Factors whose levels are yes/no; their spellings are normalized to `true` / `false`.
const BOOLEAN_FACTORS: [&str; 2] = ["champion", "blocker"];

/// Time in a stage, in days, as [`QUANTILES`] evenly spaced quantiles; between them the
/// distribution is linear (the inverse CDF interpolates linearly).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantileTable([f64; QUANTILES]);

impl QuantileTable {
    /// A table from `values`, the quantiles at evenly spaced levels from 0 to 1 (any count from
    /// 2; other counts than [`QUANTILES`] are resampled linearly). Values must be finite,
    /// non-negative and non-decreasing (rounding noise below 1e-9 days is smoothed).
    pub fn new(values: &[f64]) -> std::result::Result<Self, String> {
        if values.len() < 2 {
            return Err(format!(
                "a quantile table needs at least 2 values, got {}",
                values.len()
            ));
        }
        if let Some(v) = values.iter().find(|v| !v.is_finite() || **v < 0.0) {
            return Err(format!("quantile {v} is not a non-negative number of days"));
        }
        if values.windows(2).any(|w| w[1] < w[0] - 1e-9) {
            return Err(format!("quantiles are not non-decreasing: {values:?}"));
        }
        let mut out = [0.0; QUANTILES];
        let last = (values.len() - 1) as f64;
        for (i, o) in out.iter_mut().enumerate() {
            let x = i as f64 / (QUANTILES - 1) as f64 * last;
            let j = (x.floor() as usize).min(values.len() - 2);
            let f = x - j as f64;
            *o = values[j] + f * (values[j + 1] - values[j]);
        }
        for i in 1..QUANTILES {
            out[i] = out[i].max(out[i - 1]);
        }
        Ok(Self(out))
    }

    /// Every run spends exactly `days`.
    pub fn constant(days: f64) -> Self {
        Self([days.max(0.0); QUANTILES])
    }

    pub fn values(&self) -> &[f64; QUANTILES] {
        &self.0
    }

    /// The inverse CDF at `u` in `[0, 1]`.
    pub fn quantile(&self, u: f64) -> f64 {
        let x = u.clamp(0.0, 1.0) * (QUANTILES - 1) as f64;
        let i = (x.floor() as usize).min(QUANTILES - 2);
        let f = x - i as f64;
        self.0[i] + f * (self.0[i + 1] - self.0[i])
    }

    /// The CDF at `days`: the share of time-in-stage at or below it (0 below the minimum, 1 at
    /// and above the maximum).
    pub fn cdf(&self, days: f64) -> f64 {
        let q = &self.0;
        if days < q[0] {
            return 0.0;
        }
        if days >= q[QUANTILES - 1] {
            return 1.0;
        }
        // The last segment [q[i], q[i+1]) holding `days` (flat runs of equal quantiles skipped).
        let i = q.partition_point(|v| *v <= days) - 1;
        let width = q[i + 1] - q[i];
        let f = if width > 0.0 {
            (days - q[i]) / width
        } else {
            0.0
        };
        (i as f64 + f) / (QUANTILES - 1) as f64
    }

    /// The mean of the piecewise-linear distribution: the average of the segment midpoints.
    pub fn mean(&self) -> f64 {
        self.0.windows(2).map(|w| (w[0] + w[1]) / 2.0).sum::<f64>() / (QUANTILES - 1) as f64
    }
}

/// A context: `factor = level` pairs (sorted by factor); empty is the context-free row `*`.
///
/// Keys are written `champion=true|blocker=false`; parsing also accepts `;`, `,` or `&`
/// between pairs and `:` within them. Levels are lower-cased, and the levels of yes/no factors
/// (`champion`, `blocker`) are normalized (`present`, `yes`, `1`, `unresolved` → `true`;
/// `absent`, `no`, `0`, `none`, `resolved` → `false`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Context(Vec<(String, String)>);

impl Context {
    /// The context-free context `*`.
    pub fn any() -> Self {
        Self(Vec::new())
    }

    /// Parses a context key; `None` when it is not a list of `factor=level` pairs.
    pub fn parse(key: &str) -> Option<Self> {
        let key = key.trim();
        if key.is_empty() || key == "*" {
            return Some(Self::any());
        }
        let mut ctx = Self::any();
        for part in key.split(['|', ';', ',', '&']) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (factor, level) = part.split_once(['=', ':'])?;
            let (factor, level) = (factor.trim(), level.trim());
            if factor.is_empty() || level.is_empty() {
                return None;
            }
            if level == "*" {
                continue;
            }
            ctx.set(factor, level);
        }
        Some(ctx)
    }

    /// A context from pairs (later pairs override earlier ones of the same factor).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut ctx = Self::any();
        for (f, l) in pairs {
            ctx.set(f, l);
        }
        ctx
    }

    pub fn is_any(&self) -> bool {
        self.0.is_empty()
    }

    /// The level of `factor`, if the context has one.
    pub fn level(&self, factor: &str) -> Option<&str> {
        let factor = normalize_factor(factor);
        self.0
            .iter()
            .find(|(f, _)| *f == factor)
            .map(|(_, l)| l.as_str())
    }

    /// Sets `factor` to `level` (normalized).
    pub fn set(&mut self, factor: &str, level: &str) {
        let factor = normalize_factor(factor);
        let level = normalize_level(&factor, level);
        match self.0.binary_search_by(|(f, _)| f.as_str().cmp(&factor)) {
            Ok(i) => self.0[i].1 = level,
            Err(i) => self.0.insert(i, (factor, level)),
        }
    }

    /// Removes `factor`.
    pub fn remove(&mut self, factor: &str) {
        let factor = normalize_factor(factor);
        self.0.retain(|(f, _)| *f != factor);
    }

    /// The pairs, sorted by factor.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(f, l)| (f.as_str(), l.as_str()))
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("*");
        }
        for (i, (factor, level)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("|")?;
            }
            write!(f, "{factor}={level}")?;
        }
        Ok(())
    }
}

fn normalize_factor(factor: &str) -> String {
    factor.trim().to_ascii_lowercase()
}

fn normalize_level(factor: &str, level: &str) -> String {
    let level = level.trim().to_ascii_lowercase();
    if !BOOLEAN_FACTORS.contains(&factor) {
        return level;
    }
    match level.as_str() {
        "true" | "t" | "yes" | "y" | "1" | "present" | "unresolved" | "identified" => "true".into(),
        "false" | "f" | "no" | "n" | "0" | "absent" | "none" | "resolved" | "missing" => {
            "false".into()
        }
        _ => level,
    }
}

/// A context of the model: the parsed context, the key as the marts spell it, and its weight
/// (observations behind it) for choosing between equally good matches.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextEntry {
    pub context: Context,
    pub key: String,
    pub weight: f64,
    /// The key did not parse as `factor=level` pairs: no deal context matches it.
    pub opaque: bool,
}

/// Index of a context in a [`ChainModel`]; `0` is always `*`.
pub type ContextIdx = u32;

/// A Markov chain over deal stages with time-in-stage distributions, per context.
#[derive(Debug, Clone)]
pub struct ChainModel {
    stages: Vec<String>,
    won: u16,
    lost: u16,
    contexts: Vec<ContextEntry>,
    /// Probabilities over stage codes, normalized, per (context, from); never for absorbing stages.
    transitions: HashMap<(ContextIdx, u16), Vec<f64>>,
    durations: HashMap<(ContextIdx, u16), QuantileTable>,
    low_confidence: bool,
}

impl ChainModel {
    /// A builder over `stages` (their order is the code order; it must include
    /// [`CLOSED_WON`] and [`CLOSED_LOST`]).
    pub fn builder<S: AsRef<str>>(stages: &[S]) -> Result<ChainModelBuilder> {
        let stages: Vec<String> = stages.iter().map(|s| s.as_ref().to_string()).collect();
        let invalid = |reason: String| SimulateError::InvalidModel { reason };
        let mut seen = BTreeSet::new();
        for s in &stages {
            if s.is_empty() || !seen.insert(s.as_str()) {
                return Err(invalid(format!("stage `{s}` is empty or listed twice")));
            }
        }
        if stages.len() >= u16::MAX as usize - 1 {
            return Err(invalid(format!("{} stages is too many", stages.len())));
        }
        let code = |name: &str| {
            stages
                .iter()
                .position(|s| s == name)
                .map(|i| i as u16)
                .ok_or_else(|| invalid(format!("the stages do not include `{name}`")))
        };
        let won = code(CLOSED_WON)?;
        let lost = code(CLOSED_LOST)?;
        let mut builder = ChainModelBuilder {
            model: ChainModel {
                stages,
                won,
                lost,
                contexts: Vec::new(),
                transitions: HashMap::new(),
                durations: HashMap::new(),
                low_confidence: false,
            },
            index: HashMap::new(),
            raw_rows: BTreeMap::new(),
        };
        builder.context("*");
        Ok(builder)
    }

    /// A context-free model from arrays: `matrix[from][to]` (rows of absorbing stages are
    /// ignored; an all-zero row leaves the stage without a way out) and `durations[stage]`
    /// (quantiles; absorbing stages may have an empty list).
    pub fn from_arrays<S: AsRef<str>>(
        stages: &[S],
        matrix: &[Vec<f64>],
        durations: &[Vec<f64>],
    ) -> Result<Self> {
        let n = stages.len();
        if matrix.len() != n || matrix.iter().any(|r| r.len() != n) || durations.len() != n {
            return Err(SimulateError::InvalidModel {
                reason: format!(
                    "from_arrays needs an {n}×{n} matrix and {n} duration tables, one per stage"
                ),
            });
        }
        let mut b = Self::builder(stages)?;
        for (i, from) in stages.iter().enumerate() {
            let from = from.as_ref();
            if from == CLOSED_WON || from == CLOSED_LOST {
                continue;
            }
            for (j, to) in stages.iter().enumerate() {
                if matrix[i][j] != 0.0 {
                    b.add_transition("*", from, to.as_ref(), matrix[i][j])?;
                }
            }
            if !durations[i].is_empty() {
                b.add_durations("*", from, &durations[i])?;
            }
        }
        b.build()
    }

    /// Stage names by code.
    pub fn stages(&self) -> &[String] {
        &self.stages
    }

    /// The code of `stage`.
    pub fn stage_code(&self, stage: &str) -> Option<u16> {
        self.stages
            .iter()
            .position(|s| s == stage)
            .map(|i| i as u16)
    }

    pub fn won(&self) -> u16 {
        self.won
    }

    pub fn lost(&self) -> u16 {
        self.lost
    }

    pub fn is_absorbing(&self, code: u16) -> bool {
        code == self.won || code == self.lost
    }

    /// The contexts; index 0 is `*`.
    pub fn contexts(&self) -> &[ContextEntry] {
        &self.contexts
    }

    /// Whether the mined rows were marked low-confidence (little closed history).
    pub fn low_confidence(&self) -> bool {
        self.low_confidence
    }

    /// The transition row of `(context, from)` as stored, without fallback.
    pub fn own_row(&self, context: ContextIdx, from: u16) -> Option<&[f64]> {
        self.transitions.get(&(context, from)).map(Vec::as_slice)
    }

    /// The transition row used for `(context, from)`: the context's own, else the
    /// context-free one; `None` when the stage has no way out at all (a dead end).
    pub fn row(&self, context: ContextIdx, from: u16) -> Option<&[f64]> {
        self.own_row(context, from)
            .or_else(|| self.own_row(0, from))
    }

    /// The time-in-stage table used for `(context, stage)`: the context's own, else the
    /// context-free one; `None` when the stage has none (time in it counts as zero).
    pub fn durations(&self, context: ContextIdx, stage: u16) -> Option<&QuantileTable> {
        self.durations
            .get(&(context, stage))
            .or_else(|| self.durations.get(&(0, stage)))
    }

    /// The levels a factor takes in the model's contexts.
    pub fn factor_levels(&self, factor: &str) -> BTreeSet<String> {
        self.contexts
            .iter()
            .filter_map(|c| c.context.level(factor).map(str::to_string))
            .collect()
    }

    /// Every factor named in the model's contexts.
    pub fn factors(&self) -> BTreeSet<String> {
        self.contexts
            .iter()
            .flat_map(|c| c.context.pairs().map(|(f, _)| f.to_string()))
            .collect()
    }

    /// The index of `key` as the model spells it.
    pub fn context_index(&self, key: &str) -> Option<ContextIdx> {
        let parsed = Context::parse(key);
        self.contexts
            .iter()
            .position(|c| c.key == key || (!c.opaque && Some(&c.context) == parsed.as_ref()))
            .map(|i| i as ContextIdx)
    }

    /// The model context that best describes a deal in `context`.
    ///
    /// A model context qualifies when none of its levels contradicts the deal's (a factor the
    /// deal does not know is no contradiction). The best has the most agreeing factors, then
    /// the fewest factors the deal does not know, then the most weight; `*` always qualifies.
    pub fn resolve(&self, context: &Context) -> ContextIdx {
        let mut best = (0usize, 0usize, 0.0f64, 0usize);
        for (i, entry) in self.contexts.iter().enumerate().skip(1) {
            if entry.opaque {
                continue;
            }
            let (mut agree, mut unknown) = (0, 0);
            let mut contradicts = false;
            for (factor, level) in entry.context.pairs() {
                match context.level(factor) {
                    Some(l) if l == level => agree += 1,
                    Some(_) => {
                        contradicts = true;
                        break;
                    }
                    None => unknown += 1,
                }
            }
            if contradicts {
                continue;
            }
            let better = agree > best.0
                || (agree == best.0 && unknown < best.1)
                || (agree == best.0 && unknown == best.1 && entry.weight > best.2);
            if agree > 0 && better {
                best = (agree, unknown, entry.weight, i);
            }
        }
        best.3 as ContextIdx
    }
}

/// Builds a [`ChainModel`] row by row; [`ChainModelBuilder::build`] validates and normalizes.
#[derive(Debug)]
pub struct ChainModelBuilder {
    model: ChainModel,
    index: HashMap<String, ContextIdx>,
    /// Transition probabilities as given, summed per (context, from, to).
    raw_rows: BTreeMap<(ContextIdx, u16), BTreeMap<u16, f64>>,
}

impl ChainModelBuilder {
    /// The index of context `key`, added when new.
    pub fn context(&mut self, key: &str) -> ContextIdx {
        let parsed = Context::parse(key);
        let canonical = parsed
            .as_ref()
            .map_or_else(|| key.to_string(), Context::to_string);
        if let Some(i) = self.index.get(&canonical) {
            return *i;
        }
        let i = self.model.contexts.len() as ContextIdx;
        self.model.contexts.push(ContextEntry {
            opaque: parsed.is_none(),
            context: parsed.unwrap_or_default(),
            key: if i == 0 {
                "*".to_string()
            } else {
                key.to_string()
            },
            weight: 0.0,
        });
        self.index.insert(canonical, i);
        i
    }

    fn code(&self, stage: &str) -> Result<u16> {
        self.model
            .stage_code(stage)
            .ok_or_else(|| SimulateError::InvalidModel {
                reason: format!(
                    "stage `{stage}` is not one of the model's stages ({})",
                    self.model.stages.join(", ")
                ),
            })
    }

    /// Adds `P(to | from, context) = probability` (summed with earlier entries of the same
    /// cell). Rows are normalized at build time; rows out of absorbing stages are ignored.
    pub fn add_transition(
        &mut self,
        context: &str,
        from: &str,
        to: &str,
        probability: f64,
    ) -> Result<()> {
        if !probability.is_finite() || probability < 0.0 {
            return Err(SimulateError::InvalidModel {
                reason: format!("P({to} | {from}, {context}) = {probability} is not a probability"),
            });
        }
        let (from, to) = (self.code(from)?, self.code(to)?);
        if self.model.is_absorbing(from) {
            return Ok(());
        }
        let c = self.context(context);
        *self
            .raw_rows
            .entry((c, from))
            .or_default()
            .entry(to)
            .or_default() += probability;
        Ok(())
    }

    /// Sets the time-in-stage quantiles of `(context, stage)`.
    pub fn add_durations(&mut self, context: &str, stage: &str, quantiles: &[f64]) -> Result<()> {
        let code = self.code(stage)?;
        let table =
            QuantileTable::new(quantiles).map_err(|reason| SimulateError::InvalidModel {
                reason: format!("time in `{stage}` (context `{context}`): {reason}"),
            })?;
        let c = self.context(context);
        self.model.durations.insert((c, code), table);
        Ok(())
    }

    /// Adds `weight` (observations) to context `key`, the tie-break between matching contexts.
    pub fn add_weight(&mut self, context: &str, weight: f64) {
        let c = self.context(context) as usize;
        if weight.is_finite() {
            self.model.contexts[c].weight += weight;
        }
    }

    /// Marks the model as mined from little history.
    pub fn set_low_confidence(&mut self, low: bool) {
        self.model.low_confidence = low;
    }

    /// Validates (the context-free context has rows; every row has mass) and normalizes rows.
    pub fn build(mut self) -> Result<ChainModel> {
        let n = self.model.stages.len();
        for ((c, from), entries) in std::mem::take(&mut self.raw_rows) {
            let sum: f64 = entries.values().sum();
            if sum <= 0.0 {
                continue;
            }
            let mut row = vec![0.0; n];
            for (to, p) in entries {
                row[to as usize] = p / sum;
            }
            self.model.transitions.insert((c, from), row);
        }
        if !self.model.transitions.keys().any(|(c, _)| *c == 0) {
            return Err(SimulateError::InvalidModel {
                reason: "the context-free context `*` has no transition rows".to_string(),
            });
        }
        Ok(self.model)
    }
}

/// Orders stage names for codes: the open stages of the taxonomy in process order, other stages
/// alphabetically, then `closed_won` and `closed_lost` (advancing first, losing last, so that
/// common random numbers move outcomes monotonically when probabilities shift).
pub fn stage_order<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let names: BTreeSet<&str> = names.into_iter().collect();
    let rank = |s: &str| match OPEN_STAGES.iter().position(|o| *o == s) {
        Some(i) => (0, i),
        None if s == CLOSED_WON => (2, 0),
        None if s == CLOSED_LOST => (2, 1),
        None => (1, 0),
    };
    let mut out: Vec<&str> = names
        .into_iter()
        .chain([CLOSED_WON, CLOSED_LOST])
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    out.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    out.into_iter().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_tables_interpolate_and_invert() {
        let t = QuantileTable::new(&[0.0, 10.0]).unwrap();
        assert_eq!(t.values()[10], 5.0);
        assert!((t.quantile(0.25) - 2.5).abs() < 1e-12);
        assert!((t.cdf(2.5) - 0.25).abs() < 1e-12);
        assert_eq!(t.cdf(-1.0), 0.0);
        assert_eq!(t.cdf(10.0), 1.0);
        assert!((t.mean() - 5.0).abs() < 1e-12);
        // A step at 3 days: half the mass at exactly 3.
        let mut v = vec![3.0; QUANTILES];
        for (i, x) in v.iter_mut().enumerate().skip(10) {
            *x = 3.0 + (i - 10) as f64;
        }
        let t = QuantileTable::new(&v).unwrap();
        assert!((t.cdf(3.0) - 0.5).abs() < 1e-12, "{}", t.cdf(3.0));
        assert!((t.quantile(t.cdf(7.5)) - 7.5).abs() < 1e-12);
        assert!(QuantileTable::new(&[1.0]).is_err());
        assert!(QuantileTable::new(&[2.0, 1.0]).is_err());
        assert!(QuantileTable::new(&[f64::NAN, 1.0]).is_err());
        assert!(QuantileTable::new(&[-1.0, 1.0]).is_err());
    }

    #[test]
    fn contexts_parse_normalize_and_print() {
        let c = Context::parse("Champion=present | blocker:none;lead_source=Web").unwrap();
        assert_eq!(c.to_string(), "blocker=false|champion=true|lead_source=web");
        assert_eq!(Context::parse("*").unwrap(), Context::any());
        assert_eq!(Context::parse("").unwrap().to_string(), "*");
        assert_eq!(
            Context::parse("champion=*|blocker=yes")
                .unwrap()
                .to_string(),
            "blocker=true"
        );
        assert!(Context::parse("bucket_17").is_none());
        let mut c = Context::from_pairs([("champion", "no")]);
        c.set("champion", "YES");
        assert_eq!(c.level("champion"), Some("true"));
        c.remove("champion");
        assert!(c.is_any());
    }

    fn model_with_contexts() -> ChainModel {
        let mut b = ChainModel::builder(&["lead", CLOSED_WON, CLOSED_LOST]).unwrap();
        for (key, weight) in [
            ("*", 100.0),
            ("champion=true", 40.0),
            ("champion=false", 60.0),
            ("champion=true|blocker=false", 30.0),
            ("size=small|champion=true", 10.0),
            ("size=large|champion=true", 20.0),
        ] {
            b.add_transition(key, "lead", CLOSED_WON, 0.5).unwrap();
            b.add_transition(key, "lead", CLOSED_LOST, 0.5).unwrap();
            b.add_weight(key, weight);
        }
        b.build().unwrap()
    }

    #[test]
    fn deals_resolve_to_the_most_specific_agreeing_context() {
        let m = model_with_contexts();
        let key = |c: &Context| m.contexts()[m.resolve(c) as usize].key.clone();
        assert_eq!(key(&Context::any()), "*");
        assert_eq!(
            key(&Context::from_pairs([("champion", "false")])),
            "champion=false"
        );
        assert_eq!(
            key(&Context::from_pairs([
                ("champion", "true"),
                ("blocker", "false")
            ])),
            "champion=true|blocker=false"
        );
        // Size unknown to the deal: the exact one-factor context beats two-factor ones with an
        // unknown factor.
        assert_eq!(
            key(&Context::from_pairs([
                ("champion", "true"),
                ("blocker", "true")
            ])),
            "champion=true"
        );
        assert_eq!(
            key(&Context::from_pairs([
                ("champion", "true"),
                ("size", "small")
            ])),
            "size=small|champion=true"
        );
        // Contradicting every context but `*`.
        assert_eq!(key(&Context::from_pairs([("champion", "maybe")])), "*");
    }

    #[test]
    fn builder_normalizes_rows_and_refuses_bad_input() {
        let mut b = ChainModel::builder(&["lead", "demo", CLOSED_WON, CLOSED_LOST]).unwrap();
        b.add_transition("*", "lead", "demo", 3.0).unwrap();
        b.add_transition("*", "lead", CLOSED_LOST, 1.0).unwrap();
        b.add_transition("*", CLOSED_WON, "lead", 1.0).unwrap();
        assert!(b.add_transition("*", "lead", "nowhere", 1.0).is_err());
        assert!(b.add_transition("*", "lead", "demo", -0.1).is_err());
        assert!(b.add_durations("*", "lead", &[3.0, 1.0]).is_err());
        let m = b.build().unwrap();
        assert_eq!(m.row(0, 0).unwrap(), &[0.0, 0.75, 0.0, 0.25]);
        assert!(m.row(0, 1).is_none(), "demo has no way out");
        assert!(
            m.own_row(0, m.won()).is_none(),
            "absorbing rows are ignored"
        );
        assert!(ChainModel::builder(&["lead", CLOSED_WON]).is_err());
        assert!(ChainModel::builder(&["lead", "lead", CLOSED_WON, CLOSED_LOST]).is_err());
        let empty = ChainModel::builder(&["lead", CLOSED_WON, CLOSED_LOST]).unwrap();
        assert!(empty.build().is_err(), "no context-free rows");
    }

    #[test]
    fn stages_are_ordered_for_monotone_coupling() {
        assert_eq!(
            stage_order(["closed_lost", "demo", "zeta", "lead", "alpha"]),
            ["lead", "demo", "alpha", "zeta", "closed_won", "closed_lost"]
        );
    }
}

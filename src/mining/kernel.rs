//! The mining kernels over one [`WorkspaceLog`]: one parallel pass over the transitions fills
//! flat count arrays indexed by (context, from, to) codes, then the matrix is smoothed level by
//! level, time in stage is grouped by a counting sort and summarized, and the DFG is read off the
//! context-free counts.
//!
//! ```text
//! transitions ──rayon fold──▶ counts[(ctx·S + from)·S + to]   (or a hash map when that is huge)
//!      │                       advance[(from·D + dctx)·B + band]
//!      ├──counting sort──▶ days by (from, dctx) ──sort runs, finest level up──▶ quantiles
//!      └──counting sort──▶ days by (from, to) ──▶ DFG medians
//! ```

use rayon::prelude::*;

use super::config::{MiningConfig, Prior, band_of};
use super::context::{DealContexts, deal_contexts};
use super::encode::NONE16;
use super::error::Result;
use super::log::WorkspaceLog;
use super::order::{MoveKind, StageOrder};
use super::stats::{CHUNK, Grouped, Summary, add_into};

/// Most cells of a dense (context, from, to) count array per parallel chunk; beyond it the
/// counts are aggregated in hash maps.
pub const DENSE_CELLS: u64 = 1 << 18;

const MICROS_PER_DAY: f64 = 86_400_000_000.0;

/// One row of `marts.stage_transition_matrix`.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixRow {
    /// `*`, or `factor=level` pairs joined by `|`.
    pub context_key: String,
    /// Factors in the context (0 for `*`).
    pub context_level: u8,
    pub from_stage: String,
    pub to_stage: String,
    /// Observed transitions from → to in the context.
    pub count: u64,
    /// Smoothed `P(to | from, context)`.
    pub probability: f64,
    /// Observations out of `from` in the context plus the prior's pseudo-observations.
    pub effective_n: f64,
    /// The prior strength `α` used (0 for `*`).
    pub prior_strength: f64,
}

/// The advance rate of one days-in-stage band.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BandRate {
    pub band: String,
    /// Transitions out of the stage after a stay in this band.
    pub exits: u64,
    /// Of those, moves to a later stage of the order.
    pub advanced: u64,
    /// Smoothed `P(advance | left in this band)`; `None` without data here or above.
    pub advance_rate: Option<f64>,
}

/// One row of `marts.stage_durations`.
#[derive(Debug, Clone, PartialEq)]
pub struct DurationRow {
    pub stage: String,
    pub context_key: String,
    pub context_level: u8,
    /// Days in the stage before leaving it.
    pub days: Summary,
    pub advance_by_band: Vec<BandRate>,
}

/// One row of `marts.dfg`.
#[derive(Debug, Clone, PartialEq)]
pub struct DfgRow {
    pub from_stage: String,
    pub to_stage: String,
    pub count: u64,
    pub median_duration_days: Option<f64>,
    /// A move back in the stage order.
    pub is_rework: bool,
    /// Stages of the order jumped over.
    pub skipped_stages: u16,
}

/// Totals of one workspace's mining.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MiningSummary {
    /// History rows read.
    pub rows: u64,
    /// Rows with both stages known (the transitions counted).
    pub transitions: u64,
    /// First rows of deals, per stage entered first.
    pub starts: Vec<(String, u64)>,
    /// Rows whose entered stage is NULL (unmapped raw stages).
    pub unmapped: u64,
    /// Deals (codes), and closed deals (the history-depth check).
    pub deals: u64,
    pub closed_deals: u64,
    /// Fewer closed deals than `min_closed_deals`.
    pub low_confidence: bool,
    /// At least `recommended_closed_deals` closed deals.
    pub recommended_depth: bool,
    /// Backward moves, forward moves that skip, and the stages they skip.
    pub rework_moves: u64,
    pub skip_moves: u64,
    pub skipped_stages: u64,
    /// Contexts with data at the finest level.
    pub contexts: u64,
}

/// What mining one workspace gives.
#[derive(Debug, Clone, Default)]
pub struct WorkspaceMining {
    pub workspace: String,
    pub summary: MiningSummary,
    pub matrix: Vec<MatrixRow>,
    pub durations: Vec<DurationRow>,
    pub dfg: Vec<DfgRow>,
}

/// Counts of one chunk of transitions.
struct Acc {
    dense: Vec<u32>,
    sparse: std::collections::HashMap<u64, u32, foldhash::fast::FixedState>,
    exits: Vec<u32>,
    advanced: Vec<u32>,
    starts: Vec<u64>,
    unmapped: u64,
    valid: u64,
}

impl Acc {
    fn new(dense_cells: usize, adv_cells: usize, stages: usize) -> Self {
        Self {
            dense: vec![0; dense_cells],
            sparse: Default::default(),
            exits: vec![0; adv_cells],
            advanced: vec![0; adv_cells],
            starts: vec![0; stages],
            unmapped: 0,
            valid: 0,
        }
    }

    fn merge(mut self, mut other: Acc) -> Acc {
        self.dense = add_into(self.dense, other.dense);
        if self.sparse.len() < other.sparse.len() {
            std::mem::swap(&mut self.sparse, &mut other.sparse);
        }
        for (k, v) in other.sparse {
            *self.sparse.entry(k).or_default() += v;
        }
        self.exits = add_into(self.exits, other.exits);
        self.advanced = add_into(self.advanced, other.advanced);
        self.starts = add_into(self.starts, other.starts);
        self.unmapped += other.unmapped;
        self.valid += other.valid;
        self
    }
}

/// A count cell: (context, from, to) and its count, with a probability once smoothed.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cell {
    ctx: u64,
    from: u16,
    to: u16,
    count: u64,
    prob: f64,
    eff: f64,
}

/// Mines one workspace: the smoothed transition matrix at every context level, time in stage
/// with advance rates, and the DFG.
pub fn mine_workspace(
    log: &WorkspaceLog,
    config: &MiningConfig,
    order: &StageOrder,
) -> Result<WorkspaceMining> {
    let ctx = deal_contexts(log, config)?;
    let stages = log.stages.len().max(1);
    let s = stages as u64;
    let ranks = order.ranks(&log.stages);
    let moves = |from: u16, to: u16| {
        MoveKind::of(
            ranks.get(from as usize).copied().flatten(),
            ranks.get(to as usize).copied().flatten(),
        )
    };
    let d = ctx.durations.size() as usize;
    let bands = config.stage_days_labels().len();
    let cells = ctx.transitions.size() * s * s;
    let dense = cells <= DENSE_CELLS;
    let t = &log.transitions;
    let rows = t.len();

    let row_keys = RowKeys {
        log,
        config,
        ctx: &ctx,
        stages: s,
    };
    let acc = (0..rows)
        .into_par_iter()
        .with_min_len(CHUNK)
        .fold(
            || {
                Acc::new(
                    if dense { cells as usize } else { 0 },
                    stages * d * bands,
                    stages,
                )
            },
            |mut acc, i| {
                let (from, to) = (t.from[i], t.to[i]);
                if to == NONE16 {
                    acc.unmapped += 1;
                    return acc;
                }
                if from == NONE16 {
                    acc.starts[to as usize] += 1;
                    return acc;
                }
                acc.valid += 1;
                let key = row_keys.cell(i);
                if dense {
                    acc.dense[key as usize] += 1;
                } else {
                    *acc.sparse.entry(key).or_default() += 1;
                }
                let (dctx, band) = row_keys.duration_group(i);
                let a = ((from as usize * d) + dctx) * bands + band;
                acc.exits[a] += 1;
                if moves(from, to).advance {
                    acc.advanced[a] += 1;
                }
                acc
            },
        )
        .reduce(
            || {
                Acc::new(
                    if dense { cells as usize } else { 0 },
                    stages * d * bands,
                    stages,
                )
            },
            Acc::merge,
        );

    let mut full: Vec<(u64, u64)> = if dense {
        acc.dense
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(k, c)| (k as u64, *c as u64))
            .collect()
    } else {
        let mut v: Vec<(u64, u64)> = acc.sparse.iter().map(|(k, c)| (*k, *c as u64)).collect();
        v.par_sort_unstable();
        v
    };
    full.shrink_to_fit();

    // Rows sorted by names, so that the output does not depend on the order of the input.
    let mut matrix = smooth_matrix(log, config, &ctx, &full, s);
    matrix.par_sort_by(|a, b| {
        (a.context_level, &a.context_key, &a.from_stage, &a.to_stage).cmp(&(
            b.context_level,
            &b.context_key,
            &b.from_stage,
            &b.to_stage,
        ))
    });
    let mut durations = durations(
        log,
        config,
        &ctx,
        &row_keys,
        &acc.exits,
        &acc.advanced,
        stages,
    );
    durations.sort_by(|a, b| {
        (a.context_level, &a.context_key, &a.stage).cmp(&(
            b.context_level,
            &b.context_key,
            &b.stage,
        ))
    });
    let mut dfg = dfg(log, &full, s, &moves, &row_keys);
    dfg.sort_by(|a, b| (&a.from_stage, &a.to_stage).cmp(&(&b.from_stage, &b.to_stage)));

    let closed = log.closed_deals();
    let mut summary = MiningSummary {
        rows: rows as u64,
        transitions: acc.valid,
        starts: acc
            .starts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(code, n)| (log.stages.name(code as u16).to_string(), *n))
            .collect(),
        unmapped: acc.unmapped,
        deals: log.deals.count as u64,
        closed_deals: closed,
        low_confidence: closed < config.min_closed_deals,
        recommended_depth: closed >= config.recommended_closed_deals,
        contexts: {
            let mut ctxs: Vec<u64> = full.iter().map(|(k, _)| k / (s * s)).collect();
            ctxs.dedup();
            ctxs.len() as u64
        },
        ..MiningSummary::default()
    };
    for row in &dfg {
        if row.is_rework {
            summary.rework_moves += row.count;
        }
        if row.skipped_stages > 0 {
            summary.skip_moves += row.count;
            summary.skipped_stages += row.count * row.skipped_stages as u64;
        }
    }
    Ok(WorkspaceMining {
        workspace: log.workspace.clone(),
        summary,
        matrix,
        durations,
        dfg,
    })
}

/// Per-row keys: the context of a transition and its groups.
struct RowKeys<'a> {
    log: &'a WorkspaceLog,
    config: &'a MiningConfig,
    ctx: &'a DealContexts,
    stages: u64,
}

impl RowKeys<'_> {
    fn days(&self, i: usize) -> f64 {
        let d = self.log.transitions.days[i];
        if d >= 0.0 { d } else { f64::NAN }
    }

    /// `(ctx · S + from) · S + to` of row `i` (a transition with both stages).
    #[inline]
    fn cell(&self, i: usize) -> u64 {
        let t = &self.log.transitions;
        let slot = self.ctx.slot(t.deal[i]);
        let mut c = self.ctx.transition_base[slot] as u64;
        if let Some(k) = self.ctx.stage_days_at {
            c += band_of(&self.config.stage_days_bands, self.days(i)) as u64
                * self.ctx.transitions.stride(k);
        }
        if let Some(k) = self.ctx.engagement_at {
            let band = match &self.log.activities {
                Some(a) => match a.last_before(t.deal[i], t.at[i]) {
                    Some(last) => band_of(
                        &self.config.engagement_days_bands,
                        (t.at[i] - last) as f64 / MICROS_PER_DAY,
                    ),
                    None => band_of(&self.config.engagement_days_bands, f64::NAN),
                },
                None => band_of(&self.config.engagement_days_bands, f64::NAN),
            };
            c += band as u64 * self.ctx.transitions.stride(k);
        }
        (c * self.stages + t.from[i] as u64) * self.stages + t.to[i] as u64
    }

    /// The duration context of row `i` and its days-in-stage band.
    #[inline]
    fn duration_group(&self, i: usize) -> (usize, usize) {
        let slot = self.ctx.slot(self.log.transitions.deal[i]);
        (
            self.ctx.duration_index[slot] as usize,
            self.config.stage_days_band(self.days(i)) as usize,
        )
    }

    /// Whether row `i` is a transition with a known, non-negative time in stage.
    #[inline]
    fn timed(&self, i: usize) -> bool {
        let t = &self.log.transitions;
        t.from[i] != NONE16 && t.to[i] != NONE16 && self.days(i).is_finite()
    }
}

/// Cells of the full counts marginalized to the contexts `ctx / divisor`, sorted.
fn marginal(full: &[(u64, u64)], s: u64, divisor: u64) -> Vec<Cell> {
    let mut cells: Vec<Cell> = full
        .iter()
        .map(|(key, count)| {
            let ctx = key / (s * s) / divisor;
            let rest = key % (s * s);
            Cell {
                ctx,
                from: (rest / s) as u16,
                to: (rest % s) as u16,
                count: *count,
                prob: 0.0,
                eff: 0.0,
            }
        })
        .collect();
    if divisor > 1 {
        cells.par_sort_unstable_by_key(|c| (c.ctx, c.from, c.to));
        cells.dedup_by(|next, kept| {
            let same = (next.ctx, next.from, next.to) == (kept.ctx, kept.from, kept.to);
            if same {
                kept.count += next.count;
            }
            same
        });
    }
    cells
}

/// The ranges of `cells` (sorted by ctx, from) with one (ctx, from) each.
fn runs(cells: &[Cell], same: impl Fn(&Cell, &Cell) -> bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=cells.len() {
        if i == cells.len() || !same(&cells[start], &cells[i]) {
            if i > start {
                out.push((start, i));
            }
            start = i;
        }
    }
    out
}

/// The smoothed matrix at every level: `*` is the empirical share; a level-`k` context's row
/// out of `from` is `(n_to + α · p_parent) / (n + α)` over the parent's destinations, for every
/// `from` the parent has, so an empty context row equals its parent's with `effective_n = α`.
fn smooth_matrix(
    log: &WorkspaceLog,
    config: &MiningConfig,
    ctx: &DealContexts,
    full: &[(u64, u64)],
    s: u64,
) -> Vec<MatrixRow> {
    let space = &ctx.transitions;
    let depth = space.depth();
    let mut out = Vec::new();
    // Level 0.
    let mut parent = marginal(full, s, space.size());
    for (a, b) in runs(&parent, |x, y| x.from == y.from) {
        let n: u64 = parent[a..b].iter().map(|c| c.count).sum();
        for c in &mut parent[a..b] {
            c.prob = c.count as f64 / n as f64;
            c.eff = n as f64;
        }
    }
    emit(&mut out, log, space, 0, &parent, 0.0);
    for k in 1..=depth {
        let child = marginal(full, s, space.size() / space.size_at(k));
        let radix = space.radix(k - 1);
        let alpha = match config.prior {
            Prior::Fixed { strength } => vec![strength; s as usize],
            Prior::Moments { fallback, min, max } => {
                moments_alpha(&parent, &child, radix, s as usize, fallback, min, max)
            }
        };
        let mut cells = Vec::with_capacity(child.len() * 2);
        for (a, b) in runs(&child, |x, y| x.ctx == y.ctx) {
            let c = child[a].ctx;
            let p = c / radix;
            let lo = parent.partition_point(|x| x.ctx < p);
            let hi = parent.partition_point(|x| x.ctx <= p);
            let mine = &child[a..b];
            for (pa, pb) in runs(&parent[lo..hi], |x, y| x.from == y.from) {
                let prow = &parent[lo + pa..lo + pb];
                let f = prow[0].from;
                let oa = mine.partition_point(|x| x.from < f);
                let ob = mine.partition_point(|x| x.from <= f);
                let own = &mine[oa..ob];
                let n: u64 = own.iter().map(|x| x.count).sum();
                let al = alpha[f as usize];
                let mut next = 0;
                for pc in prow {
                    // Both rows are sorted by `to`, and the child's are a subset of the parent's.
                    let count = match own.get(next) {
                        Some(x) if x.to == pc.to => {
                            next += 1;
                            x.count
                        }
                        _ => 0,
                    };
                    cells.push(Cell {
                        ctx: c,
                        from: f,
                        to: pc.to,
                        count,
                        prob: (count as f64 + al * pc.prob) / (n as f64 + al),
                        eff: n as f64 + al,
                    });
                }
            }
        }
        // One α per level for the output column: the from-stage's.
        emit_with_alpha(&mut out, log, space, k, &cells, &alpha);
        parent = cells;
    }
    out
}

fn emit(
    out: &mut Vec<MatrixRow>,
    log: &WorkspaceLog,
    space: &super::context::ContextSpace,
    k: usize,
    cells: &[Cell],
    alpha: f64,
) {
    let alpha = vec![alpha; log.stages.len().max(1)];
    emit_with_alpha(out, log, space, k, cells, &alpha);
}

fn emit_with_alpha(
    out: &mut Vec<MatrixRow>,
    log: &WorkspaceLog,
    space: &super::context::ContextSpace,
    k: usize,
    cells: &[Cell],
    alpha: &[f64],
) {
    let mut key = String::new();
    let mut key_ctx = u64::MAX;
    for c in cells {
        if c.ctx != key_ctx {
            key = space.key(k, c.ctx);
            key_ctx = c.ctx;
        }
        out.push(MatrixRow {
            context_key: key.clone(),
            context_level: k as u8,
            from_stage: log.stages.name(c.from).to_string(),
            to_stage: log.stages.name(c.to).to_string(),
            count: c.count,
            probability: c.prob,
            effective_n: c.eff,
            prior_strength: if k == 0 { 0.0 } else { alpha[c.from as usize] },
        });
    }
}

/// Method-of-moments prior strength per from-stage for one level.
///
/// For a child context with `n ≥ 2` transitions out of `from`, observed shares `p̂` and the
/// parent's shares `q`: `E[Σ_to (p̂ − q)²] = G · (1 + (n − 1)ρ) / n` with `G = 1 − Σ q²` and
/// `ρ = 1 / (α + 1)` under a Dirichlet-multinomial. Pooling the children,
/// `ρ̂ = Σ (n·S/G − 1) / Σ (n − 1)` and `α = 1/ρ̂ − 1`, clamped to `[min, max]` (`max` when
/// the children spread no more than sampling noise).
fn moments_alpha(
    parent: &[Cell],
    child: &[Cell],
    radix: u64,
    stages: usize,
    fallback: f64,
    min: f64,
    max: f64,
) -> Vec<f64> {
    let mut num = vec![0.0f64; stages];
    let mut den = vec![0.0f64; stages];
    let mut used = vec![0u32; stages];
    for (a, b) in runs(child, |x, y| x.ctx == y.ctx && x.from == y.from) {
        let mine = &child[a..b];
        let (c, f) = (mine[0].ctx, mine[0].from);
        let n: u64 = mine.iter().map(|x| x.count).sum();
        if n < 2 {
            continue;
        }
        let p = c / radix;
        let lo = parent.partition_point(|x| (x.ctx, x.from) < (p, f));
        let hi = parent.partition_point(|x| (x.ctx, x.from) <= (p, f));
        let prow = &parent[lo..hi];
        let pn: u64 = prow.iter().map(|x| x.count).sum();
        if pn == 0 {
            continue;
        }
        let mut g = 1.0;
        let mut sq = 0.0;
        let mut next = 0;
        for pc in prow {
            let q = pc.count as f64 / pn as f64;
            g -= q * q;
            let own = match mine.get(next) {
                Some(x) if x.to == pc.to => {
                    next += 1;
                    x.count
                }
                _ => 0,
            };
            let d = own as f64 / n as f64 - q;
            sq += d * d;
        }
        if g <= 1e-12 {
            continue;
        }
        num[f as usize] += n as f64 * sq / g - 1.0;
        den[f as usize] += n as f64 - 1.0;
        used[f as usize] += 1;
    }
    (0..stages)
        .map(|f| {
            if used[f] < 2 || den[f] <= 0.0 {
                return fallback;
            }
            let rho = num[f] / den[f];
            if rho <= 0.0 {
                max
            } else {
                (1.0 / rho - 1.0).clamp(min, max)
            }
        })
        .collect()
}

/// Time in stage per (stage, context) at every level of the per-deal factors, with advance
/// rates by days-in-stage band.
fn durations(
    log: &WorkspaceLog,
    config: &MiningConfig,
    ctx: &DealContexts,
    keys: &RowKeys<'_>,
    exits: &[u32],
    advanced: &[u32],
    stages: usize,
) -> Vec<DurationRow> {
    let space = &ctx.durations;
    let d = space.size() as usize;
    let depth = space.depth();
    let labels = config.stage_days_labels();
    let bands = labels.len();
    let strength = config.prior.base_strength();
    let t = &log.transitions;

    // Advance rates, coarsest level first (each smoothed toward its parent).
    // rates[k][(stage · size_at(k) + c) · bands + band]
    let mut rates: Vec<Vec<Option<f64>>> = Vec::with_capacity(depth + 1);
    let mut sums: Vec<(Vec<u64>, Vec<u64>)> = Vec::with_capacity(depth + 1);
    for k in 0..=depth {
        let n_ctx = space.size_at(k) as usize;
        let span = d / n_ctx;
        let mut ex = vec![0u64; stages * n_ctx * bands];
        let mut ad = vec![0u64; stages * n_ctx * bands];
        for st in 0..stages {
            for full in 0..d {
                let c = full / span;
                for b in 0..bands {
                    let src = (st * d + full) * bands + b;
                    let dst = (st * n_ctx + c) * bands + b;
                    ex[dst] += exits[src] as u64;
                    ad[dst] += advanced[src] as u64;
                }
            }
        }
        let r: Vec<Option<f64>> = (0..ex.len())
            .map(|i| {
                let (n, a) = (ex[i] as f64, ad[i] as f64);
                let parent = (k > 0)
                    .then(|| {
                        let b = i % bands;
                        let sc = i / bands;
                        let (st, c) = (sc / n_ctx, sc % n_ctx);
                        let radix = space.radix(k - 1) as usize;
                        let pn = space.size_at(k - 1) as usize;
                        rates[k - 1][(st * pn + c / radix) * bands + b]
                    })
                    .flatten();
                match parent {
                    Some(p) => Some((a + strength * p) / (n + strength)),
                    None if n > 0.0 => Some(a / n),
                    None => None,
                }
            })
            .collect();
        rates.push(r);
        sums.push((ex, ad));
    }

    // Days grouped by (stage, finest context), then sorted in spans, finest level first.
    let mut grouped = Grouped::new(stages * d, t.len(), |i| {
        keys.timed(i).then(|| {
            let (dctx, _) = keys.duration_group(i);
            ((t.from[i] as usize * d + dctx) as u32, keys.days(i))
        })
    });
    let mut out = Vec::new();
    for k in (0..=depth).rev() {
        let n_ctx = space.size_at(k) as usize;
        let span = d / n_ctx;
        grouped.sort_spans(span);
        let level_rows: Vec<DurationRow> = (0..stages * n_ctx)
            .into_par_iter()
            .filter_map(|sc| {
                let (st, c) = (sc / n_ctx, sc % n_ctx);
                let from = st * d + c * span;
                let values = grouped.range(from, from + span);
                if values.is_empty() {
                    return None;
                }
                let (ex, ad) = &sums[k];
                let advance_by_band = (0..bands)
                    .map(|b| {
                        let i = sc * bands + b;
                        BandRate {
                            band: labels[b].clone(),
                            exits: ex[i],
                            advanced: ad[i],
                            advance_rate: rates[k][i],
                        }
                    })
                    .collect();
                Some(DurationRow {
                    stage: log.stages.name(st as u16).to_string(),
                    context_key: space.key(k, c as u64),
                    context_level: k as u8,
                    days: Summary::of_sorted(values),
                    advance_by_band,
                })
            })
            .collect();
        out.push(level_rows);
    }
    out.reverse();
    out.into_iter().flatten().collect()
}

/// The directly-follows graph: context-free counts, median days, rework and skips. Days are
/// grouped by the observed (from, to) pairs only, so any number of activities fits.
fn dfg(
    log: &WorkspaceLog,
    full: &[(u64, u64)],
    s: u64,
    moves: &(dyn Fn(u16, u16) -> MoveKind + Sync),
    keys: &RowKeys<'_>,
) -> Vec<DfgRow> {
    let t = &log.transitions;
    // Observed pairs `from · S + to`, sorted, with their counts over all contexts.
    let mut pairs: Vec<(u64, u64)> = full.iter().map(|(k, c)| (k % (s * s), *c)).collect();
    pairs.par_sort_unstable();
    pairs.dedup_by(|next, kept| {
        let same = next.0 == kept.0;
        if same {
            kept.1 += next.1;
        }
        same
    });
    let slot = |pair: u64| pairs.binary_search_by_key(&pair, |p| p.0).ok();
    let mut grouped = Grouped::new(pairs.len(), t.len(), |i| {
        if !keys.timed(i) {
            return None;
        }
        slot(t.from[i] as u64 * s + t.to[i] as u64).map(|g| (g as u32, keys.days(i)))
    });
    grouped.sort_spans(1);
    pairs
        .iter()
        .enumerate()
        .map(|(g, (pair, count))| {
            let (f, to) = ((pair / s) as u16, (pair % s) as u16);
            let days = grouped.group(g);
            let kind = moves(f, to);
            DfgRow {
                from_stage: log.stages.name(f).to_string(),
                to_stage: log.stages.name(to).to_string(),
                count: *count,
                median_duration_days: (!days.is_empty())
                    .then(|| super::stats::quantile_sorted(days, 0.5)),
                is_rework: kind.rework,
                skipped_stages: kind.skipped,
            }
        })
        .collect()
}

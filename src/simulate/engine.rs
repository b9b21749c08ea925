//! The batched Monte Carlo engine: deals × runs advanced step by step in structure-of-arrays
//! lanes, batches in parallel with rayon.
//!
//! ```text
//! ChainModel ──compile──▶ Tables: per row (context · stages + stage)
//!                           ├─ K slots: cumulative 24-bit thresholds + next rows / outcomes
//!                           └─ 21 time-in-stage quantiles
//! deals ──chunks──▶ batch (whole deals, ≤ batch_lanes lanes) ──rayon──▶ kernel ──▶ per-deal
//!                                                                          (run order) summary
//! ```
//!
//! A missing context row falls back to the context-free one when the chain is compiled; a
//! stage with no row at all leads to a virtual absorbing state *open* (neither won nor lost), as
//! does reaching `max_steps`. The step loop allocates nothing, hashes nothing and never looks a
//! context up: the next row is in the table ([`kernel`](super::kernel)).
//!
//! A scenario that shortens a stage ([`SimDeal::accelerate`]) gets its own copy of its context's
//! rows for the call, with that stage's quantiles `days` lower (not below zero).
//!
//! Every draw is keyed by (seed, deal, run, step) ([`rng`](super::rng)), and a deal's runs are
//! always in one batch and summarized in run order, so results are bit-identical for any thread
//! count, batch size and instruction set.

use std::borrow::Cow;
use std::collections::HashMap;

use rayon::prelude::*;

use super::error::{Result, SimulateError};
use super::kernel::{self, ABSORBED, DealStart, Lanes, Level, Tables};
use super::model::{ChainModel, ContextIdx, QUANTILES};
use super::rng;
use super::stats::StatsScratch;

/// Default runs per deal.
pub const DEFAULT_RUNS: u32 = 10_000;
/// Default lanes (deal × run pairs) per batch: about 1.5 MB of lane state and results.
pub const DEFAULT_BATCH_LANES: usize = 1 << 16;
/// Default cap on steps per run; runs still open then end as [`Outcome::Open`].
pub const DEFAULT_MAX_STEPS: u32 = 1_000;

/// Settings of a simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Runs per deal.
    pub runs: u32,
    /// The seed every random stream derives from.
    pub seed: u64,
    /// Target lanes per batch (a batch holds whole deals, at least one).
    pub batch_lanes: usize,
    /// Steps after which a run still open stops (and counts as open).
    pub max_steps: u32,
    /// Use the CPU's vector instructions (AVX2, AVX-512) when it has them; the results are the
    /// same either way.
    pub simd: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            runs: DEFAULT_RUNS,
            seed: 0,
            batch_lanes: DEFAULT_BATCH_LANES,
            max_steps: DEFAULT_MAX_STEPS,
            simd: true,
        }
    }
}

impl SimConfig {
    fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(SimulateError::InvalidConfig { reason });
        if self.runs == 0 || self.runs > 100_000_000 {
            return bad(format!("runs must be 1 to 100,000,000, not {}", self.runs));
        }
        if self.batch_lanes == 0 || self.batch_lanes > 1 << 30 {
            return bad(format!(
                "batch_lanes must be 1 to 2^30, not {}",
                self.batch_lanes
            ));
        }
        if self.max_steps == 0 || self.max_steps >= u32::from(u16::MAX) {
            return bad(format!(
                "max_steps must be 1 to {}, not {}",
                u16::MAX - 1,
                self.max_steps
            ));
        }
        Ok(())
    }
}

/// One deal as the engine sees it: where it stands and which random streams it uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimDeal {
    /// The deal's stream key: [`rng::hash_id`] of its id. A scenario keeps the key of its
    /// baseline, so both see the same numbers.
    pub key: u64,
    /// The model context its transitions and durations come from.
    pub context: ContextIdx,
    /// Its current (open) stage code.
    pub stage: u16,
    /// Days already spent in the current stage: the first time-in-stage draw is conditional on
    /// exceeding it, and counts only the remaining days.
    pub age_days: f32,
    /// `(stage, days)`: stays in `stage` are drawn from its quantiles lowered by `days` (not
    /// below zero).
    pub accelerate: Option<(u16, f32)>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Outcome {
    Lost = 0,
    Won = 1,
    /// Still open after `max_steps`, or stuck in a stage without a way out.
    Open = 2,
}

/// The runs of one deal, in run order: days to the end (from now), outcome, steps taken.
#[derive(Debug, Clone, Copy)]
pub struct RunOutcomes<'a> {
    pub days: &'a [f32],
    /// [`Outcome`] as `u8`.
    pub outcome: &'a [u8],
    pub steps: &'a [u16],
}

impl RunOutcomes<'_> {
    pub fn len(&self) -> usize {
        self.days.len()
    }

    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
    }

    pub fn to_owned(&self) -> OwnedRuns {
        OwnedRuns {
            days: self.days.to_vec(),
            outcome: self.outcome.to_vec(),
            steps: self.steps.to_vec(),
        }
    }
}

/// [`RunOutcomes`] held by value.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedRuns {
    pub days: Vec<f32>,
    pub outcome: Vec<u8>,
    pub steps: Vec<u16>,
}

impl OwnedRuns {
    pub fn view(&self) -> RunOutcomes<'_> {
        RunOutcomes {
            days: &self.days,
            outcome: &self.outcome,
            steps: &self.steps,
        }
    }
}

/// Reusable buffers of one rayon worker.
#[derive(Debug, Default)]
struct Scratch {
    lanes: Lanes,
    starts: Vec<DealStart>,
    stats: StatsScratch,
}

/// A chain compiled into flat tables, ready to simulate many deals.
#[derive(Debug, Clone)]
pub struct Simulator {
    tables: Tables,
    contexts: usize,
    /// Per stage code: an open stage (not closed_won / closed_lost).
    open: Vec<bool>,
}

/// Slots per row for rows of at most `n` stages with mass: 4, 8 or 16 (fixed-width kernels),
/// else exactly `n`.
fn slots_for(n: usize) -> usize {
    match n {
        0..=4 => 4,
        5..=8 => 8,
        9..=16 => 16,
        n => n,
    }
}

impl Simulator {
    /// Compiles `model`: every (context, stage) row resolved with its fallbacks.
    pub fn new(model: &ChainModel) -> Self {
        let stages = model.stages().len();
        let contexts = model.contexts().len();
        let target_of = |context: usize, to: usize| {
            let code = to as u16;
            if code == model.won() {
                ABSORBED | Outcome::Won as u32
            } else if code == model.lost() {
                ABSORBED | Outcome::Lost as u32
            } else {
                (context * stages + to) as u32
            }
        };
        // Per row: (target, cumulative probability) of the stages with mass, in code order.
        let mut rows: Vec<Vec<(u32, f64)>> = Vec::with_capacity(contexts * stages);
        let mut quant = vec![[0.0f32; QUANTILES]; contexts * stages];
        for c in 0..contexts {
            for s in 0..stages {
                let mut entries = Vec::new();
                if let Some(p) = model
                    .row(c as ContextIdx, s as u16)
                    .filter(|_| !model.is_absorbing(s as u16))
                {
                    let mut acc = 0.0;
                    for (to, &v) in p.iter().enumerate() {
                        if v > 0.0 {
                            acc += v;
                            entries.push((target_of(c, to), acc));
                        }
                    }
                }
                if entries.is_empty() {
                    entries.push((ABSORBED | Outcome::Open as u32, 1.0));
                }
                rows.push(entries);
                if let Some(t) = model.durations(c as ContextIdx, s as u16) {
                    for (q, v) in quant[c * stages + s].iter_mut().zip(t.values()) {
                        *q = *v as f32;
                    }
                }
            }
        }
        let k = slots_for(rows.iter().map(Vec::len).max().unwrap_or(1));
        let mut thr = Vec::with_capacity(rows.len() * k);
        let mut target = Vec::with_capacity(rows.len() * k);
        for entries in &rows {
            let last = entries.len() - 1;
            for j in 0..k {
                let (t, cum) = entries[j.min(last)];
                // ceil(cdf · 2^24): a draw of 24 bits `b` takes the first slot with b < thr.
                let full = 1u32 << 24;
                thr.push(if j >= last {
                    full
                } else {
                    ((cum * f64::from(full)).ceil() as u32).min(full)
                });
                target.push(t);
            }
        }
        let open = (0..stages as u16).map(|c| !model.is_absorbing(c)).collect();
        Self {
            tables: Tables {
                stages,
                k,
                thr,
                target,
                quant,
            },
            contexts,
            open,
        }
    }

    /// Checks that `deal` can be simulated by this chain.
    pub fn check_deal(&self, deal: &SimDeal) -> Result<()> {
        let bad = |reason: String| Err(SimulateError::InvalidConfig { reason });
        if !self.open.get(deal.stage as usize).copied().unwrap_or(false) {
            return bad(format!("stage code {} is not an open stage", deal.stage));
        }
        if deal.context as usize >= self.contexts {
            return bad(format!("context {} is not in the model", deal.context));
        }
        if !(deal.age_days.is_finite() && deal.age_days >= 0.0) {
            return bad(format!("days in stage {} is not a duration", deal.age_days));
        }
        if let Some((s, d)) = deal.accelerate
            && (s as usize >= self.tables.stages || !(d.is_finite() && d >= 0.0))
        {
            return bad(format!("acceleration of stage code {s} by {d} days"));
        }
        Ok(())
    }

    /// The tables for `deals`: the compiled ones, or a copy with one extra block of rows per
    /// distinct acceleration (its context's rows, the stage's quantiles lowered), and the block
    /// each deal runs in.
    fn tables_for(&self, deals: &[SimDeal]) -> (Cow<'_, Tables>, Vec<u32>) {
        let mut blocks: Vec<u32> = deals.iter().map(|d| d.context).collect();
        if deals.iter().all(|d| d.accelerate.is_none()) {
            return (Cow::Borrowed(&self.tables), blocks);
        }
        let mut t = self.tables.clone();
        let n = t.stages;
        let mut made: HashMap<(u32, u16, u32), u32> = HashMap::new();
        for (deal, block) in deals.iter().zip(blocks.iter_mut()) {
            let Some((stage, days)) = deal.accelerate else {
                continue;
            };
            let spec = (deal.context, stage, days.to_bits());
            *block = *made.entry(spec).or_insert_with(|| {
                let new = (t.rows() / n) as u32;
                let from = deal.context as usize * n;
                for r in from..from + n {
                    let mut q = t.quant[r];
                    if r - from == stage as usize {
                        for v in &mut q {
                            *v = (*v - days).max(0.0);
                        }
                    }
                    t.quant.push(q);
                    for j in 0..t.k {
                        let target = t.target[r * t.k + j];
                        t.thr.push(t.thr[r * t.k + j]);
                        t.target.push(if target < ABSORBED {
                            target - from as u32 + new * n as u32
                        } else {
                            target
                        });
                    }
                }
                new
            });
        }
        (Cow::Owned(t), blocks)
    }

    /// Simulates every deal `config.runs` times and returns, in deal order, what `per_deal`
    /// makes of each deal's runs. Batches run on the current rayon pool.
    pub fn simulate<T, F>(
        &self,
        deals: &[SimDeal],
        config: &SimConfig,
        per_deal: F,
    ) -> Result<Vec<T>>
    where
        T: Send,
        F: Fn(usize, &SimDeal, RunOutcomes<'_>, &mut StatsScratch) -> T + Sync,
    {
        config.validate()?;
        for d in deals {
            self.check_deal(d)?;
        }
        let (tables, blocks) = self.tables_for(deals);
        let tables = tables.as_ref();
        let level = if config.simd {
            kernel::best_level()
        } else {
            Level::Portable
        };
        let runs = config.runs as usize;
        let per_batch = (config.batch_lanes / runs).max(1);
        let batches: Vec<Vec<T>> = deals
            .par_chunks(per_batch)
            .enumerate()
            .map_init(Scratch::default, |scratch, (b, chunk)| {
                let first = b * per_batch;
                scratch.starts.clear();
                scratch
                    .starts
                    .extend(chunk.iter().enumerate().map(|(i, deal)| DealStart {
                        key: rng::deal_key(config.seed, deal.key),
                        row: blocks[first + i] * tables.stages as u32 + u32::from(deal.stage),
                        age: deal.age_days,
                    }));
                kernel::run_batch(
                    tables,
                    &scratch.starts,
                    runs,
                    config.max_steps,
                    level,
                    &mut scratch.lanes,
                );
                let lanes = &scratch.lanes;
                chunk
                    .iter()
                    .enumerate()
                    .map(|(i, deal)| {
                        let range = i * runs..(i + 1) * runs;
                        let outcomes = RunOutcomes {
                            days: &lanes.out_days[range.clone()],
                            outcome: &lanes.out_kind[range.clone()],
                            steps: &lanes.out_steps[range],
                        };
                        per_deal(first + i, deal, outcomes, &mut scratch.stats)
                    })
                    .collect()
            })
            .collect();
        Ok(batches.into_iter().flatten().collect())
    }

    /// The runs of one deal, by value (for scenarios and tests).
    pub fn runs(&self, deal: &SimDeal, config: &SimConfig) -> Result<OwnedRuns> {
        let mut out = self.simulate(std::slice::from_ref(deal), config, |_, _, r, _| {
            r.to_owned()
        })?;
        Ok(out.pop().expect("one deal in, one result out"))
    }

    /// Slots per transition row (the widest row's stages with mass, rounded up to 4, 8 or 16).
    pub fn row_slots(&self) -> usize {
        self.tables.k
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::model::{CLOSED_LOST, CLOSED_WON};

    /// lead → demo (0.6) | lost (0.4); demo → won (0.5) | lead (0.1) | lost (0.4).
    fn chain() -> ChainModel {
        let stages = ["lead", "demo", CLOSED_WON, CLOSED_LOST];
        ChainModel::from_arrays(
            &stages,
            &[
                vec![0.0, 0.6, 0.0, 0.4],
                vec![0.1, 0.0, 0.5, 0.4],
                vec![0.0; 4],
                vec![0.0; 4],
            ],
            &[vec![0.0, 10.0], vec![5.0, 5.0], vec![], vec![]],
        )
        .unwrap()
    }

    fn deal(stage: u16, age: f32) -> SimDeal {
        SimDeal {
            key: rng::hash_id("d"),
            context: 0,
            stage,
            age_days: age,
            accelerate: None,
        }
    }

    #[test]
    fn every_run_ends_won_or_lost_with_positive_time() {
        let sim = Simulator::new(&chain());
        let cfg = SimConfig {
            runs: 2_000,
            ..SimConfig::default()
        };
        let r = sim.runs(&deal(0, 0.0), &cfg).unwrap();
        assert_eq!(r.days.len(), 2_000);
        assert!(r.outcome.iter().all(|o| *o <= 1), "no open runs");
        assert!(r.days.iter().all(|d| (0.0..10_000.0).contains(d)));
        // Lost straight from lead: one step and under 10 days.
        let lost_first = (0..2_000)
            .filter(|&i| r.steps[i] == 1)
            .inspect(|&i| assert_eq!(r.outcome[i], Outcome::Lost as u8))
            .count();
        assert!(lost_first > 600 && lost_first < 1_000, "{lost_first}");
        // Every win passes demo: at least 2 steps and 5 days.
        for i in 0..2_000 {
            if r.outcome[i] == Outcome::Won as u8 {
                assert!(
                    r.steps[i] >= 2 && r.days[i] >= 5.0,
                    "{} {}",
                    r.steps[i],
                    r.days[i]
                );
            }
        }
    }

    #[test]
    fn first_stay_is_conditional_on_days_already_spent() {
        // Time in lead is uniform on [0, 10]: after 8 days the rest is uniform on [0, 2].
        let sim = Simulator::new(&chain());
        let cfg = SimConfig {
            runs: 5_000,
            ..SimConfig::default()
        };
        let r = sim.runs(&deal(0, 8.0), &cfg).unwrap();
        let firsts: Vec<f32> = (0..5_000)
            .filter(|&i| r.steps[i] == 1)
            .map(|i| r.days[i])
            .collect();
        assert!(firsts.iter().all(|d| (0.0..=2.0).contains(d)));
        let mean = firsts.iter().sum::<f32>() / firsts.len() as f32;
        assert!((mean - 1.0).abs() < 0.1, "{mean}");
        // Past the longest stay observed: the rest is within the last segment's width (0.5).
        let r = sim.runs(&deal(0, 50.0), &cfg).unwrap();
        assert!(
            (0..5_000)
                .filter(|&i| r.steps[i] == 1)
                .all(|i| r.days[i] <= 0.5)
        );
    }

    #[test]
    fn acceleration_shortens_every_stay_in_the_stage() {
        let sim = Simulator::new(&chain());
        let cfg = SimConfig {
            runs: 3_000,
            ..SimConfig::default()
        };
        let base = sim.runs(&deal(1, 0.0), &cfg).unwrap();
        let fast = sim
            .runs(
                &SimDeal {
                    accelerate: Some((1, 5.0)),
                    ..deal(1, 0.0)
                },
                &cfg,
            )
            .unwrap();
        // Same counters: same outcomes, 5 days less per stay in demo.
        assert_eq!(base.outcome, fast.outcome);
        for i in 0..3_000 {
            let demo_stays = (base.steps[i] as f32 / 2.0).ceil();
            let saved = base.days[i] - fast.days[i];
            assert!(
                (saved - 5.0 * demo_stays).abs() < 1e-3,
                "{saved} {demo_stays}"
            );
        }
    }

    #[test]
    fn dead_ends_and_the_step_cap_end_runs_open() {
        let stages = ["lead", "limbo", CLOSED_WON, CLOSED_LOST];
        let m = ChainModel::from_arrays(
            &stages,
            &[
                vec![0.0, 1.0, 0.0, 0.0],
                vec![0.0; 4],
                vec![0.0; 4],
                vec![0.0; 4],
            ],
            &[vec![1.0, 1.0], vec![], vec![], vec![]],
        )
        .unwrap();
        let sim = Simulator::new(&m);
        let r = sim
            .runs(
                &deal(0, 0.0),
                &SimConfig {
                    runs: 10,
                    ..SimConfig::default()
                },
            )
            .unwrap();
        assert!(r.outcome.iter().all(|o| *o == Outcome::Open as u8));
        assert!(r.steps.iter().all(|s| *s == 2));
        // A loop with no exit: lead → lead forever, capped.
        let m = ChainModel::from_arrays(
            &stages,
            &[
                vec![1.0, 0.0, 0.0, 0.0],
                vec![0.0; 4],
                vec![0.0; 4],
                vec![0.0; 4],
            ],
            &[vec![1.0, 1.0], vec![], vec![], vec![]],
        )
        .unwrap();
        let cfg = SimConfig {
            runs: 4,
            max_steps: 50,
            ..SimConfig::default()
        };
        let r = Simulator::new(&m).runs(&deal(0, 0.0), &cfg).unwrap();
        assert!(r.outcome.iter().all(|o| *o == Outcome::Open as u8));
        assert!(
            r.days.iter().all(|d| (*d - 50.0).abs() < 1e-3),
            "{:?}",
            r.days
        );
    }

    #[test]
    fn refuses_deals_and_settings_it_cannot_run() {
        let sim = Simulator::new(&chain());
        let cfg = SimConfig::default();
        for bad in [
            deal(2, 0.0),
            deal(9, 0.0),
            deal(0, -1.0),
            deal(0, f32::NAN),
            SimDeal {
                context: 3,
                ..deal(0, 0.0)
            },
        ] {
            assert!(sim.runs(&bad, &cfg).is_err(), "{bad:?}");
        }
        for bad in [
            SimConfig {
                runs: 0,
                ..cfg.clone()
            },
            SimConfig {
                batch_lanes: 0,
                ..cfg.clone()
            },
            SimConfig {
                max_steps: 0,
                ..cfg.clone()
            },
        ] {
            assert!(sim.runs(&deal(0, 0.0), &bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn wide_rows_use_the_general_row_search() {
        // lead fans out to 20 stages (0.04 each) or is lost (0.2): 21 slots, beyond the
        // fixed-width kernels. Stage i then wins with probability i / 20.
        let mut stages: Vec<String> = vec!["lead".into()];
        stages.extend((0..20).map(|i| format!("s{i:02}")));
        stages.push(CLOSED_WON.into());
        stages.push(CLOSED_LOST.into());
        let n = stages.len();
        let mut matrix = vec![vec![0.0; n]; n];
        for i in 0..20 {
            matrix[0][1 + i] = 0.04;
            matrix[1 + i][n - 2] = i as f64 / 20.0;
            matrix[1 + i][n - 1] = 1.0 - i as f64 / 20.0;
        }
        matrix[0][n - 1] = 0.2;
        let durations: Vec<Vec<f64>> = (0..n).map(|_| vec![1.0, 1.0]).collect();
        let m = ChainModel::from_arrays(&stages, &matrix, &durations).unwrap();
        let sim = Simulator::new(&m);
        assert_eq!(sim.row_slots(), 21);
        let runs = 20_000;
        let r = sim
            .runs(
                &deal(0, 0.0),
                &SimConfig {
                    runs,
                    ..SimConfig::default()
                },
            )
            .unwrap();
        let wins = r.outcome.iter().filter(|o| **o == 1).count() as f64 / f64::from(runs);
        let exact: f64 = (0..20).map(|i| 0.04 * i as f64 / 20.0).sum();
        let sigma = (exact * (1.0 - exact) / f64::from(runs)).sqrt();
        assert!((wins - exact).abs() < 4.0 * sigma, "{wins} vs {exact}");
        assert!((0..runs as usize).all(|i| r.outcome[i] != 1 || r.steps[i] == 2));
    }

    #[test]
    fn vector_and_portable_kernels_give_identical_runs() {
        let m = crate::simulate::bench::synthetic_chain();
        let sim = Simulator::new(&m);
        let deals: Vec<SimDeal> = (0..6u16)
            .map(|i| SimDeal {
                key: rng::hash_id(&format!("d{i}")),
                context: 0,
                stage: i,
                age_days: f32::from(i) * 3.0,
                accelerate: (i == 2).then_some((3, 4.0)),
            })
            .collect();
        let run = |simd: bool| {
            let cfg = SimConfig {
                runs: 3_000,
                simd,
                ..SimConfig::default()
            };
            sim.simulate(&deals, &cfg, |_, _, r, _| r.to_owned())
                .unwrap()
        };
        assert_eq!(run(true), run(false));
    }
}

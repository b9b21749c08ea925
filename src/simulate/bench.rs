//! The simulation benchmark's workload: a synthetic ten-state chain with skips, backward moves
//! and losses from every stage, open deals spread over its stages, and the measurements
//! (wall time, deal-steps, peak RSS). `revlake simulate --bench` runs it against the numpy
//! implementation of the same chain in `benches/simulate_numpy.py`.

use std::time::Instant;

use chrono::NaiveDate;

use super::deals::OpenDeal;
use super::engine::{Outcome, SimConfig, SimDeal, Simulator};
use super::error::Result;
use super::model::{CLOSED_LOST, CLOSED_WON, ChainModel, QUANTILES};
use super::rng;
use super::stats::{Calendar, DealStats};

/// The stages of the synthetic chain, in code order.
pub const STAGES: [&str; 10] = [
    "lead",
    "qualification",
    "discovery",
    "demo",
    "validation",
    "proposal",
    "negotiation",
    "legal",
    CLOSED_WON,
    CLOSED_LOST,
];

/// Standard normal quantiles at 0.5 %, 5 %, 10 %, …, 95 %, 99.5 %: the shape of the log-normal
/// time-in-stage tables.
const Z: [f64; QUANTILES] = [
    -2.5758, -1.6449, -1.2816, -1.0364, -0.8416, -0.6745, -0.5244, -0.3853, -0.2533, -0.1257, 0.0,
    0.1257, 0.2533, 0.3853, 0.5244, 0.6745, 0.8416, 1.0364, 1.2816, 1.6449, 2.5758,
];

/// A row of the synthetic chain: from, (to, probability) pairs, median days in the stage.
type SyntheticRow = (&'static str, &'static [(&'static str, f64)], f64);

/// The synthetic chain: 8 open stages, closed_won and closed_lost.
pub fn synthetic_chain() -> ChainModel {
    let rows: [SyntheticRow; 8] = [
        (
            "lead",
            &[
                ("qualification", 0.55),
                ("discovery", 0.05),
                (CLOSED_LOST, 0.40),
            ],
            7.0,
        ),
        (
            "qualification",
            &[
                ("lead", 0.05),
                ("discovery", 0.60),
                ("demo", 0.05),
                (CLOSED_LOST, 0.30),
            ],
            10.0,
        ),
        (
            "discovery",
            &[
                ("qualification", 0.08),
                ("demo", 0.60),
                ("proposal", 0.05),
                (CLOSED_LOST, 0.27),
            ],
            12.0,
        ),
        (
            "demo",
            &[
                ("discovery", 0.10),
                ("validation", 0.45),
                ("proposal", 0.20),
                (CLOSED_LOST, 0.25),
            ],
            9.0,
        ),
        (
            "validation",
            &[("demo", 0.10), ("proposal", 0.65), (CLOSED_LOST, 0.25)],
            14.0,
        ),
        (
            "proposal",
            &[
                ("demo", 0.05),
                ("validation", 0.05),
                ("negotiation", 0.60),
                (CLOSED_LOST, 0.30),
            ],
            10.0,
        ),
        (
            "negotiation",
            &[
                ("proposal", 0.10),
                ("legal", 0.50),
                (CLOSED_WON, 0.20),
                (CLOSED_LOST, 0.20),
            ],
            15.0,
        ),
        (
            "legal",
            &[
                ("negotiation", 0.10),
                (CLOSED_WON, 0.75),
                (CLOSED_LOST, 0.15),
            ],
            8.0,
        ),
    ];
    let mut b = ChainModel::builder(&STAGES).expect("the synthetic stages are valid");
    for (from, to, median) in rows {
        for (stage, p) in to {
            b.add_transition("*", from, stage, *p)
                .expect("the synthetic rows name known stages");
        }
        let q: Vec<f64> = Z.iter().map(|z| median * (0.8 * z).exp()).collect();
        b.add_durations("*", from, &q)
            .expect("log-normal quantiles are increasing");
    }
    b.build()
        .expect("the synthetic chain has context-free rows")
}

/// `n` open deals spread over the open stages (more early than late), with days already spent
/// and amounts drawn from `seed`.
pub fn synthetic_deals(n: usize, seed: u64) -> Vec<OpenDeal> {
    // Cumulative shares of lead … legal.
    const SHARE: [f64; 8] = [0.25, 0.45, 0.60, 0.72, 0.80, 0.90, 0.97, 1.0];
    (0..n)
        .map(|i| {
            let bits = rng::draw(rng::run_key(rng::deal_key(seed, i as u64), 0), 0);
            let (a, b) = rng::uniforms(bits);
            let c = rng::uniforms(rng::mix64(bits)).0;
            let stage = SHARE.iter().position(|s| f64::from(a) < *s).unwrap_or(7);
            OpenDeal::new(
                format!("bench-{i:07}"),
                STAGES[stage],
                5_000.0 + f64::from(c) * 195_000.0,
                f64::from(b) * 20.0,
            )
        })
        .collect()
}

/// The process's peak resident set (VmHWM, KiB), on Linux.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resets the peak resident set to the current one (Linux `clear_refs` 5); false if refused.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// One measured simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRun {
    pub deals: usize,
    pub runs: u32,
    pub seconds: f64,
    /// Steps simulated over all runs of all deals (deal-steps).
    pub steps: u64,
    pub peak_rss_kib: Option<u64>,
    /// Mean p_win over the deals (a check that the peer simulated the same chain).
    pub mean_p_win: f64,
    /// Mean expected days to close over the deals.
    pub mean_days: f64,
}

/// Simulates `deals` (with the per-deal summaries of a forecast) and measures it.
pub fn measure(model: &ChainModel, deals: &[OpenDeal], config: &SimConfig) -> Result<BenchRun> {
    let calendar = Calendar::new(
        NaiveDate::from_ymd_opt(2025, 7, 1).expect("a valid date"),
        12,
    );
    let sim_deals: Vec<SimDeal> = deals
        .iter()
        .filter_map(|d| d.sim_deal(model, None))
        .collect();
    reset_peak_rss();
    let started = Instant::now();
    let sim = Simulator::new(model);
    let out = sim.simulate(&sim_deals, config, |_, _, runs, spare| {
        let steps: u64 = runs.steps.iter().map(|s| u64::from(*s)).sum();
        let open = runs
            .outcome
            .iter()
            .filter(|o| **o == Outcome::Open as u8)
            .count();
        (DealStats::from_runs(runs, &calendar, spare), steps, open)
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let n = out.len().max(1) as f64;
    Ok(BenchRun {
        deals: sim_deals.len(),
        runs: config.runs,
        seconds,
        steps: out.iter().map(|o| o.1).sum(),
        peak_rss_kib: peak_rss_kib(),
        mean_p_win: out.iter().map(|o| o.0.p_win).sum::<f64>() / n,
        mean_days: out.iter().filter_map(|o| o.0.expected_days).sum::<f64>() / n,
    })
}

/// The workload as JSON for the numpy peer: the compiled context-free tables (CDF rows, 21
/// quantiles per stage, outcome kind per code) and the deals' start stages and days spent.
pub fn peer_input(model: &ChainModel, deals: &[OpenDeal], config: &SimConfig) -> serde_json::Value {
    let stages = model.stages().len();
    // As the engine compiles them: cumulative, exactly 1 from the last stage with mass on; a
    // stage without a way out sends everything to the virtual open state (code `stages`).
    let cdf: Vec<Vec<f64>> = (0..stages as u16)
        .map(|s| {
            let mut row = vec![0.0; stages + 1];
            row[stages] = 1.0;
            if let Some(p) = model.row(0, s).filter(|_| !model.is_absorbing(s)) {
                let last = p.iter().rposition(|v| *v > 0.0).unwrap_or(0);
                let mut acc = 0.0;
                for (j, v) in p.iter().enumerate() {
                    acc += v;
                    row[j] = if j >= last { 1.0 } else { f64::min(acc, 1.0) };
                }
            }
            row
        })
        .collect();
    let quantiles: Vec<Vec<f64>> = (0..stages as u16)
        .map(|s| {
            model
                .durations(0, s)
                .map_or(vec![0.0; QUANTILES], |q| q.values().to_vec())
        })
        .collect();
    let mut kind = vec![-1i8; stages + 1];
    kind[model.won() as usize] = 1;
    kind[model.lost() as usize] = 0;
    kind[stages] = 2;
    let (start, age): (Vec<u16>, Vec<f64>) = deals
        .iter()
        .filter_map(|d| {
            d.sim_deal(model, None)
                .map(|s| (s.stage, f64::from(s.age_days)))
        })
        .unzip();
    serde_json::json!({
        "cdf": cdf,
        "quantiles": quantiles,
        "kind": kind,
        "start": start,
        "age": age,
        "runs": config.runs,
        "seed": config.seed,
        "max_steps": config.max_steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::oracle;

    #[test]
    fn synthetic_chain_absorbs_from_every_stage() {
        let m = synthetic_chain();
        let exact = oracle::absorption(&m).unwrap();
        assert_eq!(exact.len(), 8);
        for a in &exact {
            assert!(a.p_win > 0.0 && a.p_win < 1.0 && a.p_stuck == 0.0, "{a:?}");
            assert!(a.expected_steps >= 1.0 && a.expected_steps < 20.0, "{a:?}");
        }
        // Later stages win more often.
        assert!(exact[0].p_win < exact[7].p_win);
    }

    #[test]
    fn synthetic_deals_are_reproducible_and_open() {
        let a = synthetic_deals(500, 3);
        assert_eq!(a, synthetic_deals(500, 3));
        let m = synthetic_chain();
        assert!(a.iter().all(|d| d.sim_deal(&m, None).is_some()));
        let leads = a.iter().filter(|d| d.stage == "lead").count();
        assert!((80..170).contains(&leads), "{leads}");
    }

    #[test]
    fn peer_input_carries_the_same_tables() {
        let m = synthetic_chain();
        let deals = synthetic_deals(3, 1);
        let v = peer_input(&m, &deals, &SimConfig::default());
        let cdf = v["cdf"].as_array().unwrap();
        assert_eq!(cdf.len(), 10);
        // lead: qualification .55, discovery .60, …, lost 1.0, then the open state.
        let lead: Vec<f64> = cdf[0]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(lead.len(), 11);
        assert!((lead[1] - 0.55).abs() < 1e-12 && (lead[2] - 0.60).abs() < 1e-12);
        assert_eq!(lead[9], 1.0);
        assert_eq!(v["start"].as_array().unwrap().len(), 3);
        assert_eq!(v["kind"][8], 1);
        assert!(peak_rss_kib().is_some_and(|k| k > 0));
    }
}

//! The Monte Carlo engine: the exact oracle, determinism across threads and batch sizes, common
//! random numbers in scenarios, loading the chain from the mining marts, forecasts written to
//! marts.deal_forecasts, and the `simulate` command.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Float64Builder, Int64Array, ListBuilder, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{Field, Schema};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use revlake::lake::{DatasetRef, Lake, WorkspaceId};
use revlake::project::DatasetSchema;
use revlake::simulate::bench::{synthetic_chain, synthetic_deals};
use revlake::simulate::engine::Outcome;
use revlake::simulate::model::{CLOSED_LOST, CLOSED_WON};
use revlake::simulate::{
    Calendar, ChainModel, Context, DealStats, ForecastOptions, OpenDeal, Scenario, SimConfig,
    SimulateError, Simulator, compare, forecast_deals, forecast_workspace, oracle,
    simulate_scenario,
};
use revlake::sql::{SessionOptions, SqlSession};

use crate::common::{memory_lake, rows};

fn calendar() -> Calendar {
    Calendar::new(NaiveDate::from_ymd_opt(2025, 6, 30).unwrap(), 12)
}

fn config(runs: u32) -> SimConfig {
    SimConfig {
        runs,
        seed: 42,
        ..SimConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// The oracle

/// A small chain with a rework loop (demo → discovery) and a skip (lead → demo).
fn looping_chain() -> ChainModel {
    let stages = [
        "lead",
        "discovery",
        "demo",
        "proposal",
        CLOSED_WON,
        CLOSED_LOST,
    ];
    ChainModel::from_arrays(
        &stages,
        &[
            vec![0.0, 0.5, 0.1, 0.0, 0.0, 0.4],
            vec![0.05, 0.0, 0.6, 0.0, 0.0, 0.35],
            vec![0.0, 0.2, 0.0, 0.5, 0.0, 0.3],
            vec![0.0, 0.0, 0.1, 0.0, 0.6, 0.3],
            vec![0.0; 6],
            vec![0.0; 6],
        ],
        &[
            vec![1.0, 3.0, 10.0],
            vec![2.0, 8.0],
            vec![0.5, 0.5, 1.0, 4.0, 9.0],
            vec![3.0, 30.0],
            vec![],
            vec![],
        ],
    )
    .unwrap()
}

fn assert_within_three_sigma_of_the_oracle(model: &ChainModel, runs: u32) {
    let exact = oracle::absorption(model).unwrap();
    let sim = Simulator::new(model);
    for a in &exact {
        let deal = OpenDeal::new(
            format!("start-{}", a.stage),
            &model.stages()[a.stage as usize],
            1.0,
            0.0,
        );
        let r = sim
            .runs(&deal.sim_deal(model, None).unwrap(), &config(runs))
            .unwrap();
        let n = f64::from(runs);
        let won = r
            .outcome
            .iter()
            .filter(|o| **o == Outcome::Won as u8)
            .count() as f64;
        assert!(r.outcome.iter().all(|o| *o != Outcome::Open as u8));
        let p = won / n;
        let sigma = (a.p_win * (1.0 - a.p_win) / n).sqrt();
        let stage = &model.stages()[a.stage as usize];
        assert!(
            (p - a.p_win).abs() <= 3.0 * sigma,
            "{stage}: p_win {p} vs exact {} (σ {sigma})",
            a.p_win
        );
        let steps = r.steps.iter().map(|s| f64::from(*s)).sum::<f64>() / n;
        let se = (a.steps_variance / n).sqrt();
        assert!(
            (steps - a.expected_steps).abs() <= 3.0 * se,
            "{stage}: steps {steps} vs exact {} (se {se})",
            a.expected_steps
        );
        // Days: the exact mean is N·m; the standard error from the runs themselves.
        let days: Vec<f64> = r.days.iter().map(|d| f64::from(*d)).collect();
        let mean = days.iter().sum::<f64>() / n;
        let var = days.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let se = (var / n).sqrt();
        assert!(
            (mean - a.expected_days).abs() <= 3.0 * se,
            "{stage}: days {mean} vs exact {} (se {se})",
            a.expected_days
        );
    }
}

#[test]
fn monte_carlo_is_within_three_sigma_of_the_exact_chain_from_every_stage() {
    assert_within_three_sigma_of_the_oracle(&synthetic_chain(), 40_000);
    assert_within_three_sigma_of_the_oracle(&looping_chain(), 40_000);
}

// ---------------------------------------------------------------------------------------------
// Determinism

fn forecast_in_pool(threads: usize, batch_lanes: usize, deals: &[OpenDeal]) -> Vec<DealStats> {
    let model = synthetic_chain();
    let cfg = SimConfig {
        batch_lanes,
        ..config(2_000)
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(|| forecast_deals(&model, deals, &calendar(), &cfg))
        .unwrap()
        .0
        .into_iter()
        .map(|f| f.stats)
        .collect()
}

#[test]
fn forecasts_are_bit_identical_across_thread_counts_and_batch_sizes() {
    let deals = synthetic_deals(240, 5);
    let reference = forecast_in_pool(1, 4_096, &deals);
    assert_eq!(reference.len(), 240);
    for (threads, lanes) in [(2, 4_096), (2, 1), (1, 1 << 20), (2, 7_000)] {
        let other = forecast_in_pool(threads, lanes, &deals);
        assert!(
            other == reference,
            "{threads} threads, {lanes} lanes per batch differ"
        );
    }
    // A different seed gives different numbers.
    let model = synthetic_chain();
    let other_seed = forecast_deals(
        &model,
        &deals,
        &calendar(),
        &SimConfig {
            seed: 43,
            ..config(2_000)
        },
    )
    .unwrap()
    .0;
    assert!(
        other_seed
            .iter()
            .zip(&reference)
            .any(|(a, b)| a.stats != *b)
    );
}

#[test]
fn one_deal_resimulated_alone_gets_the_runs_it_had_among_all() {
    let model = synthetic_chain();
    let sim = Simulator::new(&model);
    let deals: Vec<_> = synthetic_deals(50, 9)
        .iter()
        .map(|d| d.sim_deal(&model, None).unwrap())
        .collect();
    let cfg = SimConfig {
        batch_lanes: 3_000,
        ..config(1_000)
    };
    let all = sim
        .simulate(&deals, &cfg, |_, _, r, _| r.to_owned())
        .unwrap();
    for i in [0, 17, 49] {
        let alone = sim.runs(&deals[i], &cfg).unwrap();
        assert_eq!(alone, all[i], "deal {i}");
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios with common random numbers

/// A context and its advances: (from, to, probability); the rest of each row is lost.
type ContextRows = (&'static str, [(&'static str, &'static str, f64); 3]);

/// lead → demo → proposal → won, where a champion raises every advance and a blocker lowers it.
fn context_model() -> ChainModel {
    let mut b =
        ChainModel::builder(&["lead", "demo", "proposal", CLOSED_WON, CLOSED_LOST]).unwrap();
    let rows: [ContextRows; 4] = [
        (
            "*",
            [
                ("lead", "demo", 0.6),
                ("demo", "proposal", 0.5),
                ("proposal", CLOSED_WON, 0.6),
            ],
        ),
        (
            "champion=true",
            [
                ("lead", "demo", 0.75),
                ("demo", "proposal", 0.8),
                ("proposal", CLOSED_WON, 0.8),
            ],
        ),
        (
            "champion=false",
            [
                ("lead", "demo", 0.55),
                ("demo", "proposal", 0.4),
                ("proposal", CLOSED_WON, 0.5),
            ],
        ),
        (
            "blocker=true",
            [
                ("lead", "demo", 0.5),
                ("demo", "proposal", 0.3),
                ("proposal", CLOSED_WON, 0.4),
            ],
        ),
    ];
    for (ctx, moves) in rows {
        for (from, to, p) in moves {
            b.add_transition(ctx, from, to, p).unwrap();
            b.add_transition(ctx, from, CLOSED_LOST, 1.0 - p).unwrap();
        }
        b.add_weight(ctx, 100.0);
    }
    b.add_transition("blocker=false", "demo", "proposal", 0.55)
        .unwrap();
    b.add_transition("blocker=false", "demo", CLOSED_LOST, 0.45)
        .unwrap();
    for (stage, q) in [
        ("lead", [2.0, 20.0]),
        ("demo", [5.0, 15.0]),
        ("proposal", [3.0, 30.0]),
    ] {
        b.add_durations("*", stage, &q).unwrap();
    }
    b.build().unwrap()
}

fn deal_without_champion() -> OpenDeal {
    let mut d = OpenDeal::new("deal-7", "lead", 40_000.0, 3.0);
    d.context = Context::from_pairs([("champion", "false")]);
    d
}

#[test]
fn adding_a_champion_raises_p_win_with_a_tight_paired_interval() {
    let model = context_model();
    let runs = 20_000;
    let c = compare(
        &model,
        &deal_without_champion(),
        &Scenario::AddChampion,
        &calendar(),
        &config(runs),
    )
    .unwrap();
    assert_eq!(c.baseline.context_key, "champion=false");
    assert_eq!(c.modified.context_key, "champion=true");
    let (p0, p1) = (c.baseline.stats.p_win, c.modified.stats.p_win);
    // Exact: 0.55·0.4·0.5 = 0.11 and 0.75·0.8·0.8 = 0.48.
    assert!(
        (p0 - 0.11).abs() < 0.015 && (p1 - 0.48).abs() < 0.015,
        "{p0} {p1}"
    );
    let d = c.delta.p_win;
    assert!((d.estimate - (p1 - p0)).abs() < 1e-12);
    assert!(d.low > 0.3, "{d:?}");
    // Common random numbers couple the runs monotonically: every run won at baseline is won
    // with the champion, so the paired differences are 0 or 1 and their interval is the
    // narrowest possible, √(Δ(1 − Δ)/n), below that of two independent simulations.
    let n = f64::from(runs);
    let coupled = 1.96 * (d.estimate * (1.0 - d.estimate) / n).sqrt();
    let independent = 1.96 * (p0 * (1.0 - p0) / n + p1 * (1.0 - p1) / n).sqrt();
    let paired = (d.high - d.low) / 2.0;
    assert!(
        (paired - coupled).abs() < 0.01 * coupled,
        "paired ±{paired} vs coupled ±{coupled}"
    );
    assert!(
        paired < 0.85 * independent,
        "paired ±{paired} vs independent ±{independent}"
    );
    assert!(c.delta.expected_value.low > 0.0);
    // Already has a champion: refused.
    let mut has = deal_without_champion();
    has.context.set("champion", "yes");
    let err = compare(
        &model,
        &has,
        &Scenario::AddChampion,
        &calendar(),
        &config(100),
    )
    .unwrap_err();
    assert!(
        matches!(err, SimulateError::ScenarioNotApplicable { .. }),
        "{err}"
    );
}

#[test]
fn a_one_point_improvement_is_resolved_by_common_random_numbers() {
    // `engaged=true` wins 61 % instead of 60 % from proposal: with 10,000 runs two independent
    // simulations cannot tell (their interval is about ±1.4 pts); the paired one can.
    let mut b = ChainModel::builder(&["proposal", CLOSED_WON, CLOSED_LOST]).unwrap();
    for (ctx, p) in [("*", 0.60), ("engaged=true", 0.61)] {
        b.add_transition(ctx, "proposal", CLOSED_WON, p).unwrap();
        b.add_transition(ctx, "proposal", CLOSED_LOST, 1.0 - p)
            .unwrap();
    }
    b.add_durations("*", "proposal", &[1.0, 9.0]).unwrap();
    let model = b.build().unwrap();
    let deal = OpenDeal::new("deal-11", "proposal", 1_000.0, 0.0);
    let engaged: Scenario = "set_context:engaged=true".parse().unwrap();
    let c = compare(&model, &deal, &engaged, &calendar(), &config(10_000)).unwrap();
    let d = c.delta.p_win;
    assert!(d.low > 0.0 && d.high < 0.02, "{d:?}");
    let (p0, p1) = (c.baseline.stats.p_win, c.modified.stats.p_win);
    let independent = 1.96 * (p0 * (1.0 - p0) / 1e4 + p1 * (1.0 - p1) / 1e4).sqrt();
    assert!(
        d.estimate < independent,
        "an independent comparison would include 0"
    );
    assert!((d.high - d.low) / 2.0 < 0.2 * independent);
}

#[test]
fn removing_a_blocker_and_setting_context_move_p_win_the_expected_way() {
    let model = context_model();
    let mut d = OpenDeal::new("deal-8", "demo", 10_000.0, 0.0);
    d.context = Context::from_pairs([("blocker", "unresolved")]);
    let c = compare(
        &model,
        &d,
        &Scenario::RemoveBlocker,
        &calendar(),
        &config(10_000),
    )
    .unwrap();
    assert_eq!(c.baseline.context_key, "blocker=true");
    assert_eq!(c.modified.context_key, "blocker=false");
    assert!(c.delta.p_win.low > 0.0, "{:?}", c.delta.p_win);
    let worse: Scenario = "set_context:champion=false".parse().unwrap();
    let c = compare(
        &model,
        &OpenDeal::new("deal-9", "demo", 1.0, 0.0),
        &worse,
        &calendar(),
        &config(10_000),
    )
    .unwrap();
    assert!(c.delta.p_win.high < 0.0, "{:?}", c.delta.p_win);
    let unknown: Scenario = "set_context:weather=sunny".parse().unwrap();
    assert!(compare(&model, &d, &unknown, &calendar(), &config(10)).is_err());
}

#[test]
fn accelerating_a_stage_and_changing_the_amount_leave_outcomes_alone() {
    let model = context_model();
    let d = OpenDeal::new("deal-10", "demo", 20_000.0, 0.0);
    let fast: Scenario = "accelerate_stage:proposal=1w".parse().unwrap();
    let c = compare(&model, &d, &fast, &calendar(), &config(10_000)).unwrap();
    // Same counters, same transition rows: identical outcomes, exactly.
    assert_eq!(c.delta.p_win.estimate, 0.0);
    assert_eq!((c.delta.p_win.low, c.delta.p_win.high), (0.0, 0.0));
    let days = c.delta.expected_days.unwrap();
    assert!(days.high < 0.0 && days.low > -7.0, "{days:?}");
    let bigger: Scenario = "change_amount:+50%".parse().unwrap();
    let c = compare(&model, &d, &bigger, &calendar(), &config(10_000)).unwrap();
    assert_eq!(c.delta.p_win.estimate, 0.0);
    assert_eq!(c.modified.amount, 30_000.0);
    let gain = c.delta.expected_value.estimate;
    assert!(
        (gain - 10_000.0 * c.baseline.stats.p_win).abs() < 1e-6,
        "{gain}"
    );
}

// ---------------------------------------------------------------------------------------------
// Loading from the marts, forecasting a workspace, writing marts.deal_forecasts

const T: &str = "2025-06-30T00:00:00Z";

fn at(days_before: i64) -> i64 {
    let t: DateTime<Utc> = T.parse().unwrap();
    (t - Duration::days(days_before)).timestamp_micros()
}

fn ts(values: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
}

fn strs(values: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn opt_strs(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn f64s(values: &[f64]) -> ArrayRef {
    Arc::new(Float64Array::from(values.to_vec()))
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let schema = Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(
        Arc::new(schema),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap()
}

async fn put(lake: &Lake, dataset: &str, b: RecordBatch) {
    let d: DatasetRef = dataset.parse().unwrap();
    lake.write(d)
        .with_batches(b.schema(), vec![b])
        .await
        .unwrap();
}

/// Transition rows: (workspace, context, from, to, probability, low_confidence).
async fn put_transitions(lake: &Lake, rows: &[(&str, &str, &str, &str, f64, bool)]) {
    let n = rows.len();
    put(
        lake,
        "marts.stage_transition_matrix",
        batch(vec![
            (
                "workspace_id",
                strs(&rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            ),
            (
                "context_key",
                strs(&rows.iter().map(|r| r.1).collect::<Vec<_>>()),
            ),
            (
                "from_stage",
                strs(&rows.iter().map(|r| r.2).collect::<Vec<_>>()),
            ),
            (
                "to_stage",
                strs(&rows.iter().map(|r| r.3).collect::<Vec<_>>()),
            ),
            ("count", Arc::new(Int64Array::from(vec![10i64; n]))),
            (
                "probability",
                f64s(&rows.iter().map(|r| r.4).collect::<Vec<_>>()),
            ),
            ("effective_n", f64s(&vec![10.0; n])),
            (
                "low_confidence",
                Arc::new(BooleanArray::from(
                    rows.iter().map(|r| r.5).collect::<Vec<_>>(),
                )),
            ),
            ("computed_at", ts(vec![Some(at(0)); n])),
        ]),
    )
    .await;
}

/// Duration rows: (workspace, stage, context, quantiles).
async fn put_durations(lake: &Lake, rows: &[(&str, &str, &str, Vec<f64>)]) {
    let mut q = ListBuilder::new(Float64Builder::new());
    for r in rows {
        q.values().append_slice(&r.3);
        q.append(true);
    }
    let n = rows.len();
    let median: Vec<f64> = rows.iter().map(|r| r.3[r.3.len() / 2]).collect();
    put(
        lake,
        "marts.stage_durations",
        batch(vec![
            (
                "workspace_id",
                strs(&rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            ),
            ("stage", strs(&rows.iter().map(|r| r.1).collect::<Vec<_>>())),
            (
                "context_key",
                strs(&rows.iter().map(|r| r.2).collect::<Vec<_>>()),
            ),
            ("count", Arc::new(Int64Array::from(vec![10i64; n]))),
            ("mean_days", f64s(&median)),
            ("median_days", f64s(&median)),
            ("p10_days", f64s(&median)),
            ("p90_days", f64s(&median)),
            ("quantiles", Arc::new(q.finish())),
        ]),
    )
    .await;
}

fn linear(lo: f64, hi: f64) -> Vec<f64> {
    (0..21)
        .map(|i| lo + (hi - lo) * f64::from(i) / 20.0)
        .collect()
}

/// The mined marts of workspace `acme` (and a decoy workspace `other`).
async fn put_marts(lake: &Lake) {
    let (w, l) = (CLOSED_WON, CLOSED_LOST);
    put_transitions(
        lake,
        &[
            ("acme", "*", "lead", "demo", 0.6, false),
            ("acme", "*", "lead", l, 0.4, false),
            ("acme", "*", "demo", "proposal", 0.5, false),
            ("acme", "*", "demo", l, 0.5, false),
            ("acme", "*", "proposal", w, 0.6, false),
            ("acme", "*", "proposal", l, 0.4, false),
            ("acme", "champion=true", "demo", "proposal", 0.8, false),
            ("acme", "champion=true", "demo", l, 0.2, false),
            ("acme", "champion=true", "proposal", w, 0.8, false),
            ("acme", "champion=true", "proposal", l, 0.2, false),
            ("acme", "champion=false", "demo", "proposal", 0.4, false),
            ("acme", "champion=false", "demo", l, 0.6, false),
            ("acme", "champion=false", "proposal", w, 0.5, false),
            ("acme", "champion=false", "proposal", l, 0.5, false),
            ("other", "*", "lead", w, 1.0, true),
        ],
    )
    .await;
    put_durations(
        lake,
        &[
            ("acme", "lead", "*", linear(0.0, 20.0)),
            ("acme", "demo", "*", linear(0.0, 10.0)),
            ("acme", "proposal", "*", linear(5.0, 15.0)),
            ("acme", "demo", "champion=true", vec![0.0, 5.0]),
            ("other", "lead", "*", linear(100.0, 200.0)),
        ],
    )
    .await;
}

/// Staging tables of `acme`: open deals d1 (demo, no champion), d2 (proposal, champion),
/// d4 (lead), d5 (an unmapped stage), and d3 (closed).
async fn put_staging(lake: &Lake) {
    let ids = ["d1", "d2", "d3", "d4", "d5"];
    put(
        lake,
        "staging.deals",
        batch(vec![
            ("workspace_id", strs(&["acme"; 5])),
            ("id", strs(&ids)),
            (
                "stage",
                strs(&["demo", "proposal", CLOSED_WON, "lead", "mystery"]),
            ),
            ("amount", f64s(&[50_000.0, 20_000.0, 9.0, 1_000.0, 5.0])),
            (
                "amount_usd",
                Arc::new(Float64Array::from(vec![
                    Some(55_000.0),
                    None,
                    None,
                    None,
                    None,
                ])),
            ),
            (
                "is_closed",
                Arc::new(BooleanArray::from(vec![false, false, true, false, false])),
            ),
            ("created_at", ts(vec![Some(at(60)); 5])),
            ("updated_at", ts(vec![Some(at(0)); 5])),
            (
                "lead_source",
                opt_strs(&[Some("Web"), None, None, Some("referral"), None]),
            ),
            ("industry", opt_strs(&[None; 5])),
            ("segment", opt_strs(&[Some("smb"), None, None, None, None])),
        ]),
    )
    .await;
    put(
        lake,
        "staging.deal_stage_history",
        batch(vec![
            ("workspace_id", strs(&["acme"; 5])),
            ("deal_id", strs(&["d1", "d1", "d2", "d3", "d4"])),
            (
                "from_stage",
                opt_strs(&[None, Some("lead"), None, Some("proposal"), None]),
            ),
            (
                "to_stage",
                strs(&["lead", "demo", "proposal", CLOSED_WON, "lead"]),
            ),
            (
                "transitioned_at",
                ts(vec![
                    Some(at(30)),
                    Some(at(10)),
                    Some(at(3)),
                    Some(at(0)),
                    Some(at(1)),
                ]),
            ),
        ]),
    )
    .await;
    put(
        lake,
        "staging.deal_contacts",
        batch(vec![
            ("workspace_id", strs(&["acme"; 2])),
            ("deal_id", strs(&["d1", "d2"])),
            ("role", strs(&["economic_buyer", "champion"])),
        ]),
    )
    .await;
    put(
        lake,
        "staging.activities",
        batch(vec![
            ("workspace_id", strs(&["acme"])),
            ("deal_id", strs(&["d1"])),
            ("occurred_at", ts(vec![Some(at(2))])),
        ]),
    )
    .await;
}

fn acme() -> WorkspaceId {
    WorkspaceId::new("acme").unwrap()
}

#[tokio::test]
async fn chain_model_loads_from_hand_written_marts_of_one_workspace() {
    let lake = memory_lake().await;
    let missing = ChainModel::from_marts(&lake, &acme()).await.unwrap_err();
    assert!(
        matches!(missing, SimulateError::NoMinedModel { .. }),
        "{missing}"
    );
    put_marts(&lake).await;
    let m = ChainModel::from_marts(&lake, &acme()).await.unwrap();
    assert_eq!(
        m.stages(),
        ["lead", "demo", "proposal", CLOSED_WON, CLOSED_LOST]
    );
    assert!(
        !m.low_confidence(),
        "the decoy workspace's flag stays there"
    );
    let keys: Vec<&str> = m.contexts().iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["*", "champion=true", "champion=false"]);
    let champion = m.context_index("champion=true").unwrap();
    assert_eq!(m.row(champion, 1).unwrap(), &[0.0, 0.0, 0.8, 0.0, 0.2]);
    // No lead row of its own: the context-free one.
    assert_eq!(m.row(champion, 0).unwrap(), &[0.0, 0.6, 0.0, 0.0, 0.4]);
    assert_eq!(m.durations(champion, 1).unwrap().values()[20], 5.0);
    assert_eq!(m.durations(champion, 0).unwrap().values()[20], 20.0);
    assert!((m.durations(0, 2).unwrap().mean() - 10.0).abs() < 1e-9);
    let exact = oracle::absorption(&m).unwrap();
    assert!((exact[0].p_win - 0.6 * 0.5 * 0.6).abs() < 1e-12);
    let other = ChainModel::from_marts(&lake, &WorkspaceId::new("other").unwrap())
        .await
        .unwrap();
    assert!(other.low_confidence());
    assert_eq!(other.row(0, 0).unwrap()[other.won() as usize], 1.0);
}

#[tokio::test]
async fn workspace_forecast_simulates_open_deals_and_writes_the_mart() {
    let lake = memory_lake().await;
    put_marts(&lake).await;
    put_staging(&lake).await;
    let options = ForecastOptions {
        config: config(20_000),
        ..ForecastOptions::default()
    };
    let f = forecast_workspace(&lake, &acme(), &options).await.unwrap();
    assert_eq!(
        f.as_of,
        T.parse::<DateTime<Utc>>().unwrap(),
        "latest stage change"
    );
    let ids: Vec<&str> = f.deals.iter().map(|d| d.deal_id.as_str()).collect();
    assert_eq!(ids, ["d1", "d2", "d4"]);
    assert_eq!(f.skipped.len(), 1);
    assert_eq!(f.skipped[0].deal_id, "d5");
    let d1 = &f.deals[0];
    assert_eq!(
        (d1.context_key.as_str(), d1.amount),
        ("champion=false", 55_000.0)
    );
    assert!((d1.days_in_stage - 10.0).abs() < 1e-9);
    let d2 = &f.deals[1];
    assert_eq!(
        (d2.context_key.as_str(), d2.amount),
        ("champion=true", 20_000.0)
    );
    assert_eq!(f.deals[2].context_key, "*");
    // Exact win probabilities: 0.4·0.5, 0.8, 0.6·0.5·0.6.
    let n = 20_000.0;
    for (d, exact) in f.deals.iter().zip([0.2f64, 0.8, 0.18]) {
        let sigma = (exact * (1.0 - exact) / n).sqrt();
        assert!(
            (d.stats.p_win - exact).abs() < 3.0 * sigma,
            "{}: {}",
            d.deal_id,
            d.stats.p_win
        );
        assert!(d.stats.p_win_low < d.stats.p_win && d.stats.p_win < d.stats.p_win_high);
        let by_month: f64 = d.stats.won_by_month.iter().sum();
        assert!((by_month - d.stats.p_win).abs() < 1e-9);
        assert!((d.expected_value - d.amount * d.stats.p_win).abs() < 1e-6);
    }
    // d2 has spent 3 of its 5–15 days in proposal: it closes within 15 days, in the as-of month
    // (June 30) or July.
    assert!(d2.stats.days_p97_5.unwrap() <= 15.0);
    assert!(d2.stats.won_by_month[2..].iter().all(|p| *p == 0.0));

    let schema =
        DatasetSchema::from_file(&repo().join("schemas/marts.deal_forecasts.toml")).unwrap();
    let written = f.write(&lake, Some(&schema)).await.unwrap();
    assert_eq!(written.rows, 3);
    let session = SqlSession::open(&lake, &SessionOptions::default())
        .await
        .unwrap();
    let back = rows(
        &session,
        "SELECT deal_id, stage, runs, seed, round(p_win, 2), cardinality(won_by_month) > 0 FROM marts.deal_forecasts",
    )
    .await;
    assert_eq!(
        back,
        [
            "d1,demo,20000,42,0.2,true",
            "d2,proposal,20000,42,0.8,true",
            "d4,lead,20000,42,0.18,true"
        ]
    );

    // One deal again: merged, the others kept.
    let one = ForecastOptions {
        deal: Some("d4".into()),
        config: SimConfig {
            seed: 7,
            ..config(1_000)
        },
        ..ForecastOptions::default()
    };
    let f = forecast_workspace(&lake, &acme(), &one).await.unwrap();
    assert_eq!(f.deals.len(), 1);
    f.write(&lake, Some(&schema)).await.unwrap();
    let session = SqlSession::open(&lake, &SessionOptions::default())
        .await
        .unwrap();
    assert_eq!(
        rows(&session, "SELECT deal_id, seed FROM marts.deal_forecasts").await,
        ["d1,42", "d2,42", "d4,7"]
    );
    let closed = ForecastOptions {
        deal: Some("d3".into()),
        ..ForecastOptions::default()
    };
    let err = forecast_workspace(&lake, &acme(), &closed)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SimulateError::NoSuchDeal { .. }) && err.is_user_error(),
        "{err}"
    );
}

#[tokio::test]
async fn scenario_on_a_lake_deal_compares_with_common_random_numbers() {
    let lake = memory_lake().await;
    put_marts(&lake).await;
    put_staging(&lake).await;
    let options = ForecastOptions {
        config: config(20_000),
        ..ForecastOptions::default()
    };
    let (c, as_of) = simulate_scenario(&lake, &acme(), "d1", &Scenario::AddChampion, &options)
        .await
        .unwrap();
    assert_eq!(as_of, T.parse::<DateTime<Utc>>().unwrap());
    assert_eq!(c.modified.context_key, "champion=true");
    // 0.8·0.8 − 0.4·0.5 = 0.44.
    let d = c.delta.p_win;
    assert!(d.low > 0.40 && d.high < 0.48, "{d:?}");
    let err = simulate_scenario(&lake, &acme(), "d2", &Scenario::AddChampion, &options)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already has a champion"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The command

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn revlake(lake: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_revlake"))
        .arg("--project")
        .arg(repo())
        .arg("--lake")
        .arg(lake)
        .args(args)
        .env_remove("REVLAKE_LAKE")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn simulate_command_prints_forecasts_scenarios_and_benchmarks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lake");
    let lake = Lake::open(&path.display().to_string()).await.unwrap();
    put_marts(&lake).await;
    put_staging(&lake).await;

    let (code, out, err) = revlake(
        &path,
        &["simulate", "--workspace", "acme", "--runs", "2000"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("3 open deals") && out.contains("p_win") && out.contains("d1"),
        "{out}"
    );
    assert!(
        err.contains("skipped deal d5") && err.contains("wrote 3 rows"),
        "{err}"
    );

    let (code, out, err) = revlake(
        &path,
        &[
            "simulate",
            "--workspace",
            "acme",
            "--deal",
            "d2",
            "--runs",
            "500",
            "--no-write",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("champion=true") && out.contains("won in month"),
        "{out}"
    );

    let (code, out, err) = revlake(
        &path,
        &[
            "simulate",
            "--workspace",
            "acme",
            "--deal",
            "d1",
            "--scenario",
            "add_champion",
            "--runs",
            "2000",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("baseline") && out.contains("delta") && out.contains("pts"),
        "{out}"
    );

    let (code, _, err) = revlake(
        &path,
        &[
            "simulate",
            "--workspace",
            "acme",
            "--deal",
            "d1",
            "--scenario",
            "teleport",
        ],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("`teleport` is not a scenario"), "{err}");

    let (code, out, err) = revlake(
        &path,
        &[
            "simulate",
            "--bench",
            "--bench-size",
            "300x200",
            "--no-peer",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("300 × 200") && out.contains("deal-steps/s"),
        "{out}"
    );

    let help = Command::new(env!("CARGO_BIN_EXE_revlake"))
        .args(["simulate", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("Examples:") && help.contains("revlake simulate"),
        "{help}"
    );
}

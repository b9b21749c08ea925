//! Hand-computed checks of the mining kernels.

use super::*;

const DAY: i64 = 86_400_000_000;

fn deal(champion: bool, blocker: bool, closed: bool) -> DealFacts {
    DealFacts {
        champion,
        blocker,
        closed,
        amount_usd: Some(1000.0),
        lead_source: Some("Inbound".into()),
        ..DealFacts::default()
    }
}

fn config(text: &str) -> MiningConfig {
    MiningConfig::from_toml(text).unwrap()
}

fn order() -> StageOrder {
    StageOrder::new(&[
        "lead",
        "qualification",
        "discovery",
        "demo",
        "negotiation",
        "closed_won",
    ])
}

/// A deal entering `path` one stage after another, `days[i]` days in stage i.
fn walk(mut b: LogBuilder, id: &str, path: &[&str], days: &[f64]) -> LogBuilder {
    let mut at = 0i64;
    b = b.transition(id, None, path[0], None, at);
    for i in 1..path.len() {
        at += (days[i - 1] * DAY as f64) as i64;
        b = b.transition(id, Some(path[i - 1]), path[i], Some(days[i - 1]), at);
    }
    b
}

fn row<'a>(m: &'a WorkspaceMining, ctx: &str, from: &str, to: &str) -> &'a MatrixRow {
    m.matrix
        .iter()
        .find(|r| r.context_key == ctx && r.from_stage == from && r.to_stage == to)
        .unwrap_or_else(|| panic!("no row {ctx} {from} -> {to}: {:#?}", m.matrix))
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-12, "{a} != {b}");
}

#[test]
fn one_factor_matrix_is_smoothed_toward_the_context_free_row() {
    let mut b = LogBuilder::new("w");
    for (id, champion) in [
        ("a1", true),
        ("a2", true),
        ("a3", true),
        ("a4", true),
        ("b1", false),
        ("b2", false),
    ] {
        b = b.deal(id, deal(champion, false, true));
    }
    b = walk(b, "a1", &["lead", "qualification", "demo"], &[2.0, 3.0]);
    b = walk(b, "a2", &["lead", "qualification"], &[4.0]);
    b = walk(b, "a4", &["lead", "qualification"], &[1.0]);
    b = walk(b, "a3", &["lead", "closed_lost"], &[5.0]);
    b = walk(b, "b1", &["lead", "closed_lost"], &[6.0]);
    b = walk(b, "b2", &["lead", "closed_lost"], &[7.0]);
    let m = mine_workspace(&b.build(), &config("factors = [\"champion\"]"), &order()).unwrap();

    // `*`: 3 of 6 to qualification, 3 to closed_lost; qualification -> demo once.
    let star = row(&m, "*", "lead", "qualification");
    assert_eq!((star.count, star.context_level), (3, 0));
    close(star.probability, 0.5);
    close(star.effective_n, 6.0);
    assert_eq!(star.prior_strength, 0.0);
    close(row(&m, "*", "qualification", "demo").probability, 1.0);

    // champion=true: n = 4 (3 + 1); (3 + 10 · 0.5) / 14 and (1 + 5) / 14.
    let t = row(&m, "champion=true", "lead", "qualification");
    close(t.probability, 8.0 / 14.0);
    close(t.effective_n, 14.0);
    assert_eq!((t.count, t.prior_strength, t.context_level), (3, 10.0, 1));
    close(
        row(&m, "champion=true", "lead", "closed_lost").probability,
        6.0 / 14.0,
    );

    // champion=false saw no qualification: a count-0 row with the parent's pull, never 0.
    let f = row(&m, "champion=false", "lead", "qualification");
    assert_eq!(f.count, 0);
    close(f.probability, 5.0 / 12.0);
    close(
        row(&m, "champion=false", "lead", "closed_lost").probability,
        7.0 / 12.0,
    );

    // An empty context row: champion=false never left qualification; it is the parent's row.
    let empty = row(&m, "champion=false", "qualification", "demo");
    assert_eq!(empty.count, 0);
    close(empty.probability, 1.0);
    close(empty.effective_n, 10.0);

    // Every row sums to one.
    for ctx in ["*", "champion=true", "champion=false"] {
        for from in ["lead", "qualification"] {
            let sum: f64 = m
                .matrix
                .iter()
                .filter(|r| r.context_key == ctx && r.from_stage == from)
                .map(|r| r.probability)
                .sum();
            close(sum, 1.0);
        }
    }
    assert_eq!(m.summary.transitions, 7);
    assert_eq!(m.summary.starts, [("lead".to_string(), 6)]);
}

#[test]
fn two_levels_smooth_each_context_toward_its_smoothed_parent() {
    let mut b = LogBuilder::new("w")
        .deal("d1", deal(true, false, true))
        .deal("d2", deal(true, true, true))
        .deal("d3", deal(false, false, true))
        .deal("d4", deal(true, false, true));
    b = walk(b, "d1", &["lead", "qualification"], &[1.0]);
    b = walk(b, "d2", &["lead", "closed_lost"], &[1.0]);
    b = walk(b, "d3", &["lead", "closed_lost"], &[1.0]);
    b = walk(b, "d4", &["lead", "qualification"], &[1.0]);
    let cfg =
        config("factors = [\"champion\", \"blocker\"]\nprior = { type = \"fixed\", strength = 2 }");
    let m = mine_workspace(&b.build(), &cfg, &order()).unwrap();
    close(row(&m, "*", "lead", "qualification").probability, 0.5);
    // champion=true: (2 + 2 · 0.5) / 5
    close(
        row(&m, "champion=true", "lead", "qualification").probability,
        0.6,
    );
    close(
        row(&m, "champion=false", "lead", "qualification").probability,
        1.0 / 3.0,
    );
    // Level 2 pulls toward the level-1 row: (2 + 2 · 0.6) / 4 and (0 + 2 · 0.6) / 3.
    let r = row(&m, "blocker=false|champion=true", "lead", "qualification");
    close(r.probability, 0.8);
    close(r.effective_n, 4.0);
    assert_eq!(r.context_level, 2);
    close(
        row(&m, "blocker=true|champion=true", "lead", "qualification").probability,
        0.4,
    );
    close(
        row(&m, "blocker=true|champion=true", "lead", "closed_lost").probability,
        0.6,
    );
    // (0 + 2 · 1/3) / 3 = 2/9
    close(
        row(&m, "blocker=false|champion=false", "lead", "qualification").probability,
        2.0 / 9.0,
    );
    // Never observed at all: not emitted (the parent stands in).
    assert!(
        !m.matrix
            .iter()
            .any(|r| r.context_key == "blocker=true|champion=false")
    );
    assert_eq!(m.summary.contexts, 3);
}

#[test]
fn moments_prior_follows_how_far_siblings_spread() {
    // Two contexts that disagree completely: ρ̂ = 1, α = 0 clamped to min 1.
    let mut b = LogBuilder::new("w");
    for i in 0..10 {
        let (a, z) = (format!("a{i}"), format!("z{i}"));
        b = b
            .deal(&a, deal(true, false, true))
            .deal(&z, deal(false, false, true));
        b = walk(b, &a, &["lead", "qualification"], &[1.0]);
        b = walk(b, &z, &["lead", "closed_lost"], &[1.0]);
    }
    let cfg =
        config("factors = [\"champion\"]\nprior = { type = \"moments\", min = 1, max = 1000 }");
    let m = mine_workspace(&b.build(), &cfg, &order()).unwrap();
    let r = row(&m, "champion=true", "lead", "qualification");
    assert_eq!(r.prior_strength, 1.0);
    close(r.probability, 10.5 / 11.0);

    // Two contexts that agree exactly: no spread beyond noise, α = max.
    let mut b = LogBuilder::new("w");
    for i in 0..10 {
        let champion = i % 2 == 0;
        let (p, q) = (format!("p{i}"), format!("q{i}"));
        b = b
            .deal(&p, deal(champion, false, true))
            .deal(&q, deal(champion, false, true));
        b = walk(b, &p, &["lead", "qualification"], &[1.0]);
        b = walk(b, &q, &["lead", "closed_lost"], &[1.0]);
    }
    let m = mine_workspace(&b.build(), &cfg, &order()).unwrap();
    assert_eq!(
        row(&m, "champion=true", "lead", "qualification").prior_strength,
        1000.0
    );
}

#[test]
fn durations_give_quantiles_and_advance_rates_by_band() {
    let mut b = LogBuilder::new("w");
    for (i, (days, to)) in [
        (1.0, "qualification"),
        (2.0, "qualification"),
        (3.0, "closed_lost"),
        (4.0, "qualification"),
        (10.0, "closed_lost"),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("d{i}");
        b = b.deal(&id, deal(i < 2, false, true));
        b = walk(b, &id, &["lead", to], &[days]);
    }
    let cfg = config("factors = [\"champion\", \"stage_days\"]");
    let m = mine_workspace(&b.build(), &cfg, &order()).unwrap();
    let star = m
        .durations
        .iter()
        .find(|r| r.context_key == "*" && r.stage == "lead")
        .unwrap();
    let d = &star.days;
    assert_eq!(d.count, 5);
    close(d.mean, 4.0);
    close(d.median, 3.0);
    close(d.p10, 1.4);
    close(d.p90, 7.6);
    assert_eq!(d.quantiles.len(), QUANTILE_LEVELS);
    close(d.quantiles[0], 1.0);
    close(d.quantiles[1], 1.2);
    close(d.quantiles[20], 10.0);
    // Band 0-7: 4 exits, 3 advanced; band 8-30: 1 exit, none advanced.
    assert_eq!(star.advance_by_band[0].band, "0-7");
    assert_eq!(
        (
            star.advance_by_band[0].exits,
            star.advance_by_band[0].advanced
        ),
        (4, 3)
    );
    close(star.advance_by_band[0].advance_rate.unwrap(), 0.75);
    close(star.advance_by_band[1].advance_rate.unwrap(), 0.0);
    assert_eq!(star.advance_by_band[2].advance_rate, None);
    // champion=true (d0, d1: 1 and 2 days, both advanced): (2 + 10 · 0.75) / 12 in band 0-7.
    let champ = m
        .durations
        .iter()
        .find(|r| r.context_key == "champion=true" && r.stage == "lead")
        .unwrap();
    assert_eq!(champ.days.count, 2);
    close(champ.days.median, 1.5);
    close(champ.advance_by_band[0].advance_rate.unwrap(), 9.5 / 12.0);
    // Time-in-stage contexts leave out the per-transition factor.
    assert!(
        m.durations
            .iter()
            .all(|r| !r.context_key.contains("stage_days"))
    );
    // The matrix has it: lead -> closed_lost after 8-30 days was d4 alone.
    let r = row(&m, "champion=false|stage_days=8-30", "lead", "closed_lost");
    assert_eq!(r.count, 1);
}

#[test]
fn dfg_counts_medians_rework_and_skipped_stages() {
    let mut b = LogBuilder::new("w");
    b = b
        .deal("x", deal(false, false, true))
        .deal("y", deal(false, false, true));
    b = walk(
        b,
        "x",
        &[
            "lead",
            "discovery",
            "qualification",
            "demo",
            "negotiation",
            "closed_won",
        ],
        &[1.0, 2.0, 3.0, 4.0, 5.0],
    );
    b = walk(b, "y", &["lead", "discovery", "closed_lost"], &[3.0, 1.0]);
    let m = mine_workspace(&b.build(), &config("factors = []"), &order()).unwrap();
    let edge = |f: &str, t: &str| {
        m.dfg
            .iter()
            .find(|r| r.from_stage == f && r.to_stage == t)
            .unwrap()
    };
    let e = edge("lead", "discovery");
    assert_eq!((e.count, e.skipped_stages, e.is_rework), (2, 1, false));
    close(e.median_duration_days.unwrap(), 2.0);
    assert!(edge("discovery", "qualification").is_rework);
    assert_eq!(edge("qualification", "demo").skipped_stages, 1);
    assert_eq!(edge("negotiation", "closed_won").skipped_stages, 0);
    let lost = edge("discovery", "closed_lost");
    assert!(!lost.is_rework && lost.skipped_stages == 0);
    assert_eq!(m.dfg.len(), 6);
    assert_eq!(m.summary.rework_moves, 1);
    assert_eq!((m.summary.skip_moves, m.summary.skipped_stages), (3, 3));
}

#[test]
fn fewer_than_fifty_closed_deals_is_low_confidence() {
    let build = |closed: usize| {
        let mut b = LogBuilder::new("w");
        for i in 0..60 {
            let id = format!("d{i}");
            b = b.deal(&id, deal(false, false, i < closed));
            b = walk(b, &id, &["lead", "closed_lost"], &[1.0]);
        }
        mine_workspace(&b.build(), &MiningConfig::default(), &order()).unwrap()
    };
    let low = build(49);
    assert!(low.summary.low_confidence && !low.summary.recommended_depth);
    assert_eq!(low.summary.closed_deals, 49);
    let ok = build(50);
    assert!(!ok.summary.low_confidence && !ok.summary.recommended_depth);
    let cfg = config("min_closed_deals = 10\nrecommended_closed_deals = 20");
    let mut b = LogBuilder::new("w");
    for i in 0..20 {
        b = b.deal(&format!("d{i}"), deal(false, false, true));
    }
    let m = mine_workspace(&b.build(), &cfg, &order()).unwrap();
    assert!(m.summary.recommended_depth && m.matrix.is_empty());
}

#[test]
fn many_activities_count_through_hash_aggregation_like_the_dense_path() {
    // 600 activities: 600² cells exceed the dense threshold.
    let names: Vec<String> = (0..600).map(|i| format!("a{i:03}")).collect();
    let path: Vec<&str> = names.iter().map(String::as_str).collect();
    let days = vec![1.0; path.len()];
    let mut b = LogBuilder::new("w");
    for case in 0..3 {
        b = walk(b, &format!("c{case}"), &path, &days);
    }
    b = walk(b, "c9", &["a000", "a002"], &[10.0]);
    let log = b.build();
    assert!((log.stages.len() * log.stages.len()) as u64 > DENSE_CELLS);
    let m = mine_workspace(
        &log,
        &config("factors = [\"stage_days\"]"),
        &StageOrder::default(),
    )
    .unwrap();
    assert_eq!(m.dfg.len(), 600);
    assert!(
        m.dfg
            .iter()
            .filter(|r| r.from_stage != "a000" || r.to_stage != "a002")
            .all(|r| r.count == 3)
    );
    let skip = m
        .dfg
        .iter()
        .find(|r| r.from_stage == "a000" && r.to_stage == "a002")
        .unwrap();
    assert_eq!((skip.count, skip.skipped_stages), (1, 0));
    // A workspace without deals: every case counts as closed, only stage_days contexts.
    assert_eq!(m.summary.closed_deals, 4);
    let r = row(&m, "*", "a000", "a001");
    close(r.probability, 0.75);
    let r = row(&m, "stage_days=0-7", "a000", "a002");
    assert_eq!(r.count, 0);
    // (0 + 10 · 0.25) / (3 + 10)
    close(r.probability, 2.5 / 13.0);
}

#[test]
fn engagement_recency_bands_come_from_the_last_activity_before_each_move() {
    let b = LogBuilder::new("w")
        .deal("d", deal(false, false, true))
        .deal("e", deal(false, false, true))
        .activity("d", DAY)
        .activity("d", 20 * DAY)
        .transition("d", None, "lead", None, 0)
        .transition("d", Some("lead"), "qualification", Some(3.0), 3 * DAY)
        .transition("d", Some("qualification"), "demo", Some(19.0), 22 * DAY)
        .transition("e", None, "lead", None, 0)
        .transition("e", Some("lead"), "closed_lost", Some(3.0), 3 * DAY);
    let m = mine_workspace(&b.build(), &config("factors = [\"engagement\"]"), &order()).unwrap();
    assert_eq!(row(&m, "engagement=0-7", "lead", "qualification").count, 1);
    assert_eq!(row(&m, "engagement=0-7", "qualification", "demo").count, 1);
    assert_eq!(row(&m, "engagement=none", "lead", "closed_lost").count, 1);
    assert_eq!(row(&m, "engagement=none", "lead", "qualification").count, 0);
}

#[test]
fn unmapped_stages_are_counted_not_mined() {
    let b = LogBuilder::new("w")
        .deal("d", deal(false, false, true))
        .transition("d", None, "lead", None, 0)
        .unmapped("d", DAY);
    let m = mine_workspace(&b.build(), &MiningConfig::default(), &order()).unwrap();
    assert_eq!(
        (m.summary.unmapped, m.summary.transitions, m.summary.rows),
        (1, 0, 2)
    );
    assert!(m.dfg.is_empty());
}

#[test]
fn renders_the_matrix_table_dot_and_svg() {
    let mut b = LogBuilder::new("w").deal("x", deal(false, false, true));
    b = walk(
        b,
        "x",
        &["lead", "qualification", "lead", "closed_won"],
        &[1.0, 2.0, 3.0],
    );
    let m = mine_workspace(&b.build(), &config("factors = []"), &order()).unwrap();
    let table = render::matrix_table(&m, &order());
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("from \\ to") && header.contains("closed_won"),
        "{table}"
    );
    assert!(
        table.contains("0.500 (1)") && table.contains("1.000 (1)"),
        "{table}"
    );
    let dot = render::dfg_dot(&m, &order());
    assert!(
        dot.contains("\"qualification\" -> \"lead\"") && dot.contains("style=dashed"),
        "{dot}"
    );
    let svg = render::dfg_svg(&m, &order());
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<path d=").count(), m.dfg.len());
    assert!(svg.contains("stroke-dasharray"), "rework is dashed");
}

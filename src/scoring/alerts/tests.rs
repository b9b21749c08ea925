use super::*;
use crate::scoring::data::DAY;
use crate::scoring::score::Factor;
use crate::scoring::trends::{Series, anomalies, health_index};

fn score(id: &str, owner: &str, risk: u8) -> DealScore {
    DealScore {
        deal_id: id.into(),
        deal_name: format!("Deal {id}"),
        owner_id: Some(owner.into()),
        segment: "smb".into(),
        stage: "proposal".into(),
        amount: Some(50_000.0),
        days_in_stage: 40.0,
        p_win_model: 1.0 - f64::from(risk) / 100.0,
        p_win_simulated: None,
        p_win: 1.0 - f64::from(risk) / 100.0,
        velocity_score: -0.4,
        engagement_score: 20.0,
        deal_risk: risk,
        health_score: 30,
        factors: vec![Factor {
            feature: "champion".into(),
            text: "No champion identified".into(),
            impact: -0.6,
            action: "Identify and enable a champion".into(),
        }],
        all_factors: Vec::new(),
    }
}

fn users() -> HashMap<String, User> {
    let mut u = HashMap::new();
    u.insert(
        "rep1".to_string(),
        User {
            name: Some("Rita Rep".into()),
            manager_id: Some("mgr".into()),
        },
    );
    u
}

#[test]
fn high_risk_fires_above_75_with_factors_and_actions_and_not_at_75() {
    let t = AlertThresholds::default();
    let alerts = high_risk_deals(
        &[score("a", "rep1", 82), score("b", "rep1", 75)],
        &users(),
        &t,
    );
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!((a.rule, a.subject.as_str()), ("high_risk_deal", "a"));
    assert_eq!(a.audience, vec!["rep", "manager"]);
    assert_eq!(a.manager_id.as_deref(), Some("mgr"));
    assert!(a.body.contains("Risk Score: 82/100"), "{}", a.body);
    assert!(a.body.contains("• No champion identified"), "{}", a.body);
    assert!(
        a.body.contains("1. Identify and enable a champion"),
        "{}",
        a.body
    );
    assert!(high_risk_deals(&[score("b", "rep1", 75)], &users(), &t).is_empty());
}

/// Deals of `segment` closed in the quarter around `at`: `won` of `n` won.
fn closed(segment: &str, at: f64, n: usize, won: usize, amount: f64) -> Vec<DealFact> {
    (0..n)
        .map(|k| DealFact {
            id: format!("{segment}-{at}-{k}"),
            segment: segment.into(),
            created_at: Some(at - 40.0 * DAY),
            closed_at: Some(at + k as f64 * 3600.0),
            won: k < won,
            amount,
            moves: Vec::new(),
        })
        .collect()
}

// 2025-11-15 and 2025-08-15 (Q4 and Q3 2025).
const NOV: f64 = 1_763_164_800.0;
const AUG: f64 = 1_755_216_000.0;

#[test]
fn win_rate_decline_fires_on_a_drop_over_ten_points_and_not_under() {
    let t = AlertThresholds::default();
    let mut facts = closed("healthtech", AUG, 50, 27, 40_000.0); // 54%
    facts.extend(closed("healthtech", NOV, 50, 21, 40_000.0)); // 42%
    facts.extend(closed("smb", AUG, 20, 12, 10_000.0)); // 60%
    facts.extend(closed("smb", NOV, 20, 11, 10_000.0)); // 55%: −5 points
    let alerts = win_rate_declines(&facts, NOV + 10.0 * DAY, &t);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(a.subject, "healthtech");
    assert_eq!(a.state, "2025-Q4");
    assert_eq!(a.audience, vec!["leadership"]);
    assert!(
        a.body.contains("Change: -12 percentage points"),
        "{}",
        a.body
    );
    assert!(a.body.contains("29 losses (vs. 23 expected)"), "{}", a.body);
    assert_eq!(a.details["affected_deals"].as_array().unwrap().len(), 29);
    // Too few deals in a quarter: no comparison.
    let few = [closed("x", AUG, 5, 5, 1.0), closed("x", NOV, 5, 0, 1.0)].concat();
    assert!(win_rate_declines(&few, NOV, &t).is_empty());
}

#[test]
fn rep_risk_fires_for_a_rep_over_twenty_percent_above_the_team() {
    let t = AlertThresholds::default();
    let mut scores: Vec<DealScore> = (0..3)
        .map(|k| score(&format!("a{k}"), "rep1", 80))
        .collect();
    scores.extend((0..3).map(|k| score(&format!("b{k}"), "rep2", 40)));
    // Team average 60: rep1 at 80 is 33% above, rep2 below.
    let alerts = rep_risk(&scores, &users(), &t);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].subject, "rep1");
    assert_eq!(alerts[0].audience, vec!["manager"]);
    assert_eq!(alerts[0].manager_id.as_deref(), Some("mgr"));
    assert!(
        alerts[0]
            .body
            .contains("Average Deal Risk: 80 (Team Avg: 60)")
    );
    // 65 vs a team of 60: under 20% above.
    let even: Vec<DealScore> = (0..6)
        .map(|k| {
            score(
                &format!("c{k}"),
                if k < 3 { "rep1" } else { "rep2" },
                if k < 3 { 65 } else { 55 },
            )
        })
        .collect();
    assert!(rep_risk(&even, &users(), &t).is_empty());
}

/// Won and lost deals over 180 days before `end`: the earlier 90 days at `prior` quality, the
/// later 90 at `current` (win rate, won amount, cycle days).
fn history(end: f64, prior: (usize, f64, f64), current: (usize, f64, f64)) -> Vec<DealFact> {
    let mut out = Vec::new();
    for (w, (won, amount, cycle)) in [prior, current].into_iter().enumerate() {
        for k in 0..20 {
            let t = end - (170.0 - 90.0 * w as f64 - 3.0 * k as f64) * DAY;
            out.push(DealFact {
                id: format!("{w}-{k}"),
                segment: "smb".into(),
                created_at: Some(t - cycle * DAY),
                closed_at: Some(t),
                won: k < won,
                amount,
                moves: Vec::new(),
            });
        }
    }
    // Open pipeline, the same at both times.
    for k in 0..5 {
        out.push(DealFact {
            id: format!("open-{k}"),
            segment: "smb".into(),
            created_at: Some(end - 400.0 * DAY),
            closed_at: None,
            won: false,
            amount: 1_000_000.0,
            moves: Vec::new(),
        });
    }
    out
}

#[test]
fn pipeline_health_fires_when_the_index_falls_below_65() {
    let t = AlertThresholds::default();
    let end = NOV;
    let falling = history(end, (12, 50_000.0, 30.0), (7, 35_000.0, 50.0));
    let h = health_index(&falling, end).unwrap();
    assert!(h.index < 65.0, "{h:?}");
    let a = pipeline_health("acme", Some(&h), &t).unwrap();
    assert_eq!(
        (a.rule, a.audience.clone()),
        ("pipeline_health", vec!["cro"])
    );
    assert!(a.body.contains("win rate: 35% (prior 60%)"), "{}", a.body);

    let steady = history(end, (12, 50_000.0, 30.0), (12, 50_000.0, 30.0));
    let h = health_index(&steady, end).unwrap();
    assert!((h.index - 75.0).abs() < 5.0, "{h:?}");
    assert!(pipeline_health("acme", Some(&h), &t).is_none());
    assert!(pipeline_health("acme", None, &t).is_none());
}

fn weekday_series(last: f64) -> Series {
    // 84 days, 9–11 on weekdays and 0 at weekends; the last day is a weekday.
    let first_day = 20_006;
    let mut counts: Vec<f64> = (0..84)
        .map(|k| {
            let weekend = (first_day + k + 3i64).rem_euclid(7) >= 5;
            if weekend { 0.0 } else { 9.0 + (k % 3) as f64 }
        })
        .collect();
    if let Some(x) = counts.last_mut() {
        *x = last;
    }
    Series {
        metric: "new deals",
        first_day,
        counts,
    }
}

#[test]
fn anomalies_fire_on_an_outlier_day_and_not_on_a_usual_one() {
    let found = anomalies(&[weekday_series(40.0)], 7);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].count, 40.0);
    let alerts = pipeline_anomalies(&found);
    assert_eq!(alerts[0].rule, "pipeline_anomaly");
    assert!(alerts[0].state.ends_with(":spike"));
    assert!(anomalies(&[weekday_series(11.0)], 7).is_empty());
}

#[test]
fn an_unchanged_alert_keeps_its_id_and_is_not_new_the_next_day() {
    let t = AlertThresholds::default();
    let day1: DateTime<Utc> = "2025-12-01T06:00:00Z".parse().unwrap();
    let day2: DateTime<Utc> = "2025-12-02T06:00:00Z".parse().unwrap();
    let day3: DateTime<Utc> = "2025-12-03T06:00:00Z".parse().unwrap();
    let first = high_risk_deals(&[score("a", "rep1", 82)], &users(), &t);
    let rows = reconcile("acme", Vec::new(), &first, day1);
    assert_eq!(new_alerts(&rows).len(), 1);

    // Same deal, risk 84: same band, same id, not new, first_seen kept.
    let again = high_risk_deals(&[score("a", "rep1", 84)], &users(), &t);
    assert_eq!(again[0].id("acme"), first[0].id("acme"));
    let rows = reconcile("acme", rows, &again, day2);
    assert_eq!(rows.len(), 1);
    assert!(new_alerts(&rows).is_empty());
    assert_eq!((rows[0].first_seen, rows[0].last_seen), (day1, day2));

    // Risk 95: a new band is a new alert; the old one resolves.
    let worse = high_risk_deals(&[score("a", "rep1", 95)], &users(), &t);
    let rows = reconcile("acme", rows, &worse, day3);
    assert_eq!(rows.len(), 2);
    assert_eq!(new_alerts(&rows).len(), 1);
    assert_eq!(new_alerts(&rows)[0].state, "risk>90");
    assert!(
        rows.iter()
            .any(|r| r.state == "risk>75" && r.status == "resolved")
    );

    // Back to 82: the resolved alert opens again and is sent again.
    let rows = reconcile("acme", rows, &first, day3 + chrono::Duration::days(1));
    let new = new_alerts(&rows);
    assert_eq!(new.len(), 1);
    assert_eq!(new[0].first_seen, day1);
    // Ids differ across workspaces.
    assert_ne!(first[0].id("acme"), first[0].id("other"));
}

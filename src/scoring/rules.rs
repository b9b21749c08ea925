//! Transparent rule-based scoring, used when there are too few closed deals for a model: risk
//! points that anyone can recompute by hand.
//!
//! | rule | points |
//! | --- | --- |
//! | base | 30 |
//! | an unresolved blocker | +20 |
//! | contact roles recorded but no champion | +15 |
//! | a champion | −10 |
//! | days in stage > 2× the segment median (> 1.25×) | +15 (+8) |
//! | no activity in 30 days or none at all (in 14 days) | +10 (+5) |
//! | velocity score < −0.3 | +10 |
//! | lead source win rate 5+ points below all deals (10+ closed) | +10 |
//! | still in lead or qualification | +5 |
//!
//! The risk is the sum clamped to 0–100, and p_win = 1 − risk / 100.

use super::data::{Inputs, OPEN_STAGES};
use super::features::{Observed, velocity_score};
use super::score::Factor;

/// The base risk every deal starts from.
pub const BASE_RISK: f64 = 30.0;

/// (p_win, factors sorted by points, largest risk first; `impact` is minus the points).
pub fn score(inputs: &Inputs, deal: usize, o: &Observed) -> (f64, Vec<Factor>) {
    let roles = inputs.roles[deal];
    let d = &inputs.deals[deal];
    let mut fired: Vec<(f64, &str, String, &str)> = Vec::new();
    if roles.blocker {
        fired.push((
            20.0,
            "blocker",
            "An unresolved blocker among the contacts".into(),
            "Meet the blocker: address their objections with the champion",
        ));
    }
    if roles.known && !roles.champion {
        fired.push((
            15.0,
            "champion",
            "No champion identified".into(),
            "Identify and enable a champion; schedule an executive engagement call",
        ));
    }
    if roles.champion {
        fired.push((
            -10.0,
            "champion",
            "A champion is identified".into(),
            "Keep the champion engaged",
        ));
    }
    let ratio = (o.days_in_stage + 1.0) / (o.median_stay + 1.0);
    if ratio > 1.25 {
        fired.push((
            if ratio > 2.0 { 15.0 } else { 8.0 },
            "days_in_stage_ratio",
            format!(
                "In {} for {:.0} days, {ratio:.1}× the segment median ({:.0} days)",
                OPEN_STAGES[o.stage], o.days_in_stage, o.median_stay
            ),
            "Agree a mutual close plan with dated next steps to unstick the stage",
        ));
    }
    match o.days_since_touch {
        Some(days) if days > 30.0 => fired.push((
            10.0,
            "days_since_touch",
            format!("Last activity {days:.0} days ago"),
            "Re-engage: book a meeting with the buyer this week",
        )),
        Some(days) if days > 14.0 => fired.push((
            5.0,
            "days_since_touch",
            format!("Last activity {days:.0} days ago"),
            "Re-engage: book a meeting with the buyer this week",
        )),
        Some(_) => {}
        None => fired.push((
            10.0,
            "days_since_touch",
            "No activity recorded on the deal".into(),
            "Re-engage: book a meeting with the buyer this week",
        )),
    }
    let velocity = velocity_score(o);
    if velocity < -0.3 {
        fired.push((
            10.0,
            "stage_velocity",
            format!("Deal moving slowly (velocity score {velocity:+.2})"),
            "Agree a mutual close plan with dated next steps to unstick the stage",
        ));
    }
    let source = o.rates[0];
    if source.closed >= 10.0 && source.rate < source.overall - 0.05 {
        fired.push((
            10.0,
            "lead_source_win_rate",
            format!(
                "Lead source ({}) has a {:.0}% win rate (all deals {:.0}%)",
                d.lead_source,
                100.0 * source.rate,
                100.0 * source.overall
            ),
            "Review qualification and the competitive landscape for this profile",
        ));
    }
    if o.stage <= 1 {
        fired.push((
            5.0,
            "stage",
            format!("Early stage ({})", OPEN_STAGES[o.stage]),
            "Qualify the next step that moves the deal to the next stage",
        ));
    }
    let risk = (BASE_RISK + fired.iter().map(|f| f.0).sum::<f64>()).clamp(0.0, 100.0);
    fired.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    let factors = fired
        .into_iter()
        .map(|(points, feature, text, action)| Factor {
            feature: feature.to_string(),
            text,
            impact: -points,
            action: action.to_string(),
        })
        .collect();
    (1.0 - risk / 100.0, factors)
}

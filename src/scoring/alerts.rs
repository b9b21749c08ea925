//! Insight alerts: rules over the scores and the history, as rows of `marts.alerts`.
//!
//! | rule | fires when | audience |
//! | --- | --- | --- |
//! | `high_risk_deal` | a deal's risk > 75 | rep, manager |
//! | `win_rate_decline` | a segment's quarter win rate is > 10 points below the prior quarter's | leadership |
//! | `rep_risk` | a rep's average deal risk is > 20 % above the team's | manager |
//! | `pipeline_health` | the pipeline health index is < 65 | cro |
//! | `pipeline_anomaly` | a day's pipeline movement is a robust outlier | leadership |
//!
//! An alert's id is a UUIDv5 of workspace, rule, subject and state (the state is the band or
//! period the alert is about), so the same unchanged alert keeps its id run after run:
//! [`reconcile`] marks it seen again instead of new, and only new ids are `is_new` (to be sent).
//! Delivery through channels is not done here.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::json;

use super::data::User;
use super::score::DealScore;
use super::trends::{Anomaly, DealFact, HealthIndex, quarter_label, quarter_of, segment_quarter};

/// The mart of alerts.
pub const ALERTS: &str = "marts.alerts";

/// Thresholds of the rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertThresholds {
    /// Deal risk above which a deal alert fires.
    pub high_risk: u8,
    /// Win-rate drop (fraction, 0.10 = 10 points) quarter over quarter.
    pub win_rate_drop: f64,
    /// Closed deals each quarter needs before a segment is compared.
    pub min_quarter_deals: u64,
    /// A rep's average risk above `(1 + rep_excess) ×` the team's.
    pub rep_excess: f64,
    /// Open deals a rep needs to be compared.
    pub min_rep_deals: usize,
    /// Pipeline health index below which the CRO is alerted.
    pub health: f64,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        Self {
            high_risk: 75,
            win_rate_drop: 0.10,
            min_quarter_deals: 10,
            rep_excess: 0.20,
            min_rep_deals: 3,
            health: 65.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// An alert as a rule produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub rule: &'static str,
    pub severity: Severity,
    /// What the alert is about: a deal id, segment, rep id, workspace or metric.
    pub subject: String,
    pub subject_name: String,
    /// The rep the alert concerns, for routing.
    pub owner_id: Option<String>,
    /// The manager to route to, when known.
    pub manager_id: Option<String>,
    /// Of `rep`, `manager`, `leadership`, `cro`.
    pub audience: Vec<&'static str>,
    pub title: String,
    pub body: String,
    pub details: serde_json::Value,
    /// The band or period the alert is about: part of its identity.
    pub state: String,
}

/// The namespace of alert ids.
const ALERT_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x3b2a_91c4_5d7e_4f60_8a1b_2c3d_4e5f_6071);

impl Alert {
    /// The deterministic id of the alert in `workspace`.
    pub fn id(&self, workspace: &str) -> String {
        let key = [workspace, self.rule, &self.subject, &self.state].join("\u{1f}");
        uuid::Uuid::new_v5(&ALERT_NAMESPACE, key.as_bytes()).to_string()
    }
}

fn money(x: f64) -> String {
    if x.abs() >= 1e6 {
        format!("${:.1}M", x / 1e6)
    } else if x.abs() >= 1e3 {
        format!("${:.0}K", x / 1e3)
    } else {
        format!("${x:.0}")
    }
}

/// High-risk deals: risk above the threshold, to the rep and the manager, with the top factors
/// and recommended actions.
pub fn high_risk_deals(
    scores: &[DealScore],
    users: &HashMap<String, User>,
    t: &AlertThresholds,
) -> Vec<Alert> {
    scores
        .iter()
        .filter(|s| s.deal_risk > t.high_risk)
        .map(|s| {
            let critical = s.deal_risk > 90;
            let mut actions: Vec<&str> = Vec::new();
            for f in &s.factors {
                if !actions.contains(&f.action.as_str()) {
                    actions.push(&f.action);
                }
            }
            let mut body = format!(
                "Deal: {} ({})\nRisk Score: {}/100\nStage: {}\n\nTop Risk Factors:\n",
                s.deal_name,
                s.amount.map_or("amount unknown".to_string(), money),
                s.deal_risk,
                s.stage
            );
            for f in &s.factors {
                body.push_str(&format!("• {}\n", f.text));
            }
            body.push_str("\nRecommended Actions:\n");
            for (k, a) in actions.iter().enumerate() {
                body.push_str(&format!("{}. {a}\n", k + 1));
            }
            Alert {
                rule: "high_risk_deal",
                severity: if critical {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                subject: s.deal_id.clone(),
                subject_name: s.deal_name.clone(),
                owner_id: s.owner_id.clone(),
                manager_id: s
                    .owner_id
                    .as_ref()
                    .and_then(|o| users.get(o))
                    .and_then(|u| u.manager_id.clone()),
                audience: vec!["rep", "manager"],
                title: format!("High-risk deal: {} (risk {})", s.deal_name, s.deal_risk),
                body,
                details: json!({
                    "deal_risk": s.deal_risk,
                    "p_win": s.p_win,
                    "stage": s.stage,
                    "amount": s.amount,
                    "velocity_score": s.velocity_score,
                    "factors": s.factors,
                }),
                state: if critical { "risk>90" } else { "risk>75" }.to_string(),
            }
        })
        .collect()
}

/// Segments whose win rate in the quarter of `as_of` is more than the threshold below the
/// prior quarter's, to leadership, with the affected deals and the revenue impact.
pub fn win_rate_declines(facts: &[DealFact], as_of: f64, t: &AlertThresholds) -> Vec<Alert> {
    let q = quarter_of(as_of);
    let prior: BTreeMap<String, _> = segment_quarter(facts, q - 1).into_iter().collect();
    let mut out = Vec::new();
    for (segment, cur) in segment_quarter(facts, q) {
        let Some(before) = prior.get(&segment) else {
            continue;
        };
        if cur.closed < t.min_quarter_deals || before.closed < t.min_quarter_deals {
            continue;
        }
        let (Some(now), Some(then)) = (cur.win_rate(), before.win_rate()) else {
            continue;
        };
        let drop = then - now;
        if drop <= t.win_rate_drop {
            continue;
        }
        let losses = cur.closed - cur.won;
        let expected_losses = (cur.closed as f64 * (1.0 - then)).round();
        let avg = cur.closed_amount / cur.closed as f64;
        let impact = drop * cur.closed as f64 * avg;
        let body = format!(
            "Current Quarter ({}): {:.0}% win rate\nPrior Quarter ({}): {:.0}% win rate\nChange: {:.0} percentage points\n\n\
             Affected Deals: {losses} losses (vs. {expected_losses} expected)\nRevenue Impact: {}\n\n\
             Recommended Actions:\n1. Conduct win/loss interviews\n2. Review competitive positioning\n3. Assess pricing strategy\n",
            quarter_label(q),
            100.0 * now,
            quarter_label(q - 1),
            100.0 * then,
            -100.0 * drop,
            money(impact)
        );
        out.push(Alert {
            rule: "win_rate_decline",
            severity: if drop > 0.2 {
                Severity::Critical
            } else {
                Severity::Warning
            },
            subject: segment.clone(),
            subject_name: segment.clone(),
            owner_id: None,
            manager_id: None,
            audience: vec!["leadership"],
            title: format!("Win rate decline: {segment} segment"),
            body,
            details: json!({
                "quarter": quarter_label(q),
                "prior_quarter": quarter_label(q - 1),
                "win_rate": now,
                "prior_win_rate": then,
                "closed": cur.closed,
                "losses": losses,
                "expected_losses": expected_losses,
                "revenue_impact": impact,
                "affected_deals": cur.lost_ids.iter().take(50).collect::<Vec<_>>(),
            }),
            state: quarter_label(q),
        });
    }
    out
}

/// Reps whose average open-deal risk is more than the threshold above the team's, to their
/// manager.
pub fn rep_risk(
    scores: &[DealScore],
    users: &HashMap<String, User>,
    t: &AlertThresholds,
) -> Vec<Alert> {
    if scores.is_empty() {
        return Vec::new();
    }
    let team = scores.iter().map(|s| f64::from(s.deal_risk)).sum::<f64>() / scores.len() as f64;
    let mut by: BTreeMap<&str, Vec<&DealScore>> = BTreeMap::new();
    for s in scores {
        if let Some(o) = &s.owner_id {
            by.entry(o).or_default().push(s);
        }
    }
    let mut out = Vec::new();
    for (rep, deals) in by {
        if deals.len() < t.min_rep_deals {
            continue;
        }
        let n = deals.len() as f64;
        let avg = deals.iter().map(|s| f64::from(s.deal_risk)).sum::<f64>() / n;
        if avg <= team * (1.0 + t.rep_excess) {
            continue;
        }
        let amount: f64 = deals.iter().filter_map(|s| s.amount).sum();
        let velocity = deals.iter().map(|s| s.velocity_score).sum::<f64>() / n;
        let mut common: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &deals {
            for f in &s.factors {
                *common.entry(f.feature.as_str()).or_default() += 1;
            }
        }
        let mut common: Vec<(&str, usize)> = common.into_iter().collect();
        common.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let user = users.get(rep);
        let name = user
            .and_then(|u| u.name.clone())
            .unwrap_or_else(|| rep.to_string());
        let mut body = format!(
            "Rep: {name}\nAverage Deal Risk: {avg:.0} (Team Avg: {team:.0})\nPipeline: {} deals, {}\n\nPotential Issues:\n",
            deals.len(),
            money(amount)
        );
        body.push_str(&format!(
            "• Deal progression (avg velocity: {velocity:+.2})\n"
        ));
        for (feature, count) in common.iter().take(3) {
            body.push_str(&format!(
                "• {feature} is a top risk factor on {count} of {} deals\n",
                deals.len()
            ));
        }
        body.push_str("\nRecommended Actions:\n1. Review qualification criteria\n2. Provide discovery call coaching\n3. Consider territory adjustment\n");
        let ratio = avg / team.max(1e-9);
        out.push(Alert {
            rule: "rep_risk",
            severity: Severity::Warning,
            subject: rep.to_string(),
            subject_name: name.clone(),
            owner_id: Some(rep.to_string()),
            manager_id: user.and_then(|u| u.manager_id.clone()),
            audience: vec!["manager"],
            title: format!("Rep performance review needed: {name}"),
            body,
            details: json!({
                "average_risk": avg,
                "team_average_risk": team,
                "open_deals": deals.len(),
                "pipeline_amount": amount,
                "average_velocity": velocity,
                "common_factors": common.iter().take(5).map(|c| json!({"feature": c.0, "deals": c.1})).collect::<Vec<_>>(),
            }),
            state: if ratio > 1.5 { "risk>150%" } else { "risk>120%" }.to_string(),
        });
    }
    out
}

/// The pipeline health index below the threshold, to the CRO.
pub fn pipeline_health(
    workspace: &str,
    health: Option<&HealthIndex>,
    t: &AlertThresholds,
) -> Option<Alert> {
    let h = health?;
    if h.index >= t.health {
        return None;
    }
    let critical = h.index < 50.0;
    let mut body = format!(
        "Current Index: {:.0}/100{}\n\nContributing Factors:\n",
        h.index,
        h.previous.map_or(String::new(), |p| format!(
            " ({} from {p:.0} last period)",
            if p > h.index { "down" } else { "up" }
        ))
    );
    for c in &h.components {
        let fmt = |x: f64| match c.name {
            "win rate" => format!("{:.0}%", 100.0 * x),
            "avg won deal size" => money(x),
            "sales cycle days" => format!("{x:.0} days"),
            _ => format!("{x:.1}×"),
        };
        body.push_str(&format!(
            "• {}: {} (prior {}), score {:.0}\n",
            c.name,
            fmt(c.current),
            fmt(c.prior),
            c.score
        ));
    }
    body.push_str("\nImmediate Actions Required:\n1. Strategic pipeline review meeting\n2. Assess market conditions\n3. Review sales process effectiveness\n");
    Some(Alert {
        rule: "pipeline_health",
        severity: if critical {
            Severity::Critical
        } else {
            Severity::Warning
        },
        subject: workspace.to_string(),
        subject_name: workspace.to_string(),
        owner_id: None,
        manager_id: None,
        audience: vec!["cro"],
        title: format!(
            "Pipeline Health Index: {} ({:.0}/100)",
            if critical { "Critical" } else { "Warning" },
            h.index
        ),
        body,
        details: serde_json::to_value(h).unwrap_or_default(),
        state: if critical { "index<50" } else { "index<65" }.to_string(),
    })
}

/// Outliers in daily pipeline movements, to leadership.
pub fn pipeline_anomalies(anomalies: &[Anomaly]) -> Vec<Alert> {
    anomalies
        .iter()
        .map(|a| {
            let direction = if a.z > 0.0 { "spike" } else { "drop" };
            Alert {
                rule: "pipeline_anomaly",
                severity: Severity::Info,
                subject: a.metric.to_string(),
                subject_name: a.metric.to_string(),
                owner_id: None,
                manager_id: None,
                audience: vec!["leadership"],
                title: format!("Unusual {direction} in {} on {}", a.metric, a.day),
                body: format!(
                    "{} on {}: {:.0} (usual {:.0}; robust z {:+.1})\n",
                    a.metric, a.day, a.count, a.baseline, a.z
                ),
                details: serde_json::to_value(a).unwrap_or_default(),
                state: format!("{}:{direction}", a.day),
            }
        })
        .collect()
}

/// An alert as stored in `marts.alerts`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    pub alert_id: String,
    pub rule: String,
    pub severity: String,
    pub subject: String,
    pub subject_name: String,
    pub owner_id: Option<String>,
    pub manager_id: Option<String>,
    /// Comma-separated audiences.
    pub audience: String,
    pub title: String,
    pub body: String,
    pub details: String,
    pub state: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// First seen in this run (or open again after being resolved): to be sent.
    pub is_new: bool,
    /// `open` while a run still produces it, `resolved` after.
    pub status: String,
}

/// Merges this run's alerts into the stored ones: an alert already stored keeps its id and
/// first_seen, gets last_seen = now and is not new (unless it had been resolved); a new id is
/// new; a stored open alert this run did not produce is resolved. Sorted by id.
pub fn reconcile(
    workspace: &str,
    stored: Vec<AlertRow>,
    current: &[Alert],
    now: DateTime<Utc>,
) -> Vec<AlertRow> {
    let mut stored: BTreeMap<String, AlertRow> = stored
        .into_iter()
        .map(|r| (r.alert_id.clone(), r))
        .collect();
    let mut out: BTreeMap<String, AlertRow> = BTreeMap::new();
    for a in current {
        let id = a.id(workspace);
        let std::collections::btree_map::Entry::Vacant(slot) = out.entry(id.clone()) else {
            continue;
        };
        let previous = stored.remove(&id);
        let was_open = previous.as_ref().is_some_and(|p| p.status == "open");
        let first_seen = previous.as_ref().map_or(now, |p| p.first_seen);
        slot.insert(AlertRow {
            alert_id: id,
            rule: a.rule.to_string(),
            severity: a.severity.as_str().to_string(),
            subject: a.subject.clone(),
            subject_name: a.subject_name.clone(),
            owner_id: a.owner_id.clone(),
            manager_id: a.manager_id.clone(),
            audience: a.audience.join(","),
            title: a.title.clone(),
            body: a.body.clone(),
            details: a.details.to_string(),
            state: a.state.clone(),
            first_seen,
            last_seen: now,
            is_new: !was_open,
            status: "open".into(),
        });
    }
    for (id, mut r) in stored {
        r.is_new = false;
        r.status = "resolved".into();
        out.insert(id, r);
    }
    out.into_values().collect()
}

/// The alerts to send: those first seen (or re-opened) in this run.
pub fn new_alerts(rows: &[AlertRow]) -> Vec<&AlertRow> {
    rows.iter().filter(|r| r.is_new).collect()
}

#[cfg(test)]
mod tests;

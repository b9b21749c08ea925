//! `GET /pipeline`: the manager's view. Open deals by stage and risk band (the latest scoring
//! run of `marts.deal_scores`), the rep table (open pipeline, weighted pipeline, win rate,
//! deals at risk) and the riskiest open deals, linked to their pages.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use minijinja::{Value, context};
use plotters::style::RGBColor;
use serde::{Deserialize, Serialize};

use super::Missing;
use super::charts::{self, Axis, Series};
use super::render::{self, PageError};
use super::viewer::{Viewer, percent_encode};
use crate::serve::data::fetch;
use crate::serve::state::AppState;

/// The normalized open stages, in pipeline order.
pub const OPEN_STAGES: [&str; 6] = [
    "lead",
    "qualification",
    "discovery",
    "demo",
    "proposal",
    "negotiation",
];
/// Risk bands, worst first; `unscored` for open deals the latest run did not score.
pub const BANDS: [&str; 5] = ["critical", "high", "medium", "low", "unscored"];
const BAND_COLORS: [RGBColor; 5] = [
    RGBColor(190, 50, 50),
    RGBColor(230, 130, 40),
    RGBColor(225, 190, 60),
    RGBColor(80, 160, 90),
    RGBColor(160, 160, 160),
];

/// The latest scoring run's rows.
const LATEST_SCORES: &str = "(SELECT * FROM marts.deal_scores \
     WHERE computed_at = (SELECT max(computed_at) FROM marts.deal_scores))";

/// An amount in USD where known, else in the deal's currency.
const AMOUNT: &str = "coalesce(d.amount_usd, d.amount, 0.0)";

#[derive(Debug, Deserialize)]
struct StageBand {
    stage: Option<String>,
    band: String,
    deals: i64,
    amount: Option<f64>,
}

#[derive(Debug, Serialize)]
struct StageRow {
    stage: String,
    /// Deals per band, in [`BANDS`] order.
    counts: Vec<i64>,
    deals: i64,
    amount: f64,
}

#[derive(Debug, Deserialize)]
struct OwnerDeals {
    owner_id: Option<String>,
    open_deals: i64,
    open_amount: Option<f64>,
    won: i64,
    closed: i64,
}

#[derive(Debug, Deserialize)]
struct OwnerScores {
    owner_id: Option<String>,
    weighted: Option<f64>,
    at_risk: i64,
}

#[derive(Debug, Deserialize)]
struct User {
    id: String,
    name: Option<String>,
}

/// A line of the rep table.
#[derive(Debug, Serialize)]
pub struct RepRow {
    /// The owner id; `(unassigned)` for deals without one.
    pub id: String,
    pub name: Option<String>,
    pub open_deals: i64,
    pub open_amount: f64,
    /// Σ amount × p_win over the rep's scored open deals; absent without scores.
    pub weighted: Option<f64>,
    pub won: i64,
    pub closed: i64,
    pub win_rate: Option<f64>,
    pub at_risk: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RiskyDeal {
    deal_id: String,
    name: Option<String>,
    stage: Option<String>,
    owner_id: Option<String>,
    amount: Option<f64>,
    deal_risk: Option<i64>,
    risk_band: Option<String>,
    p_win: Option<f64>,
    factors_text: Option<String>,
    /// The deal page's path, its id percent-encoded.
    #[serde(default)]
    href: String,
}

/// Deals by stage (pipeline order, then any other stage) and band.
fn stage_rows(cells: &[StageBand]) -> Vec<StageRow> {
    let mut by: BTreeMap<(usize, String), StageRow> = BTreeMap::new();
    for c in cells {
        let stage = c.stage.clone().unwrap_or_else(|| "(none)".into());
        let order = OPEN_STAGES
            .iter()
            .position(|s| *s == stage)
            .unwrap_or(OPEN_STAGES.len());
        let row = by
            .entry((order, stage.clone()))
            .or_insert_with(|| StageRow {
                stage,
                counts: vec![0; BANDS.len()],
                deals: 0,
                amount: 0.0,
            });
        let band = BANDS
            .iter()
            .position(|b| *b == c.band)
            .unwrap_or(BANDS.len() - 1);
        row.counts[band] += c.deals;
        row.deals += c.deals;
        row.amount += c.amount.unwrap_or(0.0);
    }
    by.into_values().collect()
}

fn owner_key(id: &Option<String>) -> String {
    id.clone().unwrap_or_else(|| "(unassigned)".into())
}

/// The rep table: every owner with deals, busiest open pipeline first.
fn rep_rows(
    deals: Vec<OwnerDeals>,
    scores: Option<Vec<OwnerScores>>,
    users: &HashMap<String, String>,
) -> Vec<RepRow> {
    let scores: Option<HashMap<String, OwnerScores>> =
        scores.map(|s| s.into_iter().map(|o| (owner_key(&o.owner_id), o)).collect());
    let mut rows: Vec<RepRow> = deals
        .into_iter()
        .map(|d| {
            let id = owner_key(&d.owner_id);
            let s = scores.as_ref().map(|s| s.get(&id));
            RepRow {
                name: users.get(&id).cloned(),
                open_deals: d.open_deals,
                open_amount: d.open_amount.unwrap_or(0.0),
                weighted: s.map(|s| s.and_then(|s| s.weighted).unwrap_or(0.0)),
                won: d.won,
                closed: d.closed,
                win_rate: (d.closed > 0).then(|| d.won as f64 / d.closed as f64),
                at_risk: s.map(|s| s.map_or(0, |s| s.at_risk)),
                id,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.open_amount
            .total_cmp(&a.open_amount)
            .then_with(|| a.id.cmp(&b.id))
    });
    rows
}

/// The manager's pipeline view.
pub async fn page(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    let session = state.session(&viewer.0.workspace).await?;
    let scored = fetch::<StageBand>(
        &session,
        "counting deals by stage and risk",
        &format!(
            "SELECT d.stage AS stage, coalesce(s.risk_band, 'unscored') AS band, \
               count(*) AS deals, sum({AMOUNT}) AS amount \
             FROM staging.deals d LEFT JOIN {LATEST_SCORES} s ON s.deal_id = d.id \
             WHERE NOT coalesce(d.is_closed, false) GROUP BY 1, 2"
        ),
        Vec::new(),
    )
    .await?;
    let scores_missing = scored.is_none();
    let cells = match scored {
        Some(c) => Some(c),
        None => {
            fetch::<StageBand>(
                &session,
                "counting deals by stage",
                &format!(
                    "SELECT d.stage AS stage, 'unscored' AS band, count(*) AS deals, \
                       sum({AMOUNT}) AS amount \
                     FROM staging.deals d WHERE NOT coalesce(d.is_closed, false) GROUP BY 1"
                ),
                Vec::new(),
            )
            .await?
        }
    };
    let Some(cells) = cells else {
        return render::page(
            "pipeline.html",
            context! {
                workspace => viewer.0.workspace.as_str(),
                nav => "pipeline",
                deals_missing => render::val(Missing::new(
                    "staging.deals",
                    "revlake run (or revlake sync, then revlake transform)",
                )),
            },
        );
    };
    let stages = stage_rows(&cells);
    let owners = fetch::<OwnerDeals>(
        &session,
        "summarizing deals by rep",
        &format!(
            "SELECT d.owner_id AS owner_id, \
               sum(CASE WHEN NOT coalesce(d.is_closed, false) THEN 1 ELSE 0 END) AS open_deals, \
               sum(CASE WHEN NOT coalesce(d.is_closed, false) THEN {AMOUNT} ELSE 0.0 END) \
                 AS open_amount, \
               sum(CASE WHEN coalesce(d.is_won, false) THEN 1 ELSE 0 END) AS won, \
               sum(CASE WHEN coalesce(d.is_closed, false) THEN 1 ELSE 0 END) AS closed \
             FROM staging.deals d GROUP BY d.owner_id"
        ),
        Vec::new(),
    )
    .await?
    .unwrap_or_default();
    let owner_scores = if scores_missing {
        None
    } else {
        fetch::<OwnerScores>(
            &session,
            "summarizing scores by rep",
            &format!(
                "SELECT d.owner_id AS owner_id, sum({AMOUNT} * coalesce(s.p_win, 0.0)) AS weighted, \
                   sum(CASE WHEN s.risk_band IN ('high', 'critical') THEN 1 ELSE 0 END) AS at_risk \
                 FROM staging.deals d JOIN {LATEST_SCORES} s ON s.deal_id = d.id \
                 WHERE NOT coalesce(d.is_closed, false) GROUP BY d.owner_id"
            ),
            Vec::new(),
        )
        .await?
    };
    let users: HashMap<String, String> = fetch::<User>(
        &session,
        "reading the reps",
        "SELECT id, name FROM staging.users",
        Vec::new(),
    )
    .await?
    .unwrap_or_default()
    .into_iter()
    .filter_map(|u| u.name.map(|n| (u.id, n)))
    .collect();
    let reps = rep_rows(owners, owner_scores, &users);
    let risky = if scores_missing {
        Vec::new()
    } else {
        fetch::<RiskyDeal>(
            &session,
            "listing the riskiest deals",
            &format!(
                "SELECT s.deal_id AS deal_id, d.name AS name, d.stage AS stage, \
                   d.owner_id AS owner_id, {AMOUNT} AS amount, s.deal_risk AS deal_risk, \
                   s.risk_band AS risk_band, s.p_win AS p_win, s.factors_text AS factors_text \
                 FROM {LATEST_SCORES} s JOIN staging.deals d ON d.id = s.deal_id \
                 WHERE NOT coalesce(d.is_closed, false) \
                 ORDER BY s.deal_risk DESC NULLS LAST, s.deal_id LIMIT 20"
            ),
            Vec::new(),
        )
        .await?
        .unwrap_or_default()
    };
    let mut risky = risky;
    for d in &mut risky {
        d.href = format!("/deals/{}", percent_encode(&d.deal_id));
    }
    let labels: Vec<String> = stages.iter().map(|s| s.stage.clone()).collect();
    let series: Vec<Series> = BANDS
        .iter()
        .enumerate()
        .map(|(b, name)| Series {
            name: (*name).to_string(),
            values: stages.iter().map(|s| Some(s.counts[b] as f64)).collect(),
        })
        .collect();
    let chart = charts::or_note(
        charts::bars(
            "Open deals by stage and risk band",
            &labels,
            &series,
            true,
            Axis::Count,
            Some(&BAND_COLORS),
            None,
        ),
        "stage and risk",
    );
    let totals: Vec<i64> = (0..BANDS.len())
        .map(|b| stages.iter().map(|s| s.counts[b]).sum())
        .collect();
    render::page(
        "pipeline.html",
        context! {
            workspace => viewer.0.workspace.as_str(),
            nav => "pipeline",
            bands => BANDS,
            stages => render::val(&stages),
            totals => totals,
            open_deals => stages.iter().map(|s| s.deals).sum::<i64>(),
            open_amount => stages.iter().map(|s| s.amount).sum::<f64>(),
            reps => render::val(&reps),
            risky => render::val(&risky),
            scores_missing => scores_missing.then(|| render::val(Missing::new("marts.deal_scores", "revlake score"))),
            chart => Value::from_safe_string(chart),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_come_in_pipeline_order_and_reps_by_open_pipeline() {
        let cell = |stage: &str, band: &str, deals| StageBand {
            stage: Some(stage.into()),
            band: band.into(),
            deals,
            amount: Some(10.0 * deals as f64),
        };
        let rows = stage_rows(&[
            cell("proposal", "high", 2),
            cell("lead", "low", 1),
            cell("custom", "odd-band", 4),
            cell("proposal", "critical", 1),
        ]);
        let names: Vec<&str> = rows.iter().map(|r| r.stage.as_str()).collect();
        assert_eq!(names, ["lead", "proposal", "custom"]);
        assert_eq!(rows[1].counts, [1, 2, 0, 0, 0]);
        assert_eq!(rows[2].counts[4], 4, "an unknown band counts as unscored");
        assert_eq!(rows[1].amount, 30.0);

        let deals = vec![
            OwnerDeals {
                owner_id: Some("u1".into()),
                open_deals: 1,
                open_amount: Some(5.0),
                won: 1,
                closed: 4,
            },
            OwnerDeals {
                owner_id: None,
                open_deals: 2,
                open_amount: Some(50.0),
                won: 0,
                closed: 0,
            },
        ];
        let users = HashMap::from([("u1".to_string(), "Ada".to_string())]);
        let reps = rep_rows(deals, None, &users);
        assert_eq!(reps[0].id, "(unassigned)");
        assert_eq!(reps[0].win_rate, None);
        assert_eq!(reps[1].name.as_deref(), Some("Ada"));
        assert_eq!(reps[1].win_rate, Some(0.25));
        assert_eq!(reps[1].weighted, None, "no scores: no weighted pipeline");
    }
}

//! `GET /deals/{id}`: one deal with its score factors, stage history, stakeholders and simulated
//! scenarios. The data comes from the same handlers as `GET /api/deals/{id}` and
//! `GET /api/deals/{id}/forecast`, so the page and the API cannot disagree, and a deal of
//! another workspace is a 404 here exactly as there.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{Value, context};
use serde::Deserialize;

use super::Missing;
use super::charts::{self, Axis};
use super::render::{self, PageError};
use super::viewer::Viewer;
use crate::serve::data::get_deal;
use crate::serve::extract::ApiQuery;
use crate::serve::simulate::{DealForecastResponse, RunsQuery, deal_forecast};
use crate::serve::state::AppState;

/// A factor of `marts.deal_scores.top_factors`.
#[derive(Debug, Deserialize, serde::Serialize)]
struct Factor {
    feature: Option<String>,
    text: Option<String>,
    impact: Option<f64>,
    action: Option<String>,
}

/// The scenarios of an open deal, or why there are none.
enum Scenarios {
    Shown(Box<DealForecastResponse>),
    Note(String),
    Missing(Missing),
}

fn scenario_chart(f: &DealForecastResponse) -> String {
    let labels: Vec<String> = f
        .scenarios
        .iter()
        .map(|s| s.name.replace('_', " "))
        .collect();
    let rows: Vec<(f64, f64, f64)> = f
        .scenarios
        .iter()
        .map(|s| (s.outlook.p_win_low, s.outlook.p_win, s.outlook.p_win_high))
        .collect();
    charts::or_note(
        charts::ranges(
            "Win probability by scenario (95 % interval)",
            &labels,
            &rows,
            Axis::Share,
        ),
        "scenario",
    )
}

/// The deal page.
pub async fn page(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let principal = viewer.0.clone();
    let detail = get_deal(
        State(state.clone()),
        Extension(principal.clone()),
        Path(id.clone()),
    )
    .await?
    .0;
    let is_open = !detail.deal.is_closed.unwrap_or(false);
    let scenarios = if !is_open {
        Scenarios::Note("The deal is closed: only open deals are simulated.".into())
    } else {
        let runs = ApiQuery(RunsQuery {
            n_simulations: None,
            seed: None,
        });
        match deal_forecast(State(state.clone()), Extension(principal), Path(id), runs).await {
            Ok(f) => Scenarios::Shown(Box::new(f.0)),
            Err(e) if e.code == "not_mined" => Scenarios::Missing(Missing::new(
                "marts.stage_transition_matrix",
                "revlake mine",
            )),
            Err(e) if e.status == StatusCode::CONFLICT || e.status == StatusCode::NOT_FOUND => {
                Scenarios::Note(e.message)
            }
            Err(e) => return Err(e.into()),
        }
    };
    let factors: Vec<Factor> = detail
        .score
        .as_ref()
        .and_then(|s| s.top_factors.clone())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let (forecast, note, missing, chart) = match &scenarios {
        Scenarios::Shown(f) => (
            Some(render::val(f.as_ref())),
            None,
            None,
            Some(Value::from_safe_string(scenario_chart(f))),
        ),
        Scenarios::Note(n) => (None, Some(n.clone()), None, None),
        Scenarios::Missing(m) => (None, None, Some(render::val(m)), None),
    };
    render::page(
        "deal.html",
        context! {
            workspace => viewer.0.workspace.as_str(),
            nav => "pipeline",
            d => render::val(&detail.deal),
            score => detail.score.as_ref().map(render::val),
            score_missing => render::val(Missing::new("marts.deal_scores", "revlake score")),
            is_open => is_open,
            factors => render::val(&factors),
            history => render::val(&detail.stage_history),
            stakeholders => render::val(&detail.stakeholders),
            forecast => forecast,
            forecast_note => note,
            forecast_missing => missing,
            chart => chart,
        },
    )
}

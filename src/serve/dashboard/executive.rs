//! `GET /`: the executive view. The pipeline health index (computed from the deal history by
//! [`crate::scoring::trends::health_index`], as `revlake score` does for its alert and digest),
//! the scored deals' health, the forecast distribution (`marts.pipeline_forecast`,
//! `marts.deal_forecasts` from `revlake forecast`), and win-rate trends by segment (closed deals
//! of `staging.deals` per month).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use super::Missing;
use super::charts::{self, Axis, Series};
use super::render::{self, PageError};
use super::viewer::Viewer;
use crate::scoring::ScoringError;
use crate::scoring::trends::{HEALTH_WINDOW_DAYS, HealthIndex, facts, health_index};
use crate::serve::data::fetch;
use crate::serve::error::ApiError;
use crate::serve::state::AppState;
use crate::sql::SqlSession;

/// Months of the win-rate trend.
pub const TREND_MONTHS: usize = 12;

#[derive(Debug, Serialize)]
struct Health {
    index: Option<HealthIndex>,
    /// Why there is no index (too little closed history).
    note: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ScoreSummary {
    pub scored: Option<i64>,
    pub avg_health: Option<f64>,
    pub avg_risk: Option<f64>,
    pub at_risk: Option<i64>,
    pub method: Option<String>,
    pub as_of: Option<String>,
}

/// The health index of the workspace at the data's "now".
async fn health(state: &AppState, viewer: &Viewer) -> Result<Result<Health, Missing>, PageError> {
    let inputs = match crate::scoring::load_inputs(&state.lake, &viewer.0.workspace).await {
        Ok(i) => i,
        Err(ScoringError::NoDeals { .. }) => {
            return Ok(Err(Missing::new(
                "staging.deals",
                "revlake run (or revlake sync, then revlake transform)",
            )));
        }
        Err(e) => return Err(PageError::internal("computing the health index", &e)),
    };
    let index = tokio::task::spawn_blocking(move || health_index(&facts(&inputs), inputs.as_of))
        .await
        .map_err(|e| PageError::internal("computing the health index", &e))?;
    let note = index.is_none().then(|| {
        format!(
            "Not enough history: the index compares the last {HEALTH_WINDOW_DAYS:.0} days with the \
             {HEALTH_WINDOW_DAYS:.0} before, and needs closed and won deals in both."
        )
    });
    Ok(Ok(Health { index, note }))
}

/// Counts over the latest scoring run of `marts.deal_scores`.
pub async fn score_summary(session: &SqlSession) -> Result<Option<ScoreSummary>, ApiError> {
    Ok(fetch::<ScoreSummary>(
        session,
        "summarizing the deal scores",
        "SELECT count(*) AS scored, avg(CAST(health_score AS DOUBLE)) AS avg_health, \
           avg(CAST(deal_risk AS DOUBLE)) AS avg_risk, \
           sum(CASE WHEN risk_band IN ('high', 'critical') THEN 1 ELSE 0 END) AS at_risk, \
           max(method) AS method, CAST(max(as_of) AS VARCHAR) AS as_of \
         FROM marts.deal_scores \
         WHERE computed_at = (SELECT max(computed_at) FROM marts.deal_scores)",
        Vec::new(),
    )
    .await?
    .and_then(|r| r.into_iter().next()))
}

/// A row of `marts.pipeline_forecast` for the workspace as a whole.
#[derive(Debug, Serialize, Deserialize)]
struct ForecastRow {
    view: String,
    period_kind: String,
    period: String,
    open_deals: Option<i64>,
    open_amount: Option<f64>,
    booked: Option<f64>,
    mean: Option<f64>,
    p10: Option<f64>,
    p50: Option<f64>,
    p90: Option<f64>,
    quota: Option<f64>,
    p_quota: Option<f64>,
    runs: Option<i64>,
    low_confidence: Option<bool>,
    as_of: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct DealForecastSummary {
    deals: Option<i64>,
    expected_value: Option<f64>,
    avg_p_win: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Forecast {
    /// The whole open pipeline, one row per view.
    views: Vec<ForecastRow>,
    /// Current trajectory per month.
    months: Vec<ForecastRow>,
    deals: Option<DealForecastSummary>,
}

async fn forecast(session: &SqlSession) -> Result<Result<Forecast, Missing>, PageError> {
    let Some(rows) = fetch::<ForecastRow>(
        session,
        "reading the pipeline forecast",
        "SELECT view, period_kind, period, open_deals, open_amount, booked, mean, p10, p50, p90, \
           quota, p_quota, runs, low_confidence, CAST(as_of AS VARCHAR) AS as_of \
         FROM marts.pipeline_forecast WHERE dimension = 'workspace' \
           AND period_kind IN ('all', 'month') ORDER BY period, view",
        Vec::new(),
    )
    .await?
    else {
        return Ok(Err(Missing::new(
            "marts.pipeline_forecast",
            "revlake forecast",
        )));
    };
    if rows.is_empty() {
        return Ok(Err(Missing::new(
            "marts.pipeline_forecast",
            "revlake forecast",
        )));
    }
    let order = |v: &str| match v {
        "worst_case" => 0,
        "current_trajectory" => 1,
        "best_case" => 2,
        _ => 3,
    };
    let (mut views, rest): (Vec<ForecastRow>, Vec<ForecastRow>) =
        rows.into_iter().partition(|r| r.period_kind == "all");
    views.sort_by_key(|r| order(&r.view));
    let months = rest
        .into_iter()
        .filter(|r| r.view == "current_trajectory")
        .collect();
    let deals = fetch::<DealForecastSummary>(
        session,
        "summarizing the deal forecasts",
        "SELECT count(*) AS deals, sum(expected_value) AS expected_value, avg(p_win) AS avg_p_win \
         FROM marts.deal_forecasts",
        Vec::new(),
    )
    .await?
    .and_then(|r| r.into_iter().next());
    Ok(Ok(Forecast {
        views,
        months,
        deals,
    }))
}

/// Closed deals of one segment in one month.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonthSegment {
    pub month: String,
    pub segment: String,
    pub closed: i64,
    pub won: i64,
}

#[derive(Debug, Serialize)]
struct WinRates {
    months: Vec<String>,
    /// Per segment: its name and, per month, `(won, closed)`.
    segments: Vec<SegmentTrend>,
}

#[derive(Debug, Serialize)]
struct SegmentTrend {
    segment: String,
    cells: Vec<Cell>,
    won: i64,
    closed: i64,
    rate: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Cell {
    won: i64,
    closed: i64,
    rate: Option<f64>,
}

/// Closed deals per month (of `closed_at`, UTC) and segment (`(none)` without one).
pub const WIN_RATE_SQL: &str = "SELECT to_char(closed_at, '%Y-%m') AS month, \
       coalesce(nullif(trim(segment), ''), '(none)') AS segment, \
       count(*) AS closed, \
       sum(CASE WHEN coalesce(is_won, false) THEN 1 ELSE 0 END) AS won \
     FROM staging.deals WHERE coalesce(is_closed, false) AND closed_at IS NOT NULL \
     GROUP BY 1, 2 ORDER BY 1, 2";

async fn win_rates(session: &SqlSession) -> Result<Result<WinRates, Missing>, PageError> {
    let Some(rows) =
        fetch::<MonthSegment>(session, "computing the win rates", WIN_RATE_SQL, Vec::new()).await?
    else {
        return Ok(Err(Missing::new(
            "staging.deals",
            "revlake run (or revlake sync, then revlake transform)",
        )));
    };
    Ok(Ok(trend(&rows)))
}

/// The last [`TREND_MONTHS`] months with closed deals, per segment.
fn trend(rows: &[MonthSegment]) -> WinRates {
    let all_months: BTreeSet<&str> = rows.iter().map(|r| r.month.as_str()).collect();
    let months: Vec<String> = all_months
        .iter()
        .rev()
        .take(TREND_MONTHS)
        .rev()
        .map(|m| m.to_string())
        .collect();
    let mut by: BTreeMap<&str, BTreeMap<&str, (i64, i64)>> = BTreeMap::new();
    for r in rows {
        if months.iter().any(|m| m == &r.month) {
            by.entry(r.segment.as_str())
                .or_default()
                .insert(r.month.as_str(), (r.won, r.closed));
        }
    }
    let rate = |won: i64, closed: i64| (closed > 0).then(|| won as f64 / closed as f64);
    let segments = by
        .into_iter()
        .map(|(segment, cells)| {
            let cells: Vec<Cell> = months
                .iter()
                .map(|m| {
                    let (won, closed) = cells.get(m.as_str()).copied().unwrap_or((0, 0));
                    Cell {
                        won,
                        closed,
                        rate: rate(won, closed),
                    }
                })
                .collect();
            let won = cells.iter().map(|c| c.won).sum();
            let closed = cells.iter().map(|c| c.closed).sum();
            SegmentTrend {
                segment: segment.to_string(),
                cells,
                won,
                closed,
                rate: rate(won, closed),
            }
        })
        .collect();
    WinRates { months, segments }
}

fn section<T: Serialize>(r: Result<T, Missing>) -> Value {
    match r {
        Ok(v) => context! { data => render::val(&v), missing => None::<Value> },
        Err(m) => context! { data => None::<()>, missing => render::val(&m) },
    }
}

fn health_chart(h: &HealthIndex) -> String {
    let labels: Vec<String> = h.components.iter().map(|c| c.name.to_string()).collect();
    let series = [Series {
        name: "score (75 = flat)".into(),
        values: h.components.iter().map(|c| Some(c.score)).collect(),
    }];
    charts::or_note(
        charts::bars(
            "Health index components (0–100)",
            &labels,
            &series,
            false,
            Axis::Count,
            None,
            Some((75.0, "flat")),
        ),
        "health",
    )
}

fn forecast_charts(f: &Forecast) -> (String, String) {
    let labels: Vec<String> = f.views.iter().map(|r| r.view.replace('_', " ")).collect();
    let rows: Vec<(f64, f64, f64)> = f
        .views
        .iter()
        .map(|r| {
            (
                r.p10.unwrap_or(0.0),
                r.p50.unwrap_or(0.0),
                r.p90.unwrap_or(0.0),
            )
        })
        .collect();
    let views = charts::or_note(
        charts::ranges(
            "Closed-won revenue of the open pipeline: p10–p90, p50 marked",
            &labels,
            &rows,
            Axis::Money,
        ),
        "forecast",
    );
    let months: Vec<String> = f.months.iter().map(|r| r.period.clone()).collect();
    let series = [
        Series {
            name: "booked".into(),
            values: f.months.iter().map(|r| r.booked).collect(),
        },
        Series {
            name: "forecast mean".into(),
            values: f.months.iter().map(|r| r.mean).collect(),
        },
    ];
    let by_month = charts::or_note(
        charts::bars(
            "Revenue by month (current trajectory)",
            &months,
            &series,
            false,
            Axis::Money,
            None,
            None,
        ),
        "monthly forecast",
    );
    (views, by_month)
}

fn win_rate_chart(w: &WinRates) -> String {
    let series: Vec<Series> = w
        .segments
        .iter()
        .map(|s| Series {
            name: s.segment.clone(),
            values: s.cells.iter().map(|c| c.rate).collect(),
        })
        .collect();
    charts::or_note(
        charts::lines(
            "Win rate by segment and month",
            &w.months,
            &series,
            Axis::Share,
        ),
        "win-rate",
    )
}

/// The executive view.
pub async fn page(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    let state = state.as_ref();
    let viewer = &viewer;
    let session = state.session(&viewer.0.workspace).await?;
    let health = health(state, viewer).await?;
    let scores = score_summary(&session).await?;
    let forecast = forecast(&session).await?;
    let win_rates = win_rates(&session).await?;
    let health_svg = health
        .as_ref()
        .ok()
        .and_then(|h| h.index.as_ref())
        .map(health_chart);
    let (forecast_svg, months_svg) = forecast.as_ref().ok().map(forecast_charts).unzip();
    let win_svg = win_rates.as_ref().ok().map(win_rate_chart);
    let safe = |s: Option<String>| s.map(Value::from_safe_string);
    render::page(
        "executive.html",
        context! {
            workspace => viewer.0.workspace.as_str(),
            nav => "executive",
            health => section(health),
            scores => scores.map(|s| render::val(&s)),
            scores_missing => render::val(Missing::new("marts.deal_scores", "revlake score")),
            forecast => section(forecast),
            win_rates => section(win_rates),
            health_svg => safe(health_svg),
            forecast_svg => safe(forecast_svg),
            months_svg => safe(months_svg),
            win_svg => safe(win_svg),
            trend_months => TREND_MONTHS,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trend_keeps_the_last_months_per_segment() {
        let row = |month: &str, segment: &str, closed, won| MonthSegment {
            month: month.into(),
            segment: segment.into(),
            closed,
            won,
        };
        let mut rows = vec![row("2020-01", "smb", 5, 5)];
        for m in 1..=12 {
            rows.push(row(&format!("2025-{m:02}"), "smb", 4, 1));
        }
        rows.push(row("2025-12", "enterprise", 3, 2));
        let t = trend(&rows);
        assert_eq!(t.months.len(), TREND_MONTHS);
        assert_eq!(t.months[0], "2025-01");
        let ent = &t.segments[0];
        assert_eq!(
            (ent.segment.as_str(), ent.won, ent.closed),
            ("enterprise", 2, 3)
        );
        assert_eq!(ent.cells[0].rate, None);
        assert_eq!(ent.cells[11].rate, Some(2.0 / 3.0));
        let smb = &t.segments[1];
        assert_eq!(
            (smb.won, smb.closed),
            (12, 48),
            "2020-01 is outside the window"
        );
    }
}

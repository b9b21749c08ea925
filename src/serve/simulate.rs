//! The simulation endpoints: a what-if on one deal, one deal's forecast in three views with its
//! recommendations, and the pipeline forecast by rep, segment or period. All reuse the
//! workspace's mined model and open deals ([`AppState::forecast_inputs`]) and run on the
//! blocking pool, at most `--concurrent-simulations` at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use datafusion::scalar::ScalarValue;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::data::fetch;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery};
use super::keys::Principal;
use super::state::{AppState, MIN_SIMULATIONS};
use crate::simulate::pipeline::{Dimension, PeriodKind, PipelineRow, View, pipeline_forecast};
use crate::simulate::recommend::{candidates, recommend};
use crate::simulate::scenario::{AmountChange, Interval};
use crate::simulate::{
    Calendar, DealForecast, OpenDeal, Scenario, SimConfig, SimulateError, compare, forecast_deals,
};

/// The most runs a request may ask for; the server's `--max-simulations` may be lower.
pub const MAX_SIMULATIONS: u32 = 20_000;
/// Runs when a request does not say.
const DEFAULT_SIMULATIONS: u32 = 2_000;
/// Months of the close-date calendar.
const MONTHS: u32 = 12;

/// A what-if, e.g. `{"type": "accelerate_stage", "params": {"stage": "demo", "days": 7}}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    #[serde(rename = "type")]
    pub kind: ScenarioType,
    #[serde(default)]
    pub params: ScenarioParams,
}

/// What the scenario changes.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScenarioType {
    /// A champion is identified (no params).
    AddChampion,
    /// The blocking objection is resolved (no params).
    RemoveBlocker,
    /// Every stay in `stage` (default: the current one) is `days` shorter.
    AccelerateStage,
    /// The deal is touched `factor` times as often (default 2).
    IncreaseTouchpoints,
    /// The amount becomes `amount`, or is multiplied by `ratio`.
    ChangeAmount,
    /// Context factors set to levels: `factors`.
    SetContext,
}

/// The parameters the scenario type takes; others must be absent.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScenarioParams {
    pub stage: Option<String>,
    pub days: Option<f64>,
    pub factor: Option<f64>,
    pub amount: Option<f64>,
    pub ratio: Option<f64>,
    pub factors: Option<BTreeMap<String, String>>,
}

impl ScenarioSpec {
    /// The scenario, or a 400 naming the parameter that is missing, extra or out of range.
    pub fn to_scenario(&self) -> Result<Scenario, ApiError> {
        let p = &self.params;
        let given: Vec<&str> = [
            ("stage", p.stage.is_some()),
            ("days", p.days.is_some()),
            ("factor", p.factor.is_some()),
            ("amount", p.amount.is_some()),
            ("ratio", p.ratio.is_some()),
            ("factors", p.factors.is_some()),
        ]
        .into_iter()
        .filter_map(|(n, g)| g.then_some(n))
        .collect();
        let (name, allowed): (&str, &[&str]) = match self.kind {
            ScenarioType::AddChampion => ("add_champion", &[]),
            ScenarioType::RemoveBlocker => ("remove_blocker", &[]),
            ScenarioType::AccelerateStage => ("accelerate_stage", &["stage", "days"]),
            ScenarioType::IncreaseTouchpoints => ("increase_touchpoints", &["factor"]),
            ScenarioType::ChangeAmount => ("change_amount", &["amount", "ratio"]),
            ScenarioType::SetContext => ("set_context", &["factors"]),
        };
        if let Some(extra) = given.iter().find(|g| !allowed.contains(g)) {
            return Err(bad_scenario(format!(
                "{name} does not take params.{extra} (it takes: {})",
                if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                }
            )));
        }
        let positive = |field: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(v)
            } else {
                Err(bad_scenario(format!(
                    "params.{field} must be a positive number, not {v}"
                )))
            }
        };
        Ok(match self.kind {
            ScenarioType::AddChampion => Scenario::AddChampion,
            ScenarioType::RemoveBlocker => Scenario::RemoveBlocker,
            ScenarioType::AccelerateStage => Scenario::AccelerateStage {
                stage: p.stage.clone(),
                days: positive(
                    "days",
                    p.days.ok_or_else(|| {
                        bad_scenario("accelerate_stage needs params.days (e.g. 7)".into())
                    })?,
                )?,
            },
            ScenarioType::IncreaseTouchpoints => Scenario::IncreaseTouchpoints {
                factor: positive("factor", p.factor.unwrap_or(2.0))?,
            },
            ScenarioType::ChangeAmount => match (p.amount, p.ratio) {
                (Some(a), None) if a.is_finite() && a >= 0.0 => {
                    Scenario::ChangeAmount(AmountChange::To(a))
                }
                (Some(a), None) => {
                    return Err(bad_scenario(format!(
                        "params.amount must be zero or more, not {a}"
                    )));
                }
                (None, Some(r)) => {
                    Scenario::ChangeAmount(AmountChange::Ratio(positive("ratio", r)?))
                }
                _ => {
                    return Err(bad_scenario(
                        "change_amount needs exactly one of params.amount and params.ratio".into(),
                    ));
                }
            },
            ScenarioType::SetContext => {
                let factors = p
                    .factors
                    .as_ref()
                    .filter(|f| !f.is_empty())
                    .ok_or_else(|| {
                        bad_scenario(
                            "set_context needs params.factors, e.g. {\"champion\": \"true\"}"
                                .into(),
                        )
                    })?;
                if let Some((k, _)) = factors
                    .iter()
                    .find(|(k, v)| k.trim().is_empty() || v.trim().is_empty())
                {
                    return Err(bad_scenario(format!(
                        "params.factors: factor `{k}` needs a non-empty name and level"
                    )));
                }
                Scenario::SetContext(
                    factors
                        .iter()
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                        .collect(),
                )
            }
        })
    }
}

fn bad_scenario(message: String) -> ApiError {
    ApiError::bad_request("bad_scenario", message)
}

fn runs(state: &AppState, asked: Option<u32>) -> Result<u32, ApiError> {
    let ceiling = state.config.max_simulations.min(MAX_SIMULATIONS);
    let n = asked.unwrap_or(DEFAULT_SIMULATIONS.min(ceiling));
    if !(MIN_SIMULATIONS..=ceiling).contains(&n) {
        return Err(ApiError::bad_request(
            "bad_simulations",
            format!("n_simulations={n}: give {MIN_SIMULATIONS} to {ceiling}"),
        ));
    }
    Ok(n)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    /// An open deal of the key's workspace (staging.deals.id).
    pub deal_id: String,
    pub scenario: ScenarioSpec,
    /// Runs of each of baseline and modified (default 2000).
    #[schema(minimum = 100, maximum = 20000)]
    pub n_simulations: Option<u32>,
    /// Seed of the random streams: the same seed gives the same numbers.
    #[schema(minimum = 0)]
    pub seed: Option<u64>,
}

/// A deal's simulated outlook.
#[derive(Debug, Serialize, ToSchema)]
pub struct Outlook {
    pub p_win: f64,
    /// 95 % Wilson interval of p_win.
    pub p_win_low: f64,
    pub p_win_high: f64,
    /// Expected days to close (over the runs that closed); absent if none did.
    pub days: Option<f64>,
    pub days_p2_5: Option<f64>,
    pub days_p97_5: Option<f64>,
    pub amount: f64,
    pub expected_value: f64,
    /// The model context the deal was simulated in.
    pub context: String,
}

impl From<&DealForecast> for Outlook {
    fn from(f: &DealForecast) -> Self {
        Self {
            p_win: f.stats.p_win,
            p_win_low: f.stats.p_win_low,
            p_win_high: f.stats.p_win_high,
            days: f.stats.expected_days,
            days_p2_5: f.stats.days_p2_5,
            days_p97_5: f.stats.days_p97_5,
            amount: f.amount,
            expected_value: f.expected_value,
            context: f.context_key.clone(),
        }
    }
}

/// An estimate with its 95 % interval.
#[derive(Debug, Serialize, ToSchema)]
pub struct Estimate {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

impl From<&Interval> for Estimate {
    fn from(i: &Interval) -> Self {
        Self {
            estimate: i.estimate,
            low: i.low,
            high: i.high,
        }
    }
}

/// Modified minus baseline, paired run by run (common random numbers).
#[derive(Debug, Serialize, ToSchema)]
pub struct Delta {
    pub p_win: Estimate,
    /// Over the runs that closed in both; absent if none did.
    pub days: Option<Estimate>,
    pub expected_value: Estimate,
}

/// How far to trust the answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Confidence {
    /// The level of every interval (0.95).
    pub level: f64,
    pub n_simulations: u32,
    /// The p_win delta's interval excludes zero.
    pub p_win_change_significant: bool,
    /// The model was mined from little closed history.
    pub model_low_confidence: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SimulateResponse {
    pub deal_id: String,
    /// The scenario as revlake writes it, e.g. `accelerate_stage:demo=7`.
    pub scenario: String,
    pub as_of: String,
    pub baseline: Outlook,
    pub modified: Outlook,
    pub delta: Delta,
    pub confidence: Confidence,
}

/// The open deal `id` of the inputs, else 404 (no such deal) or 409 (a closed deal).
async fn open_deal(
    state: &AppState,
    principal: &Principal,
    deals: &[OpenDeal],
    id: &str,
) -> Result<OpenDeal, ApiError> {
    if let Some(d) = deals.iter().find(|d| d.id == id) {
        return Ok(d.clone());
    }
    #[derive(Deserialize)]
    struct Stage {
        stage: Option<String>,
    }
    let session = state.session(&principal.workspace).await?;
    let found = fetch::<Stage>(
        &session,
        "reading the deal",
        "SELECT stage FROM staging.deals WHERE id = $1 LIMIT 1",
        vec![ScalarValue::from(id)],
    )
    .await?
    .and_then(|d| d.into_iter().next());
    match found {
        Some(d) => Err(ApiError::conflict(
            "deal_not_open",
            format!(
                "deal `{id}` is not open (stage {}): only open deals are simulated",
                d.stage.as_deref().unwrap_or("unknown")
            ),
        )),
        None => Err(ApiError::not_found("deal", id)),
    }
}

async fn blocking<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce() -> Result<T, SimulateError> + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = state
        .simulations
        .acquire()
        .await
        .map_err(|e| ApiError::internal("waiting for a simulation slot", &e))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal("the simulation task", &e))?
        .map_err(|e| ApiError::from_simulate("simulating", e))
}

/// Simulate a what-if on one open deal against its baseline.
#[utoipa::path(
    post,
    path = "/api/simulate",
    tag = "simulation",
    request_body = SimulateRequest,
    responses(
        (status = 200, description = "Baseline, modified and paired delta", body = SimulateResponse),
        (status = 400, description = "A bad scenario, parameter or n_simulations, or malformed JSON", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 404, description = "No such deal in the key's workspace", body = ErrorBody),
        (status = 409, description = "The deal is closed, or the workspace is not mined yet", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body not sent as JSON", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    )
)]
pub async fn simulate(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    ApiJson(request): ApiJson<SimulateRequest>,
) -> Result<ApiJson<SimulateResponse>, ApiError> {
    let scenario = request.scenario.to_scenario()?;
    let n = runs(&state, request.n_simulations)?;
    let inputs = state.forecast_inputs(&principal.workspace).await?;
    let deal = open_deal(&state, &principal, &inputs.deals, &request.deal_id).await?;
    let config = SimConfig {
        runs: n,
        seed: request.seed.unwrap_or(0),
        ..SimConfig::default()
    };
    let calendar = Calendar::new(inputs.as_of.date_naive(), MONTHS);
    let model = inputs.model.clone();
    let cmp = blocking(&state, move || {
        compare(&model, &deal, &scenario, &calendar, &config)
    })
    .await?;
    let d = &cmp.delta;
    Ok(ApiJson(SimulateResponse {
        deal_id: request.deal_id,
        scenario: cmp.scenario.to_string(),
        as_of: inputs.as_of.to_rfc3339(),
        baseline: (&cmp.baseline).into(),
        modified: (&cmp.modified).into(),
        delta: Delta {
            p_win: (&d.p_win).into(),
            days: d.expected_days.as_ref().map(Estimate::from),
            expected_value: (&d.expected_value).into(),
        },
        confidence: Confidence {
            level: 0.95,
            n_simulations: n,
            p_win_change_significant: d.p_win.low > 0.0 || d.p_win.high < 0.0,
            model_low_confidence: inputs.model.low_confidence(),
        },
    }))
}

/// Runs and seed of a forecast.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    /// Runs per deal and view (default 2000).
    #[param(minimum = 100, maximum = 20000)]
    pub n_simulations: Option<u32>,
    /// Seed of the random streams.
    #[param(minimum = 0)]
    pub seed: Option<u64>,
}

/// One view of a deal's future.
#[derive(Debug, Serialize, ToSchema)]
pub struct ViewOutlook {
    /// current_trajectory, best_case or worst_case.
    pub name: String,
    #[serde(flatten)]
    pub outlook: Outlook,
}

/// One action and what it would do to the deal.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendationOut {
    /// What to do: "Identify a champion".
    pub action: String,
    /// The action and its effect in words.
    pub impact: String,
    /// The scenario simulated, e.g. `add_champion`.
    pub scenario: String,
    pub p_win_delta: Estimate,
    pub days_delta: Option<Estimate>,
    pub expected_value_delta: Estimate,
    /// The effect helps and its interval excludes zero.
    pub helps: bool,
    /// 1 = the largest expected-value gain.
    pub rank: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DealForecastResponse {
    pub deal_id: String,
    pub stage: String,
    pub as_of: String,
    pub n_simulations: u32,
    /// current_trajectory, best_case, worst_case (same random numbers).
    pub scenarios: Vec<ViewOutlook>,
    /// Best first.
    pub recommendations: Vec<RecommendationOut>,
}

/// One open deal's forecast in three views, and the actions that would help it most.
#[utoipa::path(
    get,
    path = "/api/deals/{id}/forecast",
    tag = "simulation",
    params(("id" = String, Path, description = "An open deal of the key's workspace"), RunsQuery),
    responses(
        (status = 200, description = "Scenarios and recommendations", body = DealForecastResponse),
        (status = 400, description = "A bad n_simulations or seed", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 404, description = "No such deal in the key's workspace", body = ErrorBody),
        (status = 409, description = "The deal is closed, its stage is not in the model, or the workspace is not mined", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    )
)]
pub async fn deal_forecast(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> Result<ApiJson<DealForecastResponse>, ApiError> {
    let n = runs(&state, q.n_simulations)?;
    let inputs = state.forecast_inputs(&principal.workspace).await?;
    let deal = open_deal(&state, &principal, &inputs.deals, &id).await?;
    let config = SimConfig {
        runs: n,
        seed: q.seed.unwrap_or(0),
        ..SimConfig::default()
    };
    let calendar = Calendar::new(inputs.as_of.date_naive(), MONTHS);
    let model = inputs.model.clone();
    let stage = deal.stage.clone();
    let (views, skipped, recs) = blocking(&state, move || {
        let seen: Vec<OpenDeal> = View::ALL.iter().map(|v| v.apply(&model, &deal)).collect();
        let (forecasts, skipped) = forecast_deals(&model, &seen, &calendar, &config)?;
        let recs = recommend(&model, std::slice::from_ref(&deal), &candidates(), &config)?;
        Ok((forecasts, skipped, recs))
    })
    .await?;
    if let Some(s) = skipped.first() {
        return Err(ApiError::conflict("not_simulable", s.reason.clone()));
    }
    let scenarios = View::ALL
        .iter()
        .zip(&views)
        .map(|(v, f)| ViewOutlook {
            name: v.name().to_string(),
            outlook: f.into(),
        })
        .collect();
    let mut recs = recs;
    recs.sort_by_key(|r| r.rank_value);
    let recommendations = recs
        .iter()
        .map(|r| RecommendationOut {
            action: r.action.clone(),
            impact: r.text.clone(),
            scenario: r.scenario.to_string(),
            p_win_delta: (&r.delta.p_win).into(),
            days_delta: r.delta.expected_days.as_ref().map(Estimate::from),
            expected_value_delta: (&r.delta.expected_value).into(),
            helps: r.helps,
            rank: r.rank_value,
        })
        .collect();
    Ok(ApiJson(DealForecastResponse {
        deal_id: id,
        stage,
        as_of: inputs.as_of.to_rfc3339(),
        n_simulations: n,
        scenarios,
        recommendations,
    }))
}

/// How the pipeline forecast groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ForecastBy {
    Rep,
    Segment,
    Period,
}

/// Periods of the rep and segment rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PeriodParam {
    All,
    Month,
    Quarter,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ForecastQuery {
    /// rep, segment or period (default: the workspace as a whole).
    #[param(inline)]
    pub by: Option<ForecastBy>,
    /// With by=rep or segment (and the workspace): all (the whole open pipeline, default),
    /// month or quarter.
    #[param(inline)]
    pub period: Option<PeriodParam>,
    /// Runs per deal and view (default 2000).
    #[param(minimum = 100, maximum = 20000)]
    pub n_simulations: Option<u32>,
    #[param(minimum = 0)]
    pub seed: Option<u64>,
}

/// Revenue quantiles over the runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revenue {
    pub mean: f64,
    pub sd: f64,
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
}

/// One group, view and period of the forecast.
#[derive(Debug, Serialize, ToSchema)]
pub struct ForecastRow {
    /// current_trajectory, best_case or worst_case.
    pub view: String,
    /// workspace, rep or segment.
    pub dimension: String,
    /// The rep id, segment or workspace.
    pub group: String,
    /// `all`, `2025-07`, `2025-Q3`, ...
    pub period: String,
    pub period_kind: String,
    pub open_deals: u64,
    pub open_amount: f64,
    /// Won in the period before the as-of time.
    pub booked: f64,
    pub revenue: Revenue,
    pub quota: Option<f64>,
    pub p_quota: Option<f64>,
}

impl From<&PipelineRow> for ForecastRow {
    fn from(r: &PipelineRow) -> Self {
        Self {
            view: r.view.name().to_string(),
            dimension: r.dimension.name().to_string(),
            group: r.group.clone(),
            period: r.period.label.clone(),
            period_kind: r.period.kind.name().to_string(),
            open_deals: r.open_deals,
            open_amount: r.open_amount,
            booked: r.booked,
            revenue: Revenue {
                mean: r.revenue.mean,
                sd: r.revenue.sd,
                p10: r.revenue.p10,
                p50: r.revenue.p50,
                p90: r.revenue.p90,
            },
            quota: r.quota,
            p_quota: r.p_quota,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PipelineForecastResponse {
    pub as_of: String,
    pub n_simulations: u32,
    pub low_confidence: bool,
    /// Open deals left out (their stage is not in the mined model).
    pub skipped_deals: u64,
    pub rows: Vec<ForecastRow>,
}

/// The pipeline's closed-won revenue distribution, by rep, segment or period, in three views.
#[utoipa::path(
    get,
    path = "/api/forecast",
    tag = "simulation",
    params(ForecastQuery),
    responses(
        (status = 200, description = "Forecast rows", body = PipelineForecastResponse),
        (status = 400, description = "A bad parameter", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 409, description = "The workspace has no deals or is not mined yet", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    )
)]
pub async fn pipeline(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    ApiQuery(q): ApiQuery<ForecastQuery>,
) -> Result<ApiJson<PipelineForecastResponse>, ApiError> {
    let n = runs(&state, q.n_simulations)?;
    let inputs = state.forecast_inputs(&principal.workspace).await?;
    let config = SimConfig {
        runs: n,
        seed: q.seed.unwrap_or(0),
        ..SimConfig::default()
    };
    let _permit = state
        .simulations
        .acquire()
        .await
        .map_err(|e| ApiError::internal("waiting for a simulation slot", &e))?;
    let forecast = pipeline_forecast(&inputs, MONTHS, &config)
        .await
        .map_err(|e| ApiError::from_simulate("forecasting the pipeline", e))?;
    let period = match q.period.unwrap_or(PeriodParam::All) {
        PeriodParam::All => PeriodKind::All,
        PeriodParam::Month => PeriodKind::Month,
        PeriodParam::Quarter => PeriodKind::Quarter,
    };
    let keep = |r: &&PipelineRow| match q.by {
        None => r.dimension == Dimension::Workspace && r.period.kind == period,
        Some(ForecastBy::Rep) => r.dimension == Dimension::Rep && r.period.kind == period,
        Some(ForecastBy::Segment) => r.dimension == Dimension::Segment && r.period.kind == period,
        Some(ForecastBy::Period) => {
            r.dimension == Dimension::Workspace
                && matches!(r.period.kind, PeriodKind::Month | PeriodKind::Quarter)
        }
    };
    Ok(ApiJson(PipelineForecastResponse {
        as_of: forecast.as_of.to_rfc3339(),
        n_simulations: n,
        low_confidence: forecast.low_confidence,
        skipped_deals: forecast.result.skipped.len() as u64,
        rows: forecast
            .result
            .rows
            .iter()
            .filter(keep)
            .map(Into::into)
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Result<Scenario, ApiError> {
        serde_json::from_value::<ScenarioSpec>(json)
            .unwrap()
            .to_scenario()
    }

    #[test]
    fn scenario_specs_become_scenarios_and_bad_params_are_named() {
        assert_eq!(
            spec(serde_json::json!({"type": "add_champion"})).unwrap(),
            Scenario::AddChampion
        );
        assert_eq!(
            spec(serde_json::json!({"type": "accelerate_stage", "params": {"stage": "demo", "days": 7}}))
                .unwrap(),
            Scenario::AccelerateStage {
                stage: Some("demo".into()),
                days: 7.0
            }
        );
        assert_eq!(
            spec(serde_json::json!({"type": "change_amount", "params": {"ratio": 1.5}})).unwrap(),
            Scenario::ChangeAmount(AmountChange::Ratio(1.5))
        );
        assert_eq!(
            spec(serde_json::json!({"type": "set_context", "params": {"factors": {"Champion": "true"}}}))
                .unwrap(),
            Scenario::SetContext(vec![("champion".into(), "true".into())])
        );
        for (bad, named) in [
            (
                serde_json::json!({"type": "add_champion", "params": {"days": 3}}),
                "params.days",
            ),
            (
                serde_json::json!({"type": "accelerate_stage"}),
                "params.days",
            ),
            (
                serde_json::json!({"type": "accelerate_stage", "params": {"days": -1}}),
                "params.days",
            ),
            (
                serde_json::json!({"type": "change_amount", "params": {"amount": 1, "ratio": 2}}),
                "exactly one",
            ),
            (
                serde_json::json!({"type": "change_amount", "params": {"amount": -5}}),
                "params.amount",
            ),
            (
                serde_json::json!({"type": "set_context", "params": {"factors": {}}}),
                "params.factors",
            ),
        ] {
            let e = spec(bad.clone()).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            assert!(e.message.contains(named), "{bad}: {}", e.message);
        }
    }
}

//! The open deals of a workspace as the simulator needs them: current stage, days in it,
//! amount, and the context factors known about each.
//!
//! Context factors read from staging: `champion` / `blocker` (a contact with that role on the
//! deal), `lead_source`, `industry`, `segment`, and the days since the deal's last activity,
//! which maps onto the model's engagement-recency levels when they are day bands.

use std::collections::BTreeMap;

use arrow::array::Array as _;
use chrono::{DateTime, Utc};

use super::columns::{collect, floats, strings};
use super::engine::SimDeal;
use super::error::{Result, SimulateError};
use super::model::{ChainModel, Context};
use super::rng;
use crate::lake::{DatasetRef, Lake, WorkspaceId};
use crate::sql::{SessionOptions, SqlSession};

const SECONDS_PER_DAY: f64 = 86_400.0;

/// An open deal.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenDeal {
    pub id: String,
    /// Its normalized stage.
    pub stage: String,
    /// Amount in USD (the deal currency when no conversion is known).
    pub amount: f64,
    /// Days since it entered its stage (at the as-of time).
    pub days_in_stage: f64,
    /// Context factors known about it.
    pub context: Context,
    /// Days since its last activity; `None` when it has none.
    pub days_since_touch: Option<f64>,
}

impl OpenDeal {
    /// A deal with no known context (tests, benchmarks).
    pub fn new(
        id: impl Into<String>,
        stage: impl Into<String>,
        amount: f64,
        days_in_stage: f64,
    ) -> Self {
        Self {
            id: id.into(),
            stage: stage.into(),
            amount,
            days_in_stage,
            context: Context::any(),
            days_since_touch: None,
        }
    }

    /// The deal's context as `model` buckets it: its known factors, plus the engagement level
    /// its days since the last touch fall in when the model has day-banded engagement levels
    /// (`none` when the deal has no activity and the model has that level).
    pub fn model_context(&self, model: &ChainModel) -> Context {
        let mut ctx = self.context.clone();
        if let Some((factor, bands)) = engagement_bands(model) {
            match self.days_since_touch {
                Some(days) => {
                    if let Some(level) = band_for(&bands, days) {
                        ctx.set(&factor, &level);
                    }
                }
                None if model.factor_levels(&factor).contains(NO_ACTIVITY) => {
                    ctx.set(&factor, NO_ACTIVITY);
                }
                None => {}
            }
        }
        ctx
    }

    /// The engine's view of the deal under `model`; `None` when its stage is not an open stage
    /// of the model.
    pub fn sim_deal(&self, model: &ChainModel, accelerate: Option<(u16, f32)>) -> Option<SimDeal> {
        let stage = model
            .stage_code(&self.stage)
            .filter(|c| !model.is_absorbing(*c))?;
        Some(SimDeal {
            key: rng::hash_id(&self.id),
            context: model.resolve(&self.model_context(model)),
            stage,
            age_days: self.days_in_stage.max(0.0) as f32,
            accelerate,
        })
    }
}

/// A level and the days it covers, `[low, high]`.
pub(super) type Band = (String, f64, f64);

/// The engagement level of a deal without any activity.
const NO_ACTIVITY: &str = "none";

/// The model's engagement-recency factor (named with `engagement`, `recency` or `touch`) and
/// those of its levels that read as day bands `[low, high]` (others, such as `none` or
/// `unknown`, are left out); `None` when no level is a band.
pub(super) fn engagement_bands(model: &ChainModel) -> Option<(String, Vec<Band>)> {
    let factor = model.factors().into_iter().find(|f| {
        ["engagement", "recency", "touch"]
            .iter()
            .any(|k| f.contains(k))
    })?;
    let bands: Vec<Band> = model
        .factor_levels(&factor)
        .into_iter()
        .filter_map(|l| parse_band(&l).map(|(lo, hi)| (l, lo, hi)))
        .collect();
    (!bands.is_empty()).then_some((factor, bands))
}

/// Reads a level as a band of days: `0-7`, `8_30`, `7..30`, `<7`, `lt7`, `under_7`, `30+`,
/// `gt30`, `>=30`, `over_30`, `30_plus` (an optional `d` / `days` suffix).
pub(super) fn parse_band(level: &str) -> Option<(f64, f64)> {
    let l = level.trim().to_ascii_lowercase();
    let l = l
        .strip_suffix("days")
        .or_else(|| l.strip_suffix('d'))
        .unwrap_or(&l)
        .trim_end_matches('_')
        .to_string();
    let num = |s: &str| {
        s.trim()
            .trim_end_matches('d')
            .trim_matches('_')
            .parse::<f64>()
            .ok()
    };
    for prefix in ["<=", "<", "lte", "lt", "le", "under", "below"] {
        if let Some(rest) = l.strip_prefix(prefix) {
            return num(rest).map(|b| (0.0, b));
        }
    }
    for prefix in [">=", ">", "gte", "gt", "ge", "over", "above"] {
        if let Some(rest) = l.strip_prefix(prefix) {
            return num(rest).map(|a| (a, f64::INFINITY));
        }
    }
    for suffix in ["+", "plus"] {
        if let Some(rest) = l.strip_suffix(suffix) {
            return num(rest).map(|a| (a, f64::INFINITY));
        }
    }
    for sep in ["..", "-", "_to_", "_"] {
        if let Some((a, b)) = l.split_once(sep)
            && let (Some(a), Some(b)) = (num(a), num(b))
        {
            return Some((a, b));
        }
    }
    None
}

/// The level whose band holds `days`, else the one with the nearest edge.
pub(super) fn band_for(bands: &[Band], days: f64) -> Option<String> {
    bands
        .iter()
        .map(|(l, lo, hi)| {
            let distance = if days < *lo {
                lo - days
            } else if days > *hi {
                days - hi
            } else {
                0.0
            };
            (distance, l)
        })
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)))
        .map(|(_, l)| l.clone())
}

/// The open deals of `workspace` at `as_of` (default: the latest stage change in its history,
/// i.e. the data's own "now"), sorted by id, and the as-of time used.
///
/// An explicit `as_of` travels back in the stage history: the deals that were open then, each in
/// the stage it was in and with the days it had spent there, and its last activity by then.
/// Contact roles, amounts and other attributes are read as they are now.
pub async fn load_open_deals(
    lake: &Lake,
    workspace: &WorkspaceId,
    as_of: Option<DateTime<Utc>>,
) -> Result<(Vec<OpenDeal>, DateTime<Utc>)> {
    let session = SqlSession::open(
        lake,
        &SessionOptions {
            workspace: Some(workspace.clone()),
            ..SessionOptions::default()
        },
    )
    .await?;
    open_deals_in(&session, as_of).await
}

pub(super) async fn open_deals_in(
    session: &SqlSession,
    as_of: Option<DateTime<Utc>>,
) -> Result<(Vec<OpenDeal>, DateTime<Utc>)> {
    let tables = session.tables();
    let has = |name: &str| {
        name.parse::<DatasetRef>()
            .is_ok_and(|d| tables.contains(&d))
    };
    let deals_ds: DatasetRef = "staging.deals".parse()?;
    if !has("staging.deals") {
        return Err(SimulateError::Lake(crate::lake::LakeError::NoSuchDataset {
            dataset: deals_ds,
            url: "the workspace's session".to_string(),
        }));
    }
    let history = has("staging.deal_stage_history");
    // An explicit time is a time travel: each deal as its stage history stood then.
    let rebuild = as_of.is_some() && history;
    let as_of = match as_of {
        Some(t) => t,
        None => data_as_of(session, history).await?,
    };
    let now = as_of.timestamp_micros() as f64 / 1e6;
    let entered = if history {
        "SELECT deal_id, to_stage, max(transitioned_at) AS at \
         FROM staging.deal_stage_history GROUP BY deal_id, to_stage"
    } else {
        "SELECT CAST(NULL AS VARCHAR) AS deal_id, CAST(NULL AS VARCHAR) AS to_stage, \
         CAST(NULL AS TIMESTAMP) AS at WHERE false"
    };
    let roles = if has("staging.deal_contacts") {
        "SELECT deal_id, bool_or(role = 'champion') AS champion, bool_or(role = 'blocker') AS blocker \
         FROM staging.deal_contacts GROUP BY deal_id"
    } else {
        "SELECT CAST(NULL AS VARCHAR) AS deal_id, CAST(NULL AS BOOLEAN) AS champion, \
         CAST(NULL AS BOOLEAN) AS blocker WHERE false"
    };
    let touches: String = if has("staging.activities") {
        format!(
            "SELECT deal_id, max(occurred_at) AS last_touch FROM staging.activities \
             WHERE deal_id IS NOT NULL{} GROUP BY deal_id",
            if rebuild {
                format!(" AND date_part('epoch', occurred_at) <= {now}")
            } else {
                String::new()
            }
        )
    } else {
        "SELECT CAST(NULL AS VARCHAR) AS deal_id, CAST(NULL AS TIMESTAMP) AS last_touch WHERE false"
            .to_string()
    };
    let sql = if rebuild {
        // The stage a deal was in at `as_of`: its last change by then. A deal with history
        // but none by then did not exist yet; one without any history keeps its current
        // stage if it was created by then and is still open.
        format!(
            "WITH last AS (SELECT deal_id, to_stage, date_part('epoch', transitioned_at) AS at, \
               row_number() OVER (PARTITION BY deal_id ORDER BY transitioned_at DESC, \
                 CASE WHEN to_stage IN ('closed_won', 'closed_lost') THEN 0 ELSE 1 END, to_stage) AS rn \
               FROM staging.deal_stage_history \
               WHERE to_stage IS NOT NULL AND date_part('epoch', transitioned_at) <= {now}), \
             known AS (SELECT DISTINCT deal_id FROM staging.deal_stage_history), \
             roles AS ({roles}), touches AS ({touches}) \
             SELECT d.id, coalesce(l.to_stage, d.stage) AS stage, \
               CAST(coalesce(d.amount_usd, d.amount, 0) AS DOUBLE) AS amount, \
               coalesce(l.at, date_part('epoch', d.created_at)) AS entered, \
               CAST(r.champion AS VARCHAR) AS champion, CAST(r.blocker AS VARCHAR) AS blocker, \
               d.lead_source, d.industry, d.segment, \
               date_part('epoch', t.last_touch) AS last_touch \
             FROM staging.deals d \
             LEFT JOIN last l ON l.deal_id = d.id AND l.rn = 1 \
             LEFT JOIN known k ON k.deal_id = d.id \
             LEFT JOIN roles r ON r.deal_id = d.id \
             LEFT JOIN touches t ON t.deal_id = d.id \
             WHERE (l.to_stage IS NOT NULL AND l.to_stage NOT IN ('closed_won', 'closed_lost')) \
                OR (k.deal_id IS NULL AND NOT coalesce(d.is_closed, false) AND d.stage IS NOT NULL \
                    AND d.stage NOT IN ('closed_won', 'closed_lost') \
                    AND coalesce(date_part('epoch', d.created_at) <= {now}, true)) \
             ORDER BY d.id"
        )
    } else {
        format!(
            "WITH entered AS ({entered}), roles AS ({roles}), touches AS ({touches}) \
             SELECT d.id, d.stage, CAST(coalesce(d.amount_usd, d.amount, 0) AS DOUBLE) AS amount, \
               coalesce(date_part('epoch', e.at), date_part('epoch', d.created_at)) AS entered, \
               CAST(r.champion AS VARCHAR) AS champion, CAST(r.blocker AS VARCHAR) AS blocker, \
               d.lead_source, d.industry, d.segment, \
               date_part('epoch', t.last_touch) AS last_touch \
             FROM staging.deals d \
             LEFT JOIN entered e ON e.deal_id = d.id AND e.to_stage = d.stage \
             LEFT JOIN roles r ON r.deal_id = d.id \
             LEFT JOIN touches t ON t.deal_id = d.id \
             WHERE NOT coalesce(d.is_closed, false) AND d.stage IS NOT NULL \
               AND d.stage NOT IN ('closed_won', 'closed_lost') \
             ORDER BY d.id"
        )
    };
    let mut out = Vec::new();
    for batch in collect(session, &sql).await? {
        let id = strings(&batch, &deals_ds, "id")?;
        let stage = strings(&batch, &deals_ds, "stage")?;
        let amount = floats(&batch, &deals_ds, "amount")?;
        let entered = floats(&batch, &deals_ds, "entered")?;
        let last_touch = floats(&batch, &deals_ds, "last_touch")?;
        let factors = ["champion", "blocker", "lead_source", "industry", "segment"]
            .into_iter()
            .map(|f| Ok((f, strings(&batch, &deals_ds, f)?)))
            .collect::<Result<Vec<_>>>()?;
        for i in 0..batch.num_rows() {
            let mut context = Context::any();
            for (f, col) in &factors {
                if col.is_valid(i) && !col.value(i).trim().is_empty() {
                    context.set(f, col.value(i));
                } else if *f == "lead_source" {
                    // As mined: a deal without a lead source is in the `unknown` level.
                    context.set(f, "unknown");
                }
            }
            let days = |a: &arrow::array::Float64Array| {
                a.is_valid(i)
                    .then(|| ((now - a.value(i)) / SECONDS_PER_DAY).max(0.0))
            };
            out.push(OpenDeal {
                id: id.value(i).to_string(),
                stage: stage.value(i).to_string(),
                amount: if amount.is_valid(i) {
                    amount.value(i)
                } else {
                    0.0
                },
                days_in_stage: days(&entered).unwrap_or(0.0),
                context,
                days_since_touch: days(&last_touch),
            });
        }
    }
    Ok((out, as_of))
}

/// The latest stage change of the workspace, else its latest deal update, else now.
async fn data_as_of(session: &SqlSession, history: bool) -> Result<DateTime<Utc>> {
    let ds: DatasetRef = "staging.deals".parse()?;
    let sql = if history {
        "SELECT date_part('epoch', max(transitioned_at)) AS t FROM staging.deal_stage_history"
    } else {
        "SELECT date_part('epoch', max(updated_at)) AS t FROM staging.deals"
    };
    let batches = collect(session, sql).await?;
    let latest = batches
        .iter()
        .filter(|b| b.num_rows() > 0)
        .map(|b| floats(b, &ds, "t"))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .find(|a| a.is_valid(0))
        .map(|a| a.value(0));
    Ok(latest
        .and_then(|s| DateTime::from_timestamp_micros((s * 1e6) as i64))
        .unwrap_or_else(Utc::now))
}

/// Deals by id, for lookups.
pub fn by_id(deals: &[OpenDeal]) -> BTreeMap<&str, &OpenDeal> {
    deals.iter().map(|d| (d.id.as_str(), d)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::model::{CLOSED_LOST, CLOSED_WON};

    #[test]
    fn engagement_levels_parse_as_day_bands() {
        assert_eq!(parse_band("0-7"), Some((0.0, 7.0)));
        assert_eq!(parse_band("8_30d"), Some((8.0, 30.0)));
        assert_eq!(parse_band("lt7"), Some((0.0, 7.0)));
        assert_eq!(parse_band("<=14days"), Some((0.0, 14.0)));
        assert_eq!(parse_band("30+"), Some((30.0, f64::INFINITY)));
        assert_eq!(parse_band("gt_30"), Some((30.0, f64::INFINITY)));
        assert_eq!(parse_band("over_90d"), Some((90.0, f64::INFINITY)));
        assert_eq!(parse_band("7..30"), Some((7.0, 30.0)));
        assert_eq!(parse_band("recent"), None);
        let bands = vec![
            ("0-7".to_string(), 0.0, 7.0),
            ("8-30".to_string(), 8.0, 30.0),
            ("30+".to_string(), 30.0, f64::INFINITY),
        ];
        assert_eq!(band_for(&bands, 3.0).as_deref(), Some("0-7"));
        assert_eq!(band_for(&bands, 7.5).as_deref(), Some("0-7"));
        assert_eq!(band_for(&bands, 12.0).as_deref(), Some("8-30"));
        assert_eq!(band_for(&bands, 400.0).as_deref(), Some("30+"));
    }

    #[test]
    fn deals_take_the_engagement_level_of_their_last_touch() {
        let mut b = ChainModel::builder(&["lead", CLOSED_WON, CLOSED_LOST]).unwrap();
        for key in ["*", "engagement_recency=0-7", "engagement_recency=30+"] {
            b.add_transition(key, "lead", CLOSED_WON, 1.0).unwrap();
        }
        let m = b.build().unwrap();
        let mut deal = OpenDeal::new("d1", "lead", 10.0, 2.0);
        assert_eq!(
            m.contexts()[deal.sim_deal(&m, None).unwrap().context as usize].key,
            "*"
        );
        deal.days_since_touch = Some(45.0);
        let sim = deal.sim_deal(&m, None).unwrap();
        assert_eq!(
            m.contexts()[sim.context as usize].key,
            "engagement_recency=30+"
        );
        assert_eq!(sim.age_days, 2.0);
        assert_eq!(sim.key, rng::hash_id("d1"));
        // As mined (src/mining): day bands, then `none` for deals without activity.
        let mut b = ChainModel::builder(&["lead", CLOSED_WON, CLOSED_LOST]).unwrap();
        for key in ["*", "engagement=0-7", "engagement=8-30", "engagement=none"] {
            b.add_transition(key, "lead", CLOSED_WON, 1.0).unwrap();
        }
        let mined = b.build().unwrap();
        let key = |d: &OpenDeal| {
            let ctx = d.sim_deal(&mined, None).unwrap().context;
            mined.contexts()[ctx as usize].key.clone()
        };
        let mut quiet = OpenDeal::new("d2", "lead", 1.0, 0.0);
        assert_eq!(key(&quiet), "engagement=none");
        quiet.days_since_touch = Some(12.0);
        assert_eq!(key(&quiet), "engagement=8-30");
        deal.stage = CLOSED_WON.into();
        assert!(deal.sim_deal(&m, None).is_none());
    }
}

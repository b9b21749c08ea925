//! What forecasts and backtests read about deals besides their simulated state: owner,
//! segment, source, the CRM's own probability, the outcome, and the quotas of
//! `staging.quotas` when that table exists.

use std::collections::{BTreeSet, HashMap};

use arrow::array::Array as _;
use chrono::{DateTime, NaiveDate, Utc};

use super::columns::{booleans, collect, floats, strings};
use super::error::{Result, SimulateError};
use crate::lake::{DatasetRef, Lake, WorkspaceId};
use crate::sql::{SessionOptions, SqlSession};

/// One deal of `staging.deals`, open or closed.
#[derive(Debug, Clone, PartialEq)]
pub struct DealFacts {
    pub owner_id: Option<String>,
    pub segment: Option<String>,
    pub source: Option<String>,
    /// The deal's stage now.
    pub stage: Option<String>,
    /// Amount in USD (the deal currency when unconverted), 0 when unknown.
    pub amount: f64,
    /// The CRM's win probability now (0 to 1).
    pub probability: Option<f64>,
    pub is_closed: bool,
    pub is_won: bool,
    pub closed_at: Option<DateTime<Utc>>,
}

/// A rep's quota for a period, `[start, end]` both inclusive (as `staging.quotas` has them).
#[derive(Debug, Clone, PartialEq)]
pub struct Quota {
    pub owner_id: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub amount: f64,
}

/// The workspaces with rows in `staging.deals`, sorted.
pub async fn deal_workspaces(lake: &Lake) -> Result<BTreeSet<String>> {
    let session = SqlSession::open(lake, &SessionOptions::default()).await?;
    let ds: DatasetRef = "staging.deals".parse()?;
    if !session.tables().contains(&ds) {
        return Ok(BTreeSet::new());
    }
    let mut out = BTreeSet::new();
    for b in collect(
        &session,
        "SELECT DISTINCT CAST(workspace_id AS VARCHAR) AS w FROM staging.deals",
    )
    .await?
    {
        let w = strings(&b, &ds, "w")?;
        out.extend(
            (0..b.num_rows())
                .filter(|i| w.is_valid(*i))
                .map(|i| w.value(i).to_string()),
        );
    }
    Ok(out)
}

/// Refuses a workspace without deals, naming the ones there are.
pub async fn check_workspace(lake: &Lake, workspace: &WorkspaceId) -> Result<()> {
    let known = deal_workspaces(lake).await?;
    if known.contains(workspace.as_str()) {
        return Ok(());
    }
    Err(SimulateError::NoSuchWorkspace {
        workspace: workspace.to_string(),
        known: if known.is_empty() {
            "none: staging.deals is empty or missing (run the pipeline first: revlake run)"
                .to_string()
        } else {
            known.into_iter().collect::<Vec<_>>().join(", ")
        },
    })
}

fn from_epoch(seconds: f64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros((seconds * 1e6).round() as i64)
}

/// Every deal of the session's workspace, by id.
pub(super) async fn deal_facts(session: &SqlSession) -> Result<HashMap<String, DealFacts>> {
    let ds: DatasetRef = "staging.deals".parse()?;
    let sql = "SELECT id, CAST(owner_id AS VARCHAR) AS owner_id, CAST(segment AS VARCHAR) AS segment, \
         CAST(source AS VARCHAR) AS source, CAST(stage AS VARCHAR) AS stage, \
         CAST(coalesce(amount_usd, amount, 0) AS DOUBLE) AS amount, \
         CAST(probability AS DOUBLE) AS probability, coalesce(is_closed, false) AS is_closed, \
         coalesce(is_won, false) AS is_won, date_part('epoch', closed_at) AS closed_at \
         FROM staging.deals";
    let mut out = HashMap::new();
    for b in collect(session, sql).await? {
        let id = strings(&b, &ds, "id")?;
        let owner = strings(&b, &ds, "owner_id")?;
        let segment = strings(&b, &ds, "segment")?;
        let source = strings(&b, &ds, "source")?;
        let stage = strings(&b, &ds, "stage")?;
        let amount = floats(&b, &ds, "amount")?;
        let probability = floats(&b, &ds, "probability")?;
        let closed = booleans(&b, &ds, "is_closed")?;
        let won = booleans(&b, &ds, "is_won")?;
        let closed_at = floats(&b, &ds, "closed_at")?;
        let text = |a: &arrow::array::StringArray, i: usize| {
            (a.is_valid(i) && !a.value(i).trim().is_empty()).then(|| a.value(i).to_string())
        };
        for i in 0..b.num_rows() {
            if !id.is_valid(i) {
                continue;
            }
            out.insert(
                id.value(i).to_string(),
                DealFacts {
                    owner_id: text(&owner, i),
                    segment: text(&segment, i),
                    source: text(&source, i),
                    stage: text(&stage, i),
                    amount: if amount.is_valid(i) {
                        amount.value(i)
                    } else {
                        0.0
                    },
                    probability: (probability.is_valid(i) && probability.value(i).is_finite())
                        .then(|| {
                            let p = probability.value(i);
                            // Some CRMs give percent.
                            if p > 1.0 { p / 100.0 } else { p }
                        }),
                    is_closed: closed.is_valid(i) && closed.value(i),
                    is_won: won.is_valid(i) && won.value(i),
                    closed_at: closed_at
                        .is_valid(i)
                        .then(|| from_epoch(closed_at.value(i)))
                        .flatten(),
                },
            );
        }
    }
    Ok(out)
}

/// The quotas of the session's workspace; empty when `staging.quotas` does not exist. Rows
/// without an owner, dates or a positive amount are left out.
pub(super) async fn quotas(session: &SqlSession) -> Result<Vec<Quota>> {
    let ds: DatasetRef = "staging.quotas".parse()?;
    if !session.tables().contains(&ds) {
        return Ok(Vec::new());
    }
    let sql = "SELECT CAST(owner_id AS VARCHAR) AS owner_id, \
         CAST(CAST(period_start AS DATE) AS VARCHAR) AS period_start, \
         CAST(CAST(period_end AS DATE) AS VARCHAR) AS period_end, \
         CAST(amount_usd AS DOUBLE) AS amount_usd FROM staging.quotas";
    let mut out = Vec::new();
    for b in collect(session, sql).await? {
        let owner = strings(&b, &ds, "owner_id")?;
        let start = strings(&b, &ds, "period_start")?;
        let end = strings(&b, &ds, "period_end")?;
        let amount = floats(&b, &ds, "amount_usd")?;
        for i in 0..b.num_rows() {
            let date = |a: &arrow::array::StringArray| {
                a.is_valid(i)
                    .then(|| a.value(i).parse::<NaiveDate>().ok())
                    .flatten()
            };
            let (Some(s), Some(e)) = (date(&start), date(&end)) else {
                continue;
            };
            if !owner.is_valid(i)
                || !amount.is_valid(i)
                || amount.value(i).is_nan()
                || amount.value(i) <= 0.0
            {
                continue;
            }
            out.push(Quota {
                owner_id: owner.value(i).to_string(),
                start: s,
                end: e,
                amount: amount.value(i),
            });
        }
    }
    Ok(out)
}

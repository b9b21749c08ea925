//! `GET /quality`: data quality and freshness. The latest verdict of every check on the
//! workspace's datasets (the handler of `GET /api/quality`), and each dataset's last refresh
//! with a warning when it is older than `?stale_after=` (default 26h, as `revlake status`):
//! the same [`freshness`] that command computes. The key table is never listed, nor any other
//! workspace's row counts.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::Missing;
use super::render::{self, PageError};
use super::viewer::Viewer;
use crate::jobs::schedule::parse_duration;
use crate::jobs::status::freshness;
use crate::serve::data::quality;
use crate::serve::keys::KEYS_DATASET;
use crate::serve::state::AppState;

/// The default age past which a dataset is stale (as `revlake status --stale-after`).
pub const DEFAULT_STALE_AFTER: &str = "26h";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityQuery {
    /// A duration: `26h`, `90m`, `2d`.
    stale_after: Option<String>,
}

#[derive(Debug, Serialize)]
struct Fresh {
    dataset: String,
    version: i64,
    last_commit: Option<String>,
    age: Option<String>,
    stale: bool,
}

fn age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// The quality and freshness page.
pub async fn page(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Query(q): Query<QualityQuery>,
) -> Result<Response, PageError> {
    let stale_text = q
        .stale_after
        .unwrap_or_else(|| DEFAULT_STALE_AFTER.to_string());
    let stale_after: Duration = parse_duration(&stale_text).map_err(|reason| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            "Bad parameter",
            format!("stale_after={stale_text}: {reason} (e.g. 26h, 90m, 2d)"),
        )
    })?;
    let report = quality(State(state.clone()), Extension(viewer.0.clone()))
        .await?
        .0;
    let rows = freshness(&state.lake, Utc::now(), stale_after)
        .await
        .map_err(|e| PageError::internal("reading the datasets' freshness", &e))?;
    let fresh: Vec<Fresh> = rows
        .into_iter()
        .filter(|r| r.dataset != KEYS_DATASET)
        .map(|r| Fresh {
            dataset: r.dataset,
            version: r.version,
            last_commit: r
                .last_commit
                .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
            age: r.age_seconds.map(age),
            stale: r.stale,
        })
        .collect();
    let stale = fresh.iter().filter(|f| f.stale).count();
    let failing = report
        .results
        .iter()
        .filter(|r| matches!(r.status.as_deref(), Some("fail" | "error")))
        .count();
    render::page(
        "quality.html",
        context! {
            workspace => viewer.0.workspace.as_str(),
            nav => "quality",
            results => render::val(&report.results),
            by_status => render::val(&report.by_status),
            failing => failing,
            checks_missing => report.results.is_empty().then(|| render::val(Missing::new("ops.quality_results", "revlake check"))),
            fresh => render::val(&fresh),
            stale => stale,
            stale_after => stale_text,
            lake_missing => fresh.is_empty().then(|| render::val(Missing::new("any dataset", "revlake run"))),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_in_the_largest_whole_unit() {
        assert_eq!(age(59), "59s");
        assert_eq!(age(3_600), "60m");
        assert_eq!(age(90_000), "25h");
        assert_eq!(age(200_000), "2d");
    }
}

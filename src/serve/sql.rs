//! `POST /api/sql`: one read-only SELECT over the key's workspace, with a row limit and a time
//! limit.
//!
//! Tenancy rests on the session, not on the query: the session the query runs in has every
//! table registered as a view filtered to the key's workspace (the unfiltered tables are not in
//! it at all), no seeds, no file or URL tables, and no `ops.api_keys`; so whatever the SELECT
//! says (joins, subqueries, `information_schema`, unions), it reads only the workspace's rows.

use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::extract::State;
use datafusion::error::DataFusionError;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use super::keys::Principal;
use super::rows::to_json_rows;
use super::state::AppState;
use crate::sql::guard::check_read_only;

/// The most rows a client may ask for; the server's `--sql-max-rows` may be lower.
pub const MAX_ROWS: u32 = 10_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    /// One SELECT (or WITH ... SELECT) over `layer.table` names, e.g.
    /// `SELECT stage, count(*) AS n FROM staging.deals GROUP BY stage`.
    pub query: String,
    /// Rows returned at most (default and ceiling: the server's --sql-max-rows).
    #[schema(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SqlColumn {
    pub name: String,
    /// The Arrow type, e.g. Utf8, Int64, Float64, Timestamp(µs, "UTC").
    pub data_type: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SqlResult {
    pub columns: Vec<SqlColumn>,
    /// One object per row, column name to value.
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<Map<String, Value>>,
    pub row_count: u64,
    /// More rows matched than `limit`.
    pub truncated: bool,
    pub elapsed_ms: u64,
}

/// Refuses anything but one query statement, naming what was sent.
pub fn check_select(sql: &str) -> Result<(), ApiError> {
    check_read_only(sql).map_err(|e| ApiError::bad_request("bad_sql", e.to_string()))?;
    let statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {})
        .map_err(|e| ApiError::bad_request("bad_sql", e.to_string()))?;
    match statements.front() {
        Some(DfStatement::Statement(s)) if matches!(**s, Statement::Query(_)) => Ok(()),
        Some(other) => {
            let text = other.to_string();
            let head: Vec<&str> = text.split_whitespace().take(2).collect();
            Err(ApiError::bad_request(
                "bad_sql",
                format!(
                    "only a SELECT is served, not `{}`",
                    head.join(" ").to_uppercase()
                ),
            ))
        }
        None => Err(ApiError::bad_request("bad_sql", "the query is empty")),
    }
}

/// Whether an execution error is the query's (a cast, a division by zero, too much memory)
/// rather than the lake's or the server's.
fn is_query_fault(e: &DataFusionError) -> bool {
    !matches!(
        e,
        DataFusionError::ObjectStore(_)
            | DataFusionError::IoError(_)
            | DataFusionError::Internal(_)
            | DataFusionError::External(_)
    )
}

/// Aborts the query task when the request ends early (timeout, client gone).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Run one read-only SELECT in the key's workspace.
#[utoipa::path(
    post,
    path = "/api/sql",
    tag = "sql",
    request_body = SqlRequest,
    responses(
        (status = 200, description = "The rows", body = SqlResult),
        (status = 400, description = "Not a single SELECT, bad SQL, an unknown table, a bad limit, or over the time limit", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body not sent as JSON", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    )
)]
pub async fn run_sql(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    ApiJson(request): ApiJson<SqlRequest>,
) -> Result<ApiJson<SqlResult>, ApiError> {
    let started = Instant::now();
    let ceiling = state.config.sql_max_rows;
    let limit = match request.limit {
        None => ceiling,
        Some(0) => {
            return Err(ApiError::bad_request(
                "bad_limit",
                "limit must be at least 1",
            ));
        }
        Some(n) if n as usize > ceiling => {
            return Err(ApiError::bad_request(
                "bad_limit",
                format!("limit {n} is over this server's ceiling of {ceiling} rows"),
            ));
        }
        Some(n) => n as usize,
    };
    check_select(&request.query)?;
    let session = state.session(&principal.workspace).await?;
    let df = session
        .query(&request.query)
        .await
        .map_err(ApiError::from_user_sql)?;
    let columns = df
        .schema()
        .fields()
        .iter()
        .map(|f| SqlColumn {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
        })
        .collect();
    let df = df
        .limit(0, Some(limit + 1))
        .map_err(|e| ApiError::bad_request("bad_sql", e.to_string()))?;
    let timeout = state.config.sql_timeout;
    // On a task of its own: a plan that computes long between yields (a cross join) still
    // gets its answer cut at the limit, and the task is aborted at its next yield.
    let mut task = AbortOnDrop(tokio::spawn(df.collect()));
    let batches = match tokio::time::timeout(timeout, &mut task.0).await {
        Err(_) => {
            tracing::warn!(workspace = %principal.workspace, "query over the time limit");
            return Err(ApiError::bad_request(
                "query_timeout",
                format!(
                    "the query ran longer than this server's limit of {:.1} s",
                    timeout.as_secs_f64()
                ),
            ));
        }
        Ok(Err(e)) => return Err(ApiError::internal("the query task", &e)),
        Ok(Ok(Err(e))) if is_query_fault(&e) => {
            return Err(ApiError::bad_request("bad_sql", e.to_string()));
        }
        Ok(Ok(Err(e))) => return Err(ApiError::internal("running the query", &e)),
        Ok(Ok(Ok(b))) => b,
    };
    let mut rows = to_json_rows(&batches).map_err(|e| ApiError::internal("encoding rows", &e))?;
    let truncated = rows.len() > limit;
    rows.truncate(limit);
    Ok(ApiJson(SqlResult {
        columns,
        row_count: rows.len() as u64,
        rows,
        truncated,
        elapsed_ms: started.elapsed().as_millis() as u64,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_select_passes() {
        for ok in [
            "SELECT 1",
            "WITH a AS (SELECT 1 AS x) SELECT x FROM a",
            "select * from staging.deals where stage = 'demo'",
        ] {
            assert!(check_select(ok).is_ok(), "{ok}");
        }
        for (bad, named) in [
            ("DELETE FROM staging.deals", "DELETE"),
            ("DROP TABLE staging.deals", "DROP"),
            ("EXPLAIN SELECT 1", "EXPLAIN"),
            ("SHOW TABLES", "SHOW"),
            ("SELECT 1; SELECT 2", "found 2"),
            ("COPY (SELECT 1) TO '/tmp/x'", "COPY"),
        ] {
            let e = check_select(bad).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{bad}");
            assert!(
                e.message.to_uppercase().contains(&named.to_uppercase()),
                "{bad}: {}",
                e.message
            );
        }
    }
}

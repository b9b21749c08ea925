//! monday.com (a personal API token, sent as the `Authorization` header): boards and their
//! items.
//!
//! # How streams are read
//!
//! Both streams are GraphQL queries (`POST /v2`).
//!
//! - `boards`: `boards(limit, page, state: all)`, paged by page number until a page comes
//!   back short; a board whose `state` is `deleted` lands as a tombstone. Read whole on every
//!   sync.
//! - `items`: for each board in option `boards` (ids; every board when absent), the first
//!   page is `boards(ids) { items_page(limit) { cursor items } }`, each next page
//!   `next_items_page(cursor, limit)` until the cursor comes back null. An item lands with
//!   `board_id`, `group_id`, `group_title`, `columns` (column id → its text, JSON text, what
//!   the transforms map deal fields from) and `column_values` (the raw values, JSON text).
//!   Items are read whole on every sync and merged on `id`: `items_page` filters on a board's
//!   own last-updated column, which a board need not have, so there is no general
//!   updated-since read.
//!
//! # Errors and limits
//!
//! monday reports errors in the body, often with HTTP 200: `{"errors": [{"message",
//! "extensions": {"code"}}]}` or, in older API versions, `{"error_code", "error_message"}`.
//! Complexity-budget and rate-limit codes are retried (after `retry_in_seconds` when given),
//! authentication codes fail naming the token's variable, others fail with the message.

use std::collections::HashMap;
use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use super::http::{Auth, HttpClient, Verdict};
use super::paging::{self, JsonPage, PageRequest, Paging, object_fields};
use super::records::{FieldKind, records_at};
use super::registry::VendorInfo;
use super::source::{Connection, Page, ReadFrom, Source, StreamSpec};
use super::{Result, SourceError};

pub const INFO: VendorInfo = VendorInfo {
    name: "monday",
    description: "monday.com work management (API token; GraphQL): boards, items with their group and column values (option `boards` chooses boards)",
    credentials: "api_token",
    streams: &["boards", "items"],
    default_streams: &["boards", "items"],
    default_base_url: "https://api.monday.com",
};

/// Items per page (monday's maximum).
const ITEMS_PAGE: u64 = 500;

const BOARDS: &str = "query ($limit: Int!, $page: Int!) { boards(limit: $limit, page: $page, state: all) { id name state board_kind description workspace_id updated_at owners { id email } } }";

const ITEM_FIELDS: &str = "id name state created_at updated_at creator_id group { id title } column_values { id type text value }";

fn first_items(board: &str) -> Value {
    json!({
        "query": format!("query ($board: [ID!], $limit: Int!) {{ boards(ids: $board) {{ items_page(limit: $limit) {{ cursor items {{ {ITEM_FIELDS} }} }} }} }}"),
        "variables": {"board": [board], "limit": ITEMS_PAGE}
    })
}

fn next_items(cursor: &str) -> Value {
    json!({
        "query": format!("query ($cursor: String!, $limit: Int!) {{ next_items_page(cursor: $cursor, limit: $limit) {{ cursor items {{ {ITEM_FIELDS} }} }} }}"),
        "variables": {"cursor": cursor, "limit": ITEMS_PAGE}
    })
}

/// A monday.com connection.
pub struct Monday {
    client: HttpClient,
    streams: Vec<String>,
    boards: Vec<String>,
    page_size: u64,
    hints: HashMap<String, FieldKind>,
}

impl Monday {
    pub fn open(connection: &Connection) -> Result<Self> {
        let auth = Auth::Header {
            name: "Authorization".into(),
            value: connection.secret("api_token")?,
        };
        let mut config = connection.client_config(INFO.default_base_url, auth)?;
        config.classify = Some(classify);
        config.classify_success = true;
        // Board ids are numbers; TOML lists may give them as integers or strings.
        let boards = connection
            .options
            .get("boards")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .map(|v| match v {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Monday {
            client: HttpClient::new(config)?,
            streams: connection.select_streams(INFO.streams, INFO.default_streams)?,
            boards,
            page_size: connection
                .option_u64("page_size")
                .unwrap_or(100)
                .clamp(1, 500),
            hints: [
                ("id", FieldKind::Text),
                ("board_id", FieldKind::Text),
                ("workspace_id", FieldKind::Text),
                ("created_at", FieldKind::Timestamp),
                ("updated_at", FieldKind::Timestamp),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        })
    }

    fn board_pages(&self) -> BoxStream<'_, Result<JsonPage>> {
        let request = PageRequest::post(
            "v2",
            json!({"query": BOARDS, "variables": {"limit": self.page_size, "page": 1}}),
        );
        let paging = Paging::BodyOffset {
            field: "/variables/page",
            limit: self.page_size,
            records: "/data/boards",
            pages: true,
        };
        paging::pages(&self.client, request, paging)
    }

    /// The chosen boards' ids, or every board's.
    async fn board_ids(&self) -> Result<Vec<String>> {
        if !self.boards.is_empty() {
            return Ok(self.boards.clone());
        }
        let mut ids = Vec::new();
        let mut pages = self.board_pages();
        while let Some(page) = pages.next().await {
            let page = page?;
            let boards = records_at(&page.body, "/data/boards").map_err(|reason| {
                SourceError::MalformedPage {
                    connection: self.client.connection().to_string(),
                    url: page.url.clone(),
                    reason,
                }
            })?;
            ids.extend(
                boards
                    .iter()
                    .filter(|b| b.get("state").and_then(Value::as_str) != Some("deleted"))
                    .filter_map(|b| b.get("id").and_then(Value::as_str).map(str::to_string)),
            );
        }
        Ok(ids)
    }

    fn items(&self) -> BoxStream<'_, Result<Page>> {
        stream::once(async move {
            let boards = self.board_ids().await?;
            let pages = stream::iter(boards)
                .map(move |board| {
                    let paging = Paging::FollowBody {
                        cursor: &[
                            "/data/boards/0/items_page/cursor",
                            "/data/next_items_page/cursor",
                        ],
                        next: next_items,
                    };
                    paging::pages(
                        &self.client,
                        PageRequest::post("v2", first_items(&board)),
                        paging,
                    )
                    .map(move |page| {
                        let page = page?;
                        let records = if page.body.pointer("/data/next_items_page").is_some() {
                            "/data/next_items_page/items"
                        } else {
                            "/data/boards/0/items_page/items"
                        };
                        page.land(
                            self.client.connection(),
                            records,
                            &self.hints,
                            None,
                            |item| {
                                let deleted =
                                    item.get("state").and_then(Value::as_str) == Some("deleted");
                                Ok((item_fields(item, &board)?, deleted))
                            },
                        )
                    })
                })
                .flatten();
            Ok::<_, SourceError>(pages)
        })
        .try_flatten()
        .boxed()
    }
}

impl Source for Monday {
    fn vendor(&self) -> &'static str {
        INFO.name
    }

    fn streams(&self) -> Vec<StreamSpec> {
        self.streams
            .iter()
            .map(|s| StreamSpec::new("monday", s, &["id"], None))
            .collect()
    }

    fn read<'a>(&'a self, stream: &'a StreamSpec, _from: ReadFrom) -> BoxStream<'a, Result<Page>> {
        match stream.name.to_ascii_lowercase().as_str() {
            "boards" => self
                .board_pages()
                .map(move |page| {
                    page?.land(
                        self.client.connection(),
                        "/data/boards",
                        &self.hints,
                        None,
                        |b| {
                            let deleted = b.get("state").and_then(Value::as_str) == Some("deleted");
                            Ok((object_fields(b)?, deleted))
                        },
                    )
                })
                .boxed(),
            "items" => self.items(),
            _ => {
                let e = SourceError::Config {
                    connection: self.client.connection().to_string(),
                    reason: format!("monday has no stream {:?}", stream.name),
                };
                stream::once(async move { Err(e) }).boxed()
            }
        }
    }

    fn request_stats(&self) -> (u64, u64) {
        self.client.counts()
    }
}

/// An item's landed fields: its own, its board, its group, and its columns' texts by id.
fn item_fields(item: &Value, board: &str) -> std::result::Result<Map<String, Value>, String> {
    let mut fields = object_fields(item)?;
    fields.remove("group");
    fields.insert("board_id".into(), Value::String(board.to_string()));
    for (key, column) in [("id", "group_id"), ("title", "group_title")] {
        let value = item
            .get("group")
            .and_then(|g| g.get(key))
            .cloned()
            .unwrap_or(Value::Null);
        fields.insert(column.into(), value);
    }
    let columns: Map<String, Value> = item
        .get("column_values")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let id = c.get("id")?.as_str()?;
            Some((
                id.to_string(),
                c.get("text").cloned().unwrap_or(Value::Null),
            ))
        })
        .collect();
    fields.insert("columns".into(), Value::Object(columns));
    Ok(fields)
}

/// monday's errors (in the body, with any status): complexity and rate limits are retried,
/// authentication fails naming the token's variable, others fail with the message. A 429
/// or 5xx without such a body keeps the generic handling.
fn classify(status: StatusCode, body: &str) -> Option<Verdict> {
    let body: Value = serde_json::from_str(body).ok()?;
    let (codes, messages, retry_in): (Vec<String>, Vec<String>, Option<f64>) =
        match (body.get("errors"), body.get("error_code")) {
            (Some(Value::Array(errors)), _) if !errors.is_empty() => (
                errors
                    .iter()
                    .filter_map(|e| e.pointer("/extensions/code").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect(),
                errors
                    .iter()
                    .filter_map(|e| e.get("message").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect(),
                errors.iter().find_map(|e| {
                    e.pointer("/extensions/retry_in_seconds")
                        .and_then(Value::as_f64)
                }),
            ),
            (_, Some(Value::String(code))) => (
                vec![code.clone()],
                vec![
                    body.get("error_message")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                ],
                body.pointer("/error_data/retry_in_seconds")
                    .and_then(Value::as_f64),
            ),
            _ => return None,
        };
    let is = |names: &[&str]| {
        codes
            .iter()
            .any(|c| names.iter().any(|n| c.eq_ignore_ascii_case(n)))
    };
    if status == StatusCode::UNAUTHORIZED || is(&["UNAUTHENTICATED", "UserUnauthorizedException"]) {
        return Some(Verdict::RefreshAuth);
    }
    if status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
        || is(&[
            "ComplexityException",
            "COMPLEXITY_BUDGET_EXHAUSTED",
            "RATE_LIMIT_EXCEEDED",
            "Rate Limit Exceeded",
            "maxConcurrencyExceeded",
        ])
    {
        return Some(Verdict::Retry(
            retry_in.map(|s| Duration::from_secs_f64(s.clamp(0.0, 300.0))),
        ));
    }
    Some(Verdict::Fail(format!(
        "monday {}: {}",
        codes.join(", "),
        messages.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_in_a_200_are_classified() {
        let ok = StatusCode::OK;
        assert_eq!(classify(ok, r#"{"data": {"boards": []}}"#), None);
        assert_eq!(
            classify(
                ok,
                r#"{"errors": [{"message": "Complexity budget exhausted", "extensions": {"code": "COMPLEXITY_BUDGET_EXHAUSTED", "retry_in_seconds": 2}}]}"#
            ),
            Some(Verdict::Retry(Some(Duration::from_secs(2))))
        );
        assert_eq!(
            classify(
                ok,
                r#"{"error_code": "ComplexityException", "error_message": "budget", "error_data": {"retry_in_seconds": 1}}"#
            ),
            Some(Verdict::Retry(Some(Duration::from_secs(1))))
        );
        assert_eq!(
            classify(
                ok,
                r#"{"errors": [{"message": "Not Authenticated", "extensions": {"code": "UNAUTHENTICATED"}}]}"#
            ),
            Some(Verdict::RefreshAuth)
        );
        assert_eq!(
            classify(
                ok,
                r#"{"errors": [{"message": "Board not found", "extensions": {"code": "InvalidBoardIdException"}}]}"#
            ),
            Some(Verdict::Fail(
                "monday InvalidBoardIdException: Board not found".into()
            ))
        );
    }

    #[test]
    fn items_land_their_board_group_and_column_texts() {
        let item = json!({"id": "11", "name": "Acme renewal", "group": {"id": "new", "title": "New"},
                          "column_values": [{"id": "status", "text": "Working on it", "type": "status", "value": "{\"index\":0}"},
                                            {"id": "deal_value", "text": "12000", "type": "numbers", "value": "\"12000\""}]});
        let f = item_fields(&item, "42").unwrap();
        assert_eq!(f["board_id"], "42");
        assert_eq!(f["group_title"], "New");
        assert_eq!(f["columns"]["deal_value"], "12000");
        assert!(!f.contains_key("group"));
    }
}

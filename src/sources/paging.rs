//! The pagination styles of vendor APIs, read as one stream of JSON pages through the shared
//! client, each guarded against a cursor (or URL, or offset) that repeats.
//!
//! - [`Paging::NextUrl`]: the response names the next page (`nextRecordsUrl`, `links.next`).
//! - [`Paging::Cursor`]: a token from the response goes back as a query parameter (HubSpot's
//!   `paging.next.after`, Pipedrive's `additional_data.next_cursor`, Slack's `next_cursor`).
//! - [`Paging::Offset`]: offset/limit (`start`/`limit` with `more_items_in_collection`).
//! - [`Paging::HasMore`]: Stripe's `has_more` with `starting_after=<last id>`.
//! - [`Paging::BodyCursor`]: a POST search whose body carries the cursor (HubSpot search).
//! - [`Paging::NextUrlUntil`]: an export whose last page still names a next URL and says it is
//!   the last with a flag (Zendesk's `after_url` / `next_page` with `end_of_stream`).
//! - [`Paging::CursorWhile`]: a cursor sent back while a flag says more follow (Kit's
//!   `pagination.end_cursor` with `has_next_page`).
//! - [`Paging::BodyOffset`]: skip/limit carried in a POST body (GraphQL variables: Fireflies).
//! - [`Paging::FollowBody`]: a POST whose follow-up pages are a different body built from the
//!   cursor (monday.com's `items_page`, then `next_items_page(cursor)`).

use std::collections::HashMap;

use futures::stream::{self, BoxStream, StreamExt};
use reqwest::Method;
use serde_json::{Map, Value};

use super::SourceError;
use super::http::{CursorGuard, HttpClient, redact_url};
use super::records::{FieldKind, PageBuilder, records_at};
use super::source::{CursorRole, Page};

/// How an endpoint pages.
#[derive(Debug, Clone)]
pub enum Paging {
    /// The next page's URL (absolute or a path) at `pointer`; absent, null or empty ends it.
    NextUrl { pointer: &'static str },
    /// The next cursor at `pointer`, sent back as query parameter `param`.
    Cursor {
        pointer: &'static str,
        param: &'static str,
    },
    /// Offset paging: `param` is the offset, `limit_param` the page size; the next offset is at
    /// `next` when the vendor gives it (else offset + records), and `more` says whether there
    /// is one (else a short page ends it).
    Offset {
        param: &'static str,
        limit_param: &'static str,
        limit: u64,
        records: &'static str,
        more: Option<&'static str>,
        next: Option<&'static str>,
    },
    /// `has_more` at `has_more`, records at `records`; the next request sends the last
    /// record's `id` field as `param` (`starting_after`).
    HasMore {
        has_more: &'static str,
        records: &'static str,
        id: &'static str,
        param: &'static str,
    },
    /// A POST whose JSON body carries the cursor at body field `field` (a top-level key, or a
    /// JSON pointer such as `/pagination/starting_after` for a nested one), read from
    /// `pointer`.
    BodyCursor {
        pointer: &'static str,
        field: &'static str,
    },
    /// The next page's URL at `next`, followed while the boolean at `end` is false. The last
    /// page names a next URL too (where a later export would resume): it is not followed, and
    /// a page that is not the last but names none is malformed.
    NextUrlUntil {
        next: &'static str,
        end: &'static str,
    },
    /// The next cursor at `pointer`, sent back as query parameter `param` while the boolean at
    /// `more` is true (the last page may still name a cursor). `more` true without a cursor
    /// is a malformed page.
    CursorWhile {
        pointer: &'static str,
        param: &'static str,
        more: &'static str,
    },
    /// A POST whose body carries the offset at `field` (a JSON pointer such as
    /// `/variables/skip`); pages of `limit` records at `records`, a shorter page ends it.
    /// With `pages`, the field is a 1-based page number instead of a record offset.
    BodyOffset {
        field: &'static str,
        limit: u64,
        records: &'static str,
        pages: bool,
    },
    /// A POST whose first answer holds a cursor at one of `cursor` (JSON pointers, tried in
    /// order); each next page POSTs the body `next(cursor)` to the same path, until no cursor
    /// comes back.
    FollowBody {
        cursor: &'static [&'static str],
        next: fn(&str) -> Value,
    },
}

/// Sets `value` at `field` of `body`: a top-level key, or a JSON pointer whose missing
/// objects are created.
fn set_field(body: &mut Value, field: &str, value: Value) {
    let Some(pointer) = field.strip_prefix('/') else {
        if let Value::Object(b) = body {
            b.insert(field.to_string(), value);
        }
        return;
    };
    let mut at = body;
    let parts: Vec<&str> = pointer.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let Value::Object(map) = at else { return };
        if i + 1 == parts.len() {
            map.insert(part.to_string(), value);
            return;
        }
        at = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
}

/// The first request of a paged read.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub path: String,
    pub query: Vec<(String, String)>,
    /// A JSON body makes it a POST.
    pub body: Option<Value>,
}

impl PageRequest {
    pub fn get(path: impl Into<String>) -> Self {
        PageRequest {
            path: path.into(),
            query: Vec::new(),
            body: None,
        }
    }

    pub fn post(path: impl Into<String>, body: Value) -> Self {
        PageRequest {
            path: path.into(),
            query: Vec::new(),
            body: Some(body),
        }
    }

    pub fn query(mut self, key: &str, value: impl ToString) -> Self {
        self.query.push((key.to_string(), value.to_string()));
        self
    }
}

/// One page: the parsed response and the (redacted) URL it came from.
#[derive(Debug, Clone)]
pub struct JsonPage {
    pub body: Value,
    pub url: String,
    /// 1-based page number within the read.
    pub number: u64,
}

impl JsonPage {
    /// Lands the records at `pointer` (an absent or non-array value is a malformed page) as
    /// one [`Page`]: `fields` gives each record's landed fields and whether it is a
    /// tombstone, or the reason it is malformed.
    pub fn land(
        &self,
        connection: &str,
        pointer: &str,
        hints: &HashMap<String, FieldKind>,
        cursor: Option<CursorRole>,
        mut fields: impl FnMut(&Value) -> Result<(Map<String, Value>, bool), String>,
    ) -> Result<Page, SourceError> {
        let malformed = |reason: String| SourceError::MalformedPage {
            connection: connection.to_string(),
            url: self.url.clone(),
            reason,
        };
        let mut builder = PageBuilder::new(hints.clone());
        for (i, record) in records_at(&self.body, pointer)
            .map_err(malformed)?
            .iter()
            .enumerate()
        {
            let (f, deleted) =
                fields(record).map_err(|e| malformed(format!("record {i} at {pointer}: {e}")))?;
            builder.push(f, record, deleted);
        }
        builder.into_page(connection, &self.url, cursor)
    }
}

/// A record's own fields (it must be an object).
pub fn object_fields(record: &Value) -> Result<Map<String, Value>, String> {
    record
        .as_object()
        .cloned()
        .ok_or_else(|| "the record is not an object".to_string())
}

enum Next {
    Url(String),
    Query(String, String),
    Body(String, Value),
    NewBody(Value),
}

struct State {
    next: Option<Next>,
    guard: CursorGuard,
    offset: u64,
    number: u64,
    done: bool,
}

/// Reads `request` and the pages after it, in order; an error (including a repeating cursor)
/// ends the stream.
pub fn pages<'a>(
    client: &'a HttpClient,
    request: PageRequest,
    paging: Paging,
) -> BoxStream<'a, Result<JsonPage, SourceError>> {
    let state = State {
        next: None,
        guard: CursorGuard::default(),
        offset: 0,
        number: 0,
        done: false,
    };
    let shared = std::sync::Arc::new((request, paging));
    stream::try_unfold(state, move |mut st| {
        let shared = shared.clone();
        async move {
            if st.done {
                return Ok(None);
            }
            let (request, paging) = (&shared.0, &shared.1);
            let mut query = request.query.clone();
            let mut body = request.body.clone();
            let mut path = request.path.clone();
            match st.next.take() {
                None => {
                    if let Paging::Offset {
                        param,
                        limit_param,
                        limit,
                        ..
                    } = paging
                    {
                        query.push((param.to_string(), "0".into()));
                        query.push((limit_param.to_string(), limit.to_string()));
                    }
                }
                Some(Next::Url(u)) => {
                    path = u;
                    // The next URL carries its own query.
                    query.clear();
                }
                Some(Next::Query(k, v)) => {
                    query.retain(|(q, _)| *q != k);
                    query.push((k, v));
                }
                Some(Next::Body(field, v)) => {
                    if let Some(b) = body.as_mut() {
                        set_field(b, &field, v);
                    }
                }
                Some(Next::NewBody(b)) => body = Some(b),
            }
            let url = client.url(&path).await?;
            // Messages name the page with its query (the cursor or offset that reached it).
            let shown = {
                let mut full = url.clone();
                if !query.is_empty() {
                    full.query_pairs_mut().extend_pairs(&query);
                }
                redact_url(&full)
            };
            let response = match &body {
                Some(b) => {
                    client
                        .send(Method::POST, &url, |r| r.query(&query).json(b))
                        .await?
                }
                None => client.send(Method::GET, &url, |r| r.query(&query)).await?,
            };
            let value = client.json(response, &url).await?;
            st.number += 1;
            let malformed = |reason: String| SourceError::MalformedPage {
                connection: client.connection().to_string(),
                url: shown.clone(),
                reason,
            };
            let text_at = |pointer: &str| -> Option<String> {
                match value.pointer(pointer)? {
                    Value::String(s) if !s.is_empty() => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                }
            };
            match paging {
                Paging::NextUrl { pointer } => match text_at(pointer) {
                    Some(next) => {
                        st.guard.check(client.connection(), &shown, &next)?;
                        st.next = Some(Next::Url(next));
                    }
                    None => st.done = true,
                },
                Paging::Cursor { pointer, param } => match text_at(pointer) {
                    Some(next) => {
                        st.guard.check(client.connection(), &shown, &next)?;
                        st.next = Some(Next::Query(param.to_string(), next));
                    }
                    None => st.done = true,
                },
                Paging::NextUrlUntil { next, end } => {
                    let ended = value.pointer(end).and_then(Value::as_bool).ok_or_else(|| {
                        malformed(format!("no boolean `{end}` says whether the export ended"))
                    })?;
                    match text_at(next) {
                        _ if ended => st.done = true,
                        Some(url) => {
                            st.guard.check(client.connection(), &shown, &url)?;
                            st.next = Some(Next::Url(url));
                        }
                        None => {
                            return Err(malformed(format!(
                                "`{end}` is false but there is no next page at `{next}`"
                            )));
                        }
                    }
                }
                Paging::BodyCursor { pointer, field } => match text_at(pointer) {
                    Some(next) => {
                        st.guard.check(client.connection(), &shown, &next)?;
                        st.next = Some(Next::Body(field.to_string(), Value::String(next)));
                    }
                    None => st.done = true,
                },
                Paging::CursorWhile {
                    pointer,
                    param,
                    more,
                } => {
                    let more_pages =
                        value
                            .pointer(more)
                            .and_then(Value::as_bool)
                            .ok_or_else(|| {
                                malformed(format!(
                                    "no boolean `{more}` says whether more pages follow"
                                ))
                            })?;
                    match text_at(pointer) {
                        _ if !more_pages => st.done = true,
                        Some(next) => {
                            st.guard.check(client.connection(), &shown, &next)?;
                            st.next = Some(Next::Query(param.to_string(), next));
                        }
                        None => {
                            return Err(malformed(format!(
                                "`{more}` is true but there is no cursor at `{pointer}`"
                            )));
                        }
                    }
                }
                Paging::BodyOffset {
                    field,
                    limit,
                    records,
                    pages,
                } => {
                    let n = match value.pointer(records) {
                        Some(Value::Array(a)) => a.len() as u64,
                        Some(Value::Null) => 0,
                        _ => return Err(malformed(format!("no array at {records}"))),
                    };
                    if n >= *limit && n > 0 {
                        st.offset += n;
                        // Page numbers start at 1: the page after the first is 2.
                        let sent = if *pages { st.number + 1 } else { st.offset };
                        st.next = Some(Next::Body(field.to_string(), Value::from(sent)));
                    } else {
                        st.done = true;
                    }
                }
                Paging::FollowBody { cursor, next } => {
                    match cursor.iter().find_map(|p| text_at(p)) {
                        Some(c) => {
                            st.guard.check(client.connection(), &shown, &c)?;
                            st.next = Some(Next::NewBody(next(&c)));
                        }
                        None => st.done = true,
                    }
                }
                Paging::Offset {
                    param,
                    limit,
                    records,
                    more,
                    next,
                    ..
                } => {
                    let n = match value.pointer(records) {
                        Some(Value::Array(a)) => a.len() as u64,
                        Some(Value::Null) => 0,
                        _ => return Err(malformed(format!("no array at {records}"))),
                    };
                    let has_more = match more {
                        Some(p) => value.pointer(p).and_then(Value::as_bool).unwrap_or(false),
                        None => n >= *limit,
                    };
                    if has_more && n > 0 {
                        let following = next
                            .and_then(|p| value.pointer(p))
                            .and_then(Value::as_u64)
                            .unwrap_or(st.offset + n);
                        if following <= st.offset {
                            return Err(malformed(format!(
                                "the next offset {following} does not move past {}",
                                st.offset
                            )));
                        }
                        st.guard
                            .check(client.connection(), &shown, &following.to_string())?;
                        st.offset = following;
                        st.next = Some(Next::Query(param.to_string(), following.to_string()));
                    } else {
                        st.done = true;
                    }
                }
                Paging::HasMore {
                    has_more,
                    records,
                    id,
                    param,
                } => {
                    let items = value
                        .pointer(records)
                        .and_then(Value::as_array)
                        .ok_or_else(|| malformed(format!("no array at {records}")))?;
                    let more = value
                        .pointer(has_more)
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    match items
                        .last()
                        .and_then(|r| r.get(*id))
                        .and_then(Value::as_str)
                    {
                        Some(last) if more => {
                            st.guard.check(client.connection(), &shown, last)?;
                            st.next = Some(Next::Query(param.to_string(), last.to_string()));
                        }
                        None if more => {
                            return Err(malformed(format!(
                                "has_more is true but the last record has no `{id}`"
                            )));
                        }
                        _ => st.done = true,
                    }
                }
            }
            let page = JsonPage {
                body: value,
                url: shown,
                number: st.number,
            };
            Ok(Some((page, st)))
        }
    })
    .boxed()
}

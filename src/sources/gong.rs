//! Gong (an access key and its secret, sent as basic auth): users, calls with their parties,
//! CRM context, topics, trackers and interaction stats, and call transcripts on demand.
//!
//! # How streams are read
//!
//! - `users`: `GET /v2/users`, paged by `records.cursor` (sent back as `cursor`), read whole
//!   on every sync (the transforms need every internal email).
//! - `calls`: `POST /v2/calls/extensive` with `filter.fromDateTime` (the cursor, inclusive) and
//!   a `contentSelector` asking for parties, the extended CRM context, topics, trackers and
//!   interaction stats; paged by `records.cursor` sent back in the body. A call lands as its
//!   `metaData` fields (`id`, `title`, `started`, `duration`, ...) plus `participants` (JSON
//!   text: `[{name, email, affiliation, title, user_id, speaker_id}]`, from `parties`), the CRM
//!   ids Gong attached (`crm_source`, `crm_deal_id`, `crm_account_id`), `topics`, `trackers`,
//!   `interaction_stats` (JSON text) and `talk_ratio`. The cursor is `started`; Gong does not
//!   promise an order, so it moves once the whole stream was read.
//! - `transcripts` (not synced unless named): `POST /v2/calls/transcript`, one row per call
//!   (`call_id`, `transcript`: the monologues as JSON text), read from option
//!   `transcripts_from` (RFC 3339) or from the start.
//!
//! # Tracked users
//!
//! Option `tracked_users` (Gong user ids, or emails resolved through `/v2/users`) restricts
//! calls to those hosted by these users (`filter.primaryUserIds`), and transcripts to those
//! calls.
//!
//! # Errors and limits
//!
//! Gong answers 404 "No calls found corresponding to the provided filters" when nothing
//! matches: that is an empty page, not an error. Other refusals fail with Gong's `errors`.
//! The API allows 3 requests a second: a 429 is retried after its `Retry-After`.

use std::collections::HashMap;

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use super::http::{Auth, HttpClient, Verdict};
use super::paging::{self, JsonPage, PageRequest, Paging};
use super::records::{FieldKind, PageBuilder, records_at};
use super::registry::VendorInfo;
use super::source::{Connection, CursorRole, Page, ReadFrom, Source, StreamSpec};
use super::{Result, SourceError};

pub const INFO: VendorInfo = VendorInfo {
    name: "gong",
    description: "Gong conversation intelligence (access key): users, calls with participants' emails, CRM context, topics, trackers and talk ratios, transcripts on demand; optionally only tracked users' calls",
    credentials: "access_key, access_key_secret",
    streams: &["users", "calls", "transcripts"],
    default_streams: &["users", "calls"],
    default_base_url: "https://api.gong.io",
};

/// Gong's cursor: `records.cursor`, present while more pages follow.
const GET_PAGES: Paging = Paging::Cursor {
    pointer: "/records/cursor",
    param: "cursor",
};
const POST_PAGES: Paging = Paging::BodyCursor {
    pointer: "/records/cursor",
    field: "cursor",
};

/// A Gong connection.
pub struct Gong {
    client: HttpClient,
    streams: Vec<String>,
    /// Ids or emails of the users whose calls are synced; empty for every user.
    tracked: Vec<String>,
    transcripts_from: Option<String>,
}

impl Gong {
    pub fn open(connection: &Connection) -> Result<Self> {
        let key = connection.secret("access_key")?;
        let secret = connection.secret("access_key_secret")?;
        let auth = Auth::Basic {
            user: key.expose().to_string(),
            password: secret,
        };
        let mut config = connection.client_config(INFO.default_base_url, auth)?;
        config.classify = Some(classify);
        let transcripts_from = match connection.option_str("transcripts_from") {
            Some(t) => Some(
                chrono::DateTime::parse_from_rfc3339(t)
                    .map_err(|e| SourceError::Config {
                        connection: connection.name.clone(),
                        reason: format!(
                            "option transcripts_from {t:?} is not an RFC 3339 time: {e}"
                        ),
                    })?
                    .to_rfc3339(),
            ),
            None => None,
        };
        Ok(Gong {
            client: HttpClient::new(config)?,
            streams: connection.select_streams(INFO.streams, INFO.default_streams)?,
            tracked: connection.option_list("tracked_users"),
            transcripts_from,
        })
    }

    fn malformed(&self, page: &JsonPage, reason: impl std::fmt::Display) -> SourceError {
        SourceError::MalformedPage {
            connection: self.client.connection().to_string(),
            url: page.url.clone(),
            reason: reason.to_string(),
        }
    }

    fn users(&self) -> BoxStream<'_, Result<JsonPage>> {
        paging::pages(&self.client, PageRequest::get("v2/users"), GET_PAGES)
    }

    /// The tracked users' ids (emails resolved through `/v2/users`); `None` for every user.
    async fn tracked_ids(&self) -> Result<Option<Vec<Value>>> {
        if self.tracked.is_empty() {
            return Ok(None);
        }
        let mut by_email = HashMap::new();
        if self.tracked.iter().any(|t| t.contains('@')) {
            let mut pages = self.users();
            while let Some(page) = pages.next().await {
                let page = page?;
                for user in
                    records_at(&page.body, "/users").map_err(|e| self.malformed(&page, e))?
                {
                    if let (Some(email), Some(id)) = (
                        user.get("emailAddress").and_then(Value::as_str),
                        user.get("id").and_then(Value::as_str),
                    ) {
                        by_email.insert(email.to_ascii_lowercase(), id.to_string());
                    }
                }
            }
        }
        let mut ids = Vec::with_capacity(self.tracked.len());
        for t in &self.tracked {
            let id = if t.contains('@') {
                by_email
                    .get(&t.to_ascii_lowercase())
                    .cloned()
                    .ok_or_else(|| SourceError::Config {
                        connection: self.client.connection().to_string(),
                        reason: format!("tracked user {t:?} is not a Gong user's email"),
                    })?
            } else {
                t.clone()
            };
            ids.push(Value::String(id));
        }
        Ok(Some(ids))
    }

    /// Extensive call data from `since`, of the tracked users' calls.
    fn call_pages(
        &self,
        since: Option<String>,
        tracked: Option<Vec<Value>>,
        content: bool,
    ) -> BoxStream<'_, Result<JsonPage>> {
        let mut filter = Map::new();
        if let Some(since) = since {
            filter.insert("fromDateTime".into(), Value::String(since));
        }
        if let Some(ids) = tracked {
            filter.insert("primaryUserIds".into(), Value::Array(ids));
        }
        let mut body = json!({ "filter": filter });
        if content {
            body["contentSelector"] = json!({
                "context": "Extended",
                "exposedFields": {
                    "parties": true,
                    "content": {"topics": true, "trackers": true},
                    "interaction": {"interactionStats": true}
                }
            });
        }
        paging::pages(
            &self.client,
            PageRequest::post("v2/calls/extensive", body),
            POST_PAGES,
        )
    }

    fn calls(&self, from: ReadFrom) -> BoxStream<'_, Result<Page>> {
        let since = from
            .since
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        let hints: HashMap<String, FieldKind> = [
            ("id", FieldKind::Text),
            ("primaryUserId", FieldKind::Text),
            ("workspaceId", FieldKind::Text),
            ("started", FieldKind::Timestamp),
            ("scheduled", FieldKind::Timestamp),
            ("talk_ratio", FieldKind::Float),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        stream::once(async move {
            let tracked = self.tracked_ids().await?;
            let pages = self.call_pages(since, tracked, true).map(move |page| {
                let page = page?;
                let mut builder = PageBuilder::new(hints.clone());
                for call in
                    records_at(&page.body, "/calls").map_err(|e| self.malformed(&page, e))?
                {
                    let fields = call_fields(call).map_err(|e| self.malformed(&page, e))?;
                    builder.push(fields, call, false);
                }
                builder.into_page(
                    self.client.connection(),
                    &page.url,
                    Some(CursorRole::Unordered),
                )
            });
            Ok::<_, SourceError>(pages)
        })
        .try_flatten()
        .boxed()
    }

    fn transcripts(&self) -> BoxStream<'_, Result<Page>> {
        stream::once(async move {
            // Tracked users: the ids of their calls first, then those calls' transcripts.
            let call_ids = match self.tracked_ids().await? {
                None => None,
                Some(users) => {
                    let mut ids = Vec::new();
                    let mut pages =
                        self.call_pages(self.transcripts_from.clone(), Some(users), false);
                    while let Some(page) = pages.next().await {
                        let page = page?;
                        for call in records_at(&page.body, "/calls")
                            .map_err(|e| self.malformed(&page, e))?
                        {
                            if let Some(id) = call.pointer("/metaData/id") {
                                ids.push(id.clone());
                            }
                        }
                    }
                    Some(ids)
                }
            };
            let batches: Vec<Option<Vec<Value>>> = match call_ids {
                None => vec![None],
                Some(ids) => ids.chunks(100).map(|c| Some(c.to_vec())).collect(),
            };
            let pages = stream::iter(batches)
                .map(move |ids| {
                    let mut filter = Map::new();
                    if let Some(from) = &self.transcripts_from {
                        filter.insert("fromDateTime".into(), Value::String(from.clone()));
                    }
                    if let Some(ids) = ids {
                        filter.insert("callIds".into(), Value::Array(ids));
                    }
                    paging::pages(
                        &self.client,
                        PageRequest::post("v2/calls/transcript", json!({ "filter": filter })),
                        POST_PAGES,
                    )
                })
                .flatten()
                .map(move |page| {
                    let page = page?;
                    let mut builder = PageBuilder::default();
                    for t in records_at(&page.body, "/callTranscripts")
                        .map_err(|e| self.malformed(&page, e))?
                    {
                        let mut fields = Map::new();
                        fields.insert(
                            "call_id".into(),
                            t.get("callId").cloned().unwrap_or(Value::Null),
                        );
                        fields.insert(
                            "transcript".into(),
                            t.get("transcript").cloned().unwrap_or(Value::Null),
                        );
                        builder.push(fields, t, false);
                    }
                    builder.into_page(self.client.connection(), &page.url, None)
                });
            Ok::<_, SourceError>(pages)
        })
        .try_flatten()
        .boxed()
    }
}

impl Source for Gong {
    fn vendor(&self) -> &'static str {
        INFO.name
    }

    fn streams(&self) -> Vec<StreamSpec> {
        self.streams
            .iter()
            .map(|s| match s.as_str() {
                "calls" => StreamSpec::new("gong", s, &["id"], Some("started")),
                "transcripts" => StreamSpec::new("gong", s, &["call_id"], None),
                _ => StreamSpec::new("gong", s, &["id"], None),
            })
            .collect()
    }

    fn read<'a>(&'a self, stream: &'a StreamSpec, from: ReadFrom) -> BoxStream<'a, Result<Page>> {
        match stream.name.as_str() {
            "users" => self
                .users()
                .map(move |page| {
                    let page = page?;
                    let mut builder =
                        PageBuilder::new(HashMap::from([("id".to_string(), FieldKind::Text)]));
                    for user in
                        records_at(&page.body, "/users").map_err(|e| self.malformed(&page, e))?
                    {
                        builder
                            .push_record(user, false)
                            .map_err(|e| self.malformed(&page, e))?;
                    }
                    builder.into_page(self.client.connection(), &page.url, None)
                })
                .boxed(),
            "calls" => self.calls(from),
            "transcripts" => self.transcripts(),
            other => {
                let e = SourceError::Config {
                    connection: self.client.connection().to_string(),
                    reason: format!("gong has no stream {other:?}"),
                };
                stream::once(async move { Err(e) }).boxed()
            }
        }
    }

    fn request_stats(&self) -> (u64, u64) {
        let s = self.client.stats();
        (
            s.requests.load(std::sync::atomic::Ordering::Relaxed),
            s.retries.load(std::sync::atomic::Ordering::Relaxed),
        )
    }
}

/// A call's landed fields: its `metaData`, the participants with their emails, the CRM ids
/// of its context, topics, trackers and interaction stats.
fn call_fields(call: &Value) -> std::result::Result<Map<String, Value>, String> {
    let mut fields = call
        .get("metaData")
        .and_then(Value::as_object)
        .cloned()
        .ok_or("a call has no `metaData` object")?;
    let get = |v: &Value, k: &str| v.get(k).cloned().unwrap_or(Value::Null);
    let parties = call.get("parties").and_then(Value::as_array);
    let participants: Vec<Value> = parties
        .into_iter()
        .flatten()
        .map(|p| {
            json!({
                "name": get(p, "name"),
                "email": get(p, "emailAddress"),
                "affiliation": get(p, "affiliation"),
                "title": get(p, "title"),
                "user_id": get(p, "userId"),
                "speaker_id": get(p, "speakerId"),
            })
        })
        .collect();
    fields.insert("participants".into(), Value::Array(participants));

    // The first CRM deal (opportunity) and account the context names, and their system.
    let (mut source, mut deal, mut account) = (None, None, None);
    for ctx in call
        .get("context")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for object in ctx
            .get("objects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let id = object.get("objectId").cloned();
            let slot = match object
                .get("objectType")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("opportunity" | "deal") => &mut deal,
                Some("account" | "company") => &mut account,
                _ => continue,
            };
            if slot.is_none() && id.is_some() {
                *slot = id;
                source = source.or_else(|| ctx.get("system").cloned());
            }
        }
    }
    fields.insert("crm_source".into(), source.unwrap_or(Value::Null));
    fields.insert("crm_deal_id".into(), deal.unwrap_or(Value::Null));
    fields.insert("crm_account_id".into(), account.unwrap_or(Value::Null));

    let content = call.get("content").unwrap_or(&Value::Null);
    fields.insert("topics".into(), get(content, "topics"));
    fields.insert("trackers".into(), get(content, "trackers"));
    let stats = call
        .pointer("/interaction/interactionStats")
        .cloned()
        .unwrap_or(Value::Null);
    let talk_ratio = stats
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s.get("name").and_then(Value::as_str) == Some("Talk Ratio"))
        .map(|s| get(s, "value"))
        .unwrap_or(Value::Null);
    fields.insert("interaction_stats".into(), stats);
    fields.insert("talk_ratio".into(), talk_ratio);
    Ok(fields)
}

/// Gong's error bodies (`{"requestId", "errors": [...]}`): a 404 saying nothing was found is
/// an empty page; other refusals fail with the errors; 401, 429 and 5xx keep the generic
/// handling (credentials named, retries).
fn classify(status: StatusCode, body: &str) -> Option<Verdict> {
    if status == StatusCode::UNAUTHORIZED
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        return None;
    }
    let body: Value = serde_json::from_str(body).ok()?;
    let errors: Vec<&str> = body
        .get("errors")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let nothing = |e: &&str| e.starts_with("No ") && e.contains(" found");
    if status == StatusCode::NOT_FOUND && !errors.is_empty() && errors.iter().all(nothing) {
        return Some(Verdict::Empty(json!({
            "records": {"totalRecords": 0, "currentPageSize": 0},
            "users": [], "calls": [], "callTranscripts": []
        })));
    }
    Some(Verdict::Fail(format!("Gong: {}", errors.join("; "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_found_is_an_empty_page_and_other_errors_fail() {
        let none = r#"{"requestId": "4al0", "errors": ["No calls found corresponding to the provided filters"]}"#;
        assert!(matches!(
            classify(StatusCode::NOT_FOUND, none),
            Some(Verdict::Empty(_))
        ));
        let bad = r#"{"requestId": "4al0", "errors": ["fromDateTime: invalid date"]}"#;
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, bad),
            Some(Verdict::Fail("Gong: fromDateTime: invalid date".into()))
        );
        assert_eq!(classify(StatusCode::TOO_MANY_REQUESTS, bad), None);
        assert_eq!(classify(StatusCode::NOT_FOUND, "<html>"), None);
    }

    #[test]
    fn a_call_lands_with_participants_emails_and_crm_ids() {
        let call = json!({
            "metaData": {"id": "7782342274025937895", "title": "Acme demo", "started": "2025-01-02T10:00:00Z", "duration": 1800},
            "parties": [{"id": "1", "name": "Rep", "emailAddress": "rep@us.com", "affiliation": "Internal", "userId": "234", "speakerId": "s1"},
                        {"id": "2", "name": "Buyer", "emailAddress": "b@acme.com", "affiliation": "External"}],
            "context": [{"system": "Salesforce", "objects": [
                {"objectType": "Account", "objectId": "001A"}, {"objectType": "Opportunity", "objectId": "006A"}]}],
            "content": {"topics": [{"name": "Pricing", "duration": 120}], "trackers": []},
            "interaction": {"interactionStats": [{"name": "Talk Ratio", "value": 0.42}]}
        });
        let f = call_fields(&call).unwrap();
        assert_eq!(f["id"], "7782342274025937895");
        assert_eq!(f["participants"][1]["email"], "b@acme.com");
        assert_eq!(f["crm_source"], "Salesforce");
        assert_eq!(f["crm_deal_id"], "006A");
        assert_eq!(f["crm_account_id"], "001A");
        assert_eq!(f["talk_ratio"], 0.42);
        assert!(call_fields(&json!({"parties": []})).is_err());
    }
}

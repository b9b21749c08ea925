//! Gmail (OAuth 2.0: an access token, or a client with a refresh token): the messages that
//! match a search query, with the headers the transforms match participants on.
//!
//! # How streams are read
//!
//! `messages` lists `GET /gmail/v1/users/{user}/messages?q=<query>&maxResults=100`, paged by
//! `nextPageToken` (sent back as `pageToken`); the list holds ids only, so each message is
//! then read with `format=metadata` and the `From`, `To`, `Cc`, `Subject`, `Date` and
//! `Message-ID` headers (four requests at a time). A message lands with `id`, `thread_id`,
//! `label_ids`, `snippet`, `internal_date` (when Gmail received it, the cursor), the headers
//! as `from`, `to`, `cc`, `subject`, `date`, `message_id`, and `participants`: every address
//! of From/To/Cc, lowercased, as JSON text.
//!
//! Option `query` is a Gmail search (`from:(@acme.com) OR to:(@acme.com)`, `label:deals`;
//! all mail when absent) and `user` the mailbox (`me`, the token's owner, by default). An
//! incremental sync adds `after:<cursor - 1s>` (epoch seconds) to the query. The list comes
//! newest first, so the cursor moves once the whole stream was read.
//!
//! # Deletes
//!
//! Deleted messages are no longer listed; a message deleted between its listing and its read
//! (a 404) is skipped.
//!
//! # Errors and limits
//!
//! Google's error bodies (`{"error": {"code", "message", "status", "errors": [{"reason"}]}}`)
//! explain a refused request; a 403 whose reason is `rateLimitExceeded` or
//! `userRateLimitExceeded` is retried like a 429. [`google_auth`] and [`google_classify`]
//! serve the other Google APIs (Drive).

use std::collections::HashMap;

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use url::Url;

use super::http::{Auth, Grant, HttpClient, OAuth, Verdict};
use super::paging::{self, JsonPage, PageRequest, Paging};
use super::records::{FieldKind, PageBuilder};
use super::registry::VendorInfo;
use super::source::{Connection, CursorRole, Page, ReadFrom, Source, StreamSpec};
use super::{Result, SourceError};

pub const INFO: VendorInfo = VendorInfo {
    name: "gmail",
    description: "Gmail (OAuth): messages matching a search query (option `query`), with From/To/Cc/Subject/Date headers and participants' emails",
    credentials: "access_token | client_id, client_secret, refresh_token",
    streams: &["messages"],
    default_streams: &["messages"],
    default_base_url: "https://gmail.googleapis.com",
};

const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// The headers read of each message, and their landed columns.
const HEADERS: &[(&str, &str)] = &[
    ("From", "from"),
    ("To", "to"),
    ("Cc", "cc"),
    ("Subject", "subject"),
    ("Date", "date"),
    ("Message-ID", "message_id"),
];

/// Messages read at a time.
const CONCURRENT_READS: usize = 4;

/// Google auth: a bearer `access_token`, or an OAuth client (`client_id`, `client_secret`,
/// `refresh_token`; option `token_url` for another token endpoint).
pub(super) fn google_auth(connection: &Connection) -> Result<Auth> {
    if !connection.has_credential("refresh_token") {
        return Ok(Auth::Bearer(connection.secret("access_token")?));
    }
    let raw = connection
        .option_str("token_url")
        .unwrap_or(GOOGLE_TOKEN_URL);
    let token_url = Url::parse(raw).map_err(|e| SourceError::Config {
        connection: connection.name.clone(),
        reason: format!("option token_url {raw:?} is not a URL: {e}"),
    })?;
    Ok(Auth::OAuth(OAuth {
        token_url,
        client_id: connection.secret("client_id")?,
        client_secret: connection.secret("client_secret")?,
        grant: Grant::RefreshToken(connection.secret("refresh_token")?),
    }))
}

/// Google's error bodies: rate-limit 403s are retried, other refusals fail with the message;
/// 401, 429 and 5xx keep the generic handling (token refresh, credentials named, retries).
pub(super) fn google_classify(status: StatusCode, body: &str) -> Option<Verdict> {
    if status == StatusCode::UNAUTHORIZED
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        return None;
    }
    let error = serde_json::from_str::<Value>(body)
        .ok()?
        .get("error")?
        .clone();
    let reasons: Vec<&str> = error
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("reason").and_then(Value::as_str))
        .collect();
    if status == StatusCode::FORBIDDEN
        && reasons
            .iter()
            .any(|r| matches!(*r, "rateLimitExceeded" | "userRateLimitExceeded"))
    {
        return Some(Verdict::Retry(None));
    }
    let text = |k: &str| error.get(k).and_then(Value::as_str).unwrap_or_default();
    Some(Verdict::Fail(format!(
        "Google {}: {}",
        text("status"),
        text("message")
    )))
}

/// A missing message (deleted after it was listed) reads as an empty object.
fn classify(status: StatusCode, body: &str) -> Option<Verdict> {
    if status == StatusCode::NOT_FOUND {
        return Some(Verdict::Empty(json!({})));
    }
    google_classify(status, body)
}

/// A Gmail connection.
pub struct Gmail {
    client: HttpClient,
    user: String,
    query: Option<String>,
    page_size: u64,
    hints: HashMap<String, FieldKind>,
}

impl Gmail {
    pub fn open(connection: &Connection) -> Result<Self> {
        let mut config =
            connection.client_config(INFO.default_base_url, google_auth(connection)?)?;
        config.classify = Some(classify);
        connection.select_streams(INFO.streams, INFO.default_streams)?;
        let user = connection.option_str("user").unwrap_or("me").to_string();
        if user.is_empty() || user.contains('/') {
            return Err(SourceError::Config {
                connection: connection.name.clone(),
                reason: format!("option user {user:?} is not a mailbox (`me` or an email)"),
            });
        }
        Ok(Gmail {
            client: HttpClient::new(config)?,
            user,
            query: connection.option_str("query").map(str::to_string),
            page_size: connection
                .option_u64("page_size")
                .unwrap_or(100)
                .clamp(1, 500),
            hints: [
                ("id", FieldKind::Text),
                ("thread_id", FieldKind::Text),
                ("history_id", FieldKind::Text),
                ("internal_date", FieldKind::Timestamp),
                ("size_estimate", FieldKind::Int),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        })
    }

    /// The page of full messages for one page of listed ids.
    async fn messages_page(&self, page: JsonPage) -> Result<Page> {
        let malformed = |reason: String| SourceError::MalformedPage {
            connection: self.client.connection().to_string(),
            url: page.url.clone(),
            reason,
        };
        // No `messages` at all is how Gmail says nothing matches.
        let listed = match page.body.get("messages") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => return Err(malformed("`messages` is not an array".into())),
        };
        let ids = listed
            .iter()
            .map(|m| {
                m.get("id")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| malformed("a listed message has no `id`".into()))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut query = vec![("format", "metadata".to_string())];
        query.extend(
            HEADERS
                .iter()
                .map(|(h, _)| ("metadataHeaders", h.to_string())),
        );
        let messages: Vec<Value> = stream::iter(ids)
            .map(|id| {
                let path = format!("gmail/v1/users/{}/messages/{id}", self.user);
                let query = query.clone();
                async move { self.client.get_json(&path, &query).await }
            })
            .buffered(CONCURRENT_READS)
            .try_collect()
            .await?;
        let mut builder = PageBuilder::new(self.hints.clone());
        for message in messages.iter().filter(|m| m.get("id").is_some()) {
            let fields = message_fields(message)
                .map_err(|e| malformed(format!("message {}: {e}", message["id"])))?;
            builder.push(fields, message, false);
        }
        builder.into_page(
            self.client.connection(),
            &page.url,
            Some(CursorRole::Unordered),
        )
    }
}

impl Source for Gmail {
    fn vendor(&self) -> &'static str {
        INFO.name
    }

    fn streams(&self) -> Vec<StreamSpec> {
        vec![StreamSpec::new(
            "gmail",
            "messages",
            &["id"],
            Some("internal_date"),
        )]
    }

    fn read<'a>(&'a self, stream: &'a StreamSpec, from: ReadFrom) -> BoxStream<'a, Result<Page>> {
        if !stream.name.eq_ignore_ascii_case("messages") {
            let e = SourceError::Config {
                connection: self.client.connection().to_string(),
                reason: format!("gmail has no stream {:?}", stream.name),
            };
            return stream::once(async move { Err(e) }).boxed();
        }
        // The user's query is grouped, so an `OR` in it does not swallow the time bound.
        let after = from.since.map(|t| format!("after:{}", t.timestamp() - 1));
        let q = match (&self.query, after) {
            (Some(q), Some(after)) => Some(format!("({q}) {after}")),
            (Some(q), None) => Some(q.clone()),
            (None, after) => after,
        };
        let mut request = PageRequest::get(format!("gmail/v1/users/{}/messages", self.user))
            .query("maxResults", self.page_size);
        if let Some(q) = q {
            request = request.query("q", q);
        }
        let paging = Paging::Cursor {
            pointer: "/nextPageToken",
            param: "pageToken",
        };
        paging::pages(&self.client, request, paging)
            .and_then(move |page| self.messages_page(page))
            .boxed()
    }

    fn request_stats(&self) -> (u64, u64) {
        self.client.counts()
    }
}

/// A message's landed fields: its ids, labels, snippet and times, its headers, and the
/// addresses of From/To/Cc as `participants`.
fn message_fields(message: &Value) -> std::result::Result<Map<String, Value>, String> {
    let mut fields = Map::new();
    for (key, column) in [
        ("id", "id"),
        ("threadId", "thread_id"),
        ("labelIds", "label_ids"),
        ("snippet", "snippet"),
        ("historyId", "history_id"),
        ("internalDate", "internal_date"),
        ("sizeEstimate", "size_estimate"),
    ] {
        fields.insert(
            column.into(),
            message.get(key).cloned().unwrap_or(Value::Null),
        );
    }
    let headers = match message.pointer("/payload/headers") {
        Some(Value::Array(h)) => h.as_slice(),
        None | Some(Value::Null) => &[],
        Some(_) => return Err("`payload.headers` is not an array".into()),
    };
    let mut participants: Vec<String> = Vec::new();
    for (name, column) in HEADERS {
        let value = headers
            .iter()
            .filter(|h| {
                h.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .filter_map(|h| h.get("value").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(", ");
        if matches!(*name, "From" | "To" | "Cc") {
            for email in addresses(&value) {
                if !participants.contains(&email) {
                    participants.push(email);
                }
            }
        }
        let value = if value.is_empty() {
            Value::Null
        } else {
            Value::String(value)
        };
        fields.insert(column.to_string(), value);
    }
    fields.insert(
        "participants".into(),
        Value::Array(participants.into_iter().map(Value::String).collect()),
    );
    Ok(fields)
}

/// The email addresses of an address header (`"Doe, Ann" <Ann@Acme.com>, bob@globex.com`),
/// lowercased.
fn addresses(header: &str) -> Vec<String> {
    header
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '<' | '>' | '"' | '\''))
        .filter(|t| {
            t.split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        })
        .map(str::to_ascii_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_from_display_names_and_lists() {
        assert_eq!(
            addresses(r#""Doe, Ann" <Ann@Acme.com>, bob@globex.com; x <not-an-address>"#),
            ["ann@acme.com", "bob@globex.com"]
        );
        assert!(addresses("undisclosed-recipients:;").is_empty());
    }

    #[test]
    fn google_errors_retry_rate_limits_and_explain_the_rest() {
        let limited = r#"{"error": {"code": 403, "message": "User rate limit exceeded", "status": "PERMISSION_DENIED", "errors": [{"reason": "userRateLimitExceeded"}]}}"#;
        assert_eq!(
            google_classify(StatusCode::FORBIDDEN, limited),
            Some(Verdict::Retry(None))
        );
        let denied = r#"{"error": {"code": 403, "message": "Gmail API has not been used", "status": "PERMISSION_DENIED", "errors": [{"reason": "accessNotConfigured"}]}}"#;
        assert_eq!(
            google_classify(StatusCode::FORBIDDEN, denied),
            Some(Verdict::Fail(
                "Google PERMISSION_DENIED: Gmail API has not been used".into()
            ))
        );
        assert_eq!(google_classify(StatusCode::UNAUTHORIZED, denied), None);
    }
}

//! Zendesk Support (an API token, sent as basic auth `{email}/token:{api_token}`): tickets,
//! users and organizations through the incremental export API.
//!
//! # How streams are read
//!
//! - `tickets` and `users`: the cursor-based exports
//!   (`/api/v2/incremental/{tickets,users}/cursor.json?start_time=<epoch s>`), then each
//!   page's `after_url` until `end_of_stream` is true.
//! - `organizations`: the time-based export (`/api/v2/incremental/organizations.json`), then
//!   each page's `next_page` until `end_of_stream`. More than 1,000 organizations changed in
//!   the same second make Zendesk repeat a page: the repeating-cursor guard stops the stream.
//!
//! The exports list by the time Zendesk generated each change, which need not follow
//! `updated_at` (the cursor field), so pages are unordered: the cursor moves once the whole
//! stream was read, and the next sync starts at it (`start_time`, inclusive).
//!
//! A ticket's `organization_id` is its requester's organization (what the transforms join
//! on); it lands typed (integer) even on a page where every value is null, like the other ids.
//!
//! # Deletes
//!
//! Deleted tickets stay in the export with `status = "deleted"` and deleted organizations with
//! a `deleted_at`: both land as tombstones (`_deleted`).
//!
//! # Base URL and limits
//!
//! The API root is `https://{subdomain}.zendesk.com` (option `subdomain`), or the
//! connection's `base_url`. The exports allow 10 requests a minute: a 429 is retried after its
//! `Retry-After`.

use std::collections::HashMap;

use futures::stream::{self, BoxStream, StreamExt};
use reqwest::StatusCode;
use serde_json::Value;

use super::http::{Auth, HttpClient, Verdict};
use super::paging::{self, PageRequest, Paging};
use super::records::{FieldKind, PageBuilder, records_at};
use super::registry::VendorInfo;
use super::source::{Connection, CursorRole, Page, ReadFrom, Source, StreamSpec};
use super::{Result, SourceError};

pub const INFO: VendorInfo = VendorInfo {
    name: "zendesk",
    description: "Zendesk Support (API token): tickets with the requester's organization, users, organizations (incremental exports, deletions as tombstones)",
    credentials: "email, api_token",
    streams: STREAMS,
    default_streams: STREAMS,
    default_base_url: "https://{subdomain}.zendesk.com",
};

const STREAMS: &[&str] = &["tickets", "users", "organizations"];

/// A stream's export: path, records array, next-page field.
fn export(stream: &str) -> Option<(&'static str, &'static str, Paging)> {
    let cursor = Paging::NextUrlUntil {
        next: "/after_url",
        end: "/end_of_stream",
    };
    let time = Paging::NextUrlUntil {
        next: "/next_page",
        end: "/end_of_stream",
    };
    match stream {
        "tickets" => Some(("api/v2/incremental/tickets/cursor.json", "/tickets", cursor)),
        "users" => Some(("api/v2/incremental/users/cursor.json", "/users", cursor)),
        "organizations" => Some((
            "api/v2/incremental/organizations.json",
            "/organizations",
            time,
        )),
        _ => None,
    }
}

/// Fields landed with a fixed type whatever a page holds.
const HINTS: &[(&str, FieldKind)] = &[
    ("id", FieldKind::Int),
    ("requester_id", FieldKind::Int),
    ("submitter_id", FieldKind::Int),
    ("assignee_id", FieldKind::Int),
    ("organization_id", FieldKind::Int),
    ("group_id", FieldKind::Int),
    ("created_at", FieldKind::Timestamp),
    ("updated_at", FieldKind::Timestamp),
    ("deleted_at", FieldKind::Timestamp),
];

/// A Zendesk connection.
pub struct Zendesk {
    client: HttpClient,
    streams: Vec<String>,
    page_size: u64,
}

impl Zendesk {
    pub fn open(connection: &Connection) -> Result<Self> {
        let email = connection.secret("email")?;
        let token = connection.secret("api_token")?;
        let default_base = match connection.option_str("subdomain") {
            Some(s)
                if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
            {
                format!("https://{s}.zendesk.com")
            }
            Some(s) => {
                return Err(SourceError::Config {
                    connection: connection.name.clone(),
                    reason: format!(
                        "option subdomain {s:?} is not a Zendesk subdomain (letters, digits and `-`, as in `acme` for acme.zendesk.com)"
                    ),
                });
            }
            None if connection.base_url.is_some() => String::new(),
            None => {
                return Err(SourceError::Config {
                    connection: connection.name.clone(),
                    reason: "set `options.subdomain` (acme for acme.zendesk.com) or `base_url`"
                        .into(),
                });
            }
        };
        let auth = Auth::Basic {
            user: format!("{}/token", email.expose()),
            password: token,
        };
        let mut config = connection.client_config(&default_base, auth)?;
        config.classify = Some(classify);
        Ok(Zendesk {
            client: HttpClient::new(config)?,
            streams: connection.select_streams(INFO.streams, INFO.default_streams)?,
            page_size: connection
                .option_u64("page_size")
                .unwrap_or(1000)
                .clamp(1, 1000),
        })
    }
}

impl Source for Zendesk {
    fn vendor(&self) -> &'static str {
        INFO.name
    }

    fn streams(&self) -> Vec<StreamSpec> {
        self.streams
            .iter()
            .map(|s| StreamSpec::new("zendesk", s, &["id"], Some("updated_at")))
            .collect()
    }

    fn read<'a>(&'a self, stream: &'a StreamSpec, from: ReadFrom) -> BoxStream<'a, Result<Page>> {
        let Some((path, records, paging)) = export(&stream.name) else {
            let e = SourceError::Config {
                connection: self.client.connection().to_string(),
                reason: format!("zendesk has no stream {:?}", stream.name),
            };
            return stream::once(async move { Err(e) }).boxed();
        };
        // Zendesk refuses a start_time within the last minute (whose changes it holds back).
        let latest = chrono::Utc::now().timestamp() - 61;
        let start = from.since.map_or(0, |t| t.timestamp().clamp(0, latest));
        let request = PageRequest::get(path)
            .query("start_time", start)
            .query("per_page", self.page_size);
        let hints: HashMap<String, FieldKind> =
            HINTS.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        paging::pages(&self.client, request, paging)
            .map(move |page| {
                let page = page?;
                let malformed = |reason: String| SourceError::MalformedPage {
                    connection: self.client.connection().to_string(),
                    url: page.url.clone(),
                    reason,
                };
                let mut builder = PageBuilder::new(hints.clone());
                for record in records_at(&page.body, records).map_err(malformed)? {
                    let deleted = record.get("status").and_then(Value::as_str) == Some("deleted")
                        || record.get("deleted_at").is_some_and(|d| !d.is_null());
                    builder.push_record(record, deleted).map_err(malformed)?;
                }
                builder.into_page(
                    self.client.connection(),
                    &page.url,
                    Some(CursorRole::Unordered),
                )
            })
            .boxed()
    }

    fn request_stats(&self) -> (u64, u64) {
        let s = self.client.stats();
        (
            s.requests.load(std::sync::atomic::Ordering::Relaxed),
            s.retries.load(std::sync::atomic::Ordering::Relaxed),
        )
    }
}

/// Zendesk's error bodies (`{"error": "...", "description": "..."}`, or `error` an object with
/// `title` and `message`) explain a refused request; 401, 429 and 5xx keep the generic
/// handling (credentials named, retries).
fn classify(status: StatusCode, body: &str) -> Option<Verdict> {
    if status == StatusCode::UNAUTHORIZED
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        return None;
    }
    let body: Value = serde_json::from_str(body).ok()?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    let (error, detail) = match body.get("error")? {
        Value::String(e) => (e.clone(), text(body.get("description"))),
        Value::Object(o) => (text(o.get("title")), text(o.get("message"))),
        _ => return None,
    };
    Some(Verdict::Fail(
        format!("Zendesk {error}: {detail}")
            .trim_end_matches(": ")
            .to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_explain_refusals() {
        let forbidden =
            r#"{"error": "Forbidden", "description": "You do not have access to this page."}"#;
        assert_eq!(
            classify(StatusCode::FORBIDDEN, forbidden),
            Some(Verdict::Fail(
                "Zendesk Forbidden: You do not have access to this page.".into()
            ))
        );
        let invalid =
            r#"{"error": {"title": "Invalid attribute", "message": "start_time is too recent"}}"#;
        assert_eq!(
            classify(StatusCode::UNPROCESSABLE_ENTITY, invalid),
            Some(Verdict::Fail(
                "Zendesk Invalid attribute: start_time is too recent".into()
            ))
        );
        assert_eq!(classify(StatusCode::TOO_MANY_REQUESTS, forbidden), None);
        assert_eq!(classify(StatusCode::NOT_FOUND, "<html>"), None);
    }
}

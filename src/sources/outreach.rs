//! Outreach (OAuth 2.0: an access token, or a client with a refresh token): prospects,
//! accounts, sequences, sequence states, mailings (with opens, clicks and replies) and calls.
//!
//! # How streams are read
//!
//! Every stream is a JSON:API collection (`GET /api/v2/<type>?page[size]=100&sort=updatedAt`)
//! paged by the `links.next` URL of each answer. Records land as their `id`, their
//! `attributes` (camelCase names landed snake_case: `updatedAt` → `updated_at`) and, for each
//! relationship, the related id as `<relationship>_id` (`account_id`, `prospect_id`,
//! `sequence_id`, `mailbox_id`) or the related ids as `<relationship>_ids` (JSON text) for a
//! to-many one.
//!
//! Collections are sorted by `updatedAt` ascending, so pages are in cursor order and each
//! checkpoint may advance the cursor. An incremental sync asks for
//! `filter[updatedAt]=<cursor>..inf` (inclusive: the boundary is re-read and merged).
//!
//! Mailings carry what the transforms need for email engagement: `open_count`,
//! `click_count`, `opened_at`, `clicked_at`, `replied_at`, `bounced_at`, `delivered_at`, and the
//! prospect, sequence and mailbox they belong to. Calls carry `direction`, `outcome`,
//! `duration` (seconds), `from`/`to` numbers and their prospect and user.
//!
//! # Deletes
//!
//! The REST API does not list deleted records (Outreach reports deletions through webhooks
//! only): a record deleted in Outreach stays in the raw table until a full sync rebuilds it.
//!
//! # Errors and limits
//!
//! Error bodies (`{"errors": [{"id", "title", "detail"}]}`) explain a refused request. A 401
//! with an OAuth client refreshes the token once. Outreach allows 10,000 requests an hour per
//! user and says so in `x-ratelimit-remaining` / `x-ratelimit-reset`: the client pauses when
//! the window is used up; a 429 is retried after its `Retry-After`.

use std::collections::HashMap;

use futures::stream::{self, BoxStream, StreamExt};
use reqwest::StatusCode;
use serde_json::{Map, Value};
use url::Url;

use super::http::{Auth, Grant, HttpClient, OAuth, QuotaHeaders, Verdict};
use super::paging::{self, PageRequest, Paging};
use super::records::FieldKind;
use super::registry::VendorInfo;
use super::source::{Connection, Page, ReadFrom, Source, StreamSpec};
use super::{Result, SourceError};

pub const INFO: VendorInfo = VendorInfo {
    name: "outreach",
    description: "Outreach sales engagement (OAuth): prospects, accounts, sequences, sequence states, mailings with opens/clicks/replies, calls (incremental by updatedAt)",
    credentials: "access_token | client_id, client_secret, refresh_token",
    streams: STREAMS,
    default_streams: STREAMS,
    default_base_url: "https://api.outreach.io/api/v2/",
};

const STREAMS: &[&str] = &[
    "prospects",
    "accounts",
    "sequences",
    "sequenceStates",
    "mailings",
    "calls",
];

const TOKEN_URL: &str = "https://api.outreach.io/oauth/token";

/// Attributes landed with a fixed type whatever a page holds.
const HINTS: &[(&str, FieldKind)] = &[
    ("id", FieldKind::Int),
    ("createdAt", FieldKind::Timestamp),
    ("updatedAt", FieldKind::Timestamp),
    ("openedAt", FieldKind::Timestamp),
    ("clickedAt", FieldKind::Timestamp),
    ("repliedAt", FieldKind::Timestamp),
    ("bouncedAt", FieldKind::Timestamp),
    ("deliveredAt", FieldKind::Timestamp),
    ("openCount", FieldKind::Int),
    ("clickCount", FieldKind::Int),
];

/// An Outreach connection.
pub struct Outreach {
    client: HttpClient,
    streams: Vec<String>,
    page_size: u64,
    hints: HashMap<String, FieldKind>,
}

impl Outreach {
    pub fn open(connection: &Connection) -> Result<Self> {
        let auth = if connection.has_credential("refresh_token") {
            let raw = connection.option_str("token_url").unwrap_or(TOKEN_URL);
            let token_url = Url::parse(raw).map_err(|e| SourceError::Config {
                connection: connection.name.clone(),
                reason: format!("option token_url {raw:?} is not a URL: {e}"),
            })?;
            Auth::OAuth(OAuth {
                token_url,
                client_id: connection.secret("client_id")?,
                client_secret: connection.secret("client_secret")?,
                grant: Grant::RefreshToken(connection.secret("refresh_token")?),
            })
        } else {
            Auth::Bearer(connection.secret("access_token")?)
        };
        let mut config = connection.client_config(INFO.default_base_url, auth)?;
        config.classify = Some(classify);
        config.quota = Some(QuotaHeaders {
            remaining: "x-ratelimit-remaining",
            reset: Some("x-ratelimit-reset"),
            reset_in_millis: false,
        });
        Ok(Outreach {
            client: HttpClient::new(config)?,
            streams: canonical(connection.select_streams(INFO.streams, INFO.default_streams)?),
            page_size: connection
                .option_u64("page_size")
                .unwrap_or(100)
                .clamp(1, 1000),
            hints: HINTS.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        })
    }
}

impl Source for Outreach {
    fn vendor(&self) -> &'static str {
        INFO.name
    }

    fn streams(&self) -> Vec<StreamSpec> {
        self.streams
            .iter()
            .map(|s| StreamSpec::new("outreach", s, &["id"], Some("updated_at")).ordered())
            .collect()
    }

    fn read<'a>(&'a self, stream: &'a StreamSpec, from: ReadFrom) -> BoxStream<'a, Result<Page>> {
        let Some(name) = STREAMS
            .iter()
            .find(|s| s.eq_ignore_ascii_case(&stream.name))
        else {
            let e = SourceError::Config {
                connection: self.client.connection().to_string(),
                reason: format!("outreach has no stream {:?}", stream.name),
            };
            return stream::once(async move { Err(e) }).boxed();
        };
        let mut request = PageRequest::get(*name)
            .query("page[size]", self.page_size)
            .query("sort", "updatedAt");
        if let Some(since) = from.since {
            let since = since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            request = request.query("filter[updatedAt]", format!("{since}..inf"));
        }
        paging::pages(
            &self.client,
            request,
            Paging::NextUrl {
                pointer: "/links/next",
            },
        )
        .map(move |page| {
            page?.land(self.client.connection(), "/data", &self.hints, None, |r| {
                resource_fields(r).map(|f| (f, false))
            })
        })
        .boxed()
    }

    fn request_stats(&self) -> (u64, u64) {
        self.client.counts()
    }
}

/// The streams as Outreach spells them (`sequencestates` → `sequenceStates`).
fn canonical(streams: Vec<String>) -> Vec<String> {
    streams
        .into_iter()
        .map(|s| {
            STREAMS
                .iter()
                .find(|k| k.eq_ignore_ascii_case(&s))
                .map_or(s, |k| k.to_string())
        })
        .collect()
}

/// A JSON:API resource's landed fields: `id`, its attributes, and its relationships' ids.
fn resource_fields(resource: &Value) -> std::result::Result<Map<String, Value>, String> {
    let id = resource
        .get("id")
        .filter(|id| !id.is_null())
        .ok_or("the resource has no `id`")?;
    let mut fields = match resource.get("attributes") {
        Some(Value::Object(a)) => a.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err("`attributes` is not an object".into()),
    };
    fields.insert("id".into(), id.clone());
    if let Some(Value::Object(relationships)) = resource.get("relationships") {
        for (name, rel) in relationships {
            match rel.get("data") {
                Some(Value::Object(one)) => {
                    fields.insert(
                        format!("{name}Id"),
                        one.get("id").cloned().unwrap_or(Value::Null),
                    );
                }
                Some(Value::Array(many)) => {
                    let ids = many.iter().filter_map(|r| r.get("id").cloned()).collect();
                    fields.insert(format!("{name}Ids"), Value::Array(ids));
                }
                _ => {}
            }
        }
    }
    Ok(fields)
}

/// Outreach's JSON:API error bodies explain a refused request; 401, 429 and 5xx keep the
/// generic handling (token refresh, credentials named, retries).
fn classify(status: StatusCode, body: &str) -> Option<Verdict> {
    if status == StatusCode::UNAUTHORIZED
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        return None;
    }
    let body: Value = serde_json::from_str(body).ok()?;
    let errors: Vec<String> = body
        .get("errors")?
        .as_array()?
        .iter()
        .map(|e| {
            let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default();
            format!("{} {}", text("title"), text("detail"))
                .trim()
                .to_string()
        })
        .collect();
    Some(Verdict::Fail(format!("Outreach: {}", errors.join("; "))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_resource_lands_with_attributes_and_relationship_ids() {
        let r = json!({
            "type": "mailing", "id": 12,
            "attributes": {"subject": "Hi", "openCount": 2, "updatedAt": "2025-01-02T10:00:00.000Z"},
            "relationships": {
                "prospect": {"data": {"type": "prospect", "id": 7}},
                "sequence": {"data": null},
                "tasks": {"data": [{"type": "task", "id": 1}, {"type": "task", "id": 2}]}
            }
        });
        let f = resource_fields(&r).unwrap();
        assert_eq!(f["id"], 12);
        assert_eq!(f["openCount"], 2);
        assert_eq!(f["prospectId"], 7);
        assert_eq!(f["tasksIds"], json!([1, 2]));
        assert!(!f.contains_key("sequenceId"));
        assert!(resource_fields(&json!({"attributes": {}})).is_err());
    }

    #[test]
    fn error_bodies_explain_refusals() {
        let body = r#"{"errors": [{"id": "validationError", "title": "Validation Error", "detail": "Unknown filter updatedAtt"}]}"#;
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, body),
            Some(Verdict::Fail(
                "Outreach: Validation Error Unknown filter updatedAtt".into()
            ))
        );
        assert_eq!(classify(StatusCode::UNAUTHORIZED, body), None);
    }
}

//! Salesloft (an API key or an OAuth access token, sent as a bearer token): people, accounts,
//! cadences, emails, calls and meetings.
//!
//! # How streams are read
//!
//! Every stream is a list endpoint (`GET /v2/<path>?per_page=100&sort_by=updated_at&
//! sort_direction=ASC`) paged by page number: each answer names the next page at
//! `metadata.paging.next_page` (null on the last), sent back as `page`. `emails` and `calls`
//! are the activity endpoints (`/v2/activities/emails`, `/v2/activities/calls`).
//!
//! Lists are sorted by `updated_at` ascending, so pages are in cursor order and each
//! checkpoint may advance the cursor. An incremental sync asks for `updated_at[gte]=<cursor>`
//! (inclusive: the boundary is re-read and merged).
//!
//! Records land field by field; a nested reference (`"account": {"id": 5, "_href": ...}`)
//! also lands its id as `<field>_id` (`account_id`, `person_id`, `cadence_id`, `user_id`), so
//! the transforms join without parsing JSON. Emails keep `recipient_email_address` and their
//! `counts` (opens, clicks, replies); calls their `to`, `duration`, `disposition` and
//! `sentiment`; meetings their `attendees` (JSON text, with emails).
//!
//! # Deletes
//!
//! Salesloft lists no deleted records; a deleted person stays in the raw table until a full
//! sync rebuilds it.
//!
//! # Errors and limits
//!
//! Error bodies (`{"error": "..."}`, or `{"errors": {field: [..]}}` for a 422) explain a
//! refused request. Salesloft allows 600 cost units a minute: a 429 is retried after its
//! `Retry-After`.

use std::collections::HashMap;

use futures::stream::{self, BoxStream, StreamExt};
use reqwest::StatusCode;
use serde_json::{Map, Value};

use super::http::{Auth, HttpClient, Verdict};
use super::paging::{self, PageRequest, Paging, object_fields};
use super::records::FieldKind;
use super::registry::VendorInfo;
use super::source::{Connection, Page, ReadFrom, Source, StreamSpec};
use super::{Result, SourceError};

pub const INFO: VendorInfo = VendorInfo {
    name: "salesloft",
    description: "Salesloft sales engagement (API key or OAuth token): people, accounts, cadences, emails and calls (activities), meetings (incremental by updated_at)",
    credentials: "api_key",
    streams: STREAMS,
    default_streams: STREAMS,
    default_base_url: "https://api.salesloft.com",
};

const STREAMS: &[&str] = &[
    "people", "accounts", "cadences", "emails", "calls", "meetings",
];

fn endpoint(stream: &str) -> Option<&'static str> {
    Some(match stream {
        "people" => "v2/people",
        "accounts" => "v2/accounts",
        "cadences" => "v2/cadences",
        "emails" => "v2/activities/emails",
        "calls" => "v2/activities/calls",
        "meetings" => "v2/meetings",
        _ => return None,
    })
}

const HINTS: &[(&str, FieldKind)] = &[
    ("id", FieldKind::Int),
    ("created_at", FieldKind::Timestamp),
    ("updated_at", FieldKind::Timestamp),
];

/// A Salesloft connection.
pub struct Salesloft {
    client: HttpClient,
    streams: Vec<String>,
    page_size: u64,
    hints: HashMap<String, FieldKind>,
}

impl Salesloft {
    pub fn open(connection: &Connection) -> Result<Self> {
        let key = connection.secret("api_key")?;
        let mut config = connection.client_config(INFO.default_base_url, Auth::Bearer(key))?;
        config.classify = Some(classify);
        Ok(Salesloft {
            client: HttpClient::new(config)?,
            streams: connection.select_streams(INFO.streams, INFO.default_streams)?,
            page_size: connection
                .option_u64("page_size")
                .unwrap_or(100)
                .clamp(1, 100),
            hints: HINTS.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        })
    }
}

impl Source for Salesloft {
    fn vendor(&self) -> &'static str {
        INFO.name
    }

    fn streams(&self) -> Vec<StreamSpec> {
        self.streams
            .iter()
            .map(|s| StreamSpec::new("salesloft", s, &["id"], Some("updated_at")).ordered())
            .collect()
    }

    fn read<'a>(&'a self, stream: &'a StreamSpec, from: ReadFrom) -> BoxStream<'a, Result<Page>> {
        let Some(path) = endpoint(&stream.name.to_ascii_lowercase()) else {
            let e = SourceError::Config {
                connection: self.client.connection().to_string(),
                reason: format!("salesloft has no stream {:?}", stream.name),
            };
            return stream::once(async move { Err(e) }).boxed();
        };
        let mut request = PageRequest::get(path)
            .query("per_page", self.page_size)
            .query("sort_by", "updated_at")
            .query("sort_direction", "ASC");
        if let Some(since) = from.since {
            request = request.query(
                "updated_at[gte]",
                since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            );
        }
        let paging = Paging::Cursor {
            pointer: "/metadata/paging/next_page",
            param: "page",
        };
        paging::pages(&self.client, request, paging)
            .map(move |page| {
                page?.land(self.client.connection(), "/data", &self.hints, None, |r| {
                    object_fields(r).map(|f| (with_reference_ids(f), false))
                })
            })
            .boxed()
    }

    fn request_stats(&self) -> (u64, u64) {
        self.client.counts()
    }
}

/// `fields` plus `<name>_id` for each nested reference (an object with an `id`).
fn with_reference_ids(mut fields: Map<String, Value>) -> Map<String, Value> {
    let ids: Vec<(String, Value)> = fields
        .iter()
        .filter_map(|(name, v)| {
            let id = v.as_object()?.get("id")?;
            Some((format!("{name}_id"), id.clone()))
        })
        .filter(|(name, _)| !fields.contains_key(name))
        .collect();
    fields.extend(ids);
    fields
}

/// Salesloft's error bodies explain a refused request; 401, 429 and 5xx keep the generic
/// handling (credentials named, retries).
fn classify(status: StatusCode, body: &str) -> Option<Verdict> {
    if status == StatusCode::UNAUTHORIZED
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        return None;
    }
    let body: Value = serde_json::from_str(body).ok()?;
    let reason = match (body.get("error"), body.get("errors")) {
        (Some(Value::String(e)), _) => e.clone(),
        (_, Some(errors)) => errors.to_string(),
        _ => return None,
    };
    Some(Verdict::Fail(format!("Salesloft: {reason}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_land_their_ids() {
        let f = with_reference_ids(
            json!({"id": 1, "account": {"id": 5, "_href": "x"}, "owner": null, "counts": {"opens": 2}})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert_eq!(f["account_id"], 5);
        assert!(!f.contains_key("owner_id") && !f.contains_key("counts_id"));
    }

    #[test]
    fn error_bodies_explain_refusals() {
        assert_eq!(
            classify(
                StatusCode::FORBIDDEN,
                r#"{"error": "Forbidden: missing scope"}"#
            ),
            Some(Verdict::Fail("Salesloft: Forbidden: missing scope".into()))
        );
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, r#"{"error": "x"}"#),
            None
        );
    }
}

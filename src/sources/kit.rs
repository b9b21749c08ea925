//! Kit, formerly ConvertKit (API v4; a v4 API key sent as `X-Kit-Api-Key`, or an OAuth access
//! token sent as a bearer token): subscribers, sequences and broadcasts.
//!
//! # How streams are read
//!
//! Every stream is a v4 list (`GET /v4/<object>?per_page=500`) paged by cursor: while
//! `pagination.has_next_page` is true, `pagination.end_cursor` goes back as `after`.
//!
//! - `subscribers`: listed with `status=all`, so cancelled, bounced and complained
//!   subscribers are read too (their `state` says so). Kit's subscriber records carry no
//!   update time, so the stream's cursor is the landing's own `_synced_at` (when the sync that
//!   read them started): an incremental sync asks for `updated_after=<cursor - 1s>`, every
//!   subscriber changed since the previous sync began.
//! - `sequences` and `broadcasts`: read whole on every sync (a few hundred records at most).
//!
//! # Deletes
//!
//! Kit lists no deleted records; an unsubscribed subscriber stays with `state = cancelled`.
//!
//! # Errors and limits
//!
//! Errors come as `{"errors": ["..."]}`. API keys allow 120 requests a minute: a 429 is
//! retried after its `Retry-After`.

use std::collections::HashMap;

use futures::stream::{self, BoxStream, StreamExt};
use reqwest::StatusCode;
use serde_json::Value;

use super::http::{Auth, HttpClient, Verdict};
use super::paging::{self, PageRequest, Paging, object_fields};
use super::records::FieldKind;
use super::registry::VendorInfo;
use super::source::{Connection, CursorRole, Page, ReadFrom, Source, StreamSpec};
use super::{Result, SourceError};

pub const INFO: VendorInfo = VendorInfo {
    name: "kit",
    description: "Kit / ConvertKit API v4 (API key or OAuth token): subscribers (all states, incremental by updated_after), sequences, broadcasts",
    credentials: "api_key | access_token",
    streams: STREAMS,
    default_streams: STREAMS,
    default_base_url: "https://api.kit.com",
};

const STREAMS: &[&str] = &["subscribers", "sequences", "broadcasts"];

const HINTS: &[(&str, FieldKind)] = &[
    ("id", FieldKind::Int),
    ("created_at", FieldKind::Timestamp),
    ("canceled_at", FieldKind::Timestamp),
    ("send_at", FieldKind::Timestamp),
    ("published_at", FieldKind::Timestamp),
];

/// The subscribers' cursor: when the sync that read them started.
const SYNCED_AT: &str = "_synced_at";

/// A Kit connection.
pub struct Kit {
    client: HttpClient,
    streams: Vec<String>,
    page_size: u64,
    hints: HashMap<String, FieldKind>,
}

impl Kit {
    pub fn open(connection: &Connection) -> Result<Self> {
        let auth = if connection.has_credential("access_token") {
            Auth::Bearer(connection.secret("access_token")?)
        } else {
            Auth::Header {
                name: "X-Kit-Api-Key".into(),
                value: connection.secret("api_key")?,
            }
        };
        let mut config = connection.client_config(INFO.default_base_url, auth)?;
        config.classify = Some(classify);
        Ok(Kit {
            client: HttpClient::new(config)?,
            streams: connection.select_streams(INFO.streams, INFO.default_streams)?,
            page_size: connection
                .option_u64("page_size")
                .unwrap_or(500)
                .clamp(1, 1000),
            hints: HINTS.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        })
    }
}

impl Source for Kit {
    fn vendor(&self) -> &'static str {
        INFO.name
    }

    fn streams(&self) -> Vec<StreamSpec> {
        self.streams
            .iter()
            .map(|s| match s.as_str() {
                "subscribers" => StreamSpec::new("kit", s, &["id"], Some(SYNCED_AT)),
                _ => StreamSpec::new("kit", s, &["id"], None),
            })
            .collect()
    }

    fn read<'a>(&'a self, stream: &'a StreamSpec, from: ReadFrom) -> BoxStream<'a, Result<Page>> {
        let name = stream.name.to_ascii_lowercase();
        if !STREAMS.contains(&name.as_str()) {
            let e = SourceError::Config {
                connection: self.client.connection().to_string(),
                reason: format!("kit has no stream {:?}", stream.name),
            };
            return stream::once(async move { Err(e) }).boxed();
        }
        let mut request = PageRequest::get(format!("v4/{name}")).query("per_page", self.page_size);
        if name == "subscribers" {
            request = request.query("status", "all");
            if let Some(since) = from.since {
                let since = since - chrono::Duration::seconds(1);
                request = request.query(
                    "updated_after",
                    since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                );
            }
        }
        let paging = Paging::CursorWhile {
            pointer: "/pagination/end_cursor",
            param: "after",
            more: "/pagination/has_next_page",
        };
        let records: &'static str = match name.as_str() {
            "subscribers" => "/subscribers",
            "sequences" => "/sequences",
            _ => "/broadcasts",
        };
        paging::pages(&self.client, request, paging)
            .map(move |page| {
                page?.land(
                    self.client.connection(),
                    records,
                    &self.hints,
                    Some(CursorRole::Unordered),
                    |r| object_fields(r).map(|f| (f, false)),
                )
            })
            .boxed()
    }

    fn request_stats(&self) -> (u64, u64) {
        self.client.counts()
    }
}

/// Kit's `{"errors": [...]}` explains a refused request; 401, 429 and 5xx keep the generic
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
    Some(Verdict::Fail(format!("Kit: {}", errors.join("; "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lists_explain_refusals() {
        assert_eq!(
            classify(
                StatusCode::UNPROCESSABLE_ENTITY,
                r#"{"errors": ["Per page must be less than or equal to 1000"]}"#
            ),
            Some(Verdict::Fail(
                "Kit: Per page must be less than or equal to 1000".into()
            ))
        );
        assert_eq!(
            classify(StatusCode::UNAUTHORIZED, r#"{"errors": []}"#),
            None
        );
    }
}

//! Fireflies.ai (an API key, sent as a bearer token): meeting transcripts, optionally only
//! those organized by chosen people.
//!
//! # How streams are read
//!
//! `transcripts` is the GraphQL query `transcripts(fromDate, organizers, limit, skip)`
//! (`POST /graphql`), paged by `skip` in steps of `limit` (50, Fireflies' maximum) until a
//! page comes back short. A transcript lands with `id`, `title`, `date` (epoch milliseconds,
//! landed as a timestamp: the cursor), `duration` (minutes), `organizer_email`,
//! `host_email`, `participants` (the invitees' emails, JSON text), `meeting_attendees`,
//! `speakers`, `summary` (overview, action items, keywords) and `transcript_url`. With option
//! `sentences = true` the spoken sentences (speaker, text, start and end seconds) land too, as
//! JSON text.
//!
//! Option `organizers` (emails) keeps only the meetings those people organized. Transcripts
//! come newest first, so the cursor moves once the whole stream was read; an incremental sync
//! asks for `fromDate: <cursor>` (inclusive).
//!
//! # Errors and limits
//!
//! GraphQL reports errors in the body, often with HTTP 200: `{"errors": [{"message", "code",
//! "extensions": {"code"}}]}`. An authentication code fails naming the key's variable,
//! `too_many_requests` is retried (after `Retry-After` when sent), any other fails the stream
//! with the messages.

use std::collections::HashMap;

use futures::stream::{self, BoxStream, StreamExt};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use super::http::{Auth, HttpClient, Verdict};
use super::paging::{self, PageRequest, Paging, object_fields};
use super::records::FieldKind;
use super::registry::VendorInfo;
use super::source::{Connection, CursorRole, Page, ReadFrom, Source, StreamSpec};
use super::{Result, SourceError};

pub const INFO: VendorInfo = VendorInfo {
    name: "fireflies",
    description: "Fireflies.ai meeting transcripts (API key; GraphQL): participants, speakers, summaries, optionally sentences; filtered by organizer emails (option `organizers`)",
    credentials: "api_key",
    streams: &["transcripts"],
    default_streams: &["transcripts"],
    default_base_url: "https://api.fireflies.ai",
};

/// Transcripts per page: Fireflies' maximum (option `page_size` for fewer).
const PAGE: u64 = 50;

const FIELDS: &str = "id title date dateString duration organizer_email host_email participants transcript_url meeting_link meeting_attendees { displayName email name } speakers { id name } summary { overview action_items keywords }";

/// The transcripts query, with or without the sentences.
fn query(sentences: bool) -> String {
    let extra = if sentences {
        " sentences { index speaker_name text start_time end_time }"
    } else {
        ""
    };
    format!(
        "query Transcripts($fromDate: DateTime, $organizers: [String!], $limit: Int, $skip: Int) \
         {{ transcripts(fromDate: $fromDate, organizers: $organizers, limit: $limit, skip: $skip) \
         {{ {FIELDS}{extra} }} }}"
    )
}

/// A Fireflies connection.
pub struct Fireflies {
    client: HttpClient,
    organizers: Vec<String>,
    sentences: bool,
    page_size: u64,
    hints: HashMap<String, FieldKind>,
}

impl Fireflies {
    pub fn open(connection: &Connection) -> Result<Self> {
        let key = connection.secret("api_key")?;
        let mut config = connection.client_config(INFO.default_base_url, Auth::Bearer(key))?;
        config.classify = Some(classify);
        config.classify_success = true;
        connection.select_streams(INFO.streams, INFO.default_streams)?;
        let sentences = match connection.options.get("sentences") {
            None => false,
            Some(toml::Value::Boolean(b)) => *b,
            Some(other) => {
                return Err(SourceError::Config {
                    connection: connection.name.clone(),
                    reason: format!("option sentences must be true or false, not {other}"),
                });
            }
        };
        Ok(Fireflies {
            client: HttpClient::new(config)?,
            organizers: connection.option_list("organizers"),
            sentences,
            page_size: connection
                .option_u64("page_size")
                .unwrap_or(PAGE)
                .clamp(1, PAGE),
            hints: [
                ("id", FieldKind::Text),
                ("date", FieldKind::Timestamp),
                ("duration", FieldKind::Float),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        })
    }
}

impl Source for Fireflies {
    fn vendor(&self) -> &'static str {
        INFO.name
    }

    fn streams(&self) -> Vec<StreamSpec> {
        vec![StreamSpec::new(
            "fireflies",
            "transcripts",
            &["id"],
            Some("date"),
        )]
    }

    fn read<'a>(&'a self, stream: &'a StreamSpec, from: ReadFrom) -> BoxStream<'a, Result<Page>> {
        if !stream.name.eq_ignore_ascii_case("transcripts") {
            let e = SourceError::Config {
                connection: self.client.connection().to_string(),
                reason: format!("fireflies has no stream {:?}", stream.name),
            };
            return stream::once(async move { Err(e) }).boxed();
        }
        let mut variables = Map::new();
        variables.insert("limit".into(), json!(self.page_size));
        variables.insert("skip".into(), json!(0));
        if let Some(since) = from.since {
            variables.insert(
                "fromDate".into(),
                json!(since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            );
        }
        if !self.organizers.is_empty() {
            variables.insert("organizers".into(), json!(self.organizers));
        }
        let request = PageRequest::post(
            "graphql",
            json!({"query": query(self.sentences), "variables": variables}),
        );
        let paging = Paging::BodyOffset {
            field: "/variables/skip",
            limit: self.page_size,
            records: "/data/transcripts",
            pages: false,
        };
        paging::pages(&self.client, request, paging)
            .map(move |page| {
                page?.land(
                    self.client.connection(),
                    "/data/transcripts",
                    &self.hints,
                    Some(CursorRole::Unordered),
                    |t| object_fields(t).map(|f| (f, false)),
                )
            })
            .boxed()
    }

    fn request_stats(&self) -> (u64, u64) {
        self.client.counts()
    }
}

/// GraphQL `errors` in the body (with a 200 or not): authentication codes refuse the key,
/// rate limits are retried, others fail with the messages. A 401, 429 or 5xx without errors
/// keeps the generic handling.
fn classify(status: StatusCode, body: &str) -> Option<Verdict> {
    let body: Value = serde_json::from_str(body).ok()?;
    let errors = body.get("errors")?.as_array().filter(|e| !e.is_empty())?;
    let code = |e: &Value| {
        e.pointer("/extensions/code")
            .or_else(|| e.get("code"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    let codes: Vec<String> = errors.iter().map(code).collect();
    if status == StatusCode::UNAUTHORIZED
        || codes.iter().any(|c| {
            matches!(
                c.as_str(),
                "auth_failed" | "invalid_api_key" | "unauthenticated" | "unauthorized"
            )
        })
    {
        return Some(Verdict::RefreshAuth);
    }
    if status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
        || codes.iter().any(|c| c == "too_many_requests")
    {
        return Some(Verdict::Retry(None));
    }
    let messages: Vec<String> = errors
        .iter()
        .map(|e| {
            let message = e.get("message").and_then(Value::as_str).unwrap_or_default();
            match code(e) {
                c if c.is_empty() => message.to_string(),
                c => format!("{c}: {message}"),
            }
        })
        .collect();
    Some(Verdict::Fail(format!("Fireflies {}", messages.join("; "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphql_errors_are_classified_even_with_a_200() {
        let ok = StatusCode::OK;
        assert_eq!(classify(ok, r#"{"data": {"transcripts": []}}"#), None);
        assert_eq!(
            classify(
                ok,
                r#"{"errors": [{"message": "Invalid API key", "extensions": {"code": "invalid_api_key"}}]}"#
            ),
            Some(Verdict::RefreshAuth)
        );
        assert_eq!(
            classify(
                ok,
                r#"{"errors": [{"message": "Too many requests", "code": "too_many_requests"}]}"#
            ),
            Some(Verdict::Retry(None))
        );
        assert_eq!(
            classify(
                StatusCode::BAD_REQUEST,
                r#"{"errors": [{"message": "Unknown argument", "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}]}"#
            ),
            Some(Verdict::Fail(
                "Fireflies graphql_validation_failed: Unknown argument".into()
            ))
        );
        assert!(query(true).contains("sentences") && !query(false).contains("sentences"));
    }
}

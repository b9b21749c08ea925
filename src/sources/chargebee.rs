//! Chargebee (an API key, sent as the basic-auth user with an empty password): customers,
//! subscriptions and invoices.
//!
//! # How streams are read
//!
//! Every stream is a list endpoint (`GET /api/v2/<object>?limit=100&sort_by[asc]=updated_at&
//! include_deleted=true`) paged by offset: each answer names the next page's opaque
//! `next_offset` (absent on the last), sent back as `offset`. Each item of `list` wraps its
//! record under the object's name (`{"customer": {...}}`); the record lands field by field.
//!
//! Lists are sorted by `updated_at` ascending, so pages are in cursor order and each
//! checkpoint may advance the cursor (`updated_at`, epoch seconds landed as a timestamp). An
//! incremental sync asks for `updated_at[after]=<cursor - 1s>` (Chargebee's `after` is
//! strict and its times whole seconds, so this re-reads the boundary second).
//!
//! # Deletes
//!
//! `include_deleted=true` lists deleted records too, with `deleted: true`: they land as
//! tombstones (`_deleted`).
//!
//! # Amounts and errors
//!
//! Amounts land as Chargebee sends them: integers in the currency's minor unit, beside
//! `currency_code`; the transforms convert. Error bodies (`{"message", "api_error_code",
//! "error_code"}`) explain a refused request; a 429 (`api_request_limit_exceeded`) is retried
//! after its `Retry-After`.
//!
//! # Base URL
//!
//! The API root is `https://{site}.chargebee.com/api/v2` (option `site`), or the connection's
//! `base_url`.

use std::collections::HashMap;

use futures::stream::{self, BoxStream, StreamExt};
use reqwest::StatusCode;
use serde_json::Value;

use super::http::{Auth, HttpClient, Secret, Verdict};
use super::paging::{self, PageRequest, Paging, object_fields};
use super::records::FieldKind;
use super::registry::VendorInfo;
use super::source::{Connection, Page, ReadFrom, Source, StreamSpec};
use super::{Result, SourceError};

pub const INFO: VendorInfo = VendorInfo {
    name: "chargebee",
    description: "Chargebee billing (API key): customers, subscriptions, invoices (offset paging, incremental by updated_at, deletions as tombstones)",
    credentials: "api_key",
    streams: STREAMS,
    default_streams: STREAMS,
    default_base_url: "https://{site}.chargebee.com/api/v2",
};

const STREAMS: &[&str] = &["customers", "subscriptions", "invoices"];

/// The key wrapping each record of a stream's list items.
fn item_key(stream: &str) -> Option<&'static str> {
    Some(match stream {
        "customers" => "customer",
        "subscriptions" => "subscription",
        "invoices" => "invoice",
        _ => return None,
    })
}

/// Epoch-second fields landed as timestamps.
const TIMES: &[&str] = &[
    "created_at",
    "updated_at",
    "activated_at",
    "started_at",
    "cancelled_at",
    "trial_start",
    "trial_end",
    "current_term_start",
    "current_term_end",
    "next_billing_at",
    "date",
    "due_date",
    "paid_at",
    "voided_at",
    "generated_at",
];

/// A Chargebee connection.
pub struct Chargebee {
    client: HttpClient,
    streams: Vec<String>,
    page_size: u64,
    hints: HashMap<String, FieldKind>,
}

impl Chargebee {
    pub fn open(connection: &Connection) -> Result<Self> {
        let key = connection.secret("api_key")?;
        let default_base = match connection.option_str("site") {
            Some(s)
                if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
            {
                format!("https://{s}.chargebee.com/api/v2")
            }
            Some(s) => {
                return Err(SourceError::Config {
                    connection: connection.name.clone(),
                    reason: format!(
                        "option site {s:?} is not a Chargebee site (letters, digits and `-`, as in `acme-test` for acme-test.chargebee.com)"
                    ),
                });
            }
            None if connection.base_url.is_some() => String::new(),
            None => {
                return Err(SourceError::Config {
                    connection: connection.name.clone(),
                    reason: "set `options.site` (acme for acme.chargebee.com) or `base_url`".into(),
                });
            }
        };
        // The key is the user; the empty password names the key's variable in messages.
        let auth = Auth::Basic {
            user: key.expose().to_string(),
            password: Secret::new("", key.origin()),
        };
        let mut config = connection.client_config(&default_base, auth)?;
        config.classify = Some(classify);
        let mut hints: HashMap<String, FieldKind> = TIMES
            .iter()
            .map(|f| (f.to_string(), FieldKind::Timestamp))
            .collect();
        hints.insert("id".into(), FieldKind::Text);
        hints.insert("deleted".into(), FieldKind::Boolean);
        Ok(Chargebee {
            client: HttpClient::new(config)?,
            streams: connection.select_streams(INFO.streams, INFO.default_streams)?,
            page_size: connection
                .option_u64("page_size")
                .unwrap_or(100)
                .clamp(1, 100),
            hints,
        })
    }
}

impl Source for Chargebee {
    fn vendor(&self) -> &'static str {
        INFO.name
    }

    fn streams(&self) -> Vec<StreamSpec> {
        self.streams
            .iter()
            .map(|s| StreamSpec::new("chargebee", s, &["id"], Some("updated_at")).ordered())
            .collect()
    }

    fn read<'a>(&'a self, stream: &'a StreamSpec, from: ReadFrom) -> BoxStream<'a, Result<Page>> {
        let name = stream.name.to_ascii_lowercase();
        let Some(key) = item_key(&name) else {
            let e = SourceError::Config {
                connection: self.client.connection().to_string(),
                reason: format!("chargebee has no stream {:?}", stream.name),
            };
            return stream::once(async move { Err(e) }).boxed();
        };
        let mut request = PageRequest::get(name)
            .query("limit", self.page_size)
            .query("sort_by[asc]", "updated_at")
            .query("include_deleted", "true");
        if let Some(since) = from.since {
            request = request.query("updated_at[after]", since.timestamp() - 1);
        }
        let paging = Paging::Cursor {
            pointer: "/next_offset",
            param: "offset",
        };
        paging::pages(&self.client, request, paging)
            .map(move |page| {
                page?.land(
                    self.client.connection(),
                    "/list",
                    &self.hints,
                    None,
                    |item| {
                        let record = item
                            .get(key)
                            .ok_or_else(|| format!("the list item has no `{key}`"))?;
                        let deleted = record.get("deleted").and_then(Value::as_bool) == Some(true);
                        Ok((object_fields(record)?, deleted))
                    },
                )
            })
            .boxed()
    }

    fn request_stats(&self) -> (u64, u64) {
        self.client.counts()
    }
}

/// Chargebee's error bodies explain a refused request; 401, 429 and 5xx keep the generic
/// handling (credentials named, retries).
fn classify(status: StatusCode, body: &str) -> Option<Verdict> {
    if status == StatusCode::UNAUTHORIZED
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        return None;
    }
    let body: Value = serde_json::from_str(body).ok()?;
    let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default();
    let message = text("message");
    if message.is_empty() {
        return None;
    }
    Some(Verdict::Fail(format!(
        "Chargebee {}: {message}",
        text("api_error_code")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_explain_refusals() {
        let body = r#"{"message": "offset is invalid", "type": "invalid_request", "api_error_code": "invalid_request", "param": "offset", "http_status_code": 400}"#;
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, body),
            Some(Verdict::Fail(
                "Chargebee invalid_request: offset is invalid".into()
            ))
        );
        assert_eq!(classify(StatusCode::TOO_MANY_REQUESTS, body), None);
    }
}

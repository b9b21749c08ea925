//! Stripe (a secret key `sk_...` sent as a bearer token): customers, subscriptions, invoices,
//! charges, refunds and events.
//!
//! # How streams are read
//!
//! Every stream is a list endpoint (`GET /v1/<object>?limit=100`) paged by `has_more` and
//! `starting_after=<last id>`. Lists come newest first, so a stream's pages are
//! [`CursorRole::Unordered`]: its cursor (`created`, the epoch second Stripe created the
//! object, landed as a timestamp) only moves once the whole stream was read. An incremental
//! sync asks for `created[gte]=<cursor>` (inclusive: the boundary is re-read and merged).
//! Subscriptions are listed with `status=all`, so canceled ones are read too.
//!
//! Changes to objects created before the cursor (an invoice paid, a subscription canceled)
//! arrive through the `events` stream (`/v1/events`, kept 30 days by Stripe): each event lands
//! whole, with `data.object` as JSON text and its id and type as `object_id`, `object_type`.
//!
//! # Deletes
//!
//! After the live pass, the `customer.deleted` / `invoice.deleted` events since the cursor
//! land their `data.object` as tombstones (`_deleted`) in the customers / invoices tables.
//! Deletion times say nothing about which live objects were read: those pages never move the
//! cursor ([`CursorRole::Ignored`]).
//!
//! # Amounts and errors
//!
//! Amounts land as Stripe sends them: integers in the currency's minor unit, beside
//! `currency`; the transforms convert. Error bodies (`{"error": {"type", "code", "message"}}`)
//! explain a refused request; a 429 (rate limit, lock timeout) is retried with backoff, after
//! `Retry-After` when Stripe sends one.

use std::collections::HashMap;

use arrow::array::RecordBatch;
use futures::stream::{self, BoxStream, StreamExt};
use reqwest::StatusCode;
use serde_json::Value;

use super::http::{Auth, HttpClient, Verdict};
use super::paging::{self, JsonPage, PageRequest, Paging};
use super::records::{FieldKind, PageBuilder, records_at};
use super::registry::VendorInfo;
use super::source::{Connection, CursorRole, Page, ReadFrom, Source, StreamSpec};
use super::{Result, SourceError};

pub const INFO: VendorInfo = VendorInfo {
    name: "stripe",
    description: "Stripe billing (secret key): customers, subscriptions, invoices, charges, refunds, events (deletions as tombstones)",
    credentials: "api_key",
    streams: STREAMS,
    default_streams: STREAMS,
    default_base_url: "https://api.stripe.com",
};

const STREAMS: &[&str] = &[
    "customers",
    "subscriptions",
    "invoices",
    "charges",
    "refunds",
    "events",
];

/// Stripe's list paging.
const LIST: Paging = Paging::HasMore {
    has_more: "/has_more",
    records: "/data",
    id: "id",
    param: "starting_after",
};

/// Fields holding epoch seconds, landed as timestamps.
const EPOCH_FIELDS: &[&str] = &[
    "created",
    "canceled_at",
    "cancel_at",
    "ended_at",
    "start_date",
    "trial_start",
    "trial_end",
    "current_period_start",
    "current_period_end",
    "billing_cycle_anchor",
    "period_start",
    "period_end",
    "due_date",
    "next_payment_attempt",
    "webhooks_delivered_at",
    "effective_at",
];

/// The landed kinds of Stripe's fields (epoch seconds as timestamps).
fn hints() -> HashMap<String, FieldKind> {
    EPOCH_FIELDS
        .iter()
        .map(|f| (f.to_string(), FieldKind::Timestamp))
        .collect()
}

/// One Stripe object (a subscription or invoice a webhook event carries) as the connector lands
/// it in its stream's table: the same flattening, column names and types, `source_data` and
/// `_deleted` (without the workspace and sync columns the landing adds).
pub fn object_batch(object: &Value, deleted: bool) -> std::result::Result<RecordBatch, String> {
    let mut builder = PageBuilder::new(hints());
    builder.push_record(object, deleted)?;
    builder.finish().map(|(b, _)| b).map_err(|e| e.to_string())
}

/// A stream's endpoint, fixed query, and the event type deleting its objects.
struct Endpoint {
    path: &'static str,
    params: &'static [(&'static str, &'static str)],
    deleted_event: Option<&'static str>,
}

fn endpoint(stream: &str) -> Option<Endpoint> {
    let (path, params, deleted_event): (_, &'static [_], _) = match stream {
        "customers" => ("v1/customers", &[], Some("customer.deleted")),
        "subscriptions" => ("v1/subscriptions", &[("status", "all")], None),
        "invoices" => ("v1/invoices", &[], Some("invoice.deleted")),
        "charges" => ("v1/charges", &[], None),
        "refunds" => ("v1/refunds", &[], None),
        "events" => ("v1/events", &[], None),
        _ => return None,
    };
    Some(Endpoint {
        path,
        params,
        deleted_event,
    })
}

/// A Stripe connection.
pub struct Stripe {
    client: HttpClient,
    streams: Vec<String>,
    page_size: u64,
    hints: HashMap<String, FieldKind>,
}

impl Stripe {
    pub fn open(connection: &Connection) -> Result<Self> {
        let key = connection.secret("api_key")?;
        let mut config = connection.client_config(INFO.default_base_url, Auth::Bearer(key))?;
        config.classify = Some(classify);
        Ok(Stripe {
            client: HttpClient::new(config)?,
            streams: connection.select_streams(INFO.streams, INFO.default_streams)?,
            page_size: connection
                .option_u64("page_size")
                .unwrap_or(100)
                .clamp(1, 100),
            hints: hints(),
        })
    }

    /// `path` listed from `since` (`created[gte]`), page by page.
    fn list<'a>(
        &'a self,
        path: &str,
        params: &[(&str, &str)],
        from: ReadFrom,
        pass: Pass,
    ) -> BoxStream<'a, Result<Page>> {
        let mut request = PageRequest::get(path).query("limit", self.page_size);
        for (k, v) in params {
            request = request.query(k, v);
        }
        if let Some(since) = from.since {
            request = request.query("created[gte]", since.timestamp());
        }
        paging::pages(&self.client, request, LIST)
            .map(move |page| self.page(page?, pass))
            .boxed()
    }

    fn page(&self, page: JsonPage, pass: Pass) -> Result<Page> {
        let malformed = |reason: String| SourceError::MalformedPage {
            connection: self.client.connection().to_string(),
            url: page.url.clone(),
            reason,
        };
        let records = records_at(&page.body, "/data").map_err(malformed)?;
        let mut builder = PageBuilder::new(self.hints.clone());
        for record in records {
            match pass {
                Pass::Live => builder.push_record(record, false).map_err(malformed)?,
                Pass::Events => {
                    let mut fields = record.as_object().cloned().ok_or_else(|| {
                        malformed(format!("record {} is not an object", builder.len()))
                    })?;
                    let object = record.pointer("/data/object");
                    for (column, key) in [("object_id", "id"), ("object_type", "object")] {
                        let value = object.and_then(|o| o.get(key)).cloned();
                        fields.insert(column.into(), value.unwrap_or(Value::Null));
                    }
                    builder.push(fields, record, false);
                }
                Pass::Deleted => {
                    let object = record.pointer("/data/object").ok_or_else(|| {
                        malformed(format!("event {} has no data.object", builder.len()))
                    })?;
                    builder.push_record(object, true).map_err(malformed)?;
                }
            }
        }
        let role = match pass {
            Pass::Live | Pass::Events => CursorRole::Unordered,
            Pass::Deleted => CursorRole::Ignored,
        };
        builder.into_page(self.client.connection(), &page.url, Some(role))
    }
}

/// Which records a page holds.
#[derive(Debug, Clone, Copy)]
enum Pass {
    /// Objects of the stream.
    Live,
    /// Events, with the id and type of their object.
    Events,
    /// Deletion events, landed as their objects' tombstones.
    Deleted,
}

impl Source for Stripe {
    fn vendor(&self) -> &'static str {
        INFO.name
    }

    fn streams(&self) -> Vec<StreamSpec> {
        self.streams
            .iter()
            .map(|s| StreamSpec::new("stripe", s, &["id"], Some("created")))
            .collect()
    }

    fn read<'a>(&'a self, stream: &'a StreamSpec, from: ReadFrom) -> BoxStream<'a, Result<Page>> {
        let Some(endpoint) = endpoint(&stream.name) else {
            let e = SourceError::Config {
                connection: self.client.connection().to_string(),
                reason: format!("stripe has no stream {:?}", stream.name),
            };
            return stream::once(async move { Err(e) }).boxed();
        };
        let pass = if stream.name == "events" {
            Pass::Events
        } else {
            Pass::Live
        };
        let live = self.list(endpoint.path, endpoint.params, from, pass);
        match endpoint.deleted_event {
            Some(event) => live
                .chain(self.list("v1/events", &[("type", event)], from, Pass::Deleted))
                .boxed(),
            None => live,
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

/// Stripe's error body: a refused request fails with its type, code and message; 401, 429 and
/// 5xx keep the generic handling (credentials named, retries).
fn classify(status: StatusCode, body: &str) -> Option<Verdict> {
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
    let text = |k: &str| error.get(k).and_then(Value::as_str).unwrap_or_default();
    let kind = match (text("type"), text("code")) {
        ("", _) => "error".to_string(),
        (t, "") => t.to_string(),
        (t, c) => format!("{t} {c}"),
    };
    Some(Verdict::Fail(format!("Stripe {kind}: {}", text("message"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_explain_refusals_and_leave_retries_alone() {
        let body = r#"{"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such customer: 'cus_x'"}}"#;
        assert_eq!(
            classify(StatusCode::NOT_FOUND, body),
            Some(Verdict::Fail(
                "Stripe invalid_request_error resource_missing: No such customer: 'cus_x'".into()
            ))
        );
        let limited = r#"{"error": {"type": "invalid_request_error", "code": "rate_limit"}}"#;
        assert_eq!(classify(StatusCode::TOO_MANY_REQUESTS, limited), None);
        assert_eq!(classify(StatusCode::UNAUTHORIZED, body), None);
        assert_eq!(classify(StatusCode::BAD_REQUEST, "<html>"), None);
    }
}

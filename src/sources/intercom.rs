//! Intercom (an access token, sent as a bearer token): contacts, companies and conversations.
//!
//! # How streams are read
//!
//! - `contacts` and `conversations`: a first sync lists them (`GET /contacts`,
//!   `GET /conversations`, `per_page` up to 150), paged by the cursor at
//!   `pages.next.starting_after`, sent back as `starting_after`. An incremental sync uses the
//!   search endpoints instead (`POST /contacts/search`, `POST /conversations/search`) with
//!   `updated_at > <cursor - 1s>` (Intercom's times are whole seconds, so this re-reads the
//!   boundary second) and the same cursor sent back in the body's
//!   `pagination.starting_after`.
//! - `companies`: `GET /companies` paged by the `pages.next` URL, read whole on every sync
//!   (Intercom has no company search; its list stops at 10,000 companies).
//!
//! Lists are not in `updated_at` order, so the cursor (`updated_at`, epoch seconds landed as
//! a timestamp) moves once the whole stream was read.
//!
//! What the transforms need lands as plain columns: a contact's `email`, `role` and its
//! companies' ids (`company_ids`, JSON text); a conversation's `state`, its author's email
//! (`author_email`, from `source.author`), its contacts' ids (`contact_ids`) and the admin
//! it is assigned to (`admin_assignee_id`).
//!
//! # Deletes
//!
//! Intercom lists no deleted records; an archived contact is no longer listed. Rows stay in
//! the raw table until a full sync rebuilds it.
//!
//! # Errors and limits
//!
//! Error bodies (`{"type": "error.list", "errors": [{"code", "message"}]}`) explain a refused
//! request. Intercom's rate limit is reported in `X-RateLimit-Remaining` / `X-RateLimit-Reset`
//! (an epoch second): the client pauses when the window is used up, and a 429 is retried.

use std::collections::HashMap;

use futures::stream::{self, BoxStream, StreamExt};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use super::http::{Auth, HttpClient, QuotaHeaders, Verdict};
use super::paging::{self, PageRequest, Paging, object_fields};
use super::records::FieldKind;
use super::registry::VendorInfo;
use super::source::{Connection, CursorRole, Page, ReadFrom, Source, StreamSpec};
use super::{Result, SourceError};

pub const INFO: VendorInfo = VendorInfo {
    name: "intercom",
    description: "Intercom (access token): contacts with their companies, companies, conversations with author and contacts (incremental through the search endpoints)",
    credentials: "access_token",
    streams: STREAMS,
    default_streams: STREAMS,
    default_base_url: "https://api.intercom.io",
};

const STREAMS: &[&str] = &["contacts", "companies", "conversations"];

/// Epoch-second fields landed as timestamps, and ids kept as text.
const HINTS: &[(&str, FieldKind)] = &[
    ("id", FieldKind::Text),
    ("created_at", FieldKind::Timestamp),
    ("updated_at", FieldKind::Timestamp),
    ("signed_up_at", FieldKind::Timestamp),
    ("last_seen_at", FieldKind::Timestamp),
    ("last_replied_at", FieldKind::Timestamp),
    ("last_contacted_at", FieldKind::Timestamp),
    ("last_email_opened_at", FieldKind::Timestamp),
    ("remote_created_at", FieldKind::Timestamp),
    ("last_request_at", FieldKind::Timestamp),
    ("waiting_since", FieldKind::Timestamp),
    ("snoozed_until", FieldKind::Timestamp),
    ("admin_assignee_id", FieldKind::Text),
];

/// The cursor in list and search answers.
const NEXT: &str = "/pages/next/starting_after";

/// An Intercom connection.
pub struct Intercom {
    client: HttpClient,
    streams: Vec<String>,
    page_size: u64,
    hints: HashMap<String, FieldKind>,
}

impl Intercom {
    pub fn open(connection: &Connection) -> Result<Self> {
        let token = connection.secret("access_token")?;
        let mut config = connection.client_config(INFO.default_base_url, Auth::Bearer(token))?;
        config.classify = Some(classify);
        config.quota = Some(QuotaHeaders {
            remaining: "x-ratelimit-remaining",
            reset: Some("x-ratelimit-reset"),
            reset_in_millis: false,
        });
        Ok(Intercom {
            client: HttpClient::new(config)?,
            streams: connection.select_streams(INFO.streams, INFO.default_streams)?,
            page_size: connection
                .option_u64("page_size")
                .unwrap_or(150)
                .clamp(1, 150),
            hints: HINTS.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        })
    }

    /// The first request and paging of `stream` from `from`, and where its records are.
    fn request(&self, stream: &str, from: ReadFrom) -> Option<(PageRequest, Paging, &'static str)> {
        let records = match stream {
            "contacts" => "/data",
            "conversations" => "/conversations",
            "companies" => {
                let request =
                    PageRequest::get("companies").query("per_page", self.page_size.min(60));
                return Some((
                    request,
                    Paging::NextUrl {
                        pointer: "/pages/next",
                    },
                    "/data",
                ));
            }
            _ => return None,
        };
        Some(match from.since {
            None => (
                PageRequest::get(stream).query("per_page", self.page_size),
                Paging::Cursor {
                    pointer: NEXT,
                    param: "starting_after",
                },
                records,
            ),
            Some(since) => (
                PageRequest::post(
                    format!("{stream}/search"),
                    json!({
                        "query": {"field": "updated_at", "operator": ">", "value": since.timestamp() - 1},
                        "pagination": {"per_page": self.page_size},
                        "sort": {"field": "updated_at", "order": "ascending"}
                    }),
                ),
                Paging::BodyCursor {
                    pointer: NEXT,
                    field: "/pagination/starting_after",
                },
                records,
            ),
        })
    }
}

impl Source for Intercom {
    fn vendor(&self) -> &'static str {
        INFO.name
    }

    fn streams(&self) -> Vec<StreamSpec> {
        self.streams
            .iter()
            .map(|s| StreamSpec::new("intercom", s, &["id"], Some("updated_at")))
            .collect()
    }

    fn read<'a>(&'a self, stream: &'a StreamSpec, from: ReadFrom) -> BoxStream<'a, Result<Page>> {
        let name = stream.name.to_ascii_lowercase();
        let Some((request, paging, records)) = self.request(&name, from) else {
            let e = SourceError::Config {
                connection: self.client.connection().to_string(),
                reason: format!("intercom has no stream {:?}", stream.name),
            };
            return stream::once(async move { Err(e) }).boxed();
        };
        paging::pages(&self.client, request, paging)
            .map(move |page| {
                page?.land(
                    self.client.connection(),
                    records,
                    &self.hints,
                    Some(CursorRole::Unordered),
                    |r| {
                        let fields = object_fields(r)?;
                        Ok((
                            match name.as_str() {
                                "contacts" => contact_fields(fields),
                                "conversations" => conversation_fields(fields),
                                _ => fields,
                            },
                            false,
                        ))
                    },
                )
            })
            .boxed()
    }

    fn request_stats(&self) -> (u64, u64) {
        self.client.counts()
    }
}

/// The ids of a nested list (`{"data": [{"id": ..}]}` or `{"contacts": [..]}`) at `key`.
fn nested_ids(value: Option<&Value>, key: &str) -> Value {
    Value::Array(
        value
            .and_then(|v| v.get(key))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("id").cloned())
            .collect(),
    )
}

fn contact_fields(mut fields: Map<String, Value>) -> Map<String, Value> {
    let ids = nested_ids(fields.get("companies"), "data");
    fields.insert("company_ids".into(), ids);
    fields
}

fn conversation_fields(mut fields: Map<String, Value>) -> Map<String, Value> {
    let ids = nested_ids(fields.get("contacts"), "contacts");
    let author = fields
        .get("source")
        .and_then(|s| s.pointer("/author/email"))
        .cloned()
        .unwrap_or(Value::Null);
    fields.insert("contact_ids".into(), ids);
    fields.insert("author_email".into(), author);
    fields
}

/// Intercom's error list explains a refused request; 401, 429 and 5xx keep the generic
/// handling (credentials named, retries).
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
            format!("{}: {}", text("code"), text("message"))
        })
        .collect();
    Some(Verdict::Fail(format!("Intercom {}", errors.join("; "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversations_land_author_and_contact_ids() {
        let c = json!({"id": "9", "source": {"author": {"type": "lead", "email": "b@acme.com"}},
                       "contacts": {"type": "contact.list", "contacts": [{"type": "contact", "id": "c1"}]}});
        let f = conversation_fields(c.as_object().unwrap().clone());
        assert_eq!(f["author_email"], "b@acme.com");
        assert_eq!(f["contact_ids"], json!(["c1"]));
    }

    #[test]
    fn error_lists_explain_refusals() {
        let body = r#"{"type": "error.list", "request_id": "r1", "errors": [{"code": "parameter_invalid", "message": "per_page is too big"}]}"#;
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, body),
            Some(Verdict::Fail(
                "Intercom parameter_invalid: per_page is too big".into()
            ))
        );
        assert_eq!(classify(StatusCode::UNAUTHORIZED, body), None);
    }
}

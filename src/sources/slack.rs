//! Slack (a bot token `xoxb-...`, sent as a bearer token): channels, users, and the messages
//! of chosen channels (deal rooms).
//!
//! # How streams are read
//!
//! Every Web API method answers `{"ok": true, ..., "response_metadata": {"next_cursor"}}`; a
//! non-empty `next_cursor` goes back as `cursor`.
//!
//! - `channels`: `conversations.list` (public and private channels, archived ones too), read
//!   whole on every sync.
//! - `users`: `users.list`, read whole; each member's `profile.email` lands as `email`, so
//!   messages' `user` ids map to the emails the transforms match participants on.
//! - `messages` (synced only when named): `conversations.history` of each channel in option
//!   `channels` (ids such as `C0123ABCD`, or names, `#deal-acme` or `deal-acme`, resolved
//!   through `conversations.list`). A message lands with its `channel` and `sent_at` (its
//!   `ts`, Slack's `<epoch seconds>.<micros>` id, as a timestamp); the key is
//!   (`channel`, `ts`). History comes newest first, so the cursor (`sent_at`) moves once the
//!   whole stream was read; an incremental sync asks for `oldest=<cursor>` with
//!   `inclusive=true`. Thread replies are not read (only their parent, with `reply_count`).
//!
//! # Errors and limits
//!
//! Slack answers most errors as HTTP 200 with `"ok": false` and an `error` code: a refused
//! token (`invalid_auth`, `not_authed`, `token_revoked`, ...) fails naming the token's
//! variable; `ratelimited` and Slack's transient codes are retried; any other code
//! (`channel_not_found`, `missing_scope` with the scope `needed`) fails the stream with it.
//! Methods are rate-limited per tier (`conversations.history` is Tier 3, about 50 a minute):
//! a 429 is retried after its `Retry-After`.
//!
//! # Deletes
//!
//! Deleted messages are no longer listed; their rows stay until a full sync rebuilds the
//! table.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use reqwest::StatusCode;
use serde_json::Value;

use super::http::{Auth, HttpClient, Verdict};
use super::paging::{self, JsonPage, PageRequest, Paging, object_fields};
use super::records::{FieldKind, records_at};
use super::registry::VendorInfo;
use super::source::{Connection, CursorRole, Page, ReadFrom, Source, StreamSpec};
use super::{Result, SourceError};

pub const INFO: VendorInfo = VendorInfo {
    name: "slack",
    description: "Slack (bot token): channels, users with emails, messages of chosen deal-room channels (option `channels`; incremental by ts)",
    credentials: "bot_token",
    streams: &["channels", "users", "messages"],
    default_streams: &["channels", "users"],
    default_base_url: "https://slack.com/api/",
};

const CURSOR: Paging = Paging::Cursor {
    pointer: "/response_metadata/next_cursor",
    param: "cursor",
};

const HINTS: &[(&str, FieldKind)] = &[
    ("id", FieldKind::Text),
    ("ts", FieldKind::Text),
    ("thread_ts", FieldKind::Text),
    ("created", FieldKind::Timestamp),
    ("updated", FieldKind::Timestamp),
    ("sent_at", FieldKind::Timestamp),
];

/// A Slack connection.
pub struct Slack {
    client: HttpClient,
    streams: Vec<String>,
    /// Channel ids or names whose messages are read.
    channels: Vec<String>,
    page_size: u64,
    hints: HashMap<String, FieldKind>,
}

impl Slack {
    pub fn open(connection: &Connection) -> Result<Self> {
        let token = connection.secret("bot_token")?;
        let mut config = connection.client_config(INFO.default_base_url, Auth::Bearer(token))?;
        config.classify = Some(classify);
        config.classify_success = true;
        let streams = connection.select_streams(INFO.streams, INFO.default_streams)?;
        let channels = connection.option_list("channels");
        if channels.is_empty() && streams.iter().any(|s| s.eq_ignore_ascii_case("messages")) {
            return Err(SourceError::Config {
                connection: connection.name.clone(),
                reason: "the messages stream reads chosen channels: set `options.channels` (ids such as \"C0123ABCD\" or names such as \"#deal-acme\")".into(),
            });
        }
        Ok(Slack {
            client: HttpClient::new(config)?,
            streams,
            channels,
            page_size: connection
                .option_u64("page_size")
                .unwrap_or(200)
                .clamp(1, 999),
            hints: HINTS.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        })
    }

    fn channel_pages(&self) -> BoxStream<'_, Result<JsonPage>> {
        let request = PageRequest::get("conversations.list")
            .query("limit", self.page_size)
            .query("types", "public_channel,private_channel")
            .query("exclude_archived", "false");
        paging::pages(&self.client, request, CURSOR)
    }

    /// The ids of the chosen channels, names resolved through `conversations.list`.
    async fn channel_ids(&self) -> Result<Vec<String>> {
        let is_id = |c: &str| {
            c.len() >= 9
                && c.starts_with(['C', 'G', 'D'])
                && c.chars()
                    .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit())
        };
        let mut by_name = HashMap::new();
        if self.channels.iter().any(|c| !is_id(c)) {
            let mut pages = self.channel_pages();
            while let Some(page) = pages.next().await {
                let page = page?;
                let channels = records_at(&page.body, "/channels").map_err(|e| {
                    SourceError::MalformedPage {
                        connection: self.client.connection().to_string(),
                        url: page.url.clone(),
                        reason: e,
                    }
                })?;
                for c in channels {
                    if let (Some(name), Some(id)) = (
                        c.get("name").and_then(Value::as_str),
                        c.get("id").and_then(Value::as_str),
                    ) {
                        by_name.insert(name.to_string(), id.to_string());
                    }
                }
            }
        }
        self.channels
            .iter()
            .map(|c| {
                if is_id(c) {
                    return Ok(c.clone());
                }
                let name = c.trim_start_matches('#');
                by_name
                    .get(name)
                    .cloned()
                    .ok_or_else(|| SourceError::Config {
                        connection: self.client.connection().to_string(),
                        reason: format!(
                            "channel {c:?} of `options.channels` is not a channel the bot can see (invite it, or give the channel id)"
                        ),
                    })
            })
            .collect()
    }

    fn messages(&self, from: ReadFrom) -> BoxStream<'_, Result<Page>> {
        stream::once(async move {
            let ids = self.channel_ids().await?;
            let pages = stream::iter(ids)
                .map(move |channel| {
                    let mut request = PageRequest::get("conversations.history")
                        .query("channel", &channel)
                        .query("limit", self.page_size);
                    if let Some(since) = from.since {
                        request = request
                            .query("oldest", slack_ts(since))
                            .query("inclusive", "true");
                    }
                    paging::pages(&self.client, request, CURSOR).map(move |page| {
                        page?.land(
                            self.client.connection(),
                            "/messages",
                            &self.hints,
                            Some(CursorRole::Unordered),
                            |m| {
                                let mut fields = object_fields(m)?;
                                let ts = m
                                    .get("ts")
                                    .and_then(Value::as_str)
                                    .ok_or("the message has no `ts`")?;
                                let sent = ts_time(ts).ok_or_else(|| {
                                    format!("`ts` {ts:?} is not a Slack timestamp")
                                })?;
                                fields.insert("channel".into(), Value::String(channel.clone()));
                                fields.insert("sent_at".into(), Value::String(sent.to_rfc3339()));
                                Ok((fields, false))
                            },
                        )
                    })
                })
                .flatten();
            Ok::<_, SourceError>(pages)
        })
        .try_flatten()
        .boxed()
    }
}

impl Source for Slack {
    fn vendor(&self) -> &'static str {
        INFO.name
    }

    fn streams(&self) -> Vec<StreamSpec> {
        self.streams
            .iter()
            .map(|s| match s.to_ascii_lowercase().as_str() {
                "messages" => StreamSpec::new("slack", s, &["channel", "ts"], Some("sent_at")),
                _ => StreamSpec::new("slack", s, &["id"], None),
            })
            .collect()
    }

    fn read<'a>(&'a self, stream: &'a StreamSpec, from: ReadFrom) -> BoxStream<'a, Result<Page>> {
        let whole = |request: PageRequest, records: &'static str| {
            paging::pages(&self.client, request, CURSOR)
                .map(move |page| {
                    page?.land(self.client.connection(), records, &self.hints, None, |r| {
                        let mut fields = object_fields(r)?;
                        if let Some(email) = r.pointer("/profile/email") {
                            fields.insert("email".into(), email.clone());
                        }
                        Ok((fields, false))
                    })
                })
                .boxed()
        };
        match stream.name.to_ascii_lowercase().as_str() {
            "channels" => self
                .channel_pages()
                .map(move |page| {
                    page?.land(
                        self.client.connection(),
                        "/channels",
                        &self.hints,
                        None,
                        |r| object_fields(r).map(|f| (f, false)),
                    )
                })
                .boxed(),
            "users" => whole(
                PageRequest::get("users.list").query("limit", self.page_size),
                "/members",
            ),
            "messages" => self.messages(from),
            _ => {
                let e = SourceError::Config {
                    connection: self.client.connection().to_string(),
                    reason: format!("slack has no stream {:?}", stream.name),
                };
                stream::once(async move { Err(e) }).boxed()
            }
        }
    }

    fn request_stats(&self) -> (u64, u64) {
        self.client.counts()
    }
}

/// A Slack `ts` (`1736000000.000200`) as a time.
fn ts_time(ts: &str) -> Option<DateTime<Utc>> {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, "0"));
    let secs: i64 = secs.parse().ok()?;
    let digits = frac.get(..frac.len().min(6))?;
    let micros: u32 = format!("{digits:0<6}").parse().ok()?;
    DateTime::from_timestamp(secs, micros * 1000)
}

/// A time as a Slack `ts` bound (`oldest`).
fn slack_ts(t: DateTime<Utc>) -> String {
    format!("{}.{:06}", t.timestamp(), t.timestamp_subsec_micros())
}

/// Slack's `"ok": false` answers (HTTP 200 or not): a refused token names its variable,
/// `ratelimited` and transient codes are retried, others fail with the code. A 429 or 5xx
/// without such a body keeps the generic handling.
fn classify(status: StatusCode, body: &str) -> Option<Verdict> {
    let body: Value = serde_json::from_str(body).ok()?;
    if body.get("ok").and_then(Value::as_bool) != Some(false) {
        return None;
    }
    let error = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("unknown_error");
    Some(match error {
        "invalid_auth" | "not_authed" | "account_inactive" | "token_revoked" | "token_expired"
        | "no_permission" | "ekm_access_denied" => Verdict::RefreshAuth,
        "ratelimited"
        | "internal_error"
        | "fatal_error"
        | "service_unavailable"
        | "request_timeout" => Verdict::Retry(None),
        _ if status.is_server_error() => Verdict::Retry(None),
        other => {
            let needed = body
                .get("needed")
                .and_then(Value::as_str)
                .map(|n| format!(" (the token needs scope {n})"))
                .unwrap_or_default();
            Verdict::Fail(format!("Slack {other}{needed}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_timestamps_keep_their_micros() {
        let t = ts_time("1736000000.000200").unwrap();
        assert_eq!(t.timestamp(), 1_736_000_000);
        assert_eq!(t.timestamp_subsec_micros(), 200);
        assert_eq!(slack_ts(t), "1736000000.000200");
        assert!(ts_time("soon").is_none());
    }

    #[test]
    fn ok_false_answers_are_classified() {
        let ok = StatusCode::OK;
        assert_eq!(classify(ok, r#"{"ok": true, "channels": []}"#), None);
        assert_eq!(
            classify(ok, r#"{"ok": false, "error": "invalid_auth"}"#),
            Some(Verdict::RefreshAuth)
        );
        assert_eq!(
            classify(
                StatusCode::TOO_MANY_REQUESTS,
                r#"{"ok": false, "error": "ratelimited"}"#
            ),
            Some(Verdict::Retry(None))
        );
        assert_eq!(
            classify(
                ok,
                r#"{"ok": false, "error": "missing_scope", "needed": "channels:history"}"#
            ),
            Some(Verdict::Fail(
                "Slack missing_scope (the token needs scope channels:history)".into()
            ))
        );
        assert_eq!(classify(StatusCode::BAD_GATEWAY, "<html>"), None);
    }
}

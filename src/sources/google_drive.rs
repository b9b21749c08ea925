//! Google Drive (OAuth 2.0, as for Gmail: an access token, or a client with a refresh token):
//! file metadata, for the documents shared around deals (proposals, order forms).
//!
//! # How streams are read
//!
//! `files` lists `GET /drive/v3/files` (every drive the token sees, trashed files included)
//! with the metadata fields asked for in `fields`, ordered by `modifiedTime` and paged by
//! `nextPageToken` (sent back as `pageToken`). A file lands with `id`, `name`, `mime_type`,
//! `parents`, `owners`, `owner_emails` (JSON text, for matching accounts), `created_time`,
//! `modified_time` (the cursor), `web_view_link`, `size` and its last modifier.
//!
//! Option `query` narrows the listing with a Drive query (`'<folder id>' in parents`,
//! `name contains 'Proposal'`). Pages come in `modifiedTime` order, so each checkpoint may
//! advance the cursor; an incremental sync adds `modifiedTime >= '<cursor>'` (inclusive).
//!
//! # Deletes
//!
//! Trashed files land as tombstones (`_deleted`). Files deleted for good are no longer
//! listed (only the changes feed reports them): their rows stay until a full sync.
//!
//! # Errors
//!
//! Google's error bodies explain a refused request; rate-limit 403s and 429s are retried
//! (see [`super::gmail::google_classify`]).

use std::collections::HashMap;

use futures::stream::{self, BoxStream, StreamExt};
use serde_json::Value;

use super::gmail::{google_auth, google_classify};
use super::http::HttpClient;
use super::paging::{self, PageRequest, Paging, object_fields};
use super::records::FieldKind;
use super::registry::VendorInfo;
use super::source::{Connection, Page, ReadFrom, Source, StreamSpec};
use super::{Result, SourceError};

pub const INFO: VendorInfo = VendorInfo {
    name: "google_drive",
    description: "Google Drive (OAuth): file metadata with owners, incremental by modifiedTime (option `query` narrows it), trashed files as tombstones",
    credentials: "access_token | client_id, client_secret, refresh_token",
    streams: &["files"],
    default_streams: &["files"],
    default_base_url: "https://www.googleapis.com",
};

/// The metadata asked of each file.
const FIELDS: &str = "nextPageToken,incompleteSearch,files(id,name,mimeType,parents,owners(emailAddress,displayName),createdTime,modifiedTime,trashed,webViewLink,size,driveId,lastModifyingUser(emailAddress,displayName))";

/// A Google Drive connection.
pub struct GoogleDrive {
    client: HttpClient,
    query: Option<String>,
    page_size: u64,
    hints: HashMap<String, FieldKind>,
}

impl GoogleDrive {
    pub fn open(connection: &Connection) -> Result<Self> {
        let mut config =
            connection.client_config(INFO.default_base_url, google_auth(connection)?)?;
        config.classify = Some(google_classify);
        connection.select_streams(INFO.streams, INFO.default_streams)?;
        Ok(GoogleDrive {
            client: HttpClient::new(config)?,
            query: connection.option_str("query").map(str::to_string),
            page_size: connection
                .option_u64("page_size")
                .unwrap_or(1000)
                .clamp(1, 1000),
            hints: [
                ("id", FieldKind::Text),
                ("createdTime", FieldKind::Timestamp),
                ("modifiedTime", FieldKind::Timestamp),
                ("size", FieldKind::Int),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        })
    }
}

impl Source for GoogleDrive {
    fn vendor(&self) -> &'static str {
        INFO.name
    }

    fn streams(&self) -> Vec<StreamSpec> {
        vec![StreamSpec::new("google_drive", "files", &["id"], Some("modified_time")).ordered()]
    }

    fn read<'a>(&'a self, stream: &'a StreamSpec, from: ReadFrom) -> BoxStream<'a, Result<Page>> {
        if !stream.name.eq_ignore_ascii_case("files") {
            let e = SourceError::Config {
                connection: self.client.connection().to_string(),
                reason: format!("google_drive has no stream {:?}", stream.name),
            };
            return stream::once(async move { Err(e) }).boxed();
        }
        let since = from.since.map(|t| {
            format!(
                "modifiedTime >= '{}'",
                t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            )
        });
        let q = match (&self.query, since) {
            (Some(q), Some(since)) => Some(format!("({q}) and {since}")),
            (Some(q), None) => Some(q.clone()),
            (None, since) => since,
        };
        let mut request = PageRequest::get("drive/v3/files")
            .query("pageSize", self.page_size)
            .query("orderBy", "modifiedTime")
            .query("fields", FIELDS)
            .query("supportsAllDrives", "true")
            .query("includeItemsFromAllDrives", "true");
        if let Some(q) = q {
            request = request.query("q", q);
        }
        let paging = Paging::Cursor {
            pointer: "/nextPageToken",
            param: "pageToken",
        };
        paging::pages(&self.client, request, paging)
            .map(move |page| {
                page?.land(self.client.connection(), "/files", &self.hints, None, |f| {
                    let mut fields = object_fields(f)?;
                    let owners: Vec<Value> = f
                        .get("owners")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|o| o.get("emailAddress").cloned())
                        .collect();
                    fields.insert("owner_emails".into(), Value::Array(owners));
                    let trashed = f.get("trashed").and_then(Value::as_bool) == Some(true);
                    Ok((fields, trashed))
                })
            })
            .boxed()
    }

    fn request_stats(&self) -> (u64, u64) {
        self.client.counts()
    }
}

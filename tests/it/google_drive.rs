//! The Google Drive connector against a mock of its API on 127.0.0.1: `pageToken` paging of
//! `files.list` ordered by `modifiedTime`, owners' emails, trashed files as tombstones,
//! `modifiedTime >=` incremental syncs, retries, a malformed page and a refused token.

use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{acme_cursor, count, memory_lake, query, sync_acme};
use crate::vendor_mock::{assert_malformed, assert_refused, connection};

const FILES: &str = "/drive/v3/files";
const FOLDER: &str = "'1AbCdeals' in parents";

fn file(id: &str, name: &str, owner: &str, modified: &str, trashed: bool) -> Value {
    json!({"id": id, "name": name, "mimeType": "application/vnd.google-apps.document",
           "parents": ["1AbCdeals"], "owners": [{"emailAddress": owner, "displayName": "Owner"}],
           "createdTime": "2025-01-01T09:00:00.000Z", "modifiedTime": modified,
           "trashed": trashed, "webViewLink": format!("https://docs.google.com/document/d/{id}"),
           "size": "1024"})
}

async fn mount_first_sync(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path(FILES))
        .and(query_param("q", FOLDER))
        .and(query_param("orderBy", "modifiedTime"))
        .and(query_param("pageSize", "2"))
        .and(query_param_is_missing("pageToken"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "files": [file("d1", "Acme proposal", "rep@us.com", "2025-01-02T10:00:00.000Z", false),
                      file("d2", "Globex order form", "ae@us.com", "2025-01-03T10:00:00.000Z", false)],
            "nextPageToken": "pt2", "incompleteSearch": false
        })))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(FILES))
        .and(query_param("pageToken", "pt2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "files": [file("d3", "Old draft", "rep@us.com", "2025-01-04T10:00:00.000Z", true)],
            "incompleteSearch": false
        })))
        .mount(server)
        .await;
}

fn drive(server: &MockServer) -> (revlake::sources::source::Connection, String) {
    let (c, secrets) = connection(
        server,
        "google_drive",
        &["access_token"],
        &[],
        &[("query", FOLDER.into()), ("page_size", 2.into())],
    );
    (c, secrets["access_token"].clone())
}

#[tokio::test]
async fn files_page_by_token_with_trashed_ones_as_tombstones() {
    let server = MockServer::start().await;
    mount_first_sync(&server).await;
    let (c, _) = drive(&server);
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!((o.records, o.pages), (3, 2));
    let got = query(
        &lake,
        "SELECT id, name, owner_emails, size, modified_time, _deleted FROM raw.google_drive_files ORDER BY id",
    )
    .await;
    assert_eq!(
        got,
        [
            r#"d1,Acme proposal,["rep@us.com"],1024,2025-01-02T10:00:00Z,false"#,
            r#"d2,Globex order form,["ae@us.com"],1024,2025-01-03T10:00:00Z,false"#,
            r#"d3,Old draft,["rep@us.com"],1024,2025-01-04T10:00:00Z,true"#,
        ]
    );
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-04T10:00:00+00:00")
    );
}

#[tokio::test]
async fn an_incremental_sync_asks_for_files_modified_since_the_cursor() {
    let server = MockServer::start().await;
    mount_first_sync(&server).await;
    Mock::given(method("GET"))
        .and(path(FILES))
        .and(query_param("q", format!("({FOLDER}) and modifiedTime >= '2025-01-04T10:00:00.000Z'")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "files": [file("d1", "Acme proposal v2", "rep@us.com", "2025-01-05T10:00:00.000Z", false)]
        })))
        .mount(&server)
        .await;
    let (c, _) = drive(&server);
    let lake = memory_lake().await;
    assert!(sync_acme(&lake, &c).await.error.is_none());
    let second = sync_acme(&lake, &c).await;
    assert!(second.error.is_none(), "{:?}", second.error);
    assert_eq!(second.records, 1);
    let got = query(
        &lake,
        "SELECT id, name FROM raw.google_drive_files ORDER BY id",
    )
    .await;
    assert_eq!(
        got,
        [
            "d1,Acme proposal v2",
            "d2,Globex order form",
            "d3,Old draft"
        ]
    );
    assert_eq!(
        acme_cursor(&lake, &c).await.as_deref(),
        Some("2025-01-05T10:00:00+00:00")
    );
}

#[tokio::test]
async fn a_429_and_a_503_are_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(FILES))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(FILES))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(FILES))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "files": [file("d1", "Acme proposal", "rep@us.com", "2025-01-02T10:00:00.000Z", false)]
        })))
        .with_priority(3)
        .mount(&server)
        .await;
    let (c, _) = drive(&server);
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert!(o.error.is_none(), "{:?}", o.error);
    assert_eq!(o.retries, 2);
    assert_eq!(count(&lake, "raw.google_drive_files").await, 1);
}

#[tokio::test]
async fn a_malformed_page_commits_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(FILES))
        .and(query_param_is_missing("pageToken"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "files": [file("d1", "Acme proposal", "rep@us.com", "2025-01-02T10:00:00.000Z", false)],
            "nextPageToken": "pt2"
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(FILES))
        .and(query_param("pageToken", "pt2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"kind": "drive#fileList"})))
        .mount(&server)
        .await;
    let (c, token) = drive(&server);
    let lake = memory_lake().await;
    let o = sync_acme(&lake, &c).await;
    assert_malformed(&o, &token);
    assert!(
        o.error.as_deref().unwrap().contains("pageToken=pt2"),
        "{:?}",
        o.error
    );
    assert!(
        lake.info(&"raw.google_drive_files".parse().unwrap())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_refused_token_names_its_variable_never_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
            "code": 401, "message": "Invalid Credentials", "status": "UNAUTHENTICATED"}})))
        .mount(&server)
        .await;
    let (c, token) = drive(&server);
    let lake = memory_lake().await;
    assert_refused(&sync_acme(&lake, &c).await, &c, "access_token", &token);
}

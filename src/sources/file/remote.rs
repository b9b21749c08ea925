//! Files on object stores: a URL (`s3://`, `gs://`, `az://`, `memory://`, `file://`) is read
//! through the same stores the lake uses (credentials from the lake's options and each cloud's
//! environment variables) and copied to a temporary local file, which the import then reads
//! like any other.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path as StorePath;
use url::Url;

use super::error::{FileError, Result};
use crate::lake::Lake;

/// A file ready to read locally.
#[derive(Debug)]
pub(crate) enum Fetched {
    Local(PathBuf),
    /// A downloaded copy, deleted when dropped.
    Temp(tempfile::NamedTempFile),
}

impl Fetched {
    pub(crate) fn path(&self) -> &Path {
        match self {
            Fetched::Local(p) => p,
            Fetched::Temp(t) => t.path(),
        }
    }
}

/// Whether `source` is a URL rather than a local path.
pub(crate) fn is_url(source: &str) -> bool {
    source.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+')
    })
}

/// The file name of `source` (for its extension): the last segment of a URL's path.
pub(crate) fn file_name(source: &str) -> PathBuf {
    if is_url(source)
        && let Ok(url) = Url::parse(source)
    {
        return PathBuf::from(
            url.path_segments()
                .and_then(|mut s| s.next_back())
                .unwrap_or_default(),
        );
    }
    PathBuf::from(source)
}

/// `source` as a local file: a path as it is, a URL downloaded to a temporary file.
pub(crate) async fn fetch(source: &str, options: &HashMap<String, String>) -> Result<Fetched> {
    if !is_url(source) {
        let path = PathBuf::from(source);
        std::fs::metadata(&path).map_err(|e| FileError::io(&path, e))?;
        return Ok(Fetched::Local(path));
    }
    let fetch_err = |reason: String| FileError::Fetch {
        url: source.to_string(),
        reason,
    };
    let url = Url::parse(source).map_err(|e| fetch_err(e.to_string()))?;
    if url.scheme() == "file" {
        let path = url
            .to_file_path()
            .map_err(|_| fetch_err("not a local path".into()))?;
        std::fs::metadata(&path).map_err(|e| FileError::io(&path, e))?;
        return Ok(Fetched::Local(path));
    }
    let name = file_name(source);
    let name = name.to_string_lossy().to_string();
    if name.is_empty() {
        return Err(fetch_err("the URL names a folder, not a file".into()));
    }
    // The folder holding the file, opened as a lake root: the same stores and credentials.
    let mut folder = url.clone();
    let path = url.path();
    folder.set_path(&path[..path.len() - name.len()]);
    let lake = Lake::open_with_options(folder.as_str(), options.clone())
        .await
        .map_err(|e| fetch_err(e.to_string()))?;
    let store = lake.root_store().map_err(|e| fetch_err(e.to_string()))?;
    let decoded = percent_decode(&name);
    let object = store
        .get(&StorePath::from(decoded.as_str()))
        .await
        .map_err(|e| fetch_err(e.to_string()))?;
    let temp = tempfile::Builder::new()
        .prefix("revlake-import-")
        .suffix(&format!("-{decoded}"))
        .tempfile()
        .map_err(|e| fetch_err(format!("creating a temporary file: {e}")))?;
    let mut file = temp
        .as_file()
        .try_clone()
        .map_err(|e| fetch_err(e.to_string()))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
        let mut written = 0u64;
        while let Some(chunk) = rx.blocking_recv() {
            file.write_all(&chunk)?;
            written += chunk.len() as u64;
        }
        file.flush()?;
        Ok(written)
    });
    let mut stream = object.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| fetch_err(e.to_string()))?;
        if tx.send(chunk.to_vec()).await.is_err() {
            break;
        }
    }
    drop(tx);
    let written = writer
        .await
        .map_err(|e| FileError::internal("writing a downloaded file", e))?
        .map_err(|e| fetch_err(format!("writing {}: {e}", temp.path().display())))?;
    tracing::debug!(url = source, bytes = written, path = %temp.path().display(), "downloaded");
    Ok(Fetched::Temp(temp))
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths_are_told_apart() {
        assert!(is_url("s3://bucket/a/deals.csv"));
        assert!(is_url("memory://lake/deals.csv"));
        assert!(!is_url("exports/deals.csv"));
        assert!(!is_url("C:\\exports\\deals.csv"));
        assert_eq!(
            file_name("s3://bucket/a/deals.ndjson"),
            PathBuf::from("deals.ndjson")
        );
        assert_eq!(file_name("a/b.csv"), PathBuf::from("a/b.csv"));
        assert_eq!(percent_decode("my%20deals.csv"), "my deals.csv");
    }

    #[tokio::test]
    async fn a_memory_url_is_downloaded_to_a_local_file() {
        let name = format!("m{}", uuid::Uuid::new_v4().simple());
        let lake = Lake::open(&format!("memory://{name}/in/")).await.unwrap();
        lake.root_store()
            .unwrap()
            .put(&StorePath::from("deals.csv"), "Id\n1\n".into())
            .await
            .unwrap();
        let fetched = fetch(&format!("memory://{name}/in/deals.csv"), &HashMap::new())
            .await
            .unwrap();
        assert!(matches!(fetched, Fetched::Temp(_)));
        assert!(fetched.path().to_string_lossy().ends_with("deals.csv"));
        assert_eq!(std::fs::read_to_string(fetched.path()).unwrap(), "Id\n1\n");
        let err = fetch(&format!("memory://{name}/in/none.csv"), &HashMap::new())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("none.csv"), "{err}");
    }
}

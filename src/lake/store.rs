//! Opening a lake from a URL or folder, and locating datasets in it.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, Once, OnceLock};

use deltalake::DeltaTableBuilder;
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::prefix::PrefixStore;
use url::Url;

use super::{DatasetRef, LakeError, Layer, Result};

/// A lake: the root URL under which every dataset is a Delta table.
#[derive(Clone)]
pub struct Lake {
    url: Url,
    /// For `memory://` lakes: the one in-process store every table of the lake shares.
    memory: Option<Arc<dyn ObjectStore>>,
    options: HashMap<String, String>,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake")
            .field("url", &self.url.as_str())
            .finish()
    }
}

fn register_cloud_handlers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        deltalake::aws::register_handlers(None);
        deltalake::gcp::register_handlers(None);
        deltalake::azure::register_handlers(None);
    });
}

/// In-process stores of `memory://NAME` lakes, by name, so that every open of the same name in
/// one process sees the same tables.
fn memory_store(name: &str) -> Arc<dyn ObjectStore> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let stores = STORES.get_or_init(Default::default);
    let mut stores = stores.lock().unwrap_or_else(|p| p.into_inner());
    stores
        .entry(name.to_string())
        .or_insert_with(|| Arc::new(InMemory::new()))
        .clone()
}

impl Lake {
    /// Opens the lake at `location`: a URL (`file://`, `memory://`, `s3://`, `s3a://`, `gs://`,
    /// `az://`, `abfss://`) or a local folder, created if missing. Checks that it can be listed.
    pub async fn open(location: &str) -> Result<Self> {
        Self::open_with_options(location, HashMap::new()).await
    }

    /// Like [`Lake::open`], with object-store options (e.g. `aws_endpoint`) on top of the
    /// environment variables.
    pub async fn open_with_options(
        location: &str,
        options: HashMap<String, String>,
    ) -> Result<Self> {
        register_cloud_handlers();
        let open_err = |reason: String| LakeError::Open {
            url: location.to_string(),
            reason,
        };
        let mut url = if location.contains("://") {
            Url::parse(location).map_err(|e| open_err(e.to_string()))?
        } else {
            let path = Path::new(location);
            std::fs::create_dir_all(path).map_err(|e| open_err(e.to_string()))?;
            let abs = std::fs::canonicalize(path).map_err(|e| open_err(e.to_string()))?;
            Url::from_directory_path(&abs)
                .map_err(|_| open_err("not an absolute folder".to_string()))?
        };
        if !url.path().ends_with('/') {
            let p = format!("{}/", url.path());
            url.set_path(&p);
        }
        let memory = match url.scheme() {
            "memory" => Some(memory_store(url.host_str().unwrap_or("default"))),
            "file" => {
                let path = url
                    .to_file_path()
                    .map_err(|_| open_err("not a local path".to_string()))?;
                std::fs::create_dir_all(&path).map_err(|e| open_err(e.to_string()))?;
                None
            }
            "s3" | "s3a" | "gs" | "az" | "abfs" | "abfss" | "azure" => None,
            other => {
                return Err(open_err(format!(
                    "unsupported scheme `{other}` (use a folder, file://, memory://, s3://, gs:// or az://)"
                )));
            }
        };
        let lake = Self {
            url,
            memory,
            options,
        };
        // Fail early, naming the URL, when the store cannot be reached or listed.
        let store = lake.root_store()?;
        store
            .list_with_delimiter(None)
            .await
            .map_err(|e| open_err(e.to_string()))?;
        Ok(lake)
    }

    /// The lake's root URL (ends with `/`).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Object-store options given when the lake was opened.
    pub fn storage_options(&self) -> &HashMap<String, String> {
        &self.options
    }

    /// The URL of the Delta table that holds `dataset`.
    pub fn table_url(&self, dataset: &DatasetRef) -> Url {
        let mut url = self.url.clone();
        url.set_path(&format!(
            "{}{}/{}/",
            self.url.path(),
            dataset.layer,
            dataset.table
        ));
        url
    }

    /// A Delta table builder for `dataset`, wired to this lake's store and options.
    pub(crate) fn table_builder(&self, dataset: &DatasetRef) -> Result<DeltaTableBuilder> {
        let url = self.table_url(dataset);
        let builder =
            DeltaTableBuilder::from_url(url.clone()).map_err(|source| LakeError::Delta {
                operation: "open",
                dataset: dataset.clone(),
                url: url.to_string(),
                source: Box::new(source),
            })?;
        let builder = match &self.memory {
            Some(store) => builder.with_storage_backend(store.clone(), url),
            None => builder.with_storage_options(self.options.clone()),
        };
        Ok(builder.with_allow_http(allow_http(&self.options)))
    }

    /// An object store rooted at the lake URL.
    pub(crate) fn root_store(&self) -> Result<Arc<dyn ObjectStore>> {
        if let Some(store) = &self.memory {
            let prefix = StorePath::from(self.url.path().trim_matches('/'));
            return Ok(Arc::new(PrefixStore::new(store.clone(), prefix)));
        }
        let mut options = self.options.clone();
        if allow_http(&options) {
            options.insert("allow_http".into(), "true".into());
        }
        deltalake::logstore::store_for(&self.url, options).map_err(|e| LakeError::Open {
            url: self.url.to_string(),
            reason: e.to_string(),
        })
    }

    /// Every dataset in the lake (folders under a layer holding a `_delta_log`), sorted.
    pub async fn datasets(&self) -> Result<Vec<DatasetRef>> {
        let store = self.root_store()?;
        let mut out = BTreeSet::new();
        for layer in Layer::ALL {
            let prefix = StorePath::from(layer.as_str());
            let listing = store
                .list_with_delimiter(Some(&prefix))
                .await
                .map_err(|source| LakeError::List {
                    url: self.url.to_string(),
                    source,
                })?;
            for dir in listing.common_prefixes {
                let Some(table) = dir.filename() else {
                    continue;
                };
                let Ok(dataset) = DatasetRef::new(layer, table) else {
                    continue;
                };
                let log = dir.clone().join("_delta_log");
                let mut files = store.list(Some(&log));
                if files
                    .try_next()
                    .await
                    .map_err(|source| LakeError::List {
                        url: self.url.to_string(),
                        source,
                    })?
                    .is_some()
                {
                    out.insert(dataset);
                }
            }
        }
        Ok(out.into_iter().collect())
    }
}

/// Plain-HTTP endpoints (a local S3-compatible server) are allowed only when asked for, through
/// the option or the standard `AWS_ALLOW_HTTP` variable.
fn allow_http(options: &HashMap<String, String>) -> bool {
    let truthy = |v: &str| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes");
    options
        .get("allow_http")
        .or_else(|| options.get("aws_allow_http"))
        .map(|v| truthy(v))
        .unwrap_or(false)
        || std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| truthy(&v))
}

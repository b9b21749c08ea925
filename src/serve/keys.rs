//! API keys: created per workspace, stored hashed in `ops.api_keys`, checked on every request.
//!
//! A key is `rlk_` and 64 hex digits (256 random bits); only its SHA-256 is stored, so the lake
//! never holds a usable key. With that much entropy a plain hash is enough (no password
//! stretching): guessing a key is as hard as finding a preimage. The server keeps the table in
//! memory and re-reads it at most every `refresh` (a revocation takes effect within it).
//!
//! ```text
//! revlake keys create --workspace acme --name ci   ──▶ rlk_3f0c…  (printed once)
//!                                                   └▶ ops.api_keys: key_9a1b…, acme, sha256, created_at
//! Authorization: Bearer rlk_3f0c…  ──sha256──▶ lookup ──▶ (key_9a1b…, acme) or 401
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use chrono::{DateTime, Utc};
use datafusion::prelude::SessionContext;
use sha2::{Digest, Sha256};

use super::error::{Result, ServeError};
use crate::lake::{DatasetRef, Lake, WorkspaceId, WriteMode};
use crate::project::DatasetSchema;

/// The dataset keys are stored in.
pub const KEYS_DATASET: &str = "ops.api_keys";
const KEYS_SCHEMA: &str = include_str!("../../schemas/ops.api_keys.toml");
/// Every key starts with this, so a leaked one is recognizable (secret scanners, logs).
pub const KEY_PREFIX: &str = "rlk_";

/// A key as `ops.api_keys` holds it (never the key itself).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct ApiKeyRecord {
    pub workspace_id: String,
    pub key_id: String,
    pub name: Option<String>,
    pub key_hash: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// A key just created: the secret is shown to the user once and is not kept anywhere.
#[derive(Debug)]
pub struct CreatedKey {
    pub record: ApiKeyRecord,
    pub secret: String,
}

fn dataset() -> DatasetRef {
    KEYS_DATASET
        .parse()
        .expect("ops.api_keys is a valid dataset name")
}

fn schema() -> Result<DatasetSchema> {
    DatasetSchema::parse(
        dataset(),
        KEYS_SCHEMA,
        std::path::Path::new("schemas/ops.api_keys.toml"),
    )
    .map_err(|e| ServeError::BadKeyTable {
        reason: format!("the built-in schema does not parse: {e}"),
    })
}

/// Hex SHA-256 of a presented key.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(buf.as_mut_slice());
    hex::encode(buf)
}

/// Creates a key for `workspace` and appends its hash to `ops.api_keys`.
pub async fn create_key(
    lake: &Lake,
    workspace: &WorkspaceId,
    name: Option<&str>,
) -> Result<CreatedKey> {
    let secret = format!("{KEY_PREFIX}{}", random_hex(32));
    let now = Utc::now();
    let record = ApiKeyRecord {
        workspace_id: workspace.to_string(),
        key_id: format!("key_{}", random_hex(8)),
        name: name.map(str::to_string),
        key_hash: hash_key(&secret),
        created_at: now.to_rfc3339(),
        revoked_at: None,
    };
    let schema = schema()?;
    let batch = to_batch(&schema, &[(&record, now, None)])?;
    lake.write(dataset())
        .with_schema(Some(&schema))
        .with_mode(WriteMode::Append)
        .with_batches(batch.schema(), vec![batch])
        .await?;
    tracing::info!(key_id = %record.key_id, workspace = %workspace, "API key created");
    Ok(CreatedKey { record, secret })
}

/// Every key, oldest first (revoked ones too).
pub async fn list_keys(lake: &Lake) -> Result<Vec<ApiKeyRecord>> {
    let Some(table) = lake.try_load(&dataset()).await? else {
        return Ok(Vec::new());
    };
    let ctx = SessionContext::new();
    let read = |e: datafusion::error::DataFusionError| ServeError::BadKeyTable {
        reason: e.to_string(),
    };
    table
        .update_datafusion_session(&ctx.state())
        .map_err(|source| lake.delta_err("register", &dataset(), source))?;
    let provider = table.table_provider().await.map_err(read)?;
    ctx.register_table("api_keys", provider).map_err(read)?;
    let batches = ctx
        .sql(
            "SELECT workspace_id, key_id, name, key_hash, created_at, revoked_at \
             FROM api_keys ORDER BY created_at, key_id",
        )
        .await
        .map_err(read)?
        .collect()
        .await
        .map_err(read)?;
    let rows = super::rows::to_json_rows(&batches).map_err(|e| ServeError::BadKeyTable {
        reason: e.to_string(),
    })?;
    super::rows::typed(rows).map_err(|e| ServeError::BadKeyTable {
        reason: e.to_string(),
    })
}

/// Sets `revoked_at` of `key_id` (one merge commit); refuses an unknown or revoked key.
pub async fn revoke_key(lake: &Lake, key_id: &str) -> Result<ApiKeyRecord> {
    let keys = list_keys(lake).await?;
    let mut record = keys
        .into_iter()
        .find(|k| k.key_id == key_id)
        .ok_or_else(|| ServeError::NoSuchKey {
            key_id: key_id.to_string(),
        })?;
    if let Some(at) = &record.revoked_at {
        return Err(ServeError::AlreadyRevoked {
            key_id: key_id.to_string(),
            revoked_at: at.clone(),
        });
    }
    let created: DateTime<Utc> = DateTime::parse_from_rfc3339(&record.created_at)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ServeError::BadKeyTable {
            reason: format!("created_at `{}` of {key_id}: {e}", record.created_at),
        })?;
    let now = Utc::now();
    let schema = schema()?;
    let batch = to_batch(&schema, &[(&record, created, Some(now))])?;
    lake.write(dataset())
        .with_schema(Some(&schema))
        .with_mode(WriteMode::Merge)
        .with_batches(batch.schema(), vec![batch])
        .await?;
    record.revoked_at = Some(now.to_rfc3339());
    tracing::info!(key_id, workspace = %record.workspace_id, "API key revoked");
    Ok(record)
}

type KeyRow<'a> = (&'a ApiKeyRecord, DateTime<Utc>, Option<DateTime<Utc>>);

fn to_batch(schema: &DatasetSchema, rows: &[KeyRow<'_>]) -> Result<RecordBatch> {
    let strs = |f: &dyn Fn(&ApiKeyRecord) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(
            rows.iter().map(|(r, _, _)| f(r)).collect::<Vec<_>>(),
        ))
    };
    let times = |v: Vec<Option<i64>>| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
    };
    let columns: Vec<ArrayRef> = vec![
        strs(&|r| Some(r.workspace_id.clone())),
        strs(&|r| Some(r.key_id.clone())),
        strs(&|r| r.name.clone()),
        strs(&|r| Some(r.key_hash.clone())),
        times(
            rows.iter()
                .map(|(_, c, _)| Some(c.timestamp_micros()))
                .collect(),
        ),
        times(
            rows.iter()
                .map(|(_, _, r)| r.map(|t| t.timestamp_micros()))
                .collect(),
        ),
    ];
    RecordBatch::try_new(schema.arrow_schema(), columns).map_err(|e| ServeError::BadKeyTable {
        reason: format!("building a row: {e}"),
    })
}

/// Who a request is: the key and the one workspace it may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub workspace: WorkspaceId,
}

/// What a presented key turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Valid(Principal),
    Revoked { key_id: String },
    Unknown,
}

struct Loaded {
    at: Instant,
    by_hash: HashMap<String, (Principal, bool)>,
}

/// The keys in memory, re-read from the lake at most every `refresh`.
pub struct KeyStore {
    lake: Lake,
    refresh: Duration,
    loaded: tokio::sync::Mutex<Option<Loaded>>,
}

impl KeyStore {
    pub fn new(lake: Lake, refresh: Duration) -> Self {
        Self {
            lake,
            refresh,
            loaded: tokio::sync::Mutex::new(None),
        }
    }

    /// Checks a presented key. Only its hash is compared; a malformed key is `Unknown` without
    /// reading the table.
    pub async fn verify(&self, presented: &str) -> Result<Verdict> {
        let well_formed = presented
            .strip_prefix(KEY_PREFIX)
            .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
        if !well_formed {
            return Ok(Verdict::Unknown);
        }
        let hash = hash_key(presented);
        let mut loaded = self.loaded.lock().await;
        let stale = loaded
            .as_ref()
            .is_none_or(|l| l.at.elapsed() >= self.refresh);
        if stale {
            let mut by_hash = HashMap::new();
            for k in list_keys(&self.lake).await? {
                let workspace =
                    WorkspaceId::new(&k.workspace_id).map_err(|e| ServeError::BadKeyTable {
                        reason: format!("key {}: {e}", k.key_id),
                    })?;
                let principal = Principal {
                    key_id: k.key_id,
                    workspace,
                };
                by_hash.insert(k.key_hash, (principal, k.revoked_at.is_some()));
            }
            *loaded = Some(Loaded {
                at: Instant::now(),
                by_hash,
            });
        }
        let entry = loaded.as_ref().and_then(|l| l.by_hash.get(&hash));
        Ok(match entry {
            Some((p, false)) => Verdict::Valid(p.clone()),
            Some((p, true)) => Verdict::Revoked {
                key_id: p.key_id.clone(),
            },
            None => Verdict::Unknown,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lake() -> Lake {
        Lake::open(&format!("memory://keys-{}/", uuid::Uuid::new_v4()))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn created_keys_verify_and_revoked_ones_do_not() {
        let lake = lake().await;
        let acme = WorkspaceId::new("acme").unwrap();
        let created = create_key(&lake, &acme, Some("ci")).await.unwrap();
        assert!(created.secret.starts_with(KEY_PREFIX) && created.secret.len() == 68);
        let listed = list_keys(&lake).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].key_hash, hash_key(&created.secret));
        assert_eq!(listed[0].name.as_deref(), Some("ci"));
        assert!(
            !format!("{listed:?}").contains(&created.secret[4..]),
            "the secret is not stored"
        );

        let store = KeyStore::new(lake.clone(), Duration::ZERO);
        let principal = Principal {
            key_id: created.record.key_id.clone(),
            workspace: acme.clone(),
        };
        assert_eq!(
            store.verify(&created.secret).await.unwrap(),
            Verdict::Valid(principal)
        );
        let mut wrong = created.secret.clone();
        wrong.replace_range(10..11, if &wrong[10..11] == "a" { "b" } else { "a" });
        assert_eq!(store.verify(&wrong).await.unwrap(), Verdict::Unknown);
        assert_eq!(store.verify("rlk_short").await.unwrap(), Verdict::Unknown);

        revoke_key(&lake, &created.record.key_id).await.unwrap();
        assert!(matches!(
            store.verify(&created.secret).await.unwrap(),
            Verdict::Revoked { .. }
        ));
        let again = revoke_key(&lake, &created.record.key_id).await.unwrap_err();
        assert!(
            matches!(again, ServeError::AlreadyRevoked { .. }),
            "{again}"
        );
        let missing = revoke_key(&lake, "key_nope").await.unwrap_err();
        assert!(missing.to_string().contains("key_nope"), "{missing}");
        assert_eq!(
            list_keys(&lake).await.unwrap().len(),
            1,
            "merged, not appended"
        );
    }
}

//! BigQuery: the table schema JSON, load and query jobs for a staged dataset, and the REST
//! client (service-account JWT → OAuth token, `jobs.insert`, `jobs.get` polling).
//!
//! Append and full replace load straight into the target (`WRITE_APPEND` / `WRITE_TRUNCATE`;
//! a load job is atomic). Merge, a one-workspace replace, and a target with columns the lake
//! no longer has load into `<table>__revlake_load` (`WRITE_TRUNCATE`), then one query job
//! (`MERGE`, or a transaction of `DELETE` + `INSERT`, or an `INSERT`) moves the rows, and the
//! load table is deleted. New columns are added first with `ALTER TABLE ... ADD COLUMN`.

use std::time::Duration;

use serde_json::{Value, json};

use super::config::{BigQueryConfig, base_url};
use super::error::{ExportError, Result};
use super::http::{env_content, env_var, send};
use super::keys::RsaKey;
use super::typemap::{bigquery_field, bigquery_holds, bigquery_normalize};
use super::{DatasetLoad, ExportMode};
use crate::project::WORKSPACE_COLUMN;

const WAREHOUSE: &str = "bigquery";
const SCOPE: &str = "https://www.googleapis.com/auth/bigquery";
const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// The table schema (`{"fields": [...]}`) of a staged dataset.
pub fn schema_json(load: &DatasetLoad) -> Result<Value> {
    let fields: Result<Vec<Value>> = load
        .schema
        .fields()
        .iter()
        .map(|f| {
            bigquery_field(f).ok_or_else(|| ExportError::Unmappable {
                dataset: load.dataset.to_string(),
                column: f.name().clone(),
                arrow_type: f.data_type().to_string(),
                warehouse: WAREHOUSE,
            })
        })
        .collect();
    Ok(json!({ "fields": fields? }))
}

/// The GoogleSQL spelling of a schema field's type for DDL (`ARRAY<STRING>`, `STRUCT<..>`).
pub fn ddl_type(field: &Value) -> String {
    let base = match field["type"].as_str().unwrap_or("STRING") {
        "RECORD" | "STRUCT" => {
            let inner: Vec<String> = field["fields"]
                .as_array()
                .map(|fs| {
                    fs.iter()
                        .map(|f| {
                            format!(
                                "{} {}",
                                quote(f["name"].as_str().unwrap_or("")),
                                ddl_type(f)
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!("STRUCT<{}>", inner.join(", "))
        }
        other => bigquery_normalize(other),
    };
    if field["mode"] == "REPEATED" {
        format!("ARRAY<{base}>")
    } else {
        base
    }
}

fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', ""))
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Names and jobs of one dataset's load.
pub struct BigQueryJobs<'a> {
    pub config: &'a BigQueryConfig,
    pub load: &'a DatasetLoad,
}

impl BigQueryJobs<'_> {
    pub fn load_table_id(&self) -> String {
        format!("{}__revlake_load", self.load.table)
    }

    fn qualified(&self, table: &str) -> String {
        format!(
            "`{}.{}.{}`",
            self.config.project, self.config.dataset, table
        )
    }

    /// Whether the rows go through the load table and a query job.
    pub fn via_load_table(&self, target_has_extra_columns: bool) -> bool {
        target_has_extra_columns
            || matches!(
                (self.load.mode, &self.load.workspace),
                (ExportMode::Merge, _) | (ExportMode::Replace, Some(_))
            )
    }

    /// The `jobs.insert` body of the load job into `table`.
    pub fn load_job(&self, table: &str, disposition: &str, job_id: &str) -> Result<Value> {
        let mut reference = json!({"projectId": self.config.project, "jobId": job_id});
        if let Some(l) = &self.config.location {
            reference["location"] = json!(l);
        }
        Ok(json!({
            "jobReference": reference,
            "configuration": {
                "load": {
                    "sourceUris": self.load.files.iter().map(|f| f.url.clone()).collect::<Vec<_>>(),
                    "sourceFormat": "PARQUET",
                    "parquetOptions": {"enableListInference": true},
                    "destinationTable": {
                        "projectId": self.config.project,
                        "datasetId": self.config.dataset,
                        "tableId": table,
                    },
                    "schema": schema_json(self.load)?,
                    "createDisposition": "CREATE_IF_NEEDED",
                    "writeDisposition": disposition,
                }
            }
        }))
    }

    /// The query that moves the load table's rows into the target, by mode.
    pub fn apply_sql(&self) -> String {
        let target = self.qualified(&self.load.table);
        let load = self.qualified(&self.load_table_id());
        let names: Vec<String> = self
            .load
            .schema
            .fields()
            .iter()
            .map(|f| quote(f.name()))
            .collect();
        let cols = names.join(", ");
        match (self.load.mode, &self.load.workspace) {
            (ExportMode::Merge, _) => super::merge_sql(
                "MERGE",
                &target,
                &load,
                &self.load.schema,
                &self.load.primary_key,
                "",
                quote,
            ),
            (ExportMode::Replace, Some(ws)) => format!(
                "BEGIN TRANSACTION;\nDELETE FROM {target} WHERE {} = {};\nINSERT INTO {target} ({cols})\nSELECT {cols} FROM {load};\nCOMMIT TRANSACTION;",
                quote(WORKSPACE_COLUMN),
                literal(ws.as_str())
            ),
            (ExportMode::Replace, None) => format!(
                "BEGIN TRANSACTION;\nDELETE FROM {target} WHERE TRUE;\nINSERT INTO {target} ({cols})\nSELECT {cols} FROM {load};\nCOMMIT TRANSACTION;"
            ),
            (ExportMode::Append, _) => {
                format!("INSERT INTO {target} ({cols})\nSELECT {cols} FROM {load}")
            }
        }
    }

    pub fn query_job(&self, sql: &str, job_id: &str) -> Value {
        let mut reference = json!({"projectId": self.config.project, "jobId": job_id});
        if let Some(l) = &self.config.location {
            reference["location"] = json!(l);
        }
        json!({
            "jobReference": reference,
            "configuration": {"query": {"query": sql, "useLegacySql": false}}
        })
    }

    pub fn add_column_sql(&self, field: &Value) -> String {
        format!(
            "ALTER TABLE {} ADD COLUMN {} {}",
            self.qualified(&self.load.table),
            quote(field["name"].as_str().unwrap_or("")),
            ddl_type(field)
        )
    }
}

/// The fields the target lacks, or the lossy change that stops the export; and whether the
/// target has columns the lake does not.
pub fn evolution(
    load: &DatasetLoad,
    target_table: &str,
    current: &[Value],
) -> Result<(Vec<Value>, bool)> {
    let wanted = schema_json(load)?;
    let wanted = wanted["fields"].as_array().cloned().unwrap_or_default();
    let mut add = Vec::new();
    for field in &wanted {
        let name = field["name"].as_str().unwrap_or("");
        match current.iter().find(|c| {
            c["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        }) {
            None => add.push(field.clone()),
            Some(have) => {
                let (t, s) = (ddl_type(have), ddl_type(field));
                let same_mode = (have["mode"] == "REPEATED") == (field["mode"] == "REPEATED");
                let nested_same = have["type"] == field["type"] || !field["fields"].is_array();
                if !(same_mode && nested_same && (t == s || bigquery_holds(&t, &s))) {
                    return Err(ExportError::LossyTypeChange {
                        dataset: load.dataset.to_string(),
                        table: target_table.to_string(),
                        column: name.to_string(),
                        target_type: t,
                        source_type: s,
                    });
                }
            }
        }
    }
    let extra = current.iter().any(|c| {
        let n = c["name"].as_str().unwrap_or("");
        !wanted.iter().any(|w| {
            w["name"]
                .as_str()
                .is_some_and(|x| x.eq_ignore_ascii_case(n))
        })
    });
    Ok((add, extra))
}

/// The claims of a service account's token request.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct TokenClaims {
    pub iss: String,
    pub scope: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// A client of the BigQuery REST API for one target.
pub struct BigQueryClient {
    http: reqwest::Client,
    base: String,
    token: String,
    config: BigQueryConfig,
}

impl BigQueryClient {
    /// Gets an access token: the variable named by `token_env`, or a service account's JWT
    /// exchanged at the token endpoint.
    pub async fn connect(
        target: &str,
        config: &BigQueryConfig,
        http: reqwest::Client,
    ) -> Result<Self> {
        let host = config
            .host
            .clone()
            .unwrap_or_else(|| "bigquery.googleapis.com".into());
        let base = base_url(&config.protocol, &host, config.port);
        let token = match (&config.token_env, &config.credentials_env) {
            (Some(var), _) => env_var(target, var, "the BigQuery access token")?,
            (None, Some(var)) => {
                let text = env_content(target, var, "the service-account key JSON")?;
                exchange(target, config, &http, var, &text).await?
            }
            (None, None) => {
                let var = "GOOGLE_APPLICATION_CREDENTIALS";
                let text = env_content(target, var, "the service-account key JSON")?;
                exchange(target, config, &http, var, &text).await?
            }
        };
        Ok(Self {
            http,
            base,
            token: token.trim().to_string(),
            config: config.clone(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/bigquery/v2/projects/{}{path}",
            self.base, self.config.project
        )
    }

    /// The target's schema fields, or `None` if it does not exist.
    pub async fn table_fields(&self, table: &str) -> Result<Option<Vec<Value>>> {
        let url = self.url(&format!("/datasets/{}/tables/{table}", self.config.dataset));
        let reply = send(WAREHOUSE, &url, self.config.max_attempts, || {
            self.http.get(&url).bearer_auth(&self.token)
        })
        .await?;
        match reply.status {
            200 => Ok(Some(
                reply.body["schema"]["fields"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            )),
            404 => Ok(None),
            status => Err(ExportError::Http {
                warehouse: WAREHOUSE,
                url,
                reason: format!("tables.get answered HTTP {status}: {}", reply.body),
            }),
        }
    }

    /// Inserts `job` and polls it until DONE; an `errorResult` is an error naming the job.
    pub async fn run_job(&self, dataset: &str, job: &Value, statement: &str) -> Result<Value> {
        let url = self.url("/jobs");
        let job_id = job["jobReference"]["jobId"]
            .as_str()
            .unwrap_or("")
            .to_string();
        tracing::info!(dataset, job_id, "bigquery job");
        let mut reply = send(WAREHOUSE, &url, self.config.max_attempts, || {
            self.http.post(&url).bearer_auth(&self.token).json(job)
        })
        .await?;
        loop {
            if !(200..300).contains(&reply.status) {
                return Err(self.refused(dataset, &job_id, &reply.body, statement));
            }
            if reply.body["status"]["state"] == "DONE" {
                if !reply.body["status"]["errorResult"].is_null() {
                    return Err(self.refused(dataset, &job_id, &reply.body, statement));
                }
                return Ok(reply.body);
            }
            tokio::time::sleep(Duration::from_millis(self.config.poll_ms)).await;
            let get = self.url(&format!("/jobs/{job_id}"));
            let location = self.config.location.clone();
            reply = send(WAREHOUSE, &get, self.config.max_attempts, || {
                let r = self.http.get(&get).bearer_auth(&self.token);
                match &location {
                    Some(l) => r.query(&[("location", l.as_str())]),
                    None => r,
                }
            })
            .await?;
        }
    }

    fn refused(&self, dataset: &str, job_id: &str, body: &Value, statement: &str) -> ExportError {
        let result = &body["status"]["errorResult"];
        let mut message = if result.is_null() {
            body["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| body.to_string())
        } else {
            format!(
                "{}: {}",
                result["reason"].as_str().unwrap_or("error"),
                result["message"].as_str().unwrap_or("")
            )
        };
        if let Some(errors) = body["status"]["errors"].as_array() {
            for e in errors.iter().take(5) {
                if e != result {
                    message.push_str(&format!("\n  {}", e["message"].as_str().unwrap_or("")));
                }
            }
        }
        ExportError::Warehouse {
            dataset: dataset.to_string(),
            warehouse: WAREHOUSE,
            what: format!("job {job_id}"),
            message,
            statement: statement.to_string(),
        }
    }

    async fn delete_table(&self, table: &str) {
        let url = self.url(&format!("/datasets/{}/tables/{table}", self.config.dataset));
        let _ = send(WAREHOUSE, &url, self.config.max_attempts, || {
            self.http.delete(&url).bearer_auth(&self.token)
        })
        .await;
    }

    /// Loads one staged dataset; returns the job bodies sent, in order.
    pub async fn load(&self, load: &DatasetLoad) -> Result<Vec<Value>> {
        let jobs = BigQueryJobs {
            config: &self.config,
            load,
        };
        let dataset = load.dataset.to_string();
        let target = format!(
            "{}.{}.{}",
            self.config.project, self.config.dataset, load.table
        );
        let mut sent = Vec::new();
        let job_id = |kind: &str| {
            format!(
                "revlake_{}_{kind}_{}",
                load.table,
                uuid::Uuid::new_v4().simple()
            )
        };
        let (add, extra, exists) = match self.table_fields(&load.table).await? {
            Some(current) => {
                let (add, extra) = evolution(load, &target, &current)?;
                (add, extra, true)
            }
            None => (Vec::new(), false, false),
        };
        for field in &add {
            let sql = jobs.add_column_sql(field);
            let job = jobs.query_job(&sql, &job_id("alter"));
            self.run_job(&dataset, &job, &sql).await?;
            sent.push(job);
        }
        if !jobs.via_load_table(extra) {
            let disposition = match load.mode {
                ExportMode::Replace => "WRITE_TRUNCATE",
                _ => "WRITE_APPEND",
            };
            let job = jobs.load_job(&load.table, disposition, &job_id("load"))?;
            self.run_job(&dataset, &job, &job["configuration"].to_string())
                .await?;
            sent.push(job);
            return Ok(sent);
        }
        if !exists {
            // The target must exist for the query; an empty load creates it with the schema.
            let sql = format!(
                "CREATE TABLE IF NOT EXISTS `{target}` ({})",
                schema_json(load)?["fields"]
                    .as_array()
                    .map(|fs| fs
                        .iter()
                        .map(|f| format!(
                            "{} {}",
                            quote(f["name"].as_str().unwrap_or("")),
                            ddl_type(f)
                        ))
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            );
            let job = jobs.query_job(&sql, &job_id("create"));
            self.run_job(&dataset, &job, &sql).await?;
            sent.push(job);
        }
        let staging = jobs.load_table_id();
        let job = jobs.load_job(&staging, "WRITE_TRUNCATE", &job_id("load"))?;
        let result = self
            .run_job(&dataset, &job, &job["configuration"].to_string())
            .await;
        sent.push(job);
        if let Err(e) = result {
            self.delete_table(&staging).await;
            return Err(e);
        }
        let sql = jobs.apply_sql();
        let job = jobs.query_job(&sql, &job_id(load.mode.as_str()));
        let result = self.run_job(&dataset, &job, &sql).await;
        sent.push(job);
        self.delete_table(&staging).await;
        result?;
        Ok(sent)
    }
}

/// Exchanges a service account's signed JWT for an access token (RFC 7523 jwt-bearer grant).
async fn exchange(
    target: &str,
    config: &BigQueryConfig,
    http: &reqwest::Client,
    var: &str,
    text: &str,
) -> Result<String> {
    let bad = |reason: String| ExportError::BadCredential {
        target: target.into(),
        what: format!("the service-account key in {var}"),
        reason,
    };
    let key: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let email = key["client_email"]
        .as_str()
        .ok_or_else(|| bad("no `client_email`".into()))?;
    let pem = key["private_key"]
        .as_str()
        .ok_or_else(|| bad("no `private_key`".into()))?;
    let rsa = RsaKey::from_pem(pem).map_err(bad)?;
    let token_url = config
        .token_url
        .clone()
        .or_else(|| key["token_uri"].as_str().map(str::to_string))
        .unwrap_or_else(|| DEFAULT_TOKEN_URL.into());
    let now = chrono::Utc::now().timestamp();
    let claims = token_claims(email, &token_url, now);
    let assertion = rsa.sign(&claims).map_err(bad)?;
    let reply = send(WAREHOUSE, &token_url, config.max_attempts, || {
        http.post(&token_url).form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion.as_str()),
        ])
    })
    .await?;
    match reply.body["access_token"].as_str() {
        Some(t) if reply.status == 200 => Ok(t.to_string()),
        _ => Err(ExportError::Http {
            warehouse: WAREHOUSE,
            url: token_url,
            reason: format!(
                "the token exchange for {email} was refused (HTTP {}): {} {}",
                reply.status,
                reply.body["error"].as_str().unwrap_or(""),
                reply.body["error_description"].as_str().unwrap_or("")
            ),
        }),
    }
}

pub fn token_claims(email: &str, token_url: &str, now: i64) -> TokenClaims {
    TokenClaims {
        iss: email.to_string(),
        scope: SCOPE.to_string(),
        aud: token_url.to_string(),
        iat: now,
        exp: now + 3600,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::tests::sample_load;

    fn config() -> BigQueryConfig {
        toml::from_str("project = \"acme\"\ndataset = \"revlake\"\nlocation = \"EU\"\n").unwrap()
    }

    #[test]
    fn load_job_names_files_schema_and_disposition() {
        let c = config();
        let load = sample_load(ExportMode::Append, None);
        let jobs = BigQueryJobs {
            config: &c,
            load: &load,
        };
        let job = jobs.load_job("deals", "WRITE_APPEND", "j1").unwrap();
        assert_eq!(
            job["jobReference"],
            json!({"projectId": "acme", "jobId": "j1", "location": "EU"})
        );
        let l = &job["configuration"]["load"];
        assert_eq!(l["sourceFormat"], "PARQUET");
        assert_eq!(l["writeDisposition"], "WRITE_APPEND");
        assert_eq!(
            l["sourceUris"],
            json!(["gs://b/acme/staging.deals/v3/part-00000.parquet"])
        );
        assert_eq!(
            l["schema"]["fields"][2],
            json!({"name": "amount", "type": "NUMERIC", "mode": "NULLABLE"})
        );
        assert_eq!(l["schema"]["fields"][3]["type"], "TIMESTAMP");
        assert!(!jobs.via_load_table(false));
        assert!(jobs.via_load_table(true));
    }

    #[test]
    fn merge_query_joins_on_the_key() {
        let c = config();
        let load = sample_load(ExportMode::Merge, None);
        let jobs = BigQueryJobs {
            config: &c,
            load: &load,
        };
        assert!(jobs.via_load_table(false));
        assert_eq!(
            jobs.apply_sql(),
            "MERGE `acme.revlake.deals` AS t\nUSING `acme.revlake.deals__revlake_load` AS s\nON t.`workspace_id` = s.`workspace_id` AND t.`id` = s.`id`\nWHEN MATCHED THEN UPDATE SET `amount` = s.`amount`, `closed_at` = s.`closed_at`\nWHEN NOT MATCHED THEN INSERT (`workspace_id`, `id`, `amount`, `closed_at`)\nVALUES (s.`workspace_id`, s.`id`, s.`amount`, s.`closed_at`)"
        );
    }

    #[test]
    fn evolution_adds_columns_and_refuses_lossy_changes() {
        let load = sample_load(ExportMode::Merge, None);
        let current = vec![
            json!({"name": "workspace_id", "type": "STRING", "mode": "REQUIRED"}),
            json!({"name": "id", "type": "STRING", "mode": "REQUIRED"}),
            json!({"name": "amount", "type": "NUMERIC", "mode": "NULLABLE"}),
            json!({"name": "old", "type": "STRING", "mode": "NULLABLE"}),
        ];
        let (add, extra) = evolution(&load, "acme.revlake.deals", &current).unwrap();
        assert_eq!(
            add,
            vec![json!({"name": "closed_at", "type": "TIMESTAMP", "mode": "NULLABLE"})]
        );
        assert!(extra);
        let lossy = vec![json!({"name": "amount", "type": "INTEGER", "mode": "NULLABLE"})];
        let e = evolution(&load, "acme.revlake.deals", &lossy)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`amount`") && e.contains("INT64") && e.contains("NUMERIC"),
            "{e}"
        );
    }

    #[test]
    fn ddl_types_spell_arrays_and_structs() {
        let f = json!({"name": "s", "type": "RECORD", "mode": "REPEATED", "fields": [
            {"name": "a", "type": "INTEGER", "mode": "NULLABLE"}]});
        assert_eq!(ddl_type(&f), "ARRAY<STRUCT<`a` INT64>>");
    }

    #[test]
    fn token_claims_have_the_documented_shape() {
        let c = token_claims("sa@p.iam.gserviceaccount.com", DEFAULT_TOKEN_URL, 100);
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v,
            json!({"iss": "sa@p.iam.gserviceaccount.com", "scope": SCOPE,
                   "aud": "https://oauth2.googleapis.com/token", "iat": 100, "exp": 3700})
        );
    }
}

//! Snowflake: DDL and load SQL for a staged dataset, and the SQL API v2 client that runs it.
//!
//! For each dataset: `CREATE TABLE IF NOT EXISTS` with the mapped types, `DESCRIBE TABLE` and
//! `ALTER TABLE ... ADD COLUMN` for new columns (a lossy type change stops here), a transient
//! load table, `COPY INTO` it from the stage, then one statement moves the rows into the
//! target (`MERGE INTO` on the primary key, `INSERT`, or `INSERT OVERWRITE`), and the load
//! table is dropped. A failure before that statement leaves the target as it was.
//!
//! Two protocols, chosen by `api` in the target's configuration:
//! - the SQL API (`POST /api/v2/statements`, the default): stateless, key-pair / OAuth / PAT.
//!   It runs no `PUT`, so it loads from an external stage (`stage_url`); an internal stage can
//!   only be planned, the plan holding the `PUT` commands for SnowSQL;
//! - the drivers' connector protocol ([`super::snowflake_connector`]): a session, password auth
//!   too, and an internal stage (no `stage_url`) that revlake creates if missing
//!   (`CREATE STAGE IF NOT EXISTS`) and fills with `PUT` before the `COPY INTO`.
//!
//! Neither uses a driver crate: see the module docs of [`super`].

use std::time::Duration;

use serde_json::{Value, json};

use super::config::{SnowflakeApi, SnowflakeAuth, SnowflakeConfig, base_url};
use super::error::{ExportError, Result};
use super::http::{env_content, env_var, send};
use super::keys::RsaKey;
use super::snowflake_connector::{ConnectorSession, Credential};
use super::typemap::{snowflake_holds, snowflake_normalize, snowflake_type};
use super::{DatasetLoad, ExportMode};
use crate::project::WORKSPACE_COLUMN;

const WAREHOUSE: &str = "snowflake";

/// A quoted Snowflake identifier for a lake name (`deal_id` → `"DEAL_ID"`, which matches the
/// unquoted spelling `deal_id` in Snowflake).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.to_ascii_uppercase().replace('"', "\"\""))
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// The SQL of one dataset's load, given the target's names.
#[derive(Debug, Clone)]
pub struct SnowflakeSql<'a> {
    pub config: &'a SnowflakeConfig,
    pub load: &'a DatasetLoad,
}

impl SnowflakeSql<'_> {
    fn qualified(&self, table: &str) -> String {
        format!(
            "{}.{}.{}",
            self.config.database,
            self.config.schema,
            ident(table)
        )
    }

    /// The target table, fully qualified.
    pub fn target(&self) -> String {
        self.qualified(&self.load.table)
    }

    /// The transient table the files are copied into.
    pub fn load_table(&self) -> String {
        self.qualified(&format!("{}__revlake_load", self.load.table))
    }

    fn stage(&self) -> String {
        format!("@{}", self.stage_name())
    }

    /// The stage, qualified by database and schema unless the configuration qualified it.
    fn stage_name(&self) -> String {
        if self.config.stage.contains('.') {
            self.config.stage.clone()
        } else {
            format!(
                "{}.{}.{}",
                self.config.database, self.config.schema, self.config.stage
            )
        }
    }

    /// Whether the files go to an internal stage by `PUT` (no `stage_url`).
    pub fn internal_stage(&self) -> bool {
        self.config.stage_url.is_none()
    }

    /// The internal stage, created when missing; server-side encryption only, so a `PUT` needs
    /// no client-side encryption.
    pub fn create_stage(&self) -> String {
        format!(
            "CREATE STAGE IF NOT EXISTS {} ENCRYPTION = (TYPE = 'SNOWFLAKE_SSE')",
            self.stage_name()
        )
    }

    /// `(name, type)` of each column, mapped.
    pub fn columns(&self) -> Result<Vec<(String, String, bool)>> {
        self.load
            .schema
            .fields()
            .iter()
            .map(|f| {
                let t = snowflake_type(f.data_type()).ok_or_else(|| ExportError::Unmappable {
                    dataset: self.load.dataset.to_string(),
                    column: f.name().clone(),
                    arrow_type: f.data_type().to_string(),
                    warehouse: WAREHOUSE,
                })?;
                Ok((f.name().clone(), t, f.is_nullable()))
            })
            .collect()
    }

    fn column_defs(&self) -> Result<String> {
        Ok(self
            .columns()?
            .iter()
            .map(|(n, t, nullable)| {
                format!(
                    "  {} {t}{}",
                    ident(n),
                    if *nullable { "" } else { " NOT NULL" }
                )
            })
            .collect::<Vec<_>>()
            .join(",\n"))
    }

    pub fn create_table(&self) -> Result<String> {
        Ok(format!(
            "CREATE TABLE IF NOT EXISTS {} (\n{}\n)",
            self.target(),
            self.column_defs()?
        ))
    }

    pub fn describe(&self) -> String {
        format!("DESCRIBE TABLE {}", self.target())
    }

    pub fn add_column(&self, name: &str, ty: &str) -> String {
        format!(
            "ALTER TABLE {} ADD COLUMN {} {ty}",
            self.target(),
            ident(name)
        )
    }

    pub fn create_load_table(&self) -> Result<String> {
        Ok(format!(
            "CREATE OR REPLACE TRANSIENT TABLE {} (\n{}\n)",
            self.load_table(),
            self.column_defs()?
        ))
    }

    /// `PUT` commands for an internal stage, the files being under `local_root` (run by the
    /// connector protocol; the SQL API does not run them, SnowSQL does).
    pub fn puts(&self, local_root: &str) -> Vec<String> {
        self.load
            .files
            .iter()
            .map(|f| {
                self.put(
                    &format!("{}/{}", local_root.trim_end_matches('/'), f.path),
                    &f.path,
                )
            })
            .collect()
    }

    /// The `PUT` of the local file `local` as `path` under the stage.
    pub fn put(&self, local: &str, path: &str) -> String {
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        format!(
            "PUT 'file://{}' {}/{dir}/ AUTO_COMPRESS = FALSE OVERWRITE = TRUE",
            local.replace('\\', "/").replace('\'', "\\'"),
            self.stage()
        )
    }

    pub fn copy_into(&self) -> String {
        format!(
            "COPY INTO {}\nFROM {}/{}/\nFILE_FORMAT = (TYPE = PARQUET)\nMATCH_BY_COLUMN_NAME = CASE_INSENSITIVE\nON_ERROR = ABORT_STATEMENT\nFORCE = TRUE",
            self.load_table(),
            self.stage(),
            self.load.prefix
        )
    }

    fn column_list(&self, alias: Option<&str>) -> String {
        self.load
            .schema
            .fields()
            .iter()
            .map(|f| match alias {
                Some(a) => format!("{a}.{}", ident(f.name())),
                None => ident(f.name()),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The one statement that moves the loaded rows into the target, by mode (a transaction
    /// block of several, `BEGIN; …; COMMIT;`, for the replace of one workspace).
    pub fn apply(&self) -> Result<String> {
        let steps = self.apply_steps()?;
        Ok(if steps.len() > 1 {
            format!("{};", steps.join(";\n"))
        } else {
            steps.concat()
        })
    }

    /// The statements that move the loaded rows into the target, one by one (a session runs
    /// the transaction block statement by statement).
    pub fn apply_steps(&self) -> Result<Vec<String>> {
        let cols = self.column_list(None);
        let target = self.target();
        let load = self.load_table();
        Ok(match (self.load.mode, &self.load.workspace) {
            (ExportMode::Append, _) => {
                vec![format!(
                    "INSERT INTO {target} ({cols})\nSELECT {cols} FROM {load}"
                )]
            }
            (ExportMode::Replace, None) => {
                vec![format!(
                    "INSERT OVERWRITE INTO {target} ({cols})\nSELECT {cols} FROM {load}"
                )]
            }
            (ExportMode::Replace, Some(ws)) => vec![
                "BEGIN".to_string(),
                format!(
                    "DELETE FROM {target} WHERE {} = {}",
                    ident(WORKSPACE_COLUMN),
                    literal(ws.as_str())
                ),
                format!("INSERT INTO {target} ({cols})\nSELECT {cols} FROM {load}"),
                "COMMIT".to_string(),
            ],
            (ExportMode::Merge, _) => vec![super::merge_sql(
                "MERGE INTO",
                &target,
                &load,
                &self.load.schema,
                &self.load.primary_key,
                "t.",
                ident,
            )],
        })
    }

    pub fn drop_load_table(&self) -> String {
        format!("DROP TABLE IF EXISTS {}", self.load_table())
    }

    /// Every statement of the load in order, as a plan (no target to describe: schema
    /// evolution is decided at run time and shown as a comment).
    pub fn plan(&self, local_root: Option<&str>) -> Result<Vec<String>> {
        let mut out = vec![
            self.create_table()?,
            format!(
                "-- at run time: {}; columns the target lacks are added with ALTER TABLE ... ADD COLUMN",
                self.describe()
            ),
            self.create_load_table()?,
        ];
        if let Some(root) = local_root.filter(|_| self.internal_stage()) {
            out.push(self.create_stage());
            out.extend(self.puts(root));
        }
        out.push(self.copy_into());
        out.push(self.apply()?);
        out.push(self.drop_load_table());
        Ok(out)
    }
}

/// The columns a target table lacks and must get, or the lossy change that stops the export.
pub fn evolution(
    sql: &SnowflakeSql<'_>,
    target: &[(String, String)],
) -> Result<Vec<(String, String)>> {
    let mut add = Vec::new();
    for (name, ty, _) in sql.columns()? {
        match target.iter().find(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            None => add.push((name, ty)),
            Some((_, have)) if snowflake_holds(have, &ty) => {}
            Some((_, have)) => {
                return Err(ExportError::LossyTypeChange {
                    dataset: sql.load.dataset.to_string(),
                    table: sql.target(),
                    column: name,
                    target_type: snowflake_normalize(have),
                    source_type: ty,
                });
            }
        }
    }
    Ok(add)
}

/// The JWT claims Snowflake's key-pair auth expects.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct JwtClaims {
    /// `ACCOUNT.USER.SHA256:<fingerprint>`
    pub iss: String,
    /// `ACCOUNT.USER`
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
}

/// The account part of an identifier as the JWT names it: upper case, no region or cloud
/// suffix after a `.` (an `org.account` spelling becomes `ORG-ACCOUNT`).
pub fn jwt_account(account: &str) -> String {
    let a = account.trim().to_ascii_uppercase();
    let a = a.strip_suffix(".SNOWFLAKECOMPUTING.COM").unwrap_or(&a);
    a.split('.').next().unwrap_or(a).to_string()
}

pub fn jwt_claims(account: &str, user: &str, fingerprint: &str, now: i64) -> JwtClaims {
    let qualified = format!("{}.{}", jwt_account(account), user.to_ascii_uppercase());
    JwtClaims {
        iss: format!("{qualified}.{fingerprint}"),
        sub: qualified,
        iat: now,
        exp: now + 3540,
    }
}

/// The rows of a statement's result (first partition), as text.
#[derive(Debug, Clone, Default)]
pub struct ResultSet {
    pub handle: String,
    pub rows: Vec<Vec<Option<String>>>,
}

/// The SQL API's endpoint and bearer token.
struct SqlApi {
    http: reqwest::Client,
    base: String,
    token: String,
    token_type: &'static str,
}

impl SqlApi {
    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .bearer_auth(&self.token)
            .header("X-Snowflake-Authorization-Token-Type", self.token_type)
            .header(reqwest::header::ACCEPT, "application/json")
            .header(
                reqwest::header::USER_AGENT,
                concat!("revlake/", env!("CARGO_PKG_VERSION")),
            )
    }

    /// Runs `statement` to completion (polling while the API answers 202), for `dataset`.
    async fn execute(
        &self,
        config: &SnowflakeConfig,
        target: &str,
        dataset: &str,
        statement: &str,
    ) -> Result<ResultSet> {
        let url = format!("{}/api/v2/statements", self.base);
        let request_id = uuid::Uuid::new_v4().to_string();
        let statements = if statement.starts_with("BEGIN;") {
            statement.matches(';').count()
        } else {
            1
        };
        let mut body = json!({
            "statement": statement,
            "timeout": 3600,
            "database": config.database,
            "schema": config.schema,
        });
        if let Some(w) = &config.warehouse {
            body["warehouse"] = json!(w);
        }
        if let Some(r) = &config.role {
            body["role"] = json!(r);
        }
        if statements > 1 {
            body["parameters"] = json!({"MULTI_STATEMENT_COUNT": statements.to_string()});
        }
        tracing::info!(target_name = %target, dataset, statement, "snowflake statement");
        let mut reply = send(WAREHOUSE, &url, config.max_attempts, || {
            self.request(reqwest::Method::POST, &url)
                .query(&[("requestId", request_id.as_str()), ("retry", "true")])
                .json(&body)
        })
        .await?;
        while reply.status == 202 {
            let handle = reply.body["statementHandle"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if handle.is_empty() {
                return Err(self.refused(dataset, statement, &reply.body, 202));
            }
            tokio::time::sleep(Duration::from_millis(config.poll_ms)).await;
            let status_url = format!("{}/api/v2/statements/{handle}", self.base);
            reply = send(WAREHOUSE, &status_url, config.max_attempts, || {
                self.request(reqwest::Method::GET, &status_url)
            })
            .await?;
        }
        if reply.status != 200 {
            return Err(self.refused(dataset, statement, &reply.body, reply.status));
        }
        let rows = reply.body["data"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        r.as_array()
                            .map(|cells| {
                                cells
                                    .iter()
                                    .map(|c| c.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(ResultSet {
            handle: reply.body["statementHandle"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            rows,
        })
    }

    fn refused(&self, dataset: &str, statement: &str, body: &Value, status: u16) -> ExportError {
        let code = body["code"].as_str().unwrap_or("");
        let message = body["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("HTTP {status}: {body}"));
        let handle = body["statementHandle"].as_str().unwrap_or("");
        let mut what = format!("statement (HTTP {status}");
        if !code.is_empty() {
            what.push_str(&format!(", code {code}"));
        }
        if let Some(state) = body["sqlState"].as_str() {
            what.push_str(&format!(", SQL state {state}"));
        }
        if !handle.is_empty() {
            what.push_str(&format!(", handle {handle}"));
        }
        what.push(')');
        ExportError::Warehouse {
            dataset: dataset.to_string(),
            warehouse: WAREHOUSE,
            what,
            message,
            statement: statement.to_string(),
        }
    }
}

enum Transport {
    SqlApi(SqlApi),
    Connector(ConnectorSession),
}

/// A client of one Snowflake target, over the SQL API or the connector protocol.
pub struct SnowflakeClient {
    transport: Transport,
    config: SnowflakeConfig,
    target: String,
}

/// The credential the configuration names, read from the environment (naming the variable
/// when it is missing); a key pair becomes a signed JWT.
fn credential(target: &str, config: &SnowflakeConfig) -> Result<Credential> {
    Ok(match &config.auth {
        SnowflakeAuth::KeyPair { private_key_env } => {
            let pem = env_content(target, private_key_env, "the Snowflake private key")?;
            let bad = |reason| ExportError::BadCredential {
                target: target.into(),
                what: format!("the private key in {private_key_env}"),
                reason,
            };
            let key = RsaKey::from_pem(&pem).map_err(bad)?;
            let claims = jwt_claims(
                &config.account,
                &config.user,
                &key.fingerprint(),
                chrono::Utc::now().timestamp(),
            );
            Credential::Jwt(key.sign(&claims).map_err(bad)?)
        }
        SnowflakeAuth::Oauth { token_env } => Credential::Oauth(
            env_var(target, token_env, "the Snowflake OAuth token")?
                .trim()
                .to_string(),
        ),
        SnowflakeAuth::Pat { token_env } => Credential::Pat(
            env_var(target, token_env, "the Snowflake programmatic access token")?
                .trim()
                .to_string(),
        ),
        SnowflakeAuth::Password { password_env } => {
            Credential::Password(env_var(target, password_env, "the Snowflake password")?)
        }
    })
}

impl SnowflakeClient {
    /// Resolves credentials from the environment (naming the variable when missing); with the
    /// connector protocol, logs in.
    pub async fn connect(
        target: &str,
        config: &SnowflakeConfig,
        http: reqwest::Client,
    ) -> Result<Self> {
        let host = config.host.clone().unwrap_or_else(|| {
            format!(
                "{}.snowflakecomputing.com",
                config.account.to_ascii_lowercase()
            )
        });
        let base = base_url(&config.protocol, &host, config.port);
        let credential = credential(target, config)?;
        let transport = match (config.api, credential) {
            (SnowflakeApi::Connector, credential) => Transport::Connector(
                ConnectorSession::login(target, config, &base, &credential, http).await?,
            ),
            (SnowflakeApi::SqlApi, credential) => {
                let (token, token_type) = match credential {
                    Credential::Jwt(t) => (t, "KEYPAIR_JWT"),
                    Credential::Oauth(t) => (t, "OAUTH"),
                    Credential::Pat(t) => (t, "PROGRAMMATIC_ACCESS_TOKEN"),
                    Credential::Password(_) => {
                        return Err(ExportError::Config {
                            target: target.into(),
                            reason: "the SQL API takes no password: use auth type key_pair, oauth or pat, or set api = \"connector\"".into(),
                        });
                    }
                };
                Transport::SqlApi(SqlApi {
                    http,
                    base,
                    token,
                    token_type,
                })
            }
        };
        Ok(Self {
            transport,
            config: config.clone(),
            target: target.to_string(),
        })
    }

    /// Runs one statement (a `BEGIN; …; COMMIT;` block as one request of the SQL API).
    pub async fn execute(&self, dataset: &str, statement: &str) -> Result<ResultSet> {
        match &self.transport {
            Transport::SqlApi(api) => {
                api.execute(&self.config, &self.target, dataset, statement)
                    .await
            }
            Transport::Connector(session) => session.execute(dataset, statement).await,
        }
    }

    /// Loads one staged dataset; returns the statements run, in order.
    pub async fn load(&self, load: &DatasetLoad) -> Result<Vec<String>> {
        let sql = SnowflakeSql {
            config: &self.config,
            load,
        };
        let dataset = load.dataset.to_string();
        let mut ran = Vec::new();
        let create = sql.create_table()?;
        self.execute(&dataset, &create).await?;
        ran.push(create);
        let describe = sql.describe();
        let current: Vec<(String, String)> = self
            .execute(&dataset, &describe)
            .await?
            .rows
            .into_iter()
            .filter_map(|r| Some((r.first()?.clone()?, r.get(1)?.clone()?)))
            .collect();
        ran.push(describe);
        for (name, ty) in evolution(&sql, &current)? {
            let alter = sql.add_column(&name, &ty);
            self.execute(&dataset, &alter).await?;
            ran.push(alter);
        }
        let create_load = sql.create_load_table()?;
        self.execute(&dataset, &create_load).await?;
        ran.push(create_load);
        // From here on a failure drops the load table (best effort); the target is untouched
        // until the statements that move the rows, which run as one statement or transaction.
        if let Err(e) = self.fill_and_apply(&sql, &dataset, &mut ran).await {
            let _ = self.execute(&dataset, &sql.drop_load_table()).await;
            return Err(e);
        }
        let drop = sql.drop_load_table();
        self.execute(&dataset, &drop).await?;
        ran.push(drop);
        Ok(ran)
    }

    /// `PUT` (internal stage), `COPY INTO` the load table, then the statements of the mode.
    async fn fill_and_apply(
        &self,
        sql: &SnowflakeSql<'_>,
        dataset: &str,
        ran: &mut Vec<String>,
    ) -> Result<()> {
        if sql.internal_stage() {
            let Transport::Connector(session) = &self.transport else {
                return Err(ExportError::Config {
                    target: self.target.clone(),
                    reason: "no stage_url: the SQL API cannot PUT files to an internal stage; set api = \"connector\", or create an external stage on a bucket and set stage_url to its URL".into(),
                });
            };
            let create = sql.create_stage();
            session.execute(dataset, &create).await?;
            ran.push(create);
            for file in &sql.load.files {
                let put = sql.put(&file.url, &file.path);
                session
                    .put(dataset, &put, std::path::Path::new(&file.url))
                    .await?;
                ran.push(put);
            }
        }
        let copy = sql.copy_into();
        self.execute(dataset, &copy).await?;
        ran.push(copy);
        match &self.transport {
            Transport::SqlApi(_) => {
                let apply = sql.apply()?;
                self.execute(dataset, &apply).await?;
                ran.push(apply);
            }
            Transport::Connector(session) => {
                let steps = sql.apply_steps()?;
                let in_transaction = steps.first().is_some_and(|s| s == "BEGIN");
                for step in steps {
                    if let Err(e) = session.execute(dataset, &step).await {
                        if in_transaction {
                            let _ = session.execute(dataset, "ROLLBACK").await;
                        }
                        return Err(e);
                    }
                    ran.push(step);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::tests::sample_load;

    fn config() -> SnowflakeConfig {
        toml::from_str(
            r#"account = "acme-prod"
user = "loader"
database = "ANALYTICS"
schema = "REVLAKE"
stage = "REVLAKE_STAGE"
stage_url = "s3://b/p/"
auth = { type = "oauth", token_env = "T" }
"#,
        )
        .unwrap()
    }

    #[test]
    fn create_and_copy_use_mapped_types_and_parquet_by_name() {
        let c = config();
        let load = sample_load(ExportMode::Merge, None);
        let sql = SnowflakeSql {
            config: &c,
            load: &load,
        };
        assert_eq!(
            sql.create_table().unwrap(),
            "CREATE TABLE IF NOT EXISTS ANALYTICS.REVLAKE.\"DEALS\" (\n  \"WORKSPACE_ID\" VARCHAR NOT NULL,\n  \"ID\" VARCHAR NOT NULL,\n  \"AMOUNT\" NUMBER(18,2),\n  \"CLOSED_AT\" TIMESTAMP_TZ\n)"
        );
        assert_eq!(
            sql.copy_into(),
            "COPY INTO ANALYTICS.REVLAKE.\"DEALS__REVLAKE_LOAD\"\nFROM @ANALYTICS.REVLAKE.REVLAKE_STAGE/acme/staging.deals/v3/\nFILE_FORMAT = (TYPE = PARQUET)\nMATCH_BY_COLUMN_NAME = CASE_INSENSITIVE\nON_ERROR = ABORT_STATEMENT\nFORCE = TRUE"
        );
    }

    #[test]
    fn an_internal_stage_is_created_and_filled_by_put_before_the_copy() {
        let mut c = config();
        c.stage_url = None;
        let load = sample_load(ExportMode::Merge, None);
        let sql = SnowflakeSql {
            config: &c,
            load: &load,
        };
        let plan = sql.plan(Some("/tmp/plan/files/")).unwrap();
        let heads: Vec<&str> = plan.iter().map(|s| s.lines().next().unwrap()).collect();
        assert_eq!(
            heads[3..6],
            [
                "CREATE STAGE IF NOT EXISTS ANALYTICS.REVLAKE.REVLAKE_STAGE ENCRYPTION = (TYPE = 'SNOWFLAKE_SSE')",
                "PUT 'file:///tmp/plan/files/acme/staging.deals/v3/part-00000.parquet' @ANALYTICS.REVLAKE.REVLAKE_STAGE/acme/staging.deals/v3/ AUTO_COMPRESS = FALSE OVERWRITE = TRUE",
                "COPY INTO ANALYTICS.REVLAKE.\"DEALS__REVLAKE_LOAD\"",
            ]
        );
        // An external stage has nothing to create or PUT.
        let c = config();
        let sql = SnowflakeSql {
            config: &c,
            load: &load,
        };
        let plan = sql.plan(Some("/tmp/plan/files/")).unwrap();
        assert!(
            !plan
                .iter()
                .any(|s| s.starts_with("PUT") || s.starts_with("CREATE STAGE"))
        );
    }

    #[test]
    fn merge_joins_on_the_primary_key_and_updates_the_rest() {
        let c = config();
        let load = sample_load(ExportMode::Merge, None);
        let sql = SnowflakeSql {
            config: &c,
            load: &load,
        };
        assert_eq!(
            sql.apply().unwrap(),
            "MERGE INTO ANALYTICS.REVLAKE.\"DEALS\" AS t\nUSING ANALYTICS.REVLAKE.\"DEALS__REVLAKE_LOAD\" AS s\nON t.\"WORKSPACE_ID\" = s.\"WORKSPACE_ID\" AND t.\"ID\" = s.\"ID\"\nWHEN MATCHED THEN UPDATE SET t.\"AMOUNT\" = s.\"AMOUNT\", t.\"CLOSED_AT\" = s.\"CLOSED_AT\"\nWHEN NOT MATCHED THEN INSERT (\"WORKSPACE_ID\", \"ID\", \"AMOUNT\", \"CLOSED_AT\")\nVALUES (s.\"WORKSPACE_ID\", s.\"ID\", s.\"AMOUNT\", s.\"CLOSED_AT\")"
        );
    }

    #[test]
    fn replace_of_one_workspace_is_one_transaction() {
        let c = config();
        let ws = crate::lake::WorkspaceId::new("acme").unwrap();
        let load = sample_load(ExportMode::Replace, Some(ws));
        let sql = SnowflakeSql {
            config: &c,
            load: &load,
        };
        let apply = sql.apply().unwrap();
        assert!(apply.starts_with(
            "BEGIN;\nDELETE FROM ANALYTICS.REVLAKE.\"DEALS\" WHERE \"WORKSPACE_ID\" = 'acme';"
        ));
        assert!(apply.ends_with("COMMIT;"));
        // A session runs the same block statement by statement.
        let steps = sql.apply_steps().unwrap();
        assert_eq!(steps.len(), 4);
        assert_eq!((steps[0].as_str(), steps[3].as_str()), ("BEGIN", "COMMIT"));
        assert_eq!(apply, format!("{};", steps.join(";\n")));
        let load = sample_load(ExportMode::Replace, None);
        let sql = SnowflakeSql {
            config: &c,
            load: &load,
        };
        assert!(sql.apply().unwrap().starts_with("INSERT OVERWRITE INTO"));
    }

    #[test]
    fn new_columns_are_added_and_lossy_changes_refused() {
        let c = config();
        let load = sample_load(ExportMode::Merge, None);
        let sql = SnowflakeSql {
            config: &c,
            load: &load,
        };
        let have = vec![
            ("WORKSPACE_ID".to_string(), "VARCHAR(16777216)".to_string()),
            ("ID".to_string(), "VARCHAR(16777216)".to_string()),
            ("AMOUNT".to_string(), "NUMBER(38,2)".to_string()),
        ];
        assert_eq!(
            evolution(&sql, &have).unwrap(),
            vec![("closed_at".to_string(), "TIMESTAMP_TZ".to_string())]
        );
        let lossy = vec![("AMOUNT".to_string(), "NUMBER(38,0)".to_string())];
        let e = evolution(&sql, &lossy).unwrap_err().to_string();
        assert!(e.contains("staging.deals") && e.contains("`amount`"), "{e}");
        assert!(
            e.contains("NUMBER(38,0)") && e.contains("NUMBER(18,2)"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn the_sql_api_refuses_a_password_and_a_missing_variable_is_named() {
        let mut c = config();
        c.auth = SnowflakeAuth::Password {
            password_env: "REVLAKE_UT_SF_PASSWORD_1".into(),
        };
        let e = SnowflakeClient::connect("sf", &c, reqwest::Client::new())
            .await
            .err()
            .unwrap();
        assert!(e.is_user_error());
        assert!(
            e.to_string()
                .contains("environment variable REVLAKE_UT_SF_PASSWORD_1 is not set"),
            "{e}"
        );
        unsafe { std::env::set_var("REVLAKE_UT_SF_PASSWORD_1", "pw") };
        let e = SnowflakeClient::connect("sf", &c, reqwest::Client::new())
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("the SQL API takes no password") && e.contains("api = \"connector\""),
            "{e}"
        );
    }

    #[test]
    fn jwt_claims_name_account_user_and_key_fingerprint() {
        let c = jwt_claims("myorg-acct.eu-west-1", "loader", "SHA256:abc=", 1000);
        assert_eq!(c.iss, "MYORG-ACCT.LOADER.SHA256:abc=");
        assert_eq!(c.sub, "MYORG-ACCT.LOADER");
        assert_eq!((c.iat, c.exp), (1000, 4540));
    }

    #[test]
    fn key_pair_jwt_verifies_and_carries_the_fingerprint() {
        let pem = include_str!("../../tests/it/files/export_test_key.pem");
        let key = RsaKey::from_pem(pem).unwrap();
        let claims = jwt_claims("acme-prod", "loader", &key.fingerprint(), 1_700_000_000);
        let token = key.sign(&claims).unwrap();
        let (n, e) = key.public_components();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.validate_exp = false;
        let got = jsonwebtoken::decode::<JwtClaims>(
            &token,
            &jsonwebtoken::DecodingKey::from_rsa_raw_components(n, e),
            &v,
        )
        .unwrap();
        assert_eq!(got.claims, claims);
        assert!(got.claims.iss.starts_with("ACME-PROD.LOADER.SHA256:"));
    }
}

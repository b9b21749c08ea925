//! `[exports.NAME]` in a pipeline file: one warehouse target each.
//!
//! ```toml
//! [exports.warehouse]
//! type = "snowflake"
//! account = "myorg-myaccount"
//! user = "REVLAKE_LOADER"
//! database = "ANALYTICS"
//! schema = "REVLAKE"
//! warehouse = "LOAD_WH"
//! stage = "REVLAKE_STAGE"                 # an external stage on the bucket below
//! stage_url = "s3://acme-exports/revlake/"  # where revlake writes the Parquet files
//! auth = { type = "key_pair", private_key_env = "SNOWFLAKE_PRIVATE_KEY" }
//! select = ["staging.*", "marts.*"]
//! mode = "merge"
//!
//! [exports.emulator]                      # the driver ("connector") protocol, e.g. fakesnow
//! type = "snowflake"
//! api = "connector"
//! account = "test"
//! user = "loader"
//! host = "127.0.0.1"
//! port = 8085
//! protocol = "http"
//! database = "ANALYTICS"
//! schema = "REVLAKE"
//! stage = "REVLAKE_STAGE"                 # no stage_url: an internal stage, files sent by PUT
//! auth = { type = "password", password_env = "SNOWFLAKE_PASSWORD" }
//!
//! [exports.bq]
//! type = "bigquery"
//! project = "acme-analytics"
//! dataset = "revlake"
//! stage_url = "gs://acme-exports/revlake/"
//! credentials_env = "GOOGLE_APPLICATION_CREDENTIALS"
//! ```
//!
//! Credentials are never inline: each is the *name* of an environment variable.

use serde::Deserialize;

/// How rows reach the target table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportMode {
    /// Add the rows to the table.
    Append,
    /// Replace the table's rows (of the workspace, when one is selected) with the dataset's.
    Replace,
    /// Upsert on the dataset's primary key.
    #[default]
    Merge,
}

impl ExportMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportMode::Append => "append",
            ExportMode::Replace => "replace",
            ExportMode::Merge => "merge",
        }
    }
}

impl std::str::FromStr for ExportMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "append" => Ok(ExportMode::Append),
            "replace" => Ok(ExportMode::Replace),
            "merge" => Ok(ExportMode::Merge),
            other => Err(format!(
                "`{other}` is not an export mode: use append, replace or merge"
            )),
        }
    }
}

/// One export target, tagged by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExportConfig {
    Snowflake(SnowflakeConfig),
    Bigquery(BigQueryConfig),
}

impl ExportConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            ExportConfig::Snowflake(_) => "snowflake",
            ExportConfig::Bigquery(_) => "bigquery",
        }
    }

    /// The dataset selectors configured (default `staging.*` and `marts.*`).
    pub fn select(&self) -> &[String] {
        match self {
            ExportConfig::Snowflake(c) => &c.select,
            ExportConfig::Bigquery(c) => &c.select,
        }
    }

    pub fn mode(&self) -> ExportMode {
        match self {
            ExportConfig::Snowflake(c) => c.mode,
            ExportConfig::Bigquery(c) => c.mode,
        }
    }

    pub fn stage_url(&self) -> Option<&str> {
        match self {
            ExportConfig::Snowflake(c) => c.stage_url.as_deref(),
            ExportConfig::Bigquery(c) => c.stage_url.as_deref(),
        }
    }
}

fn default_select() -> Vec<String> {
    vec!["staging.*".into(), "marts.*".into()]
}

fn default_https() -> String {
    "https".into()
}

fn default_poll_ms() -> u64 {
    1000
}

fn default_attempts() -> usize {
    5
}

/// Which of Snowflake's two HTTP protocols revlake speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum SnowflakeApi {
    /// The SQL API (`POST /api/v2/statements`): stateless, key-pair / OAuth / PAT tokens, no
    /// `PUT`, so files are loaded from an external stage (`stage_url`).
    #[default]
    #[serde(rename = "sql_api", alias = "sql-api")]
    SqlApi,
    /// The drivers' protocol (`/session/v1/login-request`, `/queries/v1/query-request`): a
    /// session, password auth too, and `PUT` to an internal stage (uploads to the presigned URL
    /// the server answers with). Emulators such as fakesnow speak only this one.
    #[serde(rename = "connector")]
    Connector,
}

impl SnowflakeApi {
    pub fn as_str(self) -> &'static str {
        match self {
            SnowflakeApi::SqlApi => "sql_api",
            SnowflakeApi::Connector => "connector",
        }
    }
}

/// A Snowflake account reached through the SQL API (`/api/v2/statements`) or the connector
/// protocol (`api = "connector"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnowflakeConfig {
    /// `sql_api` (default) or `connector`: see [`SnowflakeApi`].
    #[serde(default)]
    pub api: SnowflakeApi,
    /// The account identifier (`orgname-accountname`, or the account locator).
    pub account: String,
    /// The login name of the user the key or token belongs to.
    pub user: String,
    /// Host name; default `<account>.snowflakecomputing.com` (set it for a private link or an
    /// emulator).
    pub host: Option<String>,
    /// Port; default that of the protocol.
    pub port: Option<u16>,
    /// `https` (default) or `http` (emulators only).
    #[serde(default = "default_https")]
    pub protocol: String,
    pub database: String,
    pub schema: String,
    /// The virtual warehouse that runs the load.
    pub warehouse: Option<String>,
    pub role: Option<String>,
    /// The stage the files are loaded from (without `@`). With `stage_url` it is an external
    /// stage on that location; without, an internal stage that revlake creates if missing and
    /// fills with `PUT` (connector protocol only; the SQL API runs no `PUT`, so there it can
    /// only be planned, the plan holding the `PUT` commands).
    pub stage: String,
    /// Where revlake writes the Parquet files (`s3://`, `gs://`, `az://` or a folder): the
    /// external stage's URL.
    pub stage_url: Option<String>,
    pub auth: SnowflakeAuth,
    #[serde(default = "default_select")]
    pub select: Vec<String>,
    #[serde(default)]
    pub mode: ExportMode,
    /// Milliseconds between polls of a running statement.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// Attempts per request on 429 / 5xx / connection errors.
    #[serde(default = "default_attempts")]
    pub max_attempts: usize,
    /// Table names in the warehouse are the dataset's table name, prefixed by this.
    #[serde(default)]
    pub table_prefix: String,
}

/// How revlake authenticates to Snowflake.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SnowflakeAuth {
    /// Key-pair: a JWT signed with the user's RSA key (PEM in the variable, or a path to it).
    KeyPair { private_key_env: String },
    /// An OAuth access token in the variable.
    Oauth { token_env: String },
    /// A programmatic access token in the variable.
    Pat { token_env: String },
    /// The user's password in the variable (connector protocol only: the SQL API takes no
    /// passwords).
    Password { password_env: String },
}

/// A BigQuery dataset reached through the REST API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BigQueryConfig {
    pub project: String,
    /// The BigQuery dataset the tables go to.
    pub dataset: String,
    /// Job location (`US`, `EU`, a region); default: the dataset's.
    pub location: Option<String>,
    /// Host of the BigQuery API; default `bigquery.googleapis.com`.
    pub host: Option<String>,
    pub port: Option<u16>,
    #[serde(default = "default_https")]
    pub protocol: String,
    /// The OAuth token endpoint; default the service account's `token_uri`.
    pub token_url: Option<String>,
    /// `gs://bucket/prefix/` the Parquet files are written to and loaded from.
    pub stage_url: Option<String>,
    /// Variable holding the service-account key JSON, or a path to it.
    pub credentials_env: Option<String>,
    /// Variable holding an OAuth access token (instead of a service account).
    pub token_env: Option<String>,
    #[serde(default = "default_select")]
    pub select: Vec<String>,
    #[serde(default)]
    pub mode: ExportMode,
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    #[serde(default = "default_attempts")]
    pub max_attempts: usize,
    #[serde(default)]
    pub table_prefix: String,
}

/// `protocol://host[:port]` with no trailing slash.
pub(crate) fn base_url(protocol: &str, host: &str, port: Option<u16>) -> String {
    match port {
        Some(p) => format!("{protocol}://{host}:{p}"),
        None => format!("{protocol}://{host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_warehouses_and_refuses_unknown_keys() {
        let sf: ExportConfig = toml::from_str(
            r#"type = "snowflake"
account = "acme-x"
user = "LOADER"
database = "DB"
schema = "S"
stage = "ST"
stage_url = "s3://b/p/"
auth = { type = "key_pair", private_key_env = "SF_KEY" }
mode = "append"
"#,
        )
        .unwrap();
        assert_eq!(sf.kind(), "snowflake");
        assert_eq!(sf.mode(), ExportMode::Append);
        assert_eq!(sf.select(), ["staging.*", "marts.*"]);
        let bq: ExportConfig =
            toml::from_str("type = \"bigquery\"\nproject = \"p\"\ndataset = \"d\"\n").unwrap();
        assert_eq!(bq.mode(), ExportMode::Merge);
        let bad = toml::from_str::<ExportConfig>(
            "type = \"bigquery\"\nproject = \"p\"\ndataset = \"d\"\npassword = \"x\"\n",
        );
        assert!(bad.unwrap_err().to_string().contains("password"));
    }

    #[test]
    fn the_snowflake_api_defaults_to_the_sql_api_and_takes_the_connector_protocol() {
        let base = "type = \"snowflake\"\naccount = \"a\"\nuser = \"u\"\ndatabase = \"D\"\nschema = \"S\"\nstage = \"ST\"\nauth = { type = \"password\", password_env = \"P\" }\n";
        let api = |extra: &str| match toml::from_str::<ExportConfig>(&format!("{base}{extra}")) {
            Ok(ExportConfig::Snowflake(c)) => Ok(c.api),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.to_string()),
        };
        assert_eq!(api(""), Ok(SnowflakeApi::SqlApi));
        assert_eq!(api("api = \"sql-api\"\n"), Ok(SnowflakeApi::SqlApi));
        assert_eq!(api("api = \"connector\"\n"), Ok(SnowflakeApi::Connector));
        let e = api("api = \"odbc\"\n").unwrap_err();
        assert!(e.contains("odbc") && e.contains("connector"), "{e}");
    }
}

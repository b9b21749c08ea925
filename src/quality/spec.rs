//! Check declarations: `[[checks]]` tables in a dataset's schema file, or `checks = [...]` on a
//! column (the column is then implied).
//!
//! ```toml
//! [[checks]]
//! check = "unique"
//! columns = ["workspace_id", "id"]
//! severity = "critical"
//!
//! [[checks]]
//! check = "relationships"
//! column = "account_id"
//! to = "staging.accounts"        # to_column defaults to "id"
//!
//! [[columns]]
//! name = "amount_usd"
//! type = "float64"
//! checks = [{ check = "range", min = 0 }, { check = "null_rate_max", max_rate = 0.05 }]
//! ```
//!
//! Every check takes `name` (default `kind(column)`), `severity` (`critical` blocks what reads
//! the dataset; `high`, `medium`, `low` warn), `description`, and, for the row-level kinds, a
//! `where` predicate restricting the rows it looks at.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::lake::DatasetRef;
use crate::project::{DatasetSchema, ProjectError};

/// How bad a failing check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown severity {s:?} (critical, high, medium, low)"))
    }
}

/// What a check tests.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// At least `min_rows` rows.
    NotEmpty { min_rows: u64 },
    /// No nulls in the column.
    NotNull { column: String },
    /// No two rows share the (non-null) values of the columns.
    Unique { columns: Vec<String> },
    /// Non-null values are among `values`.
    AcceptedValues {
        column: String,
        values: Vec<Literal>,
    },
    /// Non-null values exist as `to_column` in the dataset `to` (same workspace).
    Relationships {
        column: String,
        to: DatasetRef,
        to_column: String,
    },
    /// Non-null values within `[min, max]` (either bound optional).
    Range {
        column: String,
        min: Option<Literal>,
        max: Option<Literal>,
    },
    /// Non-null values (as text) match the regular expression.
    Regex { column: String, pattern: String },
    /// A boolean SQL expression over the row that must not be false (null passes).
    Expression { expression: String },
    /// The share of nulls is at most `max_rate` (0-1).
    NullRateMax { column: String, max_rate: f64 },
    /// Rows changed by at most `max_drop` (a fraction, 0.2 = 20 % fewer) and, if set,
    /// `max_growth` against the version the previous passing run checked.
    RowCountChangeMax {
        max_drop: f64,
        max_growth: Option<f64>,
    },
    /// The newest value of `column` (or, without one, the dataset's last commit) is at most
    /// `max_age_secs` old.
    Freshness {
        column: Option<String>,
        max_age_secs: i64,
        max_age: String,
    },
    /// A query whose rows are the failures (a `workspace_id` column attributes them).
    CustomSql { sql: String },
    /// Rows whose raw stage did not map to a normalized stage.
    UnmappedStages { column: String, raw_column: String },
}

/// A literal value in a check (`values`, `min`, `max`).
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl Literal {
    fn from_toml(v: &toml::Value) -> Option<Self> {
        match v {
            toml::Value::Integer(i) => Some(Literal::Int(*i)),
            toml::Value::Float(f) => Some(Literal::Float(*f)),
            toml::Value::Boolean(b) => Some(Literal::Bool(*b)),
            toml::Value::String(s) => Some(Literal::Text(s.clone())),
            toml::Value::Datetime(d) => Some(Literal::Text(d.to_string())),
            _ => None,
        }
    }

    /// The value as a SQL literal.
    pub fn sql(&self) -> String {
        match self {
            Literal::Int(i) => i.to_string(),
            Literal::Float(f) => format!("{f:?}"),
            Literal::Bool(b) => b.to_string(),
            Literal::Text(s) => quote_literal(s),
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Int(i) => write!(f, "{i}"),
            Literal::Float(x) => write!(f, "{x}"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Text(s) => f.write_str(s),
        }
    }
}

/// `'text'` with quotes doubled.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `"name"` with quotes doubled.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// One declared check of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub dataset: DatasetRef,
    pub name: String,
    pub kind: CheckKind,
    pub severity: Severity,
    /// Row filter (SQL predicate) of the row-level kinds.
    pub filter: Option<String>,
    pub description: String,
}

impl Check {
    /// The kind's name as declared (`not_null`, `unique`, ...).
    pub fn kind_name(&self) -> &'static str {
        self.kind.name()
    }

    /// The column the check is about, if one.
    pub fn column(&self) -> Option<&str> {
        match &self.kind {
            CheckKind::NotNull { column }
            | CheckKind::AcceptedValues { column, .. }
            | CheckKind::Relationships { column, .. }
            | CheckKind::Range { column, .. }
            | CheckKind::Regex { column, .. }
            | CheckKind::NullRateMax { column, .. }
            | CheckKind::UnmappedStages { column, .. } => Some(column),
            CheckKind::Freshness { column, .. } => column.as_deref(),
            CheckKind::Unique { columns } => columns.first().map(String::as_str),
            _ => None,
        }
    }

    /// The threshold as people read it (`<= 5%`, `>= 1 rows`, `in [a, b]`).
    pub fn threshold(&self) -> String {
        match &self.kind {
            CheckKind::NotEmpty { min_rows } => format!(">= {min_rows} rows"),
            CheckKind::NotNull { .. } => "no nulls".into(),
            CheckKind::Unique { columns } => format!("unique ({})", columns.join(", ")),
            CheckKind::AcceptedValues { values, .. } => format!(
                "in [{}]",
                values
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            CheckKind::Relationships { to, to_column, .. } => format!("exists in {to}.{to_column}"),
            CheckKind::Range { min, max, .. } => match (min, max) {
                (Some(a), Some(b)) => format!("between {a} and {b}"),
                (Some(a), None) => format!(">= {a}"),
                (None, Some(b)) => format!("<= {b}"),
                (None, None) => "any".into(),
            },
            CheckKind::Regex { pattern, .. } => format!("matches /{pattern}/"),
            CheckKind::Expression { expression } => expression.clone(),
            CheckKind::NullRateMax { max_rate, .. } => {
                format!("nulls <= {}%", fmt_pct(*max_rate))
            }
            CheckKind::RowCountChangeMax {
                max_drop,
                max_growth,
            } => match max_growth {
                Some(g) => format!(
                    "drop <= {}%, growth <= {}%",
                    fmt_pct(*max_drop),
                    fmt_pct(*g)
                ),
                None => format!("drop <= {}%", fmt_pct(*max_drop)),
            },
            CheckKind::Freshness { max_age, .. } => format!("age <= {max_age}"),
            CheckKind::CustomSql { .. } => "no rows".into(),
            CheckKind::UnmappedStages { .. } => "every stage mapped".into(),
        }
    }
}

fn fmt_pct(fraction: f64) -> String {
    let p = fraction * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("{}", p.round() as i64)
    } else {
        format!("{p:.2}")
    }
}

impl CheckKind {
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::NotEmpty { .. } => "not_empty",
            CheckKind::NotNull { .. } => "not_null",
            CheckKind::Unique { .. } => "unique",
            CheckKind::AcceptedValues { .. } => "accepted_values",
            CheckKind::Relationships { .. } => "relationships",
            CheckKind::Range { .. } => "range",
            CheckKind::Regex { .. } => "regex",
            CheckKind::Expression { .. } => "expression",
            CheckKind::NullRateMax { .. } => "null_rate_max",
            CheckKind::RowCountChangeMax { .. } => "row_count_change_max",
            CheckKind::Freshness { .. } => "freshness",
            CheckKind::CustomSql { .. } => "custom_sql",
            CheckKind::UnmappedStages { .. } => "unmapped_stages",
        }
    }

    /// The severity when a declaration names none (the operating guide's defaults: > 5 % nulls
    /// is high, a row-count drop medium; an empty dataset blocks).
    fn default_severity(&self) -> Severity {
        match self {
            CheckKind::NotEmpty { .. } => Severity::Critical,
            CheckKind::RowCountChangeMax { .. } => Severity::Medium,
            _ => Severity::High,
        }
    }
}

/// The kinds a declaration may name.
pub const KINDS: &[&str] = &[
    "not_empty",
    "not_null",
    "unique",
    "accepted_values",
    "relationships",
    "range",
    "regex",
    "expression",
    "null_rate_max",
    "row_count_change_max",
    "freshness",
    "custom_sql",
    "unmapped_stages",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    check: String,
    name: Option<String>,
    severity: Option<String>,
    #[serde(default)]
    description: String,
    column: Option<String>,
    columns: Option<Vec<String>>,
    #[serde(rename = "where")]
    filter: Option<String>,
    values: Option<Vec<toml::Value>>,
    to: Option<String>,
    to_column: Option<String>,
    min: Option<toml::Value>,
    max: Option<toml::Value>,
    pattern: Option<String>,
    max_rate: Option<f64>,
    max_drop: Option<f64>,
    max_growth: Option<f64>,
    max_age: Option<String>,
    sql: Option<String>,
    min_rows: Option<u64>,
    raw_column: Option<String>,
    expression: Option<String>,
}

/// Parses and validates the checks declared in `schema`; every error names the schema file and
/// the check.
pub fn checks_of(schema: &DatasetSchema) -> Result<Vec<Check>, ProjectError> {
    schema
        .checks
        .iter()
        .enumerate()
        .map(|(i, value)| parse_check(schema, i, value))
        .collect()
}

fn parse_check(
    schema: &DatasetSchema,
    index: usize,
    value: &toml::Value,
) -> Result<Check, ProjectError> {
    let label = value
        .get("name")
        .or_else(|| value.get("check"))
        .and_then(|v| v.as_str())
        .unwrap_or("?");
    let err = |reason: String| ProjectError::InvalidPipeline {
        path: schema.path.clone(),
        reason: format!("check #{} ({label}): {reason}", index + 1),
    };
    let raw: RawCheck = value
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| err(e.message().to_string()))?;
    let has_column = |c: &str| schema.columns.is_empty() || schema.column(c).is_some();
    let column = |raw_col: &Option<String>| -> Result<String, ProjectError> {
        let c = raw_col
            .clone()
            .ok_or_else(|| err(format!("`{}` needs a `column`", raw.check)))?;
        if !has_column(&c) {
            return Err(err(format!(
                "column `{c}` is not among the dataset's columns"
            )));
        }
        Ok(c)
    };
    let fraction = |v: Option<f64>, key: &str, default: Option<f64>| -> Result<f64, ProjectError> {
        let v = v.or(default).ok_or_else(|| {
            err(format!(
                "`{}` needs `{key}` (a fraction, 0.05 = 5 %)",
                raw.check
            ))
        })?;
        if !(0.0..=1.0e6).contains(&v) || v.is_nan() {
            return Err(err(format!("`{key}` = {v} is not a fraction >= 0")));
        }
        Ok(v)
    };
    let literal = |v: &toml::Value, key: &str| {
        Literal::from_toml(v).ok_or_else(|| {
            err(format!(
                "`{key}` holds {v}, not a number, string, boolean or date"
            ))
        })
    };
    let kind = match raw.check.as_str() {
        "not_empty" => CheckKind::NotEmpty {
            min_rows: raw.min_rows.unwrap_or(1),
        },
        "not_null" => CheckKind::NotNull {
            column: column(&raw.column)?,
        },
        "unique" => {
            let columns = match (&raw.columns, &raw.column) {
                (Some(cs), _) if !cs.is_empty() => cs.clone(),
                (_, Some(c)) => vec![c.clone()],
                _ => return Err(err("`unique` needs `columns` (or `column`)".into())),
            };
            if let Some(c) = columns.iter().find(|c| !has_column(c)) {
                return Err(err(format!(
                    "column `{c}` is not among the dataset's columns"
                )));
            }
            CheckKind::Unique { columns }
        }
        "accepted_values" => {
            let values = raw
                .values
                .as_ref()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| err("`accepted_values` needs a non-empty `values` list".into()))?
                .iter()
                .map(|v| literal(v, "values"))
                .collect::<Result<Vec<_>, _>>()?;
            CheckKind::AcceptedValues {
                column: column(&raw.column)?,
                values,
            }
        }
        "relationships" => {
            let to_text = raw
                .to
                .clone()
                .ok_or_else(|| err("`relationships` needs `to` (a `layer.table`)".into()))?;
            let to: DatasetRef = to_text
                .parse()
                .map_err(|_| err(format!("`to` = {to_text:?} is not a `layer.table` name")))?;
            CheckKind::Relationships {
                column: column(&raw.column)?,
                to,
                to_column: raw.to_column.clone().unwrap_or_else(|| "id".into()),
            }
        }
        "range" => {
            let min = raw.min.as_ref().map(|v| literal(v, "min")).transpose()?;
            let max = raw.max.as_ref().map(|v| literal(v, "max")).transpose()?;
            if min.is_none() && max.is_none() {
                return Err(err("`range` needs `min`, `max` or both".into()));
            }
            CheckKind::Range {
                column: column(&raw.column)?,
                min,
                max,
            }
        }
        "regex" => {
            let pattern = raw
                .pattern
                .clone()
                .ok_or_else(|| err("`regex` needs a `pattern`".into()))?;
            if let Err(e) = regex_syntax_ok(&pattern) {
                return Err(err(format!(
                    "`pattern` is not a valid regular expression: {e}"
                )));
            }
            CheckKind::Regex {
                column: column(&raw.column)?,
                pattern,
            }
        }
        "expression" => CheckKind::Expression {
            expression: raw
                .expression
                .clone()
                .or_else(|| raw.sql.clone())
                .ok_or_else(|| {
                    err(
                        "`expression` needs an `expression` (a SQL predicate that must hold)"
                            .into(),
                    )
                })?,
        },
        "null_rate_max" => CheckKind::NullRateMax {
            column: column(&raw.column)?,
            max_rate: fraction(raw.max_rate, "max_rate", Some(0.05))?,
        },
        "row_count_change_max" => CheckKind::RowCountChangeMax {
            max_drop: fraction(raw.max_drop, "max_drop", Some(0.2))?,
            max_growth: raw
                .max_growth
                .map(|g| fraction(Some(g), "max_growth", None))
                .transpose()?,
        },
        "freshness" => {
            let max_age = raw.max_age.clone().ok_or_else(|| {
                err("`freshness` needs `max_age` (e.g. \"36h\", \"2d\", \"90m\")".into())
            })?;
            let max_age_secs = parse_duration(&max_age).map_err(err)?;
            let column = match &raw.column {
                Some(_) => Some(column(&raw.column)?),
                None => None,
            };
            CheckKind::Freshness {
                column,
                max_age_secs,
                max_age,
            }
        }
        "custom_sql" => CheckKind::CustomSql {
            sql: raw.sql.clone().ok_or_else(|| {
                err("`custom_sql` needs `sql` (a query whose rows are the failures)".into())
            })?,
        },
        "unmapped_stages" => {
            let column = raw.column.clone().unwrap_or_else(|| "stage".into());
            let raw_column = raw.raw_column.clone().unwrap_or_else(|| "stage_raw".into());
            for c in [&column, &raw_column] {
                if !has_column(c) {
                    return Err(err(format!(
                        "column `{c}` is not among the dataset's columns"
                    )));
                }
            }
            CheckKind::UnmappedStages { column, raw_column }
        }
        other => {
            return Err(err(format!(
                "unknown check kind {other:?}; the kinds are: {}",
                KINDS.join(", ")
            )));
        }
    };
    let severity = match &raw.severity {
        Some(s) => s.parse().map_err(err)?,
        None => kind.default_severity(),
    };
    let name = raw.name.clone().unwrap_or_else(|| match &kind {
        CheckKind::Unique { columns } => format!("unique({})", columns.join(",")),
        CheckKind::Relationships { column, to, .. } => format!("relationships({column}->{to})"),
        k => match (k, raw.column.as_deref()) {
            (CheckKind::UnmappedStages { column, .. }, _) => format!("unmapped_stages({column})"),
            (_, Some(c)) => format!("{}({c})", k.name()),
            _ => k.name().to_string(),
        },
    });
    Ok(Check {
        dataset: schema.dataset.clone(),
        name,
        kind,
        severity,
        filter: raw.filter.clone(),
        description: raw.description.clone(),
    })
}

/// Validates the syntax of a regular expression the way DataFusion's `regexp_like` will read it.
fn regex_syntax_ok(pattern: &str) -> Result<(), String> {
    // DataFusion compiles patterns with the `regex` crate; an unbalanced group or class is
    // the common mistake, caught here before a run.
    let mut depth = 0i32;
    let mut in_class = false;
    let mut escaped = false;
    for c in pattern.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '(' if !in_class => depth += 1,
            ')' if !in_class => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced `)`".into());
                }
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced `(`".into());
    }
    if in_class {
        return Err("unterminated `[`".into());
    }
    Ok(())
}

/// `90s`, `45m`, `36h`, `2d`, `1w` → seconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like \"36h\", \"2d\" or \"90m\""))?;
    let scale = match unit.trim() {
        "s" | "sec" | "secs" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minutes" => 60.0,
        "h" | "hr" | "hrs" | "hours" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        "w" | "week" | "weeks" => 604_800.0,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (s, m, h, d or w, e.g. \"36h\")"
            ));
        }
    };
    Ok((n * scale).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(checks: &str) -> DatasetSchema {
        let text = format!(
            r#"
primary_key = ["workspace_id", "id"]
[[columns]]
name = "workspace_id"
type = "string"
nullable = false
[[columns]]
name = "id"
type = "string"
checks = [{{ check = "not_null", severity = "critical" }}]
[[columns]]
name = "stage"
type = "string"
[[columns]]
name = "stage_raw"
type = "string"
[[columns]]
name = "amount"
type = "float64"
{checks}
"#
        );
        DatasetSchema::parse(
            "staging.deals".parse().unwrap(),
            &text,
            std::path::Path::new("schemas/staging.deals.toml"),
        )
        .unwrap()
    }

    #[test]
    fn column_checks_get_their_column_and_names_default() {
        let s = schema(
            r#"
[[checks]]
check = "unique"
columns = ["workspace_id", "id"]
[[checks]]
check = "range"
column = "amount"
min = 0
[[checks]]
check = "row_count_change_max"
"#,
        );
        let checks = checks_of(&s).unwrap();
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "unique(workspace_id,id)",
                "range(amount)",
                "row_count_change_max",
                "not_null(id)"
            ]
        );
        assert_eq!(checks[3].severity, Severity::Critical);
        assert_eq!(checks[2].severity, Severity::Medium);
        assert_eq!(
            checks[2].kind,
            CheckKind::RowCountChangeMax {
                max_drop: 0.2,
                max_growth: None
            }
        );
        assert_eq!(checks[1].threshold(), ">= 0");
    }

    #[test]
    fn bad_declarations_name_file_check_and_problem() {
        let cases = [
            ("check = \"nope\"", "unknown check kind"),
            (
                "check = \"not_null\"\ncolumn = \"missing\"",
                "column `missing`",
            ),
            (
                "check = \"range\"\ncolumn = \"amount\"",
                "needs `min`, `max`",
            ),
            (
                "check = \"freshness\"\nmax_age = \"3 fortnights\"",
                "unknown unit",
            ),
            (
                "check = \"regex\"\ncolumn = \"id\"\npattern = \"(a\"",
                "unbalanced",
            ),
            (
                "check = \"not_null\"\ncolumn = \"id\"\nseverity = \"urgent\"",
                "unknown severity",
            ),
            (
                "check = \"not_null\"\ncolumn = \"id\"\ncolour = 1",
                "unknown field",
            ),
            (
                "check = \"relationships\"\ncolumn = \"id\"\nto = \"accounts\"",
                "layer.table",
            ),
        ];
        for (body, expected) in cases {
            let s = schema(&format!("[[checks]]\n{body}\n"));
            let e = checks_of(&s).unwrap_err().to_string();
            assert!(e.contains("schemas/staging.deals.toml"), "{e}");
            assert!(e.contains("check #1"), "{e}");
            assert!(e.contains(expected), "{body}: {e}");
        }
    }

    #[test]
    fn durations_and_literals() {
        assert_eq!(parse_duration("36h").unwrap(), 129_600);
        assert_eq!(parse_duration("2d").unwrap(), 172_800);
        assert_eq!(parse_duration("90m").unwrap(), 5_400);
        assert_eq!(parse_duration("1.5h").unwrap(), 5_400);
        assert!(parse_duration("soon").is_err());
        assert_eq!(Literal::Text("o'brien".into()).sql(), "'o''brien'");
        assert_eq!(Literal::Float(0.5).sql(), "0.5");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}

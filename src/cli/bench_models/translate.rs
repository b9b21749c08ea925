//! A model's SQL, mechanically rewritten from DataFusion's dialect to DuckDB's.
//!
//! The SQL is tokenized (string literals, quoted names and comments kept whole) and every
//! function call is visited, inner calls first. The rewrite table:
//!
//! | DataFusion | DuckDB | why |
//! | --- | --- | --- |
//! | `arrow_cast(x, 'Utf8')` (and other Arrow type names) | `CAST(x AS VARCHAR)` | no `arrow_cast` |
//! | `CAST(x AS TIMESTAMP)` | `CAST(CAST(x AS TIMESTAMPTZ) AS TIMESTAMP)` | DuckDB drops a text's UTC offset; DataFusion converts to UTC (the session runs in UTC) |
//! | `CAST(<double> AS BIGINT)` | `CAST(trunc(<double>) AS BIGINT)` | DuckDB rounds, DataFusion truncates (applied when `<double>` is a `CAST(.. AS DOUBLE)` or an epoch) |
//! | `date_part('epoch', x)` | `epoch(x)` | fractional seconds as a DOUBLE |
//! | `to_timestamp_seconds(x)` | `make_timestamp(CAST(x AS BIGINT) * 1000000)` | a naive UTC timestamp |
//! | `to_timestamp_millis(x)` | `make_timestamp(CAST(x AS BIGINT) * 1000)` | a naive UTC timestamp |
//! | `regexp_match(s, p)[n]` | `CASE WHEN regexp_matches(s, p) THEN regexp_extract(s, p, n) END` | null, not `''`, without a match |
//! | `regexp_like(s, p)` | `regexp_matches(s, p)` | name |
//! | `btrim(s, c)` | `trim(s, c)` | name |
//! | `make_array(..)` | `list_value(..)` | name |
//! | `first_value(x ORDER BY ..)` / `last_value` as aggregates (no `OVER`) | `first(..)` / `last(..)` | DuckDB's `first_value` is a window function only |
//! | `f(x) IGNORE NULLS OVER (..)` | `f(x IGNORE NULLS) OVER (..)` | where DuckDB takes the modifier |
//! | `uuid5(a, b, c)` | `uuid5_3(a, b, c)` | macros cannot be variadic: one per arity (1 to 5) |
//! | the name `at` | `"at"` | a reserved word in DuckDB (`AT TIME ZONE` is left alone) |
//!
//! Everything else is passed through. Session settings cover the rest: `TimeZone = 'UTC'`,
//! `default_null_order = 'nulls_last_on_asc_first_on_desc'` (DataFusion's: nulls sort as the
//! largest value) and `integer_division = true` (`/` of integers truncates, as in DataFusion).
//! revlake's UDFs are DuckDB macros ([`super::UDF_MACROS`]) under their own names, except
//! `stripe_mrr` and `jaro_winkler` (Python UDFs in the peer script). A
//! construct with no faithful translation (`stage_normalize`, `regexp_match` without an
//! index, flags or arrays) is refused naming the model file and line.

/// Words DuckDB reserves that DataFusion takes as names: quoted when used as one (`at`,
/// unless it starts `AT TIME ZONE`).
const RESERVED: &[&str] = &["at"];

/// Why a model cannot be translated.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    #[error("{path}:{line}: {what} has no DuckDB translation: {why}")]
    Unsupported {
        path: String,
        line: usize,
        what: String,
        why: &'static str,
    },
    #[error("{path}:{line}: `(` without its `)`")]
    Unbalanced { path: String, line: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Word,
    Str,
    Quoted,
    Num,
    Space,
    Comment,
    Punct,
}

#[derive(Debug, Clone, Copy)]
struct Tok<'a> {
    kind: Kind,
    text: &'a str,
    line: usize,
}

fn tokenize(sql: &str) -> Vec<Tok<'_>> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < bytes.len() {
        let start = i;
        let c = bytes[i];
        let kind = if c.is_ascii_whitespace() {
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            Kind::Space
        } else if sql[i..].starts_with("--") {
            i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n);
            Kind::Comment
        } else if sql[i..].starts_with("/*") {
            i = sql[i + 2..]
                .find("*/")
                .map_or(bytes.len(), |n| i + 2 + n + 2);
            Kind::Comment
        } else if c == b'\'' || c == b'"' {
            i += 1;
            loop {
                match bytes.get(i) {
                    None => break,
                    Some(&b) if b == c => {
                        if bytes.get(i + 1) == Some(&c) {
                            i += 2;
                        } else {
                            i += 1;
                            break;
                        }
                    }
                    Some(_) => i += 1,
                }
            }
            if c == b'\'' { Kind::Str } else { Kind::Quoted }
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] >= 0x80)
            {
                i += 1;
            }
            Kind::Word
        } else if c.is_ascii_digit() {
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                i += 1;
            }
            Kind::Num
        } else {
            i += 1;
            Kind::Punct
        };
        let text = &sql[start..i];
        out.push(Tok { kind, text, line });
        line += text.matches('\n').count();
    }
    out
}

/// Translates one model's SQL; `path` names it in errors.
pub fn translate(sql: &str, path: &str) -> Result<String, TranslateError> {
    let t = Translator {
        toks: tokenize(sql),
        path,
    };
    t.range(0, t.toks.len())
}

struct Translator<'a> {
    toks: Vec<Tok<'a>>,
    path: &'a str,
}

impl Translator<'_> {
    fn unsupported(&self, at: usize, what: &str, why: &'static str) -> TranslateError {
        TranslateError::Unsupported {
            path: self.path.to_string(),
            line: self.toks[at].line,
            what: what.to_string(),
            why,
        }
    }

    fn is(&self, i: usize, text: &str) -> bool {
        self.toks
            .get(i)
            .is_some_and(|t| t.kind == Kind::Punct && t.text == text)
    }

    /// The index of the next token at or after `i` that is not space or a comment.
    fn skip(&self, mut i: usize) -> usize {
        while i < self.toks.len() && matches!(self.toks[i].kind, Kind::Space | Kind::Comment) {
            i += 1;
        }
        i
    }

    fn word_at(&self, i: usize, word: &str) -> bool {
        self.toks
            .get(i)
            .is_some_and(|t| t.kind == Kind::Word && t.text.eq_ignore_ascii_case(word))
    }

    /// The `)` matching the `(` at `open`.
    fn close(&self, open: usize) -> Result<usize, TranslateError> {
        let mut depth = 0usize;
        for (i, t) in self.toks.iter().enumerate().skip(open) {
            if t.kind == Kind::Punct {
                match t.text {
                    "(" => depth += 1,
                    ")" => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(i);
                        }
                    }
                    _ => {}
                }
            }
        }
        Err(TranslateError::Unbalanced {
            path: self.path.to_string(),
            line: self.toks[open].line,
        })
    }

    /// The top-level comma-separated parts of `start..end`.
    fn split(&self, start: usize, end: usize) -> Vec<(usize, usize)> {
        let mut parts = Vec::new();
        let mut depth = 0i32;
        let mut from = start;
        for i in start..end {
            let t = &self.toks[i];
            if t.kind != Kind::Punct {
                continue;
            }
            match t.text {
                "(" | "[" => depth += 1,
                ")" | "]" => depth -= 1,
                "," if depth == 0 => {
                    parts.push((from, i));
                    from = i + 1;
                }
                _ => {}
            }
        }
        if from < end || !parts.is_empty() {
            parts.push((from, end));
        }
        parts
    }

    fn range(&self, start: usize, end: usize) -> Result<String, TranslateError> {
        let mut out = String::new();
        let mut i = start;
        while i < end {
            let t = self.toks[i];
            if t.kind == Kind::Word && self.is(i + 1, "(") {
                let (text, next) = self.call(i)?;
                out.push_str(&text);
                i = next;
            } else if t.kind == Kind::Word
                && RESERVED.iter().any(|r| t.text.eq_ignore_ascii_case(r))
                && !self.word_at(self.skip(i + 1), "time")
            {
                // A name DataFusion allows bare and DuckDB reserves (`x AS at`).
                out.push('"');
                out.push_str(t.text);
                out.push('"');
                i += 1;
            } else if self.is(i, "(") {
                let close = self.close(i)?;
                out.push('(');
                out.push_str(&self.range(i + 1, close)?);
                out.push(')');
                i = close + 1;
            } else {
                out.push_str(t.text);
                i += 1;
            }
        }
        Ok(out)
    }

    fn args(&self, open: usize, close: usize) -> Result<Vec<String>, TranslateError> {
        self.split(open + 1, close)
            .into_iter()
            .map(|(s, e)| self.range(s, e).map(|a| a.trim().to_string()))
            .collect()
    }

    /// The call whose name is at `at`: its DuckDB text and the index after it.
    fn call(&self, at: usize) -> Result<(String, usize), TranslateError> {
        let name = self.toks[at].text;
        let lower = name.to_ascii_lowercase();
        let open = at + 1;
        let close = self.close(open)?;
        let next = close + 1;
        let plain = |new_name: &str| -> Result<(String, usize), TranslateError> {
            Ok((
                format!("{new_name}({})", self.range(open + 1, close)?),
                next,
            ))
        };
        match lower.as_str() {
            "arrow_cast" => {
                let args = self.args(open, close)?;
                let ty = match args.get(1).map(|s| s.trim_matches('\'')) {
                    Some("Utf8" | "LargeUtf8" | "Utf8View") => "VARCHAR",
                    Some("Int64") => "BIGINT",
                    Some("Int32") => "INTEGER",
                    Some("Float64") => "DOUBLE",
                    Some("Boolean") => "BOOLEAN",
                    _ => {
                        return Err(self.unsupported(
                            at,
                            "arrow_cast",
                            "only Utf8, LargeUtf8, Utf8View, Int64, Int32, Float64 and Boolean are mapped",
                        ));
                    }
                };
                Ok((format!("CAST({} AS {ty})", args[0]), next))
            }
            "cast" => self.cast(at, open, close),
            "regexp_match" => {
                let args = self.args(open, close)?;
                if args.len() != 2 {
                    return Err(self.unsupported(
                        at,
                        "regexp_match with flags",
                        "put the flags in the pattern, e.g. (?i)",
                    ));
                }
                let index = (self.is(next, "[")
                    && self.toks.get(next + 1).is_some_and(|t| t.kind == Kind::Num)
                    && self.is(next + 2, "]"))
                .then(|| self.toks[next + 1].text);
                let Some(index) = index else {
                    return Err(self.unsupported(
                        at,
                        "regexp_match without [n]",
                        "only one capture group, taken as regexp_match(s, p)[n], is mapped",
                    ));
                };
                let (s, p) = (&args[0], &args[1]);
                Ok((
                    format!(
                        "CASE WHEN regexp_matches({s}, {p}) THEN regexp_extract({s}, {p}, {index}) END"
                    ),
                    next + 3,
                ))
            }
            "regexp_like" => plain("regexp_matches"),
            "btrim" => plain("trim"),
            "make_array" => plain("list_value"),
            "to_timestamp_seconds" | "to_timestamp_millis" => {
                let args = self.args(open, close)?;
                let micros = if lower == "to_timestamp_seconds" {
                    1_000_000
                } else {
                    1_000
                };
                Ok((
                    format!("make_timestamp(CAST({} AS BIGINT) * {micros})", args[0]),
                    next,
                ))
            }
            "date_part" => {
                let args = self.args(open, close)?;
                if args.len() == 2 && args[0].eq_ignore_ascii_case("'epoch'") {
                    Ok((format!("epoch({})", args[1]), next))
                } else {
                    plain(name)
                }
            }
            "uuid5" => {
                let n = self.split(open + 1, close).len();
                if !(1..=5).contains(&n) {
                    return Err(self.unsupported(
                        at,
                        "uuid5 of more than 5 parts",
                        "the macros are uuid5_1 .. uuid5_5",
                    ));
                }
                plain(&format!("uuid5_{n}"))
            }
            "stage_normalize" => Err(self.unsupported(
                at,
                "stage_normalize",
                "no DuckDB macro: join seeds.stage_mappings instead, as staging.deals does",
            )),
            "first_value" | "last_value" | "lag" | "lead" | "nth_value" => {
                self.window_fn(at, &lower, open, close)
            }
            _ => plain(name),
        }
    }

    fn cast(
        &self,
        at: usize,
        open: usize,
        close: usize,
    ) -> Result<(String, usize), TranslateError> {
        // The last top-level AS separates the value from the type.
        let mut depth = 0i32;
        let mut split = None;
        for i in open + 1..close {
            let t = &self.toks[i];
            if t.kind == Kind::Punct {
                match t.text {
                    "(" | "[" => depth += 1,
                    ")" | "]" => depth -= 1,
                    _ => {}
                }
            } else if depth == 0 && self.word_at(i, "as") {
                split = Some(i);
            }
        }
        let Some(split) = split else {
            return Err(self.unsupported(at, "CAST without AS", "expected CAST(x AS type)"));
        };
        let value = self.range(open + 1, split)?.trim().to_string();
        let ty: String = self.toks[split + 1..close]
            .iter()
            .map(|t| t.text)
            .collect::<String>()
            .trim()
            .to_string();
        let upper = ty.to_ascii_uppercase();
        let v = value.to_ascii_uppercase();
        let text = if upper == "TIMESTAMP" {
            format!("CAST(CAST({value} AS TIMESTAMPTZ) AS TIMESTAMP)")
        } else if matches!(upper.as_str(), "BIGINT" | "INT" | "INTEGER")
            && ((v.starts_with("CAST(") && v.ends_with("AS DOUBLE)")) || v.starts_with("EPOCH("))
        {
            format!("CAST(trunc({value}) AS {ty})")
        } else {
            format!("CAST({value} AS {ty})")
        };
        Ok((text, close + 1))
    }

    /// `first_value` and friends: `IGNORE NULLS` moved inside; `first_value` / `last_value`
    /// without `OVER` are the aggregates `first` / `last`.
    fn window_fn(
        &self,
        at: usize,
        lower: &str,
        open: usize,
        close: usize,
    ) -> Result<(String, usize), TranslateError> {
        let mut inner = self.range(open + 1, close)?;
        let mut next = close + 1;
        let a = self.skip(next);
        if (self.word_at(a, "ignore") || self.word_at(a, "respect")) && {
            let b = self.skip(a + 1);
            self.word_at(b, "nulls")
        } {
            let b = self.skip(a + 1);
            inner = format!("{inner} {} NULLS", self.toks[a].text.to_ascii_uppercase());
            next = b + 1;
        }
        // Is it a window function? Look past a FILTER (...) clause for OVER.
        let mut k = self.skip(next);
        if self.word_at(k, "filter") {
            let open = self.skip(k + 1);
            if self.is(open, "(") {
                k = self.skip(self.close(open)? + 1);
            }
        }
        let windowed = self.word_at(k, "over");
        let name = match (lower, windowed) {
            ("first_value", false) => "first",
            ("last_value", false) => "last",
            (_, false) => {
                return Err(self.unsupported(at, lower, "a window function needs OVER (...)"));
            }
            (_, true) => self.toks[at].text,
        };
        Ok((format!("{name}({inner})"), next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(sql: &str) -> String {
        translate(sql, "m.sql").unwrap()
    }

    #[test]
    fn casts_and_renames_follow_the_table() {
        assert_eq!(
            t("SELECT map([arrow_cast(u.source, 'Utf8')], [arrow_cast(x, 'Utf8')]) AS e"),
            "SELECT map([CAST(u.source AS VARCHAR)], [CAST(x AS VARCHAR)]) AS e"
        );
        assert_eq!(
            t("CAST(CAST(g.duration AS DOUBLE) AS BIGINT)"),
            "CAST(trunc(CAST(g.duration AS DOUBLE)) AS BIGINT)"
        );
        assert_eq!(
            t("CAST(CAST(date_part('epoch', s.ts) AS BIGINT) AS VARCHAR)"),
            "CAST(CAST(trunc(epoch(s.ts)) AS BIGINT) AS VARCHAR)"
        );
        assert_eq!(
            t("CAST(d.createdate AS TIMESTAMP)"),
            "CAST(CAST(d.createdate AS TIMESTAMPTZ) AS TIMESTAMP)"
        );
        assert_eq!(t("CAST(x AS VARCHAR)"), "CAST(x AS VARCHAR)");
        assert_eq!(
            t("to_timestamp_seconds(CAST(json_get(s, '/a') AS BIGINT))"),
            "make_timestamp(CAST(CAST(json_get(s, '/a') AS BIGINT) AS BIGINT) * 1000000)"
        );
        assert_eq!(
            t("to_timestamp_millis(x)"),
            "make_timestamp(CAST(x AS BIGINT) * 1000)"
        );
        assert_eq!(
            t("btrim(regexp_replace(x, '[^a-z]+', '_', 'g'), '_')"),
            "trim(regexp_replace(x, '[^a-z]+', '_', 'g'), '_')"
        );
        assert_eq!(t("uuid5(a, 'b', uuid5(c))"), "uuid5_3(a, 'b', uuid5_1(c))");
    }

    #[test]
    fn regexp_match_with_an_index_becomes_a_null_safe_extract() {
        assert_eq!(
            t("lower(regexp_match(r.subject, '(?i)\\b(sync)\\b')[1]) AS w"),
            "lower(CASE WHEN regexp_matches(r.subject, '(?i)\\b(sync)\\b') THEN regexp_extract(r.subject, '(?i)\\b(sync)\\b', 1) END) AS w"
        );
        assert_eq!(
            t("regexp_like(x, '^[0-9]+$')"),
            "regexp_matches(x, '^[0-9]+$')"
        );
    }

    #[test]
    fn window_modifiers_move_and_aggregate_first_value_is_first() {
        assert_eq!(
            t("last_value(a) IGNORE NULLS OVER (PARTITION BY w ORDER BY ts)"),
            "last_value(a IGNORE NULLS) OVER (PARTITION BY w ORDER BY ts)"
        );
        assert_eq!(
            t("first_value(d ORDER BY pos) FILTER (WHERE d IS NOT NULL) AS f"),
            "first(d ORDER BY pos) FILTER (WHERE d IS NOT NULL) AS f"
        );
        assert_eq!(
            t("first_value(r.id) OVER w AS m"),
            "first_value(r.id) OVER w AS m"
        );
    }

    #[test]
    fn names_duckdb_reserves_are_quoted() {
        assert_eq!(
            t("SELECT t AS at FROM x ORDER BY at, k"),
            "SELECT t AS \"at\" FROM x ORDER BY \"at\", k"
        );
        assert_eq!(t("x AT TIME ZONE 'UTC'"), "x AT TIME ZONE 'UTC'");
    }

    #[test]
    fn literals_comments_and_quoted_names_are_left_alone() {
        let sql = "-- arrow_cast(x, 'Utf8') here\nSELECT 'uuid5(a)' AS \"btrim(\", '''' AS q";
        assert_eq!(t(sql), sql);
    }

    #[test]
    fn untranslatable_constructs_name_the_file_and_line() {
        let e = translate("SELECT\n  stage_normalize('salesforce', s)", "t/x.sql")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("t/x.sql:2: stage_normalize has no DuckDB translation"),
            "{e}"
        );
        let e = translate("SELECT regexp_match(s, 'a(b)')", "x.sql")
            .unwrap_err()
            .to_string();
        assert!(e.contains("regexp_match without [n]"), "{e}");
        let e = translate("SELECT arrow_cast(x, 'Date32')", "x.sql")
            .unwrap_err()
            .to_string();
        assert!(e.contains("arrow_cast"), "{e}");
        let e = translate("SELECT lower(x", "x.sql")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.sql:1: `(` without its `)`"), "{e}");
    }
}

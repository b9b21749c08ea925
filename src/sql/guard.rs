//! The read-only guard: user SQL may query the lake, never change it or read other files.

use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::GenericDialect;

use super::error::{Result, SqlError};

/// Parses `sql` and returns it if it is one read-only statement; refuses anything else with a
/// message naming the statement.
pub fn check_read_only(sql: &str) -> Result<()> {
    let statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {}).map_err(|e| {
        let mut message = strip_prefix(&e.to_string());
        if !message.contains("Line:") {
            // The parser gives no position when the query ends too early.
            let lines = sql.trim_end().lines().count().max(1);
            let column = sql
                .trim_end()
                .lines()
                .last()
                .map_or(0, |l| l.chars().count())
                + 1;
            message.push_str(&format!(
                " at end of query, Line: {lines}, Column: {column}"
            ));
        }
        SqlError::Parse { message }
    })?;
    match statements.len() {
        0 => return Err(SqlError::Empty),
        1 => {}
        count => return Err(SqlError::MultipleStatements { count }),
    }
    check_statement(&statements[0])
}

fn check_statement(statement: &DfStatement) -> Result<()> {
    match statement {
        DfStatement::Statement(s) => check_sql_statement(s),
        DfStatement::Explain(e) => check_statement(&e.statement),
        DfStatement::CreateExternalTable(_) => Err(SqlError::ReadOnly {
            statement: "CREATE EXTERNAL TABLE".into(),
            why: "it reads files outside the lake",
        }),
        DfStatement::CopyTo(_) => Err(SqlError::ReadOnly {
            statement: "COPY".into(),
            why: "it writes files; use --output PATH --format FORMAT",
        }),
        DfStatement::Reset(_) => Err(SqlError::ReadOnly {
            statement: "RESET".into(),
            why: "session settings are fixed",
        }),
    }
}

fn check_sql_statement(s: &Statement) -> Result<()> {
    let name = match s {
        Statement::Query(_) => return Ok(()),
        Statement::Explain { statement, .. } => return check_sql_statement(statement),
        Statement::ExplainTable { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. } => return Ok(()),
        Statement::Insert(_) => "INSERT",
        Statement::Update { .. } => "UPDATE",
        Statement::Delete(_) => "DELETE",
        Statement::Merge { .. } => "MERGE",
        Statement::Truncate { .. } => "TRUNCATE",
        Statement::Drop { .. } => "DROP",
        Statement::CreateTable(_) => "CREATE TABLE",
        Statement::CreateView { .. } => "CREATE VIEW",
        Statement::CreateSchema { .. } => "CREATE SCHEMA",
        Statement::CreateDatabase { .. } => "CREATE DATABASE",
        Statement::CreateFunction { .. } => "CREATE FUNCTION",
        Statement::AlterTable { .. } => "ALTER TABLE",
        Statement::Copy { .. } => "COPY",
        Statement::Set(_) => "SET",
        _ => {
            let text = s.to_string();
            let head: String = text
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            return Err(SqlError::ReadOnly {
                statement: head.to_uppercase(),
                why: "it is not a query",
            });
        }
    };
    Err(SqlError::ReadOnly {
        statement: name.into(),
        why: "it would change data or settings",
    })
}

/// DataFusion prefixes parser errors with their kind; keep the message itself.
fn strip_prefix(message: &str) -> String {
    message
        .trim_start_matches("SQL error: ")
        .trim_start_matches("ParserError(\"")
        .trim_end_matches("\")")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_pass() {
        for sql in [
            "SELECT 1",
            "WITH a AS (SELECT 1 AS x) SELECT * FROM a",
            "EXPLAIN SELECT * FROM staging.deals",
            "VALUES (1), (2)",
        ] {
            check_read_only(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    #[test]
    fn writes_and_file_reads_are_refused_by_name() {
        for (sql, name) in [
            ("INSERT INTO staging.deals VALUES (1)", "INSERT"),
            ("DELETE FROM staging.deals", "DELETE"),
            ("UPDATE staging.deals SET amount = 0", "UPDATE"),
            ("DROP TABLE staging.deals", "DROP"),
            ("CREATE TABLE t AS SELECT 1", "CREATE TABLE"),
            ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
            (
                "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
                "CREATE EXTERNAL TABLE",
            ),
            ("COPY (SELECT 1) TO '/tmp/x.csv'", "COPY"),
            ("SET datafusion.execution.batch_size = 1", "SET"),
            ("EXPLAIN DELETE FROM staging.deals", "DELETE"),
        ] {
            let err = check_read_only(sql).unwrap_err().to_string();
            assert!(
                err.contains("read-only") && err.contains(name),
                "{sql}: {err}"
            );
        }
    }

    #[test]
    fn parse_errors_carry_line_and_column() {
        let err = check_read_only("SELECT *\nFROM staging.deals WHERE").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, SqlError::Parse { .. }), "{msg}");
        assert!(msg.contains("Line: 2, Column: 25"), "{msg}");
        let msg = check_read_only("SELECT id\nFROM staging.deals WHERE amount > > 1")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("Line: 2, Column: 35"), "{msg}");
    }

    #[test]
    fn several_statements_are_refused() {
        assert!(matches!(
            check_read_only("SELECT 1; SELECT 2"),
            Err(SqlError::MultipleStatements { count: 2 })
        ));
    }
}

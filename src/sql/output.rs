//! Writing query results: a text table, CSV, JSON or Parquet, to stdout or a file.

use std::io::Write;
use std::path::Path;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::dataframe::DataFrame;
use futures::StreamExt;

use super::error::{Result, SqlError};

/// Output formats of `revlake sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// A JSON array of objects.
    Json,
    /// Parquet (needs --output).
    Parquet,
}

/// Runs `df` and writes its rows in `format` to `out`; returns the row count.
///
/// Rows are streamed batch by batch (the text table excepted, which needs every row to align).
pub async fn write_result(
    df: DataFrame,
    format: Format,
    out: &mut (dyn Write + Send),
) -> Result<u64> {
    let schema: SchemaRef = std::sync::Arc::new(df.schema().as_arrow().clone());
    let mut stream = df
        .execute_stream()
        .await
        .map_err(|source| SqlError::Execution {
            source: Box::new(source),
        })?;
    let io = |e: &dyn std::fmt::Display| SqlError::Output {
        path: "output".into(),
        reason: e.to_string(),
    };
    let mut rows = 0u64;
    match format {
        Format::Table => {
            let mut batches: Vec<RecordBatch> = Vec::new();
            while let Some(b) = stream.next().await {
                let b = b.map_err(|source| SqlError::Execution {
                    source: Box::new(source),
                })?;
                rows += b.num_rows() as u64;
                batches.push(b);
            }
            let text = if batches.is_empty() {
                arrow::util::pretty::pretty_format_batches(&[RecordBatch::new_empty(schema)])
            } else {
                arrow::util::pretty::pretty_format_batches(&batches)
            }
            .map_err(|e| io(&e))?;
            writeln!(out, "{text}").map_err(|e| io(&e))?;
            writeln!(out, "{rows} row{}", if rows == 1 { "" } else { "s" }).map_err(|e| io(&e))?;
        }
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            let mut any = false;
            while let Some(b) = stream.next().await {
                let b = b.map_err(|source| SqlError::Execution {
                    source: Box::new(source),
                })?;
                rows += b.num_rows() as u64;
                w.write(&b).map_err(|e| io(&e))?;
                any = true;
            }
            if !any {
                w.write(&RecordBatch::new_empty(schema))
                    .map_err(|e| io(&e))?;
            }
        }
        Format::Json => {
            let mut w = arrow::json::ArrayWriter::new(&mut *out);
            while let Some(b) = stream.next().await {
                let b = b.map_err(|source| SqlError::Execution {
                    source: Box::new(source),
                })?;
                rows += b.num_rows() as u64;
                w.write(&b).map_err(|e| io(&e))?;
            }
            w.finish().map_err(|e| io(&e))?;
            if rows == 0 {
                write!(out, "[]").map_err(|e| io(&e))?;
            }
            writeln!(out).map_err(|e| io(&e))?;
        }
        Format::Parquet => {
            let mut w = parquet::arrow::ArrowWriter::try_new(&mut *out, schema, None)
                .map_err(|e| io(&e))?;
            while let Some(b) = stream.next().await {
                let b = b.map_err(|source| SqlError::Execution {
                    source: Box::new(source),
                })?;
                rows += b.num_rows() as u64;
                w.write(&b).map_err(|e| io(&e))?;
            }
            w.close().map_err(|e| io(&e))?;
        }
    }
    out.flush().map_err(|e| io(&e))?;
    Ok(rows)
}

/// Runs `df` into the file at `path`: written to a temporary file beside it and renamed into
/// place only when complete, so a failed query leaves no half-written file.
pub async fn write_result_to_file(df: DataFrame, format: Format, path: &Path) -> Result<u64> {
    let err = |reason: String| SqlError::Output {
        path: path.display().to_string(),
        reason,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| err(e.to_string()))?;
    let mut writer = std::io::BufWriter::new(tmp.as_file());
    let rows = match write_result(df, format, &mut writer).await {
        Ok(r) => r,
        Err(SqlError::Output { reason, .. }) => return Err(err(reason)),
        Err(e) => return Err(e),
    };
    drop(writer);
    tmp.persist(path).map_err(|e| err(e.to_string()))?;
    Ok(rows)
}

//! File imports: a CSV export lands as one raw table, typed columns inferred from every record,
//! the original record kept as JSON text in `source_data`.
//!
//! Two passes: the first infers each column's type over the whole file (so no late record can
//! contradict it), the second streams Arrow batches into one Delta commit. Records that cannot
//! be landed (a wrong field count, a value that does not parse) go to `ops.quarantine` with the
//! file, line and reason; they are counted, never silently dropped.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use datafusion::error::DataFusionError;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

use super::naming::column_names;
use super::{Result, SourceError};
use crate::lake::{DatasetRef, Lake, Layer, WorkspaceId, WriteMode};

/// Records per Arrow batch.
const BATCH_ROWS: usize = 8192;

/// How an import combines with what the raw table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportStrategy {
    /// Replace the workspace's rows with the file's.
    Replace,
    /// Upsert on the key columns.
    Merge,
    /// Add the file's rows.
    Append,
}

/// One file to land.
#[derive(Debug, Clone)]
pub struct CsvImport {
    pub path: PathBuf,
    pub dataset: DatasetRef,
    pub workspace: WorkspaceId,
    pub strategy: ImportStrategy,
    /// Key columns (landed names) for `merge`.
    pub key: Vec<String>,
    pub sync_id: String,
}

/// What an import did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportOutcome {
    pub dataset: String,
    pub file: String,
    pub rows: u64,
    pub quarantined: u64,
    pub version: i64,
}

/// The type inferred for a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Empty,
    Boolean,
    Int,
    Float,
    Date,
    Timestamp,
    Text,
}

impl Kind {
    fn of(v: &str) -> Kind {
        if v.is_empty() {
            Kind::Empty
        } else if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false") {
            Kind::Boolean
        } else if parse_int(v).is_some() {
            Kind::Int
        } else if parse_float(v).is_some() {
            Kind::Float
        } else if parse_date(v).is_some() {
            Kind::Date
        } else if parse_timestamp(v).is_some() {
            Kind::Timestamp
        } else {
            Kind::Text
        }
    }

    /// The narrowest kind holding both.
    fn join(self, other: Kind) -> Kind {
        use Kind::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Empty, b) => b,
            (a, Empty) => a,
            (Int, Float) | (Float, Int) => Float,
            (Date, Timestamp) | (Timestamp, Date) => Timestamp,
            _ => Text,
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Kind::Boolean => DataType::Boolean,
            Kind::Int => DataType::Int64,
            Kind::Float => DataType::Float64,
            Kind::Date => DataType::Date32,
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Kind::Empty | Kind::Text => DataType::Utf8,
        }
    }
}

/// Integers without leading zeros (ids such as `00123` stay text).
fn parse_int(v: &str) -> Option<i64> {
    let digits = v.strip_prefix('-').unwrap_or(v);
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    v.parse().ok()
}

fn parse_float(v: &str) -> Option<f64> {
    let digits = v.strip_prefix('-').unwrap_or(v);
    if !digits.starts_with(|c: char| c.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0."))
    {
        return None;
    }
    v.parse::<f64>().ok().filter(|f| f.is_finite())
}

fn parse_date(v: &str) -> Option<NaiveDate> {
    if v.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d").ok()
}

/// RFC 3339 (`2025-01-31T09:30:00.000Z`, offsets) or `YYYY-MM-DD HH:MM[:SS]` read as UTC.
fn parse_timestamp(v: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, f) {
            return Some(t.and_utc());
        }
    }
    None
}

fn open_csv(path: &Path) -> Result<csv::Reader<std::io::BufReader<std::fs::File>>> {
    let file = std::fs::File::open(path).map_err(|source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(std::io::BufReader::with_capacity(1 << 20, file)))
}

fn text(field: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(field)
}

/// Pass one: the header and each column's kind over every record.
fn infer(path: &Path) -> Result<(Vec<String>, Vec<Kind>)> {
    let mut reader = open_csv(path)?;
    let header: Vec<String> = reader
        .byte_headers()
        .map_err(|e| malformed(path, 1, &e))?
        .iter()
        .map(|h| text(h).trim_start_matches('\u{feff}').to_string())
        .collect();
    if header.is_empty() || header.iter().all(|h| h.is_empty()) {
        return Err(SourceError::NoHeader {
            path: path.to_path_buf(),
        });
    }
    let mut kinds = vec![Kind::Empty; header.len()];
    let mut record = csv::ByteRecord::new();
    let mut n = 0u64;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(malformed(path, n + 1, &e)),
        }
        n += 1;
        if record.len() != header.len() {
            continue;
        }
        for (k, f) in kinds.iter_mut().zip(record.iter()) {
            if *k != Kind::Text {
                *k = k.join(Kind::of(&text(f)));
            }
        }
    }
    Ok((header, kinds))
}

fn malformed(path: &Path, record: u64, e: &csv::Error) -> SourceError {
    SourceError::MalformedFile {
        path: path.to_path_buf(),
        record,
        reason: e.to_string(),
    }
}

/// A record that could not be landed.
#[derive(Debug, Clone)]
pub struct Quarantined {
    pub line: u64,
    pub reason: String,
    pub record: String,
}

/// Lands `import.path` in `import.dataset`; returns counts and the committed version.
pub async fn import_csv(lake: &Lake, import: &CsvImport) -> Result<ImportOutcome> {
    debug_assert_eq!(import.dataset.layer, Layer::Raw);
    let path = import.path.clone();
    let (header, kinds) = {
        let p = path.clone();
        tokio::task::spawn_blocking(move || infer(&p))
            .await
            .map_err(|e| SourceError::Io {
                path: path.clone(),
                source: std::io::Error::other(e),
            })??
    };
    let names = column_names(&header);
    let mut fields: Vec<Field> = names
        .iter()
        .zip(&kinds)
        .map(|(n, k)| Field::new(n, k.data_type(), true))
        .collect();
    fields.extend([
        Field::new("workspace_id", DataType::Utf8, false),
        Field::new("source_data", DataType::Utf8, false),
        Field::new(
            "_synced_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("_sync_id", DataType::Utf8, false),
        Field::new("_source_file", DataType::Utf8, false),
        Field::new("_source_record", DataType::Int64, false),
    ]);
    let schema: SchemaRef = Arc::new(Schema::new(fields));

    let (tx, rx) = tokio::sync::mpsc::channel::<datafusion::error::Result<RecordBatch>>(4);
    let quarantine = Arc::new(std::sync::Mutex::new(Vec::<Quarantined>::new()));
    let producer = {
        let (schema, path, quarantine) = (schema.clone(), path.clone(), quarantine.clone());
        let ctx = BatchContext {
            header,
            kinds,
            workspace: import.workspace.to_string(),
            sync_id: import.sync_id.clone(),
            synced_at: Utc::now().timestamp_micros(),
            file: path.display().to_string(),
        };
        tokio::task::spawn_blocking(move || produce(&path, &ctx, &schema, &tx, &quarantine))
    };
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let stream = Box::pin(RecordBatchStreamAdapter::new(schema.clone(), stream));
    let mode = match import.strategy {
        ImportStrategy::Replace => WriteMode::OverwriteWorkspace(import.workspace.clone()),
        ImportStrategy::Merge => WriteMode::Merge,
        ImportStrategy::Append => WriteMode::Append,
    };
    let written = lake
        .write(import.dataset.clone())
        .with_mode(mode)
        .with_merge_key(import.key.clone())
        .with_stream(stream)
        .with_commit_metadata("revlake.sync_id", import.sync_id.clone().into())
        .with_commit_metadata("revlake.source_file", path.display().to_string().into())
        .await;
    // The producer's own error (an unreadable or malformed file) explains a failed write best.
    let produced = producer.await.map_err(|e| SourceError::Io {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    produced?;
    let outcome = written.map_err(|source| SourceError::Lake {
        path: path.clone(),
        source,
    })?;
    let quarantined = quarantine.lock().unwrap_or_else(|p| p.into_inner()).len() as u64;
    if quarantined > 0 {
        let rows = std::mem::take(&mut *quarantine.lock().unwrap_or_else(|p| p.into_inner()));
        write_quarantine(lake, import, &rows).await?;
        crate::telemetry::rows_quarantined(
            &import.dataset.to_string(),
            quarantined,
            &path.display().to_string(),
        );
    }
    crate::telemetry::dataset_written(&import.dataset.to_string(), outcome.version, outcome.rows);
    Ok(ImportOutcome {
        dataset: import.dataset.to_string(),
        file: path.display().to_string(),
        rows: outcome.rows,
        quarantined,
        version: outcome.version,
    })
}

struct BatchContext {
    header: Vec<String>,
    kinds: Vec<Kind>,
    workspace: String,
    sync_id: String,
    synced_at: i64,
    file: String,
}

/// Pass two, on a blocking thread: reads records and sends batches; a malformed file sends an
/// error into the stream (so the write aborts uncommitted) and returns it.
fn produce(
    path: &Path,
    ctx: &BatchContext,
    schema: &SchemaRef,
    tx: &tokio::sync::mpsc::Sender<datafusion::error::Result<RecordBatch>>,
    quarantine: &std::sync::Mutex<Vec<Quarantined>>,
) -> Result<()> {
    let fail = |e: SourceError| {
        let _ = tx.blocking_send(Err(DataFusionError::External(Box::new(
            std::io::Error::other(e.to_string()),
        ))));
        Err(e)
    };
    let mut reader = match open_csv(path) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if let Err(e) = reader.byte_headers() {
        return fail(malformed(path, 1, &e));
    }
    let mut rows: Vec<(u64, csv::ByteRecord)> = Vec::with_capacity(BATCH_ROWS);
    let mut number = 0u64;
    loop {
        let mut record = csv::ByteRecord::new();
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return fail(malformed(path, number + 1, &e)),
        }
        number += 1;
        let line = record.position().map(|p| p.line()).unwrap_or(number + 1);
        if record.len() != ctx.header.len() {
            quarantine
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Quarantined {
                    line,
                    reason: format!(
                        "expected {} fields, found {}",
                        ctx.header.len(),
                        record.len()
                    ),
                    record: record
                        .iter()
                        .map(|f| text(f).into_owned())
                        .collect::<Vec<_>>()
                        .join(","),
                });
            continue;
        }
        rows.push((line, record));
        if rows.len() == BATCH_ROWS {
            let batch = build_batch(ctx, schema, &rows);
            rows.clear();
            if tx.blocking_send(batch).is_err() {
                return Ok(()); // the writer stopped; its error is reported
            }
        }
    }
    if !rows.is_empty() {
        let batch = build_batch(ctx, schema, &rows);
        let _ = tx.blocking_send(batch);
    }
    Ok(())
}

fn build_batch(
    ctx: &BatchContext,
    schema: &SchemaRef,
    rows: &[(u64, csv::ByteRecord)],
) -> datafusion::error::Result<RecordBatch> {
    let n = rows.len();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (i, kind) in ctx.kinds.iter().enumerate() {
        let values = rows.iter().map(|(_, r)| text(r.get(i).unwrap_or_default()));
        let array: ArrayRef = match kind {
            Kind::Boolean => {
                let mut b = BooleanBuilder::with_capacity(n);
                values.for_each(|v| {
                    b.append_option((!v.is_empty()).then(|| v.eq_ignore_ascii_case("true")))
                });
                Arc::new(b.finish())
            }
            Kind::Int => {
                let mut b = Int64Builder::with_capacity(n);
                values.for_each(|v| b.append_option(parse_int(&v)));
                Arc::new(b.finish())
            }
            Kind::Float => {
                let mut b = Float64Builder::with_capacity(n);
                values.for_each(|v| b.append_option(parse_float(&v)));
                Arc::new(b.finish())
            }
            Kind::Date => {
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
                let mut b = Date32Builder::with_capacity(n);
                values.for_each(|v| {
                    b.append_option(parse_date(&v).map(|d| (d - epoch).num_days() as i32))
                });
                Arc::new(b.finish())
            }
            Kind::Timestamp => {
                let mut b = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
                values.for_each(|v| {
                    b.append_option(
                        parse_timestamp(&v)
                            .or_else(|| {
                                parse_date(&v)
                                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                                    .map(|t| t.and_utc())
                            })
                            .map(|t| t.timestamp_micros()),
                    )
                });
                Arc::new(b.finish())
            }
            Kind::Empty | Kind::Text => {
                let mut b = StringBuilder::with_capacity(n, n * 16);
                values.for_each(|v| b.append_option((!v.is_empty()).then_some(v)));
                Arc::new(b.finish())
            }
        };
        columns.push(array);
    }
    let mut ws = StringBuilder::with_capacity(n, n * ctx.workspace.len());
    let mut source_data = StringBuilder::with_capacity(n, n * 256);
    let mut synced = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut sync_id = StringBuilder::with_capacity(n, n * ctx.sync_id.len());
    let mut file = StringBuilder::with_capacity(n, n * ctx.file.len());
    let mut record_no = Int64Builder::with_capacity(n);
    for (line, r) in rows {
        ws.append_value(&ctx.workspace);
        let mut obj = serde_json::Map::with_capacity(ctx.header.len());
        for (h, f) in ctx.header.iter().zip(r.iter()) {
            let v = text(f);
            obj.insert(
                h.clone(),
                if v.is_empty() {
                    serde_json::Value::Null
                } else {
                    serde_json::Value::String(v.into_owned())
                },
            );
        }
        source_data.append_value(serde_json::Value::Object(obj).to_string());
        synced.append_value(ctx.synced_at);
        sync_id.append_value(&ctx.sync_id);
        file.append_value(&ctx.file);
        record_no.append_value(*line as i64);
    }
    columns.push(Arc::new(ws.finish()));
    columns.push(Arc::new(source_data.finish()));
    columns.push(Arc::new(synced.finish()));
    columns.push(Arc::new(sync_id.finish()));
    columns.push(Arc::new(file.finish()));
    columns.push(Arc::new(record_no.finish()));
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Appends quarantined records to `ops.quarantine`.
async fn write_quarantine(lake: &Lake, import: &CsvImport, rows: &[Quarantined]) -> Result<()> {
    let dataset: DatasetRef =
        DatasetRef::new(Layer::Ops, "quarantine").map_err(|source| SourceError::Lake {
            path: import.path.clone(),
            source,
        })?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("workspace_id", DataType::Utf8, false),
        Field::new("dataset", DataType::Utf8, false),
        Field::new("sync_id", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, true),
        Field::new("line", DataType::Int64, true),
        Field::new("reason", DataType::Utf8, false),
        Field::new("record", DataType::Utf8, true),
        Field::new(
            "quarantined_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]));
    let n = rows.len();
    let now = Utc::now().timestamp_micros();
    let repeat = |s: &str| -> ArrayRef { Arc::new(arrow::array::StringArray::from(vec![s; n])) };
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            repeat(import.workspace.as_str()),
            repeat(&import.dataset.to_string()),
            repeat(&import.sync_id),
            repeat(&import.path.display().to_string()),
            Arc::new(arrow::array::Int64Array::from_iter_values(
                rows.iter().map(|r| r.line as i64),
            )),
            Arc::new(arrow::array::StringArray::from_iter_values(
                rows.iter().map(|r| r.reason.as_str()),
            )),
            Arc::new(arrow::array::StringArray::from_iter_values(
                rows.iter().map(|r| r.record.as_str()),
            )),
            Arc::new(
                arrow::array::TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC"),
            ),
        ],
    )
    .map_err(|e| SourceError::Io {
        path: import.path.clone(),
        source: std::io::Error::other(e),
    })?;
    lake.write(dataset)
        .with_batches(schema, vec![batch])
        .await
        .map_err(|source| SourceError::Lake {
            path: import.path.clone(),
            source,
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_inferred_and_joined() {
        assert_eq!(Kind::of("42"), Kind::Int);
        assert_eq!(Kind::of("0042"), Kind::Text);
        assert_eq!(Kind::of("4.5"), Kind::Float);
        assert_eq!(Kind::of("2025-01-31"), Kind::Date);
        assert_eq!(Kind::of("2025-01-31T09:30:00.000Z"), Kind::Timestamp);
        assert_eq!(Kind::of("2025-01-31 09:30"), Kind::Timestamp);
        assert_eq!(Kind::of("TRUE"), Kind::Boolean);
        assert_eq!(Kind::of("0061x00000AbCdEAAV"), Kind::Text);
        assert_eq!(Kind::Int.join(Kind::Float), Kind::Float);
        assert_eq!(Kind::Int.join(Kind::Empty), Kind::Int);
        assert_eq!(Kind::Date.join(Kind::Timestamp), Kind::Timestamp);
        assert_eq!(Kind::Int.join(Kind::Date), Kind::Text);
    }
}

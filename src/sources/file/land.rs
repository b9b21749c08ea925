//! The landing path every format shares: pass one infers each column's kind over the whole
//! file, the plan fixes each column's landed name and type (declared, existing, else inferred),
//! pass two turns records into Arrow batches of that schema and streams them to the writer.
//!
//! In pass two a record is set aside, not landed, when it has the wrong number of fields or a
//! value that does not fit its column's type (quarantined, with its line and reason), or, in a
//! merge, when it is the same as the row the table already holds (unchanged).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use arrow::array::{
    ArrayRef, BooleanArray, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::DataFusionError;

use super::error::{FileError, Result};
use super::kind::{Cell, ColumnBuilder, Kind, parse_date, parse_timestamp, timestamp_type};
use super::quarantine::Quarantined;
use super::read::{Body, Columns, Prepared, Row, ScanStep, align, json_keys, json_object};
use super::{Pass, Progress};

/// Records per Arrow batch.
pub(crate) const BATCH_ROWS: usize = 8192;
/// How often (in records) progress is reported.
const PROGRESS_EVERY: u64 = 16_384;

/// What pass one learned.
#[derive(Debug)]
pub(crate) struct Scan {
    pub columns: Columns,
    pub kinds: Vec<Kind>,
    pub records: u64,
    /// The file's own column types, when it has them (Parquet): they win over the kinds.
    pub types: Option<Vec<DataType>>,
}

/// Pass one: the columns and each one's kind over every record that has the right width.
pub(crate) fn scan(prepared: &Prepared, progress: &Progress) -> Result<Scan> {
    let mut columns = prepared
        .header
        .clone()
        .map(Columns::from_header)
        .unwrap_or_default();
    let width = prepared.header.as_ref().map(Vec::len);
    let mut kinds = vec![Kind::Empty; columns.len()];
    let mut reader = prepared.open()?;
    let mut records = 0u64;
    loop {
        let step = reader.scan_record(&mut |name, kind| {
            let i = columns.position_or_add(name);
            if i == kinds.len() {
                kinds.push(Kind::Empty);
            }
            if kinds[i] != Kind::Text {
                kinds[i] = kinds[i].join(kind);
            }
        })?;
        let record = match step {
            ScanStep::End => break,
            ScanStep::Scanned => None,
            ScanStep::Record(r) => Some(r),
        };
        records += 1;
        if records.is_multiple_of(PROGRESS_EVERY) {
            progress.report(Pass::Scan, records);
        }
        let Some(record) = record else {
            continue;
        };
        match &record.body {
            Body::Delimited(r) => {
                if Some(r.len()) != width {
                    continue;
                }
                for (k, f) in kinds.iter_mut().zip(r.iter()) {
                    if *k != Kind::Text {
                        *k = k.join(Kind::of(&super::detect::field_text(f)));
                    }
                }
            }
            Body::Object { members, .. } => {
                for (name, v) in members {
                    let i = columns.position_or_add(name);
                    if i == kinds.len() {
                        kinds.push(Kind::Empty);
                    }
                    if kinds[i] != Kind::Text {
                        kinds[i] = kinds[i].join(Cell::of_json(v).kind());
                    }
                }
            }
            Body::Cells(values) => {
                for (k, v) in kinds.iter_mut().zip(values) {
                    if *k != Kind::Text {
                        *k = k.join(Cell::of_json(v).kind());
                    }
                }
            }
        }
    }
    progress.report(Pass::Scan, records);
    Ok(Scan {
        columns,
        kinds,
        records,
        types: None,
    })
}

/// One landed column, by its position in the file.
#[derive(Debug, Clone)]
pub(crate) struct ColumnPlan {
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
}

/// Positions (in the file's columns) of the key, stage and last-modified columns of a deals
/// object, to record the stages landed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StageColumns {
    pub key: usize,
    pub stage: usize,
    pub modified: Option<usize>,
}

/// Everything pass two needs.
pub(crate) struct LandPlan {
    /// The file's column names as read (the keys of `source_data`).
    pub header: Vec<String>,
    pub columns: Vec<ColumnPlan>,
    /// Fields a delimited record or sheet row must have (`None`: JSON, any keys).
    pub width: Option<usize>,
    pub delimiter: u8,
    pub schema: SchemaRef,
    pub workspace: String,
    pub sync_id: String,
    pub synced_at: i64,
    pub file: String,
    /// Merges: the key columns' positions and, per key of the workspace's current rows, a hash
    /// of its `source_data`; a record with the same key and hash is unchanged.
    pub unchanged: Option<(Vec<usize>, HashMap<String, u64>)>,
    pub stages: Option<StageColumns>,
}

/// The columns every landed record gets besides its own.
pub(crate) fn extra_fields() -> Vec<Field> {
    vec![
        Field::new("workspace_id", DataType::Utf8, false),
        Field::new("source_data", DataType::Utf8, false),
        Field::new("_synced_at", timestamp_type(), false),
        Field::new("_sync_id", DataType::Utf8, false),
        Field::new("_source_file", DataType::Utf8, false),
        Field::new("_source_record", DataType::Int64, false),
    ]
}

/// The schema of the landed batches: the planned columns, then [`extra_fields`].
pub(crate) fn batch_schema(columns: &[ColumnPlan]) -> SchemaRef {
    let mut fields: Vec<Field> = columns
        .iter()
        .map(|c| Field::new(&c.name, c.data_type.clone(), c.nullable))
        .collect();
    fields.extend(extra_fields());
    Arc::new(Schema::new(fields))
}

/// The key of a row for diffs: its key columns' text joined by a unit separator.
pub(crate) fn key_text(row: &Row, positions: &[usize]) -> String {
    let mut key = String::new();
    for (n, p) in positions.iter().enumerate() {
        if n > 0 {
            key.push('\u{1f}');
        }
        if let Some(t) = row.cell(*p).text() {
            key.push_str(&t);
        }
    }
    key
}

pub(crate) fn text_hash(text: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// What pass two set aside or noted, besides the rows it sent.
#[derive(Debug, Default)]
pub(crate) struct Landed {
    pub quarantined: Vec<Quarantined>,
    pub unchanged: u64,
    /// (key, stage, last-modified µs) of every landed record of a deals object.
    pub stages: Vec<(String, Option<String>, Option<i64>)>,
}

type Sender = tokio::sync::mpsc::Sender<datafusion::error::Result<RecordBatch>>;

/// Pass two, on a blocking thread: reads records and sends batches; a malformed file sends an
/// error into the stream (so the write aborts uncommitted) and returns it.
pub(crate) fn produce(
    prepared: &Prepared,
    columns: &Columns,
    plan: &LandPlan,
    tx: &Sender,
    landed: &Mutex<Landed>,
    progress: &Progress,
) -> Result<()> {
    let fail = |e: FileError| {
        let _ = tx.blocking_send(Err(DataFusionError::External(Box::new(
            std::io::Error::other(e.to_string()),
        ))));
        Err(e)
    };
    let mut reader = match prepared.open() {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let keys = json_keys(&plan.header);
    let mut rows: Vec<(u64, Row)> = Vec::with_capacity(BATCH_ROWS);
    let mut read = 0u64;
    loop {
        let record = match reader.next_record() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => return fail(e),
        };
        read += 1;
        if read.is_multiple_of(PROGRESS_EVERY) {
            progress.report(Pass::Land, read);
        }
        if let Some(misfit) = misfit(&record.body, plan) {
            let quarantined = Quarantined {
                line: record.line,
                reason: misfit,
                record: record_text(&record.body, plan.delimiter),
            };
            lock(landed).quarantined.push(quarantined);
            continue;
        }
        rows.push((record.line, align(record.body, columns, &keys)));
        if rows.len() == BATCH_ROWS {
            let batch = build(plan, &keys, &rows, landed);
            rows.clear();
            if tx.blocking_send(batch).is_err() {
                return Ok(()); // the writer stopped; its error is reported
            }
        }
    }
    if !rows.is_empty() {
        let batch = build(plan, &keys, &rows, landed);
        let _ = tx.blocking_send(batch);
    }
    progress.report(Pass::Land, read);
    Ok(())
}

fn lock(landed: &Mutex<Landed>) -> std::sync::MutexGuard<'_, Landed> {
    landed.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why a record does not have the file's shape, if it does not.
fn misfit(body: &Body, plan: &LandPlan) -> Option<String> {
    let width = plan.width?;
    match body {
        Body::Delimited(r) if r.len() != width => {
            Some(format!("expected {width} fields, found {}", r.len()))
        }
        Body::Cells(values) => {
            let extra = values
                .iter()
                .enumerate()
                .skip(width)
                .find(|(_, v)| !v.is_null())?;
            Some(format!(
                "a value in column {} beyond the header's {width} columns",
                extra.0 + 1
            ))
        }
        _ => None,
    }
}

/// A record as text, for the quarantine: delimited fields joined by the delimiter, else JSON.
fn record_text(body: &Body, delimiter: u8) -> String {
    match body {
        Body::Delimited(r) => r
            .iter()
            .map(super::detect::field_text)
            .collect::<Vec<_>>()
            .join(&(delimiter as char).to_string()),
        Body::Object { members, text } => text.clone().unwrap_or_else(|| {
            let keys = json_keys(&members.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>());
            let mut out = String::new();
            json_object(
                &keys,
                members.iter().map(|(_, v)| Cell::of_json(v)),
                &mut out,
            );
            out
        }),
        Body::Cells(values) => serde_json::Value::Array(values.clone()).to_string(),
    }
}

/// One batch of `rows`, without the records that do not fit or are unchanged.
fn build(
    plan: &LandPlan,
    keys: &[String],
    rows: &[(u64, Row)],
    landed: &Mutex<Landed>,
) -> datafusion::error::Result<RecordBatch> {
    let n = rows.len();
    let mut builders: Vec<ColumnBuilder> = plan
        .columns
        .iter()
        .map(|c| ColumnBuilder::new(&c.data_type, n))
        .collect();
    let mut source_data = StringBuilder::with_capacity(n, n * 64 * plan.columns.len().max(1));
    let mut keep = Vec::with_capacity(n);
    let mut quarantined = Vec::new();
    let mut unchanged = 0u64;
    let mut text = String::new();
    for (line, row) in rows {
        let mut reasons: Vec<String> = Vec::new();
        for (i, (b, c)) in builders.iter_mut().zip(&plan.columns).enumerate() {
            let cell = row.cell(i);
            if !c.nullable && cell.text().is_none() {
                b.append_null();
                reasons.push(format!("column `{}` is empty but may not be null", c.name));
            } else if let Err(why) = b.append(&cell) {
                reasons.push(format!("column `{}`: {why}", c.name));
            }
        }
        let data: &str = match row {
            Row::Delimited(_) => {
                text.clear();
                json_object(keys, (0..keys.len()).map(|i| row.cell(i)), &mut text);
                &text
            }
            Row::Values { text, .. } => text,
        };
        source_data.append_value(data);
        if !reasons.is_empty() {
            quarantined.push(Quarantined {
                line: *line,
                reason: reasons.join("; "),
                record: match row {
                    Row::Delimited(r) => r
                        .iter()
                        .map(super::detect::field_text)
                        .collect::<Vec<_>>()
                        .join(&(plan.delimiter as char).to_string()),
                    Row::Values { text, .. } => text.clone(),
                },
            });
            keep.push(false);
            continue;
        }
        let same = plan.unchanged.as_ref().is_some_and(|(positions, current)| {
            current.get(&key_text(row, positions)) == Some(&text_hash(data))
        });
        if same {
            unchanged += 1;
        }
        keep.push(!same);
    }

    let mut columns: Vec<ArrayRef> = Vec::with_capacity(plan.schema.fields().len());
    for b in builders {
        columns.push(b.finish()?);
    }
    let mut ws = StringBuilder::with_capacity(n, n * plan.workspace.len());
    let mut synced = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut sync_id = StringBuilder::with_capacity(n, n * plan.sync_id.len());
    let mut file = StringBuilder::with_capacity(n, n * plan.file.len());
    let mut record_no = Int64Builder::with_capacity(n);
    for (line, _) in rows {
        ws.append_value(&plan.workspace);
        synced.append_value(plan.synced_at);
        sync_id.append_value(&plan.sync_id);
        file.append_value(&plan.file);
        record_no.append_value(*line as i64);
    }
    columns.push(Arc::new(ws.finish()));
    columns.push(Arc::new(source_data.finish()));
    columns.push(Arc::new(synced.finish()));
    columns.push(Arc::new(sync_id.finish()));
    columns.push(Arc::new(file.finish()));
    columns.push(Arc::new(record_no.finish()));
    let batch = RecordBatch::try_new(plan.schema.clone(), columns)?;

    {
        let mut landed = lock(landed);
        landed.quarantined.extend(quarantined);
        landed.unchanged += unchanged;
        if let Some(s) = plan.stages {
            for ((_, row), kept) in rows.iter().zip(&keep) {
                if !kept {
                    continue;
                }
                let Some(key) = row.cell(s.key).text().map(|k| k.into_owned()) else {
                    continue;
                };
                let stage = row.cell(s.stage).text().map(|t| t.into_owned());
                let modified = s
                    .modified
                    .and_then(|m| row.cell(m).text().map(|t| t.into_owned()))
                    .and_then(|t| {
                        parse_timestamp(&t).or_else(|| {
                            parse_date(&t)
                                .and_then(|d| d.and_hms_opt(0, 0, 0))
                                .map(|d| d.and_utc())
                        })
                    })
                    .map(|t| t.timestamp_micros());
                landed.stages.push((key, stage, modified));
            }
        }
    }
    if keep.iter().all(|k| *k) {
        Ok(batch)
    } else {
        Ok(arrow::compute::filter_record_batch(
            &batch,
            &BooleanArray::from(keep),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::file::detect::FileFormat;
    use crate::sources::file::detect::TextEncoding;

    fn plan_for(columns: Vec<ColumnPlan>, header: Vec<String>) -> LandPlan {
        LandPlan {
            width: Some(header.len()),
            header,
            schema: batch_schema(&columns),
            columns,
            delimiter: b',',
            workspace: "w".into(),
            sync_id: "s".into(),
            synced_at: 0,
            file: "f.csv".into(),
            unchanged: None,
            stages: None,
        }
    }

    #[test]
    fn values_that_do_not_fit_quarantine_their_record_with_line_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.csv");
        std::fs::write(&path, "Id,Amount\na,1\nb,n/a\nc\nd,4\n").unwrap();
        let prepared =
            Prepared::delimited(&path, FileFormat::Csv, TextEncoding::Utf8, b',', false).unwrap();
        let columns = Columns::from_header(prepared.header.clone().unwrap());
        let plan = plan_for(
            vec![
                ColumnPlan {
                    name: "id".into(),
                    data_type: DataType::Utf8,
                    nullable: true,
                },
                ColumnPlan {
                    name: "amount".into(),
                    data_type: DataType::Float64,
                    nullable: true,
                },
            ],
            columns.names.clone(),
        );
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let landed = Mutex::new(Landed::default());
        let producer = std::thread::spawn(move || {
            let r = produce(&prepared, &columns, &plan, &tx, &landed, &Progress::none());
            (r.is_ok(), landed.into_inner().unwrap())
        });
        let mut rows = 0;
        while let Some(b) = rx.blocking_recv() {
            rows += b.unwrap().num_rows();
        }
        let (ok, landed) = producer.join().unwrap();
        assert!(ok);
        assert_eq!(rows, 2);
        assert_eq!(
            landed.quarantined,
            vec![
                Quarantined {
                    line: 4,
                    reason: "expected 2 fields, found 1".into(),
                    record: "c".into()
                },
                Quarantined {
                    line: 3,
                    reason: "column `amount`: `n/a` is not a number".into(),
                    record: "b,n/a".into()
                },
            ]
        );
    }
}

//! Parquet files (warehouse unloads: Snowflake `COPY INTO @stage`, BigQuery `EXPORT DATA`,
//! Spark and product-analytics exports): read with the parquet crate's Arrow reader, one batch
//! at a time, and landed with their own types.
//!
//! ```text
//! part files ─footers─▶ one schema, row counts (pass one: no data read)
//!            ─batches─▶ each column cast to its landed type ─▶ + source_data, _synced_at, ...
//! ```
//!
//! The landed type of a column is its Parquet type, widened to what the raw layer holds
//! ([`landed_type`]): small integers to `Int32`, `Float32` to `Float64`, any timestamp to
//! microseconds in UTC, decimals as `Decimal128`; nested columns (list, struct, map) and binary
//! land as JSON text, as nested JSON values do. A column the table (or a declared schema)
//! already types is cast to that type; a value the cast cannot carry quarantines its record.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::compute::{CastOptions, can_cast_types, cast_with_options};
use arrow::datatypes::{DataType, FieldRef, SchemaRef};
use arrow::error::ArrowError;
use arrow::json::writer::{EncoderOptions, make_encoder};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::error::DataFusionError;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::detect::is_gzip;
use super::error::{FileError, Result};
use super::kind::{Kind, parse_date, parse_timestamp, timestamp_type, type_phrase};
use super::land::{BATCH_ROWS, LandPlan, Landed, Scan, text_hash};
use super::quarantine::Quarantined;
use super::read::{Columns, json_keys};
use super::{Pass, Progress};

/// One part file.
#[derive(Debug)]
struct Part {
    /// Where it is read from (a decompressed copy of a `.parquet.gz`).
    local: PathBuf,
    /// The file as given, for messages and `_source_file`.
    label: String,
    /// Rows per row group.
    row_groups: Vec<u64>,
}

impl Part {
    /// Where row `row` (0-based) of the part is: its row group.
    fn place(&self, row: u64) -> String {
        let mut start = 0u64;
        for (i, n) in self.row_groups.iter().enumerate() {
            if row < start + n {
                return format!(
                    "row group {} of {}, rows {}..{}",
                    i,
                    self.row_groups.len(),
                    start + 1,
                    start + n
                );
            }
            start += n;
        }
        format!("after row {start}")
    }

    fn error(&self, place: Option<String>, reason: impl std::fmt::Display) -> FileError {
        FileError::Parquet {
            path: PathBuf::from(&self.label),
            place,
            reason: reason.to_string(),
        }
    }

    fn builder(&self) -> Result<ParquetRecordBatchReaderBuilder<std::fs::File>> {
        let file = std::fs::File::open(&self.local)
            .map_err(|e| FileError::io(Path::new(&self.label), e))?;
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| self.error(None, e))
    }
}

/// The Parquet files of one import (one, or the parts of an unload), read through their
/// footers: all have the same columns.
pub(crate) struct ParquetParts {
    parts: Vec<Part>,
    schema: SchemaRef,
    records: u64,
    /// Decompressed copies of gzipped parts, deleted when dropped.
    _temps: Vec<tempfile::NamedTempFile>,
}

impl std::fmt::Debug for ParquetParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetParts")
            .field("parts", &self.parts)
            .field("records", &self.records)
            .finish()
    }
}

impl ParquetParts {
    /// Reads the footers of `files` (local path, name as given); refuses a file that is not
    /// Parquet, and a part whose columns differ from the first's.
    pub(crate) fn open(files: &[(PathBuf, String)]) -> Result<Self> {
        let mut parts = Vec::with_capacity(files.len());
        let mut temps = Vec::new();
        let mut schema: Option<(SchemaRef, String)> = None;
        let mut records = 0u64;
        for (path, label) in files {
            let local = if is_gzip(path)? {
                let temp = gunzip_to_temp(path, label)?;
                let local = temp.path().to_path_buf();
                temps.push(temp);
                local
            } else {
                path.clone()
            };
            let mut part = Part {
                local,
                label: label.clone(),
                row_groups: Vec::new(),
            };
            let builder = part.builder()?;
            part.row_groups = builder
                .metadata()
                .row_groups()
                .iter()
                .map(|g| g.num_rows().max(0) as u64)
                .collect();
            records += part.row_groups.iter().sum::<u64>();
            let this = builder.schema().clone();
            match &schema {
                None => schema = Some((this, label.clone())),
                Some((first, first_label)) => {
                    if signature(first) != signature(&this) {
                        return Err(FileError::Parts {
                            path: PathBuf::from(label),
                            reason: format!(
                                "its columns ({}) differ from those of {first_label} ({}): the parts of one import must have the same columns",
                                describe(&this),
                                describe(first)
                            ),
                        });
                    }
                }
            }
            parts.push(part);
        }
        let Some((schema, _)) = schema else {
            return Err(FileError::internal("reading Parquet", "no files given"));
        };
        Ok(ParquetParts {
            parts,
            schema,
            records,
            _temps: temps,
        })
    }

    /// The column names, in order.
    pub(crate) fn header(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// Pass one, from the footers: the columns, their landed types and the row count.
    pub(crate) fn scan(&self, progress: &Progress) -> Scan {
        let header = self.header();
        progress.report(Pass::Scan, self.records);
        Scan {
            kinds: vec![Kind::Empty; header.len()],
            columns: Columns::from_header(header),
            records: self.records,
            types: Some(
                self.schema
                    .fields()
                    .iter()
                    .map(|f| landed_type(f.data_type()))
                    .collect(),
            ),
        }
    }

    /// Pass two, on a blocking thread: reads the parts batch by batch and sends landed batches;
    /// an unreadable batch sends an error into the stream (so the write aborts uncommitted)
    /// and returns it.
    pub(crate) fn produce(
        &self,
        plan: &LandPlan,
        tx: &tokio::sync::mpsc::Sender<datafusion::error::Result<RecordBatch>>,
        landed: &Mutex<Landed>,
        progress: &Progress,
    ) -> Result<()> {
        let fail = |e: FileError| {
            let _ = tx.blocking_send(Err(DataFusionError::External(Box::new(
                std::io::Error::other(e.to_string()),
            ))));
            Err(e)
        };
        let keys = json_keys(&plan.header);
        let several = self.parts.len() > 1;
        let mut read = 0u64;
        for part in &self.parts {
            let reader = match part.builder().and_then(|b| {
                b.with_batch_size(BATCH_ROWS)
                    .build()
                    .map_err(|e| part.error(None, e))
            }) {
                Ok(r) => r,
                Err(e) => return fail(e),
            };
            let mut reader = reader;
            let mut row = 0u64;
            loop {
                // A corrupt page must fail the import, never end the stream early (which would
                // commit the rows read so far), even if the decoder panics on it.
                let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader.next()));
                let batch = match next {
                    Ok(None) => break,
                    Ok(Some(Ok(b))) => b,
                    Ok(Some(Err(e))) => return fail(part.error(Some(part.place(row)), e)),
                    Err(_) => {
                        return fail(part.error(
                            Some(part.place(row)),
                            "the Parquet decoder failed on a corrupt page",
                        ));
                    }
                };
                let n = batch.num_rows() as u64;
                let built = match build(plan, &keys, part, several, row, &batch, landed) {
                    Ok(b) => b,
                    Err(e) => return fail(part.error(Some(part.place(row)), e)),
                };
                row += n;
                read += n;
                progress.report(Pass::Land, read);
                if tx.blocking_send(Ok(built)).is_err() {
                    return Ok(()); // the writer stopped; its error is reported
                }
            }
        }
        Ok(())
    }
}

/// A gzipped Parquet file decompressed to a temporary file (Parquet needs random access).
fn gunzip_to_temp(path: &Path, label: &str) -> Result<tempfile::NamedTempFile> {
    let shown = Path::new(label);
    let mut reader = super::detect::open_raw(path)?;
    let mut temp = tempfile::Builder::new()
        .prefix("revlake-gunzip-")
        .suffix(".parquet")
        .tempfile()
        .map_err(|e| FileError::io(shown, e))?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(|e| FileError::io(shown, e))?;
        if n == 0 {
            break;
        }
        std::io::Write::write_all(&mut temp, &buf[..n]).map_err(|e| FileError::io(shown, e))?;
    }
    Ok(temp)
}

/// Column names and landed types: what must agree between parts.
fn signature(schema: &SchemaRef) -> Vec<(String, DataType)> {
    schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), landed_type(f.data_type())))
        .collect()
}

fn describe(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The type a Parquet column (as Arrow reads it) lands as.
pub(crate) fn landed_type(t: &DataType) -> DataType {
    match t {
        DataType::Boolean => DataType::Boolean,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt8 | DataType::UInt16 => {
            DataType::Int32
        }
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        DataType::Float16 | DataType::Float32 | DataType::Float64 => DataType::Float64,
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) => {
            DataType::Decimal128(*p, *s)
        }
        DataType::Decimal256(p, s) if *p <= 38 => DataType::Decimal128(*p, *s),
        DataType::Date32 | DataType::Date64 => DataType::Date32,
        DataType::Timestamp(..) => timestamp_type(),
        DataType::Dictionary(_, v) => landed_type(v),
        _ => DataType::Utf8,
    }
}

/// Whether a column of type `t` lands as the JSON text of its values (nested, binary).
fn lands_as_json(t: &DataType) -> bool {
    match t {
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::ListView(_)
        | DataType::LargeListView(_)
        | DataType::FixedSizeList(..)
        | DataType::Struct(_)
        | DataType::Map(..)
        | DataType::Union(..)
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => true,
        DataType::Dictionary(_, v) => lands_as_json(v),
        _ => false,
    }
}

/// A column as text: JSON for nested values (a JSON string's content for binary, hex), else
/// each value's display.
fn json_text(field: &FieldRef, array: &dyn Array) -> std::result::Result<ArrayRef, ArrowError> {
    let options = EncoderOptions::default().with_explicit_nulls(true);
    let nulls = array.logical_nulls();
    let mut out = StringBuilder::with_capacity(array.len(), array.len() * 32);
    let mut encoder = make_encoder(field, array, &options)?;
    let mut buf = Vec::new();
    for r in 0..array.len() {
        if nulls.as_ref().is_some_and(|n| n.is_null(r)) {
            out.append_null();
            continue;
        }
        buf.clear();
        encoder.encode(r, &mut buf);
        if buf.first() == Some(&b'"')
            && let Ok(s) = serde_json::from_slice::<String>(&buf)
        {
            out.append_value(s);
        } else {
            out.append_value(String::from_utf8_lossy(&buf));
        }
    }
    Ok(Arc::new(out.finish()))
}

/// A column as its values' display text.
fn display_text(array: &dyn Array) -> std::result::Result<ArrayRef, ArrowError> {
    let formatter = ArrayFormatter::try_new(array, &FormatOptions::default())?;
    let nulls = array.logical_nulls();
    let mut out = StringBuilder::with_capacity(array.len(), array.len() * 16);
    for r in 0..array.len() {
        if nulls.as_ref().is_some_and(|n| n.is_null(r)) {
            out.append_null();
        } else {
            out.append_value(formatter.value(r).to_string());
        }
    }
    Ok(Arc::new(out.finish()))
}

/// `source` as a column of `target`; values that do not fit become null.
fn convert(
    source: &ArrayRef,
    field: &FieldRef,
    target: &DataType,
) -> std::result::Result<ArrayRef, ArrowError> {
    let from = source.data_type();
    if from == target {
        return Ok(source.clone());
    }
    let options = CastOptions {
        safe: true,
        ..Default::default()
    };
    let text = if lands_as_json(from) {
        json_text(field, source.as_ref())?
    } else if can_cast_types(from, target) {
        return cast_with_options(source, target, &options);
    } else {
        display_text(source.as_ref())?
    };
    if *target == DataType::Utf8 {
        Ok(text)
    } else {
        cast_with_options(&text, target, &options)
    }
}

/// One landed batch of `batch` (rows `first + 1 ..` of `part`), without the records that do
/// not fit or are unchanged.
fn build(
    plan: &LandPlan,
    keys: &[String],
    part: &Part,
    several: bool,
    first: u64,
    batch: &RecordBatch,
    landed: &Mutex<Landed>,
) -> std::result::Result<RecordBatch, ArrowError> {
    let n = batch.num_rows();
    let schema = batch.schema();
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); n];
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(plan.schema.fields().len());
    for (i, c) in plan.columns.iter().enumerate() {
        let source = batch.column(i);
        let array = convert(source, &schema.fields()[i], &c.data_type)?;
        if array.null_count() > 0 {
            let source_nulls = source.logical_nulls();
            let shown = ArrayFormatter::try_new(source.as_ref(), &FormatOptions::default())?;
            for (r, why) in reasons.iter_mut().enumerate() {
                if !array.is_null(r) {
                    continue;
                }
                if source_nulls.as_ref().is_none_or(|nb| nb.is_valid(r)) {
                    why.push(format!(
                        "column `{}`: `{}` is not {}",
                        c.name,
                        clip(&shown.value(r).to_string()),
                        type_phrase(&c.data_type)
                    ));
                } else if !c.nullable {
                    why.push(format!("column `{}` is empty but may not be null", c.name));
                }
            }
        }
        columns.push(array);
    }

    // The record as JSON text, with every column (nulls explicit).
    let options = EncoderOptions::default().with_explicit_nulls(true);
    let mut encoders = Vec::with_capacity(batch.num_columns());
    let mut fallbacks = Vec::with_capacity(batch.num_columns());
    for (f, a) in schema.fields().iter().zip(batch.columns()) {
        match make_encoder(f, a.as_ref(), &options) {
            Ok(e) => {
                encoders.push(Some(e));
                fallbacks.push(None);
            }
            Err(_) => {
                encoders.push(None);
                fallbacks.push(Some(display_text(a.as_ref())?));
            }
        }
    }
    let nulls: Vec<_> = batch.columns().iter().map(|a| a.logical_nulls()).collect();
    let mut source_data = StringBuilder::with_capacity(n, n * 64 * keys.len().max(1));
    let mut texts: Vec<String> = Vec::with_capacity(n);
    let mut buf: Vec<u8> = Vec::with_capacity(256);
    for r in 0..n {
        buf.clear();
        buf.push(b'{');
        for (i, key) in keys.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(key.as_bytes());
            if nulls[i].as_ref().is_some_and(|nb| nb.is_null(r)) {
                buf.extend_from_slice(b"null");
            } else if let Some(e) = encoders[i].as_mut() {
                e.encode(r, &mut buf);
            } else if let Some(text) = &fallbacks[i] {
                let text = text
                    .as_any()
                    .downcast_ref::<arrow::array::StringArray>()
                    .map(|s| s.value(r).to_string())
                    .unwrap_or_default();
                let mut quoted = String::new();
                super::read::push_json_string(&mut quoted, &text);
                buf.extend_from_slice(quoted.as_bytes());
            }
        }
        buf.push(b'}');
        let text = String::from_utf8_lossy(&buf).into_owned();
        source_data.append_value(&text);
        texts.push(text);
    }

    // Which records land.
    let mut keep = vec![true; n];
    let mut quarantined = Vec::new();
    let mut unchanged = 0u64;
    let key_text = match &plan.unchanged {
        Some((positions, _)) => Some(key_text_of(&columns, positions)?),
        None => None,
    };
    for r in 0..n {
        if !reasons[r].is_empty() {
            let reason = reasons[r].join("; ");
            quarantined.push(Quarantined {
                line: first + r as u64 + 1,
                reason: if several {
                    format!("{}: {reason}", part.label)
                } else {
                    reason
                },
                record: texts[r].clone(),
            });
            keep[r] = false;
            continue;
        }
        if let (Some((_, current)), Some(key)) = (&plan.unchanged, &key_text)
            && current.get(&key[r]) == Some(&text_hash(&texts[r]))
        {
            unchanged += 1;
            keep[r] = false;
        }
    }

    let mut ws = StringBuilder::with_capacity(n, n * plan.workspace.len());
    let mut synced = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut sync_id = StringBuilder::with_capacity(n, n * plan.sync_id.len());
    let mut file = StringBuilder::with_capacity(n, n * part.label.len());
    let mut record_no = Int64Builder::with_capacity(n);
    for r in 0..n {
        ws.append_value(&plan.workspace);
        synced.append_value(plan.synced_at);
        sync_id.append_value(&plan.sync_id);
        file.append_value(&part.label);
        record_no.append_value((first + r as u64 + 1) as i64);
    }
    let stage_columns = plan.stages.map(|s| {
        (
            columns[s.key].clone(),
            columns[s.stage].clone(),
            s.modified.map(|m| columns[m].clone()),
        )
    });
    columns.push(Arc::new(ws.finish()));
    columns.push(Arc::new(source_data.finish()));
    columns.push(Arc::new(synced.finish()));
    columns.push(Arc::new(sync_id.finish()));
    columns.push(Arc::new(file.finish()));
    columns.push(Arc::new(record_no.finish()));
    let out = RecordBatch::try_new(plan.schema.clone(), columns)?;

    {
        let mut landed = landed.lock().unwrap_or_else(|p| p.into_inner());
        landed.quarantined.extend(quarantined);
        landed.unchanged += unchanged;
        if let Some((key, stage, modified)) = stage_columns {
            let key = display_text(key.as_ref())?;
            let stage = display_text(stage.as_ref())?;
            let modified = modified.map(|m| display_text(m.as_ref())).transpose()?;
            let text = |a: &ArrayRef, r: usize| {
                a.as_any()
                    .downcast_ref::<arrow::array::StringArray>()
                    .filter(|s| s.is_valid(r))
                    .map(|s| s.value(r).to_string())
            };
            for (r, kept) in keep.iter().enumerate() {
                let Some(k) = text(&key, r).filter(|_| *kept) else {
                    continue;
                };
                let at = modified
                    .as_ref()
                    .and_then(|m| text(m, r))
                    .and_then(|t| {
                        parse_timestamp(&t).or_else(|| {
                            parse_date(&t)
                                .and_then(|d| d.and_hms_opt(0, 0, 0))
                                .map(|d| d.and_utc())
                        })
                    })
                    .map(|t| t.timestamp_micros());
                landed.stages.push((k, text(&stage, r), at));
            }
        }
    }
    if keep.iter().all(|k| *k) {
        Ok(out)
    } else {
        arrow::compute::filter_record_batch(&out, &BooleanArray::from(keep))
    }
}

/// Per row, the key columns' text joined by a unit separator (as [`super::land::key_text`]).
fn key_text_of(
    columns: &[ArrayRef],
    positions: &[usize],
) -> std::result::Result<Vec<String>, ArrowError> {
    let texts = positions
        .iter()
        .map(|p| display_text(columns[*p].as_ref()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let n = columns.first().map_or(0, |c| c.len());
    Ok((0..n)
        .map(|r| {
            texts
                .iter()
                .map(|t| {
                    t.as_any()
                        .downcast_ref::<arrow::array::StringArray>()
                        .filter(|s| s.is_valid(r))
                        .map(|s| s.value(r))
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join("\u{1f}")
        })
        .collect())
}

/// A value shortened for a message.
fn clip(v: &str) -> String {
    if v.chars().count() <= 40 {
        v.to_string()
    } else {
        format!("{}…", v.chars().take(40).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ListArray, StringArray, TimestampNanosecondArray};
    use arrow::datatypes::{Field, Int32Type, TimeUnit};

    #[test]
    fn parquet_types_land_widened_nested_as_text() {
        assert_eq!(landed_type(&DataType::Int16), DataType::Int32);
        assert_eq!(landed_type(&DataType::UInt32), DataType::Int64);
        assert_eq!(landed_type(&DataType::Float32), DataType::Float64);
        assert_eq!(
            landed_type(&DataType::Timestamp(TimeUnit::Nanosecond, None)),
            timestamp_type()
        );
        assert_eq!(
            landed_type(&DataType::Decimal256(38, 9)),
            DataType::Decimal128(38, 9)
        );
        assert_eq!(landed_type(&DataType::Decimal256(76, 9)), DataType::Utf8);
        assert_eq!(
            landed_type(&DataType::Dictionary(
                Box::new(DataType::Int32),
                Box::new(DataType::Utf8)
            )),
            DataType::Utf8
        );
        let list = DataType::List(Arc::new(Field::new("item", DataType::Int32, true)));
        assert_eq!(landed_type(&list), DataType::Utf8);
        assert!(lands_as_json(&list));
        assert!(lands_as_json(&DataType::Binary));
        assert!(!lands_as_json(&DataType::Utf8));
    }

    #[test]
    fn columns_convert_to_their_landed_types() {
        let list: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            None,
        ]));
        let field = Arc::new(Field::new("l", list.data_type().clone(), true));
        let text = convert(&list, &field, &DataType::Utf8).unwrap();
        let text = text.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(text.value(0), "[1,2]");
        assert!(text.is_null(1));

        let ns: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![
            1_735_810_200_123_456_789,
        ]));
        let field = Arc::new(Field::new("t", ns.data_type().clone(), true));
        let t = convert(&ns, &field, &timestamp_type()).unwrap();
        assert_eq!(
            arrow::util::display::array_value_to_string(&t, 0).unwrap(),
            "2025-01-02T09:30:00.123456Z"
        );

        // A declared type the values do not fit: null, which quarantines the record.
        let s: ArrayRef = Arc::new(StringArray::from(vec!["12", "n/a"]));
        let field = Arc::new(Field::new("s", DataType::Utf8, true));
        let i = convert(&s, &field, &DataType::Int64).unwrap();
        assert_eq!((i.is_null(0), i.is_null(1)), (false, true));
    }

    #[test]
    fn a_place_names_the_row_group() {
        let part = Part {
            local: PathBuf::from("p.parquet"),
            label: "p.parquet".into(),
            row_groups: vec![10, 10],
        };
        assert_eq!(part.place(0), "row group 0 of 2, rows 1..10");
        assert_eq!(part.place(15), "row group 1 of 2, rows 11..20");
    }

    #[test]
    fn a_file_that_is_not_parquet_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.parquet");
        std::fs::write(&path, b"PAR1 this is not parquet").unwrap();
        let err = ParquetParts::open(&[(path, "exports/bad.parquet".into())])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("exports/bad.parquet: cannot read it as Parquet"),
            "{err}"
        );
    }
}

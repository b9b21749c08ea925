//! Event logs in and out: the stage history exported as XES or CSV (one event per stage
//! entered, a deal's first stage included) for pm4py, Celonis or Disco, and any process's event
//! log (XES, XES.gz or CSV) imported as the stage history of a workspace so that the same
//! mining runs on it.
//!
//! ```text
//! staging.deal_stage_history ──export──▶ case_id, activity, timestamp, ...  (CSV)  │ <trace><event>… (XES)
//! log.xes / log.xes.gz / log.csv ──import──▶ staging.deal_stage_history rows of one workspace
//! ```

pub mod xes;

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, MapBuilder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use futures::StreamExt;

use super::encode::StrCol;
use super::error::{MiningError, Result};
use super::load::history_dataset;
use crate::lake::{AsOf, Lake, WorkspaceId, WriteMode};
use crate::project::Project;
use crate::sql::udf::record_id;
use crate::sql::{SessionOptions, SqlSession};

/// The `source` of imported history rows.
pub const EVENTLOG_SOURCE: &str = "eventlog";

/// An event-log file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventLogFormat {
    /// IEEE 1849 XES (XML); `.xes.gz` is gzip-compressed XES.
    Xes,
    /// Comma-separated, with a header.
    Csv,
}

impl EventLogFormat {
    /// The format a file name implies: `.xes`, `.xes.gz` or `.csv`.
    pub fn from_path(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        if name.ends_with(".xes") || name.ends_with(".xes.gz") {
            Some(Self::Xes)
        } else if name.ends_with(".csv") || name.ends_with(".csv.gz") {
            Some(Self::Csv)
        } else {
            None
        }
    }
}

/// One event of a log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    pub case: String,
    pub activity: String,
    /// Microseconds since the epoch, UTC.
    pub timestamp: i64,
    pub(crate) has_timestamp: bool,
    /// Other attributes (key, value as text).
    pub attributes: Vec<(String, String)>,
}

impl Event {
    pub fn new(case: &str, activity: &str, timestamp: i64) -> Self {
        Self {
            case: case.to_string(),
            activity: activity.to_string(),
            timestamp,
            has_timestamp: true,
            attributes: Vec::new(),
        }
    }
}

/// Parses a timestamp as event logs write them: RFC 3339 / xs:dateTime (with offset or `Z`),
/// `YYYY-MM-DD HH:MM:SS[.f][±HH:MM]`, the same with `T` or `/`, or a date; without an offset
/// the time is UTC. Returns microseconds since the epoch.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let s = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%#z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.timestamp_micros());
        }
    }
    let naive = s.trim_end_matches('Z');
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y/%m/%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y/%m/%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, f) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    for f in ["%Y-%m-%d", "%Y/%m/%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(naive, f) {
            return d
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc().timestamp_micros());
        }
    }
    None
}

/// Column names of a CSV log; `None` picks the first header found of the usual spellings
/// (`case_id`, `case:concept:name`, `case`; `activity`, `concept:name`; `timestamp`,
/// `time:timestamp`).
#[derive(Debug, Clone, Default)]
pub struct CsvColumns {
    pub case: Option<String>,
    pub activity: Option<String>,
    pub timestamp: Option<String>,
}

fn open_input(path: &Path) -> Result<Box<dyn BufRead>> {
    let file = std::fs::File::open(path).map_err(|source| MiningError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    Ok(if gz {
        Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::read::MultiGzDecoder::new(file),
        ))
    } else {
        Box::new(BufReader::with_capacity(1 << 16, file))
    })
}

/// Reads the events of a log file, in file order.
pub fn read_events(
    path: &Path,
    format: EventLogFormat,
    columns: &CsvColumns,
) -> Result<Vec<Event>> {
    let input = open_input(path)?;
    match format {
        EventLogFormat::Xes => xes::read_xes(input, path),
        EventLogFormat::Csv => read_csv(input, path, columns),
    }
}

fn read_csv(input: Box<dyn BufRead>, path: &Path, columns: &CsvColumns) -> Result<Vec<Event>> {
    let bad = |line: Option<u64>, reason: String| MiningError::BadEventLog {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| bad(Some(1), e.to_string()))?
        .clone();
    let find = |given: &Option<String>, defaults: &[&str], what: &str| -> Result<usize> {
        let wanted: Vec<&str> = match given {
            Some(g) => vec![g.as_str()],
            None => defaults.to_vec(),
        };
        for w in &wanted {
            if let Some(i) = headers.iter().position(|h| h.trim() == *w) {
                return Ok(i);
            }
        }
        Err(bad(
            Some(1),
            format!(
                "no {what} column: looked for {} (name it with --{what})",
                wanted
                    .iter()
                    .map(|w| format!("`{w}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    };
    let case = find(
        &columns.case,
        &["case_id", "case:concept:name", "case"],
        "case",
    )?;
    let activity = find(
        &columns.activity,
        &["activity", "concept:name", "Activity"],
        "activity",
    )?;
    let timestamp = find(
        &columns.timestamp,
        &["timestamp", "time:timestamp", "Timestamp"],
        "timestamp",
    )?;
    let mut events = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let line = n as u64 + 2;
        let record = record.map_err(|e| bad(Some(line), e.to_string()))?;
        let get = |i: usize| record.get(i).unwrap_or("").trim();
        let (c, a, t) = (get(case), get(activity), get(timestamp));
        if c.is_empty() || a.is_empty() {
            return Err(bad(Some(line), "empty case or activity".into()));
        }
        let ts = parse_timestamp(t)
            .ok_or_else(|| bad(Some(line), format!("`{t}` is not a timestamp")))?;
        let mut ev = Event::new(c, a, ts);
        for (i, h) in headers.iter().enumerate() {
            if i != case && i != activity && i != timestamp && !get(i).is_empty() {
                ev.attributes.push((h.to_string(), get(i).to_string()));
            }
        }
        events.push(ev);
    }
    Ok(events)
}

/// Orders events for landing: cases in order of first appearance, each case's events by
/// timestamp with ties in file order. Returns the positions into `events`.
pub fn case_order(events: &[Event]) -> Vec<usize> {
    let mut first: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, e) in events.iter().enumerate() {
        first.entry(e.case.as_str()).or_insert(i);
    }
    let mut order: Vec<usize> = (0..events.len()).collect();
    // Stable: equal (case, timestamp) keep file order.
    order.sort_by_key(|i| (first[events[*i].case.as_str()], events[*i].timestamp));
    order
}

/// The `staging.deal_stage_history` schema as [`import_eventlog`] writes it.
fn history_schema() -> SchemaRef {
    let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let map = DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(
                vec![
                    Field::new("keys", DataType::Utf8, false),
                    Field::new("values", DataType::Utf8, true),
                ]
                .into(),
            ),
            false,
        )),
        false,
    );
    Arc::new(Schema::new(vec![
        Field::new("workspace_id", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("source_id", DataType::Utf8, false),
        Field::new("external_ids", map, true),
        Field::new("source_data", DataType::Utf8, true),
        Field::new("created_at", ts(), true),
        Field::new("updated_at", ts(), true),
        Field::new("deal_id", DataType::Utf8, false),
        Field::new("from_stage", DataType::Utf8, true),
        Field::new("to_stage", DataType::Utf8, true),
        Field::new("to_stage_raw", DataType::Utf8, true),
        Field::new("transitioned_at", ts(), false),
        Field::new("duration_days", DataType::Float64, true),
        Field::new("trigger_activity_id", DataType::Utf8, true),
    ]))
}

/// History rows of `workspace` from `events` (in [`case_order`]): ids are UUIDv5 of the
/// workspace, `eventlog` and the event's position in the file (zero-padded, so sorting by
/// `source_id` keeps file order) or the case; activities are kept as they are.
pub fn history_batches(workspace: &WorkspaceId, events: &[Event]) -> Result<Vec<RecordBatch>> {
    let order = case_order(events);
    let ws = workspace.as_str();
    let schema = history_schema();
    let mut batches = Vec::new();
    let mut prev: Option<&Event> = None;
    for chunk in order.chunks(65_536) {
        let n = chunk.len();
        let mut ids = StringBuilder::new();
        let mut source_ids = StringBuilder::new();
        let mut external = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        let mut data = StringBuilder::new();
        let mut deal_ids = StringBuilder::new();
        let mut from = StringBuilder::new();
        let mut to = StringBuilder::new();
        let mut at = Vec::with_capacity(n);
        let mut days = Vec::with_capacity(n);
        for &i in chunk {
            let e = &events[i];
            let source_id = format!("{i:012}");
            ids.append_value(record_id(&[ws, EVENTLOG_SOURCE, &source_id]).to_string());
            external.keys().append_value(EVENTLOG_SOURCE);
            external.values().append_value(&source_id);
            external
                .append(true)
                .map_err(MiningError::arrow("external ids"))?;
            source_ids.append_value(&source_id);
            let mut json = serde_json::Map::new();
            json.insert("case".into(), e.case.clone().into());
            json.insert("activity".into(), e.activity.clone().into());
            for (k, v) in &e.attributes {
                json.insert(k.clone(), v.clone().into());
            }
            data.append_value(serde_json::Value::Object(json).to_string());
            deal_ids.append_value(record_id(&[ws, EVENTLOG_SOURCE, &e.case]).to_string());
            match prev.filter(|p| p.case == e.case) {
                Some(p) => {
                    from.append_value(&p.activity);
                    days.push(Some((e.timestamp - p.timestamp) as f64 / 86_400_000_000.0));
                }
                None => {
                    from.append_null();
                    days.push(None);
                }
            }
            to.append_value(&e.activity);
            at.push(e.timestamp);
            prev = Some(e);
        }
        let ts = || -> ArrayRef {
            Arc::new(TimestampMicrosecondArray::from(at.clone()).with_timezone("UTC"))
        };
        let to = Arc::new(to.finish());
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![ws; n])),
            Arc::new(ids.finish()),
            Arc::new(StringArray::from(vec![EVENTLOG_SOURCE; n])),
            Arc::new(source_ids.finish()),
            Arc::new(external.finish()),
            Arc::new(data.finish()),
            ts(),
            ts(),
            Arc::new(deal_ids.finish()),
            Arc::new(from.finish()),
            to.clone(),
            to,
            ts(),
            Arc::new(Float64Array::from(days)),
            Arc::new(StringArray::new_null(n)),
        ];
        // The map builder names its fields itself; take the schema's field from the array.
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields[4] = Field::new("external_ids", columns[4].data_type().clone(), true);
        let batch_schema = Arc::new(Schema::new(fields));
        batches.push(
            RecordBatch::try_new(batch_schema, columns)
                .map_err(MiningError::arrow("history rows"))?,
        );
    }
    Ok(batches)
}

/// What an import did.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportOutcome {
    pub events: u64,
    pub cases: u64,
    pub activities: u64,
    pub version: i64,
}

/// Lands the events of `path` as the stage history of `workspace` (its earlier history rows are
/// replaced), in one commit.
pub async fn import_eventlog(
    lake: &Lake,
    project: &Project,
    path: &Path,
    format: Option<EventLogFormat>,
    columns: &CsvColumns,
    workspace: &WorkspaceId,
) -> Result<ImportOutcome> {
    let format = format
        .or_else(|| EventLogFormat::from_path(path))
        .ok_or_else(|| MiningError::BadEventLog {
            path: path.to_path_buf(),
            line: None,
            reason: "cannot tell the format from the name: use --format xes|csv".into(),
        })?;
    let owned = path.to_path_buf();
    let cols = columns.clone();
    let events = tokio::task::spawn_blocking(move || read_events(&owned, format, &cols))
        .await
        .expect("the event-log reader does not panic")?;
    if events.is_empty() {
        return Err(MiningError::BadEventLog {
            path: path.to_path_buf(),
            line: None,
            reason: "the log has no events".into(),
        });
    }
    let mut cases: Vec<&str> = events.iter().map(|e| e.case.as_str()).collect();
    cases.sort_unstable();
    cases.dedup();
    let mut activities: Vec<&str> = events.iter().map(|e| e.activity.as_str()).collect();
    activities.sort_unstable();
    activities.dedup();
    let (n_cases, n_activities) = (cases.len() as u64, activities.len() as u64);
    let batches = history_batches(workspace, &events)?;
    let dataset = history_dataset();
    let schema = batches[0].schema();
    let outcome = lake
        .write(dataset.clone())
        .with_schema(project.schema(&dataset))
        .with_mode(WriteMode::OverwriteWorkspace(workspace.clone()))
        .with_batches(schema, batches)
        .with_commit_metadata("revlake.operation", "import eventlog".into())
        .with_commit_metadata("revlake.eventlog", path.display().to_string().into())
        .await?;
    Ok(ImportOutcome {
        events: events.len() as u64,
        cases: n_cases,
        activities: n_activities,
        version: outcome.version,
    })
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportOutcome {
    pub events: u64,
    pub cases: u64,
    pub path: PathBuf,
}

/// Writes the stage history (one workspace, or all) as an event log: one event per history
/// row (the stage entered, or its raw name when unmapped), cases = deals, events of a case by
/// time with ties by `source_id` (the order the history's `from_stage` follows). CSV columns:
/// `case_id, activity, timestamp` (RFC 3339, UTC), then `stage_raw, source, workspace_id`.
/// The file is written whole or not at all.
pub async fn export_eventlog(
    lake: &Lake,
    path: &Path,
    format: EventLogFormat,
    workspace: Option<&WorkspaceId>,
    as_of: Option<AsOf>,
) -> Result<ExportOutcome> {
    let session = SqlSession::open(
        lake,
        &SessionOptions {
            workspace: workspace.cloned(),
            as_of,
            seeds: None,
        },
    )
    .await?;
    let dataset = history_dataset();
    let df = session
        .query(
            "SELECT deal_id, coalesce(to_stage, to_stage_raw) AS activity, transitioned_at, \
             to_stage_raw, source, CAST(workspace_id AS VARCHAR) AS workspace_id FROM staging.deal_stage_history \
             WHERE coalesce(to_stage, to_stage_raw) IS NOT NULL \
             ORDER BY workspace_id, deal_id, transitioned_at, source_id",
        )
        .await?;
    let mut stream = df
        .execute_stream()
        .await
        .map_err(|source| MiningError::Read {
            dataset: dataset.clone(),
            source: Box::new(source),
        })?;
    let io = |source| MiningError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    let file = BufWriter::with_capacity(1 << 20, tmp.reopen().map_err(io)?);
    let mut sink = match format {
        EventLogFormat::Csv => {
            let mut w = csv::Writer::from_writer(file);
            w.write_record([
                "case_id",
                "activity",
                "timestamp",
                "stage_raw",
                "source",
                "workspace_id",
            ])
            .map_err(|e| io(e.into()))?;
            Sink::Csv(Box::new(w))
        }
        EventLogFormat::Xes => {
            Sink::Xes(xes::XesWriter::new(file, "revlake deal stage history").map_err(io)?)
        }
    };
    let (mut events, mut cases) = (0u64, 0u64);
    let mut last_case = String::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|source| MiningError::Read {
            dataset: dataset.clone(),
            source: Box::new(source),
        })?;
        let col = |i: usize, name: &'static str| {
            StrCol::new(batch.column(i).as_ref()).ok_or_else(|| MiningError::BadColumn {
                dataset: dataset.clone(),
                column: name.to_string(),
                expected: "a string",
            })
        };
        let (deal, activity, raw, source, ws) = (
            col(0, "deal_id")?,
            col(1, "to_stage")?,
            col(3, "to_stage_raw")?,
            col(4, "source")?,
            col(5, "workspace_id")?,
        );
        let ts = arrow::compute::cast(
            batch.column(2),
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        )
        .map_err(MiningError::arrow("timestamps"))?;
        let ts = arrow::array::AsArray::as_primitive::<arrow::datatypes::TimestampMicrosecondType>(
            ts.as_ref(),
        );
        for i in 0..batch.num_rows() {
            let case = deal.get(i).unwrap_or("");
            let act = activity.get(i).unwrap_or("");
            let micros = ts.value(i);
            let (raw, source, ws) = (
                raw.get(i).unwrap_or(""),
                source.get(i).unwrap_or(""),
                ws.get(i).unwrap_or(""),
            );
            if case != last_case {
                cases += 1;
                last_case = case.to_string();
            }
            match &mut sink {
                Sink::Csv(w) => {
                    let time = DateTime::<Utc>::from_timestamp_micros(micros)
                        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
                        .unwrap_or_default();
                    w.write_record([case, act, time.as_str(), raw, source, ws])
                        .map_err(|e| io(e.into()))?;
                }
                Sink::Xes(w) => w
                    .event(
                        case,
                        &[("workspace_id", ws)],
                        act,
                        micros,
                        &[("stage_raw", raw), ("source", source)],
                    )
                    .map_err(io)?,
            }
            events += 1;
        }
    }
    let mut file = match sink {
        Sink::Csv(w) => w.into_inner().map_err(|e| io(e.into_error()))?,
        Sink::Xes(w) => w.finish().map_err(io)?,
    };
    file.flush().map_err(io)?;
    drop(file);
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(ExportOutcome {
        events,
        cases,
        path: path.to_path_buf(),
    })
}

enum Sink<W: Write> {
    Csv(Box<csv::Writer<W>>),
    Xes(xes::XesWriter<W>),
}

#[cfg(test)]
mod tests {
    use arrow::array::Array;

    use super::*;

    #[test]
    fn timestamps_parse_in_the_usual_spellings() {
        let z = parse_timestamp("2024-03-01T10:00:00Z").unwrap();
        assert_eq!(parse_timestamp("2024-03-01T11:00:00+01:00"), Some(z));
        assert_eq!(parse_timestamp("2024-03-01 10:00:00"), Some(z));
        assert_eq!(parse_timestamp("2024-03-01T10:00:00.000000+00:00"), Some(z));
        assert_eq!(parse_timestamp("2024-03-01 11:00:00+01:00"), Some(z));
        assert_eq!(parse_timestamp("2024/03/01 10:00"), Some(z));
        assert_eq!(parse_timestamp("2024-03-01"), Some(z - 10 * 3_600_000_000));
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn cases_keep_first_appearance_and_ties_keep_file_order() {
        let events = vec![
            Event::new("b", "x", 5),
            Event::new("a", "p", 9),
            Event::new("b", "y", 1),
            Event::new("a", "q", 9),
            Event::new("b", "z", 5),
        ];
        let order = case_order(&events);
        let names: Vec<&str> = order.iter().map(|i| events[*i].activity.as_str()).collect();
        assert_eq!(names, ["y", "x", "z", "p", "q"]);
    }

    #[test]
    fn xes_written_reads_back_with_attributes_and_escapes() {
        let mut buf = Vec::new();
        let mut w = xes::XesWriter::new(&mut buf, "t").unwrap();
        w.event(
            "c<1>",
            &[("workspace_id", "w")],
            "A & B",
            1_000_000,
            &[("k", "\"v\"")],
        )
        .unwrap();
        w.event("c<1>", &[], "C", 2_000_000, &[]).unwrap();
        w.event("c2", &[], "A & B", 3_000_000, &[]).unwrap();
        w.finish().unwrap();
        let events = xes::read_xes(std::io::Cursor::new(buf), Path::new("t.xes")).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].case, "c<1>");
        assert_eq!(events[0].activity, "A & B");
        assert_eq!(events[0].timestamp, 1_000_000);
        assert!(
            events[0]
                .attributes
                .contains(&("k".to_string(), "\"v\"".to_string()))
        );
        assert_eq!(events[2].case, "c2");
    }

    #[test]
    fn an_xes_event_without_timestamp_is_refused() {
        let text = r#"<log><trace><string key="concept:name" value="1"/>
            <event><string key="concept:name" value="a"/></event></trace></log>"#;
        let err = xes::read_xes(std::io::Cursor::new(text), Path::new("x.xes")).unwrap_err();
        assert!(err.to_string().contains("time:timestamp"), "{err}");
    }

    #[test]
    fn history_rows_chain_each_case_and_keep_foreign_activities() {
        let ws = WorkspaceId::new("p2p").unwrap();
        let events = vec![
            Event::new("1", "Create PO", 0),
            Event::new("2", "Create PO", 10),
            Event::new("1", "Approve PO", 86_400_000_000),
        ];
        let batches = history_batches(&ws, &events).unwrap();
        let b = &batches[0];
        let col = |name: &str| {
            b.column_by_name(name)
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone()
        };
        assert_eq!(col("to_stage").value(1), "Approve PO");
        assert_eq!(col("from_stage").value(1), "Create PO");
        assert!(col("from_stage").is_null(0) && col("from_stage").is_null(2));
        assert_eq!(col("source_id").value(1), "000000000002");
        let days = b
            .column_by_name("duration_days")
            .unwrap()
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(days.value(1), 1.0);
        assert_eq!(col("deal_id").value(0), col("deal_id").value(1));
    }
}

//! Reading records, one format at a time behind one trait: delimited text and NDJSON are
//! streamed from the file, a JSON document and a workbook are held in memory once and read by
//! both passes.
//!
//! Every record carries the line it starts on (the row number in a sheet), for quarantine and
//! error messages.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::detect::{FileFormat, TextEncoding, field_text, open_text};
use super::error::{FileError, Result};
use super::json::{JsonRecords, locate_records};
use super::kind::{Cell, Kind};

/// One record as read.
#[derive(Debug)]
pub(crate) struct Record {
    /// The line the record starts on (1-based; the row number in a sheet).
    pub line: u64,
    pub body: Body,
}

#[derive(Debug)]
pub(crate) enum Body {
    /// Delimited text: fields by position (UTF-8, a field that is not is read as Windows-1252).
    Delimited(csv::ByteRecord),
    /// A JSON object: its members in order, and its text when the file holds it on one line.
    Object {
        members: Vec<(String, Value)>,
        text: Option<String>,
    },
    /// A sheet row: values by position.
    Cells(Vec<Value>),
}

/// Reads the records of one file in order.
pub(crate) trait RecordReader: Send {
    /// The next record, `None` at the end; a malformed record is an error naming its line.
    fn next_record(&mut self) -> Result<Option<Record>>;

    /// Pass one: the next record, or, for JSON objects, only each member's name and kind
    /// (given to `member`), which is cheaper than building the record.
    fn scan_record(&mut self, member: &mut dyn FnMut(&str, Kind)) -> Result<ScanStep> {
        let _ = member;
        Ok(match self.next_record()? {
            Some(r) => ScanStep::Record(r),
            None => ScanStep::End,
        })
    }
}

/// What [`RecordReader::scan_record`] read.
pub(crate) enum ScanStep {
    End,
    /// A record whose members went to the callback.
    Scanned,
    Record(Record),
}

/// A file ready to be read (any number of times): how to open it, and the header when its
/// format has one.
pub(crate) struct Prepared {
    pub path: PathBuf,
    pub format: FileFormat,
    pub encoding: Option<TextEncoding>,
    pub delimiter: Option<u8>,
    /// The header of delimited text and sheets; JSON formats learn their keys in pass one.
    pub header: Option<Vec<String>>,
    /// Delimited text whose lines end with CRLF: the csv reader counts a record's line before
    /// it reads the `\n` ending the previous record, one line too low.
    crlf: bool,
    held: Held,
}

enum Held {
    Nothing,
    Json {
        text: Arc<Vec<u8>>,
        start: usize,
    },
    Sheet(Arc<Vec<(u64, Vec<Value>)>>),
    /// Part files of one import, read one after the other.
    Parts(Arc<Vec<Prepared>>),
}

impl Prepared {
    /// Delimited text (CSV, TSV): the header is read now.
    pub(crate) fn delimited(
        path: &Path,
        format: FileFormat,
        encoding: TextEncoding,
        delimiter: u8,
        crlf: bool,
    ) -> Result<Self> {
        let mut reader = csv_reader(path, encoding, delimiter)?;
        let header: Vec<String> = reader
            .byte_headers()
            .map_err(|e| csv_error(path, 1, &e))?
            .iter()
            .map(|h| field_text(h).trim_start_matches('\u{feff}').to_string())
            .collect();
        if header.iter().all(|h| h.trim().is_empty()) {
            return Err(FileError::NoHeader {
                path: path.to_path_buf(),
            });
        }
        Ok(Prepared {
            path: path.to_path_buf(),
            format,
            encoding: Some(encoding),
            delimiter: Some(delimiter),
            header: Some(header),
            crlf,
            held: Held::Nothing,
        })
    }

    pub(crate) fn ndjson(path: &Path, encoding: TextEncoding) -> Self {
        Prepared {
            path: path.to_path_buf(),
            format: FileFormat::Ndjson,
            encoding: Some(encoding),
            delimiter: None,
            header: None,
            crlf: false,
            held: Held::Nothing,
        }
    }

    /// A JSON document, read whole; its records array is located now.
    pub(crate) fn json(path: &Path, encoding: TextEncoding) -> Result<Self> {
        let mut bytes = Vec::new();
        open_text(path, encoding)?
            .read_to_end(&mut bytes)
            .map_err(|e| FileError::io(path, e))?;
        if std::str::from_utf8(&bytes).is_err() {
            // UTF-8 by its first bytes, but not throughout: read it all as Windows-1252.
            bytes = field_text(&bytes).into_owned().into_bytes();
        }
        let start = locate_records(&bytes, path)?;
        Ok(Prepared {
            path: path.to_path_buf(),
            format: FileFormat::Json,
            encoding: Some(encoding),
            delimiter: None,
            header: None,
            crlf: false,
            held: Held::Json {
                text: Arc::new(bytes),
                start,
            },
        })
    }

    /// A sheet of a workbook, read whole: the first row is the header.
    pub(crate) fn sheet(path: &Path, header: Vec<String>, rows: Vec<(u64, Vec<Value>)>) -> Self {
        Prepared {
            path: path.to_path_buf(),
            format: FileFormat::Xlsx,
            encoding: None,
            delimiter: None,
            header: Some(header),
            crlf: false,
            held: Held::Sheet(Arc::new(rows)),
        }
    }

    /// Part files of one import (an unload's `part-*.json.gz`), read in order as one file:
    /// delimited parts and sheets must have the first part's header. Lines are each part's.
    pub(crate) fn parts(mut parts: Vec<Prepared>) -> Result<Self> {
        if parts.len() == 1 {
            return Ok(parts.remove(0));
        }
        let Some(first) = parts.first() else {
            return Err(FileError::internal("reading part files", "no parts"));
        };
        for p in &parts[1..] {
            if p.header != first.header {
                return Err(FileError::Parts {
                    path: p.path.clone(),
                    reason: format!(
                        "its header ({}) differs from that of {} ({}): the parts of one import must have the same columns",
                        p.header.as_deref().unwrap_or_default().join(", "),
                        first.path.display(),
                        first.header.as_deref().unwrap_or_default().join(", "),
                    ),
                });
            }
        }
        Ok(Prepared {
            path: first.path.clone(),
            format: first.format,
            encoding: first.encoding,
            delimiter: first.delimiter,
            header: first.header.clone(),
            crlf: first.crlf,
            held: Held::Parts(Arc::new(parts)),
        })
    }

    /// A new reader from the first record.
    pub(crate) fn open(&self) -> Result<Box<dyn RecordReader>> {
        let path = &self.path;
        let encoding = self.encoding.unwrap_or(TextEncoding::Utf8);
        Ok(match (&self.held, self.format) {
            (Held::Parts(parts), _) => Box::new(PartRecords {
                parts: parts.clone(),
                next: 0,
                current: None,
            }),
            (Held::Json { text, start }, _) => {
                Box::new(JsonRecords::new(path.clone(), text.clone(), *start))
            }
            (Held::Sheet(rows), _) => Box::new(SheetRows {
                rows: rows.clone(),
                next: 0,
            }),
            (Held::Nothing, FileFormat::Ndjson) => Box::new(NdjsonRecords {
                path: path.clone(),
                reader: std::io::BufReader::with_capacity(1 << 20, open_text(path, encoding)?),
                line: 0,
                buf: Vec::new(),
            }),
            (Held::Nothing, _) => {
                let delimiter = self.delimiter.unwrap_or(b',');
                let mut reader = csv_reader(path, encoding, delimiter)?;
                reader.byte_headers().map_err(|e| csv_error(path, 1, &e))?;
                Box::new(DelimitedRecords {
                    path: path.clone(),
                    reader,
                    count: 0,
                    line_offset: u64::from(self.crlf),
                })
            }
        })
    }
}

use std::io::Read as _;

fn csv_reader(
    path: &Path,
    encoding: TextEncoding,
    delimiter: u8,
) -> Result<csv::Reader<Box<dyn std::io::Read + Send>>> {
    Ok(csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .delimiter(delimiter)
        .buffer_capacity(1 << 16)
        .from_reader(open_text(path, encoding)?))
}

fn csv_error(path: &Path, fallback_line: u64, e: &csv::Error) -> FileError {
    let line = e
        .position()
        .map(|p| p.line())
        .unwrap_or(fallback_line)
        .max(1);
    match e.kind() {
        csv::ErrorKind::Io(io) => FileError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(io.kind(), io.to_string()),
        },
        _ => FileError::Malformed {
            path: path.to_path_buf(),
            line,
            reason: format!("malformed delimited text: {e}"),
        },
    }
}

struct DelimitedRecords {
    path: PathBuf,
    reader: csv::Reader<Box<dyn std::io::Read + Send>>,
    count: u64,
    line_offset: u64,
}

impl RecordReader for DelimitedRecords {
    fn next_record(&mut self) -> Result<Option<Record>> {
        let mut record = csv::ByteRecord::new();
        match self.reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) => {
                let mut err = csv_error(&self.path, self.count + 2, &e);
                if let FileError::Malformed { line, .. } = &mut err {
                    *line += self.line_offset;
                }
                return Err(err);
            }
        }
        self.count += 1;
        let line = record
            .position()
            .map(|p| p.line() + self.line_offset)
            .unwrap_or(self.count + 1);
        Ok(Some(Record {
            line,
            body: Body::Delimited(record),
        }))
    }
}

struct NdjsonRecords {
    path: PathBuf,
    reader: std::io::BufReader<Box<dyn std::io::Read + Send>>,
    line: u64,
    buf: Vec<u8>,
}

impl NdjsonRecords {
    /// Reads the next non-blank line into `buf`; `false` at the end.
    fn next_line(&mut self) -> Result<bool> {
        loop {
            self.buf.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| FileError::io(&self.path, e))?;
            if n == 0 {
                return Ok(false);
            }
            self.line += 1;
            if !self.buf.iter().all(|b| b.is_ascii_whitespace()) {
                return Ok(true);
            }
        }
    }
}

impl RecordReader for NdjsonRecords {
    fn scan_record(&mut self, member: &mut dyn FnMut(&str, Kind)) -> Result<ScanStep> {
        if !self.next_line()? {
            return Ok(ScanStep::End);
        }
        let text = field_text(&self.buf);
        super::json::scan_object(text.trim().as_bytes(), member).map_err(|reason| {
            FileError::Malformed {
                path: self.path.clone(),
                line: self.line,
                reason,
            }
        })?;
        Ok(ScanStep::Scanned)
    }

    fn next_record(&mut self) -> Result<Option<Record>> {
        if !self.next_line()? {
            return Ok(None);
        }
        let text = field_text(&self.buf);
        let text = text.trim();
        let members =
            super::json::parse_object(text.as_bytes()).map_err(|reason| FileError::Malformed {
                path: self.path.clone(),
                line: self.line,
                reason,
            })?;
        Ok(Some(Record {
            line: self.line,
            body: Body::Object {
                members,
                text: Some(text.to_string()),
            },
        }))
    }
}

/// The records of part files, one part after the other.
struct PartRecords {
    parts: Arc<Vec<Prepared>>,
    next: usize,
    current: Option<Box<dyn RecordReader>>,
}

impl PartRecords {
    /// The reader of the part being read, `None` after the last.
    fn current(&mut self) -> Result<Option<&mut Box<dyn RecordReader>>> {
        if self.current.is_none() {
            let Some(part) = self.parts.get(self.next) else {
                return Ok(None);
            };
            self.next += 1;
            self.current = Some(part.open()?);
        }
        Ok(self.current.as_mut())
    }
}

impl RecordReader for PartRecords {
    fn next_record(&mut self) -> Result<Option<Record>> {
        while let Some(reader) = self.current()? {
            match reader.next_record()? {
                Some(r) => return Ok(Some(r)),
                None => self.current = None,
            }
        }
        Ok(None)
    }

    fn scan_record(&mut self, member: &mut dyn FnMut(&str, Kind)) -> Result<ScanStep> {
        while let Some(reader) = self.current()? {
            match reader.scan_record(member)? {
                ScanStep::End => self.current = None,
                step => return Ok(step),
            }
        }
        Ok(ScanStep::End)
    }
}

struct SheetRows {
    rows: Arc<Vec<(u64, Vec<Value>)>>,
    next: usize,
}

impl RecordReader for SheetRows {
    fn next_record(&mut self) -> Result<Option<Record>> {
        let Some((line, values)) = self.rows.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        Ok(Some(Record {
            line: *line,
            body: Body::Cells(values.clone()),
        }))
    }
}

/// The columns of a file: header names in order (JSON: keys in first-seen order).
#[derive(Debug, Clone, Default)]
pub(crate) struct Columns {
    pub names: Vec<String>,
    index: HashMap<String, usize>,
}

impl Columns {
    pub(crate) fn from_header(header: Vec<String>) -> Self {
        let mut index = HashMap::with_capacity(header.len());
        for (i, h) in header.iter().enumerate() {
            index.entry(h.clone()).or_insert(i);
        }
        Columns {
            names: header,
            index,
        }
    }

    /// The position of `name`, added at the end when new.
    pub(crate) fn position_or_add(&mut self, name: &str) -> usize {
        if let Some(i) = self.index.get(name) {
            return *i;
        }
        let i = self.names.len();
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), i);
        i
    }

    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }
}

/// A record aligned to the columns, ready to be built into a batch.
#[derive(Debug)]
pub(crate) enum Row {
    /// Fields by position; `source_data` is made from the header.
    Delimited(csv::ByteRecord),
    /// Values by column, and the record's JSON text.
    Values { values: Vec<Value>, text: String },
}

impl Row {
    /// The value of column `i`.
    pub(crate) fn cell(&self, i: usize) -> Cell<'_> {
        match self {
            Row::Delimited(r) => match r.get(i) {
                Some(f) => Cell::Text(field_text(f)),
                None => Cell::Null,
            },
            Row::Values { values, .. } => values.get(i).map_or(Cell::Null, Cell::of_json),
        }
    }
}

/// Appends `s` to `out` as a JSON string.
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// `{"key":value,...}` of `keys` (JSON-escaped, with their `:`) and `values` in order.
pub(crate) fn json_object<'a>(
    keys: &[String],
    values: impl Iterator<Item = Cell<'a>>,
    out: &mut String,
) {
    out.push('{');
    for (i, (k, v)) in keys.iter().zip(values).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        match v {
            Cell::Null => out.push_str("null"),
            Cell::Text(t) if t.is_empty() => out.push_str("null"),
            Cell::Text(t) => push_json_string(out, &t),
            Cell::Bool(b) => out.push_str(if b { "true" } else { "false" }),
            Cell::Number(n) => out.push_str(&n.to_string()),
            Cell::Nested(v) => out.push_str(&v.to_string()),
        }
    }
    out.push('}');
}

/// JSON keys as written in `source_data`: escaped, quoted, with the colon.
pub(crate) fn json_keys(names: &[String]) -> Vec<String> {
    names
        .iter()
        .map(|n| {
            let mut k = String::with_capacity(n.len() + 3);
            push_json_string(&mut k, n);
            k.push(':');
            k
        })
        .collect()
}

/// Turns a record into a row aligned to `columns` (pass two: every key is known).
pub(crate) fn align(record: Body, columns: &Columns, keys: &[String]) -> Row {
    match record {
        Body::Delimited(r) => Row::Delimited(r),
        Body::Object { members, text } => {
            let text = text.unwrap_or_else(|| {
                let mut out = String::new();
                let keys: Vec<String> =
                    json_keys(&members.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>());
                json_object(
                    &keys,
                    members.iter().map(|(_, v)| Cell::of_json(v)),
                    &mut out,
                );
                out
            });
            let mut values = vec![Value::Null; columns.len()];
            for (k, v) in members {
                if let Some(i) = columns.position(&k) {
                    values[i] = v;
                }
            }
            Row::Values { values, text }
        }
        Body::Cells(values) => {
            let mut text = String::new();
            json_object(keys, values.iter().map(Cell::of_json), &mut text);
            Row::Values { values, text }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        let mut s = String::new();
        push_json_string(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
        let v: String = serde_json::from_str(&s).unwrap();
        assert_eq!(v, "a\"b\\c\nd\u{1}é");
    }

    #[test]
    fn rows_of_objects_align_to_the_columns_and_keep_their_text() {
        let mut columns = Columns::default();
        columns.position_or_add("b");
        columns.position_or_add("a");
        let body = Body::Object {
            members: vec![
                ("a".into(), serde_json::json!(1)),
                ("b".into(), serde_json::json!({"x": [1, 2]})),
            ],
            text: None,
        };
        let row = align(body, &columns, &[]);
        let Row::Values { values, text } = &row else {
            panic!("values");
        };
        assert_eq!(values[0], serde_json::json!({"x": [1, 2]}));
        assert_eq!(text, r#"{"a":1,"b":{"x":[1,2]}}"#);
        assert_eq!(row.cell(1).text().unwrap(), "1");
        assert!(matches!(row.cell(5), Cell::Null));
    }
}

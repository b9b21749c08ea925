//! Excel workbooks (xlsx): one sheet, its first row the header, read whole into values.
//!
//! Cell types carry over: numbers (an integral float such as `5.0` as an integer), booleans,
//! text, and dates (`YYYY-MM-DD`, or `YYYY-MM-DDTHH:MM:SS` with a time of day, read as UTC).
//! Error cells (`#N/A`) land as null.

use std::path::Path;

use calamine::{Data, Reader, Xlsx};
use serde_json::Value;

use super::error::{FileError, Result};
use super::read::Prepared;

/// Reads sheet `sheet` (the first when `None`) of the workbook at `path`.
pub(crate) fn prepare(path: &Path, sheet: Option<&str>) -> Result<Prepared> {
    let file = std::fs::File::open(path).map_err(|e| FileError::io(path, e))?;
    let mut workbook: Xlsx<_> =
        Xlsx::new(std::io::BufReader::new(file)).map_err(|e| not_xlsx(path, &e))?;
    let sheets = workbook.sheet_names();
    let name = match sheet {
        Some(s) => sheets
            .iter()
            .find(|n| n.as_str() == s)
            .or_else(|| sheets.iter().find(|n| n.eq_ignore_ascii_case(s)))
            .cloned()
            .ok_or_else(|| FileError::NoSuchSheet {
                path: path.to_path_buf(),
                sheet: s.to_string(),
                sheets: sheets.clone(),
            })?,
        None => sheets.first().cloned().ok_or_else(|| FileError::NotXlsx {
            path: path.to_path_buf(),
            reason: "the workbook has no sheet".into(),
        })?,
    };
    let range = workbook
        .worksheet_range(&name)
        .map_err(|e| not_xlsx(path, &e))?;
    let first_row = range.start().map_or(0, |(r, _)| r as u64);
    let mut rows = range.rows();
    let header: Vec<String> = match rows.next() {
        Some(cells) => cells.iter().map(header_text).collect(),
        None => Vec::new(),
    };
    if header.iter().all(|h| h.trim().is_empty()) {
        return Err(FileError::NoHeader {
            path: path.to_path_buf(),
        });
    }
    let mut records = Vec::with_capacity(range.height().saturating_sub(1));
    for (i, cells) in rows.enumerate() {
        if cells.iter().all(|c| matches!(c, Data::Empty)) {
            continue;
        }
        let mut values: Vec<Value> = cells.iter().map(value).collect();
        values.resize(header.len().max(values.len()), Value::Null);
        // Excel's row number: the header is the first row of the used range.
        records.push((first_row + i as u64 + 2, values));
    }
    Ok(Prepared::sheet(path, header, records))
}

fn not_xlsx(path: &Path, e: &calamine::XlsxError) -> FileError {
    let reason = match e {
        calamine::XlsxError::Zip(z) => format!("not a zip archive ({z})"),
        other => other.to_string(),
    };
    FileError::NotXlsx {
        path: path.to_path_buf(),
        reason,
    }
}

fn header_text(cell: &Data) -> String {
    match value(cell) {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A cell as a JSON value.
pub(crate) fn value(cell: &Data) -> Value {
    match cell {
        Data::Empty | Data::Error(_) => Value::Null,
        Data::Int(i) => Value::from(*i),
        Data::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
            Value::from(*f as i64)
        }
        Data::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Data::String(s) => Value::String(s.clone()),
        Data::Bool(b) => Value::Bool(*b),
        Data::DateTime(dt) if dt.is_duration() => {
            serde_json::Number::from_f64(dt.as_f64() * 86_400.0).map_or(Value::Null, Value::Number)
        }
        Data::DateTime(dt) => {
            let (y, mo, d, h, mi, s, ms) = dt.to_ymd_hms_milli();
            Value::String(if (h, mi, s, ms) == (0, 0, 0, 0) {
                format!("{y:04}-{mo:02}-{d:02}")
            } else if ms == 0 {
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")
            } else {
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}")
            })
        }
        Data::DateTimeIso(s) | Data::DurationIso(s) => Value::String(s.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::{ExcelDateTime, ExcelDateTimeType};

    #[test]
    fn cells_become_typed_values() {
        assert_eq!(value(&Data::Float(5.0)), serde_json::json!(5));
        assert_eq!(value(&Data::Float(5.25)), serde_json::json!(5.25));
        assert_eq!(value(&Data::Int(7)), serde_json::json!(7));
        assert_eq!(value(&Data::Bool(true)), serde_json::json!(true));
        assert_eq!(value(&Data::Empty), Value::Null);
        assert_eq!(
            value(&Data::Error(calamine::CellErrorType::NA)),
            Value::Null
        );
        // 45688 = 2025-01-31 in the 1900 date system; .5 = noon.
        let day = ExcelDateTime::new(45688.0, ExcelDateTimeType::DateTime, false);
        assert_eq!(value(&Data::DateTime(day)), serde_json::json!("2025-01-31"));
        let noon = ExcelDateTime::new(45688.5, ExcelDateTimeType::DateTime, false);
        assert_eq!(
            value(&Data::DateTime(noon)),
            serde_json::json!("2025-01-31T12:00:00")
        );
    }

    #[test]
    fn a_file_that_is_not_a_zip_is_not_a_workbook() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deals.xlsx");
        std::fs::write(&path, "Id,Name\n1,a\n").unwrap();
        let err = prepare(&path, None).err().unwrap().to_string();
        assert!(
            err.contains("deals.xlsx") && err.contains("not an xlsx workbook"),
            "{err}"
        );
    }
}

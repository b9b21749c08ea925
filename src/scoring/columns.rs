//! Reading query results by column name, whatever string or number representation the engine
//! chose (views, dictionaries, integer counts).

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type};

use super::error::{Result, ScoringError};
use crate::lake::DatasetRef;
use crate::sql::{SqlError, SqlSession};

/// Runs `sql` in `session` and collects the rows.
pub(super) async fn collect(session: &SqlSession, sql: &str) -> Result<Vec<RecordBatch>> {
    let df = session.query(sql).await?;
    df.collect().await.map_err(|source| {
        ScoringError::Sql(SqlError::Execution {
            source: Box::new(source),
        })
    })
}

fn cast(
    batch: &RecordBatch,
    dataset: &DatasetRef,
    name: &str,
    to: &DataType,
    expected: &'static str,
) -> Result<ArrayRef> {
    let bad = || ScoringError::BadColumn {
        dataset: dataset.clone(),
        column: name.to_string(),
        expected,
    };
    let a = batch.column_by_name(name).ok_or_else(bad)?;
    arrow::compute::cast(a, to).map_err(|_| bad())
}

/// Column `name` as optional strings.
pub(super) fn strings(
    batch: &RecordBatch,
    dataset: &DatasetRef,
    name: &str,
) -> Result<Vec<Option<String>>> {
    let a = cast(batch, dataset, name, &DataType::Utf8, "a string")?;
    Ok(a.as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect())
}

/// Column `name` as optional `f64`.
pub(super) fn floats(
    batch: &RecordBatch,
    dataset: &DatasetRef,
    name: &str,
) -> Result<Vec<Option<f64>>> {
    let a = cast(batch, dataset, name, &DataType::Float64, "a number")?;
    Ok(a.as_primitive::<Float64Type>()
        .iter()
        .map(|v| v.filter(|x| x.is_finite()))
        .collect())
}

/// Column `name` as booleans, null as `false`.
pub(super) fn flags(batch: &RecordBatch, dataset: &DatasetRef, name: &str) -> Result<Vec<bool>> {
    let a = cast(batch, dataset, name, &DataType::Boolean, "a boolean")?;
    let b = a.as_boolean();
    Ok((0..b.len()).map(|i| b.is_valid(i) && b.value(i)).collect())
}

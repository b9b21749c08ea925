//! Reading the columns of query results the simulator needs, whatever string or number
//! representation the engine chose (views, dictionaries, integer counts).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, RecordBatch, StringArray,
};
use arrow::datatypes::DataType;

use super::error::{Result, SimulateError};
use crate::lake::DatasetRef;
use crate::sql::{SqlError, SqlSession};

/// Runs `sql` in `session` and collects the rows.
pub(super) async fn collect(session: &SqlSession, sql: &str) -> Result<Vec<RecordBatch>> {
    let df = session.query(sql).await?;
    df.collect().await.map_err(|source| {
        SimulateError::Sql(SqlError::Execution {
            source: Box::new(source),
        })
    })
}

fn column(
    batch: &RecordBatch,
    dataset: &DatasetRef,
    name: &str,
    expected: &'static str,
) -> Result<ArrayRef> {
    batch
        .column_by_name(name)
        .cloned()
        .ok_or_else(|| SimulateError::BadMartColumn {
            dataset: dataset.clone(),
            column: name.to_string(),
            expected,
        })
}

fn cast(
    array: &ArrayRef,
    to: &DataType,
    dataset: &DatasetRef,
    name: &str,
    expected: &'static str,
) -> Result<ArrayRef> {
    arrow::compute::cast(array, to).map_err(|_| SimulateError::BadMartColumn {
        dataset: dataset.clone(),
        column: name.to_string(),
        expected,
    })
}

/// Column `name` as UTF-8 strings.
pub(super) fn strings(
    batch: &RecordBatch,
    dataset: &DatasetRef,
    name: &str,
) -> Result<StringArray> {
    let a = column(batch, dataset, name, "a string")?;
    Ok(cast(&a, &DataType::Utf8, dataset, name, "a string")?
        .as_string::<i32>()
        .clone())
}

/// Column `name` as `f64`.
pub(super) fn floats(
    batch: &RecordBatch,
    dataset: &DatasetRef,
    name: &str,
) -> Result<Float64Array> {
    let a = column(batch, dataset, name, "a number")?;
    Ok(cast(&a, &DataType::Float64, dataset, name, "a number")?
        .as_primitive::<arrow::datatypes::Float64Type>()
        .clone())
}

/// Column `name` as booleans.
pub(super) fn booleans(
    batch: &RecordBatch,
    dataset: &DatasetRef,
    name: &str,
) -> Result<BooleanArray> {
    let a = column(batch, dataset, name, "a boolean")?;
    Ok(cast(&a, &DataType::Boolean, dataset, name, "a boolean")?
        .as_boolean()
        .clone())
}

/// Column `name` as lists of `f64` (one `Vec` per row; `None` for a null list).
pub(super) fn float_lists(
    batch: &RecordBatch,
    dataset: &DatasetRef,
    name: &str,
) -> Result<Vec<Option<Vec<f64>>>> {
    const EXPECTED: &str = "a list of numbers";
    let a = column(batch, dataset, name, EXPECTED)?;
    let target = DataType::List(Arc::new(arrow::datatypes::Field::new(
        "item",
        DataType::Float64,
        true,
    )));
    let list = cast(&a, &target, dataset, name, EXPECTED)?;
    let list = list.as_list::<i32>();
    Ok((0..list.len())
        .map(|i| {
            if list.is_null(i) {
                return None;
            }
            let values = list.value(i);
            let values = values.as_primitive::<arrow::datatypes::Float64Type>();
            Some(values.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
        })
        .collect())
}

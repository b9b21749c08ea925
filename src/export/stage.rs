//! Staging: a dataset version written as Parquet files under a stage location (an object-store
//! URL or a local folder), at a path fixed by workspace, dataset and version, so a re-run
//! rewrites the same files.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::error::{ExportError, Result};
use super::typemap::needs_json_text;

/// Rows per staged file: big enough for warehouse load throughput, small enough to bound
/// memory (a file is assembled in memory before it is uploaded).
pub const ROWS_PER_FILE: usize = 500_000;

/// A place staged files are written to.
#[derive(Debug, Clone)]
pub struct Stage {
    store: Arc<dyn ObjectStore>,
    /// The location as given, ending with `/`.
    url: String,
}

/// One staged file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StagedFile {
    /// Path relative to the stage root: `<workspace>/<dataset>/v<version>/part-00000.parquet`.
    pub path: String,
    /// Full location: stage URL + path.
    pub url: String,
    pub rows: u64,
    pub bytes: u64,
}

impl Stage {
    /// Opens `location`: `s3://`, `gs://`, `az://`, `file://` URLs (object-store options as the
    /// lake takes them) or a local folder, created if missing.
    pub fn open(location: &str, options: &HashMap<String, String>) -> Result<Self> {
        let fail = |reason: String| ExportError::Stage {
            dataset: "(stage)".into(),
            location: location.to_string(),
            reason,
        };
        if !location.contains("://") {
            std::fs::create_dir_all(location).map_err(|e| fail(e.to_string()))?;
            let abs = std::fs::canonicalize(location).map_err(|e| fail(e.to_string()))?;
            let store = object_store::local::LocalFileSystem::new_with_prefix(&abs)
                .map_err(|e| fail(e.to_string()))?;
            return Ok(Self {
                store: Arc::new(store),
                url: format!("{}/", abs.display().to_string().trim_end_matches('/')),
            });
        }
        let url = url::Url::parse(location).map_err(|e| fail(e.to_string()))?;
        if url.scheme() == "file" {
            let path = url
                .to_file_path()
                .map_err(|_| fail("not a local path".into()))?;
            return Self::open(&path.display().to_string(), options);
        }
        let (store, prefix) =
            object_store::parse_url_opts(&url, options.iter()).map_err(|e| fail(e.to_string()))?;
        let store: Arc<dyn ObjectStore> = Arc::from(store);
        let store: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
            store
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
        };
        Ok(Self {
            store,
            url: format!("{}/", location.trim_end_matches('/')),
        })
    }

    /// The stage root, ending with `/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Writes `stream` as Parquet files under `prefix`, maps as JSON text when `maps_as_json`
    /// (BigQuery); returns the files in order.
    pub async fn write(
        &self,
        dataset: &str,
        prefix: &str,
        mut stream: SendableRecordBatchStream,
        maps_as_json: bool,
    ) -> Result<Vec<StagedFile>> {
        let fail = |reason: String| ExportError::Stage {
            dataset: dataset.to_string(),
            location: format!("{}{prefix}", self.url),
            reason,
        };
        let schema = staged_schema(&stream.schema(), maps_as_json);
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let mut files = Vec::new();
        let mut writer: Option<(ArrowWriter<Vec<u8>>, u64)> = None;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|source| ExportError::Read {
                dataset: dataset.to_string(),
                source: Box::new(source),
            })?;
            if batch.num_rows() == 0 {
                continue;
            }
            let batch = if maps_as_json {
                maps_to_json(&batch, &schema).map_err(|e| fail(e.to_string()))?
            } else {
                batch
            };
            let (w, rows) = match writer.as_mut() {
                Some(w) => w,
                None => {
                    let w = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props.clone()))
                        .map_err(|e| fail(e.to_string()))?;
                    writer.insert((w, 0))
                }
            };
            w.write(&batch).map_err(|e| fail(e.to_string()))?;
            *rows += batch.num_rows() as u64;
            if *rows as usize >= ROWS_PER_FILE
                && let Some((w, rows)) = writer.take()
            {
                files.push(self.put(prefix, files.len(), w, rows, &fail).await?);
            }
        }
        if let Some((w, rows)) = writer.take() {
            files.push(self.put(prefix, files.len(), w, rows, &fail).await?);
        }
        if files.is_empty() {
            // An empty dataset still stages one file, so the load has a schema to read.
            let w = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props))
                .map_err(|e| fail(e.to_string()))?;
            files.push(self.put(prefix, 0, w, 0, &fail).await?);
        }
        Ok(files)
    }

    async fn put(
        &self,
        prefix: &str,
        index: usize,
        writer: ArrowWriter<Vec<u8>>,
        rows: u64,
        fail: &(dyn Fn(String) -> ExportError + Sync),
    ) -> Result<StagedFile> {
        let bytes = writer.into_inner().map_err(|e| fail(e.to_string()))?;
        let path = format!("{prefix}/part-{index:05}.parquet");
        let size = bytes.len() as u64;
        self.store
            .put(&StorePath::from(path.as_str()), bytes.into())
            .await
            .map_err(|e| fail(format!("upload of {path}: {e}")))?;
        Ok(StagedFile {
            url: format!("{}{path}", self.url),
            path,
            rows,
            bytes: size,
        })
    }
}

/// The schema of the staged files: maps (and lists of lists) become JSON text for BigQuery.
pub fn staged_schema(schema: &SchemaRef, maps_as_json: bool) -> SchemaRef {
    if !maps_as_json {
        return schema.clone();
    }
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| {
                if needs_json_text(f.data_type()) {
                    Arc::new(Field::new(f.name(), DataType::Utf8, true))
                } else {
                    f.clone()
                }
            })
            .collect::<Vec<_>>(),
    ))
}

fn maps_to_json(
    batch: &RecordBatch,
    schema: &SchemaRef,
) -> std::result::Result<RecordBatch, String> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (i, column) in batch.columns().iter().enumerate() {
        if !needs_json_text(column.data_type()) {
            columns.push(column.clone());
            continue;
        }
        let one = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                "v",
                column.data_type().clone(),
                true,
            )])),
            vec![column.clone()],
        )
        .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
            w.write(&one).map_err(|e| e.to_string())?;
            w.finish().map_err(|e| e.to_string())?;
        }
        let text = String::from_utf8(buf).map_err(|e| e.to_string())?;
        let mut out = StringBuilder::new();
        for (row, line) in text.lines().enumerate() {
            let value: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
            match value.get("v") {
                Some(v) if !v.is_null() && column.is_valid(row) => out.append_value(v.to_string()),
                _ => out.append_null(),
            }
        }
        let built = out.finish();
        if built.len() != batch.num_rows() {
            return Err(format!(
                "column {i}: JSON conversion produced {} rows for {}",
                built.len(),
                batch.num_rows()
            ));
        }
        columns.push(Arc::new(built));
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, MapBuilder, StringBuilder as SB};

    #[test]
    fn maps_become_json_text_for_bigquery() {
        let mut m = MapBuilder::new(None, SB::new(), SB::new());
        m.keys().append_value("hubspot");
        m.values().append_value("42");
        m.append(true).unwrap();
        m.append(false).unwrap();
        let map = Arc::new(m.finish()) as ArrayRef;
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("external_ids", map.data_type().clone(), true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![1, 2])), map],
        )
        .unwrap();
        let staged = staged_schema(&schema, true);
        let out = maps_to_json(&batch, &staged).unwrap();
        let col = out
            .column(1)
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        assert_eq!(col.value(0), r#"{"hubspot":"42"}"#);
        assert!(col.is_null(1));
    }
}

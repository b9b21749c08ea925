//! File imports: every format through one landing path, encodings and delimiters, object-store
//! files, type-failure quarantine, vendor header maps, import batches and rollback, stage
//! snapshots, bad input, and the commands' help.

mod batches;
mod commands;
mod encodings;
mod formats;
mod maps;
mod stores;
mod unloads;
mod xlsx;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use datafusion::prelude::SessionContext;
use revlake::lake::{DatasetRef, Lake, WorkspaceId};
use revlake::sources::file::{
    BatchFilter, BatchStatus, FileError, FileFormat, ImportOutcome, import_file, list_batches,
    rollback,
};

fn revlake(project: &Path, lake: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_revlake"))
        .arg("--project")
        .arg(project)
        .arg("--lake")
        .arg(lake)
        .args(args)
        .env_remove("REVLAKE_LAKE")
        .output()
        .expect("run revlake")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ws() -> WorkspaceId {
    WorkspaceId::new("acme").unwrap()
}

fn ds(name: &str) -> DatasetRef {
    name.parse().unwrap()
}

async fn local_lake(dir: &Path) -> Lake {
    Lake::open(&dir.join("lake").display().to_string())
        .await
        .unwrap()
}

/// Rows of `sql` over the named datasets (registered as `<layer>_<table>`), as `a,b,c` strings
/// in result order.
async fn query(lake: &Lake, datasets: &[&str], sql: &str) -> Vec<String> {
    let ctx = SessionContext::new();
    for d in datasets {
        let dataset = ds(d);
        let table = lake.load(&dataset, None).await.unwrap();
        table.update_datafusion_session(&ctx.state()).unwrap();
        ctx.register_table(
            format!("{}_{}", dataset.layer, dataset.table),
            table.table_provider().await.unwrap(),
        )
        .unwrap();
    }
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let mut out = Vec::new();
    for b in &batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = (0..b.num_columns())
                .map(|c| arrow::util::display::array_value_to_string(b.column(c), r).unwrap())
                .collect();
            out.push(cells.join(","));
        }
    }
    out
}

/// `name type` of each column of `dataset`, in order.
async fn columns(lake: &Lake, dataset: &str) -> Vec<String> {
    let table = lake.load(&ds(dataset), None).await.unwrap();
    let provider = table.table_provider().await.unwrap();
    provider
        .schema()
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()).replace("Utf8View", "Utf8"))
        .collect()
}

async fn import(lake: &Lake, path: &Path, dataset: &str) -> ImportOutcome {
    import_file(lake, path.display().to_string(), ws())
        .with_dataset(ds(dataset))
        .await
        .unwrap()
}

//! `stage_normalize(source, raw_stage)`: a CRM's own deal stage as revlake's canonical stage,
//! from the seed `stage_mappings.csv`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::utils::take_function_args;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{Text, build_text, output, output_rows, text_args};
use super::error::{Result, SeedError};

/// The seed file [`UdfSeeds::load`] reads the stage mappings from, in the seeds folder.
pub const STAGE_MAPPINGS_FILE: &str = "stage_mappings.csv";

/// Seed data the helpers need when they are registered (see [`register_with`](super::register_with)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UdfSeeds {
    stages: StageMap,
}

impl UdfSeeds {
    /// Reads [`STAGE_MAPPINGS_FILE`] from `seeds_dir`; a missing folder or file gives no
    /// mappings.
    ///
    /// The file has a header naming at least `source`, `raw_stage` and `stage` (other columns,
    /// such as `probability`, are ignored); cells are trimmed. A row with an empty cell in one
    /// of those, or that maps a (source, raw stage) already mapped to a different stage, is an
    /// error; the same mapping twice is not.
    pub fn load(seeds_dir: &Path) -> Result<Self> {
        let path = seeds_dir.join(STAGE_MAPPINGS_FILE);
        if !path.is_file() {
            return Ok(Self::default());
        }
        let csv_err = |source| SeedError::Csv {
            path: path.clone(),
            source,
        };
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_path(&path)
            .map_err(csv_err)?;
        let headers = reader.headers().map_err(csv_err)?.clone();
        let column = |column: &'static str| {
            headers
                .iter()
                .position(|h| h.eq_ignore_ascii_case(column))
                .ok_or_else(|| SeedError::MissingColumn {
                    path: path.clone(),
                    column,
                })
        };
        let columns = [column("source")?, column("raw_stage")?, column("stage")?];
        let mut map: BTreeMap<String, String> = BTreeMap::new();
        let mut first_line: HashMap<String, u64> = HashMap::new();
        for record in reader.records() {
            let record = record.map_err(csv_err)?;
            let line = record.position().map_or(0, |p| p.line());
            let mut cells = [""; 3];
            for ((cell, index), name) in
                cells
                    .iter_mut()
                    .zip(columns)
                    .zip(["source", "raw_stage", "stage"])
            {
                *cell = record.get(index).unwrap_or_default();
                if cell.is_empty() {
                    return Err(SeedError::EmptyCell {
                        path: path.clone(),
                        line,
                        column: name,
                    });
                }
            }
            let [system, raw_stage, stage] = cells;
            let mut key = String::new();
            push_key(&mut key, system, raw_stage);
            match map.get(&key) {
                Some(first) if first != stage => {
                    return Err(SeedError::Conflict {
                        path: path.clone(),
                        line,
                        system: system.into(),
                        raw_stage: raw_stage.into(),
                        stage: stage.into(),
                        first_line: first_line.get(&key).copied().unwrap_or_default(),
                        first_stage: first.as_str().into(),
                    });
                }
                Some(_) => {}
                None => {
                    first_line.insert(key.clone(), line);
                    map.insert(key, stage.to_string());
                }
            }
        }
        tracing::debug!(path = %path.display(), mappings = map.len(), "stage mappings loaded");
        Ok(Self {
            stages: StageMap(Arc::new(map)),
        })
    }

    /// These seeds with one more stage mapping (replacing one for the same source and raw stage).
    #[must_use]
    pub fn with_stage_mapping(mut self, source: &str, raw_stage: &str, stage: &str) -> Self {
        let mut key = String::new();
        push_key(&mut key, source, raw_stage);
        Arc::make_mut(&mut self.stages.0).insert(key, stage.to_string());
        self
    }

    /// The stage mappings.
    pub fn stages(&self) -> &StageMap {
        &self.stages
    }
}

/// Canonical stages by (source, raw stage), both matched case-insensitively and trimmed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct StageMap(Arc<BTreeMap<String, String>>);

impl StageMap {
    /// The canonical stage of `raw_stage` in `source`, if mapped.
    ///
    /// ```
    /// use revlake::sql::udf::UdfSeeds;
    ///
    /// let seeds = UdfSeeds::default().with_stage_mapping("salesforce", "Closed Won", "closed_won");
    /// assert_eq!(seeds.stages().get(" SalesForce", "closed won "), Some("closed_won"));
    /// assert_eq!(seeds.stages().get("hubspot", "Closed Won"), None);
    /// ```
    pub fn get(&self, source: &str, raw_stage: &str) -> Option<&str> {
        self.get_with(&mut String::new(), source, raw_stage)
    }

    /// [`get`](Self::get) building the lookup key in `key` (cleared first).
    fn get_with(&self, key: &mut String, source: &str, raw_stage: &str) -> Option<&str> {
        key.clear();
        push_key(key, source, raw_stage);
        self.0.get(key.as_str()).map(String::as_str)
    }

    /// The number of mappings.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no mappings.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Appends the lookup key of (`source`, `raw_stage`): both trimmed and lower-cased, joined by
/// the unit separator.
fn push_key(key: &mut String, source: &str, raw_stage: &str) {
    push_folded(key, source);
    key.push('\u{1f}');
    push_folded(key, raw_stage);
}

fn push_folded(out: &mut String, s: &str) {
    for c in s.trim().chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else {
            out.extend(c.to_lowercase());
        }
    }
}

/// `stage_normalize(source, raw_stage)` → Utf8: the canonical stage of a CRM's raw stage (see
/// [`StageMap::get`]), null when unmapped or either argument is null, so that a model can
/// keep and flag the raw value:
///
/// ```sql
/// SELECT coalesce(stage_normalize('salesforce', StageName), StageName) AS stage,
///        stage_normalize('salesforce', StageName) IS NULL AS stage_unmapped
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct StageNormalize {
    signature: Signature,
    stages: StageMap,
}

impl StageNormalize {
    pub(super) fn new(stages: StageMap) -> Self {
        Self {
            signature: Signature::string(2, Volatility::Immutable),
            stages,
        }
    }
}

impl ScalarUDFImpl for StageNormalize {
    fn name(&self) -> &str {
        "stage_normalize"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let number_rows = args.number_rows;
        let args = text_args(args.args)?;
        let rows = output_rows(&args, number_rows);
        let [source, raw_stage] = take_function_args(self.name(), &args)?;
        let (source, raw_stage) = (Text::new(source)?, Text::new(raw_stage)?);
        let mut key = String::new();
        let array = build_text(rows, |i, buf| {
            let (Some(source), Some(raw_stage)) = (source.get(i), raw_stage.get(i)) else {
                return false;
            };
            match self.stages.get_with(&mut key, source, raw_stage) {
                Some(stage) => {
                    buf.push_str(stage);
                    true
                }
                None => false,
            }
        });
        output(array, &args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::udf::testing::{batch_with, column_texts, texts};

    fn project_seeds() -> UdfSeeds {
        UdfSeeds::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/seeds")).unwrap()
    }

    fn seeds_file(contents: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STAGE_MAPPINGS_FILE), contents).unwrap();
        dir
    }

    #[test]
    fn the_project_seed_maps_salesforce_and_hubspot_stages() {
        let seeds = project_seeds();
        let stages = seeds.stages();
        // 10 Salesforce, 14 HubSpot (labels and internal ids), 9 Pipedrive.
        assert_eq!(stages.len(), 33);
        assert_eq!(stages.get("pipedrive", "Won"), Some("closed_won"));
        assert_eq!(stages.get("salesforce", "Closed Won"), Some("closed_won"));
        assert_eq!(
            stages.get("  SALESFORCE ", " closed won"),
            Some("closed_won")
        );
        assert_eq!(
            stages.get("salesforce", "Id. Decision Makers"),
            Some("demo")
        );
        assert_eq!(stages.get("hubspot", "contractsent"), Some("negotiation"));
        assert_eq!(
            stages.get("hubspot", "Decision Maker Bought-In"),
            Some("proposal")
        );
        assert_eq!(stages.get("hubspot", "Needs Analysis"), None);
        assert_eq!(stages.get("pipedrive", "Closed Won"), None);
    }

    #[test]
    fn a_missing_folder_or_file_gives_no_mappings() {
        let dir = tempfile::tempdir().unwrap();
        assert!(UdfSeeds::load(dir.path()).unwrap().stages().is_empty());
        assert!(
            UdfSeeds::load(&dir.path().join("nope"))
                .unwrap()
                .stages()
                .is_empty()
        );
    }

    #[test]
    fn cells_are_trimmed_and_extra_columns_ignored_and_repeats_allowed() {
        let dir = seeds_file(
            "stage , source,raw_stage,notes\n won , Pipedrive , Won ,x\nwon,pipedrive,won,y\n",
        );
        let seeds = UdfSeeds::load(dir.path()).unwrap();
        assert_eq!(seeds.stages().len(), 1);
        assert_eq!(seeds.stages().get("pipedrive", "WON"), Some("won"));
    }

    #[test]
    fn a_bad_seed_file_names_the_file_the_line_and_the_fault() {
        let dir = seeds_file("source,stage\nsalesforce,lead\n");
        let err = UdfSeeds::load(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                SeedError::MissingColumn {
                    column: "raw_stage",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains(STAGE_MAPPINGS_FILE), "{err}");
        assert_eq!(err.path(), dir.path().join(STAGE_MAPPINGS_FILE));

        let dir =
            seeds_file("source,raw_stage,stage\nsalesforce,Prospecting,lead\nsalesforce,Won,\n");
        let err = UdfSeeds::load(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                SeedError::EmptyCell {
                    line: 3,
                    column: "stage",
                    ..
                }
            ),
            "{err}"
        );

        let dir = seeds_file(
            "source,raw_stage,stage\nsalesforce,Closed Won,closed_won\nSalesforce,closed won,closed_lost\n",
        );
        let err = UdfSeeds::load(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                SeedError::Conflict {
                    line: 3,
                    first_line: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains(":3: Salesforce stage `closed won` maps to `closed_lost`, but line 2 maps it to `closed_won`"), "{err}");

        let dir = seeds_file("source,raw_stage,stage\nsalesforce,\"Closed Won,closed_won\n");
        let err = UdfSeeds::load(dir.path()).unwrap_err();
        assert!(matches!(err, SeedError::Csv { .. }), "{err}");
    }

    #[tokio::test]
    async fn sql_maps_arrays_and_scalars_and_leaves_unmapped_and_nulls_null() {
        let seeds = project_seeds();
        let sql = "SELECT stage_normalize(s, arrow_cast(r, 'Utf8View')), coalesce(stage_normalize(s, r), r) FROM (VALUES ('salesforce', 'Closed Won'), ('hubspot', 'closedlost'), ('salesforce', 'Mystery'), (NULL, 'Closed Won'), ('salesforce', NULL)) AS t(s, r)";
        let batch = batch_with(sql, &seeds).await;
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            column_texts(&batch, 0),
            [some("closed_won"), some("closed_lost"), None, None, None]
        );
        assert_eq!(
            column_texts(&batch, 1),
            [
                some("closed_won"),
                some("closed_lost"),
                some("Mystery"),
                some("Closed Won"),
                None
            ]
        );
        let batch = batch_with(
            "SELECT stage_normalize('hubspot', arrow_cast('Contract Sent', 'LargeUtf8'))",
            &seeds,
        )
        .await;
        assert_eq!(column_texts(&batch, 0), [some("negotiation")]);
    }

    #[tokio::test]
    async fn without_seeds_every_stage_is_unmapped() {
        assert_eq!(
            texts("SELECT stage_normalize('salesforce', 'Closed Won')").await,
            [None]
        );
    }
}

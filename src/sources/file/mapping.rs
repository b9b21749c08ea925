//! Header maps: the column labels of a vendor's export → the vendor's API field names, so that
//! a file import and an API sync of the same object land the same raw columns.
//!
//! The built-in maps are TOML files under `src/sources/mappings/` (one per vendor, embedded in
//! the binary); a user map (`revlake import --map FILE.toml`) has the same shape as one object
//! of them and overrides it:
//!
//! ```toml
//! key = "Id"                 # the record id (API name): stage snapshots, default merge key
//! stage = "StageName"        # the stage field: stage snapshots
//! modified = "LastModifiedDate"
//!
//! [columns]                  # header label = API name (case and spaces around ignored)
//! "Opportunity Name" = "Name"
//! "Renewal Date" = "Renewal_Date__c"
//!
//! [stages]                   # HubSpot "Date entered/exited" columns: stage label = stage id
//! "Closed Won (Renewals)" = "98765"
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;

use super::error::{FileError, Result};
use crate::lake::{DatasetRef, Layer};
use crate::sources::naming::snake_case;

/// The built-in maps: (source, TOML text).
const BUILTIN: [(&str, &str); 3] = [
    ("salesforce", include_str!("../mappings/salesforce.toml")),
    ("hubspot", include_str!("../mappings/hubspot.toml")),
    (
        "linkedin_sales_navigator",
        include_str!("../mappings/linkedin_sales_navigator.toml"),
    ),
];

/// A vendor's map file: shared columns and one table per object.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVendorMap {
    #[serde(default)]
    common: RawObjectMap,
    objects: BTreeMap<String, RawObjectMap>,
}

/// One object's map (and the whole of a user map file).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObjectMap {
    /// Header label → API name.
    #[serde(default)]
    columns: BTreeMap<String, String>,
    /// Stage label (`Label` for the default pipeline, or `Label (Pipeline)`) → stage id.
    #[serde(default)]
    stages: BTreeMap<String, String>,
    /// The API name of the record id.
    key: Option<String>,
    /// The API name of the stage field.
    stage: Option<String>,
    /// The API name of the last-modified timestamp.
    modified: Option<String>,
    /// Whether `Date entered/exited "<stage> (<pipeline>)"` columns map to stage ids (HubSpot).
    #[serde(default)]
    stage_dates: bool,
    /// The pipeline whose stages `stages` names by bare label.
    default_pipeline: Option<String>,
}

/// How one object's export headers map to API names.
#[derive(Debug, Clone, Default)]
pub struct ObjectMap {
    /// `salesforce`, `hubspot`, or empty for a user map alone.
    pub source: String,
    /// The object as the vendor names it: `Opportunity`, `deals`.
    pub object: String,
    columns: HashMap<String, String>,
    stages: HashMap<String, String>,
    stage_dates: bool,
    default_pipeline: Option<String>,
    /// The API name of the record id.
    pub key: Option<String>,
    /// The API name of the stage field.
    pub stage: Option<String>,
    /// The API name of the last-modified timestamp.
    pub modified: Option<String>,
}

/// What became of one header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapped {
    /// A label of the map: its API name.
    Api(String),
    /// Not in the map: kept as it is (an API name already, or a custom column).
    Unchanged,
    /// A stage-date column whose stage the map does not know: kept as it is.
    UnknownStage { stage: String, pipeline: String },
}

fn normalize(label: &str) -> String {
    label.trim().to_lowercase()
}

fn parse_vendor(source: &str, text: &str) -> Result<RawVendorMap> {
    toml::from_str(text).map_err(|e| {
        FileError::internal(
            "the built-in header maps",
            format!("src/sources/mappings/{source}.toml: {}", e.message()),
        )
    })
}

impl ObjectMap {
    fn from_raw(source: &str, object: &str, common: &RawObjectMap, raw: RawObjectMap) -> Self {
        let mut columns: HashMap<String, String> = common
            .columns
            .iter()
            .map(|(k, v)| (normalize(k), v.clone()))
            .collect();
        columns.extend(raw.columns.into_iter().map(|(k, v)| (normalize(&k), v)));
        ObjectMap {
            source: source.to_string(),
            object: object.to_string(),
            columns,
            stages: raw
                .stages
                .into_iter()
                .map(|(k, v)| (normalize(&k), v))
                .collect(),
            stage_dates: raw.stage_dates,
            default_pipeline: raw.default_pipeline,
            key: raw.key,
            stage: raw.stage,
            modified: raw.modified,
        }
    }

    /// The built-in map of `source.Object` (`salesforce.Opportunity`, `hubspot.deals`); the
    /// object matches without regard to case or underscores (`salesforce.opportunity_history`).
    pub fn builtin(spec: &str) -> Result<Self> {
        let unknown = || -> Result<Self> {
            Err(FileError::UnknownObject {
                object: spec.to_string(),
                known: known_objects().unwrap_or_default(),
            })
        };
        let Some((source, object)) = spec.split_once('.') else {
            return unknown();
        };
        let source = source.to_ascii_lowercase();
        let Some((_, text)) = BUILTIN.iter().find(|(s, _)| *s == source) else {
            return unknown();
        };
        let mut vendor = parse_vendor(&source, text)?;
        let wanted = snake_case(object);
        let Some(name) = vendor
            .objects
            .keys()
            .find(|k| snake_case(k) == wanted)
            .cloned()
        else {
            return unknown();
        };
        let raw = vendor.objects.remove(&name).unwrap_or_default();
        Ok(Self::from_raw(&source, &name, &vendor.common, raw))
    }

    /// The built-in map whose raw dataset is `dataset` (`raw.hubspot_deals` → `hubspot.deals`).
    pub fn for_dataset(dataset: &DatasetRef) -> Result<Option<Self>> {
        if dataset.layer != Layer::Raw {
            return Ok(None);
        }
        for (source, text) in BUILTIN {
            let vendor = parse_vendor(source, text)?;
            for object in vendor.objects.keys() {
                if format!("{source}_{}", snake_case(object)) == dataset.table {
                    return Self::builtin(&format!("{source}.{object}")).map(Some);
                }
            }
        }
        Ok(None)
    }

    /// A user map file (`--map FILE.toml`).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| FileError::io(path, e))?;
        let raw: RawObjectMap = toml::from_str(&text).map_err(|e| FileError::BadMap {
            path: path.to_path_buf(),
            line: e
                .span()
                .map(|s| crate::project::schema::line_of(&text, s.start)),
            reason: e.message().to_string(),
        })?;
        Ok(Self::from_raw("", "", &RawObjectMap::default(), raw))
    }

    /// This map with `user`'s entries on top.
    pub fn overlay(mut self, user: ObjectMap) -> Self {
        self.columns.extend(user.columns);
        self.stages.extend(user.stages);
        self.key = user.key.or(self.key);
        self.stage = user.stage.or(self.stage);
        self.modified = user.modified.or(self.modified);
        self.stage_dates |= !self.stages.is_empty();
        self
    }

    /// `source.Object`, or `(user map)`.
    pub fn name(&self) -> String {
        if self.source.is_empty() {
            "(user map)".to_string()
        } else {
            format!("{}.{}", self.source, self.object)
        }
    }

    /// The raw dataset the object lands in: `raw.<source>_<object>` in snake_case.
    pub fn dataset(&self) -> Option<DatasetRef> {
        if self.source.is_empty() {
            return None;
        }
        DatasetRef::new(
            Layer::Raw,
            format!("{}_{}", self.source, snake_case(&self.object)),
        )
        .ok()
    }

    /// What `header` maps to.
    pub fn map(&self, header: &str) -> Mapped {
        if let Some(api) = self.columns.get(&normalize(header)) {
            return Mapped::Api(api.clone());
        }
        if self.stage_dates
            && let Some((event, stage, pipeline)) = stage_date_column(header)
        {
            let full = normalize(&format!("{stage} ({pipeline})"));
            let by_default = self
                .default_pipeline
                .as_deref()
                .is_some_and(|d| d.eq_ignore_ascii_case(&pipeline));
            let id = self.stages.get(&full).or_else(|| {
                by_default
                    .then(|| self.stages.get(&normalize(&stage)))
                    .flatten()
            });
            return match id {
                Some(id) => Mapped::Api(format!("hs_v2_date_{event}_{id}")),
                None => Mapped::UnknownStage { stage, pipeline },
            };
        }
        Mapped::Unchanged
    }
}

/// `Date entered "Closed Won (Sales Pipeline)"` → (`entered`, `Closed Won`, `Sales Pipeline`).
fn stage_date_column(header: &str) -> Option<(&'static str, String, String)> {
    let h = header.trim();
    let lower = h.to_ascii_lowercase();
    let (event, rest) = if lower.starts_with("date entered ") {
        ("entered", &h["date entered ".len()..])
    } else if lower.starts_with("date exited ") {
        ("exited", &h["date exited ".len()..])
    } else {
        return None;
    };
    let quoted = rest
        .trim()
        .trim_matches(|c| c == '"' || c == '“' || c == '”' || c == '\'');
    let open = quoted.rfind(" (")?;
    let pipeline = quoted[open + 2..].strip_suffix(')')?;
    Some((
        event,
        quoted[..open].trim().to_string(),
        pipeline.trim().to_string(),
    ))
}

/// Every built-in object, `source.Object`.
pub fn known_objects() -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (source, text) in BUILTIN {
        let vendor = parse_vendor(source, text)?;
        out.extend(vendor.objects.keys().map(|o| format!("{source}.{o}")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_map_parses_and_names_a_raw_dataset() {
        let known = known_objects().unwrap();
        for spec in [
            "salesforce.Opportunity",
            "salesforce.Account",
            "salesforce.Contact",
            "salesforce.User",
            "salesforce.Task",
            "salesforce.Event",
            "salesforce.OpportunityHistory",
            "salesforce.OpportunityContactRole",
            "salesforce.Lead",
            "hubspot.deals",
            "hubspot.companies",
            "hubspot.contacts",
        ] {
            assert!(known.contains(&spec.to_string()), "{spec} in {known:?}");
            let map = ObjectMap::builtin(spec).unwrap();
            assert!(map.dataset().is_some(), "{spec}");
            assert!(map.key.is_some(), "{spec} has a key");
        }
        assert_eq!(
            ObjectMap::builtin("salesforce.opportunity_history")
                .unwrap()
                .dataset()
                .unwrap()
                .to_string(),
            "raw.salesforce_opportunity_history"
        );
    }

    #[test]
    fn salesforce_labels_map_to_api_names_and_api_names_pass_through() {
        let m = ObjectMap::builtin("salesforce.Opportunity").unwrap();
        assert_eq!(m.map("Opportunity Name"), Mapped::Api("Name".into()));
        assert_eq!(m.map(" stage "), Mapped::Api("StageName".into()));
        assert_eq!(m.map("Close Date"), Mapped::Api("CloseDate".into()));
        assert_eq!(m.map("Opportunity Owner"), Mapped::Api("Owner.Name".into()));
        assert_eq!(m.map("Created Date"), Mapped::Api("CreatedDate".into()));
        assert_eq!(m.map("StageName"), Mapped::Unchanged);
        assert_eq!(m.map("Renewal_Date__c"), Mapped::Unchanged);
        assert_eq!(m.key.as_deref(), Some("Id"));
        assert_eq!(m.stage.as_deref(), Some("StageName"));
    }

    #[test]
    fn hubspot_labels_and_stage_date_columns_map_to_internal_names() {
        let m = ObjectMap::builtin("hubspot.deals").unwrap();
        for (label, api) in [
            ("Record ID", "hs_object_id"),
            ("Deal Name", "dealname"),
            ("Deal Stage", "dealstage"),
            ("Pipeline", "pipeline"),
            ("Amount", "amount"),
            ("Close Date", "closedate"),
            ("Create Date", "createdate"),
            ("Last Modified Date", "hs_lastmodifieddate"),
            ("Deal owner", "hubspot_owner_id"),
            ("Deal Type", "dealtype"),
            ("Is Closed Won", "hs_is_closed_won"),
            ("Is Deal Closed", "hs_is_closed"),
            (
                "Date entered \"Closed Won (Sales Pipeline)\"",
                "hs_v2_date_entered_closedwon",
            ),
            (
                "Date exited \"Decision Maker Bought-In (Sales Pipeline)\"",
                "hs_v2_date_exited_decisionmakerboughtin",
            ),
        ] {
            assert_eq!(m.map(label), Mapped::Api(api.into()), "{label}");
        }
        assert_eq!(m.map("Associated Company IDs"), Mapped::Unchanged);
        // Another pipeline's stage is not guessed from the default pipeline's ids.
        assert_eq!(
            m.map("Date entered \"Closed Won (Renewals)\""),
            Mapped::UnknownStage {
                stage: "Closed Won".into(),
                pipeline: "Renewals".into()
            }
        );
        let c = ObjectMap::builtin("hubspot.contacts").unwrap();
        assert_eq!(
            c.map("Last Modified Date"),
            Mapped::Api("lastmodifieddate".into())
        );
        assert_eq!(
            c.map("Associated Company ID"),
            Mapped::Api("associatedcompanyid".into())
        );
        let co = ObjectMap::builtin("hubspot.companies").unwrap();
        assert_eq!(co.map("Company name"), Mapped::Api("name".into()));
        assert_eq!(
            co.map("Number of Employees"),
            Mapped::Api("numberofemployees".into())
        );
    }

    #[test]
    fn a_user_map_overrides_and_extends_the_builtin() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map.toml");
        std::fs::write(
            &path,
            "[columns]\n\"Renewal Date\" = \"Renewal_Date__c\"\n\"Stage\" = \"Stage__c\"\n[stages]\n\"Closed Won (Renewals)\" = \"98765\"\n",
        )
        .unwrap();
        let user = ObjectMap::from_file(&path).unwrap();
        let m = ObjectMap::builtin("hubspot.deals")
            .unwrap()
            .overlay(user.clone());
        assert_eq!(m.map("renewal date"), Mapped::Api("Renewal_Date__c".into()));
        assert_eq!(
            m.map("Date entered \"Closed Won (Renewals)\""),
            Mapped::Api("hs_v2_date_entered_98765".into())
        );
        assert_eq!(m.map("Deal Name"), Mapped::Api("dealname".into()));
        assert_eq!(user.map("Stage"), Mapped::Api("Stage__c".into()));
        assert!(user.dataset().is_none());
    }

    #[test]
    fn unknown_objects_and_bad_maps_are_named() {
        let e = ObjectMap::builtin("salesforce.Opportunityy").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("salesforce.Opportunityy") && msg.contains("hubspot.deals"),
            "{msg}"
        );
        assert!(ObjectMap::builtin("zoho.deals").is_err());
        assert!(ObjectMap::builtin("deals").is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[columns]\n\"A\" = \"B\"\nunknown = 1\n").unwrap();
        let msg = ObjectMap::from_file(&path).unwrap_err().to_string();
        assert!(msg.contains("bad.toml:3"), "{msg}");
    }

    #[test]
    fn datasets_find_their_builtin_object() {
        let d: DatasetRef = "raw.hubspot_deals".parse().unwrap();
        assert_eq!(
            ObjectMap::for_dataset(&d).unwrap().unwrap().name(),
            "hubspot.deals"
        );
        let d: DatasetRef = "raw.crm_deals".parse().unwrap();
        assert!(ObjectMap::for_dataset(&d).unwrap().is_none());
    }
}

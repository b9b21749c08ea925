//! Tests of the generator: they generate ~5,000-deal orgs into temp dirs and check the Truth and
//! the re-read CSVs.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use chrono::NaiveDate;

use super::*;

pub(super) const DEALS: u64 = 5_000;

pub(super) fn config(seed: u64) -> GenerateConfig {
    GenerateConfig {
        deals: DEALS,
        seed,
        ..GenerateConfig::default()
    }
}

pub(super) fn run(config: &GenerateConfig) -> (tempfile::TempDir, GenerateSummary) {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = generate(config, dir.path(), &mut |_| {}).expect("generate");
    (dir, summary)
}

/// A CSV file read back: header and rows.
pub(super) struct Table {
    pub(super) header: Vec<String>,
    pub(super) rows: Vec<csv::StringRecord>,
}

impl Table {
    pub(super) fn read(path: &Path) -> Table {
        let mut reader = csv::Reader::from_path(path).expect("open csv");
        let header = reader
            .headers()
            .expect("header")
            .iter()
            .map(str::to_string)
            .collect();
        let rows = reader.records().map(|r| r.expect("record")).collect();
        Table { header, rows }
    }

    pub(super) fn col(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }

    pub(super) fn values(&self, name: &str) -> Vec<&str> {
        let c = self.col(name);
        self.rows.iter().map(|r| r.get(c).unwrap_or("")).collect()
    }

    pub(super) fn set(&self, name: &str) -> HashSet<&str> {
        self.values(name).into_iter().collect()
    }
}

pub(super) fn sf(dir: &Path, object: &str) -> Table {
    Table::read(&dir.join("salesforce").join(format!("{object}.csv")))
}

pub(super) fn hs(dir: &Path, object: &str) -> Table {
    Table::read(&dir.join("hubspot").join(format!("{object}.csv")))
}

pub(super) fn rate(won: u64, closed: u64) -> f64 {
    if closed == 0 {
        0.0
    } else {
        won as f64 / closed as f64
    }
}

#[test]
fn same_seed_gives_identical_files_and_other_seed_differs() {
    let (a, sa) = run(&config(7));
    let (b, _) = run(&config(7));
    let (c, _) = run(&config(8));
    assert_eq!(sa.files.len(), 13);
    for file in &sa.files {
        let rel = file.path.strip_prefix(a.path()).expect("under out");
        let left = std::fs::read(a.path().join(rel)).expect("read a");
        let right = std::fs::read(b.path().join(rel)).expect("read b");
        assert!(
            left == right,
            "{} differs between two runs with the same seed",
            rel.display()
        );
    }
    let truth_a = std::fs::read(a.path().join("truth.json")).expect("truth a");
    assert_eq!(
        truth_a,
        std::fs::read(b.path().join("truth.json")).expect("truth b")
    );
    for object in ["Opportunity", "Account", "OpportunityHistory"] {
        let path = Path::new("salesforce").join(format!("{object}.csv"));
        let left = std::fs::read(a.path().join(&path)).expect("read a");
        let other = std::fs::read(c.path().join(&path)).expect("read c");
        assert_ne!(left, other, "{object}.csv identical across seeds");
    }
}

#[test]
fn truth_shows_the_context_effects() {
    let (_dir, summary) = run(&config(42));
    let f = &summary.truth.factors;
    let win = |factor: &str, level: &str| f.level(factor, level).expect("level").win_rate;
    let champion = win("champion", "present");
    let no_champion = win("champion", "absent");
    assert!(
        champion - no_champion >= 0.10,
        "champion {champion:.3} vs none {no_champion:.3}"
    );
    assert!(win("blocker", "unresolved") < win("blocker", "none"));
    assert!(win("lead_source", "Referral") > win("lead_source", "Outbound"));
    assert!(win("lead_source", "Partner") > win("lead_source", "Outbound"));
    assert!(win("size_band", "small") > win("size_band", "enterprise"));
    // ICP industries convert better than the rest, pooled.
    let (mut icp, mut other) = ((0, 0), (0, 0));
    for (level, spec) in f.industry.iter().zip(model::INDUSTRIES.iter()) {
        let bucket = if spec.icp { &mut icp } else { &mut other };
        bucket.0 += level.won;
        bucket.1 += level.closed;
    }
    assert!(rate(icp.0, icp.1) > rate(other.0, other.1) + 0.05);
    // Shares are roughly as configured.
    let champ = f.level("champion", "present").expect("present");
    let share = champ.deals as f64 / DEALS as f64;
    assert!((0.40..0.50).contains(&share), "champion share {share}");
}

#[test]
fn csvs_show_the_context_effects() {
    let (dir, _) = run(&config(42));
    let opps = sf(dir.path(), "Opportunity");
    let roles = sf(dir.path(), "OpportunityContactRole");
    let (opp_c, role_c) = (roles.col("OpportunityId"), roles.col("Role"));
    let mut champions = HashSet::new();
    let mut blockers = HashSet::new();
    for r in &roles.rows {
        match &r[role_c] {
            "Champion" => champions.insert(r[opp_c].to_string()),
            "Blocker" => blockers.insert(r[opp_c].to_string()),
            _ => false,
        };
    }
    let (id, closed, won, source) = (
        opps.col("Id"),
        opps.col("IsClosed"),
        opps.col("IsWon"),
        opps.col("LeadSource"),
    );
    // key -> (won, closed)
    let mut counts: HashMap<String, (u64, u64)> = HashMap::new();
    for r in &opps.rows {
        if &r[closed] != "true" {
            continue;
        }
        let w = u64::from(&r[won] == "true");
        let keys = [
            format!("champion={}", champions.contains(&r[id])),
            format!("blocker={}", blockers.contains(&r[id])),
            format!("source={}", &r[source]),
        ];
        for k in keys {
            let e = counts.entry(k).or_default();
            e.0 += w;
            e.1 += 1;
        }
    }
    let win = |k: &str| {
        let (w, c) = counts.get(k).copied().unwrap_or_default();
        rate(w, c)
    };
    assert!(win("champion=true") - win("champion=false") >= 0.10);
    assert!(win("blocker=true") < win("blocker=false"));
    assert!(win("source=Referral") > win("source=Outbound"));
}

#[test]
fn progress_is_reported_and_output_is_overwritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("nested").join("org");
    let mut calls = Vec::new();
    generate(
        &GenerateConfig {
            deals: 2_500,
            ..config(1)
        },
        &out,
        &mut |n| calls.push(n),
    )
    .expect("first run");
    assert_eq!(calls, vec![1_000, 2_000, 2_500]);
    let summary = generate(
        &GenerateConfig {
            deals: 300,
            ..config(1)
        },
        &out,
        &mut |_| {},
    )
    .expect("second run");
    assert_eq!(
        Table::read(&out.join("salesforce/Opportunity.csv"))
            .rows
            .len() as u64,
        summary.truth.salesforce.deals
    );
    assert_eq!(summary.truth.deals, 300);
}

#[test]
fn extreme_shares_work() {
    for share in [0.0, 1.0] {
        let (dir, summary) = run(&GenerateConfig {
            deals: 50,
            hubspot_share: share,
            ..config(9)
        });
        let hubspot = (share * 50.0) as u64;
        assert_eq!(summary.truth.hubspot.deals, hubspot);
        assert_eq!(
            sf(dir.path(), "Opportunity").rows.len() as u64,
            50 - hubspot
        );
        assert_eq!(summary.truth.shared_domains, 0);
    }
}

#[test]
fn invalid_config_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("date");
    let bad = [
        GenerateConfig {
            deals: 0,
            ..config(1)
        },
        GenerateConfig {
            hubspot_share: 1.5,
            ..config(1)
        },
        GenerateConfig {
            hubspot_share: f64::NAN,
            ..config(1)
        },
        GenerateConfig {
            start: date(2025, 1, 1),
            as_of: date(2024, 1, 1),
            ..config(1)
        },
        GenerateConfig {
            start: date(2024, 1, 1),
            as_of: date(2024, 1, 1),
            ..config(1)
        },
    ];
    for c in bad {
        let err = generate(&c, dir.path(), &mut |_| {}).expect_err("must be rejected");
        assert!(matches!(err, GenerateError::InvalidConfig { .. }), "{err}");
    }
    assert!(
        std::fs::read_dir(dir.path()).expect("dir").next().is_none(),
        "nothing written"
    );
}

#[test]
fn docs_carry_the_constants_table() {
    let doc = include_str!("../../docs/generator.md");
    assert!(
        doc.contains(&model::constants_markdown()),
        "docs/generator.md is out of date with model.rs: paste model::constants_markdown()"
    );
}

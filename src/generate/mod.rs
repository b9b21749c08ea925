//! `revlake generate`: a synthetic B2B org that writes the files real CRM vendors export.
//!
//! One company ("Northbeam Software") sells B2B software. Most of its deals live in its
//! Salesforce org; a share ([`GenerateConfig::hubspot_share`]) lives in the HubSpot portal of an
//! acquired business unit ("Kitewire"). [`generate`] writes, under the output directory:
//!
//! - `salesforce/`: `Account.csv`, `Contact.csv`, `User.csv`, `Opportunity.csv`,
//!   `OpportunityHistory.csv`, `OpportunityContactRole.csv`, `Task.csv`, `Event.csv`,
//!   `Period.csv` and `ForecastingQuota.csv` (quarterly rep quotas), shaped like Setup → Data
//!   Export (API field names, every field quoted, 18-character ids);
//! - `hubspot/`: `companies.csv`, `contacts.csv`, `deals.csv`, shaped like the CRM index-page
//!   export (property labels, numeric record ids, per-stage "Date entered"/"Date exited");
//! - `truth.json`: the [`Truth`] — counts, outcomes and per-factor win rates to test against.
//!
//! Every deal runs a stage process (lead → … → closed won / lost, with regressions and skips)
//! whose advance probabilities and durations depend on the deal's context: champion, unresolved
//! blocker, size band, industry and lead source. The numbers live in one table in
//! [`model`], and `docs/generator.md` documents them.
//!
//! Deals are streamed in created-date order and written row by row through buffered CSV
//! writers; only users, accounts and a few bytes per contact are held in memory, so a million
//! deals run in bounded memory. Output is deterministic: same config, byte-identical files.

mod deal;
mod error;
mod format;
mod hubspot;
pub mod model;
mod names;
mod org;
mod salesforce;
mod truth;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_csv;

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use error::GenerateError;
pub use truth::{FactorTruth, LevelTruth, SourceTruth, Truth};

use format::{BUSINESS_CLOSE, BUSINESS_OPEN, DAY, day_of, is_weekend, mix64};
use hubspot::HubspotWriter;
use org::{Identity, Org, Timeline, build_accounts, build_contacts, build_users};
use salesforce::SalesforceWriter;
use truth::Tally;

/// Deals per account (accounts ≈ deals / 4 per CRM).
pub const DEALS_PER_ACCOUNT: f64 = 4.0;
/// Users per deal (20 per 1,000 deals), between [`MIN_USERS`] and [`MAX_USERS`] in total.
pub const USERS_PER_DEAL: f64 = 0.02;
/// Fewest users of the whole company.
pub const MIN_USERS: u64 = 5;
/// Most users of the whole company.
pub const MAX_USERS: u64 = 400;
/// Largest accepted deal count (keeps contact indices in 32 bits).
pub const MAX_DEALS: u64 = 100_000_000;
/// Deal volume grows linearly over the period: the created-date density at `as_of` is
/// `1 + DEAL_GROWTH` times the density at `start`.
pub const DEAL_GROWTH: f64 = 1.0;
/// Email domain of the company's Salesforce users.
pub const COMPANY_DOMAIN: &str = "northbeam.io";
/// Email domain of the acquired unit's HubSpot owners.
pub const ACQUIRED_DOMAIN: &str = "kitewire.com";

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateConfig {
    /// Deals in total, both CRMs (≥ 1).
    pub deals: u64,
    /// Seed of the single random stream: same config → byte-identical files.
    pub seed: u64,
    /// Share of the deals in the HubSpot portal, in [0, 1] (default 0.2).
    pub hubspot_share: f64,
    /// Earliest deal created date (default 2023-01-01).
    pub start: NaiveDate,
    /// The org's "today": anything not closed by then is open pipeline (default 2025-12-31).
    pub as_of: NaiveDate,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            deals: 5_000,
            seed: 42,
            hubspot_share: 0.2,
            start: NaiveDate::from_ymd_opt(2023, 1, 1).unwrap_or(NaiveDate::MIN),
            as_of: NaiveDate::from_ymd_opt(2025, 12, 31).unwrap_or(NaiveDate::MIN),
        }
    }
}

impl GenerateConfig {
    /// Checks the settings: deals in 1..=[`MAX_DEALS`], hubspot_share in [0, 1],
    /// start < as_of, start from 1975 on and as_of before 9000.
    pub fn validate(&self) -> Result<(), GenerateError> {
        let invalid = |reason: String| Err(GenerateError::InvalidConfig { reason });
        if self.deals == 0 {
            return invalid("deals must be at least 1".to_string());
        }
        if self.deals > MAX_DEALS {
            return invalid(format!(
                "deals must be at most {MAX_DEALS}, got {}",
                self.deals
            ));
        }
        if !(0.0..=1.0).contains(&self.hubspot_share) {
            return invalid(format!(
                "hubspot_share must be in [0, 1], got {}",
                self.hubspot_share
            ));
        }
        if self.start >= self.as_of {
            return invalid(format!(
                "start ({}) must be before as_of ({})",
                self.start, self.as_of
            ));
        }
        if self.start.year() < 1975 || self.as_of.year() >= 9000 {
            return invalid(format!(
                "dates must lie between 1975 and 8999, got start {} and as_of {}",
                self.start, self.as_of
            ));
        }
        Ok(())
    }
}

/// One written CSV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    pub path: PathBuf,
    /// Data rows, header excluded.
    pub rows: u64,
}

/// What [`generate`] wrote: the CSV files (`truth.json` not included) and the ground truth.
#[derive(Debug, Clone)]
pub struct GenerateSummary {
    pub files: Vec<GeneratedFile>,
    pub truth: Truth,
}

/// How many of each thing per CRM.
struct Plan {
    hs_deals: u64,
    sf_accounts: usize,
    hs_accounts: usize,
    sf_users: usize,
    hs_users: usize,
}

impl Plan {
    fn new(config: &GenerateConfig) -> Plan {
        let hs_deals =
            ((config.deals as f64 * config.hubspot_share).round() as u64).min(config.deals);
        let sf_deals = config.deals - hs_deals;
        let accounts = |d: u64| {
            if d == 0 {
                0
            } else {
                ((d as f64 / DEALS_PER_ACCOUNT).round() as usize).max(1)
            }
        };
        let total = ((config.deals as f64 * USERS_PER_DEAL).round() as u64)
            .clamp(MIN_USERS, MAX_USERS) as usize;
        let sf_users = if sf_deals == 0 {
            0
        } else {
            ((total as f64 * (1.0 - config.hubspot_share)).round() as usize).max(3)
        };
        let hs_users = if hs_deals == 0 {
            0
        } else {
            total.saturating_sub(sf_users).max(2)
        };
        Plan {
            hs_deals,
            sf_accounts: accounts(sf_deals),
            hs_accounts: accounts(hs_deals),
            sf_users,
            hs_users,
        }
    }
}

/// Generates the org into `out` (created if missing; existing export files are overwritten),
/// calling `on_progress` with the number of deals written every 1,000 deals and at the end.
pub fn generate(
    config: &GenerateConfig,
    out: &Path,
    on_progress: &mut dyn FnMut(u64),
) -> Result<GenerateSummary, GenerateError> {
    config.validate()?;
    let timeline = Timeline {
        start_day: day_of(config.start),
        as_of_day: day_of(config.as_of),
    };
    for dir in [
        out.to_path_buf(),
        out.join("salesforce"),
        out.join("hubspot"),
    ] {
        std::fs::create_dir_all(&dir).map_err(|source| GenerateError::Io {
            path: dir.clone(),
            source,
        })?;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut sf = SalesforceWriter::create(out)?;
    let mut hs = HubspotWriter::create(out, mix64(config.seed))?;
    let plan = Plan::new(config);

    let (users, reps) = build_users(&mut rng, plan.sf_users, COMPANY_DOMAIN, &timeline);
    let mut sf_org = Org {
        users,
        reps,
        accounts: Vec::new(),
        contact_first: Vec::new(),
    };
    let (users, reps) = build_users(&mut rng, plan.hs_users, ACQUIRED_DOMAIN, &timeline);
    let mut hs_org = Org {
        users,
        reps,
        accounts: Vec::new(),
        contact_first: Vec::new(),
    };
    sf.users(&sf_org)?;
    hs.owners(&hs_org);

    let mut slugs: HashSet<Box<str>> = ["northbeam", "kitewire"]
        .into_iter()
        .map(Box::from)
        .collect();
    let (accounts, _) = build_accounts(
        &mut rng,
        plan.sf_accounts,
        &sf_org.reps,
        &timeline,
        &mut slugs,
        Identity::Fresh,
    );
    sf_org.accounts = accounts;
    let (accounts, shared_domains) = build_accounts(
        &mut rng,
        plan.hs_accounts,
        &hs_org.reps,
        &timeline,
        &mut slugs,
        Identity::SharedWith(&sf_org.accounts),
    );
    hs_org.accounts = accounts;
    drop(slugs);
    build_contacts(&mut rng, &mut sf_org, &timeline, |row, account| {
        sf.contact(row, account)
    })?;
    build_contacts(&mut rng, &mut hs_org, &timeline, |row, account| {
        hs.contact(row, account)
    })?;

    let days: Vec<i64> = {
        let weekdays: Vec<i64> = (timeline.start_day..=timeline.as_of_day)
            .filter(|&d| !is_weekend(d))
            .collect();
        if weekdays.is_empty() {
            (timeline.start_day..=timeline.as_of_day).collect()
        } else {
            weekdays
        }
    };
    let horizon = timeline.horizon();
    let mut scratch = deal::Scratch::default();
    let mut tally = Tally::new();
    let mut remaining_hs = plan.hs_deals;
    // Sorted uniforms, streamed: the maximum of k uniforms is U^(1/k), taken from the top down.
    let mut top = 1.0f64;
    for i in 0..config.deals {
        let remaining = config.deals - i;
        top *= (1.0 - rng.random::<f64>()).powf(1.0 / remaining as f64);
        let created = created_at(1.0 - top, &days);
        let hubspot = rng.random_range(0..remaining) < remaining_hs;
        if hubspot {
            remaining_hs -= 1;
            let deal = deal::draw(&mut rng, &mut hs_org, created, horizon, false, &mut scratch);
            hs.deal(&mut rng, &hs_org, &deal, &scratch)?;
            tally.record(true, &deal, scratch.moves.len());
        } else {
            let deal = deal::draw(&mut rng, &mut sf_org, created, horizon, true, &mut scratch);
            sf.deal(&mut rng, &sf_org, &deal, &scratch)?;
            tally.record(false, &deal, scratch.moves.len());
        }
        if (i + 1) % 1_000 == 0 {
            on_progress(i + 1);
        }
    }
    if !config.deals.is_multiple_of(1_000) {
        on_progress(config.deals);
    }

    sf.accounts(&mut rng, &sf_org)?;
    sf.quotas(&sf_org, &timeline)?;
    hs.companies(&mut rng, &hs_org)?;
    let mut written = sf.finish()?;
    written.extend(hs.finish()?);

    let mut salesforce = tally.salesforce.clone();
    let mut hubspot = tally.hubspot.clone();
    for (source, org) in [(&mut salesforce, &sf_org), (&mut hubspot, &hs_org)] {
        source.accounts = org.accounts.len() as u64;
        source.contacts = org.contact_first.len() as u64;
        source.users = org.users.len() as u64;
    }
    let truth = Truth {
        seed: config.seed,
        deals: config.deals,
        hubspot_share: config.hubspot_share,
        start: config.start.to_string(),
        as_of: config.as_of.to_string(),
        files: written
            .iter()
            .map(|(rel, f)| (rel.to_string(), f.rows))
            .collect::<BTreeMap<_, _>>(),
        stage_transitions: salesforce.stage_transitions + hubspot.stage_transitions,
        salesforce,
        hubspot,
        shared_domains,
        factors: tally.factors(),
    };
    write_truth(&out.join("truth.json"), &truth)?;
    Ok(GenerateSummary {
        files: written.into_iter().map(|(_, f)| f).collect(),
        truth,
    })
}

/// Maps a uniform position `x` in [0, 1] (increasing over the stream) to a created timestamp:
/// linear growth of volume over the period, weekdays only, business hours (13:00–23:00 UTC).
/// Monotone in `x`, so deals come out in created order.
fn created_at(x: f64, days: &[i64]) -> i64 {
    let g = DEAL_GROWTH;
    let x = x.clamp(0.0, 1.0);
    let y = if g > 0.0 {
        ((1.0 + 2.0 * g * x * (1.0 + g / 2.0)).sqrt() - 1.0) / g
    } else {
        x
    };
    let pos = y.clamp(0.0, 1.0) * days.len() as f64;
    let k = (pos as usize).min(days.len() - 1);
    let frac = (pos - k as f64).clamp(0.0, 1.0);
    days[k] * DAY + BUSINESS_OPEN + (frac * (BUSINESS_CLOSE - BUSINESS_OPEN - 1) as f64) as i64
}

fn write_truth(path: &Path, truth: &Truth) -> Result<(), GenerateError> {
    let io = |source| GenerateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::create(path).map_err(io)?;
    let mut w = BufWriter::new(file);
    serde_json::to_writer_pretty(&mut w, truth).map_err(|source| GenerateError::Truth {
        path: path.to_path_buf(),
        source,
    })?;
    w.write_all(b"\n").map_err(io)?;
    w.flush().map_err(io)
}

//! The acquired business unit's HubSpot portal, exported from the CRM index pages: one CSV per
//! object under `<out>/hubspot/`, headers are property labels.

use std::fmt::Write as _;
use std::path::Path;

use rand::{Rng, RngExt};

use super::GeneratedFile;
use super::deal::{Deal, Outcome, Scratch};
use super::error::GenerateError;
use super::format::{
    CsvOut, DAY, HS_COMPANY_BASE, HS_CONTACT_BASE, HS_DEAL_BASE, Num, boolean, hs_datetime, hs_id,
};
use super::model::{HS_STAGES, INDUSTRIES, LEAD_SOURCES};
use super::org::{Account, ContactRow, Org};

/// Share of companies with an empty Industry.
const P_EMPTY_INDUSTRY: f64 = 0.03;
/// Share of deals with an empty Amount.
const P_EMPTY_AMOUNT: f64 = 0.03;
/// The pipeline label of every deal.
pub const PIPELINE: &str = "Sales Pipeline";

const COMPANIES: &[&str] = &[
    "Record ID",
    "Company name",
    "Company Domain Name",
    "Industry",
    "Number of Employees",
    "Annual Revenue",
    "Company owner",
    "Create Date",
    "Last Modified Date",
];
const CONTACTS: &[&str] = &[
    "Record ID",
    "First Name",
    "Last Name",
    "Email",
    "Job Title",
    "Associated Company ID",
    "Contact owner",
    "Create Date",
    "Last Modified Date",
];
const DEALS: &[&str] = &[
    "Record ID",
    "Deal Name",
    "Deal Stage",
    "Pipeline",
    "Amount",
    "Close Date",
    "Create Date",
    "Last Modified Date",
    "Deal owner",
    "Deal Type",
    "Lead Source",
    "Associated Company IDs",
    "Associated Contact IDs",
    "Is Closed Won",
    "Is Deal Closed",
];

/// The deals.csv header: the fixed columns, then "Date entered"/"Date exited" per stage.
pub fn deal_header() -> Vec<String> {
    let mut header: Vec<String> = DEALS.iter().map(|s| s.to_string()).collect();
    for (_, label) in HS_STAGES {
        header.push(format!("Date entered \"{label} ({PIPELINE})\""));
        header.push(format!("Date exited \"{label} ({PIPELINE})\""));
    }
    header
}

/// All HubSpot export files, open at once.
pub struct HubspotWriter {
    deals: CsvOut,
    companies: CsvOut,
    contacts: CsvOut,
    salt: u64,
    seq: u64,
    owner_names: Vec<String>,
    text: String,
}

impl HubspotWriter {
    /// Creates (truncates) the files under `root`; `salt` varies the record ids by seed.
    pub fn create(root: &Path, salt: u64) -> Result<Self, GenerateError> {
        let header = deal_header();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        Ok(HubspotWriter {
            deals: CsvOut::create(root, "hubspot/deals.csv", &header)?,
            companies: CsvOut::create(root, "hubspot/companies.csv", COMPANIES)?,
            contacts: CsvOut::create(root, "hubspot/contacts.csv", CONTACTS)?,
            salt,
            seq: 0,
            owner_names: Vec::new(),
            text: String::new(),
        })
    }

    /// Remembers the owners' names ("Deal owner" etc. are exported as names).
    pub fn owners(&mut self, org: &Org) {
        self.owner_names = org.users.iter().map(|u| u.person.full_name()).collect();
    }

    /// Writes one contacts.csv row.
    pub fn contact(&mut self, c: &ContactRow<'_>, account: &Account) -> Result<(), GenerateError> {
        let owner = self
            .owner_names
            .get(usize::from(account.owner))
            .map_or("", String::as_str);
        let w = &mut self.contacts;
        w.f(Num::new(hs_id(
            HS_CONTACT_BASE,
            self.salt,
            u64::from(c.index),
        )))?;
        w.f(c.person.first_name())?;
        w.f(c.person.last_name())?;
        w.f(c.email)?;
        w.f(c.title)?;
        w.f(Num::new(hs_id(
            HS_COMPANY_BASE,
            self.salt,
            u64::from(c.account),
        )))?;
        w.f(owner)?;
        w.f(hs_datetime(c.created))?;
        w.f(hs_datetime(c.modified))?;
        w.end()
    }

    /// Writes companies.csv (after the deals, so Last Modified Date reflects them).
    pub fn companies<R: Rng + ?Sized>(
        &mut self,
        rng: &mut R,
        org: &Org,
    ) -> Result<(), GenerateError> {
        for (i, a) in org.accounts.iter().enumerate() {
            let owner = self
                .owner_names
                .get(usize::from(a.owner))
                .map_or("", String::as_str);
            let w = &mut self.companies;
            w.f(Num::new(hs_id(HS_COMPANY_BASE, self.salt, i as u64)))?;
            w.f(&*a.name)?;
            w.f(&*a.domain)?;
            if rng.random_bool(P_EMPTY_INDUSTRY) {
                w.empty()?;
            } else {
                w.f(INDUSTRIES[usize::from(a.industry)].hs_label)?;
            }
            w.f(Num::new(u64::from(a.employees)))?;
            w.f(Num::new(a.revenue))?;
            w.f(owner)?;
            w.f(hs_datetime(a.created))?;
            w.f(hs_datetime(a.last_touch))?;
            w.end()?;
        }
        Ok(())
    }

    /// Writes one deals.csv row. Stage history goes into the per-stage "Date entered" and
    /// "Date exited" columns: several process stages share a HubSpot stage (moves within it are
    /// invisible), and a re-entered stage keeps its latest entry date, with the exit that
    /// followed it (empty while the deal is still there).
    pub fn deal<R: Rng + ?Sized>(
        &mut self,
        rng: &mut R,
        org: &Org,
        deal: &Deal,
        scratch: &Scratch,
    ) -> Result<(), GenerateError> {
        let id = hs_id(HS_DEAL_BASE, self.salt, self.seq);
        self.seq += 1;
        let account = &org.accounts[deal.account];
        let mut entered = [None::<i64>; 7];
        let mut exited = [None::<i64>; 7];
        let mut current: Option<usize> = None;
        for m in &scratch.moves {
            let h = m.stage.spec().hs_stage;
            if current == Some(h) {
                continue;
            }
            if let Some(c) = current {
                exited[c] = Some(m.at);
            }
            entered[h] = Some(m.at);
            exited[h] = None;
            current = Some(h);
        }
        let stage = current.unwrap_or(0);

        let owner = self
            .owner_names
            .get(usize::from(deal.owner))
            .map_or("", String::as_str);
        let w = &mut self.deals;
        w.f(Num::new(id))?;
        self.text.clear();
        let _ = write!(self.text, "{} - {}", account.name, deal.product);
        w.f(&self.text)?;
        w.f(HS_STAGES[stage].1)?;
        w.f(PIPELINE)?;
        if rng.random_bool(P_EMPTY_AMOUNT) {
            w.empty()?;
        } else {
            w.f(Num::new(deal.amount))?;
        }
        let close = match deal.outcome {
            Outcome::Open => deal.close_day * DAY,
            _ => scratch.moves.last().map_or(deal.close_day * DAY, |m| m.at),
        };
        w.f(hs_datetime(close))?;
        w.f(hs_datetime(deal.created))?;
        w.f(hs_datetime(deal.last_modified))?;
        w.f(owner)?;
        w.f(if deal.new_customer {
            "New Business"
        } else {
            "Existing Business"
        })?;
        w.f(LEAD_SOURCES[deal.ctx.source].name)?;
        w.f(Num::new(hs_id(
            HS_COMPANY_BASE,
            self.salt,
            deal.account as u64,
        )))?;
        self.text.clear();
        for (i, r) in scratch.roles.iter().enumerate() {
            if i > 0 {
                self.text.push(';');
            }
            let _ = write!(
                self.text,
                "{}",
                hs_id(HS_CONTACT_BASE, self.salt, u64::from(r.contact))
            );
        }
        w.f(&self.text)?;
        w.f(boolean(deal.outcome == Outcome::Won))?;
        w.f(boolean(deal.outcome != Outcome::Open))?;
        for h in 0..HS_STAGES.len() {
            match entered[h] {
                Some(t) => w.f(hs_datetime(t))?,
                None => w.empty()?,
            }
            match exited[h] {
                Some(t) => w.f(hs_datetime(t))?,
                None => w.empty()?,
            }
        }
        w.end()
    }

    /// Flushes every file.
    pub fn finish(self) -> Result<Vec<(&'static str, GeneratedFile)>, GenerateError> {
        [self.companies, self.contacts, self.deals]
            .into_iter()
            .map(CsvOut::finish)
            .collect()
    }
}

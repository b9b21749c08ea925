//! The Salesforce org's Data Export: one CSV per object under `<out>/salesforce/`.

use std::collections::BTreeMap;
use std::path::Path;

use rand::{Rng, RngExt};

use super::GeneratedFile;
use super::deal::{ActivityKind, Deal, Outcome, Scratch};
use super::error::GenerateError;
use super::format::{
    CsvOut, DAY, Num, SfId, boolean, business_snap, civil_from_days, date, days_from_civil, prefix,
    sf_datetime,
};
use super::model::{INDUSTRIES, LEAD_SOURCES, expected_close_day};
use super::names::COUNTRIES;
use super::org::{Account, ContactRow, Org, Timeline};

/// Share of Account rows with an empty Industry.
const P_EMPTY_INDUSTRY: f64 = 0.03;
/// Share of Account rows with an empty Website.
const P_EMPTY_WEBSITE: f64 = 0.04;
/// Share of Opportunity rows (and their history) with an empty Amount.
const P_EMPTY_AMOUNT: f64 = 0.02;

const ACCOUNT: &[&str] = &[
    "Id",
    "Name",
    "Type",
    "Industry",
    "Website",
    "NumberOfEmployees",
    "AnnualRevenue",
    "BillingCountry",
    "OwnerId",
    "CreatedDate",
    "LastModifiedDate",
    "SystemModstamp",
    "IsDeleted",
];
const CONTACT: &[&str] = &[
    "Id",
    "AccountId",
    "FirstName",
    "LastName",
    "Email",
    "Title",
    "Phone",
    "OwnerId",
    "CreatedDate",
    "LastModifiedDate",
    "SystemModstamp",
    "IsDeleted",
];
const USER: &[&str] = &[
    "Id",
    "Name",
    "FirstName",
    "LastName",
    "Email",
    "Title",
    "ManagerId",
    "IsActive",
    "CreatedDate",
];
const OPPORTUNITY: &[&str] = &[
    "Id",
    "Name",
    "AccountId",
    "OwnerId",
    "Amount",
    "CurrencyIsoCode",
    "StageName",
    "Probability",
    "CloseDate",
    "IsClosed",
    "IsWon",
    "LeadSource",
    "Type",
    "ForecastCategoryName",
    "CreatedDate",
    "LastModifiedDate",
    "SystemModstamp",
    "IsDeleted",
];
const HISTORY: &[&str] = &[
    "Id",
    "OpportunityId",
    "StageName",
    "Amount",
    "Probability",
    "CloseDate",
    "ForecastCategory",
    "CreatedDate",
    "CreatedById",
    "SystemModstamp",
    "IsDeleted",
];
const CONTACT_ROLE: &[&str] = &[
    "Id",
    "OpportunityId",
    "ContactId",
    "Role",
    "IsPrimary",
    "CreatedDate",
];
const TASK: &[&str] = &[
    "Id",
    "WhatId",
    "WhoId",
    "OwnerId",
    "Subject",
    "Type",
    "Status",
    "ActivityDate",
    "CreatedDate",
    "TaskSubtype",
    "CallDurationInSeconds",
];
const EVENT: &[&str] = &[
    "Id",
    "WhatId",
    "WhoId",
    "OwnerId",
    "Subject",
    "Type",
    "StartDateTime",
    "EndDateTime",
    "DurationInMinutes",
    "ActivityDate",
    "CreatedDate",
];

const PERIOD: &[&str] = &[
    "Id",
    "Type",
    "StartDate",
    "EndDate",
    "Number",
    "QuarterLabel",
    "IsForecastPeriod",
];
const FORECASTING_QUOTA: &[&str] = &[
    "Id",
    "QuotaOwnerId",
    "QuotaAmount",
    "StartDate",
    "PeriodId",
    "CurrencyIsoCode",
    "IsQuantity",
    "ForecastingTypeId",
    "CreatedDate",
    "LastModifiedDate",
];

/// A rep's quarterly quota: this share of their average quarterly bookings (won amount) over
/// the last [`TRAILING_QUARTERS`] elapsed quarters, rounded up to [`QUOTA_ROUNDING`] (a stretch most reps miss some
/// quarters, as real quotas are).
const QUOTA_STRETCH: f64 = 1.15;
const QUOTA_ROUNDING: u64 = 5_000;
const TRAILING_QUARTERS: i64 = 4;

/// Calendar quarter index (`year * 4 + quarter - 1`) of a day number.
fn quarter_of(day: i64) -> i64 {
    let (y, m, _) = civil_from_days(day);
    y * 4 + i64::from((m - 1) / 3)
}

/// First day of quarter index `q`.
fn quarter_start(q: i64) -> i64 {
    days_from_civil(q.div_euclid(4), (q.rem_euclid(4) * 3 + 1) as u32, 1)
}

/// All Salesforce export files, open at once, with the id sequences of the streamed objects.
pub struct SalesforceWriter {
    account: CsvOut,
    contact: CsvOut,
    user: CsvOut,
    opportunity: CsvOut,
    history: CsvOut,
    contact_role: CsvOut,
    task: CsvOut,
    event: CsvOut,
    period: CsvOut,
    quota: CsvOut,
    /// Won amount per (owner, close quarter), for the quotas.
    won: BTreeMap<(u16, i64), u64>,
    opportunities: u64,
    histories: u64,
    contact_roles: u64,
    tasks: u64,
    events: u64,
    name: String,
}

impl SalesforceWriter {
    /// Creates (truncates) the files under `root` (the `salesforce/` directory's parent).
    pub fn create(root: &Path) -> Result<Self, GenerateError> {
        Ok(SalesforceWriter {
            account: CsvOut::create(root, "salesforce/Account.csv", ACCOUNT)?,
            contact: CsvOut::create(root, "salesforce/Contact.csv", CONTACT)?,
            user: CsvOut::create(root, "salesforce/User.csv", USER)?,
            opportunity: CsvOut::create(root, "salesforce/Opportunity.csv", OPPORTUNITY)?,
            history: CsvOut::create(root, "salesforce/OpportunityHistory.csv", HISTORY)?,
            contact_role: CsvOut::create(
                root,
                "salesforce/OpportunityContactRole.csv",
                CONTACT_ROLE,
            )?,
            task: CsvOut::create(root, "salesforce/Task.csv", TASK)?,
            event: CsvOut::create(root, "salesforce/Event.csv", EVENT)?,
            period: CsvOut::create(root, "salesforce/Period.csv", PERIOD)?,
            quota: CsvOut::create(root, "salesforce/ForecastingQuota.csv", FORECASTING_QUOTA)?,
            won: BTreeMap::new(),
            opportunities: 0,
            histories: 0,
            contact_roles: 0,
            tasks: 0,
            events: 0,
            name: String::new(),
        })
    }

    /// Writes User.csv.
    pub fn users(&mut self, org: &Org) -> Result<(), GenerateError> {
        let w = &mut self.user;
        for (i, u) in org.users.iter().enumerate() {
            w.f(SfId::new(prefix::USER, i as u64))?;
            w.f(u.person.full_name())?;
            w.f(u.person.first_name())?;
            w.f(u.person.last_name())?;
            w.f(&*u.email)?;
            w.f(u.title)?;
            match u.manager {
                Some(m) => w.f(SfId::new(prefix::USER, u64::from(m)))?,
                None => w.empty()?,
            }
            w.f(boolean(u.active))?;
            w.f(sf_datetime(u.created))?;
            w.end()?;
        }
        Ok(())
    }

    /// Writes one Contact.csv row.
    pub fn contact(&mut self, c: &ContactRow<'_>, account: &Account) -> Result<(), GenerateError> {
        let w = &mut self.contact;
        w.f(SfId::new(prefix::CONTACT, u64::from(c.index)))?;
        w.f(SfId::new(prefix::ACCOUNT, u64::from(c.account)))?;
        w.f(c.person.first_name())?;
        w.f(c.person.last_name())?;
        w.f(c.email)?;
        w.f(c.title)?;
        w.f(c.phone)?;
        w.f(SfId::new(prefix::USER, u64::from(account.owner)))?;
        w.f(sf_datetime(c.created))?;
        w.f(sf_datetime(c.modified))?;
        w.f(sf_datetime(c.modified))?;
        w.f("false")?;
        w.end()
    }

    /// Writes Account.csv (after the deals, so Type and LastModifiedDate reflect them).
    pub fn accounts<R: Rng + ?Sized>(
        &mut self,
        rng: &mut R,
        org: &Org,
    ) -> Result<(), GenerateError> {
        let w = &mut self.account;
        let mut website = String::new();
        for (i, a) in org.accounts.iter().enumerate() {
            w.f(SfId::new(prefix::ACCOUNT, i as u64))?;
            w.f(&*a.name)?;
            w.f(if a.won {
                "Customer - Direct"
            } else {
                "Prospect"
            })?;
            if rng.random_bool(P_EMPTY_INDUSTRY) {
                w.empty()?;
            } else {
                w.f(INDUSTRIES[usize::from(a.industry)].sf_label)?;
            }
            website.clear();
            if !rng.random_bool(P_EMPTY_WEBSITE) {
                website.push_str(match rng.random_range(0..20u8) {
                    0..=10 => "www.",
                    11..=14 => "https://www.",
                    15..=16 => "http://",
                    _ => "",
                });
                website.push_str(&a.domain);
            }
            w.f(&website)?;
            w.f(Num::new(u64::from(a.employees)))?;
            w.f(Num::money(a.revenue))?;
            w.f(COUNTRIES[usize::from(a.country)].name)?;
            w.f(SfId::new(prefix::USER, u64::from(a.owner)))?;
            w.f(sf_datetime(a.created))?;
            w.f(sf_datetime(a.last_touch))?;
            w.f(sf_datetime(a.last_touch))?;
            w.f("false")?;
            w.end()?;
        }
        Ok(())
    }

    /// Writes one deal: its Opportunity row, OpportunityHistory (one row per stage entered),
    /// OpportunityContactRole, Task and Event rows.
    pub fn deal<R: Rng + ?Sized>(
        &mut self,
        rng: &mut R,
        org: &Org,
        deal: &Deal,
        scratch: &Scratch,
    ) -> Result<(), GenerateError> {
        let opp = SfId::new(prefix::OPPORTUNITY, self.opportunities);
        self.opportunities += 1;
        let owner = SfId::new(prefix::USER, u64::from(deal.owner));
        let account = &org.accounts[deal.account];
        let stage = deal.stage(scratch);
        let spec = stage.spec();
        let amount = (!rng.random_bool(P_EMPTY_AMOUNT)).then(|| Num::money(deal.amount));
        let dm = deal.ctx.duration_mult();
        if deal.outcome == Outcome::Won {
            *self
                .won
                .entry((deal.owner, quarter_of(deal.close_day)))
                .or_default() += deal.amount;
        }

        let w = &mut self.opportunity;
        w.f(opp)?;
        self.name.clear();
        self.name.push_str(&account.name);
        self.name.push_str(" - ");
        self.name.push_str(deal.product);
        w.f(&self.name)?;
        w.f(SfId::new(prefix::ACCOUNT, deal.account as u64))?;
        w.f(owner)?;
        match &amount {
            Some(a) => w.f(a)?,
            None => w.empty()?,
        }
        w.f("USD")?;
        w.f(spec.sf_label)?;
        w.f(Num::new(u64::from(spec.sf_probability)))?;
        w.f(date(deal.close_day))?;
        w.f(boolean(deal.outcome != Outcome::Open))?;
        w.f(boolean(deal.outcome == Outcome::Won))?;
        w.f(LEAD_SOURCES[deal.ctx.source].name)?;
        w.f(if deal.new_customer {
            "New Customer"
        } else {
            match rng.random_range(0..10u8) {
                0..=7 => "Existing Customer - Upgrade",
                8 => "Existing Customer - Replacement",
                _ => "Existing Customer - Downgrade",
            }
        })?;
        w.f(spec.forecast)?;
        w.f(sf_datetime(deal.created))?;
        w.f(sf_datetime(deal.last_modified))?;
        w.f(sf_datetime(deal.last_modified))?;
        w.f("false")?;
        w.end()?;

        for m in &scratch.moves {
            let w = &mut self.history;
            let spec = m.stage.spec();
            w.f(SfId::new(prefix::OPPORTUNITY_HISTORY, self.histories))?;
            self.histories += 1;
            w.f(opp)?;
            w.f(spec.sf_label)?;
            match &amount {
                Some(a) => w.f(a)?,
                None => w.empty()?,
            }
            w.f(Num::new(u64::from(spec.sf_probability)))?;
            let close = if m.stage.is_closed() {
                m.at.div_euclid(DAY)
            } else {
                expected_close_day(m.stage, m.at, dm)
            };
            w.f(date(close))?;
            w.f(spec.forecast)?;
            w.f(sf_datetime(m.at))?;
            w.f(owner)?;
            w.f(sf_datetime(m.at))?;
            w.f("false")?;
            w.end()?;
        }

        for r in &scratch.roles {
            let w = &mut self.contact_role;
            w.f(SfId::new(
                prefix::OPPORTUNITY_CONTACT_ROLE,
                self.contact_roles,
            ))?;
            self.contact_roles += 1;
            w.f(opp)?;
            w.f(SfId::new(prefix::CONTACT, u64::from(r.contact)))?;
            w.f(r.role)?;
            w.f(boolean(r.primary))?;
            w.f(sf_datetime(r.created))?;
            w.end()?;
        }

        for a in &scratch.activities {
            let who = SfId::new(prefix::CONTACT, u64::from(a.contact));
            match a.kind {
                ActivityKind::Call | ActivityKind::Email => {
                    let w = &mut self.task;
                    w.f(SfId::new(prefix::TASK, self.tasks))?;
                    self.tasks += 1;
                    w.f(opp)?;
                    w.f(who)?;
                    w.f(owner)?;
                    w.f(a.subject)?;
                    let kind = if a.kind == ActivityKind::Call {
                        "Call"
                    } else {
                        "Email"
                    };
                    w.f(kind)?;
                    w.f(if a.due_day.is_some() {
                        "Not Started"
                    } else {
                        "Completed"
                    })?;
                    w.f(date(a.due_day.unwrap_or(a.at.div_euclid(DAY))))?;
                    w.f(sf_datetime(a.at))?;
                    w.f(kind)?;
                    if a.kind == ActivityKind::Call && a.due_day.is_none() {
                        w.f(Num::new(u64::from(a.duration)))?;
                    } else {
                        w.empty()?;
                    }
                    w.end()?;
                }
                ActivityKind::Meeting | ActivityKind::Demo => {
                    let w = &mut self.event;
                    w.f(SfId::new(prefix::EVENT, self.events))?;
                    self.events += 1;
                    w.f(opp)?;
                    w.f(who)?;
                    w.f(owner)?;
                    w.f(a.subject)?;
                    w.f(if a.kind == ActivityKind::Demo {
                        "Demo"
                    } else {
                        "Meeting"
                    })?;
                    w.f(sf_datetime(a.at))?;
                    w.f(sf_datetime(a.at + i64::from(a.duration) * 60))?;
                    w.f(Num::new(u64::from(a.duration)))?;
                    w.f(date(a.at.div_euclid(DAY)))?;
                    let booked = business_snap(
                        a.at - rng.random_range(1..8) * DAY - rng.random_range(0..DAY),
                    )
                    .min(a.at)
                    .max(deal.created);
                    w.f(sf_datetime(booked))?;
                    w.end()?;
                }
            }
        }
        Ok(())
    }

    /// Writes Period.csv (the calendar quarters from the first deal's to the one after "today")
    /// and ForecastingQuota.csv (one quota per rep and quarter from the quarter the rep joined;
    /// after the deals, from each rep's bookings). Draws nothing from the random stream.
    pub fn quotas(&mut self, org: &Org, timeline: &Timeline) -> Result<(), GenerateError> {
        let first = quarter_of(timeline.start_day);
        let current = quarter_of(timeline.as_of_day);
        let last = current + 1;
        for q in first..=last {
            let w = &mut self.period;
            w.f(SfId::new(prefix::PERIOD, (q - first) as u64))?;
            w.f("Quarter")?;
            w.f(date(quarter_start(q)))?;
            w.f(date(quarter_start(q + 1) - 1))?;
            w.f(Num::new(q.rem_euclid(4) as u64 + 1))?;
            w.f(format!("Q{} {}", q.rem_euclid(4) + 1, q.div_euclid(4)))?;
            w.f(boolean(true))?;
            w.end()?;
        }
        // Average bookings per elapsed quarter a rep was there; reps without any take the
        // average of those with some.
        let joined = |rep: u16| quarter_of(org.users[usize::from(rep)].created.div_euclid(DAY));
        let average = |rep: u16| -> Option<f64> {
            let from = joined(rep).max(first).max(current - TRAILING_QUARTERS);
            let quarters = current - from;
            let total: u64 = self
                .won
                .range((rep, from)..(rep, current))
                .map(|(_, v)| *v)
                .sum();
            (quarters > 0 && total > 0).then(|| total as f64 / quarters as f64)
        };
        let known: Vec<f64> = org.reps.iter().filter_map(|&r| average(r)).collect();
        let fallback = if known.is_empty() {
            100_000.0
        } else {
            known.iter().sum::<f64>() / known.len() as f64
        };
        let ftype = SfId::new(prefix::FORECASTING_TYPE, 0);
        let mut seq = 0u64;
        for &rep in &org.reps {
            let raw = average(rep).unwrap_or(fallback) * QUOTA_STRETCH;
            let quota = (raw / QUOTA_ROUNDING as f64).ceil().max(1.0) as u64 * QUOTA_ROUNDING;
            let created = org.users[usize::from(rep)].created;
            for q in joined(rep).max(first)..=last {
                let w = &mut self.quota;
                w.f(SfId::new(prefix::FORECASTING_QUOTA, seq))?;
                seq += 1;
                w.f(SfId::new(prefix::USER, u64::from(rep)))?;
                w.f(Num::money(quota))?;
                w.f(date(quarter_start(q)))?;
                w.f(SfId::new(prefix::PERIOD, (q - first) as u64))?;
                w.f("USD")?;
                w.f(boolean(false))?;
                w.f(ftype)?;
                let stamp = sf_datetime((quarter_start(q) * DAY - 30 * DAY).max(created));
                w.f(stamp)?;
                w.f(stamp)?;
                w.end()?;
            }
        }
        Ok(())
    }

    /// Flushes every file.
    pub fn finish(self) -> Result<Vec<(&'static str, GeneratedFile)>, GenerateError> {
        [
            self.account,
            self.contact,
            self.user,
            self.opportunity,
            self.history,
            self.contact_role,
            self.task,
            self.event,
            self.period,
            self.quota,
        ]
        .into_iter()
        .map(CsvOut::finish)
        .collect()
    }
}

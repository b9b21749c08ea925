//! The in-memory part of an org: users (owners), accounts and the contacts' few fields that
//! deals need. Everything per deal is streamed; only these are held, in compact structs.

use std::collections::HashSet;

use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};

use super::format::{BUSINESS_CLOSE, BUSINESS_OPEN, DAY, business_snap, is_weekend};
use super::model::{INDUSTRIES, TIER_EMPLOYEES, pick_weighted};
use super::names::{self, CONTACT_TITLES, Person};

/// Share of accounts that existed before the first deal's created date.
pub const PREEXISTING_ACCOUNTS: f64 = 0.35;
/// Share of HubSpot companies that are the same real company as a Salesforce account.
pub const SHARED_COMPANY_SHARE: f64 = 0.30;

/// Seconds between the CreatedDate of an account's consecutive contacts (the first has the
/// account's CreatedDate).
pub const CONTACT_SPACING: i64 = 37;

/// The org's time frame.
#[derive(Clone, Copy, Debug)]
pub struct Timeline {
    /// Day number of the first possible deal.
    pub start_day: i64,
    /// Day number of "today".
    pub as_of_day: i64,
}

impl Timeline {
    /// First second of the start day.
    pub fn start(&self) -> i64 {
        self.start_day * DAY
    }

    /// Last second of the as_of day.
    pub fn horizon(&self) -> i64 {
        (self.as_of_day + 1) * DAY - 1
    }

    /// A business-hours timestamp (13:00–23:00 UTC, i.e. US working hours) on a weekday at or
    /// after `day`.
    pub fn business_time<R: Rng + ?Sized>(rng: &mut R, mut day: i64) -> i64 {
        while is_weekend(day) {
            day += 1;
        }
        day * DAY + rng.random_range(BUSINESS_OPEN..BUSINESS_CLOSE)
    }
}

/// A user (Salesforce) or owner (HubSpot).
pub struct User {
    pub person: Person,
    pub title: &'static str,
    pub manager: Option<u16>,
    pub active: bool,
    pub created: i64,
    pub email: Box<str>,
}

/// An account (Salesforce) or company (HubSpot).
pub struct Account {
    /// Name as this CRM spells it.
    pub name: Box<str>,
    pub domain: Box<str>,
    /// Length of the core name ("Blue Harbor Health") at the start of `name`.
    pub core_len: u16,
    pub created: i64,
    /// Last change: created, or the last stage move of one of its deals.
    pub last_touch: i64,
    pub revenue: u64,
    pub employees: u32,
    /// Global index of its first contact; its contacts are consecutive.
    pub first_contact: u32,
    /// Deals created so far.
    pub deals: u32,
    /// Owner: index into `Org::users`.
    pub owner: u16,
    pub industry: u8,
    pub country: u8,
    pub n_contacts: u8,
    /// Has a won deal.
    pub won: bool,
}

impl Account {
    /// Size tier by employees: index into `model::SIZE_BANDS`.
    pub fn tier(&self) -> usize {
        TIER_EMPLOYEES
            .iter()
            .position(|&t| self.employees < t)
            .unwrap_or(TIER_EMPLOYEES.len())
    }
}

/// One CRM's users, accounts and contacts.
pub struct Org {
    pub users: Vec<User>,
    /// Indices of the users who own accounts and deals.
    pub reps: Vec<u16>,
    /// Sorted by created.
    pub accounts: Vec<Account>,
    /// First-name index per contact (for activity subjects); contact ids derive from the index.
    pub contact_first: Vec<u16>,
}

impl Org {
    /// Picks the account of a deal created at `at`: among accounts created by then, biased to
    /// recently created ones (new logos) while older accounts keep buying.
    pub fn pick_account<R: Rng + ?Sized>(&self, rng: &mut R, at: i64) -> usize {
        let k = self.accounts.partition_point(|a| a.created <= at).max(1);
        let back = (k as f64 * rng.random::<f64>().powi(3)) as usize;
        k - 1 - back.min(k - 1)
    }
}

/// Builds `n` users: one VP, a manager per eight reps, and reps; emails unique at `domain`.
pub fn build_users<R: Rng + ?Sized>(
    rng: &mut R,
    n: usize,
    domain: &str,
    timeline: &Timeline,
) -> (Vec<User>, Vec<u16>) {
    let mut users = Vec::with_capacity(n);
    let mut reps = Vec::new();
    let mut emails: HashSet<String> = HashSet::new();
    let managers = if n >= 3 { ((n - 1) / 9).max(1) } else { 0 };
    for i in 0..n {
        let (title, manager) = if n < 3 {
            ("Account Executive", None)
        } else if i == 0 {
            ("VP of Sales", None)
        } else if i <= managers {
            ("Sales Manager", Some(0u16))
        } else {
            let title = match rng.random_range(0..10u8) {
                0..=4 => "Account Executive",
                5..=7 => "Senior Account Executive",
                _ => "Enterprise Account Executive",
            };
            (title, Some((1 + (i - managers - 1) % managers) as u16))
        };
        let mut person = Person::draw(rng);
        let mut email = String::new();
        for attempt in 0.. {
            email.clear();
            person.email_local_into(&mut email, 0);
            if attempt > 20 {
                email.push_str(&attempt.to_string());
            }
            email.push('@');
            email.push_str(domain);
            if !emails.contains(&email) {
                break;
            }
            person = Person::draw(rng);
        }
        emails.insert(email.clone());
        let hired = timeline.start_day - rng.random_range(30..1_500);
        let created = Timeline::business_time(rng, hired);
        if title.ends_with("Executive") {
            reps.push(i as u16);
        }
        users.push(User {
            person,
            title,
            manager,
            active: title != "Account Executive" || rng.random::<f64>() >= 0.08,
            created,
            email: email.into_boxed_str(),
        });
    }
    (users, reps)
}

/// Where a new account's identity comes from.
pub enum Identity<'a> {
    /// A fresh company.
    Fresh,
    /// Possibly one of these accounts of another CRM (`SHARED_COMPANY_SHARE` of the time).
    SharedWith(&'a [Account]),
}

/// Builds `n` accounts sorted by created date, owned by `reps`. Returns them and how many
/// share their domain with an account of `identity`.
pub fn build_accounts<R: Rng + ?Sized>(
    rng: &mut R,
    n: usize,
    reps: &[u16],
    timeline: &Timeline,
    used_slugs: &mut HashSet<Box<str>>,
    identity: Identity<'_>,
) -> (Vec<Account>, u64) {
    let mut created: Vec<i64> = (0..n)
        .map(|_| {
            let day = if rng.random::<f64>() < PREEXISTING_ACCOUNTS {
                timeline.start_day - rng.random_range(1..1_095)
            } else {
                rng.random_range(timeline.start_day..=timeline.as_of_day)
            };
            Timeline::business_time(rng, day)
        })
        .collect();
    created.sort_unstable();
    if let Some(first) = created.first_mut() {
        *first = (*first).min(timeline.start() - 30 * DAY);
    }
    let mut taken: HashSet<usize> = HashSet::new();
    let mut shared = 0u64;
    let mut accounts = Vec::with_capacity(n);
    for created in created {
        let others = match identity {
            Identity::SharedWith(others)
                if !others.is_empty() && rng.random::<f64>() < SHARED_COMPANY_SHARE =>
            {
                let mut pick = None;
                for _ in 0..8 {
                    let i = rng.random_range(0..others.len());
                    if taken.insert(i) {
                        pick = Some(&others[i]);
                        break;
                    }
                }
                pick
            }
            _ => None,
        };
        let (name, core_len, domain, industry, country, employees) = match others {
            Some(o) => {
                shared += 1;
                let core = o.name.get(..usize::from(o.core_len)).unwrap_or(&o.name);
                let name = names::name_variant(rng, core, &o.name);
                let employees = (f64::from(o.employees) * rng.random_range(0.9..1.1))
                    .round()
                    .max(1.0) as u32;
                let core_len = name.len() as u16;
                (
                    name,
                    core_len,
                    o.domain.to_string(),
                    o.industry,
                    o.country,
                    employees,
                )
            }
            None => {
                let industry = pick_weighted(rng, INDUSTRIES.iter().map(|i| i.effect.share));
                let company = names::company(rng, industry, used_slugs);
                let name = names::legal_name(rng, &company.core, company.country);
                let z: f64 = StandardNormal.sample(rng);
                let employees = (300.0 * (1.5 * z).exp()).clamp(5.0, 300_000.0) as u32;
                let core_len = company.core.len() as u16;
                (
                    name,
                    core_len,
                    company.domain,
                    industry as u8,
                    company.country as u8,
                    employees,
                )
            }
        };
        let z: f64 = StandardNormal.sample(rng);
        let revenue_per_employee = 180_000.0 * (0.4 * z).exp();
        let revenue =
            ((f64::from(employees) * revenue_per_employee / 1_000.0).round() as u64) * 1_000;
        let owner = if reps.is_empty() {
            0
        } else {
            reps[rng.random_range(0..reps.len())]
        };
        accounts.push(Account {
            name: name.into_boxed_str(),
            domain: domain.into_boxed_str(),
            core_len,
            created,
            last_touch: created,
            revenue,
            employees,
            first_contact: 0,
            deals: 0,
            owner,
            industry,
            country,
            n_contacts: 0,
            won: false,
        });
    }
    (accounts, shared)
}

/// One generated contact, handed to the CRM's writer.
pub struct ContactRow<'a> {
    pub index: u32,
    pub account: u32,
    pub person: Person,
    pub title: &'static str,
    pub email: &'a str,
    pub phone: &'a str,
    pub created: i64,
    pub modified: i64,
}

/// Gives every account 2–6 contacts (consecutive global indices), calling `emit` for each.
pub fn build_contacts<R: Rng + ?Sized, E>(
    rng: &mut R,
    org: &mut Org,
    timeline: &Timeline,
    mut emit: impl FnMut(&ContactRow<'_>, &Account) -> Result<(), E>,
) -> Result<(), E> {
    let mut emails: Vec<String> = Vec::with_capacity(6);
    let mut email = String::new();
    let mut phone = String::new();
    let horizon = timeline.horizon();
    for (ai, account) in org.accounts.iter_mut().enumerate() {
        let n = rng.random_range(2..=6u8);
        account.first_contact = org.contact_first.len() as u32;
        account.n_contacts = n;
        emails.clear();
        let style = rng.random_range(0..10u8);
        let style = if style < 7 {
            0
        } else if style < 9 {
            1
        } else {
            2
        };
        for position in 0..n {
            let person = Person::draw(rng);
            email.clear();
            person.email_local_into(&mut email, style);
            let mut suffix = 2;
            let local_len = email.len();
            while emails.contains(&email) {
                email.truncate(local_len);
                email.push_str(&suffix.to_string());
                suffix += 1;
            }
            emails.push(email.clone());
            email.push('@');
            email.push_str(&account.domain);
            phone.clear();
            phone.push_str(names::COUNTRIES[usize::from(account.country)].phone);
            phone.push(' ');
            phone.push_str(&rng.random_range(200..1_000u32).to_string());
            phone.push(' ');
            phone.push_str(&rng.random_range(1_000_000..10_000_000u32).to_string());
            // Entered together with the account, a few seconds apart.
            let created = (account.created + CONTACT_SPACING * i64::from(position)).min(horizon);
            let modified = business_snap(created + rng.random_range(0..240 * DAY)).min(horizon);
            let row = ContactRow {
                index: org.contact_first.len() as u32,
                account: ai as u32,
                person,
                title: CONTACT_TITLES[rng.random_range(0..CONTACT_TITLES.len())],
                email: &email,
                phone: &phone,
                created,
                modified,
            };
            emit(&row, account)?;
            org.contact_first.push(person.first);
        }
    }
    Ok(())
}

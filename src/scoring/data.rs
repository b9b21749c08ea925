//! What scoring reads from the lake, as plain per-deal vectors: the deals, their stage stays,
//! activity and conversation times, contact roles, the reps, and the simulated p_win.
//!
//! Times are seconds since the epoch (`f64`). Only `staging.deals` is required; a missing
//! history, activities, conversations, contacts or users table reads as empty (a warning
//! names it), `marts.deal_forecasts` is used when present.

use std::collections::HashMap;

use super::columns::{collect, flags, floats, strings};
use super::error::{Result, ScoringError};
use crate::lake::{DatasetRef, Lake, WorkspaceId};
use crate::sql::{SessionOptions, SqlSession};

/// The open stages in process order; a stay's `stage` indexes this.
pub const OPEN_STAGES: [&str; 6] = [
    "lead",
    "qualification",
    "discovery",
    "demo",
    "proposal",
    "negotiation",
];
pub const CLOSED_WON: &str = "closed_won";
pub const CLOSED_LOST: &str = "closed_lost";
pub const DAY: f64 = 86_400.0;

/// The index of an open stage.
pub fn open_stage(name: &str) -> Option<usize> {
    OPEN_STAGES.iter().position(|s| *s == name)
}

/// One deal of `staging.deals`.
#[derive(Debug, Clone, PartialEq)]
pub struct Deal {
    pub id: String,
    pub name: String,
    pub source_id: String,
    pub owner_id: Option<String>,
    pub segment: String,
    pub industry: String,
    pub lead_source: String,
    /// Amount in USD (the deal currency when unconverted).
    pub amount: Option<f64>,
    /// The normalized stage; `None` when unmapped.
    pub stage: Option<String>,
    pub is_closed: bool,
    pub is_won: bool,
    pub created_at: Option<f64>,
    pub closed_at: Option<f64>,
}

impl Deal {
    /// A deal with the given stage and times, every attribute `unknown` (tests, benchmarks).
    pub fn new(id: &str, stage: &str, created_at: f64) -> Self {
        let closed = stage == CLOSED_WON || stage == CLOSED_LOST;
        Self {
            id: id.to_string(),
            name: id.to_string(),
            source_id: id.to_string(),
            owner_id: None,
            segment: "unknown".into(),
            industry: "unknown".into(),
            lead_source: "unknown".into(),
            amount: None,
            stage: Some(stage.to_string()),
            is_closed: closed,
            is_won: stage == CLOSED_WON,
            created_at: Some(created_at),
            closed_at: None,
        }
    }

    /// The open-stage index of its current stage.
    pub fn open_stage(&self) -> Option<usize> {
        if self.is_closed {
            return None;
        }
        self.stage.as_deref().and_then(open_stage)
    }
}

/// One stay in an open stage: entered at `entered`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stay {
    pub stage: usize,
    pub entered: f64,
}

/// Contact roles on a deal.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Roles {
    /// Any contact role is recorded (HubSpot has none: champion and blocker are unknown).
    pub known: bool,
    pub champion: bool,
    pub blocker: bool,
    /// Distinct contacts with a role.
    pub contacts: u32,
}

/// A contact role added to a deal: when (its `created_at`; `None` when the source has no
/// time, taken as known from the deal's start) and what it says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoleEntry {
    pub at: Option<f64>,
    /// A hash of the contact id (distinct contacts are counted).
    pub contact: u64,
    pub champion: bool,
    pub blocker: bool,
}

/// A rep of `staging.users`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct User {
    pub name: Option<String>,
    pub manager_id: Option<String>,
}

/// Everything scoring reads for one workspace; the per-deal vectors are aligned with `deals`.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub workspace: String,
    pub deals: Vec<Deal>,
    /// Open-stage stays per deal, in time order (closing moves are not stays).
    pub stays: Vec<Vec<Stay>>,
    /// Closing time from the history (the move to closed_won / closed_lost), per deal.
    pub closed_moves: Vec<Option<f64>>,
    /// Activity times per deal, sorted.
    pub activities: Vec<Vec<f64>>,
    /// Conversation start times per deal, sorted.
    pub conversations: Vec<Vec<f64>>,
    /// The roles now (what open deals are scored with).
    pub roles: Vec<Roles>,
    /// Each deal's role rows with their times, so a training snapshot sees only the roles
    /// recorded by then. Empty when only the aggregate is known (tests, benchmarks).
    pub role_entries: Vec<Vec<RoleEntry>>,
    pub users: HashMap<String, User>,
    /// `marts.deal_forecasts` p_win per deal, when simulated.
    pub simulated: Vec<Option<f64>>,
    /// The data's "now": the latest stage change, creation or close time.
    pub as_of: f64,
    /// Tables that were missing and read as empty.
    pub missing: Vec<String>,
}

impl Inputs {
    /// Empty per-deal vectors for `deals` (tests and benchmarks fill them).
    pub fn from_deals(workspace: &str, deals: Vec<Deal>) -> Self {
        let n = deals.len();
        Self {
            workspace: workspace.to_string(),
            deals,
            stays: vec![Vec::new(); n],
            closed_moves: vec![None; n],
            activities: vec![Vec::new(); n],
            conversations: vec![Vec::new(); n],
            roles: vec![Roles::default(); n],
            role_entries: vec![Vec::new(); n],
            users: HashMap::new(),
            simulated: vec![None; n],
            as_of: 0.0,
            missing: Vec::new(),
        }
    }

    /// When deal `i` closed: its `closed_at`, else its closing move.
    pub fn closed_at(&self, i: usize) -> Option<f64> {
        let d = &self.deals[i];
        if !d.is_closed {
            return None;
        }
        d.closed_at.or(self.closed_moves[i])
    }

    /// The roles of deal `i` as recorded at `t`: those added by then (a role whose row has no
    /// time counts from the start). Without role rows, the roles now.
    pub fn roles_at(&self, i: usize, t: f64) -> Roles {
        let entries = &self.role_entries[i];
        if entries.is_empty() {
            return self.roles[i];
        }
        let mut roles = Roles::default();
        let mut contacts: Vec<u64> = Vec::with_capacity(entries.len());
        for e in entries.iter().filter(|e| e.at.is_none_or(|at| at <= t)) {
            roles.known = true;
            roles.champion |= e.champion;
            roles.blocker |= e.blocker;
            if !contacts.contains(&e.contact) {
                contacts.push(e.contact);
            }
        }
        roles.contacts = contacts.len() as u32;
        roles
    }

    /// Sets `as_of` to the latest time in the data.
    pub fn set_as_of_from_data(&mut self) {
        let mut latest = f64::NEG_INFINITY;
        for (i, d) in self.deals.iter().enumerate() {
            for t in [d.created_at, d.closed_at, self.closed_moves[i]]
                .into_iter()
                .flatten()
            {
                latest = latest.max(t);
            }
            if let Some(s) = self.stays[i].last() {
                latest = latest.max(s.entered);
            }
        }
        self.as_of = if latest.is_finite() { latest } else { 0.0 };
    }
}

/// Reads the inputs of `workspace`.
pub async fn load_inputs(lake: &Lake, workspace: &WorkspaceId) -> Result<Inputs> {
    let session = SqlSession::open(
        lake,
        &SessionOptions {
            workspace: Some(workspace.clone()),
            ..SessionOptions::default()
        },
    )
    .await?;
    load_from_session(&session, workspace).await
}

pub(super) async fn load_from_session(
    session: &SqlSession,
    workspace: &WorkspaceId,
) -> Result<Inputs> {
    let tables = session.tables();
    let has = |name: &str| {
        name.parse::<DatasetRef>()
            .is_ok_and(|d| tables.contains(&d))
    };
    if !has("staging.deals") {
        return Err(ScoringError::NoDeals {
            workspace: workspace.to_string(),
        });
    }
    let ds = |name: &str| -> Result<DatasetRef> { Ok(name.parse()?) };

    let deals_ds = ds("staging.deals")?;
    let batches = collect(
        session,
        "SELECT id, coalesce(name, '') AS name, coalesce(source_id, '') AS source_id, owner_id, \
           coalesce(nullif(lower(trim(segment)), ''), 'unknown') AS segment, \
           coalesce(nullif(trim(industry), ''), 'unknown') AS industry, \
           coalesce(nullif(trim(lead_source), ''), 'unknown') AS lead_source, \
           coalesce(amount_usd, amount) AS amount, stage, \
           coalesce(is_closed, false) OR coalesce(stage IN ('closed_won', 'closed_lost'), false) AS is_closed, \
           coalesce(is_won, false) OR coalesce(stage = 'closed_won', false) AS is_won, \
           date_part('epoch', created_at) AS created, date_part('epoch', closed_at) AS closed \
         FROM staging.deals WHERE id IS NOT NULL ORDER BY id",
    )
    .await?;
    let mut deals = Vec::new();
    for b in &batches {
        let id = strings(b, &deals_ds, "id")?;
        let name = strings(b, &deals_ds, "name")?;
        let source_id = strings(b, &deals_ds, "source_id")?;
        let owner = strings(b, &deals_ds, "owner_id")?;
        let segment = strings(b, &deals_ds, "segment")?;
        let industry = strings(b, &deals_ds, "industry")?;
        let lead_source = strings(b, &deals_ds, "lead_source")?;
        let amount = floats(b, &deals_ds, "amount")?;
        let stage = strings(b, &deals_ds, "stage")?;
        let is_closed = flags(b, &deals_ds, "is_closed")?;
        let is_won = flags(b, &deals_ds, "is_won")?;
        let created = floats(b, &deals_ds, "created")?;
        let closed = floats(b, &deals_ds, "closed")?;
        for r in 0..b.num_rows() {
            let text = |v: &Vec<Option<String>>| v[r].clone().unwrap_or_default();
            deals.push(Deal {
                id: text(&id),
                name: text(&name),
                source_id: text(&source_id),
                owner_id: owner[r].clone(),
                segment: text(&segment),
                industry: text(&industry),
                lead_source: text(&lead_source),
                amount: amount[r],
                stage: stage[r].clone(),
                is_closed: is_closed[r],
                is_won: is_won[r] && is_closed[r],
                created_at: created[r],
                closed_at: closed[r],
            });
        }
    }
    let mut inputs = Inputs::from_deals(workspace.as_str(), deals);
    let index: HashMap<String, usize> = inputs
        .deals
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.clone(), i))
        .collect();

    if has("staging.deal_stage_history") {
        let hist = ds("staging.deal_stage_history")?;
        let batches = collect(
            session,
            "SELECT deal_id, to_stage, date_part('epoch', transitioned_at) AS at \
             FROM staging.deal_stage_history \
             WHERE deal_id IS NOT NULL AND to_stage IS NOT NULL AND transitioned_at IS NOT NULL \
             ORDER BY deal_id, transitioned_at, to_stage",
        )
        .await?;
        for b in &batches {
            let deal = strings(b, &hist, "deal_id")?;
            let to = strings(b, &hist, "to_stage")?;
            let at = floats(b, &hist, "at")?;
            for r in 0..b.num_rows() {
                let (Some(d), Some(to), Some(at)) = (&deal[r], &to[r], at[r]) else {
                    continue;
                };
                let Some(&i) = index.get(d) else { continue };
                match open_stage(to) {
                    Some(stage) => inputs.stays[i].push(Stay { stage, entered: at }),
                    None if to == CLOSED_WON || to == CLOSED_LOST => {
                        inputs.closed_moves[i] = Some(at);
                    }
                    None => {}
                }
            }
        }
    } else {
        inputs.missing.push("staging.deal_stage_history".into());
    }

    if has("staging.activities") {
        let acts = ds("staging.activities")?;
        let batches = collect(
            session,
            "SELECT deal_id, date_part('epoch', occurred_at) AS at FROM staging.activities \
             WHERE deal_id IS NOT NULL AND occurred_at IS NOT NULL \
               AND NOT coalesce(is_internal, false)",
        )
        .await?;
        fill_times(&batches, &acts, "at", &index, &mut inputs.activities)?;
    } else {
        inputs.missing.push("staging.activities".into());
    }
    if has("staging.conversations") {
        let convs = ds("staging.conversations")?;
        let batches = collect(
            session,
            "SELECT deal_id, date_part('epoch', started_at) AS at FROM staging.conversations \
             WHERE deal_id IS NOT NULL AND started_at IS NOT NULL \
               AND NOT coalesce(is_internal, false)",
        )
        .await?;
        fill_times(&batches, &convs, "at", &index, &mut inputs.conversations)?;
    } else {
        inputs.missing.push("staging.conversations".into());
    }

    if has("staging.deal_contacts") {
        let dc = ds("staging.deal_contacts")?;
        let batches = collect(
            session,
            "SELECT deal_id, contact_id, coalesce(role = 'champion', false) AS champion, \
               coalesce(role = 'blocker', false) AS blocker, \
               date_part('epoch', created_at) AS at \
             FROM staging.deal_contacts WHERE deal_id IS NOT NULL",
        )
        .await?;
        for b in &batches {
            let deal = strings(b, &dc, "deal_id")?;
            let contact = strings(b, &dc, "contact_id")?;
            let champion = flags(b, &dc, "champion")?;
            let blocker = flags(b, &dc, "blocker")?;
            let at = floats(b, &dc, "at")?;
            for r in 0..b.num_rows() {
                let Some(&i) = deal[r].as_ref().and_then(|d| index.get(d)) else {
                    continue;
                };
                inputs.role_entries[i].push(RoleEntry {
                    at: at[r],
                    contact: contact_hash(contact[r].as_deref().unwrap_or_default()),
                    champion: champion[r],
                    blocker: blocker[r],
                });
            }
        }
        for i in 0..inputs.deals.len() {
            if !inputs.role_entries[i].is_empty() {
                inputs.roles[i] = inputs.roles_at(i, f64::INFINITY);
            }
        }
    } else {
        inputs.missing.push("staging.deal_contacts".into());
    }

    if has("staging.users") {
        let users = ds("staging.users")?;
        let batches = collect(session, "SELECT id, name, manager_id FROM staging.users").await?;
        for b in &batches {
            let id = strings(b, &users, "id")?;
            let name = strings(b, &users, "name")?;
            let manager = strings(b, &users, "manager_id")?;
            for r in 0..b.num_rows() {
                if let Some(id) = &id[r] {
                    inputs.users.insert(
                        id.clone(),
                        User {
                            name: name[r].clone(),
                            manager_id: manager[r].clone(),
                        },
                    );
                }
            }
        }
    }

    if has("marts.deal_forecasts") {
        let f = ds("marts.deal_forecasts")?;
        let batches = collect(session, "SELECT deal_id, p_win FROM marts.deal_forecasts").await?;
        for b in &batches {
            let deal = strings(b, &f, "deal_id")?;
            let p = floats(b, &f, "p_win")?;
            for r in 0..b.num_rows() {
                if let Some(&i) = deal[r].as_ref().and_then(|d| index.get(d)) {
                    inputs.simulated[i] = p[r].filter(|p| (0.0..=1.0).contains(p));
                }
            }
        }
    }
    if !inputs.missing.is_empty() {
        tracing::warn!(
            workspace = workspace.as_str(),
            missing = inputs.missing.join(", "),
            "scoring reads missing staging tables as empty"
        );
    }
    inputs.set_as_of_from_data();
    Ok(inputs)
}

fn fill_times(
    batches: &[arrow::array::RecordBatch],
    dataset: &DatasetRef,
    column: &str,
    index: &HashMap<String, usize>,
    out: &mut [Vec<f64>],
) -> Result<()> {
    for b in batches {
        let deal = strings(b, dataset, "deal_id")?;
        let at = floats(b, dataset, column)?;
        for r in 0..b.num_rows() {
            if let (Some(&i), Some(t)) = (deal[r].as_ref().and_then(|d| index.get(d)), at[r]) {
                out[i].push(t);
            }
        }
    }
    for times in out.iter_mut() {
        times.sort_by(f64::total_cmp);
    }
    Ok(())
}

/// A stable hash of a contact id (FNV-1a): distinct contacts are counted by it.
fn contact_hash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

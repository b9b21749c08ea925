//! One deal: its context, amount, stage moves, contact roles and activities. The vectors live in
//! a [`Scratch`] reused from deal to deal, so nothing per deal outlives it.

use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};

use super::format::{DAY, HOUR, business_snap};
use super::model::{
    ACTIVITY_BASE, ACTIVITY_PER_STAGE, AMOUNT_SIGMA, BAND_AMOUNTS, BLOCKER, CHAMPION, Context,
    LEAD_SOURCES, Move, P_BAND_FROM_TIER, SIZE_BANDS, Stage, expected_close_day, pick_weighted,
    simulate,
};
use super::names::PRODUCTS;
use super::org::{Account, CONTACT_SPACING, Org};

/// Salesforce's standard OpportunityContactRole roles, with how often they are used.
const STANDARD_ROLES: [(&str, f64); 9] = [
    ("Decision Maker", 0.22),
    ("Economic Buyer", 0.15),
    ("Evaluator", 0.15),
    ("Technical Buyer", 0.14),
    ("Influencer", 0.12),
    ("Business User", 0.10),
    ("Executive Sponsor", 0.06),
    ("Economic Decision Maker", 0.03),
    ("Other", 0.03),
];
/// Custom role value of the deal's champion.
pub const ROLE_CHAMPION: &str = "Champion";
/// Custom role value of the deal's unresolved blocker.
pub const ROLE_BLOCKER: &str = "Blocker";
/// Probability that a deal is owned by its account's owner (else a random rep).
const P_ACCOUNT_OWNER: f64 = 0.7;
/// Probability that an open deal has a planned ("Not Started") follow-up task.
const P_OPEN_FOLLOW_UP: f64 = 0.6;

/// A contact on the deal.
pub struct Role {
    /// Global contact index.
    pub contact: u32,
    pub role: &'static str,
    pub primary: bool,
    pub created: i64,
}

/// Kind of activity.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ActivityKind {
    Call,
    Email,
    Meeting,
    Demo,
}

/// A task (call, email) or event (meeting, demo).
pub struct Activity {
    pub kind: ActivityKind,
    /// When it happened (completed) or was logged (planned).
    pub at: i64,
    /// Due day of a planned task; `None` when completed.
    pub due_day: Option<i64>,
    pub contact: u32,
    pub subject: &'static str,
    /// Call seconds or event minutes.
    pub duration: u32,
}

/// Per-deal buffers reused across deals.
#[derive(Default)]
pub struct Scratch {
    pub moves: Vec<Move>,
    pub roles: Vec<Role>,
    pub activities: Vec<Activity>,
}

/// Won, lost or still open at as_of.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    Won,
    Lost,
    Open,
}

/// The scalar facts of one deal (the vectors are in the [`Scratch`]).
pub struct Deal {
    pub account: usize,
    pub owner: u16,
    pub ctx: Context,
    pub amount: u64,
    pub product: &'static str,
    pub created: i64,
    /// First deal of the account, or the account has no win yet.
    pub new_customer: bool,
    /// Actual close day (closed) or expected close day (open).
    pub close_day: i64,
    pub last_modified: i64,
    pub outcome: Outcome,
}

impl Deal {
    /// The current (final) stage.
    pub fn stage(&self, scratch: &Scratch) -> Stage {
        scratch.moves.last().map_or(Stage::Lead, |m| m.stage)
    }
}

/// Draws one deal created at `created` in `org`, runs its process to `horizon`, fills the
/// scratch (roles always, activities when `with_activities`), and updates the account.
pub fn draw<R: Rng + ?Sized>(
    rng: &mut R,
    org: &mut Org,
    created: i64,
    horizon: i64,
    with_activities: bool,
    scratch: &mut Scratch,
) -> Deal {
    let ai = org.pick_account(rng, created);
    let account = &org.accounts[ai];
    let owner = if rng.random_bool(P_ACCOUNT_OWNER) || org.reps.is_empty() {
        account.owner
    } else {
        org.reps[rng.random_range(0..org.reps.len())]
    };
    let band = if rng.random_bool(P_BAND_FROM_TIER) {
        account.tier()
    } else {
        pick_weighted(rng, SIZE_BANDS.iter().map(|b| b.share))
    };
    let ctx = Context {
        champion: rng.random_bool(CHAMPION[0].share),
        blocker: rng.random_bool(BLOCKER[0].share),
        band,
        industry: usize::from(account.industry),
        source: pick_weighted(rng, LEAD_SOURCES.iter().map(|s| s.share)),
    };
    let (median, low, high) = BAND_AMOUNTS[band];
    let z: f64 = StandardNormal.sample(rng);
    let raw = (median * (AMOUNT_SIGMA * z).exp()).clamp(low as f64, (high - 100) as f64);
    let amount = ((raw / 100.0).round() as u64 * 100).clamp(low, high - 100);
    let product = PRODUCTS[rng.random_range(0..PRODUCTS.len())];
    let new_customer = account.deals == 0 || !account.won;

    simulate(rng, &ctx, created, horizon, &mut scratch.moves);
    let last = scratch.moves.last().copied().unwrap_or(Move {
        stage: Stage::Lead,
        at: created,
    });
    let horizon_day = horizon.div_euclid(DAY);
    let (outcome, close_day, last_modified) = match last.stage {
        Stage::ClosedWon => (Outcome::Won, last.at.div_euclid(DAY), last.at),
        Stage::ClosedLost => (Outcome::Lost, last.at.div_euclid(DAY), last.at),
        stage => {
            let expected = expected_close_day(stage, last.at, ctx.duration_mult());
            if expected > horizon_day {
                (Outcome::Open, expected, last.at)
            } else {
                // The rep pushed the slipped close date out recently.
                let pushed = horizon_day + rng.random_range(7..60);
                let touched = business_snap(horizon - rng.random_range(0..14 * DAY))
                    .min(horizon)
                    .max(last.at);
                (Outcome::Open, pushed, touched)
            }
        }
    };

    draw_roles(rng, account, &ctx, created, horizon, &mut scratch.roles);
    scratch.activities.clear();
    if with_activities {
        draw_activities(rng, &ctx, created, horizon, outcome, scratch);
    }

    let account = &mut org.accounts[ai];
    account.deals += 1;
    account.won |= outcome == Outcome::Won;
    account.last_touch = account.last_touch.max(last.at);
    Deal {
        account: ai,
        owner,
        ctx,
        amount,
        product,
        created,
        new_customer,
        close_day,
        last_modified,
        outcome,
    }
}

/// 1–4 contacts on the deal: the champion first (primary), standard roles, the blocker last.
fn draw_roles<R: Rng + ?Sized>(
    rng: &mut R,
    account: &Account,
    ctx: &Context,
    created: i64,
    horizon: i64,
    roles: &mut Vec<Role>,
) {
    roles.clear();
    let available = usize::from(account.n_contacts);
    let mut wanted = rng.random_range(1..=4usize);
    if ctx.blocker {
        wanted = wanted.max(2 + usize::from(ctx.champion));
    } else if ctx.champion {
        wanted = wanted.max(1);
    }
    let n = wanted.min(available);
    let mut order: [u8; 8] = [0, 1, 2, 3, 4, 5, 6, 7];
    for i in 0..n {
        let j = rng.random_range(i..available);
        order.swap(i, j);
    }
    for (i, &offset) in order[..n].iter().enumerate() {
        let role = if i == 0 && ctx.champion {
            ROLE_CHAMPION
        } else if i == n - 1 && ctx.blocker {
            ROLE_BLOCKER
        } else {
            STANDARD_ROLES[pick_weighted(rng, STANDARD_ROLES.iter().map(|r| r.1))].0
        };
        roles.push(Role {
            contact: account.first_contact + u32::from(offset),
            role,
            primary: i == 0,
            // Not before its contact exists.
            created: business_snap(created + rng.random_range(0..2 * DAY))
                .max(account.created + CONTACT_SPACING * 8)
                .min(horizon),
        });
    }
}

/// Poisson draw (Knuth; the means here are small).
fn poisson<R: Rng + ?Sized>(rng: &mut R, mean: f64) -> usize {
    let limit = (-mean).exp();
    let mut p = 1.0;
    let mut k = 0;
    loop {
        p *= rng.random::<f64>();
        if p <= limit || k >= 500 {
            return k;
        }
        k += 1;
    }
}

fn draw_activities<R: Rng + ?Sized>(
    rng: &mut R,
    ctx: &Context,
    created: i64,
    horizon: i64,
    outcome: Outcome,
    scratch: &mut Scratch,
) {
    if scratch.roles.is_empty() {
        return;
    }
    let moves = &scratch.moves;
    let end = match outcome {
        Outcome::Open => horizon,
        _ => moves.last().map_or(horizon, |m| m.at),
    };
    let span = (end - created).max(HOUR);
    let mean = (ACTIVITY_BASE + ACTIVITY_PER_STAGE * moves.len() as f64) * ctx.activity_mult();
    let n = poisson(rng, mean);
    let contacts = &scratch.roles;
    for _ in 0..n {
        let raw = created + rng.random_range(0..span);
        let snapped = business_snap(raw);
        let at = if snapped <= end { snapped } else { raw };
        let stage = moves
            .iter()
            .take_while(|m| m.at <= at)
            .last()
            .map_or(Stage::Lead, |m| m.stage);
        let contact = contacts[rng.random_range(0..contacts.len())].contact;
        let u = rng.random::<f64>();
        let (kind, subject, duration) = if u < 0.40 {
            let subjects = [
                "Call",
                "Discovery call",
                "Follow-up call",
                "Check-in call",
                "Left voicemail",
            ];
            let z: f64 = StandardNormal.sample(rng);
            let secs = (420.0 * (0.6 * z).exp()).clamp(30.0, 3_600.0) as u32;
            (
                ActivityKind::Call,
                subjects[rng.random_range(0..subjects.len())],
                secs,
            )
        } else if u < 0.75 {
            let subjects = match stage {
                Stage::Proposal => ["Email: Proposal", "Email: Pricing questions"],
                Stage::Negotiation => ["Email: Contract redlines", "Email: Order form"],
                _ => ["Email: Follow up", "Email: Next steps"],
            };
            (ActivityKind::Email, subjects[rng.random_range(0..2)], 0)
        } else {
            let demo = stage == Stage::Demo || (stage == Stage::Discovery && rng.random_bool(0.3));
            if demo {
                (ActivityKind::Demo, "Product demo", 60)
            } else {
                let subject = match stage {
                    Stage::Lead | Stage::Qualification => "Intro meeting",
                    Stage::Discovery => "Discovery meeting",
                    Stage::Proposal => "Proposal review",
                    Stage::Negotiation => "Contract negotiation",
                    _ => "Meeting",
                };
                (
                    ActivityKind::Meeting,
                    subject,
                    [30, 45, 60][rng.random_range(0..3)],
                )
            }
        };
        let at = if matches!(kind, ActivityKind::Meeting | ActivityKind::Demo) {
            at - at.rem_euclid(30 * 60)
        } else {
            at
        };
        scratch.activities.push(Activity {
            kind,
            at: at.max(created),
            due_day: None,
            contact,
            subject,
            duration,
        });
    }
    if outcome == Outcome::Open && rng.random_bool(P_OPEN_FOLLOW_UP) {
        let at = business_snap(horizon - rng.random_range(0..7 * DAY))
            .min(horizon)
            .max(created);
        let due = horizon.div_euclid(DAY) + rng.random_range(1..15);
        let contact = contacts[rng.random_range(0..contacts.len())].contact;
        scratch.activities.push(Activity {
            kind: ActivityKind::Call,
            at,
            due_day: Some(due),
            contact,
            subject: "Follow up",
            duration: 0,
        });
    }
    scratch.activities.sort_by_key(|a| a.at);
}

//! The stage process: one table of constants (the single source of every number that
//! `docs/generator.md` documents) and the per-deal simulation.
//!
//! A deal walks lead → qualification → discovery → demo → proposal → negotiation → closed_won,
//! and can be lost from every open stage. At each open stage it waits a log-normal time, then
//! moves: back one stage (regression), forward (advance, sometimes two stages: a skip), or to
//! closed_lost. The forward probability and the waiting time are scaled by the deal's context.

use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};

use super::format::{DAY, HOUR, business_snap};

/// A process stage. The discriminant indexes [`STAGES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Lead = 0,
    Qualification,
    Discovery,
    Demo,
    Proposal,
    Negotiation,
    ClosedWon,
    ClosedLost,
}

impl Stage {
    const ALL: [Stage; 8] = [
        Stage::Lead,
        Stage::Qualification,
        Stage::Discovery,
        Stage::Demo,
        Stage::Proposal,
        Stage::Negotiation,
        Stage::ClosedWon,
        Stage::ClosedLost,
    ];

    /// The stage's row of [`STAGES`].
    pub fn spec(self) -> &'static StageSpec {
        &STAGES[self as usize]
    }

    /// Closed won or closed lost.
    pub fn is_closed(self) -> bool {
        self >= Stage::ClosedWon
    }

    fn from_index(i: usize) -> Stage {
        Stage::ALL[i.min(7)]
    }
}

/// One row of the stage table.
pub struct StageSpec {
    /// Process key (what the miner sees after staging).
    pub key: &'static str,
    /// Salesforce standard sales-process label (`StageName`).
    pub sf_label: &'static str,
    /// Salesforce default `Probability` of the stage.
    pub sf_probability: u8,
    /// Salesforce default forecast category (`ForecastCategoryName`).
    pub forecast: &'static str,
    /// Index into [`HS_STAGES`] of the HubSpot default-pipeline stage it maps to.
    pub hs_stage: usize,
    /// Base probability of moving forward (advance or skip) from this stage.
    pub advance: f64,
    /// Median days spent in the stage before the next move.
    pub median_days: f64,
}

/// The stage table. Closed stages have no advance probability and no duration.
pub const STAGES: [StageSpec; 8] = [
    stage("lead", "Prospecting", 10, "Pipeline", 0, 0.66, 5.0),
    stage(
        "qualification",
        "Qualification",
        10,
        "Pipeline",
        1,
        0.72,
        9.0,
    ),
    stage("discovery", "Needs Analysis", 20, "Pipeline", 2, 0.76, 14.0),
    stage("demo", "Value Proposition", 50, "Pipeline", 2, 0.78, 12.0),
    stage(
        "proposal",
        "Proposal/Price Quote",
        75,
        "Pipeline",
        3,
        0.80,
        18.0,
    ),
    stage(
        "negotiation",
        "Negotiation/Review",
        90,
        "Pipeline",
        4,
        0.84,
        28.0,
    ),
    stage("closed_won", "Closed Won", 100, "Closed", 5, 0.0, 0.0),
    stage("closed_lost", "Closed Lost", 0, "Omitted", 6, 0.0, 0.0),
];

const fn stage(
    key: &'static str,
    sf_label: &'static str,
    sf_probability: u8,
    forecast: &'static str,
    hs_stage: usize,
    advance: f64,
    median_days: f64,
) -> StageSpec {
    StageSpec {
        key,
        sf_label,
        sf_probability,
        forecast,
        hs_stage,
        advance,
        median_days,
    }
}

/// HubSpot default pipeline ("Sales Pipeline"): (internal id, label).
pub const HS_STAGES: [(&str, &str); 7] = [
    ("appointmentscheduled", "Appointment Scheduled"),
    ("qualifiedtobuy", "Qualified To Buy"),
    ("presentationscheduled", "Presentation Scheduled"),
    ("decisionmakerboughtin", "Decision Maker Bought-In"),
    ("contractsent", "Contract Sent"),
    ("closedwon", "Closed Won"),
    ("closedlost", "Closed Lost"),
];

/// Probability that a move from qualification or later goes back one stage.
pub const P_REGRESS: f64 = 0.03;
/// Share of forward moves from lead..demo that skip a stage (≈4% of all moves).
pub const P_SKIP: f64 = 0.06;
/// The context-scaled forward probability is clamped to [MIN_FORWARD, MAX_FORWARD].
pub const MIN_FORWARD: f64 = 0.05;
/// See [`MIN_FORWARD`].
pub const MAX_FORWARD: f64 = 0.96;
/// Log-normal sigma of the stage durations.
pub const DURATION_SIGMA: f64 = 0.55;
/// A deal still open after this many moves is closed lost (guards endless regressions).
pub const MAX_MOVES: usize = 24;
/// Activities per deal: Poisson with mean (ACTIVITY_BASE + ACTIVITY_PER_STAGE × stages entered)
/// × the context's activity multiplier.
pub const ACTIVITY_BASE: f64 = 1.5;
/// See [`ACTIVITY_BASE`].
pub const ACTIVITY_PER_STAGE: f64 = 1.2;

/// One level of a context factor: its share of deals and its multipliers on the forward
/// probability, on stage durations and on the activity count.
pub struct Effect {
    pub name: &'static str,
    pub share: f64,
    pub advance: f64,
    pub duration: f64,
    pub activities: f64,
}

const fn effect(
    name: &'static str,
    share: f64,
    advance: f64,
    duration: f64,
    activities: f64,
) -> Effect {
    Effect {
        name,
        share,
        advance,
        duration,
        activities,
    }
}

/// Champion present (index 0) or absent (index 1).
pub const CHAMPION: [Effect; 2] = [
    effect("present", 0.45, 1.15, 0.80, 1.35),
    effect("absent", 0.55, 1.00, 1.00, 1.00),
];

/// Unresolved blocker (index 0) or none (index 1).
pub const BLOCKER: [Effect; 2] = [
    effect("unresolved", 0.25, 0.80, 1.35, 0.75),
    effect("none", 0.75, 1.00, 1.00, 1.00),
];

/// Deal size bands. The share applies to deals whose band is not taken from the account tier.
pub const SIZE_BANDS: [Effect; 4] = [
    effect("small", 0.40, 1.06, 0.75, 0.85),
    effect("mid", 0.32, 1.00, 1.00, 1.00),
    effect("large", 0.20, 0.93, 1.30, 1.20),
    effect("enterprise", 0.08, 0.86, 1.70, 1.45),
];

/// Amount per size band: (median, lower bound inclusive, upper bound exclusive), USD.
pub const BAND_AMOUNTS: [(f64, u64, u64); 4] = [
    (12_000.0, 3_000, 25_000),
    (45_000.0, 25_000, 75_000),
    (130_000.0, 75_000, 250_000),
    (420_000.0, 250_000, 2_000_000),
];
/// Log-normal sigma of the amount within its band (then clamped into the band).
pub const AMOUNT_SIGMA: f64 = 0.35;
/// Probability that a deal's band is its account's tier (by employee count) rather than a
/// fresh draw from the band shares.
pub const P_BAND_FROM_TIER: f64 = 0.6;
/// Employee-count upper bounds of the account tiers small / mid / large (enterprise above).
pub const TIER_EMPLOYEES: [u32; 3] = [200, 1_000, 5_000];

/// Lead sources; `name` is the picklist value written to the exports.
pub const LEAD_SOURCES: [Effect; 5] = [
    effect("Inbound", 0.35, 1.00, 1.00, 1.00),
    effect("Outbound", 0.30, 0.85, 1.10, 1.10),
    effect("Partner", 0.12, 1.10, 0.95, 1.00),
    effect("Event", 0.10, 0.97, 1.00, 1.00),
    effect("Referral", 0.13, 1.15, 0.90, 0.95),
];

/// An industry: Salesforce picklist label, HubSpot label, whether it is an ICP industry, share
/// of accounts and its effect.
pub struct Industry {
    pub sf_label: &'static str,
    pub hs_label: &'static str,
    pub icp: bool,
    pub effect: Effect,
}

const fn industry(
    sf: &'static str,
    hs: &'static str,
    icp: bool,
    share: f64,
    adv: f64,
    dur: f64,
) -> Industry {
    Industry {
        sf_label: sf,
        hs_label: hs,
        icp,
        effect: effect(sf, share, adv, dur, 1.0),
    }
}

/// Industries of the accounts; three are the company's ideal customer profile (ICP).
pub const INDUSTRIES: [Industry; 9] = [
    industry("Technology", "Computer Software", true, 0.18, 1.10, 0.90),
    industry("Finance", "Financial Services", true, 0.14, 1.10, 0.90),
    industry(
        "Healthcare",
        "Hospital & Health Care",
        true,
        0.12,
        1.10,
        0.90,
    ),
    industry(
        "Manufacturing",
        "Mechanical or Industrial Engineering",
        false,
        0.13,
        1.00,
        1.00,
    ),
    industry("Retail", "Retail", false, 0.11, 1.00, 1.00),
    industry("Education", "Education Management", false, 0.08, 0.95, 1.10),
    industry("Media", "Media Production", false, 0.08, 1.00, 1.00),
    industry(
        "Transportation",
        "Logistics and Supply Chain",
        false,
        0.09,
        1.00,
        1.00,
    ),
    industry(
        "Government",
        "Government Administration",
        false,
        0.07,
        0.92,
        1.30,
    ),
];

/// Picks an index by the `share` weights of a table.
pub fn pick_weighted<R: Rng + ?Sized>(
    rng: &mut R,
    shares: impl Iterator<Item = f64> + Clone,
) -> usize {
    let total: f64 = shares.clone().sum();
    let mut u = rng.random::<f64>() * total;
    let mut last = 0;
    for (i, s) in shares.enumerate() {
        if u < s {
            return i;
        }
        u -= s;
        last = i;
    }
    last
}

/// The per-deal context that drives the process.
#[derive(Clone, Copy, Debug)]
pub struct Context {
    pub champion: bool,
    pub blocker: bool,
    /// Index into [`SIZE_BANDS`].
    pub band: usize,
    /// Index into [`INDUSTRIES`].
    pub industry: usize,
    /// Index into [`LEAD_SOURCES`].
    pub source: usize,
}

impl Context {
    fn effects(&self) -> [&'static Effect; 5] {
        [
            &CHAMPION[usize::from(!self.champion)],
            &BLOCKER[usize::from(!self.blocker)],
            &SIZE_BANDS[self.band],
            &INDUSTRIES[self.industry].effect,
            &LEAD_SOURCES[self.source],
        ]
    }

    /// Product of the forward-probability multipliers.
    pub fn advance_mult(&self) -> f64 {
        self.effects().iter().map(|e| e.advance).product()
    }

    /// Product of the duration multipliers.
    pub fn duration_mult(&self) -> f64 {
        self.effects().iter().map(|e| e.duration).product()
    }

    /// Product of the activity-count multipliers.
    pub fn activity_mult(&self) -> f64 {
        self.effects().iter().map(|e| e.activities).product()
    }
}

/// Probability of a forward move (advance or skip) from `stage` in `ctx`.
pub fn forward_probability(stage: Stage, ctx: &Context) -> f64 {
    (stage.spec().advance * ctx.advance_mult()).clamp(MIN_FORWARD, MAX_FORWARD)
}

/// Draws the next stage after an open stage.
pub fn next_stage<R: Rng + ?Sized>(rng: &mut R, stage: Stage, forward: f64) -> Stage {
    let s = stage as usize;
    if s >= 1 && rng.random::<f64>() < P_REGRESS {
        return Stage::from_index(s - 1);
    }
    if rng.random::<f64>() >= forward {
        return Stage::ClosedLost;
    }
    if s + 2 <= Stage::Negotiation as usize && rng.random::<f64>() < P_SKIP {
        return Stage::from_index(s + 2);
    }
    Stage::from_index(s + 1)
}

/// Seconds spent in an open stage: log-normal around the stage median × `duration_mult`,
/// at least one hour.
pub fn stage_duration<R: Rng + ?Sized>(rng: &mut R, stage: Stage, duration_mult: f64) -> i64 {
    let z: f64 = StandardNormal.sample(rng);
    let days = stage.spec().median_days * duration_mult * (DURATION_SIGMA * z).exp();
    ((days * DAY as f64) as i64).max(HOUR)
}

/// Expected day of close for a deal entering `stage` at `at`: the sum of the remaining stage
/// medians, scaled by the context.
pub fn expected_close_day(stage: Stage, at: i64, duration_mult: f64) -> i64 {
    let remaining: f64 = STAGES[stage as usize..=Stage::Negotiation as usize]
        .iter()
        .map(|s| s.median_days)
        .sum();
    (at + (remaining * duration_mult * DAY as f64) as i64).div_euclid(DAY)
}

/// Entering `stage` at time `at` (seconds).
#[derive(Clone, Copy, Debug)]
pub struct Move {
    pub stage: Stage,
    pub at: i64,
}

/// Runs one deal's process from `created` up to `horizon` (the last second of as_of), filling
/// `moves` with every stage entered, the first (lead) included. Move times are snapped forward
/// to business hours. The deal is open if the last
/// move's stage is not closed.
pub fn simulate<R: Rng + ?Sized>(
    rng: &mut R,
    ctx: &Context,
    created: i64,
    horizon: i64,
    moves: &mut Vec<Move>,
) {
    moves.clear();
    moves.push(Move {
        stage: Stage::Lead,
        at: created,
    });
    let duration_mult = ctx.duration_mult();
    let mut stage = Stage::Lead;
    let mut at = created;
    while !stage.is_closed() {
        let wait = stage_duration(rng, stage, duration_mult);
        let next = if moves.len() >= MAX_MOVES {
            Stage::ClosedLost
        } else {
            next_stage(rng, stage, forward_probability(stage, ctx))
        };
        let next_at = business_snap(at + wait);
        if next_at > horizon {
            break;
        }
        at = next_at;
        stage = next;
        moves.push(Move { stage, at });
    }
}

/// The constants as the markdown tables of `docs/generator.md` (a test checks the document
/// contains exactly this text, so the code stays the single source of the numbers).
pub fn constants_markdown() -> String {
    use std::fmt::Write;
    let mut s = String::new();
    s.push_str("| stage | Salesforce StageName | Probability | ForecastCategoryName | HubSpot stage | base forward probability | median days |\n");
    s.push_str("| --- | --- | --- | --- | --- | --- | --- |\n");
    for st in &STAGES {
        let (adv, days) = if st.median_days > 0.0 {
            (format!("{:.2}", st.advance), format!("{}", st.median_days))
        } else {
            ("—".to_string(), "—".to_string())
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            st.key,
            st.sf_label,
            st.sf_probability,
            st.forecast,
            HS_STAGES[st.hs_stage].1,
            adv,
            days
        );
    }
    s.push_str("\n| factor | level | share | forward × | duration × | activities × |\n");
    s.push_str("| --- | --- | --- | --- | --- | --- |\n");
    let groups: [(&str, Vec<&Effect>); 5] = [
        ("champion", CHAMPION.iter().collect()),
        ("blocker", BLOCKER.iter().collect()),
        ("size band", SIZE_BANDS.iter().collect()),
        ("industry", INDUSTRIES.iter().map(|i| &i.effect).collect()),
        ("lead source", LEAD_SOURCES.iter().collect()),
    ];
    for (factor, effects) in &groups {
        for e in effects {
            let icp = INDUSTRIES
                .iter()
                .any(|i| i.icp && i.sf_label == e.name && *factor == "industry");
            let _ = writeln!(
                s,
                "| {} | {}{} | {:.2} | {:.2} | {:.2} | {:.2} |",
                factor,
                e.name,
                if icp { " (ICP)" } else { "" },
                e.share,
                e.advance,
                e.duration,
                e.activities
            );
        }
    }
    let _ = write!(
        s,
        "\nP_REGRESS = {P_REGRESS}, P_SKIP = {P_SKIP}, MIN_FORWARD = {MIN_FORWARD}, MAX_FORWARD = {MAX_FORWARD}, \
         DURATION_SIGMA = {DURATION_SIGMA}, MAX_MOVES = {MAX_MOVES}, ACTIVITY_BASE = {ACTIVITY_BASE}, \
         ACTIVITY_PER_STAGE = {ACTIVITY_PER_STAGE}, AMOUNT_SIGMA = {AMOUNT_SIGMA}, P_BAND_FROM_TIER = {P_BAND_FROM_TIER}\n"
    );
    s
}

//! The risk model's features of a deal at a point in time, computed only from what was known
//! then: its stage and days in it against the segment's medians, its pace, amount, contact
//! roles, engagement before that time, and the win rates of its lead source, segment, industry
//! and rep among the deals closed before that time.
//!
//! The same function builds a training row (a closed deal at the middle of one of its stays)
//! and a scoring row (an open deal now), so the model sees at training what it sees at
//! scoring.

use std::collections::HashMap;

use super::data::{DAY, Inputs, OPEN_STAGES};

/// Feature names, in model order.
pub const FEATURES: [&str; 19] = [
    "stage_qualification",
    "stage_discovery",
    "stage_demo",
    "stage_proposal",
    "stage_negotiation",
    "days_in_stage_ratio",
    "stage_velocity",
    "amount_ratio",
    "champion",
    "blocker",
    "roles_known",
    "stakeholders",
    "lead_source_win_rate",
    "segment_win_rate",
    "industry_win_rate",
    "rep_win_rate",
    "activities_30d",
    "days_since_touch",
    "conversations",
];

/// Number of features.
pub const P: usize = FEATURES.len();

/// Observations below which a (segment, stage) median falls back to the stage's median.
const MIN_MEDIAN_N: usize = 20;
/// Prior weight (in deals) of the smoothed historical win rates.
const RATE_PRIOR: f64 = 10.0;

/// Medians the features compare against: days in each stage and days from creation to reach
/// it, per segment and stage (falling back to the stage), and the median amount.
#[derive(Debug, Clone, Default)]
pub struct Reference {
    stay: HashMap<(String, usize), f64>,
    stay_all: [f64; 6],
    reach: HashMap<(String, usize), f64>,
    reach_all: [f64; 6],
    pub median_amount: f64,
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    })
}

impl Reference {
    /// Medians over every completed stay and every first entry of a stage in the history.
    pub fn build(inputs: &Inputs) -> Self {
        Self::build_until(inputs, f64::INFINITY)
    }

    /// Medians over what was known at `until`: stays that had ended by then, stage entries
    /// before it, and the amounts of deals created before it. Training builds its reference
    /// at the holdout cutoff, so no holdout row is compared with medians of its own future.
    pub fn build_until(inputs: &Inputs, until: f64) -> Self {
        let mut stay: HashMap<(String, usize), Vec<f64>> = HashMap::new();
        let mut reach: HashMap<(String, usize), Vec<f64>> = HashMap::new();
        let mut stay_all: [Vec<f64>; 6] = Default::default();
        let mut reach_all: [Vec<f64>; 6] = Default::default();
        let mut amounts = Vec::new();
        for (i, d) in inputs.deals.iter().enumerate() {
            let known = until.is_infinite() || d.created_at.is_some_and(|c| c <= until);
            if let Some(a) = d.amount.filter(|a| *a > 0.0 && known) {
                amounts.push(a);
            }
            let stays = &inputs.stays[i];
            let mut seen = [false; 6];
            for (k, s) in stays.iter().enumerate() {
                let left = stays
                    .get(k + 1)
                    .map(|n| n.entered)
                    .or_else(|| inputs.closed_at(i))
                    .filter(|left| *left <= until);
                if let Some(left) = left {
                    let days = ((left - s.entered) / DAY).max(0.0);
                    stay.entry((d.segment.clone(), s.stage))
                        .or_default()
                        .push(days);
                    stay_all[s.stage].push(days);
                }
                if !seen[s.stage]
                    && s.entered <= until
                    && let Some(created) = d.created_at
                {
                    seen[s.stage] = true;
                    let days = ((s.entered - created) / DAY).max(0.0);
                    reach
                        .entry((d.segment.clone(), s.stage))
                        .or_default()
                        .push(days);
                    reach_all[s.stage].push(days);
                }
            }
        }
        let keep = |m: HashMap<(String, usize), Vec<f64>>| {
            m.into_iter()
                .filter(|(_, v)| v.len() >= MIN_MEDIAN_N)
                .filter_map(|(k, mut v)| median(&mut v).map(|m| (k, m)))
                .collect()
        };
        let all = |v: &mut [Vec<f64>; 6], default: [f64; 6]| -> [f64; 6] {
            let mut out = default;
            for (o, v) in out.iter_mut().zip(v.iter_mut()) {
                if let Some(m) = median(v) {
                    *o = m;
                }
            }
            out
        };
        Self {
            stay: keep(stay),
            stay_all: all(&mut stay_all, [14.0; 6]),
            reach: keep(reach),
            reach_all: all(&mut reach_all, [0.0, 7.0, 14.0, 28.0, 42.0, 60.0]),
            median_amount: median(&mut amounts).unwrap_or(0.0),
        }
    }

    /// Median days in `stage` for `segment`.
    pub fn stay_days(&self, segment: &str, stage: usize) -> f64 {
        self.stay
            .get(&(segment.to_string(), stage))
            .copied()
            .unwrap_or(self.stay_all[stage])
    }

    /// Median days from creation to reach `stage` for `segment`.
    pub fn reach_days(&self, segment: &str, stage: usize) -> f64 {
        self.reach
            .get(&(segment.to_string(), stage))
            .copied()
            .unwrap_or(self.reach_all[stage])
    }
}

/// A grouping of deals whose historical win rate is a feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateKind {
    LeadSource,
    Segment,
    Industry,
    Rep,
}

/// Closes in time order per group, with running win counts: the win rate of any group among
/// the deals closed before any time, by binary search.
#[derive(Debug, Clone, Default)]
pub struct RateBook {
    groups: HashMap<(RateKind, String), Timeline>,
    all: Timeline,
}

#[derive(Debug, Clone, Default)]
struct Timeline {
    /// (closed_at, wins so far including this one), sorted by time.
    closes: Vec<(f64, u32)>,
}

impl Timeline {
    /// (wins, closes) strictly before `t`.
    fn before(&self, t: f64) -> (f64, f64) {
        let n = self.closes.partition_point(|c| c.0 < t);
        if n == 0 {
            (0.0, 0.0)
        } else {
            (self.closes[n - 1].1 as f64, n as f64)
        }
    }
}

/// A smoothed historical win rate and what it rests on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Shrunk toward `overall` with [`RATE_PRIOR`] deals' weight.
    pub rate: f64,
    /// Closed deals of the group before the time.
    pub closed: f64,
    /// The overall rate before the time.
    pub overall: f64,
}

pub fn group_key(inputs: &Inputs, i: usize, kind: RateKind) -> String {
    let d = &inputs.deals[i];
    match kind {
        RateKind::LeadSource => d.lead_source.clone(),
        RateKind::Segment => d.segment.clone(),
        RateKind::Industry => d.industry.clone(),
        RateKind::Rep => d.owner_id.clone().unwrap_or_default(),
    }
}

impl RateBook {
    /// The book of every closed deal with a close time.
    pub fn build(inputs: &Inputs) -> Self {
        let mut closes: Vec<(f64, bool, usize)> = (0..inputs.deals.len())
            .filter_map(|i| inputs.closed_at(i).map(|t| (t, inputs.deals[i].is_won, i)))
            .collect();
        closes.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut book = RateBook::default();
        let push = |tl: &mut Timeline, t: f64, won: bool| {
            let wins = tl.closes.last().map_or(0, |c| c.1) + u32::from(won);
            tl.closes.push((t, wins));
        };
        for (t, won, i) in closes {
            push(&mut book.all, t, won);
            for kind in [
                RateKind::LeadSource,
                RateKind::Segment,
                RateKind::Industry,
                RateKind::Rep,
            ] {
                let key = group_key(inputs, i, kind);
                push(book.groups.entry((kind, key)).or_default(), t, won);
            }
        }
        book
    }

    /// The overall win rate before `t` (Laplace-smoothed).
    pub fn overall(&self, t: f64) -> f64 {
        let (w, n) = self.all.before(t);
        (w + 1.0) / (n + 2.0)
    }

    /// The smoothed win rate of group `key` before `t`.
    pub fn rate(&self, kind: RateKind, key: &str, t: f64) -> Rate {
        let overall = self.overall(t);
        let (w, n) = self
            .groups
            .get(&(kind, key.to_string()))
            .map_or((0.0, 0.0), |tl| tl.before(t));
        Rate {
            rate: (w + RATE_PRIOR * overall) / (n + RATE_PRIOR),
            closed: n,
            overall,
        }
    }
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

/// A deal at a time: in `stage` (an open-stage index) since `entered`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    pub deal: usize,
    pub t: f64,
    pub stage: usize,
    pub entered: f64,
}

/// The readable quantities behind the features (for factor texts and computed fields).
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub stage: usize,
    pub days_in_stage: f64,
    pub median_stay: f64,
    pub reach_days: f64,
    pub median_reach: f64,
    pub amount: Option<f64>,
    pub median_amount: f64,
    pub rates: [Rate; 4],
    pub activities_30d: u32,
    pub activities_total: u32,
    pub days_since_touch: Option<f64>,
    pub conversations: u32,
}

/// Feature values of a snapshot, with what they were computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub values: [f64; P],
    pub observed: Observed,
}

/// Count of sorted `times` in `(lo, hi]`, and the latest one ≤ `hi`.
fn window(times: &[f64], lo: f64, hi: f64) -> (u32, u32, Option<f64>) {
    let upto = times.partition_point(|x| *x <= hi);
    let from = times.partition_point(|x| *x <= lo);
    (
        (upto - from.min(upto)) as u32,
        upto as u32,
        upto.checked_sub(1).map(|k| times[k]),
    )
}

/// The features of `s`.
pub fn features(inputs: &Inputs, reference: &Reference, rates: &RateBook, s: &Snapshot) -> Row {
    let d = &inputs.deals[s.deal];
    let roles = inputs.roles_at(s.deal, s.t);
    let created = d.created_at.unwrap_or(s.entered).min(s.entered);
    let days_in_stage = ((s.t - s.entered) / DAY).max(0.0);
    let reach_days = ((s.entered - created) / DAY).max(0.0);
    let median_stay = reference.stay_days(&d.segment, s.stage);
    let median_reach = reference.reach_days(&d.segment, s.stage);
    let amount_ratio = match d.amount {
        Some(a) if a > 0.0 && reference.median_amount > 0.0 => (a / reference.median_amount).ln(),
        _ => 0.0,
    };
    let kinds = [
        RateKind::LeadSource,
        RateKind::Segment,
        RateKind::Industry,
        RateKind::Rep,
    ];
    let r = kinds.map(|k| rates.rate(k, &group_key(inputs, s.deal, k), s.t));
    let (acts_30, acts_total, last) = window(&inputs.activities[s.deal], s.t - 30.0 * DAY, s.t);
    let (_, convs, _) = window(&inputs.conversations[s.deal], f64::NEG_INFINITY, s.t);
    let since_touch = last.map(|l| ((s.t - l) / DAY).max(0.0));
    let untouched = ((s.t - created) / DAY).max(0.0);
    let mut values = [0.0; P];
    if s.stage >= 1 {
        values[s.stage - 1] = 1.0;
    }
    values[5] = (days_in_stage + 1.0).ln() - (median_stay + 1.0).ln();
    values[6] = (median_reach + 1.0).ln() - (reach_days + 1.0).ln();
    values[7] = amount_ratio;
    values[8] = f64::from(u8::from(roles.champion));
    values[9] = f64::from(u8::from(roles.blocker));
    values[10] = f64::from(u8::from(roles.known));
    values[11] = f64::from(roles.contacts).ln_1p();
    for (k, rate) in r.iter().enumerate() {
        values[12 + k] = logit(rate.rate) - logit(rate.overall);
    }
    values[16] = f64::from(acts_30).ln_1p();
    values[17] = since_touch.unwrap_or(untouched).ln_1p();
    values[18] = f64::from(convs).ln_1p();
    Row {
        values,
        observed: Observed {
            stage: s.stage,
            days_in_stage,
            median_stay,
            reach_days,
            median_reach,
            amount: d.amount,
            median_amount: reference.median_amount,
            rates: r,
            activities_30d: acts_30,
            activities_total: acts_total,
            days_since_touch: since_touch,
            conversations: convs,
        },
    }
}

/// An open deal now: its current stage, entered at its last entry of that stage (its creation
/// when the history has none). `None` when the deal is closed or its stage is not open.
pub fn current_snapshot(inputs: &Inputs, deal: usize) -> Option<Snapshot> {
    let d = &inputs.deals[deal];
    let stage = d.open_stage()?;
    let entered = inputs.stays[deal]
        .iter()
        .rev()
        .find(|s| s.stage == stage)
        .map(|s| s.entered)
        .or(d.created_at)
        .unwrap_or(inputs.as_of)
        .min(inputs.as_of);
    Some(Snapshot {
        deal,
        t: inputs.as_of,
        stage,
        entered,
    })
}

/// The training snapshots of a closed deal: the middle of each of its open-stage stays.
pub fn closed_snapshots(inputs: &Inputs, deal: usize) -> Vec<Snapshot> {
    let Some(closed) = inputs.closed_at(deal) else {
        return Vec::new();
    };
    let stays = &inputs.stays[deal];
    stays
        .iter()
        .enumerate()
        .filter_map(|(k, s)| {
            let left = stays.get(k + 1).map_or(closed, |n| n.entered).min(closed);
            (left >= s.entered).then_some(Snapshot {
                deal,
                t: s.entered + 0.5 * (left - s.entered),
                stage: s.stage,
                entered: s.entered,
            })
        })
        .collect()
}

/// Progress versus the segment's median pace, in (−1, 1): 0 on pace, negative slower.
///
/// Expected age = median days to reach the stage + the days in it, up to the stage's median;
/// actual age = days to reach it + days in it. Score = (expected − actual) / max(both, 1).
pub fn velocity_score(o: &Observed) -> f64 {
    let expected = o.median_reach + o.days_in_stage.min(o.median_stay);
    let actual = o.reach_days + o.days_in_stage;
    ((expected - actual) / expected.max(actual).max(1.0)).clamp(-1.0, 1.0)
}

/// Engagement, 0–100: recency of the last touch (40: halves every 14 days), activity density
/// in the last 30 days (30: saturating at 8), recorded conversations (10: saturating at 3) and
/// stakeholder breadth (20: saturating at 4 contacts with a role).
pub fn engagement_score(o: &Observed, contacts: u32) -> f64 {
    let recency = o.days_since_touch.map_or(0.0, |d| 0.5f64.powf(d / 14.0));
    let density = (f64::from(o.activities_30d) / 8.0).min(1.0);
    let convs = (f64::from(o.conversations) / 3.0).min(1.0);
    let breadth = (f64::from(contacts) / 4.0).min(1.0);
    (40.0 * recency + 30.0 * density + 10.0 * convs + 20.0 * breadth).clamp(0.0, 100.0)
}

/// The feature's readable text for a deal, e.g. "In proposal for 45 days, 2.5× the segment
/// median (18)".
pub fn describe(feature: usize, o: &Observed, inputs: &Inputs, deal: usize) -> String {
    let d = &inputs.deals[deal];
    let roles = inputs.roles[deal];
    let pct = |x: f64| format!("{:.0}%", 100.0 * x);
    let rate_text = |label: &str, value: &str, r: &Rate| {
        format!(
            "{label} ({value}) has a {} win rate over {} closed deals (all deals {})",
            pct(r.rate),
            r.closed,
            pct(r.overall)
        )
    };
    match FEATURES[feature] {
        f if f.starts_with("stage_") && f != "stage_velocity" => {
            format!("Stage {}", OPEN_STAGES[o.stage])
        }
        "days_in_stage_ratio" => format!(
            "In {} for {:.0} days, {:.1}× the segment median ({:.0} days)",
            OPEN_STAGES[o.stage],
            o.days_in_stage,
            (o.days_in_stage + 1.0) / (o.median_stay + 1.0),
            o.median_stay
        ),
        "stage_velocity" => {
            let v = velocity_score(o);
            format!(
                "Reached {} in {:.0} days vs a segment median of {:.0} (velocity score {v:+.2})",
                OPEN_STAGES[o.stage], o.reach_days, o.median_reach
            )
        }
        "amount_ratio" => match o.amount {
            Some(a) if o.median_amount > 0.0 => format!(
                "Amount ${:.0} is {:.1}× the median deal (${:.0})",
                a,
                a / o.median_amount,
                o.median_amount
            ),
            _ => "Amount unknown".to_string(),
        },
        "champion" if !roles.known => "Contact roles unknown: no champion recorded".to_string(),
        "champion" if roles.champion => "A champion is identified".to_string(),
        "champion" => "No champion identified".to_string(),
        "blocker" if roles.blocker => "An unresolved blocker among the contacts".to_string(),
        "blocker" => "No blocker among the contacts".to_string(),
        "roles_known" if roles.known => "Contact roles are recorded".to_string(),
        "roles_known" => "No contact roles recorded".to_string(),
        "stakeholders" => format!("{} stakeholder(s) with a role on the deal", roles.contacts),
        "lead_source_win_rate" => rate_text("Lead source", &d.lead_source, &o.rates[0]),
        "segment_win_rate" => rate_text("Segment", &d.segment, &o.rates[1]),
        "industry_win_rate" => rate_text("Industry", &d.industry, &o.rates[2]),
        "rep_win_rate" => rate_text(
            "Rep",
            d.owner_id.as_deref().unwrap_or("unassigned"),
            &o.rates[3],
        ),
        "activities_30d" => format!("{} activities in the last 30 days", o.activities_30d),
        "days_since_touch" => match o.days_since_touch {
            Some(days) => format!("Last activity {days:.0} days ago"),
            None => "No activity recorded on the deal".to_string(),
        },
        "conversations" => format!("{} recorded conversation(s)", o.conversations),
        other => other.to_string(),
    }
}

/// A suggested action against a risk factor.
pub fn action(feature: usize) -> &'static str {
    match FEATURES[feature] {
        "days_in_stage_ratio" | "stage_velocity" => {
            "Agree a mutual close plan with dated next steps to unstick the stage"
        }
        "champion" | "roles_known" => {
            "Identify and enable a champion; schedule an executive engagement call"
        }
        "blocker" => "Meet the blocker: address their objections with the champion",
        "stakeholders" => "Multi-thread: bring in the economic buyer and other stakeholders",
        "activities_30d" | "days_since_touch" | "conversations" => {
            "Re-engage: book a meeting with the buyer this week"
        }
        "amount_ratio" => "Reduce scope or phase the deal to fit the buyer's budget",
        "lead_source_win_rate" | "segment_win_rate" | "industry_win_rate" => {
            "Review qualification and the competitive landscape for this profile"
        }
        "rep_win_rate" => "Manager deal review and coaching on the next step",
        _ => "Review the deal with the manager",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::data::{Deal, Stay};

    #[test]
    fn win_rates_only_count_deals_closed_before_the_time() {
        let mut deals = Vec::new();
        for i in 0..4 {
            let mut d = Deal::new(
                &format!("d{i}"),
                if i < 3 { "closed_won" } else { "closed_lost" },
                0.0,
            );
            d.lead_source = "Referral".into();
            d.closed_at = Some(10.0 * (i + 1) as f64);
            deals.push(d);
        }
        let inputs = Inputs::from_deals("w", deals);
        let book = RateBook::build(&inputs);
        // Before t=25: two wins of two.
        let r = book.rate(RateKind::LeadSource, "Referral", 25.0);
        assert_eq!(r.closed, 2.0);
        let overall = 3.0 / 4.0;
        assert!((r.overall - overall).abs() < 1e-12);
        assert!((r.rate - (2.0 + RATE_PRIOR * overall) / (2.0 + RATE_PRIOR)).abs() < 1e-12);
        // Nothing closed before t=5: the prior.
        let r = book.rate(RateKind::LeadSource, "Referral", 5.0);
        assert_eq!((r.closed, r.rate), (0.0, 0.5));
    }

    #[test]
    fn snapshots_sit_mid_stay_and_see_only_earlier_activities() {
        let mut d = Deal::new("d", "closed_lost", 0.0);
        d.closed_at = Some(30.0 * DAY);
        let mut inputs = Inputs::from_deals("w", vec![d]);
        inputs.stays[0] = vec![
            Stay {
                stage: 0,
                entered: 0.0,
            },
            Stay {
                stage: 1,
                entered: 10.0 * DAY,
            },
        ];
        inputs.activities[0] = vec![1.0 * DAY, 12.0 * DAY, 29.0 * DAY];
        let snaps = closed_snapshots(&inputs, 0);
        assert_eq!(snaps.len(), 2);
        assert_eq!(snaps[0].t, 5.0 * DAY);
        assert_eq!(snaps[1].t, 20.0 * DAY);
        let reference = Reference::build(&inputs);
        let row = features(&inputs, &reference, &RateBook::build(&inputs), &snaps[1]);
        assert_eq!(row.observed.activities_total, 2);
        assert_eq!(row.observed.days_since_touch, Some(8.0));
        assert_eq!(row.observed.days_in_stage, 10.0);
        assert_eq!(row.values[0], 1.0, "stage qualification");
    }

    #[test]
    fn a_reference_until_a_time_ignores_what_came_after() {
        // Deal a: created at 0, in stage 0 for 10 days, lost at day 10 (amount 100).
        // Deal b: created at day 20, in stage 0 for 40 days, lost at day 60 (amount 900).
        let mut a = Deal::new("a", "closed_lost", 0.0);
        a.closed_at = Some(10.0 * DAY);
        a.amount = Some(100.0);
        let mut b = Deal::new("b", "closed_lost", 20.0 * DAY);
        b.closed_at = Some(60.0 * DAY);
        b.amount = Some(900.0);
        let mut inputs = Inputs::from_deals("w", vec![a, b]);
        inputs.stays[0] = vec![Stay {
            stage: 0,
            entered: 0.0,
        }];
        inputs.stays[1] = vec![Stay {
            stage: 0,
            entered: 20.0 * DAY,
        }];
        let all = Reference::build(&inputs);
        assert_eq!(all.stay_days("unknown", 0), 25.0, "median of 10 and 40");
        assert_eq!(all.median_amount, 500.0);
        // At day 30, b's stay has not ended; it was created, so its amount is known.
        let then = Reference::build_until(&inputs, 30.0 * DAY);
        assert_eq!(then.stay_days("unknown", 0), 10.0);
        assert_eq!(then.median_amount, 500.0);
        // At day 15, b did not exist.
        let early = Reference::build_until(&inputs, 15.0 * DAY);
        assert_eq!(early.median_amount, 100.0);
    }

    #[test]
    fn snapshots_see_only_the_roles_recorded_by_then() {
        use crate::scoring::data::RoleEntry;
        let mut d = Deal::new("d", "closed_lost", 0.0);
        d.closed_at = Some(30.0 * DAY);
        let mut inputs = Inputs::from_deals("w", vec![d]);
        inputs.stays[0] = vec![
            Stay {
                stage: 0,
                entered: 0.0,
            },
            Stay {
                stage: 1,
                entered: 10.0 * DAY,
            },
        ];
        // A champion from the start; a blocker recorded on day 25, after the loss was clear.
        inputs.role_entries[0] = vec![
            RoleEntry {
                at: None,
                contact: 1,
                champion: true,
                blocker: false,
            },
            RoleEntry {
                at: Some(25.0 * DAY),
                contact: 2,
                champion: false,
                blocker: true,
            },
        ];
        let reference = Reference::build(&inputs);
        let rates = RateBook::build(&inputs);
        let snaps = closed_snapshots(&inputs, 0);
        let early = features(&inputs, &reference, &rates, &snaps[0]);
        let late = features(&inputs, &reference, &rates, &snaps[1]);
        assert_eq!((early.values[8], early.values[9]), (1.0, 0.0), "day 5");
        assert_eq!((late.values[8], late.values[9]), (1.0, 0.0), "day 20");
        assert!(inputs.roles_at(0, 26.0 * DAY).blocker);
        assert_eq!(inputs.roles_at(0, 26.0 * DAY).contacts, 2);
        assert_eq!(inputs.roles_at(0, 5.0 * DAY).contacts, 1);
    }

    #[test]
    fn velocity_is_zero_on_pace_and_negative_when_slow() {
        let mut o = features_for_velocity(10.0, 5.0, 10.0, 10.0);
        assert_eq!(velocity_score(&o), 0.0);
        o.days_in_stage = 30.0; // 20 days over the median stay
        assert!(velocity_score(&o) < -0.4);
        o.days_in_stage = 5.0;
        o.reach_days = 4.0; // reached it 6 days early
        assert!(velocity_score(&o) > 0.0);
    }

    fn features_for_velocity(
        reach: f64,
        days: f64,
        median_reach: f64,
        median_stay: f64,
    ) -> Observed {
        let rate = Rate {
            rate: 0.5,
            closed: 0.0,
            overall: 0.5,
        };
        Observed {
            stage: 2,
            days_in_stage: days,
            median_stay,
            reach_days: reach,
            median_reach,
            amount: None,
            median_amount: 0.0,
            rates: [rate; 4],
            activities_30d: 0,
            activities_total: 0,
            days_since_touch: None,
            conversations: 0,
        }
    }
}

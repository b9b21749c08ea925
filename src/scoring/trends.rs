//! Trends over the deal history that the insight alerts and the digest read: quarter win rates
//! per segment, the pipeline health index, and daily pipeline movements.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::Serialize;

use super::data::{DAY, Inputs};

/// What the trends need of a deal.
#[derive(Debug, Clone, PartialEq)]
pub struct DealFact {
    pub id: String,
    pub segment: String,
    pub created_at: Option<f64>,
    /// Close time when closed.
    pub closed_at: Option<f64>,
    pub won: bool,
    pub amount: f64,
    /// Times the deal entered an open stage after its first one (stage moves).
    pub moves: Vec<f64>,
}

/// The facts of every deal of `inputs`.
pub fn facts(inputs: &Inputs) -> Vec<DealFact> {
    (0..inputs.deals.len())
        .map(|i| {
            let d = &inputs.deals[i];
            DealFact {
                id: d.id.clone(),
                segment: d.segment.clone(),
                created_at: d.created_at,
                closed_at: inputs.closed_at(i),
                won: d.is_won,
                amount: d.amount.unwrap_or(0.0).max(0.0),
                moves: inputs.stays[i].iter().skip(1).map(|s| s.entered).collect(),
            }
        })
        .collect()
}

/// A calendar quarter, `year * 4 + (quarter − 1)`.
pub fn quarter_of(t: f64) -> i64 {
    let dt = utc(t);
    i64::from(dt.year()) * 4 + i64::from(dt.month0() / 3)
}

/// `2025-Q4`.
pub fn quarter_label(q: i64) -> String {
    format!("{}-Q{}", q.div_euclid(4), q.rem_euclid(4) + 1)
}

pub fn utc(t: f64) -> DateTime<Utc> {
    Utc.timestamp_opt(t.floor() as i64, 0)
        .single()
        .unwrap_or_default()
}

/// Closed deals of a segment in a quarter.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QuarterStats {
    pub closed: u64,
    pub won: u64,
    pub won_amount: f64,
    pub closed_amount: f64,
    pub lost_ids: Vec<String>,
}

impl QuarterStats {
    pub fn win_rate(&self) -> Option<f64> {
        (self.closed > 0).then(|| self.won as f64 / self.closed as f64)
    }
}

/// Per segment (sorted), the stats of quarter `q`.
pub fn segment_quarter(facts: &[DealFact], q: i64) -> Vec<(String, QuarterStats)> {
    let mut by: std::collections::BTreeMap<String, QuarterStats> = Default::default();
    for f in facts {
        let Some(t) = f.closed_at else { continue };
        if quarter_of(t) != q {
            continue;
        }
        let s = by.entry(f.segment.clone()).or_default();
        s.closed += 1;
        s.closed_amount += f.amount;
        if f.won {
            s.won += 1;
            s.won_amount += f.amount;
        } else {
            s.lost_ids.push(f.id.clone());
        }
    }
    by.into_iter().collect()
}

/// One input of the pipeline health index.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthComponent {
    pub name: &'static str,
    pub current: f64,
    pub prior: f64,
    /// 75 × (current / prior) — inverted for the cycle length — clamped to 0–100: 75 is flat.
    pub score: f64,
}

/// The pipeline health index, 0–100.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthIndex {
    pub index: f64,
    /// The index one window (90 days) earlier.
    pub previous: Option<f64>,
    pub components: Vec<HealthComponent>,
}

/// Days of each window the health index compares.
pub const HEALTH_WINDOW_DAYS: f64 = 90.0;

struct Window {
    closed: f64,
    won: f64,
    won_amount: f64,
    cycle_days: f64,
}

fn window(facts: &[DealFact], from: f64, to: f64) -> Window {
    let mut w = Window {
        closed: 0.0,
        won: 0.0,
        won_amount: 0.0,
        cycle_days: 0.0,
    };
    for f in facts {
        let Some(t) = f.closed_at.filter(|t| *t > from && *t <= to) else {
            continue;
        };
        w.closed += 1.0;
        if f.won {
            w.won += 1.0;
            w.won_amount += f.amount;
            w.cycle_days += f.created_at.map_or(0.0, |c| ((t - c) / DAY).max(0.0));
        }
    }
    w
}

/// Open pipeline amount at `t`.
fn open_amount(facts: &[DealFact], t: f64) -> f64 {
    facts
        .iter()
        .filter(|f| f.created_at.is_some_and(|c| c <= t) && f.closed_at.is_none_or(|c| c > t))
        .map(|f| f.amount)
        .sum()
}

fn components(facts: &[DealFact], t: f64) -> Option<Vec<HealthComponent>> {
    let span = HEALTH_WINDOW_DAYS * DAY;
    let cur = window(facts, t - span, t);
    let prior = window(facts, t - 2.0 * span, t - span);
    if cur.closed == 0.0 || prior.closed == 0.0 || cur.won == 0.0 || prior.won == 0.0 {
        return None;
    }
    let score = |ratio: f64| (75.0 * ratio).clamp(0.0, 100.0);
    let mut out = Vec::new();
    let (wr_c, wr_p) = (cur.won / cur.closed, prior.won / prior.closed);
    out.push(HealthComponent {
        name: "win rate",
        current: wr_c,
        prior: wr_p,
        score: score(wr_c / wr_p.max(1e-9)),
    });
    let (size_c, size_p) = (cur.won_amount / cur.won, prior.won_amount / prior.won);
    if size_p > 0.0 {
        out.push(HealthComponent {
            name: "avg won deal size",
            current: size_c,
            prior: size_p,
            score: score(size_c / size_p),
        });
    }
    let (cyc_c, cyc_p) = (cur.cycle_days / cur.won, prior.cycle_days / prior.won);
    if cyc_c > 0.0 {
        out.push(HealthComponent {
            name: "sales cycle days",
            current: cyc_c,
            prior: cyc_p,
            score: score(cyc_p / cyc_c),
        });
    }
    // Coverage: the open pipeline over the revenue won in the window before.
    let cov = |at: f64, won: f64| (won > 0.0).then(|| open_amount(facts, at) / won);
    if let (Some(c), Some(p)) = (cov(t, cur.won_amount), cov(t - span, prior.won_amount))
        && p > 0.0
    {
        out.push(HealthComponent {
            name: "pipeline coverage",
            current: c,
            prior: p,
            score: score(c / p),
        });
    }
    Some(out)
}

/// The index at `t`: the mean of its components' scores; `None` without closed and won deals
/// in both windows.
pub fn health_index(facts: &[DealFact], t: f64) -> Option<HealthIndex> {
    let mean = |c: &[HealthComponent]| c.iter().map(|c| c.score).sum::<f64>() / c.len() as f64;
    let comps = components(facts, t)?;
    let previous = components(facts, t - HEALTH_WINDOW_DAYS * DAY).map(|c| mean(&c));
    Some(HealthIndex {
        index: mean(&comps),
        previous,
        components: comps,
    })
}

/// Daily counts of one pipeline movement.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub metric: &'static str,
    /// The day (days since the epoch) of `counts[0]`.
    pub first_day: i64,
    pub counts: Vec<f64>,
}

/// New deals, stage moves, deals won and deals lost per day over the `days` days up to `as_of`.
pub fn daily_movements(facts: &[DealFact], as_of: f64, days: i64) -> Vec<Series> {
    let last = (as_of / DAY).floor() as i64;
    let first = last - days + 1;
    let mut series: Vec<Series> = ["new deals", "stage moves", "deals won", "deals lost"]
        .into_iter()
        .map(|metric| Series {
            metric,
            first_day: first,
            counts: vec![0.0; days.max(0) as usize],
        })
        .collect();
    let mut add = |k: usize, t: f64| {
        let day = (t / DAY).floor() as i64;
        if (first..=last).contains(&day) {
            series[k].counts[(day - first) as usize] += 1.0;
        }
    };
    for f in facts {
        if let Some(c) = f.created_at {
            add(0, c);
        }
        for &m in &f.moves {
            add(1, m);
        }
        if let Some(c) = f.closed_at {
            add(if f.won { 2 } else { 3 }, c);
        }
    }
    series
}

/// A day whose count is far from its baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    pub metric: &'static str,
    pub day: String,
    pub count: f64,
    pub baseline: f64,
    pub z: f64,
}

/// Robust z-score threshold of an anomaly.
pub const ANOMALY_Z: f64 = 4.0;

fn is_weekend(day: i64) -> bool {
    // 1970-01-01 (day 0) was a Thursday: Monday = 0.
    (day + 3).rem_euclid(7) >= 5
}

/// Anomalies in the last `recent` days of each series: a day's count against the median of the
/// previous 8 weeks' days of the same kind (weekday or weekend), scaled by max(1.4826·MAD,
/// √median, 1); |z| > [`ANOMALY_Z`].
pub fn anomalies(series: &[Series], recent: usize) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for s in series {
        let n = s.counts.len();
        for k in n.saturating_sub(recent)..n {
            let day = s.first_day + k as i64;
            let mut base: Vec<f64> = (k.saturating_sub(56)..k)
                .filter(|&j| is_weekend(s.first_day + j as i64) == is_weekend(day))
                .map(|j| s.counts[j])
                .collect();
            if base.len() < 6 {
                continue;
            }
            base.sort_by(f64::total_cmp);
            let med = base[base.len() / 2];
            let mut dev: Vec<f64> = base.iter().map(|x| (x - med).abs()).collect();
            dev.sort_by(f64::total_cmp);
            let mad = dev[dev.len() / 2];
            let scale = (1.4826 * mad).max(med.sqrt()).max(1.0);
            let z = (s.counts[k] - med) / scale;
            if z.abs() > ANOMALY_Z {
                out.push(Anomaly {
                    metric: s.metric,
                    day: utc(day as f64 * DAY).format("%Y-%m-%d").to_string(),
                    count: s.counts[k],
                    baseline: med,
                    z,
                });
            }
        }
    }
    out
}

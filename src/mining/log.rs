//! The mining input of one workspace: deals and transitions as dense codes and flat columns.
//!
//! [`WorkspaceLog`] is what the kernels read; it is built from the lake by
//! [`load_workspace`](super::load_workspace) or, for tests and other callers, by [`LogBuilder`].

use rayon::prelude::*;

use super::encode::{DealIndex, Dict, NONE16};

/// The deals of a workspace, by deal code; codes at or above [`Deals::known`] came from the
/// history only (no `staging.deals` row) and have unknown facts.
#[derive(Debug, Clone, Default)]
pub struct Deals {
    /// `amount_usd`, NaN when unknown.
    pub amount_usd: Vec<f64>,
    /// Code into [`Deals::lead_sources`], [`NONE16`] when unknown.
    pub lead_source: Vec<u16>,
    pub lead_sources: Dict,
    /// Code into [`Deals::industries`], [`NONE16`] when unknown.
    pub industry: Vec<u16>,
    pub industries: Dict,
    /// A contact with role `champion`.
    pub champion: Vec<bool>,
    /// A contact with role `blocker`.
    pub blocker: Vec<bool>,
    /// `is_closed`.
    pub closed: Vec<bool>,
    /// Every deal code given, history-only ones included.
    pub count: usize,
}

impl Deals {
    /// Deals with a `staging.deals` row (codes `0..known`).
    pub fn known(&self) -> usize {
        self.amount_usd.len()
    }

    /// A table of `known` deals with no facts yet.
    pub fn with_known(known: usize) -> Self {
        Self {
            amount_usd: vec![f64::NAN; known],
            lead_source: vec![NONE16; known],
            industry: vec![NONE16; known],
            champion: vec![false; known],
            blocker: vec![false; known],
            closed: vec![false; known],
            count: known,
            ..Self::default()
        }
    }
}

/// Stage transitions, one entry per row of `staging.deal_stage_history`.
#[derive(Debug, Clone, Default)]
pub struct Transitions {
    /// Deal code, [`NONE32`] without a deal id.
    pub deal: Vec<u32>,
    /// Stage left, [`NONE16`] for a deal's first row.
    pub from: Vec<u16>,
    /// Stage entered, [`NONE16`] when unmapped (NULL).
    pub to: Vec<u16>,
    /// Days spent in `from`, NaN when unknown.
    pub days: Vec<f64>,
    /// When `to` was entered, microseconds since the epoch (UTC); read from the lake only for
    /// the `engagement` factor (empty otherwise).
    pub at: Vec<i64>,
}

impl Transitions {
    pub fn len(&self) -> usize {
        self.to.len()
    }

    pub fn is_empty(&self) -> bool {
        self.to.is_empty()
    }

    /// Room for `rows` more rows (times too, which only the engagement factor reads).
    pub fn reserve(&mut self, rows: usize) {
        self.deal.reserve(rows);
        self.from.reserve(rows);
        self.to.reserve(rows);
        self.days.reserve(rows);
    }
}

/// Activity times per deal, sorted, as offsets into one flat array (CSR).
#[derive(Debug, Clone, Default)]
pub struct Activities {
    offsets: Vec<usize>,
    times: Vec<i64>,
}

impl Activities {
    /// Groups `(deal code, time)` pairs by deal (counting sort), then sorts each deal's times.
    pub fn new(deals: usize, deal: &[u32], at: &[i64]) -> Self {
        let mut offsets = vec![0usize; deals + 1];
        for d in deal {
            if (*d as usize) < deals {
                offsets[*d as usize + 1] += 1;
            }
        }
        for i in 0..deals {
            offsets[i + 1] += offsets[i];
        }
        let mut cursor = offsets.clone();
        let mut times = vec![0i64; offsets[deals]];
        for (d, t) in deal.iter().zip(at) {
            let d = *d as usize;
            if d < deals {
                times[cursor[d]] = *t;
                cursor[d] += 1;
            }
        }
        let mut slices = Vec::with_capacity(deals);
        let mut rest = times.as_mut_slice();
        for d in 0..deals {
            let (head, tail) = rest.split_at_mut(offsets[d + 1] - offsets[d]);
            slices.push(head);
            rest = tail;
        }
        slices.into_par_iter().for_each(|s| s.sort_unstable());
        Self { offsets, times }
    }

    /// The deal's last activity at or before `at`.
    pub fn last_before(&self, deal: u32, at: i64) -> Option<i64> {
        let d = deal as usize;
        if d + 1 >= self.offsets.len() {
            return None;
        }
        let times = &self.times[self.offsets[d]..self.offsets[d + 1]];
        let n = times.partition_point(|t| *t <= at);
        (n > 0).then(|| times[n - 1])
    }

    pub fn len(&self) -> usize {
        self.times.len()
    }

    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }
}

/// Everything mining reads of one workspace.
#[derive(Debug, Clone, Default)]
pub struct WorkspaceLog {
    pub workspace: String,
    /// Stage (activity) names; codes in [`Transitions::from`] / [`Transitions::to`].
    pub stages: Dict,
    pub deals: Deals,
    pub transitions: Transitions,
    /// Activities, when a factor needs them.
    pub activities: Option<Activities>,
}

impl WorkspaceLog {
    /// Closed deals: `is_closed` deals of `staging.deals`; for a workspace without deal rows
    /// (an imported event log), every case.
    pub fn closed_deals(&self) -> u64 {
        if self.deals.known() > 0 {
            self.deals.closed.iter().filter(|c| **c).count() as u64
        } else {
            self.deals.count as u64
        }
    }
}

/// The facts of one deal, for [`LogBuilder`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DealFacts {
    pub amount_usd: Option<f64>,
    pub lead_source: Option<String>,
    pub industry: Option<String>,
    pub champion: bool,
    pub blocker: bool,
    pub closed: bool,
}

/// A history row of [`LogBuilder`]: deal, from, to, days, entered at.
type HistoryRow = (String, Option<String>, Option<String>, Option<f64>, i64);

/// Builds a [`WorkspaceLog`] from names, for tests and small inputs.
///
/// ```
/// use revlake::mining::{DealFacts, LogBuilder};
/// let log = LogBuilder::new("acme")
///     .deal("d1", DealFacts { champion: true, closed: true, ..DealFacts::default() })
///     .transition("d1", None, "lead", None, 0)
///     .transition("d1", Some("lead"), "closed_won", Some(3.0), 3 * 86_400_000_000)
///     .build();
/// assert_eq!(log.transitions.len(), 2);
/// ```
#[derive(Debug, Default)]
pub struct LogBuilder {
    log: WorkspaceLog,
    index: DealIndex,
    facts: Vec<DealFacts>,
    history: Vec<HistoryRow>,
    activities: Vec<(String, i64)>,
}

impl LogBuilder {
    pub fn new(workspace: &str) -> Self {
        Self {
            log: WorkspaceLog {
                workspace: workspace.to_string(),
                ..WorkspaceLog::default()
            },
            ..Self::default()
        }
    }

    /// A `staging.deals` row (ids must be new).
    pub fn deal(mut self, id: &str, facts: DealFacts) -> Self {
        let ids = arrow::array::StringArray::from(vec![id]);
        self.index
            .insert_all(&ids)
            .expect("a string array holds deal ids");
        self.facts.push(facts);
        self
    }

    /// A history row: `from` NULL for the first row, `to` NULL when unmapped.
    pub fn transition(
        mut self,
        deal: &str,
        from: Option<&str>,
        to: &str,
        days: Option<f64>,
        at_micros: i64,
    ) -> Self {
        self.history.push((
            deal.to_string(),
            from.map(str::to_string),
            Some(to.to_string()),
            days,
            at_micros,
        ));
        self
    }

    /// A history row whose stage did not map (`to_stage` NULL).
    pub fn unmapped(mut self, deal: &str, at_micros: i64) -> Self {
        self.history
            .push((deal.to_string(), None, None, None, at_micros));
        self
    }

    /// An activity of a deal.
    pub fn activity(mut self, deal: &str, at_micros: i64) -> Self {
        self.activities.push((deal.to_string(), at_micros));
        self
    }

    pub fn build(mut self) -> WorkspaceLog {
        let known = self.facts.len();
        let mut deals = Deals::with_known(known);
        for (i, f) in self.facts.iter().enumerate() {
            deals.amount_usd[i] = f.amount_usd.unwrap_or(f64::NAN);
            deals.lead_source[i] = f
                .lead_source
                .as_deref()
                .and_then(|s| deals.lead_sources.code(s))
                .unwrap_or(NONE16);
            deals.industry[i] = f
                .industry
                .as_deref()
                .and_then(|s| deals.industries.code(s))
                .unwrap_or(NONE16);
            deals.champion[i] = f.champion;
            deals.blocker[i] = f.blocker;
            deals.closed[i] = f.closed;
        }
        let ids = arrow::array::StringArray::from_iter_values(self.history.iter().map(|h| &h.0));
        let codes = self
            .index
            .probe(&ids, true)
            .expect("a string array holds deal ids");
        let t = &mut self.log.transitions;
        for ((_, from, to, days, at), code) in self.history.iter().zip(codes) {
            t.deal.push(code);
            let mut code_of = |s: &Option<String>| {
                s.as_deref()
                    .and_then(|s| self.log.stages.code(s))
                    .unwrap_or(NONE16)
            };
            t.from.push(code_of(from));
            t.to.push(code_of(to));
            t.days.push(days.unwrap_or(f64::NAN));
            t.at.push(*at);
        }
        if !self.activities.is_empty() {
            let ids =
                arrow::array::StringArray::from_iter_values(self.activities.iter().map(|a| &a.0));
            let codes = self
                .index
                .probe(&ids, false)
                .expect("a string array holds deal ids");
            let at: Vec<i64> = self.activities.iter().map(|a| a.1).collect();
            self.log.activities = Some(Activities::new(self.index.len(), &codes, &at));
        }
        deals.count = self.index.len();
        self.log.deals = deals;
        self.log
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mining::encode::NONE32;

    #[test]
    fn activities_answer_the_last_one_before_a_time() {
        let a = Activities::new(3, &[1, 0, 1, 1, NONE32], &[50, 7, 10, 30, 1]);
        assert_eq!(a.last_before(1, 29), Some(10));
        assert_eq!(a.last_before(1, 30), Some(30));
        assert_eq!(a.last_before(1, 9), None);
        assert_eq!(a.last_before(0, 100), Some(7));
        assert_eq!(a.last_before(2, 100), None);
        assert_eq!(a.last_before(9, 100), None);
        assert_eq!(a.len(), 4);
    }

    #[test]
    fn history_only_deals_get_codes_after_the_known_ones() {
        let log = LogBuilder::new("w")
            .deal("a", DealFacts::default())
            .transition("b", None, "lead", None, 0)
            .transition("a", None, "lead", None, 0)
            .build();
        assert_eq!(log.transitions.deal, [1, 0]);
        assert_eq!((log.deals.known(), log.deals.count), (1, 2));
        assert_eq!(log.closed_deals(), 0);
    }
}

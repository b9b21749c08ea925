//! Cron schedules in named time zones, durations as written in job files, and what to do
//! about runs missed while no scheduler was up.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Serialize};

/// Occurrences a backfill or a missed-run count looks at, at most.
pub const MAX_OCCURRENCES: usize = 10_000;

/// A cron schedule in a time zone: `0 6 * * *` in `Europe/Berlin` is 06:00 Berlin time all
/// year, across daylight-saving changes. Five fields (minute hour day month weekday), or six
/// with seconds first; `@hourly`, `@daily`, `@weekly`, `@monthly`; `L`, `W` and `#` as in
/// Vixie cron extensions.
///
/// On a spring-forward day a time in the skipped hour runs at the first instant after the
/// gap; on a fall-back day a fixed time runs once, at the earlier instant.
#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    cron: Cron,
    tz: Tz,
}

impl Schedule {
    /// Parses `text` in the IANA zone `timezone` (`UTC`, `America/New_York`).
    pub fn parse(text: &str, timezone: &str) -> Result<Self, String> {
        let tz = Tz::from_str(timezone).map_err(|_| {
            format!("`{timezone}` is not an IANA time zone name (e.g. UTC, Europe/Berlin, America/New_York)")
        })?;
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(text.trim())
            .map_err(|e| {
                format!("`{text}` is not a cron schedule ({e}); write `minute hour day month weekday`, e.g. `0 6 * * *`, or six fields with seconds first")
            })?;
        Ok(Self {
            text: text.trim().to_string(),
            cron,
            tz,
        })
    }

    /// The schedule as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The time zone's name.
    pub fn timezone(&self) -> &str {
        self.tz.name()
    }

    /// `t` as wall-clock time in the schedule's zone: `2025-03-09 06:00 EDT`.
    pub fn local(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.tz)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    }

    /// The first occurrence strictly after `after`, or `None` if there is none (a pattern
    /// such as `0 0 30 2 *` never matches).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The latest occurrence at or before `at`.
    pub fn last_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&self.tz);
        self.cron
            .find_previous_occurrence(&local, true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The occurrences in `[from, to]`, in order, at most `limit` (`None` when there are more).
    pub fn occurrences(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Option<Vec<DateTime<Utc>>> {
        let mut out = Vec::new();
        let mut t = match from.checked_sub_signed(chrono::Duration::seconds(1)) {
            Some(t) => t,
            None => return Some(out),
        };
        while let Some(next) = self.next_after(t) {
            if next > to {
                break;
            }
            if out.len() == limit {
                return None;
            }
            out.push(next);
            t = next;
        }
        Some(out)
    }
}

/// What the scheduler does on start about occurrences that passed while it was down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissedPolicy {
    /// Wait for the next occurrence (a sync that runs often catches up by itself).
    #[default]
    Skip,
    /// Run once at start for all missed occurrences together (a daily report or a model
    /// retraining that must not wait a day or a month).
    CatchUpOnce,
}

/// Occurrences missed between the last run and now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missed {
    /// How many (capped at [`MAX_OCCURRENCES`]).
    pub count: usize,
    /// The latest missed occurrence.
    pub latest: DateTime<Utc>,
}

/// The occurrences strictly after `last_run` and at or before `now`; `None` when nothing was
/// missed or the job never ran (a first start catches nothing up).
pub fn missed_runs(
    schedule: &Schedule,
    last_run: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<Missed> {
    let last = last_run?;
    let first = schedule.next_after(last).filter(|t| *t <= now)?;
    let latest = schedule.last_at_or_before(now).unwrap_or(first);
    let mut count = 1;
    let mut t = first;
    while count < MAX_OCCURRENCES {
        match schedule.next_after(t) {
            Some(n) if n <= now => {
                count += 1;
                t = n;
            }
            _ => break,
        }
    }
    Some(Missed { count, latest })
}

/// The run to start now for `missed` under `policy`: the latest missed occurrence for
/// `catch_up_once`, none for `skip`.
pub fn catch_up(policy: MissedPolicy, missed: Option<&Missed>) -> Option<DateTime<Utc>> {
    match (policy, missed) {
        (MissedPolicy::CatchUpOnce, Some(m)) => Some(m.latest),
        _ => None,
    }
}

/// Parses a duration as written in job files: `90s`, `15m`, `2h`, `1d`, `1h30m`, `500ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "`{text}` is not a duration: write a number and a unit (ms, s, m, h, d), e.g. `30s`, `15m`, `1h30m`"
        )
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86_400)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

/// `1h30m`-style text of a duration (whole seconds; milliseconds below a second).
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (days, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (v, u) in [(days, "d"), (h, "h"), (m, "m"), (s, "s")] {
        if v > 0 {
            out.push_str(&format!("{v}{u}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn daily_six_am_follows_the_zone_across_spring_forward() {
        let s = Schedule::parse("0 6 * * *", "America/New_York").unwrap();
        // EST (UTC-5) before 2025-03-09, EDT (UTC-4) from then on.
        assert_eq!(
            s.next_after(utc("2025-03-08T00:00:00Z")),
            Some(utc("2025-03-08T11:00:00Z"))
        );
        assert_eq!(
            s.next_after(utc("2025-03-08T11:00:00Z")),
            Some(utc("2025-03-09T10:00:00Z"))
        );
    }

    #[test]
    fn a_time_in_the_skipped_hour_runs_right_after_the_gap() {
        // 02:30 does not exist in New York on 2025-03-09: clocks go from 02:00 to 03:00 EDT.
        let s = Schedule::parse("30 2 * * *", "America/New_York").unwrap();
        assert_eq!(
            s.next_after(utc("2025-03-09T05:00:00Z")),
            Some(utc("2025-03-09T07:00:00Z"))
        );
        // The day after, 02:30 EDT again.
        assert_eq!(
            s.next_after(utc("2025-03-09T07:00:00Z")),
            Some(utc("2025-03-10T06:30:00Z"))
        );
    }

    #[test]
    fn a_fixed_time_in_the_repeated_hour_runs_once_on_fall_back() {
        // 01:30 happens twice in New York on 2025-11-02 (EDT, then EST).
        let s = Schedule::parse("30 1 * * *", "America/New_York").unwrap();
        let first = s.next_after(utc("2025-11-02T04:00:00Z")).unwrap();
        assert_eq!(first, utc("2025-11-02T05:30:00Z"));
        assert_eq!(s.next_after(first), Some(utc("2025-11-03T06:30:00Z")));
    }

    #[test]
    fn monday_report_in_berlin_and_seconds_schedules() {
        let s = Schedule::parse("0 8 * * MON", "Europe/Berlin").unwrap();
        // 2025-10-26 is the fall-back Sunday in Berlin: Monday 08:00 is then UTC+1.
        assert_eq!(
            s.next_after(utc("2025-10-25T00:00:00Z")),
            Some(utc("2025-10-27T07:00:00Z"))
        );
        let every_second = Schedule::parse("* * * * * *", "UTC").unwrap();
        assert_eq!(
            every_second.next_after(utc("2025-01-01T00:00:00Z")),
            Some(utc("2025-01-01T00:00:01Z"))
        );
    }

    #[test]
    fn bad_schedules_and_zones_say_what_to_write() {
        let e = Schedule::parse("every hour", "UTC").unwrap_err();
        assert!(e.contains("`every hour` is not a cron schedule"), "{e}");
        let e = Schedule::parse("0 * * * *", "Mars/Olympus").unwrap_err();
        assert!(e.contains("IANA"), "{e}");
    }

    #[test]
    fn occurrences_are_bounded_and_inclusive() {
        let s = Schedule::parse("0 * * * *", "UTC").unwrap();
        let got = s
            .occurrences(utc("2025-01-01T00:00:00Z"), utc("2025-01-01T03:00:00Z"), 10)
            .unwrap();
        assert_eq!(got.len(), 4);
        assert!(
            s.occurrences(utc("2025-01-01T00:00:00Z"), utc("2025-01-02T00:00:00Z"), 10)
                .is_none()
        );
    }

    #[test]
    fn missed_runs_follow_the_policy() {
        let s = Schedule::parse("0 6 * * *", "UTC").unwrap();
        let now = utc("2025-01-04T09:00:00Z");
        // Never ran: nothing to catch up.
        assert_eq!(missed_runs(&s, None, now), None);
        // Ran today at 06:00: nothing missed.
        assert_eq!(
            missed_runs(&s, Some(utc("2025-01-04T06:00:00Z")), now),
            None
        );
        // Down since the 1st: the 2nd, 3rd and 4th were missed.
        let m = missed_runs(&s, Some(utc("2025-01-01T06:00:00Z")), now).unwrap();
        assert_eq!(m.count, 3);
        assert_eq!(m.latest, utc("2025-01-04T06:00:00Z"));
        assert_eq!(catch_up(MissedPolicy::Skip, Some(&m)), None);
        assert_eq!(
            catch_up(MissedPolicy::CatchUpOnce, Some(&m)),
            Some(utc("2025-01-04T06:00:00Z"))
        );
        assert_eq!(catch_up(MissedPolicy::CatchUpOnce, None), None);
    }

    #[test]
    fn durations_parse_as_written() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        for bad in ["", "10", "m", "1x", "-1s", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }
}

//! EventBridge Scheduler's schedule expressions and their ticks, with no I/O.
//!
//! - [`Expression`]: `rate(value unit)`, `cron(6 fields)` ([`cron`]) and
//!   `at(yyyy-mm-ddThh:mm:ss)`, parsed with EventBridge's rules.
//! - [`Timing`]: an expression with its time zone (IANA, through `jiff`'s tz database) and its
//!   `StartDate`/`EndDate`; [`Timing::first_at_or_after`] is the next tick.
//!
//! As EventBridge Scheduler does: a rate is a fixed duration (a day is 24 hours whatever the
//! daylight-saving changes) counted from `StartDate`, or from the schedule's creation when it
//! has none (so it runs at once); a cron expression and an `at` time are wall-clock times of the
//! time zone; a cron time that does not exist (the spring-forward gap) is skipped, and one that
//! happens twice (the fall-back fold) runs once, at its first occurrence. `at` ignores
//! `StartDate` and `EndDate`.

pub mod cron;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};

pub use cron::Cron;

/// An expression that is not one of EventBridge's, or a time zone that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("Invalid Schedule Expression {0}.")]
    Expression(String),
    #[error("Invalid ScheduleExpressionTimezone {0}.")]
    TimeZone(String),
}

/// A parsed `ScheduleExpression`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expression {
    /// `rate(value unit)`: every `every_ms`.
    Rate {
        every_ms: i64,
    },
    Cron(Cron),
    /// `at(...)`: once, at this wall-clock time of the time zone.
    At(DateTime),
}

impl Expression {
    pub fn parse(s: &str) -> Result<Self, ScheduleError> {
        let bad = || ScheduleError::Expression(s.to_owned());
        let inner = |prefix: &str| {
            s.strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(')'))
                .map(str::trim)
        };
        if let Some(r) = inner("rate(") {
            let (value, unit) = r.split_once(' ').ok_or_else(bad)?;
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let value: i64 = value.parse().map_err(|_| bad())?;
            let unit_ms = match unit.trim() {
                "minute" | "minutes" => 60_000,
                "hour" | "hours" => 3_600_000,
                "day" | "days" => 86_400_000,
                _ => return Err(bad()),
            };
            let every_ms = value.checked_mul(unit_ms).filter(|v| *v > 0);
            return every_ms
                .map(|every_ms| Self::Rate { every_ms })
                .ok_or_else(bad);
        }
        if let Some(c) = inner("cron(") {
            return Cron::parse(c).map(Self::Cron).ok_or_else(bad);
        }
        if let Some(a) = inner("at(") {
            return parse_at(a).map(Self::At).ok_or_else(bad);
        }
        Err(bad())
    }

    /// Whether it is a one-time schedule (`at`).
    pub fn is_one_time(&self) -> bool {
        matches!(self, Self::At(_))
    }
}

/// `yyyy-mm-ddThh:mm:ss`, exactly.
fn parse_at(s: &str) -> Option<DateTime> {
    let b = s.as_bytes();
    let shape = b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r).and_then(|v| v.parse::<i16>().ok());
    DateTime::new(
        n(0..4)?,
        i8::try_from(n(5..7)?).ok()?,
        i8::try_from(n(8..10)?).ok()?,
        i8::try_from(n(11..13)?).ok()?,
        i8::try_from(n(14..16)?).ok()?,
        i8::try_from(n(17..19)?).ok()?,
        0,
    )
    .ok()
}

/// An IANA time zone by name (`UTC` when none is given).
pub fn time_zone(name: Option<&str>) -> Result<TimeZone, ScheduleError> {
    match name {
        None => Ok(TimeZone::UTC),
        Some(n) => TimeZone::get(n).map_err(|_| ScheduleError::TimeZone(n.to_owned())),
    }
}

/// When a schedule's ticks fall.
#[derive(Debug, Clone)]
pub struct Timing {
    pub expression: Expression,
    pub time_zone: TimeZone,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// When the schedule was created: a rate without `StartDate` counts from here.
    pub created_ms: i64,
}

fn ts(ms: i64) -> Option<Timestamp> {
    Timestamp::from_millisecond(ms).ok()
}

impl Timing {
    /// The first tick at `t_ms` or later (milliseconds since the epoch), `None` if there is
    /// none (past `EndDate`, an `at` in the past, a cron expression with no more dates).
    pub fn first_at_or_after(&self, t_ms: i64) -> Option<i64> {
        let tick = match &self.expression {
            Expression::At(dt) => {
                let at = instant(&self.time_zone, *dt, true)?;
                return (at >= t_ms).then_some(at);
            }
            Expression::Rate { every_ms } => {
                let anchor = self.start_ms.unwrap_or(self.created_ms);
                if t_ms <= anchor {
                    anchor
                } else {
                    let k = (t_ms - anchor + every_ms - 1) / every_ms;
                    anchor.checked_add(k.checked_mul(*every_ms)?)?
                }
            }
            Expression::Cron(c) => {
                cron_at_or_after(c, &self.time_zone, t_ms.max(self.start_ms.unwrap_or(t_ms)))?
            }
        };
        match self.end_ms {
            Some(end) if tick > end => None,
            _ => Some(tick),
        }
    }

    /// A tick as UTC and as the time zone's wall clock:
    /// `2030-03-09T07:30:00Z (2030-03-09T02:30:00-05:00[America/New_York])`.
    pub fn show(&self, ms: i64) -> String {
        match ts(ms) {
            Some(t) => format!("{t} ({})", t.to_zoned(self.time_zone.clone())),
            None => ms.to_string(),
        }
    }

    /// The next `n` ticks from `t_ms` on (what `stoke schedules show` prints).
    pub fn upcoming(&self, t_ms: i64, n: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(n);
        let mut t = t_ms;
        while out.len() < n {
            let Some(tick) = self.first_at_or_after(t) else {
                break;
            };
            out.push(tick);
            t = tick + 1;
        }
        out
    }
}

/// The instant of a wall-clock time in `tz`: `None` in a gap unless `gap_later` (an `at` in a
/// gap runs when the clock reaches it, at the gap's end); the first occurrence in a fold.
fn instant(tz: &TimeZone, dt: DateTime, gap_later: bool) -> Option<i64> {
    let offset = match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset,
        AmbiguousOffset::Fold { before, .. } => before,
        AmbiguousOffset::Gap { before, .. } if gap_later => before,
        AmbiguousOffset::Gap { .. } => return None,
    };
    offset.to_timestamp(dt).ok().map(Timestamp::as_millisecond)
}

fn cron_at_or_after(c: &Cron, tz: &TimeZone, t_ms: i64) -> Option<i64> {
    let start = tz.to_datetime(ts(t_ms)?).date();
    let mut day: Date = start;
    while day.year() <= cron::LAST_YEAR {
        if c.runs_on(day) {
            for h in c.hours.iter(0, 23) {
                for m in c.minutes.iter(0, 59) {
                    let dt = day.at(i8::try_from(h).ok()?, i8::try_from(m).ok()?, 0, 0);
                    if let Some(at) = instant(tz, dt, false)
                        && at >= t_ms
                    {
                        return Some(at);
                    }
                }
            }
        }
        day = day.tomorrow().ok()?;
    }
    None
}

#[cfg(test)]
mod tests;

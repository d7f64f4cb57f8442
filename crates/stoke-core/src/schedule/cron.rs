//! EventBridge's cron syntax, `cron(minutes hours day-of-month month day-of-week year)`, parsed
//! into sets and matched against civil dates and times (the time zone is the caller's: see
//! [`super::next_tick`]).
//!
//! Fields and their wildcards, as EventBridge documents them: minutes 0-59 and hours 0-23
//! (`, - * /`); day-of-month 1-31 (`, - * / ? L W`: `L` the last day, `15W` the weekday nearest
//! the 15th, `LW` the last weekday); month 1-12 or `JAN`-`DEC` (`, - * /`); day-of-week 1-7 or
//! `SUN`-`SAT`, 1 being Sunday (`, - * ? L #`: `6L` the month's last Friday, `2#3` its third
//! Monday, `L` alone Saturday); year 1970-2199 (`, - * /`). One of day-of-month and day-of-week
//! is `?`, never both and never neither.

use jiff::civil::Date;

/// A set of values of one field, `lo..=hi` at most 0..=255, as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bits([u64; 4]);

impl Bits {
    const EMPTY: Self = Self([0; 4]);

    fn set(&mut self, v: u32) {
        if let Some(w) = self.0.get_mut((v / 64) as usize) {
            *w |= 1u64 << (v % 64);
        }
    }

    /// Whether `v` is in the set.
    pub fn has(&self, v: u32) -> bool {
        self.0
            .get((v / 64) as usize)
            .is_some_and(|w| w & (1u64 << (v % 64)) != 0)
    }

    /// The members from `lo` to `hi`, ascending.
    pub fn iter(&self, lo: u32, hi: u32) -> impl Iterator<Item = u32> + '_ {
        (lo..=hi).filter(|v| self.has(*v))
    }
}

/// What the day-of-month field asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DayOfMonth {
    /// `?`: day-of-week decides.
    Unspecified,
    Days(Bits),
    /// `L`.
    Last,
    /// `nW`: the weekday nearest day n, within the month.
    NearestWeekday(u32),
    /// `LW`.
    LastWeekday,
}

/// What the day-of-week field asks for (1 = Sunday).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DayOfWeek {
    /// `?`: day-of-month decides.
    Unspecified,
    Days(Bits),
    /// `dL`: the last such day of the month.
    Last(u32),
    /// `d#n`: the n-th such day of the month.
    Nth(u32, u32),
}

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    pub minutes: Bits,
    pub hours: Bits,
    pub day_of_month: DayOfMonth,
    pub months: Bits,
    pub day_of_week: DayOfWeek,
    pub years: Bits,
}

/// The first and last years a cron expression may name (EventBridge's range); years are kept
/// as offsets from the first.
pub const FIRST_YEAR: i16 = 1970;
pub const LAST_YEAR: i16 = 2199;

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// One value of a field: a number in `lo..=hi`, or one of `names` (the first is `lo`).
fn value(s: &str, lo: u32, hi: u32, names: &[&str]) -> Option<u32> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return u32::try_from(i).ok().map(|i| i + lo);
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u32>().ok().filter(|v| (lo..=hi).contains(v))
}

/// A field of `, - * /` (and names); `None` if it does not parse.
fn field(s: &str, lo: u32, hi: u32, names: &[&str]) -> Option<Bits> {
    let mut bits = Bits::EMPTY;
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => {
                let st = value(st, 1, hi.max(1), &[])?;
                (r, Some(st))
            }
            None => (part, None),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, lo, hi, names)?, value(b, lo, hi, names)?)
        } else {
            let a = value(range, lo, hi, names)?;
            // `5/10`: from 5 to the end, every 10.
            (a, if step.is_some() { hi } else { a })
        };
        if a > b {
            return None;
        }
        let step = step.unwrap_or(1);
        let mut v = a;
        while v <= b {
            bits.set(v);
            v += step;
        }
    }
    Some(bits)
}

fn day_of_month(s: &str) -> Option<DayOfMonth> {
    match s {
        "?" => Some(DayOfMonth::Unspecified),
        "L" => Some(DayOfMonth::Last),
        "LW" => Some(DayOfMonth::LastWeekday),
        _ => match s.strip_suffix('W') {
            Some(n) => value(n, 1, 31, &[]).map(DayOfMonth::NearestWeekday),
            None => field(s, 1, 31, &[]).map(DayOfMonth::Days),
        },
    }
}

fn day_of_week(s: &str) -> Option<DayOfWeek> {
    if s == "?" {
        return Some(DayOfWeek::Unspecified);
    }
    if s == "L" {
        // `L` alone is the last day of the week, Saturday, every week.
        let mut b = Bits::EMPTY;
        b.set(7);
        return Some(DayOfWeek::Days(b));
    }
    if let Some(d) = s.strip_suffix('L') {
        return value(d, 1, 7, &DAYS).map(DayOfWeek::Last);
    }
    if let Some((d, n)) = s.split_once('#') {
        return Some(DayOfWeek::Nth(value(d, 1, 7, &DAYS)?, value(n, 1, 5, &[])?));
    }
    field(s, 1, 7, &DAYS).map(DayOfWeek::Days)
}

impl Cron {
    /// The six fields inside `cron(...)`; `None` if they are not a valid expression.
    pub fn parse(inner: &str) -> Option<Self> {
        let fields: Vec<&str> = inner.split_whitespace().collect();
        let [mi, h, dom, mo, dow, y] = fields.as_slice() else {
            return None;
        };
        let c = Self {
            minutes: field(mi, 0, 59, &[])?,
            hours: field(h, 0, 23, &[])?,
            day_of_month: day_of_month(dom)?,
            months: field(mo, 1, 12, &MONTHS)?,
            day_of_week: day_of_week(dow)?,
            years: year_field(y)?,
        };
        // Exactly one of the two day fields is `?`.
        let dom_q = c.day_of_month == DayOfMonth::Unspecified;
        let dow_q = c.day_of_week == DayOfWeek::Unspecified;
        (dom_q != dow_q).then_some(c)
    }

    /// Whether the expression runs on `d` (any time of it).
    pub fn runs_on(&self, d: Date) -> bool {
        let year_ok = u32::try_from(d.year() - FIRST_YEAR).is_ok_and(|y| self.years.has(y));
        if !year_ok || !self.months.has(d.month() as u32) {
            return false;
        }
        let day = d.day() as u32;
        let last = d.days_in_month() as u32;
        let wd = d.weekday().to_sunday_one_offset() as u32;
        match (&self.day_of_month, &self.day_of_week) {
            (DayOfMonth::Days(b), _) => b.has(day),
            (DayOfMonth::Last, _) => day == last,
            (DayOfMonth::NearestWeekday(n), _) => nearest_weekday(d, (*n).min(last)) == day,
            (DayOfMonth::LastWeekday, _) => nearest_weekday(d, last) == day,
            (DayOfMonth::Unspecified, DayOfWeek::Days(b)) => b.has(wd),
            (DayOfMonth::Unspecified, DayOfWeek::Last(w)) => *w == wd && day + 7 > last,
            (DayOfMonth::Unspecified, DayOfWeek::Nth(w, n)) => *w == wd && (day - 1) / 7 + 1 == *n,
            (DayOfMonth::Unspecified, DayOfWeek::Unspecified) => false,
        }
    }
}

/// Years are stored as offsets from [`FIRST_YEAR`].
fn year_field(s: &str) -> Option<Bits> {
    let span = u32::try_from(LAST_YEAR - FIRST_YEAR).ok()?;
    let first = u32::try_from(FIRST_YEAR).ok()?;
    if s == "*" {
        return field("*", 0, span, &[]);
    }
    // Shift every number of the field into offsets, keeping the syntax.
    let mut out = Bits::EMPTY;
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => (r, Some(value(st, 1, span, &[])?)),
            None => (part, None),
        };
        let shift = |v: &str| value(v, first, first + span, &[]).map(|v| v - first);
        let (a, b) = if range == "*" {
            (0, span)
        } else if let Some((a, b)) = range.split_once('-') {
            (shift(a)?, shift(b)?)
        } else {
            let a = shift(range)?;
            (a, if step.is_some() { span } else { a })
        };
        if a > b {
            return None;
        }
        let mut v = a;
        while v <= b {
            out.set(v);
            v += step.unwrap_or(1);
        }
    }
    Some(out)
}

/// The day of `d`'s month that is the weekday nearest day `n` (never leaving the month).
fn nearest_weekday(d: Date, n: u32) -> u32 {
    let last = d.days_in_month() as u32;
    let Ok(target) = Date::new(d.year(), d.month(), i8::try_from(n).unwrap_or(1)) else {
        return 0;
    };
    match target.weekday().to_sunday_one_offset() {
        // Saturday: the Friday before, or the Monday after on the 1st.
        7 if n == 1 => 3,
        7 => n - 1,
        // Sunday: the Monday after, or the Friday before on the last day.
        1 if n == last => n - 2,
        1 => n + 1,
        _ => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i16, m: i8, d: i8) -> Date {
        Date::new(y, m, d).unwrap()
    }

    #[test]
    fn fields_parse_as_eventbridge_documents_them() {
        let c = Cron::parse("0/15 9-17 ? * MON-FRI *").unwrap();
        assert_eq!(c.minutes.iter(0, 59).collect::<Vec<_>>(), [0, 15, 30, 45]);
        assert_eq!(c.hours.iter(0, 23).count(), 9);
        // 2026-12-01 is a Tuesday, 2026-12-05 a Saturday.
        assert!(c.runs_on(date(2026, 12, 1)));
        assert!(!c.runs_on(date(2026, 12, 5)));
        let c = Cron::parse("0 12 * * ? 2027").unwrap();
        assert!(!c.runs_on(date(2026, 12, 1)));
        assert!(c.runs_on(date(2027, 1, 1)));
    }

    #[test]
    fn l_w_and_hash_pick_the_days_they_name() {
        // The last day of February 2028 (a leap year) is the 29th.
        let last = Cron::parse("0 0 L * ? *").unwrap();
        assert!(last.runs_on(date(2028, 2, 29)));
        assert!(!last.runs_on(date(2028, 2, 28)));
        // 2026-08-15 is a Saturday: 15W is Friday the 14th.
        let w = Cron::parse("0 0 15W * ? *").unwrap();
        assert!(w.runs_on(date(2026, 8, 14)));
        assert!(!w.runs_on(date(2026, 8, 15)));
        // 2026-08-01 is a Saturday: 1W is Monday the 3rd.
        let w1 = Cron::parse("0 0 1W * ? *").unwrap();
        assert!(w1.runs_on(date(2026, 8, 3)));
        // 2026-05-31 is a Sunday: LW is Friday the 29th.
        let lw = Cron::parse("0 0 LW * ? *").unwrap();
        assert!(lw.runs_on(date(2026, 5, 29)));
        assert!(!lw.runs_on(date(2026, 5, 31)));
        // The last Friday of December 2026 is the 25th; its third Monday the 21st.
        let fri = Cron::parse("0 0 ? * 6L *").unwrap();
        assert!(fri.runs_on(date(2026, 12, 25)));
        assert!(!fri.runs_on(date(2026, 12, 18)));
        let mon = Cron::parse("0 0 ? * 2#3 *").unwrap();
        assert!(mon.runs_on(date(2026, 12, 21)));
        assert!(!mon.runs_on(date(2026, 12, 14)));
    }

    #[test]
    fn bad_expressions_do_not_parse() {
        for bad in [
            "0 12 * * *",      // five fields
            "0 12 * * * * *",  // seven
            "0 12 * * * *",    // neither day field is `?`
            "0 12 ? * ? *",    // both are
            "60 12 * * ? *",   // minute out of range
            "0 24 * * ? *",    // hour out of range
            "0 12 32 * ? *",   // day out of range
            "0 12 * 13 ? *",   // month out of range
            "0 12 ? * 8 *",    // weekday out of range
            "0 12 ? * 2#6 *",  // no sixth week
            "0 12 * * ? 1969", // year out of range
            "0 12 * * ? 2200", // year out of range
            "5-1 12 * * ? *",  // reversed range
            "*/0 12 * * ? *",  // zero step
            "a 12 * * ? *",    // not a number
            "0 12 * FOO ? *",  // not a month
        ] {
            assert!(Cron::parse(bad).is_none(), "{bad}");
        }
    }
}

//! Ticks of rate, cron and at expressions, in time zones and across daylight-saving changes.

use super::*;

/// Milliseconds of an RFC 3339 instant.
fn ms(s: &str) -> i64 {
    s.parse::<Timestamp>().unwrap().as_millisecond()
}

fn timing(expr: &str, tz: &str) -> Timing {
    Timing {
        expression: Expression::parse(expr).unwrap(),
        time_zone: time_zone(Some(tz)).unwrap(),
        start_ms: None,
        end_ms: None,
        created_ms: ms("2026-01-01T00:00:00Z"),
    }
}

fn upcoming(t: &Timing, from: &str, n: usize) -> Vec<String> {
    t.upcoming(ms(from), n)
        .into_iter()
        .map(|m| Timestamp::from_millisecond(m).unwrap().to_string())
        .collect()
}

#[test]
fn a_cron_time_in_the_spring_forward_gap_is_skipped() {
    // New York springs forward on 2026-03-08 at 02:00 (to 03:00): 02:30 does not exist.
    let t = timing("cron(30 2 * * ? *)", "America/New_York");
    assert_eq!(
        upcoming(&t, "2026-03-07T00:00:00Z", 3),
        [
            "2026-03-07T07:30:00Z", // 02:30 EST
            "2026-03-09T06:30:00Z", // 02:30 EDT: the 8th is skipped
            "2026-03-10T06:30:00Z",
        ]
    );
}

#[test]
fn a_cron_time_in_the_fall_back_fold_runs_once() {
    // New York falls back on 2026-11-01 at 02:00 (to 01:00): 01:00-01:59 happens twice.
    let t = timing("cron(30 1 * * ? *)", "America/New_York");
    assert_eq!(
        upcoming(&t, "2026-10-31T12:00:00Z", 2),
        ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]
    );
    // Every 30 minutes: the repeated hour does not run again.
    let t = timing("cron(0/30 * * * ? *)", "America/New_York");
    assert_eq!(
        upcoming(&t, "2026-11-01T04:00:00Z", 5),
        [
            "2026-11-01T04:00:00Z", // 00:00 EDT
            "2026-11-01T04:30:00Z",
            "2026-11-01T05:00:00Z", // 01:00 EDT
            "2026-11-01T05:30:00Z", // 01:30 EDT; 01:00 and 01:30 EST do not repeat
            "2026-11-01T07:00:00Z", // 02:00 EST
        ]
    );
    // Asked from inside the second 01:xx, the next run is 02:00 EST.
    assert_eq!(
        upcoming(&t, "2026-11-01T06:10:00Z", 1),
        ["2026-11-01T07:00:00Z"]
    );
}

#[test]
fn cron_follows_the_zones_offset_through_the_year() {
    let t = timing("cron(0 12 * * ? *)", "Europe/Paris");
    // Noon in Paris is 11:00 UTC in winter and 10:00 UTC in summer (from 2026-03-29).
    assert_eq!(
        upcoming(&t, "2026-03-28T00:00:00Z", 2),
        ["2026-03-28T11:00:00Z", "2026-03-29T10:00:00Z"]
    );
    let utc = timing("cron(0 12 * * ? *)", "UTC");
    assert_eq!(
        upcoming(&utc, "2026-03-28T12:00:00Z", 2),
        ["2026-03-28T12:00:00Z", "2026-03-29T12:00:00Z"]
    );
}

#[test]
fn cron_names_weekdays_months_and_years() {
    // Weekdays at 09:15 in Tokyo (no daylight saving): Friday 2026-12-04, then Monday the 7th.
    let t = timing("cron(15 9 ? * MON-FRI *)", "Asia/Tokyo");
    assert_eq!(
        upcoming(&t, "2026-12-04T00:00:00Z", 2),
        ["2026-12-04T00:15:00Z", "2026-12-07T00:15:00Z"]
    );
    // The last day of each February in 2027-2028 only.
    let t = timing("cron(0 0 L FEB ? 2027-2028)", "UTC");
    assert_eq!(
        upcoming(&t, "2026-01-01T00:00:00Z", 3),
        ["2027-02-28T00:00:00Z", "2028-02-29T00:00:00Z"]
    );
}

#[test]
fn a_rate_counts_fixed_durations_from_its_start() {
    let mut t = timing("rate(1 day)", "America/New_York");
    // No StartDate: from creation, at once; a day is 24 hours across the DST change.
    t.created_ms = ms("2026-03-07T12:00:00Z");
    assert_eq!(
        upcoming(&t, "2026-03-07T00:00:00Z", 3),
        [
            "2026-03-07T12:00:00Z",
            "2026-03-08T12:00:00Z",
            "2026-03-09T12:00:00Z"
        ]
    );
    // From inside a period: the next multiple.
    assert_eq!(
        upcoming(&t, "2026-03-08T12:00:00.001Z", 1),
        ["2026-03-09T12:00:00Z"]
    );
    // A StartDate anchors it; an EndDate ends it (a tick on the EndDate still runs).
    let mut t = timing("rate(5 minutes)", "UTC");
    t.start_ms = Some(ms("2026-06-01T00:01:00Z"));
    t.end_ms = Some(ms("2026-06-01T00:11:00Z"));
    assert_eq!(
        upcoming(&t, "2026-01-01T00:00:00Z", 9),
        [
            "2026-06-01T00:01:00Z",
            "2026-06-01T00:06:00Z",
            "2026-06-01T00:11:00Z"
        ]
    );
}

#[test]
fn cron_waits_for_its_start_date_and_stops_at_its_end_date() {
    let mut t = timing("cron(0 * * * ? *)", "UTC");
    t.start_ms = Some(ms("2026-06-01T10:30:00Z"));
    t.end_ms = Some(ms("2026-06-01T12:30:00Z"));
    assert_eq!(
        upcoming(&t, "2026-06-01T00:00:00Z", 5),
        ["2026-06-01T11:00:00Z", "2026-06-01T12:00:00Z"]
    );
}

#[test]
fn at_runs_once_at_its_wall_clock_time() {
    let t = timing("at(2026-12-24T18:00:00)", "Europe/Berlin");
    assert_eq!(
        upcoming(&t, "2026-12-01T00:00:00Z", 3),
        ["2026-12-24T17:00:00Z"]
    );
    assert!(
        t.first_at_or_after(ms("2026-12-24T17:00:00.001Z"))
            .is_none()
    );
    // An `at` inside a gap runs at the gap's end (02:30 on 2026-03-08 in New York is 03:30 EDT).
    let t = timing("at(2026-03-08T02:30:00)", "America/New_York");
    assert_eq!(
        upcoming(&t, "2026-03-01T00:00:00Z", 1),
        ["2026-03-08T07:30:00Z"]
    );
    // StartDate and EndDate do not apply to one-time schedules.
    let mut t = timing("at(2026-12-24T18:00:00)", "UTC");
    t.end_ms = Some(ms("2026-01-01T00:00:00Z"));
    assert_eq!(
        upcoming(&t, "2026-12-01T00:00:00Z", 1),
        ["2026-12-24T18:00:00Z"]
    );
}

#[test]
fn bad_expressions_and_zones_are_refused_with_eventbridges_wording() {
    for bad in [
        "rate(0 minutes)",
        "rate(-1 minutes)",
        "rate(5 weeks)",
        "rate(five minutes)",
        "rate(5)",
        "cron(0 12 * * *)",
        "cron(0 12 * * * *)",
        "at(2026-12-24 18:00:00)",
        "at(2026-02-30T18:00:00)",
        "at(2026-12-24T18:00)",
        "at(2026-12-24T18:00:00.5)",
        "every 5 minutes",
        "",
    ] {
        let e = Expression::parse(bad).unwrap_err();
        assert_eq!(e.to_string(), format!("Invalid Schedule Expression {bad}."));
    }
    assert_eq!(
        time_zone(Some("Mars/Olympus_Mons"))
            .unwrap_err()
            .to_string(),
        "Invalid ScheduleExpressionTimezone Mars/Olympus_Mons."
    );
    assert!(Expression::parse("rate(1 minute)").is_ok());
    assert!(Expression::parse("cron(0 12 * * ? *)").is_ok());
    assert!(
        Expression::parse("at(2026-12-24T18:00:00)")
            .unwrap()
            .is_one_time()
    );
}

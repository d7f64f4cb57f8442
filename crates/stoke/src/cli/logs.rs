//! `stoke logs NAME [--follow] [--since T] [--filter TEXT]`: a function's log lines, oldest
//! first, through the CloudWatch Logs API's `FilterLogEvents` (log group `/aws/lambda/NAME`).
//!
//! Every kept line is printed: pages are followed through `nextToken` until the server has no
//! more. With `--follow` the command then keeps polling (every [`FOLLOW_EVERY`]), asking for the
//! lines after the last `eventId` it printed (event ids are increasing numbers, and a
//! `nextToken` is the id to continue after), until Ctrl-C.
//!
//! `--since` takes a span back from now (`30s`, `10m`, `2h`, `1d`, `1w`) or an RFC 3339 time
//! (`2024-05-01T12:00:00Z`); [`parse_span`] is shared with `stoke bench`'s `--duration`.

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::ClientArgs;
use stoke_client::{LambdaClient, LogEvent};

/// How often `--follow` asks for new lines.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(500);
/// The log group prefix of Lambda functions.
const GROUP_PREFIX: &str = "/aws/lambda/";

/// Flags of `stoke logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Function name or ARN.
    pub name: String,
    /// Keep printing new lines as they arrive, until Ctrl-C.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only lines from this far back (`10m`, `2h`, `1d`) or since this RFC 3339 time.
    #[arg(long, value_name = "T", value_parser = parse_since)]
    pub since: Option<Since>,
    /// Only lines that contain this text.
    #[arg(long, value_name = "TEXT")]
    pub filter: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Where `--since` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// This long before now.
    Ago(Duration),
    /// At this instant.
    At(OffsetDateTime),
}

impl Since {
    /// The start as milliseconds since the Unix epoch, `now` being the present.
    pub fn start_ms(&self, now: SystemTime) -> i64 {
        let instant = match self {
            Self::Ago(span) => time::Duration::try_from(*span)
                .ok()
                .and_then(|span| OffsetDateTime::from(now).checked_sub(span))
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            Self::At(at) => *at,
        };
        i64::try_from(instant.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
    }
}

/// Parses a span: a whole number and a unit, `ms`, `s`, `m`, `h`, `d` or `w` (`500ms`, `10m`,
/// `2h`, `1d`).
pub fn parse_span(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let bad =
        || format!("expected a number and a unit (ms, s, m, h, d, w) such as 10m, got {text:?}");
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let unit_secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long a span"))
}

/// Parses `--since`: a span back from now, or an RFC 3339 time.
pub fn parse_since(text: &str) -> Result<Since, String> {
    if let Ok(at) = OffsetDateTime::parse(text.trim(), &Rfc3339) {
        return Ok(Since::At(at));
    }
    parse_span(text)
        .map(Since::Ago)
        .map_err(|e| format!("{e}, or an RFC 3339 time such as 2024-05-01T12:00:00Z"))
}

/// The function name in a name or a function ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME`,
/// with or without a qualifier).
fn function_name(name_or_arn: &str) -> &str {
    let parts: Vec<&str> = name_or_arn.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "lambda", _, _, "function", name, ..] => name,
        [_account, "function", name, ..] => name,
        _ => name_or_arn,
    }
}

/// The FilterLogEvents request for one page.
fn request(
    group: &str,
    start_ms: Option<i64>,
    filter: Option<&str>,
    next_token: Option<&str>,
) -> Value {
    let mut body = Map::new();
    body.insert("logGroupName".into(), json!(group));
    if let Some(start) = start_ms {
        body.insert("startTime".into(), json!(start));
    }
    if let Some(filter) = filter.filter(|f| !f.is_empty()) {
        body.insert("filterPattern".into(), json!(filter));
    }
    if let Some(token) = next_token {
        body.insert("nextToken".into(), json!(token));
    }
    Value::Object(body)
}

/// Runs `stoke logs`.
pub async fn run(args: LogsArgs) -> anyhow::Result<()> {
    let client = args.client.client()?;
    let group = format!("{GROUP_PREFIX}{}", function_name(&args.name));
    let start_ms = args.since.map(|s| s.start_ms(SystemTime::now()));
    let mut reader = Reader {
        client: &client,
        group: &group,
        start_ms,
        filter: args.filter.as_deref(),
        last_id: None,
    };
    if !reader.print_new().await? {
        return Ok(());
    }
    if !args.follow {
        return Ok(());
    }
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(FOLLOW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tick.tick() => {
                if !reader.print_new().await? {
                    return Ok(());
                }
            }
        }
    }
}

/// Reads a log group from where it last stopped.
struct Reader<'a> {
    client: &'a LambdaClient,
    group: &'a str,
    start_ms: Option<i64>,
    filter: Option<&'a str>,
    /// The id of the last line printed: the next read continues after it.
    last_id: Option<String>,
}

impl Reader<'_> {
    /// Prints every line after the last one printed, all pages. `Ok(false)` when stdout is
    /// closed (the reader went away: stop quietly).
    async fn print_new(&mut self) -> anyhow::Result<bool> {
        loop {
            let page = self
                .client
                .filter_log_events(&request(
                    self.group,
                    self.start_ms,
                    self.filter,
                    self.last_id.as_deref(),
                ))
                .await
                .with_context(|| format!("cannot read the log group {}", self.group))?;
            if !print_events(&page.events)? {
                return Ok(false);
            }
            if let Some(last) = page.events.last() {
                self.last_id = Some(last.event_id.clone());
            }
            match page.next_token.filter(|t| !t.is_empty()) {
                // The server's token is the id of its last event, where the next page begins.
                Some(token) if Some(&token) != self.last_id.as_ref() => {
                    self.last_id = Some(token);
                }
                Some(_) if !page.events.is_empty() => {}
                _ => return Ok(true),
            }
        }
    }
}

/// Writes the messages, one a line; `Ok(false)` when stdout is a closed pipe.
fn print_events(events: &[LogEvent]) -> anyhow::Result<bool> {
    let mut out = std::io::stdout().lock();
    let written = events
        .iter()
        .try_for_each(|e| writeln!(out, "{}", e.message.trim_end_matches('\n')))
        .and_then(|()| out.flush());
    match written {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e).context("writing to stdout"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_take_a_number_and_a_unit() {
        assert_eq!(parse_span("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_span("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_span("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_span("1w"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_span("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_span("500ms"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn spans_without_a_known_unit_or_number_are_refused() {
        for bad in ["10", "m", "", "1.5h", "-1h", "10 parsecs", "3y"] {
            assert!(parse_span(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_span("99999999999999999w").is_err());
    }

    #[test]
    fn since_takes_a_span_or_an_rfc3339_time() {
        assert_eq!(parse_since("10m"), Ok(Since::Ago(Duration::from_secs(600))));
        let Ok(Since::At(at)) = parse_since("2024-05-01T12:00:00Z") else {
            panic!("not a time");
        };
        assert_eq!(at.unix_timestamp(), 1_714_564_800);
        let Ok(Since::At(at)) = parse_since("2024-05-01T14:00:00+02:00") else {
            panic!("not a time");
        };
        assert_eq!(at.unix_timestamp(), 1_714_564_800);
        let err = parse_since("yesterday").expect_err("refused");
        assert!(err.contains("RFC 3339"), "{err}");
    }

    #[test]
    fn since_start_is_counted_back_from_now() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        assert_eq!(
            Since::Ago(Duration::from_secs(600)).start_ms(now),
            9_400_000
        );
        let at = OffsetDateTime::from_unix_timestamp(1_714_564_800).expect("time");
        assert_eq!(Since::At(at).start_ms(now), 1_714_564_800_000);
    }

    #[test]
    fn function_arns_name_their_log_group() {
        assert_eq!(function_name("hello"), "hello");
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:hello"),
            "hello"
        );
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:hello:$LATEST"),
            "hello"
        );
        assert_eq!(function_name("123456789012:function:hello"), "hello");
    }

    #[test]
    fn requests_carry_only_what_is_set() {
        assert_eq!(
            request("/aws/lambda/f", None, None, None),
            json!({ "logGroupName": "/aws/lambda/f" })
        );
        assert_eq!(
            request("/aws/lambda/f", Some(5), Some("ERROR"), Some("42")),
            json!({
                "logGroupName": "/aws/lambda/f",
                "startTime": 5,
                "filterPattern": "ERROR",
                "nextToken": "42",
            })
        );
    }
}

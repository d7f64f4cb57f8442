//! The results of `stoke bench`: what was measured (serialised as is for `--json`), the
//! markdown tables printed at the end, and the small parsers the bench reads the server with
//! (the `REPORT` line, a Prometheus sample).

use std::fmt::Write as _;

use serde::Serialize;

use super::BenchArgs;
use super::load::LoadSummary;

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub machine: Machine,
    /// The measured window of each warm run, seconds.
    pub duration_s: f64,
    /// The warm-up before each window, seconds.
    pub warmup_s: f64,
    /// The event of every call.
    pub payload: String,
    /// `RequestResponse`, or `DryRun` with `--dry-run` (the warm runs only).
    pub warm_invocation_type: String,
    pub warm: Vec<WarmRow>,
    pub cold: Vec<ColdSample>,
    pub updates: Vec<UpdateSample>,
    /// Client-seen latency of calls of the update function with no update running (µs).
    pub calls_without_update_us: Vec<f64>,
    /// The process runtimes (Python, Node) against their floors.
    pub runtimes: Vec<super::runtimes::RuntimeRow>,
    /// Log lines the server dropped under load (`stoke_logs_dropped`), if it said.
    pub logs_dropped: Option<f64>,
    /// Durable async enqueues (Invoke with `Event`), one row per client count.
    pub async_enqueue: Vec<LoadSummary>,
    /// From the 202 to the start of the event's run, for an idle function.
    pub async_start: Option<AsyncStart>,
}

/// The time from an async event's 202 (as the client got it) to its run's START line (the
/// server's clock, millisecond resolution), for events sent one at a time.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AsyncStart {
    pub samples: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
}

impl Results {
    /// Empty results for a run with `args`.
    pub fn new(args: &BenchArgs) -> Self {
        Self {
            machine: Machine::here(),
            duration_s: args.duration.as_secs_f64(),
            warmup_s: args.warmup.as_secs_f64(),
            payload: String::from_utf8_lossy(super::PAYLOAD).into_owned(),
            warm_invocation_type: if args.dry_run {
                "DryRun"
            } else {
                "RequestResponse"
            }
            .to_owned(),
            warm: Vec::new(),
            cold: Vec::new(),
            updates: Vec::new(),
            calls_without_update_us: Vec::new(),
            runtimes: Vec::new(),
            logs_dropped: None,
            async_enqueue: Vec::new(),
            async_start: None,
        }
    }
}

/// Where the bench ran.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: Option<String>,
    pub kernel: Option<String>,
}

impl Machine {
    fn here() -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            });
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|k| k.trim().to_owned());
        Self {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model,
            kernel,
        }
    }
}

/// One client count: Stoke against the bare server.
#[derive(Debug, Clone, Serialize)]
pub struct WarmRow {
    pub clients: usize,
    pub stoke: LoadSummary,
    pub bare: LoadSummary,
    /// Stoke's p50 minus the bare server's, µs (the target: at most 100).
    pub p50_overhead_us: f64,
    /// Stoke's p50 over the bare server's.
    pub p50_ratio: f64,
    /// Stoke's throughput over the bare server's (the target: at least 0.5).
    pub throughput_ratio: f64,
}

impl WarmRow {
    pub fn new(stoke: LoadSummary, bare: LoadSummary) -> Self {
        Self {
            clients: stoke.clients,
            p50_overhead_us: round1(stoke.p50_us - bare.p50_us),
            p50_ratio: round1(stoke.p50_us / bare.p50_us * 100.0) / 100.0,
            throughput_ratio: round1(stoke.requests_per_sec / bare.requests_per_sec * 100.0)
                / 100.0,
            stoke,
            bare,
        }
    }
}

/// The first call of one new function.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ColdSample {
    /// Time to the whole answer, seen by the client.
    pub first_call_us: f64,
    /// The REPORT line's `Init Duration` (loading the compiled module, linking it).
    pub init_ms: Option<f64>,
    /// The REPORT line's `Duration` (instantiating and running).
    pub duration_ms: f64,
    /// The call right after, warm, seen by the client.
    pub second_call_us: f64,
}

/// One code update.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateSample {
    /// The UpdateFunctionCode request itself.
    pub update_call_ms: f64,
    /// From sending UpdateFunctionCode to the first answer of the new code.
    pub to_new_code_ms: f64,
    /// Calls answered by the old code meanwhile (none may fail).
    pub old_answers: u64,
    /// Client-seen latency of each of those calls (µs).
    pub during_us: Vec<f64>,
}

/// The figures of a `REPORT` line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReportLine {
    pub duration_ms: f64,
    pub init_ms: Option<f64>,
}

/// Reads the last `REPORT RequestId: …` line of a log: its `Duration` and `Init Duration`.
pub fn parse_report(log: &str) -> Option<ReportLine> {
    let line = log.lines().rev().find(|l| l.starts_with("REPORT "))?;
    let field = |name: &str| {
        line.split('\t').find_map(|f| {
            f.trim()
                .strip_prefix(name)
                .and_then(|v| v.trim().strip_suffix("ms"))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
    };
    Some(ReportLine {
        duration_ms: field("Duration:")?,
        init_ms: field("Init Duration:"),
    })
}

/// The sum of the samples of a metric family (`name`, `name_total`, with any labels) in
/// Prometheus or OpenMetrics text.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let rest = rest.strip_prefix("_total").unwrap_or(rest);
            if !(rest.starts_with(' ') || rest.starts_with('{')) {
                return None;
            }
            l.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// `x` to one decimal, so that the JSON shows no float noise.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The median (the mean of the two middle values for an even count); NaN when empty.
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn max(values: impl IntoIterator<Item = f64>) -> f64 {
    values
        .into_iter()
        .filter(|x| !x.is_nan())
        .fold(f64::NAN, f64::max)
}

/// `1234.5` µs as `1,235 µs`.
fn us(v: f64) -> String {
    if v.is_nan() {
        return "-".to_owned();
    }
    format!("{} µs", thousands(v.round()))
}

/// Milliseconds with two decimals.
fn ms(v: f64) -> String {
    if v.is_nan() {
        "-".to_owned()
    } else {
        format!("{v:.2} ms")
    }
}

/// A whole number with thousands separators.
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}

/// The tables.
pub fn markdown(r: &Results) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(s, "## stoke bench\n");
    let _ = writeln!(
        s,
        "{} CPUs ({}), Linux {}; each warm run {} s after a {} s warm-up; event `{}`.\n",
        m.cpus,
        m.cpu_model.as_deref().unwrap_or("unknown model"),
        m.kernel.as_deref().unwrap_or("?"),
        r.duration_s,
        r.warmup_s,
        r.payload
    );

    let _ = writeln!(
        s,
        "### Warm invoke ({}) of the echo function vs a bare hyper server answering the same \
         bytes\n",
        r.warm_invocation_type
    );
    let _ = writeln!(
        s,
        "| clients | Stoke p50 | Stoke p99 | Stoke req/s | bare p50 | bare p99 | bare req/s \
         | p50 overhead | throughput ratio | 429s | errors |"
    );
    let _ = writeln!(
        s,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for row in &r.warm {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {:+.0} µs | {:.2} | {} | {} |",
            row.clients,
            us(row.stoke.p50_us),
            us(row.stoke.p99_us),
            thousands(row.stoke.requests_per_sec),
            us(row.bare.p50_us),
            us(row.bare.p99_us),
            thousands(row.bare.requests_per_sec),
            row.p50_overhead_us,
            row.throughput_ratio,
            row.stoke.throttled + row.bare.throttled,
            row.stoke.errors + row.bare.errors,
        );
    }

    if !r.cold.is_empty() {
        let _ = writeln!(
            s,
            "\n### Cold start: the first call of {} new functions (module already compiled)\n",
            r.cold.len()
        );
        let _ = writeln!(s, "| measure | median | max |\n|---|---:|---:|");
        type Row = (&'static str, Vec<f64>, fn(f64) -> String);
        let rows: [Row; 5] = [
            (
                "first call, seen by the client",
                r.cold.iter().map(|c| c.first_call_us).collect(),
                us,
            ),
            (
                "Init Duration (server: load and link the module)",
                r.cold
                    .iter()
                    .map(|c| c.init_ms.unwrap_or(f64::NAN))
                    .collect(),
                ms,
            ),
            (
                "Duration of the first call (server: instantiate and run)",
                r.cold.iter().map(|c| c.duration_ms).collect(),
                ms,
            ),
            (
                "server time of the cold start (Init Duration + Duration)",
                r.cold
                    .iter()
                    .map(|c| c.init_ms.unwrap_or(f64::NAN) + c.duration_ms)
                    .collect(),
                ms,
            ),
            (
                "the next (warm) call, seen by the client",
                r.cold.iter().map(|c| c.second_call_us).collect(),
                us,
            ),
        ];
        for (name, values, fmt) in rows {
            let _ = writeln!(
                s,
                "| {name} | {} | {} |",
                fmt(median(values.iter().copied())),
                fmt(max(values))
            );
        }
    }

    if !r.runtimes.is_empty() {
        let _ = writeln!(
            s,
            "\n### Process runtimes: hello functions (1769 MB) vs their floors, same run\n"
        );
        let _ = writeln!(
            s,
            "| runtime | interpreter start | cold first call | Init Duration | cold − start \
             | warm p50 | warm p99 | bare p50 | warm − bare | handler Duration |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for row in &r.runtimes {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:+.0} µs | {} | {} | {} | {:+.0} µs | {} |",
                row.runtime,
                us(row.interpreter_start_us),
                us(row.cold_first_call_us),
                ms(row.cold_init_ms),
                row.cold_overhead_us,
                us(row.warm_p50_us),
                us(row.warm_p99_us),
                us(row.bare_p50_us),
                row.warm_overhead_us,
                ms(row.warm_duration_ms),
            );
        }
    }

    if !r.updates.is_empty() {
        let _ = writeln!(
            s,
            "\n### UpdateFunctionCode to the first answer of the new code ({} updates, each a \
             new module compiled on update)\n",
            r.updates.len()
        );
        let _ = writeln!(s, "| measure | median | max |\n|---|---:|---:|");
        for (name, values) in [
            (
                "UpdateFunctionCode request",
                r.updates
                    .iter()
                    .map(|u| u.update_call_ms)
                    .collect::<Vec<_>>(),
            ),
            (
                "update sent → first answer of the new code",
                r.updates.iter().map(|u| u.to_new_code_ms).collect(),
            ),
        ] {
            let _ = writeln!(
                s,
                "| {name} | {} | {} |",
                ms(median(values.iter().copied())),
                ms(max(values))
            );
        }
        let old: u64 = r.updates.iter().map(|u| u.old_answers).sum();
        let during: Vec<f64> = r
            .updates
            .iter()
            .flat_map(|u| u.during_us.iter().copied())
            .collect();
        let _ = writeln!(
            s,
            "\nMeanwhile {old} calls were answered by the old code and none failed. Call \
             latency (one client, back to back), median: {} while an update ran ({} calls), {} \
             with no update running ({} calls).",
            us(median(during.iter().copied())),
            during.len(),
            us(median(r.calls_without_update_us.iter().copied())),
            r.calls_without_update_us.len()
        );
    }
    if !r.async_enqueue.is_empty() {
        let _ = writeln!(
            s,
            "\n### Async invoke (`Event`): durable enqueues (202 after the commit is on disk)\n"
        );
        let _ = writeln!(
            s,
            "| clients | enqueues/s | p50 | p99 | 429s | errors |\n|---:|---:|---:|---:|---:|---:|"
        );
        for row in &r.async_enqueue {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                row.clients,
                thousands(row.requests_per_sec),
                us(row.p50_us),
                us(row.p99_us),
                row.throttled,
                row.errors
            );
        }
    }
    if let Some(a) = r.async_start {
        let _ = writeln!(
            s,
            "\n### Async: from the 202 to the start of the run, idle warm function ({} events, \
             one at a time; START's clock has 1 ms resolution)\n",
            a.samples
        );
        let _ = writeln!(
            s,
            "| p50 | p90 | p99 |\n|---:|---:|---:|\n| {:.1} ms | {:.1} ms | {:.1} ms |",
            a.p50_ms, a.p90_ms, a.p99_ms
        );
    }
    if let Some(dropped) = r.logs_dropped {
        let _ = writeln!(
            s,
            "\nLog lines dropped by the server under load: {dropped}."
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines_give_duration_and_init_duration() {
        let log = "START RequestId: r Version: $LATEST\necho log line\nEND RequestId: r\n\
                   REPORT RequestId: r\tDuration: 0.05 ms\tBilled Duration: 1 ms\tMemory Size: \
                   128 MB\tMax Memory Used: 1 MB\tInit Duration: 0.46 ms\t\n";
        assert_eq!(
            parse_report(log),
            Some(ReportLine {
                duration_ms: 0.05,
                init_ms: Some(0.46)
            })
        );
        let warm = "REPORT RequestId: r\tDuration: 1.20 ms\tBilled Duration: 2 ms\t";
        assert_eq!(
            parse_report(warm),
            Some(ReportLine {
                duration_ms: 1.2,
                init_ms: None
            })
        );
        assert_eq!(parse_report("no report here"), None);
    }

    #[test]
    fn metric_sums_add_every_labelled_sample() {
        let text = "# HELP stoke_logs_dropped Log lines dropped.\n\
                    # TYPE stoke_logs_dropped counter\n\
                    stoke_logs_dropped_total 3\n\
                    stoke_logs_dropped_other 100\n\
                    stoke_invocations_total{function=\"f\"} 9\n";
        assert_eq!(metric_sum(text, "stoke_logs_dropped"), Some(3.0));
        assert_eq!(metric_sum(text, "stoke_invocations"), Some(9.0));
        assert_eq!(metric_sum(text, "stoke_missing"), None);
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median([]).is_nan());
        assert_eq!(median([f64::NAN, 5.0]), 5.0);
    }

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(-1000.0), "-1,000");
        assert_eq!(us(12.6), "13 µs");
        assert_eq!(ms(f64::NAN), "-");
    }
}

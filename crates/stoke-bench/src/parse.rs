//! The small parsers the bench reads the server's output with: the `REPORT` line of a log tail,
//! and a sample of the Prometheus text at `/metrics`. A leaf.

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
}

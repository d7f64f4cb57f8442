//! The markdown tables `stoke bench` prints at the end of a run, and how their numbers are
//! written (thousands separators, µs and ms).

use std::fmt::Write as _;

use crate::load::LoadSummary;
use crate::results::Results;
use crate::stats::{max, median};

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

/// The cells of an async enqueue row: clients, enqueues/s, p50, p99, 429s, errors.
pub(crate) fn enqueue_cells(row: &LoadSummary) -> String {
    format!(
        "{} | {} | {} | {} | {} | {}",
        row.clients,
        thousands(row.requests_per_sec),
        us(row.p50_us),
        us(row.p99_us),
        row.throttled,
        row.errors
    )
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

    peers(&mut s, r);

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
            let _ = writeln!(s, "| {} |", enqueue_cells(row));
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

/// The warm runs side by side with `wasmtime serve`: per client count, a row for the bare hyper
/// floor, Stoke's warm wasm call and `wasmtime serve`, with their ratios; or why the peer did
/// not run.
fn peers(s: &mut String, r: &Results) {
    if let Some(why) = &r.wasmtime_skipped {
        let _ = writeln!(s, "\n`wasmtime serve` peer not measured: {why}.");
        return;
    }
    if !r.warm.iter().any(|w| w.wasmtime.is_some()) {
        return;
    }
    let _ = writeln!(
        s,
        "\n### Warm wasm call: Stoke vs `wasmtime serve` ({}, a wasi:http component echoing \
         the event) vs the bare floor, same clients and calls\n",
        r.wasmtime_version.as_deref().unwrap_or("wasmtime")
    );
    let _ = writeln!(
        s,
        "| clients | server | p50 | p99 | req/s | p50 − bare | throughput / bare \
         | Stoke throughput / this | errors |"
    );
    let _ = writeln!(s, "|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in &r.warm {
        let Some(peer) = &row.wasmtime else {
            continue;
        };
        let lines = [
            ("bare hyper floor", &row.bare, 0.0, 1.0),
            (
                "stoke wasm warm",
                &row.stoke,
                row.p50_overhead_us,
                row.throughput_ratio,
            ),
            (
                "wasmtime serve",
                &peer.load,
                peer.p50_overhead_us,
                peer.throughput_ratio,
            ),
        ];
        for (name, load, over, ratio) in lines {
            let _ = writeln!(
                s,
                "| {} | {name} | {} | {} | {} | {over:+.0} µs | {ratio:.2} | {:.2} | {} |",
                row.clients,
                us(load.p50_us),
                us(load.p99_us),
                thousands(load.requests_per_sec),
                row.stoke.requests_per_sec / load.requests_per_sec,
                load.errors + load.throttled,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(-1000.0), "-1,000");
        assert_eq!(us(12.6), "13 µs");
        assert_eq!(ms(f64::NAN), "-");
    }
}

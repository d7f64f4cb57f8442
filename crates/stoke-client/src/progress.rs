//! What a long call shows on stderr while it runs: a byte counter for an upload and a spinner
//! for a wait, both hidden when stderr is not a terminal (so logs and pipes stay clean).

use std::io::IsTerminal as _;

use bytes::Bytes;
use futures_util::stream;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Upload bodies are handed to the connection in chunks of this size, one progress tick each.
const UPLOAD_CHUNK: usize = 64 * 1024;

/// True when progress should be drawn: stderr is a terminal.
fn interactive() -> bool {
    std::io::stderr().is_terminal()
}

/// A progress bar on stderr counting `total` bytes, hidden when stderr is not a terminal.
pub fn bytes_bar(message: &str, total: u64) -> ProgressBar {
    if !interactive() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message.to_owned());
    bar
}

/// A spinner on stderr, hidden when stderr is not a terminal.
pub fn spinner(message: String) -> ProgressBar {
    if !interactive() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar.set_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}

/// The request body as a stream of chunks that advances `bar` as the connection takes each one.
pub(crate) fn progress_stream(
    body: Bytes,
    bar: ProgressBar,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let chunks: Vec<Bytes> = (0..body.len())
        .step_by(UPLOAD_CHUNK)
        .map(|start| body.slice(start..(start + UPLOAD_CHUNK).min(body.len())))
        .collect();
    stream::iter(chunks.into_iter().map(move |chunk| {
        bar.inc(chunk.len() as u64);
        Ok(chunk)
    }))
}

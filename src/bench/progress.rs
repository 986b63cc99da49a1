//! The live progress line on stderr: once a second, the operations, MiB and errors of the
//! last second. On a terminal the line is redrawn in place; otherwise one line per second.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::stats::Live;

/// A running progress ticker; stop it with [`Progress::finish`].
pub struct Progress {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Progress {
    /// Starts printing `label`'s progress from `live`; `total` adds "done/total".
    pub fn start(label: &str, live: Arc<Live>, total: Option<u64>) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let label = label.to_string();
        let task = tokio::spawn(
            async move {
                let tty = std::io::stderr().is_terminal();
                let start = Instant::now();
                let mut last = (0, 0, 0);
                let mut last_at = start;
                let mut tick = tokio::time::interval_at(
                    tokio::time::Instant::now() + Duration::from_secs(1),
                    Duration::from_secs(1),
                );
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        _ = tick.tick() => {}
                    }
                    let now = Instant::now();
                    let snap = live.snapshot();
                    let secs = now.duration_since(last_at).as_secs_f64().max(1e-9);
                    let line = format_line(
                        &label,
                        now.duration_since(start),
                        (snap.0 - last.0) as f64 / secs,
                        (snap.1 - last.1) as f64 / secs / 1048576.0,
                        snap.2,
                        total.map(|t| (snap.0 + snap.2, t)),
                    );
                    let mut err = std::io::stderr().lock();
                    let _ = if tty {
                        write!(err, "\r\x1b[2K{line}")
                    } else {
                        writeln!(err, "{line}")
                    };
                    let _ = err.flush();
                    last = snap;
                    last_at = now;
                }
                if tty {
                    let _ = write!(std::io::stderr(), "\r\x1b[2K");
                }
            }
            .instrument(tracing::info_span!("bench-progress")),
        );
        Self { stop, task }
    }

    /// Stops the ticker and clears its line.
    pub async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// One progress line.
fn format_line(
    label: &str,
    elapsed: Duration,
    ops_per_s: f64,
    mib_per_s: f64,
    errors: u64,
    done: Option<(u64, u64)>,
) -> String {
    let mut line = format!(
        "[{:>4}s] {label}: {ops_per_s:>9.1} ops/s {mib_per_s:>9.2} MiB/s  errors {errors}",
        elapsed.as_secs()
    );
    if let Some((done, total)) = done {
        line.push_str(&format!("  ({done}/{total})"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        let line = format_line("put", Duration::from_secs(3), 1234.56, 4.5, 2, None);
        assert_eq!(
            line,
            "[   3s] put:    1234.6 ops/s      4.50 MiB/s  errors 2"
        );
        let line = format_line(
            "prefill",
            Duration::from_secs(1),
            10.0,
            0.0,
            0,
            Some((5, 100)),
        );
        assert!(line.ends_with("errors 0  (5/100)"), "{line}");
    }
}

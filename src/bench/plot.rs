//! `--plot FILE`: latency over time (p50, p99 and max of each second, log scale) as a PNG,
//! with the seconds in which requests failed marked.
//!
//! Drawn with `plotters`' bitmap backend. Text needs a TrueType font, which the binary does
//! not carry: a common system font (DejaVu, Liberation, ...) is loaded at run time, and
//! without one the chart is drawn without any text (a warning says so).

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

use super::stats::Second;

/// Fonts tried, in order.
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Registers the first system font found as "sans-serif"; `false` when there is none.
fn font_available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        for path in FONT_PATHS {
            if let Ok(bytes) = std::fs::read(path) {
                // plotters keeps fonts for the life of the process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// One line of the chart: `(second, milliseconds)` points.
type Line = Vec<(f64, f64)>;

/// p50, p99 and max per second; seconds without a completed operation are left out.
fn lines(seconds: &[Second]) -> [Line; 3] {
    let mut out: [Line; 3] = Default::default();
    for (i, s) in seconds.iter().enumerate() {
        if s.latency.is_empty() {
            continue;
        }
        let x = i as f64 + 0.5;
        let ms = |us: u64| (us as f64 / 1000.0).max(0.001);
        out[0].push((x, ms(s.latency.value_at_quantile(0.5))));
        out[1].push((x, ms(s.latency.value_at_quantile(0.99))));
        out[2].push((x, ms(s.latency.max())));
    }
    out
}

/// Draws the chart of `seconds` into the PNG `path`.
pub fn draw(path: &Path, seconds: &[Second], title: &str) -> anyhow::Result<()> {
    let text = font_available();
    if !text {
        tracing::warn!("no TrueType font found; the plot has no labels");
    }
    let [p50, p99, max] = lines(seconds);
    let x_end = (seconds.len() as f64).max(1.0);
    let y_min = p50.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let y_max = max.iter().map(|p| p.1).fold(0.0, f64::max);
    let (y_min, y_max) = if y_min.is_finite() && y_max > 0.0 {
        (y_min / 1.5, y_max * 1.5)
    } else {
        (0.01, 1000.0)
    };

    let root = BitMapBackend::new(path, (1200, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(15);
    if text {
        builder
            .caption(title, ("sans-serif", 20))
            .x_label_area_size(45)
            .y_label_area_size(70);
    }
    let mut chart = builder
        .build_cartesian_2d(0f64..x_end, (y_min..y_max).log_scale())
        .map_err(plot_error)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("seconds since start")
            .y_desc("latency (ms, log scale)")
            .label_style(("sans-serif", 14));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(plot_error)?;
    for (points, color, name) in [(p50, BLUE, "p50"), (p99, RED, "p99"), (max, BLACK, "max")] {
        let series = chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(plot_error)?;
        if text {
            series.label(name).legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
    }
    // Seconds in which a request failed: red dots along the bottom.
    let failed: Vec<(f64, f64)> = seconds
        .iter()
        .enumerate()
        .filter(|(_, s)| s.errors > 0)
        .map(|(i, _)| (i as f64 + 0.5, y_min * 1.1))
        .collect();
    if !failed.is_empty() {
        let series = chart
            .draw_series(failed.into_iter().map(|p| Circle::new(p, 4, RED.filled())))
            .map_err(plot_error)?;
        if text {
            series
                .label("errors")
                .legend(|(x, y)| Circle::new((x + 10, y), 4, RED.filled()));
        }
    }
    if text {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(plot_error)?;
    }
    root.present().map_err(plot_error)?;
    Ok(())
}

fn plot_error<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow::anyhow!("plotting: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::new_histogram;

    fn second(samples_ms: &[u64]) -> Second {
        let mut latency = new_histogram();
        for ms in samples_ms {
            latency.record(ms * 1000).unwrap();
        }
        Second { latency, errors: 0 }
    }

    #[test]
    fn lines_per_second() {
        let seconds = vec![second(&[1, 2, 3, 100]), second(&[]), second(&[5])];
        let [p50, p99, max] = lines(&seconds);
        assert_eq!(p50.len(), 2);
        assert_eq!(p50[0].0, 0.5);
        assert!((p50[0].1 - 2.0).abs() < 0.05, "{p50:?}");
        assert!((p99[0].1 - 100.0).abs() < 1.0, "{p99:?}");
        assert!((max[0].1 - 100.0).abs() < 1.0, "{max:?}");
        assert_eq!(max[1].0, 2.5);
    }

    #[test]
    fn draws_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lat.png");
        let mut seconds: Vec<Second> = (1..=5).map(|i| second(&[i, 2 * i, 10 * i])).collect();
        seconds[2].errors = 3;
        draw(&path, &seconds, "test").unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
        // Nothing recorded still gives a (blank) chart rather than an error.
        draw(&dir.path().join("empty.png"), &[], "empty").unwrap();
    }
}

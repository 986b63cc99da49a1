//! Plots of a run, as Jepsen draws them: `latency.png` (every completed operation as a
//! point: when it was invoked, how long it took on a log scale, coloured by outcome, one
//! marker shape per operation kind) and `rate.png` (ok / fail / info completions per
//! second), both with the nemesis' fault windows shaded and labelled.
//!
//! Drawn with `plotters`' bitmap backend. Text needs a TrueType font, which the binary does
//! not carry: a common system font is loaded at run time (the same list as the benchmark's
//! plot in the root crate, `src/bench/plot.rs`; crates cannot share it without a new
//! dependency, so the few lines are repeated), and without one the charts are drawn without
//! text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::history::{operations, Event, EventType, Process};

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

/// Chart size in pixels.
pub const SIZE: (u32, u32) = (1400, 700);

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

/// One fault in effect from `start` to `end` (seconds since the run started).
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// The fault's name (`kill-meta-leader`, ...).
    pub fault: String,
    /// When the nemesis started it.
    pub start: f64,
    /// When it was undone (the end of the history if never).
    pub end: f64,
}

/// The fault windows of a history: each nemesis `start` up to the next `stop`, failed undo
/// (`error`) or final `heal` of the nemesis.
pub fn windows(events: &[Event]) -> Vec<Window> {
    let secs = |e: &Event| e.time_ns as f64 / 1e9;
    let last = events.last().map_or(0.0, secs);
    let mut out = Vec::new();
    let mut open: Option<Window> = None;
    for e in events.iter().filter(|e| e.process == Process::nemesis()) {
        match e.f.as_str() {
            "start" => {
                if let Some(mut w) = open.take() {
                    w.end = secs(e);
                    out.push(w);
                }
                open = Some(Window {
                    fault: e.value["fault"].as_str().unwrap_or("?").to_string(),
                    start: secs(e),
                    end: last,
                });
            }
            "stop" | "heal" | "error" => {
                if let Some(mut w) = open.take() {
                    w.end = secs(e);
                    out.push(w);
                }
            }
            _ => {}
        }
    }
    out.extend(open);
    out
}

/// The shade of a fault's window: one colour per group.
fn shade(fault: &str) -> RGBColor {
    if fault.starts_with("kill") {
        RGBColor(240, 160, 160)
    } else if fault.starts_with("pause") {
        RGBColor(240, 220, 140)
    } else if fault.starts_with("partition") {
        RGBColor(170, 190, 240)
    } else {
        RGBColor(200, 170, 230)
    }
}

/// The colour of an outcome.
fn outcome_colour(kind: EventType) -> RGBColor {
    match kind {
        EventType::Ok => RGBColor(30, 110, 200),
        EventType::Fail => RGBColor(215, 40, 40),
        _ => RGBColor(230, 150, 0),
    }
}

fn outcome_name(kind: EventType) -> &'static str {
    match kind {
        EventType::Ok => "ok",
        EventType::Fail => "fail",
        _ => "info",
    }
}

/// One completed operation: invoked at `x` seconds, took `ms`.
struct Point {
    x: f64,
    ms: f64,
    f: String,
    outcome: EventType,
}

fn points(events: &[Event]) -> Vec<Point> {
    operations(events)
        .into_iter()
        .filter_map(|op| {
            let c = op.complete.as_ref()?;
            Some(Point {
                x: op.invoke.time_ns as f64 / 1e9,
                ms: (c.time_ns.saturating_sub(op.invoke.time_ns) as f64 / 1e6).max(0.01),
                f: op.invoke.f.clone(),
                outcome: c.kind,
            })
        })
        .collect()
}

fn plot_error<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> Error {
    Error::Config(format!("plotting: {e}"))
}

/// The length of the run in seconds (at least one).
fn x_end(events: &[Event]) -> f64 {
    (events.last().map_or(0.0, |e| e.time_ns as f64 / 1e9) * 1.01).max(1.0)
}

/// Shades the fault windows over the whole height `y0..y1` and writes each one's name at
/// the top (alternating two rows, so neighbours do not overlap).
fn draw_windows<DB: DrawingBackend, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    windows: &[Window],
    (y0, y1): (f64, f64),
    label_rows: [f64; 2],
    text: bool,
) -> Result<()> {
    chart
        .draw_series(windows.iter().map(|w| {
            Rectangle::new(
                [(w.start, y0), (w.end.max(w.start + 0.05), y1)],
                shade(&w.fault).mix(0.45).filled(),
            )
        }))
        .map_err(plot_error)?;
    if text {
        chart
            .draw_series(windows.iter().enumerate().map(|(i, w)| {
                Text::new(
                    w.fault.clone(),
                    (w.start, label_rows[i % 2]),
                    ("sans-serif", 12).into_font().color(&BLACK),
                )
            }))
            .map_err(plot_error)?;
    }
    Ok(())
}

/// Draws `points` with marker shape `shape` (0: circle, 1: triangle, 2: cross, 3: square)
/// and, with text, a legend entry `label` showing that marker. One arm per shape because each
/// marker is its own type.
fn draw_markers<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    points: Vec<(f64, f64)>,
    shape: usize,
    style: ShapeStyle,
    label: Option<String>,
) -> Result<()> {
    macro_rules! draw {
        // `$make` is expanded twice: once for chart coordinates, once for the legend's pixels.
        ($make:expr) => {{
            let drawn = chart
                .draw_series(points.into_iter().map($make))
                .map_err(plot_error)?;
            if let Some(label) = label {
                drawn.label(label).legend(move |(x, y)| ($make)((x + 8, y)));
            }
        }};
    }
    match shape % 4 {
        0 => draw!(move |at| Circle::new(at, 2, style.filled())),
        1 => draw!(move |at| TriangleMarker::new(at, 4, style.filled())),
        2 => draw!(move |at| Cross::new(at, 3, style.stroke_width(1))),
        _ => draw!(
            move |at| EmptyElement::at(at) + Rectangle::new([(-2, -2), (2, 2)], style.filled())
        ),
    }
    Ok(())
}

/// Draws `latency.png`: one point per completed operation.
pub fn draw_latency(path: &Path, events: &[Event], title: &str) -> Result<()> {
    let text = font_available();
    let pts = points(events);
    let wins = windows(events);
    let y_min = pts.iter().map(|p| p.ms).fold(f64::INFINITY, f64::min);
    let y_max = pts.iter().map(|p| p.ms).fold(0.0, f64::max);
    let (y_min, y_max) = if y_min.is_finite() && y_max > 0.0 {
        (y_min / 1.5, y_max * 3.0)
    } else {
        (0.1, 10_000.0)
    };
    let x_end = x_end(events);
    // One shape per operation kind, in order of first appearance.
    let mut kinds: Vec<String> = Vec::new();
    for p in &pts {
        if !kinds.contains(&p.f) {
            kinds.push(p.f.clone());
        }
    }
    let root: DrawingArea<BitMapBackend<'_>, Shift> =
        BitMapBackend::new(path, SIZE).into_drawing_area();
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
    mesh.disable_x_mesh().disable_y_mesh();
    if text {
        mesh.x_desc("seconds since start")
            .y_desc("latency (ms, log scale)")
            .label_style(("sans-serif", 14));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(plot_error)?;
    // Label rows near the top of a log axis: a factor below the maximum.
    draw_windows(
        &mut chart,
        &wins,
        (y_min, y_max),
        [y_max / 1.15, y_max / 1.6],
        text,
    )?;
    for kind in [EventType::Ok, EventType::Info, EventType::Fail] {
        for (shape, f) in kinds.iter().enumerate() {
            let colour = outcome_colour(kind);
            let style = ShapeStyle::from(&colour);
            let series: Vec<(f64, f64)> = pts
                .iter()
                .filter(|p| &p.f == f && outcome_name(p.outcome) == outcome_name(kind))
                .map(|p| (p.x, p.ms))
                .collect();
            if series.is_empty() {
                continue;
            }
            let label = text.then(|| format!("{f} {}", outcome_name(kind)));
            draw_markers(&mut chart, series, shape, style, label)?;
        }
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(plot_error)?;
    }
    root.present().map_err(plot_error)
}

/// Completions per whole second, by outcome: `[ok, fail, info]`, one entry per second.
fn rates(events: &[Event]) -> Vec<[u32; 3]> {
    let mut per: BTreeMap<usize, [u32; 3]> = BTreeMap::new();
    for op in operations(events) {
        let Some(c) = op.complete.as_ref() else {
            continue;
        };
        let i = match c.kind {
            EventType::Ok => 0,
            EventType::Fail => 1,
            _ => 2,
        };
        per.entry((c.time_ns / 1_000_000_000) as usize).or_default()[i] += 1;
    }
    let len = per.keys().next_back().map_or(0, |s| s + 1);
    (0..len)
        .map(|s| per.get(&s).copied().unwrap_or_default())
        .collect()
}

/// Draws `rate.png`: ok / fail / info completions per second.
pub fn draw_rate(path: &Path, events: &[Event], title: &str) -> Result<()> {
    let text = font_available();
    let per = rates(events);
    let wins = windows(events);
    let y_max = per
        .iter()
        .flat_map(|r| r.iter())
        .copied()
        .max()
        .unwrap_or(0)
        .max(1) as f64
        * 1.25;
    let x_end = x_end(events);
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
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
        .build_cartesian_2d(0f64..x_end, 0f64..y_max)
        .map_err(plot_error)?;
    let mut mesh = chart.configure_mesh();
    mesh.disable_x_mesh().disable_y_mesh();
    if text {
        mesh.x_desc("seconds since start")
            .y_desc("operations completed per second")
            .label_style(("sans-serif", 14));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(plot_error)?;
    draw_windows(
        &mut chart,
        &wins,
        (0.0, y_max),
        [y_max * 0.97, y_max * 0.92],
        text,
    )?;
    for (i, kind) in [EventType::Ok, EventType::Fail, EventType::Info]
        .into_iter()
        .enumerate()
    {
        let colour = outcome_colour(kind);
        let line: Vec<(f64, f64)> = per
            .iter()
            .enumerate()
            .map(|(s, r)| (s as f64 + 0.5, f64::from(r[i])))
            .collect();
        let drawn = chart
            .draw_series(LineSeries::new(line, colour.stroke_width(2)))
            .map_err(plot_error)?;
        if text {
            drawn.label(outcome_name(kind)).legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        }
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(plot_error)?;
    }
    root.present().map_err(plot_error)
}

/// Draws both plots of a run into `dir`; returns the files written. `title` heads both.
pub fn draw_all(dir: &Path, events: &[Event], title: &str) -> Result<Vec<PathBuf>> {
    if !font_available() {
        tracing::warn!("no TrueType font found; the plots have no text");
    }
    let latency = dir.join("latency.png");
    draw_latency(&latency, events, &format!("{title}: latency"))?;
    let rate = dir.join("rate.png");
    draw_rate(&rate, events, &format!("{title}: throughput"))?;
    Ok(vec![latency, rate])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// A synthetic history: reads and writes from 3 processes with every outcome, and two
    /// fault windows (the second never stopped before the heal).
    fn history() -> Vec<Event> {
        let mut events = Vec::new();
        let mut t = 0u64;
        let mut push = |kind, process: Process, f: &str, value: Value, t: u64| {
            let mut e = Event {
                index: 0,
                kind,
                process,
                f: f.to_string(),
                key: Some("k".into()),
                value,
                time_ns: t,
                error: None,
            };
            e.index = events.len() as u64;
            events.push(e);
        };
        for i in 0..300u64 {
            let p = Process::Client(i % 3);
            let f = if i % 2 == 0 { "read" } else { "write" };
            push(EventType::Invoke, p.clone(), f, json!(i), t);
            let latency = 1_000_000 * (1 + i % 40);
            let kind = match i % 10 {
                7 => EventType::Fail,
                9 => EventType::Info,
                _ => EventType::Ok,
            };
            push(kind, p, f, json!(i), t + latency);
            t += 20_000_000;
            if i == 50 {
                push(
                    EventType::Info,
                    Process::nemesis(),
                    "start",
                    json!({"fault": "kill-meta-leader"}),
                    t,
                );
            }
            if i == 100 {
                push(
                    EventType::Info,
                    Process::nemesis(),
                    "stop",
                    json!({"fault": "kill-meta-leader"}),
                    t,
                );
            }
            if i == 200 {
                push(
                    EventType::Info,
                    Process::nemesis(),
                    "start",
                    json!({"fault": "partition-halves"}),
                    t,
                );
            }
        }
        push(
            EventType::Info,
            Process::nemesis(),
            "heal",
            json!({"fault": "all"}),
            t,
        );
        events
    }

    /// Decodes a PNG and returns its dimensions.
    fn decode(path: &Path) -> (u32, u32) {
        let file = std::fs::File::open(path).expect("open png");
        let decoder = png::Decoder::new(file);
        let mut reader = decoder.read_info().expect("png header");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("png frame");
        // Not a blank image: some pixel differs from the first.
        let px = info.color_type.samples();
        let first = &buf[..px];
        assert!(
            buf[..info.buffer_size()].chunks(px).any(|p| p != first),
            "{} is blank",
            path.display()
        );
        (info.width, info.height)
    }

    #[test]
    fn windows_pair_start_with_stop_or_heal() {
        let w = windows(&history());
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(w[0].fault, "kill-meta-leader");
        assert!(w[0].start < w[0].end);
        assert_eq!(w[1].fault, "partition-halves");
        assert!(w[1].end > w[1].start);
    }

    #[test]
    fn rates_count_completions_per_second() {
        let r = rates(&history());
        let total: u32 = r.iter().flat_map(|x| x.iter()).sum();
        assert_eq!(total, 300);
        assert_eq!(r.iter().map(|x| x[1]).sum::<u32>(), 30);
        assert_eq!(r.iter().map(|x| x[2]).sum::<u32>(), 30);
    }

    #[test]
    fn draws_both_pngs_that_decode() {
        let dir = tempfile::tempdir().expect("tmp");
        let files = draw_all(dir.path(), &history(), "test").expect("draw");
        assert_eq!(files.len(), 2);
        for f in &files {
            assert!(std::fs::metadata(f).expect("exists").len() > 0);
            assert_eq!(decode(f), SIZE, "{}", f.display());
        }
        // An empty history still gives (blank-ish) charts rather than an error.
        let empty = tempfile::tempdir().expect("tmp");
        draw_all(empty.path(), &[], "empty").expect("draw empty");
        assert!(empty.path().join("latency.png").is_file());
    }
}

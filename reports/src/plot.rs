//! The plots, each drawn once per backend (PNG and SVG) by the same code.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the bundled DejaVu Sans as every family plotters asks for, so no
/// system font library is involved.
pub fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for family in ["sans-serif", "serif", "monospace"] {
            for style in [
                FontStyle::Normal,
                FontStyle::Bold,
                FontStyle::Italic,
                FontStyle::Oblique,
            ] {
                // The bundled file is valid; a failure would only fall back to no text.
                let _ = register_font(family, style, FONT);
            }
        }
    });
}

pub const SIZE: (u32, u32) = (1100, 480);

/// A fault window in seconds from the start of the run.
#[derive(Debug, Clone)]
pub struct Window {
    pub start_s: f64,
    pub end_s: f64,
    pub label: String,
}

/// One line of a time series plot.
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub color: RGBColor,
}

pub struct TimePlot<'a> {
    pub title: &'a str,
    pub y_label: &'a str,
    pub log_y: bool,
    pub x_max: f64,
    pub lines: Vec<Line>,
    /// Scatter points (one per operation), drawn under the lines.
    pub scatter: Vec<(f64, f64)>,
    pub scatter_name: &'a str,
    pub windows: &'a [Window],
}

pub struct Bars<'a> {
    pub title: &'a str,
    /// (group title with unit, values per target)
    pub groups: Vec<(String, Vec<f64>)>,
    pub targets: &'a [String],
}

pub struct PercentileCurves<'a> {
    pub title: &'a str,
    /// (name, [(quantile in 0..1, latency ms)])
    pub curves: Vec<(String, Vec<(f64, f64)>)>,
}

pub const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

const FAULT_COLORS: [RGBColor; 5] = [
    RGBColor(255, 140, 0),
    RGBColor(200, 0, 200),
    RGBColor(0, 150, 150),
    RGBColor(150, 150, 0),
    RGBColor(120, 120, 120),
];

fn fault_color(label: &str) -> RGBColor {
    let kind = label.split_whitespace().next().unwrap_or("");
    let i = match kind {
        "kill" | "restart" => 0,
        "partition" => 1,
        "pause" => 2,
        "delay" | "loss" => 3,
        _ => 4,
    };
    FAULT_COLORS[i]
}

macro_rules! both {
    ($dir:expr, $name:expr, $f:ident, $arg:expr) => {{
        let png = $dir.join(format!("{}.png", $name));
        let svg = $dir.join(format!("{}.svg", $name));
        {
            let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
            $f(&root, $arg)?;
            root.present()
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", png.display()))?;
        }
        {
            let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
            $f(&root, $arg)?;
            root.present()
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", svg.display()))?;
        }
        Ok::<_, anyhow::Error>(vec![png, svg])
    }};
}

pub fn time_plot(dir: &Path, name: &str, plot: &TimePlot) -> anyhow::Result<Vec<PathBuf>> {
    register_fonts();
    both!(dir, name, draw_time, plot)
}

pub fn bars(dir: &Path, name: &str, plot: &Bars) -> anyhow::Result<Vec<PathBuf>> {
    register_fonts();
    both!(dir, name, draw_bars, plot)
}

pub fn percentiles(
    dir: &Path,
    name: &str,
    plot: &PercentileCurves,
) -> anyhow::Result<Vec<PathBuf>> {
    register_fonts();
    both!(dir, name, draw_percentiles, plot)
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plot: {e}")
}

fn draw_time<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    plot: &TimePlot,
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let x_max = plot.x_max.max(1.0);
    let ys = plot
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .chain(plot.scatter.iter().map(|p| p.1));
    let (mut y_min, mut y_max) = (f64::INFINITY, 0.0f64);
    for y in ys {
        if y > 0.0 {
            y_min = y_min.min(y);
        }
        y_max = y_max.max(y);
    }
    if !y_min.is_finite() {
        y_min = 0.1;
    }
    if y_max <= 0.0 {
        y_max = 1.0;
    }
    // The legend goes in a strip under the chart, clear of the fault labels.
    let (top, strip) = root.split_vertically(SIZE.1.saturating_sub(30));
    strip_legend(&strip, plot)?;
    let mut builder = ChartBuilder::on(&top);
    builder
        .caption(plot.title, ("sans-serif", 22))
        .margin(12)
        .margin_right(30)
        .x_label_area_size(45)
        .y_label_area_size(70);
    if plot.log_y {
        let lo = (y_min / 2.0).max(1e-3);
        let hi = y_max * 2.0;
        let mut chart = builder
            .build_cartesian_2d(0.0..x_max, (lo..hi).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("time since start (s)")
            .y_desc(plot.y_label)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .y_label_formatter(&|v| fmt_num(*v))
            .draw()
            .map_err(err)?;
        shade(&mut chart, plot.windows, lo, hi)?;
        series(&mut chart, plot, lo)?;
    } else {
        let hi = y_max * 1.15;
        let mut chart = builder
            .build_cartesian_2d(0.0..x_max, 0.0..hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("time since start (s)")
            .y_desc(plot.y_label)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .y_label_formatter(&|v| fmt_num(*v))
            .draw()
            .map_err(err)?;
        shade(&mut chart, plot.windows, 0.0, hi)?;
        series(&mut chart, plot, 0.0)?;
    }
    Ok(())
}

fn strip_legend<DB: DrawingBackend>(
    strip: &DrawingArea<DB, Shift>,
    plot: &TimePlot,
) -> anyhow::Result<()> {
    let font = ("sans-serif", 14).into_font();
    let mut x = 90;
    let y = 12;
    if !plot.scatter.is_empty() {
        let c = RGBColor(100, 100, 100);
        strip
            .draw(&Circle::new((x + 10, y), 3, c.filled()))
            .map_err(err)?;
        strip
            .draw(&Text::new(
                plot.scatter_name.to_owned(),
                (x + 25, y - 7),
                font.clone(),
            ))
            .map_err(err)?;
        x += 40 + 8 * plot.scatter_name.len() as i32;
    }
    for line in &plot.lines {
        strip
            .draw(&PathElement::new(
                vec![(x, y), (x + 20, y)],
                line.color.stroke_width(3),
            ))
            .map_err(err)?;
        strip
            .draw(&Text::new(line.name.clone(), (x + 25, y - 7), font.clone()))
            .map_err(err)?;
        x += 45 + 8 * line.name.len() as i32;
    }
    if !plot.windows.is_empty() {
        let c = RGBColor(120, 120, 120);
        strip
            .draw(&Rectangle::new(
                [(x, y - 6), (x + 20, y + 6)],
                c.mix(0.25).filled(),
            ))
            .map_err(err)?;
        strip
            .draw(&Text::new(
                "fault window (from nemesis.jsonl)".to_owned(),
                (x + 25, y - 7),
                font,
            ))
            .map_err(err)?;
    }
    Ok(())
}

type Chart<'a, DB, Y> =
    ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>;

fn shade<DB, Y>(
    chart: &mut Chart<'_, DB, Y>,
    windows: &[Window],
    lo: f64,
    hi: f64,
) -> anyhow::Result<()>
where
    DB: DrawingBackend,
    Y: Ranged<ValueType = f64>,
{
    // Labels are staggered over four rows so that close windows stay readable.
    for (i, w) in windows.iter().enumerate() {
        let color = fault_color(&w.label);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(w.start_s, lo), (w.end_s.max(w.start_s + 0.05), hi)],
                color.mix(0.18).filled(),
            )))
            .map_err(err)?;
        let row = (i % 4) as i32;
        let font = ("sans-serif", 13).into_font().color(&color);
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((w.start_s, hi))
                    + Text::new(w.label.clone(), (3, 4 + row * 15), font),
            ))
            .map_err(err)?;
    }
    Ok(())
}

fn series<DB, Y>(chart: &mut Chart<'_, DB, Y>, plot: &TimePlot, floor: f64) -> anyhow::Result<()>
where
    DB: DrawingBackend,
    Y: Ranged<ValueType = f64>,
{
    if !plot.scatter.is_empty() {
        let c = RGBColor(100, 100, 100).mix(0.35);
        chart
            .draw_series(
                plot.scatter
                    .iter()
                    .filter(|p| p.1 > floor || floor == 0.0)
                    .map(|&p| Circle::new(p, 1, c.filled())),
            )
            .map_err(err)?
            .label(plot.scatter_name)
            .legend(move |(x, y)| Circle::new((x + 10, y), 3, c.filled()));
    }
    for line in &plot.lines {
        let color = line.color;
        chart
            .draw_series(LineSeries::new(
                line.points
                    .iter()
                    .copied()
                    .filter(|p| p.1 > floor || floor == 0.0),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(line.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    Ok(())
}

fn draw_bars<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, plot: &Bars) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(plot.title, ("sans-serif", 22)).map_err(err)?;
    let areas = root.split_evenly((1, plot.groups.len().max(1)));
    let n = plot.targets.len().max(1);
    for (area, (title, values)) in areas.iter().zip(&plot.groups) {
        let hi = values.iter().copied().fold(0.0f64, f64::max).max(1e-9) * 1.2;
        let mut chart = ChartBuilder::on(area)
            .margin(14)
            .x_label_area_size(35)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..n as f64, 0.0..hi)
            .map_err(err)?;
        let targets = plot.targets;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n * 2 + 1)
            .x_label_formatter(&|x| {
                let i = (*x - 0.5).round();
                if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                    targets.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc(title.as_str())
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .y_label_formatter(&|v| fmt_num(*v))
            .draw()
            .map_err(err)?;
        for (i, &v) in values.iter().take(targets.len()).enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(i as f64 + 0.15, 0.0), (i as f64 + 0.85, v)],
                    color.filled(),
                )))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    fmt_num(v),
                    (i as f64 + 0.2, v + hi * 0.04),
                    ("sans-serif", 14),
                )))
                .map_err(err)?;
        }
    }
    Ok(())
}

/// x axis: -log10(1 - q), so 90%, 99%, 99.9% are evenly spaced.
fn draw_percentiles<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    plot: &PercentileCurves,
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let mut y_min = f64::INFINITY;
    let mut y_max = 0.0f64;
    let mut x_max = 2.0f64;
    for (_, c) in &plot.curves {
        for &(q, y) in c {
            if y > 0.0 {
                y_min = y_min.min(y);
                y_max = y_max.max(y);
            }
            x_max = x_max.max(qx(q));
        }
    }
    if !y_min.is_finite() {
        y_min = 0.1;
        y_max = 1.0;
    }
    let x_max = x_max.ceil().min(6.0);
    let mut chart = ChartBuilder::on(root)
        .caption(plot.title, ("sans-serif", 22))
        .margin(12)
        .margin_right(30)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(
            0.0..x_max,
            ((y_min / 1.5).max(1e-3)..y_max * 1.5).log_scale(),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(x_max as usize + 1)
        .x_label_formatter(&|x| match x.round() as usize {
            0 => "p0".into(),
            1 => "p90".into(),
            n => format!("p99{}{}", if n > 2 { "." } else { "" }, "9".repeat(n - 2)),
        })
        .y_label_formatter(&|v| fmt_num(*v))
        .x_desc("percentile (log scale of 1/(1-q))")
        .y_desc("latency (ms, log)")
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(err)?;
    for (i, (name, c)) in plot.curves.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                c.iter()
                    .filter(|p| p.1 > 0.0)
                    .map(|&(q, y)| (qx(q).min(x_max), y)),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    Ok(())
}

fn qx(q: f64) -> f64 {
    -(1.0 - q).max(1e-6).log10()
}

pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        let s = format!("{v:.1}");
        s.trim_end_matches(".0").to_owned()
    } else if a >= 0.1 {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

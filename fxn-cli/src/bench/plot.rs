//! `--plot FILE.svg`: GFLOPS against size as an SVG, one line per backend, method and
//! thread count; the median as the line, a band up to the best run, and the plan's Metal
//! targets when Metal was timed.
//!
//! Square sizes sit on the left, joined by lines; other shapes follow as separate
//! points, since no line between unrelated shapes means anything.

use std::fmt::Write as _;
use std::path::Path;

use metal_matmul::{BackendKind, Method, Shape};

use super::report::{BenchReport, metal_target, shape_label};
use crate::error::{CliError, CliResult};

const WIDTH: f64 = 980.0;
const HEIGHT: f64 = 590.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 250.0;
const TOP: f64 = 56.0;
const BOTTOM: f64 = 120.0;

const COLORS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// One line of the plot.
struct Series {
    label: String,
    /// (column, median GFLOPS, best GFLOPS) per point.
    points: Vec<(usize, f64, f64)>,
}

/// The `--plot` file, checked before the timing starts: its name must end in `.svg`
/// and it must open for writing. An existing file keeps its contents until the new plot
/// replaces it; a file this run created is removed again if the run stops before the
/// plot is written.
pub(super) struct PlotFile<'a> {
    path: &'a Path,
    /// Whether this run created the file (and so removes it if unwritten).
    created: bool,
    written: bool,
}

impl<'a> PlotFile<'a> {
    /// Checks that `path` names an SVG file that can be written, creating it (empty)
    /// if it does not exist.
    pub(super) fn create(path: &'a Path) -> CliResult<Self> {
        let svg = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
        if !svg {
            return Err(CliError::usage(format!(
                "--plot {}: the plot is an SVG document, so the file's name must end in \
                 .svg (for a PNG, convert it, e.g. `rsvg-convert -o plot.png plot.svg`)",
                path.display()
            )));
        }
        let created = !path.exists();
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| CliError::failure(format!("--plot {}: {e}", path.display())))?;
        Ok(Self {
            path,
            created,
            written: false,
        })
    }

    /// Writes the plot.
    pub(super) fn write(mut self, svg: &str) -> CliResult {
        std::fs::write(self.path, svg)
            .map_err(|e| CliError::failure(format!("writing {}: {e}", self.path.display())))?;
        self.written = true;
        eprintln!("fxn-cli: plot written to {}", self.path.display());
        Ok(())
    }
}

impl Drop for PlotFile<'_> {
    fn drop(&mut self) {
        // The run stopped before the plot was written: an empty file of this run's
        // making goes rather than stand as a plot.
        if self.created && !self.written {
            let _ = std::fs::remove_file(self.path);
        }
    }
}

/// The SVG document for `report`.
pub fn svg(report: &BenchReport) -> String {
    // The x columns: square sizes in increasing order, then other shapes as run.
    let mut squares: Vec<Shape> = Vec::new();
    let mut others: Vec<Shape> = Vec::new();
    for r in &report.results {
        let s = r.shape;
        let list = if s.m == s.k && s.k == s.n {
            &mut squares
        } else {
            &mut others
        };
        if !list.contains(&s) {
            list.push(s);
        }
    }
    squares.sort_by_key(|s| s.m);
    let columns: Vec<Shape> = squares.iter().chain(&others).copied().collect();
    let column = |s: Shape| columns.iter().position(|&c| c == s).unwrap_or(0);

    let mut series: Vec<(usize, Method, Series)> = Vec::new();
    for r in &report.results {
        let idx = match series
            .iter()
            .position(|(b, m, _)| *b == r.backend && *m == r.method)
        {
            Some(i) => i,
            None => {
                let label = if r.method == Method::Auto {
                    report.backends[r.backend].label.clone()
                } else {
                    format!("{}, {}", report.backends[r.backend].label, r.method)
                };
                series.push((
                    r.backend,
                    r.method,
                    Series {
                        label,
                        points: Vec::new(),
                    },
                ));
                series.len() - 1
            }
        };
        series[idx]
            .2
            .points
            .push((column(r.shape), r.median_gflops, r.best_gflops));
    }
    for (_, _, s) in &mut series {
        s.points.sort_by_key(|p| p.0);
    }

    let metal = report.backends.iter().any(|b| b.kind == BackendKind::Metal);
    let targets: Vec<(usize, f64)> = if metal {
        columns
            .iter()
            .enumerate()
            .filter_map(|(i, &s)| metal_target(s).map(|t| (i, t)))
            .collect()
    } else {
        Vec::new()
    };
    let top_value = report
        .results
        .iter()
        .map(|r| r.best_gflops)
        .chain(targets.iter().map(|t| t.1))
        .fold(1.0, f64::max);
    let (y_max, y_step) = nice_axis(top_value * 1.05);

    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let n = columns.len().max(1) as f64;
    let x = |col: usize| LEFT + plot_w * (col as f64 + 0.5) / n;
    let y = |v: f64| TOP + plot_h * (1.0 - v / y_max);

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="13">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="24" font-size="17" font-weight="bold">f32 matrix multiplication: GFLOPS by size</text>"#
    );
    let load = report
        .load_average
        .map(|l| format!(", load average {:.1}", l[0]))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="42" fill="#555">{} ({} cores{load}); line: median of up to {} runs, band: up to the best run</text>"##,
        escape(&report.cpu.model),
        report.cpu.cores,
        report.settings.reps
    );
    // Grid and y axis.
    let mut v = 0.0;
    while v <= y_max + 1e-9 {
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#e4e4e4"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#333">{}</text>"##,
            LEFT + plot_w,
            LEFT - 8.0,
            yy + 4.0,
            v
        );
        v += y_step;
    }
    let _ = writeln!(
        s,
        r##"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle" fill="#333">GFLOPS (2·m·k·n / time)</text>"##,
        TOP + plot_h / 2.0
    );
    // x axis labels, and a separator before the non-square shapes.
    for (i, &c) in columns.iter().enumerate() {
        let xx = x(i);
        let _ = writeln!(
            s,
            r##"<text transform="translate({xx:.1} {:.1}) rotate(-35)" text-anchor="end" fill="#333">{}</text>"##,
            TOP + plot_h + 18.0,
            shape_label(c)
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#333">size (m×k×n)</text>"##,
        LEFT + plot_w / 2.0,
        HEIGHT - 8.0
    );
    if !squares.is_empty() && !others.is_empty() {
        let xs = (x(squares.len() - 1) + x(squares.len())) / 2.0;
        let _ = writeln!(
            s,
            r##"<line x1="{xs:.1}" y1="{TOP}" x2="{xs:.1}" y2="{:.1}" stroke="#999" stroke-dasharray="4 4"/>"##,
            TOP + plot_h
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w:.1}" height="{plot_h:.1}" fill="none" stroke="#333"/>"##
    );
    // Metal targets.
    for &(col, t) in &targets {
        let half = plot_w / n * 0.4;
        let _ = writeln!(
            s,
            r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#000" stroke-width="2" stroke-dasharray="6 3"/>"##,
            x(col) - half,
            y(t),
            x(col) + half,
            y(t)
        );
    }
    // Series: band, line (squares only), points.
    for (i, (_, _, ser)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let square_pts: Vec<&(usize, f64, f64)> =
            ser.points.iter().filter(|p| p.0 < squares.len()).collect();
        if square_pts.len() > 1 {
            let mut poly = String::new();
            for p in &square_pts {
                let _ = write!(poly, "{:.1},{:.1} ", x(p.0), y(p.2));
            }
            for p in square_pts.iter().rev() {
                let _ = write!(poly, "{:.1},{:.1} ", x(p.0), y(p.1));
            }
            let _ = writeln!(
                s,
                r#"<polygon points="{}" fill="{color}" fill-opacity="0.15" stroke="none"/>"#,
                poly.trim_end()
            );
            let line: Vec<String> = square_pts
                .iter()
                .map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1)))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2.2"/>"#,
                line.join(" ")
            );
        }
        for p in &ser.points {
            let _ = writeln!(
                s,
                r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{color}" stroke-opacity="0.5" stroke-width="2"/><circle cx="{:.1}" cy="{:.1}" r="4" fill="{color}"/>"#,
                x(p.0),
                y(p.1),
                x(p.0),
                y(p.2),
                x(p.0),
                y(p.1)
            );
        }
    }
    // Legend.
    let lx = WIDTH - RIGHT + 20.0;
    for (i, (_, _, ser)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let ly = TOP + 10.0 + 22.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 24.0,
            lx + 32.0,
            ly + 4.0,
            escape(&ser.label)
        );
    }
    if !targets.is_empty() {
        let ly = TOP + 10.0 + 22.0 * series.len() as f64;
        let _ = writeln!(
            s,
            r##"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="#000" stroke-width="2" stroke-dasharray="6 3"/><text x="{:.1}" y="{:.1}">plan's Metal target</text>"##,
            lx + 24.0,
            lx + 32.0,
            ly + 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// A round axis maximum at or above `max`, and a step giving 4 to 10 grid lines.
fn nice_axis(max: f64) -> (f64, f64) {
    let raw = max / 6.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&st| st >= raw)
        .unwrap_or(10.0 * magnitude);
    ((max / step).ceil() * step, step)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plot_file_is_kept_only_once_written() {
        let dir = std::env::temp_dir().join(format!("fxn-plot-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("Plot.SVG");
        // A run that stops before the plot is written leaves no file.
        drop(PlotFile::create(&path).unwrap());
        assert!(!path.exists());
        PlotFile::create(&path).unwrap().write("<svg/>").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "<svg/>");
        // An earlier plot survives a run that stops early, and is replaced by one that
        // finishes.
        drop(PlotFile::create(&path).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "<svg/>");
        PlotFile::create(&path)
            .unwrap()
            .write("<svg></svg>")
            .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "<svg></svg>");
        assert!(PlotFile::create(&dir.join("plot")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn axis_is_round_and_covers_the_data() {
        let (max, step) = nice_axis(233.0);
        assert!((233.0..300.0).contains(&max), "{max}");
        assert!((max / step).round() >= 4.0 && (max / step).round() <= 10.0);
        assert_eq!(escape("a<b&c"), "a&lt;b&amp;c");
    }
}

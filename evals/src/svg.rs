//! Plots as inline SVG, drawn here (no plotting dependency, nothing fetched at view time): line charts on the
//! unit square (ROC, PR), reliability diagrams, a heatmap, and a labelled scatter.

use std::fmt::Write as _;

const WIDTH: f64 = 420.0;
const HEIGHT: f64 = 320.0;
const LEFT: f64 = 52.0;
const BOTTOM: f64 = 40.0;
const TOP: f64 = 28.0;
const RIGHT: f64 = 16.0;
const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// Escapes text for SVG.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A plot area mapping data ranges onto the SVG.
struct Frame {
    x: (f64, f64),
    y: (f64, f64),
    out: String,
}

impl Frame {
    fn new(title: &str, x_label: &str, y_label: &str, x: (f64, f64), y: (f64, f64)) -> Self {
        let mut out = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">"#
        );
        let _ = write!(
            out,
            r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/><text x="{}" y="16" text-anchor="middle" font-size="13" font-weight="bold">{}</text>"#,
            WIDTH / 2.0,
            esc(title)
        );
        let mut frame = Self { x, y, out };
        frame.axes(x_label, y_label);
        frame
    }

    fn px(&self, x: f64) -> f64 {
        LEFT + (x - self.x.0) / (self.x.1 - self.x.0).max(f64::MIN_POSITIVE) * (WIDTH - LEFT - RIGHT)
    }

    fn py(&self, y: f64) -> f64 {
        HEIGHT - BOTTOM - (y - self.y.0) / (self.y.1 - self.y.0).max(f64::MIN_POSITIVE) * (HEIGHT - BOTTOM - TOP)
    }

    fn axes(&mut self, x_label: &str, y_label: &str) {
        let (x0, x1, y0, y1) = (
            self.px(self.x.0),
            self.px(self.x.1),
            self.py(self.y.0),
            self.py(self.y.1),
        );
        let _ = write!(
            self.out,
            r##"<rect x="{x0}" y="{y1}" width="{}" height="{}" fill="none" stroke="#444"/>"##,
            x1 - x0,
            y0 - y1
        );
        for i in 0..=5 {
            let t = f64::from(i) / 5.0;
            let (xv, yv) = (
                self.x.0 + t * (self.x.1 - self.x.0),
                self.y.0 + t * (self.y.1 - self.y.0),
            );
            let (x, y) = (self.px(xv), self.py(yv));
            let _ = write!(
                self.out,
                r##"<line x1="{x}" y1="{y0}" x2="{x}" y2="{y1}" stroke="#eee"/><line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="#eee"/><text x="{x}" y="{}" text-anchor="middle">{}</text><text x="{}" y="{}" text-anchor="end">{}</text>"##,
                y0 + 14.0,
                tick(xv, self.x.1 - self.x.0),
                x0 - 4.0,
                y + 4.0,
                tick(yv, self.y.1 - self.y.0)
            );
        }
        let _ = write!(
            self.out,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text><text x="14" y="{}" text-anchor="middle" transform="rotate(-90 14 {})">{}</text>"#,
            (x0 + x1) / 2.0,
            HEIGHT - 6.0,
            esc(x_label),
            (y0 + y1) / 2.0,
            (y0 + y1) / 2.0,
            esc(y_label)
        );
    }

    fn polyline(&mut self, points: &[(f64, f64)], color: &str, dashed: bool) {
        let path: Vec<String> = points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", self.px(x), self.py(y)))
            .collect();
        let dash = if dashed { r#" stroke-dasharray="4 3""# } else { "" };
        let _ = write!(
            self.out,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="1.8"{dash}/>"#,
            path.join(" ")
        );
    }

    fn dot(&mut self, x: f64, y: f64, radius: f64, color: &str, label: Option<&str>) {
        let (cx, cy) = (self.px(x), self.py(y));
        let _ = write!(
            self.out,
            r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="{radius:.1}" fill="{color}" fill-opacity="0.8"/>"#
        );
        if let Some(label) = label {
            let _ = write!(
                self.out,
                r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
                cx + radius + 3.0,
                cy + 4.0,
                esc(label)
            );
        }
    }

    /// In the bottom-right corner, which every plot here leaves empty (curves rise to the left, calibration
    /// keeps to the diagonal).
    fn legend(&mut self, entries: &[(&str, &str)]) {
        for (i, (name, color)) in entries.iter().enumerate() {
            let y = HEIGHT - BOTTOM - 12.0 - 15.0 * (entries.len() - 1 - i) as f64;
            let x = WIDTH - RIGHT - 190.0;
            let _ = write!(
                self.out,
                r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{color}" stroke-width="2.5"/><text x="{}" y="{}">{}</text>"#,
                x + 18.0,
                x + 24.0,
                y + 4.0,
                esc(name)
            );
        }
    }

    fn finish(mut self) -> String {
        self.out.push_str("</svg>");
        self.out
    }
}

/// A tick label with as many decimals as a fifth of the axis's span needs (at least two below 1).
fn tick(v: f64, span: f64) -> String {
    let step = (span / 5.0).abs().max(1e-12);
    let decimals = (-step.log10()).ceil().max(0.0) as usize + 1;
    let decimals = if v.abs() < 1.0 { decimals.max(2) } else { decimals };
    if v.fract() == 0.0 && v.abs() >= 1.0 && step >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.decimals$}")
    }
}

/// Curves on the unit square, each `(name, points)`; `diagonal` draws the chance line.
pub fn curves(title: &str, x_label: &str, y_label: &str, series: &[(&str, Vec<(f64, f64)>)], diagonal: bool) -> String {
    let mut frame = Frame::new(title, x_label, y_label, (0.0, 1.0), (0.0, 1.0));
    if diagonal {
        frame.polyline(&[(0.0, 0.0), (1.0, 1.0)], "#999", true);
    }
    let mut legend = Vec::new();
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        frame.polyline(points, color, false);
        legend.push((*name, color));
    }
    frame.legend(&legend);
    frame.finish()
}

/// A reliability diagram: observed rate against mean predicted probability per bin (dot area ∝ count), with
/// the diagonal of perfect calibration.
pub fn reliability(title: &str, bins: &[(f64, f64, usize)]) -> String {
    let mut frame = Frame::new(
        title,
        "mean predicted probability",
        "observed rate",
        (0.0, 1.0),
        (0.0, 1.0),
    );
    frame.polyline(&[(0.0, 0.0), (1.0, 1.0)], "#999", true);
    let largest = bins.iter().map(|b| b.2).max().unwrap_or(1).max(1) as f64;
    let points: Vec<(f64, f64)> = bins.iter().map(|b| (b.0, b.1)).collect();
    frame.polyline(&points, COLORS[0], false);
    for &(x, y, count) in bins {
        frame.dot(x, y, 2.5 + 9.0 * (count as f64 / largest).sqrt(), COLORS[0], None);
    }
    frame.legend(&[
        ("bins (dot area ∝ requests)", COLORS[0]),
        ("perfect calibration", "#999"),
    ]);
    frame.finish()
}

/// Labelled points on a scatter, axes from the data (padded).
pub fn scatter(title: &str, x_label: &str, y_label: &str, points: &[(&str, f64, f64)]) -> String {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(_, x, y) in points {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    let pad = |lo: f64, hi: f64| {
        let span = (hi - lo).abs().max(hi.abs() * 0.05).max(1e-6);
        (lo - span * 0.3, hi + span * 0.3)
    };
    let mut frame = Frame::new(title, x_label, y_label, pad(x0, x1), pad(y0, y1));
    for (i, &(label, x, y)) in points.iter().enumerate() {
        frame.dot(x, y, 5.0, COLORS[i % COLORS.len()], Some(label));
    }
    frame.finish()
}

/// Histograms of `series` (e.g. latencies in ms per target) over shared log-spaced bins, as step lines of the
/// share of each series per bin, so targets of different sizes compare.
pub fn histogram(title: &str, x_label: &str, series: &[(&str, Vec<f64>)]) -> String {
    const BINS: usize = 24;
    let positive = series.iter().flat_map(|(_, v)| v.iter().copied()).filter(|v| *v > 0.0);
    let (low, high) = positive.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (low, high) = if low <= high {
        (low.log10(), (high * 1.0001).log10().max(low.log10() + 0.1))
    } else {
        (0.0, 1.0)
    };
    let width = (high - low) / BINS as f64;
    let shares: Vec<Vec<f64>> = series
        .iter()
        .map(|(_, values)| {
            let mut counts = [0usize; BINS];
            for v in values.iter().filter(|v| **v > 0.0) {
                let index = (((v.log10() - low) / width) as usize).min(BINS - 1);
                counts[index] += 1;
            }
            counts.iter().map(|c| *c as f64 / values.len().max(1) as f64).collect()
        })
        .collect();
    let top = shares.iter().flatten().copied().fold(0.0, f64::max).max(0.01);
    let mut frame = Frame::new(
        title,
        x_label,
        "share of the target's calls",
        (low, high),
        (0.0, top * 1.1),
    );
    let mut legend = Vec::new();
    for (i, ((name, _), share)) in series.iter().zip(&shares).enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut points = Vec::with_capacity(2 * BINS);
        for (b, &s) in share.iter().enumerate() {
            points.push((low + width * b as f64, s));
            points.push((low + width * (b + 1) as f64, s));
        }
        frame.polyline(&points, color, false);
        legend.push((*name, color));
    }
    frame.legend(&legend);
    // The x axis is log10(ms): relabel its ticks in milliseconds.
    let mut out = frame.finish();
    for i in 0..=5 {
        let v = low + f64::from(i) / 5.0 * (high - low);
        let shown = tick(v, high - low);
        out = out.replacen(&format!(">{shown}</text>"), &format!(">{:.0}</text>", 10f64.powf(v)), 1);
    }
    out
}

/// A heatmap of `cells[row][column]` counts, each row shaded by its own share (so small groups are readable),
/// with the counts written in the cells.
pub fn heatmap(title: &str, rows: &[String], columns: &[String], cells: &[Vec<usize>]) -> String {
    let cell = 22.0;
    let label_width = 130.0;
    let header = 120.0;
    let width = label_width + cell * columns.len() as f64 + 20.0;
    let height = header + cell * rows.len() as f64 + 30.0;
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="10"><rect width="{width}" height="{height}" fill="white"/><text x="8" y="16" font-size="13" font-weight="bold">{}</text>"#,
        esc(title)
    );
    for (j, column) in columns.iter().enumerate() {
        let x = label_width + cell * j as f64 + cell / 2.0;
        let _ = write!(
            out,
            r#"<text x="{x}" y="{}" transform="rotate(-60 {x} {})" text-anchor="start">{}</text>"#,
            header - 6.0,
            header - 6.0,
            esc(column)
        );
    }
    for (i, row) in rows.iter().enumerate() {
        let y = header + cell * i as f64;
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            label_width - 6.0,
            y + cell / 2.0 + 3.0,
            esc(row)
        );
        let total = cells[i].iter().sum::<usize>().max(1) as f64;
        for (j, &count) in cells[i].iter().enumerate() {
            let x = label_width + cell * j as f64;
            let share = count as f64 / total;
            // White to dark blue by the row's share.
            let shade = |full: f64| 255.0 - (255.0 - full) * share.sqrt();
            let fill = format!("rgb({:.0},{:.0},{:.0})", shade(31.0), shade(119.0), shade(180.0));
            let _ = write!(
                out,
                r##"<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" stroke="#ddd"/>"##
            );
            if count > 0 {
                let color = if share > 0.5 { "white" } else { "black" };
                let _ = write!(
                    out,
                    r#"<text x="{}" y="{}" text-anchor="middle" fill="{color}">{count}</text>"#,
                    x + cell / 2.0,
                    y + cell / 2.0 + 3.0
                );
            }
        }
    }
    let _ = write!(
        out,
        r#"<text x="8" y="{}">rows: true group · columns: decided group · shade: share of the row</text></svg>"#,
        height - 8.0
    );
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn ticks_have_the_decimals_their_axis_needs() {
        assert_eq!(tick(0.4, 1.0), "0.40");
        assert_eq!(tick(0.3809, 0.01), "0.3809");
        assert_eq!(tick(100.0, 500.0), "100");
    }

    #[test]
    fn plots_are_well_formed_svg_with_their_data() {
        let roc = curves(
            "ROC",
            "fpr",
            "tpr",
            &[("model", vec![(0.0, 0.0), (0.5, 0.9), (1.0, 1.0)])],
            true,
        );
        assert!(roc.starts_with("<svg") && roc.ends_with("</svg>"));
        assert_eq!(roc.matches("<polyline").count(), 2, "the curve and the diagonal");
        let map = heatmap(
            "g",
            &["a".into(), "b".into()],
            &["a".into(), "b".into()],
            &[vec![3, 1], vec![0, 2]],
        );
        assert_eq!(map.matches("<rect x=").count(), 4);
        assert!(
            map.contains(">3</text>") && !map.contains(">0</text>"),
            "counts shown, zeros blank"
        );
        let escaped = scatter("a < b", "x", "y", &[("p&q", 1.0, 2.0), ("r", 2.0, 3.0)]);
        assert!(escaped.contains("a &lt; b") && escaped.contains("p&amp;q"));
    }
}

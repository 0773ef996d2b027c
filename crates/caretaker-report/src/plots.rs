//! The plots of `report.html`, drawn with plotters' SVG backend into strings that the page inlines.
//!
//! plotters escapes every text it writes (axis labels are category values and feature names from
//! the user's data), and its SVG backend needs no font files: text is measured by estimate and
//! rendered by the browser with its own sans-serif. Each function returns a complete `<svg>`
//! element, or, should plotters refuse the input, a short escaped note in its place.

use plotters::coord::Shift;
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

/// Tableau 10: distinct, colour-blind-friendly enough, printable.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0xba, 0xb0, 0xac),
];
const INK: RGBColor = RGBColor(0x33, 0x3d, 0x4a);
const ALARM: RGBColor = RGBColor(0xc6, 0x28, 0x28);
const CALM: RGBColor = RGBColor(0x4e, 0x79, 0xa7);
const FONT: &str = "sans-serif";

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// The colour of the `i`-th series; the same model keeps its colour across the page's plots.
pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// The CSS hex of [`color`], for legends drawn in HTML.
pub fn color_hex(i: usize) -> String {
    let RGBColor(r, g, b) = color(i);
    format!("#{r:02x}{g:02x}{b:02x}")
}

fn svg(title: &str, size: (u32, u32), draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> DrawResult) -> String {
    let mut buf = String::new();
    let outcome = {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| e.to_string())
            .and_then(|_| draw(&root).map_err(|e| e.to_string()))
            .and_then(|_| root.present().map_err(|e| e.to_string()))
    };
    match outcome {
        Ok(()) => {
            let label = crate::html::escape(title);
            buf.replacen("<svg ", &format!("<svg class=\"plot\" role=\"img\" aria-label=\"{label}\" "), 1)
        }
        Err(e) => format!(
            "<p class=\"muted\">{} could not be drawn: {}</p>",
            crate::html::escape(title),
            crate::html::escape(&e)
        ),
    }
}

/// The series legend every plot draws: a light box at `position`, labels in `size` points.
fn legend<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    position: SeriesLabelPosition,
    size: u32,
) -> DrawResult {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.2))
        .label_font(label_style(size))
        .draw()?;
    Ok(())
}

fn label_style(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&INK)
}

/// Shortens a label to `max` characters, with an ellipsis.
fn short(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_string()
    } else {
        let mut s: String = label.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// One feature's bar in the PSI chart.
pub struct PsiBar<'a> {
    pub feature: &'a str,
    pub psi: f64,
    pub alarm: bool,
}

/// Horizontal PSI bars, highest first, alarms in red, with the threshold as a vertical line.
pub fn psi_bars(bars: &[PsiBar], threshold: f64, threshold_label: &str) -> String {
    let mut bars: Vec<&PsiBar> = bars.iter().collect();
    bars.sort_by(|a, b| b.psi.total_cmp(&a.psi));
    let n = bars.len().max(1);
    let height = 70 + 20 * n as u32;
    let max = bars.iter().map(|b| b.psi).filter(|v| v.is_finite()).fold(threshold, f64::max);
    let x_max = if max > 0.0 { max * 1.12 } else { 1.0 };
    let longest = bars.iter().map(|b| b.feature.chars().count().min(28)).max().unwrap_or(4);
    svg("PSI per feature", (760, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(34)
            .y_label_area_size(16 + 7 * longest as u32)
            .build_cartesian_2d(0f64..x_max, (0..n).into_segmented())?;
        // Segment 0 is at the bottom: the highest PSI goes into the top segment.
        let name_of = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) if *i < bars.len() => short(bars[bars.len() - 1 - i].feature, 28),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&name_of)
            .x_desc("population stability index")
            .bold_line_style(BLACK.mix(0.08))
            .light_line_style(TRANSPARENT)
            .axis_style(BLACK.mix(0.35))
            .label_style(label_style(12))
            .draw()?;
        chart.draw_series(bars.iter().enumerate().map(|(k, b)| {
            let i = bars.len() - 1 - k;
            let colour = if b.alarm { ALARM } else { CALM };
            let psi = if b.psi.is_finite() { b.psi.max(0.0) } else { x_max };
            let mut r = Rectangle::new(
                [(0.0, SegmentValue::Exact(i)), (psi, SegmentValue::Exact(i + 1))],
                colour.mix(0.85).filled(),
            );
            r.set_margin(3, 3, 0, 0);
            r
        }))?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(threshold, SegmentValue::Exact(0)), (threshold, SegmentValue::Exact(n))],
                ALARM.stroke_width(2),
            )))?
            .label(threshold_label)
            .legend(|(x, y)| PathElement::new(vec![(x, y - 6), (x, y + 6)], ALARM.stroke_width(2)));
        legend(&mut chart, SeriesLabelPosition::LowerRight, 12)?;
        Ok(())
    })
}

/// Reference against current share of rows per bin, as grouped bars.
pub fn histogram(feature: &str, bins: &[String], reference: &[f64], current: &[f64]) -> String {
    let n = bins.len().max(1);
    let max = reference.iter().chain(current).copied().filter(|v| v.is_finite()).fold(0.0, f64::max);
    let y_max = if max > 0.0 { (max * 1.15).min(1.0) } else { 1.0 };
    svg(&format!("{feature}: reference and current distribution"), (520, 290), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .caption(short(feature, 60), label_style(15))
            .x_label_area_size(34)
            .y_label_area_size(48)
            .build_cartesian_2d((0..n).into_segmented(), 0f64..y_max)?;
        let (width, _) = chart.plotting_area().dim_in_pixel();
        let segment = width as f64 / n as f64;
        // As many characters as fit under a bin at 11 px, and every k-th label when even one
        // short label does not fit.
        let fit = (segment / 6.5).floor() as usize;
        let every = if fit >= 4 { 1 } else { (4.0 * 6.5 / segment).ceil() as usize };
        let label_of = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) if *i < bins.len() && i % every == 0 => short(&bins[*i], fit.max(4) * every),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&label_of)
            .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
            .y_desc("share of rows")
            .bold_line_style(BLACK.mix(0.08))
            .light_line_style(TRANSPARENT)
            .axis_style(BLACK.mix(0.35))
            .label_style(label_style(11))
            .draw()?;
        let gap = (segment * 0.12) as u32;
        let half = (segment * 0.5) as u32;
        for (series, shares, colour, margins) in
            [("reference", reference, PALETTE[0], (gap, half)), ("current", current, PALETTE[1], (half, gap))]
        {
            chart
                .draw_series(shares.iter().take(n).enumerate().map(|(i, s)| {
                    let mut r = Rectangle::new(
                        [(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), s.clamp(0.0, 1.0))],
                        colour.filled(),
                    );
                    r.set_margin(0, 0, margins.0, margins.1);
                    r
                }))?
                .label(series)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight, 12)?;
        Ok(())
    })
}

/// One model's curve: its name, its colour index and its points.
pub struct CurveSeries<'a> {
    pub name: &'a str,
    pub color: usize,
    pub points: Vec<(f64, f64)>,
}

/// Which curve: sets the axes, the reference line and where the legend goes.
#[derive(Debug, Clone, Copy)]
pub enum CurveKind {
    Roc,
    PrecisionRecall,
    Calibration,
}

/// ROC, precision-recall or calibration curves of several models on one 0-1 square.
pub fn curves(kind: CurveKind, series: &[CurveSeries]) -> String {
    let (title, x_desc, y_desc, legend_at) = match kind {
        CurveKind::Roc => ("ROC curve", "false positive rate", "true positive rate", SeriesLabelPosition::LowerRight),
        CurveKind::PrecisionRecall => ("Precision-recall curve", "recall", "precision", SeriesLabelPosition::LowerLeft),
        CurveKind::Calibration => {
            ("Reliability", "mean predicted probability", "observed positive rate", SeriesLabelPosition::UpperLeft)
        }
    };
    svg(title, (352, 340), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .caption(title, label_style(15))
            .x_label_area_size(40)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..1f64, 0f64..1.0001f64)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_labels(6)
            .y_labels(6)
            .bold_line_style(BLACK.mix(0.08))
            .light_line_style(TRANSPARENT)
            .axis_style(BLACK.mix(0.35))
            .label_style(label_style(11))
            .draw()?;
        if matches!(kind, CurveKind::Roc | CurveKind::Calibration) {
            chart
                .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3).stroke_width(1)))?
                .label(if matches!(kind, CurveKind::Roc) { "chance" } else { "perfect calibration" })
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.mix(0.3)));
        }
        for s in series {
            let colour = color(s.color);
            let points: Vec<(f64, f64)> =
                s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
            chart
                .draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(2)))?
                .label(s.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
            if matches!(kind, CurveKind::Calibration) {
                chart.draw_series(PointSeries::of_element(points, 3, colour.filled(), &|c, s, st| {
                    EmptyElement::at(c) + Circle::new((0, 0), s, st)
                }))?;
            }
        }
        legend(&mut chart, legend_at, 11)?;
        Ok(())
    })
}

/// One line of a trend plot: a value per run (absent where the run did not measure it).
pub struct TrendSeries<'a> {
    pub name: &'a str,
    pub color: usize,
    pub values: Vec<Option<f64>>,
}

/// A metric across the last runs, one line per model, oldest run on the left.
pub fn trend(title: &str, y_desc: &str, runs: &[String], series: &[TrendSeries]) -> String {
    let n = runs.len().max(1);
    let values = series.iter().flat_map(|s| s.values.iter().flatten()).copied().filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.1).max(0.01);
    let (y_lo, y_hi) = (lo - pad, hi + pad);
    svg(title, (520, 290), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .caption(title, label_style(15))
            .x_label_area_size(34)
            .y_label_area_size(52)
            .build_cartesian_2d((0..n).into_segmented(), y_lo..y_hi)?;
        let (width, _) = chart.plotting_area().dim_in_pixel();
        let every = ((80.0 * n as f64) / width as f64).ceil().max(1.0) as usize;
        let label_of = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) if *i < runs.len() && (runs.len() - 1 - i).is_multiple_of(every) => {
                runs[*i].clone()
            }
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&label_of)
            .y_labels(6)
            .y_label_formatter(&|v| format!("{v:.3}"))
            .y_desc(y_desc)
            .bold_line_style(BLACK.mix(0.08))
            .light_line_style(TRANSPARENT)
            .axis_style(BLACK.mix(0.35))
            .label_style(label_style(11))
            .draw()?;
        for s in series {
            let colour = color(s.color);
            let points: Vec<(SegmentValue<usize>, f64)> = s
                .values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.filter(|v| v.is_finite()).map(|v| (SegmentValue::CenterOf(i), v)))
                .collect();
            // Consecutive runs are joined; a run without the value breaks the line.
            let mut segment: Vec<(SegmentValue<usize>, f64)> = Vec::new();
            let mut last: Option<usize> = None;
            for (i, v) in s.values.iter().enumerate() {
                if let Some(v) = v.filter(|v| v.is_finite()) {
                    if last.is_some_and(|l| l + 1 != i) {
                        chart.draw_series(LineSeries::new(segment.drain(..), colour.stroke_width(2)))?;
                    }
                    segment.push((SegmentValue::CenterOf(i), v));
                    last = Some(i);
                }
            }
            chart.draw_series(LineSeries::new(segment, colour.stroke_width(2)))?;
            chart
                .draw_series(PointSeries::of_element(points, 3, colour.filled(), &|c, s, st| {
                    EmptyElement::at(c) + Circle::new((0, 0), s, st)
                }))?
                .label(s.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
        }
        if !series.is_empty() {
            legend(&mut chart, SeriesLabelPosition::LowerLeft, 11)?;
        }
        Ok(())
    })
}

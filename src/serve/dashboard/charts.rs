//! The dashboard's charts, drawn on the server as inline SVG with `plotters` (the same backend as
//! the forecast histogram): bars (stacked or side by side), lines, and ranges (low–high with the
//! middle marked). Text in the SVG is escaped by the backend.

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use super::format::{pct, short_money, thousands};

/// How the value axis is labelled.
#[derive(Debug, Clone, Copy)]
pub enum Axis {
    Money,
    Share,
    Count,
}

impl Axis {
    fn label(self, v: f64) -> String {
        match self {
            Axis::Money => short_money(v),
            Axis::Share => pct(v),
            Axis::Count => thousands(v),
        }
    }
}

/// A named series of values, one per category.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(70, 110, 170),
    RGBColor(214, 120, 50),
    RGBColor(70, 150, 90),
    RGBColor(190, 60, 60),
    RGBColor(140, 100, 180),
    RGBColor(130, 100, 80),
    RGBColor(200, 110, 170),
    RGBColor(120, 120, 120),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

const SIZE: (u32, u32) = (720, 340);

type Failure = String;

fn fail(e: impl std::fmt::Display) -> Failure {
    e.to_string()
}

fn top_of(max: f64) -> f64 {
    if max.is_finite() && max > 0.0 {
        max * 1.12
    } else {
        1.0
    }
}

/// The label of category `v`: only segment centres are named.
fn category(labels: &[String], v: &SegmentValue<i32>) -> String {
    match v {
        SegmentValue::CenterOf(i) => usize::try_from(*i)
            .ok()
            .and_then(|i| labels.get(i))
            .cloned()
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// The chart's frame on `root`, filled white: the title, one segment per label on x, 0 to `top`
/// on y, with the mesh and axis labels drawn.
fn frame<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    title: &str,
    labels: &[String],
    top: f64,
    axis: &Axis,
) -> Result<
    ChartContext<
        'a,
        SVGBackend<'b>,
        Cartesian2d<
            plotters::coord::ranged1d::SegmentedCoord<plotters::coord::types::RangedCoordi32>,
            plotters::coord::types::RangedCoordf64,
        >,
    >,
    Failure,
> {
    let n = labels.len().max(1) as i32;
    root.fill(&WHITE).map_err(fail)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d((0..n).into_segmented(), 0.0..top)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(labels.len().max(1))
        .x_label_formatter(&|v| category(labels, v))
        .y_label_formatter(&|v| axis.label(*v))
        .draw()
        .map_err(fail)?;
    Ok(chart)
}

/// Bars per category: stacked, or side by side. `colors` picks each series' colour (default the
/// palette in order); `reference` draws a dashed horizontal line.
pub fn bars(
    title: &str,
    labels: &[String],
    series: &[Series],
    stacked: bool,
    axis: Axis,
    colors: Option<&[RGBColor]>,
    reference: Option<(f64, &str)>,
) -> Result<String, Failure> {
    let n = labels.len().max(1) as i32;
    let value = |s: &Series, i: usize| s.values.get(i).copied().flatten().unwrap_or(0.0).max(0.0);
    let max = (0..labels.len())
        .map(|i| {
            if stacked {
                series.iter().map(|s| value(s, i)).sum::<f64>()
            } else {
                series.iter().map(|s| value(s, i)).fold(0.0, f64::max)
            }
        })
        .fold(reference.map_or(0.0, |r| r.0), f64::max);
    let top = top_of(max);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let mut chart = frame(&root, title, labels, top, &axis)?;
        let k = series.len().max(1) as u32;
        for (si, s) in series.iter().enumerate() {
            let c = colors
                .and_then(|c| c.get(si).copied())
                .unwrap_or_else(|| color(si));
            let rects: Vec<Rectangle<(SegmentValue<i32>, f64)>> = (0..labels.len())
                .filter_map(|i| {
                    let v = value(s, i);
                    if v <= 0.0 {
                        return None;
                    }
                    let below: f64 = if stacked {
                        series[..si].iter().map(|p| value(p, i)).sum()
                    } else {
                        0.0
                    };
                    let x = i as i32;
                    let mut r = Rectangle::new(
                        [
                            (SegmentValue::Exact(x), below),
                            (SegmentValue::Exact(x + 1), below + v),
                        ],
                        c.filled(),
                    );
                    // Side by side: each series gets its slice of the category's width.
                    let width = SIZE.0 / (labels.len().max(1) as u32 + 1);
                    if stacked || k == 1 {
                        r.set_margin(0, 0, width / 6, width / 6);
                    } else {
                        let slot = (width * 2 / 3) / k;
                        let left = width / 6 + slot * si as u32;
                        let right = width.saturating_sub(left + slot);
                        r.set_margin(0, 0, left, right);
                    }
                    Some(r)
                })
                .collect();
            chart
                .draw_series(rects)
                .map_err(fail)?
                .label(s.name.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        }
        if let Some((at, name)) = reference {
            let line = RGBColor(40, 40, 40);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(SegmentValue::Exact(0), at), (SegmentValue::Exact(n), at)],
                    line.stroke_width(1),
                )))
                .map_err(fail)?
                .label(name.to_string())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], line));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(fail)?;
        root.present().map_err(fail)?;
    }
    Ok(svg)
}

/// One line per series over the categories (gaps where a value is missing are bridged).
pub fn lines(
    title: &str,
    labels: &[String],
    series: &[Series],
    axis: Axis,
) -> Result<String, Failure> {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten().copied())
        .fold(0.0, f64::max);
    let top = match axis {
        Axis::Share => 1.0,
        _ => top_of(max),
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let mut chart = frame(&root, title, labels, top, &axis)?;
        for (si, s) in series.iter().enumerate() {
            let c = color(si);
            let points: Vec<(SegmentValue<i32>, f64)> = s
                .values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.map(|v| (SegmentValue::CenterOf(i as i32), v)))
                .collect();
            chart
                .draw_series(std::iter::once(PathElement::new(
                    points.clone(),
                    c.stroke_width(2),
                )))
                .map_err(fail)?
                .label(s.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], c));
            chart
                .draw_series(points.into_iter().map(|p| Circle::new(p, 3, c.filled())))
                .map_err(fail)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(fail)?;
        root.present().map_err(fail)?;
    }
    Ok(svg)
}

/// A range per category: a bar from low to high with the middle marked (p10–p90 and p50, or a
/// 95 % interval and its estimate).
pub fn ranges(
    title: &str,
    labels: &[String],
    rows: &[(f64, f64, f64)],
    axis: Axis,
) -> Result<String, Failure> {
    let max = rows.iter().map(|r| r.2).fold(0.0, f64::max);
    let top = match axis {
        Axis::Share => 1.0,
        _ => top_of(max),
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (SIZE.0, 300)).into_drawing_area();
        let mut chart = frame(&root, title, labels, top, &axis)?;
        let band = RGBColor(70, 110, 170);
        let width = SIZE.0 / (labels.len().max(1) as u32 + 1);
        chart
            .draw_series(rows.iter().enumerate().map(|(i, (low, _, high))| {
                let x = i as i32;
                let mut r = Rectangle::new(
                    [
                        (SegmentValue::Exact(x), low.max(0.0)),
                        (SegmentValue::Exact(x + 1), high.max(0.0)),
                    ],
                    band.mix(0.45).filled(),
                );
                r.set_margin(0, 0, width / 3, width / 3);
                r
            }))
            .map_err(fail)?
            .label("range")
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 12, y + 5)], band.mix(0.45).filled())
            });
        let mid = RGBColor(30, 30, 30);
        chart
            .draw_series(rows.iter().enumerate().map(|(i, (_, m, _))| {
                Circle::new((SegmentValue::CenterOf(i as i32), *m), 5, mid.filled())
            }))
            .map_err(fail)?
            .label("middle")
            .legend(move |(x, y)| Circle::new((x + 6, y), 4, mid.filled()));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(fail)?;
        root.present().map_err(fail)?;
    }
    Ok(svg)
}

/// A chart, or a note when it could not be drawn (logged): a page never fails for a chart.
pub fn or_note(chart: Result<String, Failure>, what: &str) -> String {
    chart.unwrap_or_else(|e| {
        tracing::warn!(chart = what, error = %e, "drawing a chart failed");
        format!("<p class=\"note\">The {what} chart could not be drawn.</p>")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_escaped_text() {
        let labels = vec!["<b>a</b>".to_string(), "b".to_string()];
        let series = vec![
            Series {
                name: "low & safe".into(),
                values: vec![Some(2.0), Some(1.0)],
            },
            Series {
                name: "high".into(),
                values: vec![None, Some(3.0)],
            },
        ];
        for svg in [
            bars(
                "t",
                &labels,
                &series,
                true,
                Axis::Count,
                None,
                Some((2.0, "ref")),
            )
            .unwrap(),
            bars("t", &labels, &series, false, Axis::Money, None, None).unwrap(),
            lines("t", &labels, &series, Axis::Share).unwrap(),
            ranges(
                "t",
                &labels,
                &[(1.0, 2.0, 3.0), (0.5, 1.0, 4.0)],
                Axis::Money,
            )
            .unwrap(),
        ] {
            assert!(svg.starts_with("<svg"), "{svg}");
            assert!(!svg.contains("<b>"), "unescaped label: {svg}");
        }
        // No categories at all still draws an empty chart.
        assert!(bars("t", &[], &[], true, Axis::Count, None, None).is_ok());
    }
}

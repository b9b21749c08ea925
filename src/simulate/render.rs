//! The SVG histogram of a workspace's simulated closed-won revenue, for reports.

use plotters::prelude::*;

use super::pipeline::Distribution;

/// Bars of the histogram.
const BARS: usize = 40;

/// Counts of `values` in [`BARS`] equal bins over `[min, max]`: the bin width and the counts.
pub fn histogram(values: &[f64]) -> (f64, f64, Vec<u64>) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0, vec![0; BARS]);
    }
    let width = if hi > lo {
        (hi - lo) / BARS as f64
    } else {
        1.0
    };
    let mut counts = vec![0u64; BARS];
    for v in values {
        let b = (((v - lo) / width).floor() as usize).min(BARS - 1);
        counts[b] += 1;
    }
    (lo, width, counts)
}

fn short_money(v: f64) -> String {
    let a = v.abs();
    let (x, unit) = if a >= 1e9 {
        (v / 1e9, "B")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    format!("${x:.1}{unit}")
}

/// The histogram of `runs` (one total per run) with the mean and p10 / p50 / p90 marked, as a
/// self-contained SVG document.
pub fn revenue_histogram_svg(title: &str, runs: &[f64]) -> Result<String, String> {
    let mut sorted = runs.to_vec();
    let d = Distribution::of(&mut sorted);
    let (lo, width, counts) = histogram(runs);
    let top = counts.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.1;
    let x_max = lo + width * BARS as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 480)).into_drawing_area();
        let err = |e: &dyn std::fmt::Display| e.to_string();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(lo..x_max, 0.0..top)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("closed-won revenue (USD)")
            .y_desc("runs")
            .x_label_formatter(&|v| short_money(*v))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(|e| err(&e))?;
        let bar = RGBColor(70, 110, 170);
        chart
            .draw_series(counts.iter().enumerate().map(|(i, c)| {
                let x0 = lo + width * i as f64;
                Rectangle::new([(x0, 0.0), (x0 + width, *c as f64)], bar.filled())
            }))
            .map_err(|e| err(&e))?;
        let marks = [
            ("p10", d.p10, RGBColor(200, 80, 60)),
            ("p50", d.p50, RGBColor(30, 30, 30)),
            ("p90", d.p90, RGBColor(60, 150, 80)),
            ("mean", d.mean, RGBColor(150, 90, 180)),
        ];
        for (name, x, color) in marks {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x, 0.0), (x, top)],
                    color.stroke_width(2),
                )))
                .map_err(|e| err(&e))?
                .label(format!("{name} {}", short_money(x)))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_bins_cover_every_run() {
        let runs: Vec<f64> = (0..1_000).map(|i| f64::from(i % 100) * 10.0).collect();
        let (lo, width, counts) = histogram(&runs);
        assert_eq!(lo, 0.0);
        assert!((width - 990.0 / 40.0).abs() < 1e-9);
        assert_eq!(counts.iter().sum::<u64>(), 1_000);
        let svg = revenue_histogram_svg("demo: closed-won revenue", &runs).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("p50") && svg.contains("<rect"));
        // One value only: one full bar, no division by zero.
        let (_, w, c) = histogram(&[5.0; 3]);
        assert_eq!((w, c[0]), (1.0, 3));
    }
}

//! `--svg FILE`: command latency over the run as a small hand-written SVG chart.
//!
//! Three polylines (p50, p95, p99 of the commands answered in each second), axes with
//! round tick values, and a legend. No plotting library: the chart is a few dozen
//! elements, and a file that opens in any browser is all that is asked of it.

use std::fmt::Write;

use super::stats::SecondBucket;

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 400.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 130.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;

/// The series drawn, with their colours.
const SERIES: [(&str, &str); 3] = [("p50", "#1f77b4"), ("p95", "#ff7f0e"), ("p99", "#d62728")];

/// The chart of `buckets` (seconds with no answer are left out of the lines).
pub fn render(title: &str, buckets: &[SecondBucket]) -> String {
    let points: Vec<&SecondBucket> = buckets.iter().filter(|b| b.commands > 0).collect();
    let last_second = buckets.last().map_or(1, |b| b.second + 1).max(1);
    let highest = points.iter().map(|b| b.p99_ms.max(b.p95_ms).max(b.p50_ms)).fold(0.0, f64::max);
    let y_step = nice_step(highest.max(0.1) / 5.0);
    let y_max = (highest / y_step).ceil().max(1.0) * y_step;
    let x_step = nice_step(last_second as f64 / 8.0).max(1.0);
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    // A bucket is drawn at its middle: second 0 covers [0, 1).
    let x = |second: f64| LEFT + (second + 0.5) / last_second as f64 * plot_width;
    let x_axis = |second: f64| LEFT + second / last_second as f64 * plot_width;
    let y = |ms: f64| TOP + plot_height - ms / y_max * plot_height;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        LEFT + plot_width / 2.0,
        escape(title)
    );

    // Horizontal grid and y labels.
    for index in 0..=(y_max / y_step).round() as u32 {
        let tick = f64::from(index) * y_step;
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{x2}" y2="{py:.1}" stroke="#ddd"/><text x="{lx}" y="{ty:.1}" text-anchor="end">{label}</text>"##,
            py = y(tick),
            x2 = LEFT + plot_width,
            lx = LEFT - 6.0,
            ty = y(tick) + 4.0,
            label = format_ms(tick),
        );
    }
    // X ticks and labels.
    for index in 0..=(last_second as f64 / x_step).floor() as u32 {
        let second = f64::from(index) * x_step;
        let _ = writeln!(
            svg,
            r##"<line x1="{px:.1}" y1="{base}" x2="{px:.1}" y2="{end}" stroke="#333"/><text x="{px:.1}" y="{ty}" text-anchor="middle">{second}</text>"##,
            px = x_axis(second),
            base = TOP + plot_height,
            end = TOP + plot_height + 5.0,
            ty = TOP + plot_height + 19.0,
        );
    }
    // Axes and their titles.
    let _ = writeln!(
        svg,
        r##"<path d="M{LEFT},{TOP} V{base} H{right}" fill="none" stroke="#333"/>"##,
        base = TOP + plot_height,
        right = LEFT + plot_width,
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds since the start of the load</text>"#,
        LEFT + plot_width / 2.0,
        HEIGHT - 12.0
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate(18 {}) rotate(-90)" text-anchor="middle">command latency (ms)</text>"#,
        TOP + plot_height / 2.0
    );

    // The series and the legend.
    for (index, (name, colour)) in SERIES.into_iter().enumerate() {
        let value = |bucket: &SecondBucket| match name {
            "p50" => bucket.p50_ms,
            "p95" => bucket.p95_ms,
            _ => bucket.p99_ms,
        };
        let coordinates: Vec<String> = points
            .iter()
            .map(|bucket| format!("{:.1},{:.1}", x(bucket.second as f64), y(value(bucket))))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline class="{name}" fill="none" stroke="{colour}" stroke-width="1.8" points="{}"/>"#,
            coordinates.join(" ")
        );
        let legend_y = TOP + 10.0 + index as f64 * 20.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="{legend_y}" x2="{lx2}" y2="{legend_y}" stroke="{colour}" stroke-width="3"/><text x="{tx}" y="{ty}">{name}</text>"#,
            lx = WIDTH - RIGHT + 15.0,
            lx2 = WIDTH - RIGHT + 40.0,
            tx = WIDTH - RIGHT + 46.0,
            ty = legend_y + 4.0,
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|factor| factor * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude)
}

fn format_ms(ms: f64) -> String {
    if ms == 0.0 || ms >= 10.0 {
        format!("{ms:.0}")
    } else if ms >= 1.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(second: u64, commands: u64, p50_ms: f64) -> SecondBucket {
        SecondBucket { second, commands, p50_ms, p95_ms: p50_ms * 2.0, p99_ms: p50_ms * 3.0 }
    }

    #[test]
    fn the_chart_is_xml_with_one_polyline_per_percentile() -> anyhow::Result<()> {
        let buckets =
            [bucket(0, 10, 2.0), bucket(1, 0, 0.0), bucket(2, 12, 3.5), bucket(3, 9, 1.0)];
        let svg = render("ledger bench <32 clients> & more", &buckets);
        let document = roxmltree::Document::parse(&svg)?;
        assert_eq!(document.root_element().tag_name().name(), "svg");
        let polylines: Vec<_> =
            document.descendants().filter(|node| node.has_tag_name("polyline")).collect();
        assert_eq!(polylines.len(), 3);
        for (polyline, (name, _)) in polylines.iter().zip(SERIES) {
            assert_eq!(polyline.attribute("class"), Some(name));
            let points: Vec<&str> =
                polyline.attribute("points").unwrap_or_default().split(' ').collect();
            // The empty second is left out.
            assert_eq!(points.len(), 3, "{name}: {points:?}");
            for point in points {
                let (px, py) = point.split_once(',').unwrap_or_default();
                let (px, py): (f64, f64) = (px.parse()?, py.parse()?);
                assert!((LEFT..=WIDTH - RIGHT).contains(&px), "{px}");
                assert!((TOP..=HEIGHT - BOTTOM).contains(&py), "{py}");
            }
        }
        let texts: Vec<&str> = document.descendants().filter_map(|n| n.text()).collect();
        assert!(texts.contains(&"ledger bench <32 clients> & more"));
        assert!(texts.contains(&"p99"));
        Ok(())
    }

    #[test]
    fn an_empty_run_still_draws_a_valid_chart() -> anyhow::Result<()> {
        let svg = render("empty", &[]);
        let document = roxmltree::Document::parse(&svg)?;
        assert_eq!(document.descendants().filter(|n| n.has_tag_name("polyline")).count(), 3);
        Ok(())
    }

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.3), 2.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(42.0), 50.0);
        assert_eq!(nice_step(0.0), 1.0);
    }
}

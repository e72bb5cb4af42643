//! The plot of `exitwise eval --plot`: accuracy against measured wall-clock speed-up over `full`,
//! one series per policy over its calibrated operating points, the oracle's accuracy as a line.
//! Drawn as SVG by plotters; a `.png` file is that SVG rasterised by resvg with the system's
//! fonts.

use std::path::Path;

use plotters::prelude::*;

/// One measured operating point.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotPoint {
    /// The policy (series name).
    pub series: &'static str,
    /// Its accuracy budget.
    pub budget: f64,
    /// Measured accuracy.
    pub accuracy: f64,
    /// Measured wall-clock speed-up over `full`.
    pub speedup: f64,
}

/// Series colours, in the order policies are reported.
const COLOURS: [(&str, RGBColor); 4] = [
    ("full", RGBColor(80, 80, 80)),
    ("layer", RGBColor(31, 119, 180)),
    ("sentence", RGBColor(44, 160, 44)),
    ("2d", RGBColor(214, 39, 40)),
];

/// The file formats of the plot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlotFormat {
    /// Vector graphics, text as text.
    Svg,
    /// A raster image (the SVG rendered at 2× scale).
    Png,
}

/// The format `path` asks for by its extension (checked before any work is done).
pub fn check_path(path: &Path) -> anyhow::Result<PlotFormat> {
    let extension = path
        .extension()
        .and_then(|extension| extension.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("svg") => Ok(PlotFormat::Svg),
        Some("png") => Ok(PlotFormat::Png),
        _ => anyhow::bail!(
            "cannot write the plot `{}`: name the file `*.svg` or `*.png`",
            path.display()
        ),
    }
}

/// Draws `points` into `path`, as SVG or PNG by its extension.
pub fn draw_operating_points(
    path: &Path,
    points: &[PlotPoint],
    oracle_accuracy: Option<f64>,
    title: &str,
) -> anyhow::Result<()> {
    let format = check_path(path)?;
    let svg = render_svg(points, oracle_accuracy, title)?;
    match format {
        PlotFormat::Svg => std::fs::write(path, svg)?,
        PlotFormat::Png => std::fs::write(path, rasterise(&svg)?)?,
    }
    Ok(())
}

/// The SVG rendered to PNG bytes, text in the system's sans-serif font.
fn rasterise(svg: &str) -> anyhow::Result<Vec<u8>> {
    use resvg::{tiny_skia, usvg};
    let mut options = usvg::Options::default();
    let fonts = options.fontdb_mut();
    fonts.load_system_fonts();
    let families: Vec<String> = fonts
        .faces()
        .flat_map(|face| face.families.iter().map(|(name, _)| name.clone()))
        .collect();
    // fontdb's generic sans-serif is Arial, which Linux machines rarely have.
    let preferred = [
        "DejaVu Sans",
        "Liberation Sans",
        "Arial",
        "Helvetica",
        "Noto Sans",
    ]
    .into_iter()
    .map(str::to_string)
    .find(|family| families.contains(family))
    .or_else(|| families.first().cloned());
    match preferred {
        Some(family) => fonts.set_sans_serif_family(family),
        None => eprintln!("warning: no system font found: the PNG plot has no text"),
    }
    let tree = usvg::Tree::from_str(svg, &options)?;
    let scale = 2.0;
    let size = tree
        .size()
        .to_int_size()
        .scale_by(scale)
        .ok_or_else(|| anyhow::anyhow!("the plot has an invalid size"))?;
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).ok_or_else(|| {
        anyhow::anyhow!("cannot allocate a {}×{} image", size.width(), size.height())
    })?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    Ok(pixmap.encode_png()?)
}

/// The plot as SVG text.
fn render_svg(
    points: &[PlotPoint],
    oracle_accuracy: Option<f64>,
    title: &str,
) -> anyhow::Result<String> {
    anyhow::ensure!(!points.is_empty(), "no measured operating point to draw");
    let max_speedup = points
        .iter()
        .map(|point| point.speedup)
        .fold(1.0f64, f64::max)
        * 1.1;
    let accuracies = points
        .iter()
        .map(|point| point.accuracy)
        .chain(oracle_accuracy);
    let (low, high) = accuracies.fold((1.0f64, 0.0f64), |(low, high), accuracy| {
        (low.min(accuracy), high.max(accuracy))
    });
    let margin = ((high - low) * 0.1).max(0.01);
    let (low, high) = ((low - margin).max(0.0), (high + margin).min(1.0));

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..max_speedup, low..high)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("wall-clock speed-up over full (×)")
            .y_desc("accuracy")
            .draw()
            .map_err(plot_error)?;
        if let Some(oracle) = oracle_accuracy {
            let colour = RGBColor(148, 103, 189);
            chart
                .draw_series(LineSeries::new(
                    [(0.0, oracle), (max_speedup, oracle)],
                    colour.stroke_width(1),
                ))
                .map_err(plot_error)?
                .label(format!("oracle accuracy {oracle:.3}"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour));
        }
        for (series, colour) in COLOURS {
            let mut own: Vec<&PlotPoint> = points
                .iter()
                .filter(|point| point.series == series)
                .collect();
            if own.is_empty() {
                continue;
            }
            own.sort_by(|left, right| left.speedup.total_cmp(&right.speedup));
            let coordinates: Vec<(f64, f64)> = own
                .iter()
                .map(|point| (point.speedup, point.accuracy))
                .collect();
            // A line needs two points (`full` has one operating point).
            if coordinates.len() > 1 {
                chart
                    .draw_series(LineSeries::new(coordinates.clone(), colour.stroke_width(2)))
                    .map_err(plot_error)?;
            }
            chart
                .draw_series(
                    coordinates
                        .iter()
                        .map(|&(x, y)| Circle::new((x, y), 4, colour.filled())),
                )
                .map_err(plot_error)?
                .label(series)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(own.iter().map(|point| {
                    Text::new(
                        format!("{}", point.budget),
                        (point.speedup, point.accuracy),
                        ("sans-serif", 11).into_font().color(&colour),
                    )
                }))
                .map_err(plot_error)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

fn plot_error(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{error}")
}

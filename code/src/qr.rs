//! The QR of a code, as SVG. Error-correction level M suits screens; the `HZ1:` + Base45 text
//! is all QR alphanumeric characters, so a typical code fits version 10.
//!
//! The `qrcode` crate builds the symbol (segmentation, error correction, placement). Two steps
//! are our own, for speed on the page path: choosing the mask (the crate's penalty scoring made
//! a code cost ~2 ms; the same ISO/IEC 18004 rules here cost ~20 µs per mask), and the SVG,
//! drawn as one path of horizontal runs instead of a rectangle per module.

use std::fmt::Write as _;

use qrcode::canvas::{Canvas, MaskPattern};
use qrcode::{Color, EcLevel, Version};

/// The QR could not be built (the text is too long for any QR version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode the code as a QR: {0}")]
pub struct QrError(pub String);

/// Smallest edge of the rendered SVG, in pixels.
pub const QR_MIN_PIXELS: usize = 240;
/// Light modules around the symbol, as the standard asks.
const QUIET_ZONE: usize = 4;
const MASKS: [MaskPattern; 8] = [
    MaskPattern::Checkerboard,
    MaskPattern::HorizontalLines,
    MaskPattern::VerticalLines,
    MaskPattern::DiagonalLines,
    MaskPattern::LargeCheckerboard,
    MaskPattern::Fields,
    MaskPattern::Diamonds,
    MaskPattern::Meadow,
];

/// A QR symbol: its version and its modules, row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrSymbol {
    version: Version,
    width: usize,
    dark: Vec<bool>,
}

impl QrSymbol {
    /// The QR version (size class).
    #[must_use]
    pub fn version(&self) -> Version {
        self.version
    }

    /// Modules per side.
    #[must_use]
    pub fn width(&self) -> usize {
        self.width
    }

    /// Whether the module at column `x`, row `y` is dark.
    #[must_use]
    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        self.dark[y * self.width + x]
    }

    /// A standalone SVG document of the symbol with its quiet zone.
    #[must_use]
    pub fn to_svg(&self) -> String {
        let side = self.width + 2 * QUIET_ZONE;
        let pixels = QR_MIN_PIXELS.max(side * 4);
        let mut path = String::with_capacity(self.width * self.width);
        for y in 0..self.width {
            let mut x = 0;
            while x < self.width {
                if !self.is_dark(x, y) {
                    x += 1;
                    continue;
                }
                let start = x;
                while x < self.width && self.is_dark(x, y) {
                    x += 1;
                }
                let run = x - start;
                // Writing into a String cannot fail.
                let _ = write!(
                    path,
                    "M{},{}h{run}v1h-{run}z",
                    start + QUIET_ZONE,
                    y + QUIET_ZONE
                );
            }
        }
        format!(
            "<?xml version=\"1.0\" standalone=\"yes\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
             version=\"1.1\" width=\"{pixels}\" height=\"{pixels}\" viewBox=\"0 0 {side} {side}\" \
             shape-rendering=\"crispEdges\"><rect width=\"{side}\" height=\"{side}\" fill=\"#fff\"/>\
             <path fill=\"#000\" d=\"{path}\"/></svg>"
        )
    }
}

/// The QR symbol of a code's text at error-correction level M, with the mask of lowest
/// penalty.
///
/// # Errors
/// The text does not fit a QR code.
pub fn qr_code(text: &str) -> Result<QrSymbol, QrError> {
    let error = |e: qrcode::types::QrError| QrError(e.to_string());
    let bits = qrcode::bits::encode_auto(text.as_bytes(), EcLevel::M).map_err(error)?;
    let version = bits.version();
    let (data, ec) =
        qrcode::ec::construct_codewords(&bits.into_bytes(), version, EcLevel::M).map_err(error)?;
    let mut canvas = Canvas::new(version, EcLevel::M);
    canvas.draw_all_functional_patterns();
    canvas.draw_data(&data, &ec);
    let width = version.width().unsigned_abs() as usize;
    let mut best: Option<(u32, Vec<bool>)> = None;
    for mask in MASKS {
        let mut masked = canvas.clone();
        masked.apply_mask(mask);
        let dark: Vec<bool> = masked
            .into_colors()
            .into_iter()
            .map(|c| c == Color::Dark)
            .collect();
        let score = penalty(&dark, width);
        if best.as_ref().is_none_or(|(s, _)| score < *s) {
            best = Some((score, dark));
        }
    }
    let (_, dark) = best.ok_or_else(|| QrError("no mask pattern".to_owned()))?;
    Ok(QrSymbol {
        version,
        width,
        dark,
    })
}

/// A standalone SVG document of the code's QR.
///
/// # Errors
/// The text does not fit a QR code.
pub fn qr_svg(text: &str) -> Result<String, QrError> {
    Ok(qr_code(text)?.to_svg())
}

/// The mask penalty of ISO/IEC 18004 §7.8.3: runs of five or more (N1 = 3), 2×2 blocks
/// (N2 = 3), finder-like 1:1:3:1:1 patterns with four light modules on one side (N3 = 40),
/// and the dark share's distance from half (N4 = 10 per 5 %).
fn penalty(dark: &[bool], width: usize) -> u32 {
    let mut score = 0u32;
    let mut column = vec![false; width];
    for i in 0..width {
        score += line_penalty(&dark[i * width..(i + 1) * width]);
        for (y, cell) in column.iter_mut().enumerate() {
            *cell = dark[y * width + i];
        }
        score += line_penalty(&column);
    }
    for (upper, lower) in dark
        .chunks_exact(width)
        .zip(dark.chunks_exact(width).skip(1))
    {
        for x in 0..width - 1 {
            let c = upper[x];
            if upper[x + 1] == c && lower[x] == c && lower[x + 1] == c {
                score += 3;
            }
        }
    }
    let dark_count = dark.iter().filter(|d| **d).count();
    let percent = dark_count * 100 / dark.len();
    let deviation = percent.abs_diff(50) / 5;
    score + 10 * u32::try_from(deviation).unwrap_or(u32::MAX / 20)
}

/// N1 and N3 of one row or column.
fn line_penalty(line: &[bool]) -> u32 {
    let mut score = 0;
    for run in line.chunk_by(|a, b| a == b) {
        if run.len() >= 5 {
            score += u32::try_from(run.len()).unwrap_or(u32::MAX / 2) - 2;
        }
    }
    let finders = line
        .windows(11)
        .filter(|w| *w == FINDER_THEN_LIGHT || *w == LIGHT_THEN_FINDER)
        .count();
    score + 40 * u32::try_from(finders).unwrap_or(0)
}

const FINDER_THEN_LIGHT: [bool; 11] = [
    true, false, true, true, true, false, true, false, false, false, false,
];
const LIGHT_THEN_FINDER: [bool; 11] = [
    false, false, false, false, true, false, true, true, true, false, true,
];

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::claims::tests::sample;
    use crate::key::{KeyPair, KeyRole};

    /// Reads a QR back from its modules, as a scanner would from a screen.
    fn scan(code: &QrSymbol) -> String {
        const SCALE: usize = 4;
        let modules = code.width();
        let side = (modules + 2 * QUIET_ZONE) * SCALE;
        let mut img = rqrr::PreparedImage::prepare_from_bitmap(side, side, |x, y| {
            let (mx, my) = (x / SCALE, y / SCALE);
            let inside = QUIET_ZONE..modules + QUIET_ZONE;
            inside.contains(&mx)
                && inside.contains(&my)
                && code.is_dark(mx - QUIET_ZONE, my - QUIET_ZONE)
        });
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1);
        grids[0].decode().unwrap().1
    }

    #[test]
    fn real_codes_fit_version_10_at_level_m_and_scan_back() {
        let key = KeyPair::from_seed([3; 32], KeyRole::Origin, sample().issuer, 0, 2_000_000_000);
        for i in 0..20u8 {
            let mut claims = sample();
            claims.code_id.0[0] = i;
            claims.masked_name = "欧阳*".to_owned();
            let text = key.sign(&claims).unwrap();
            let code = qr_code(&text).unwrap();
            assert!(
                matches!(code.version(), Version::Normal(v) if v <= 10),
                "{:?}",
                code.version()
            );
            assert_eq!(scan(&code), text);
        }
    }

    #[test]
    fn svg_draws_exactly_the_dark_modules() {
        let code = qr_code("HZ1:TEST").unwrap();
        let svg = code.to_svg();
        assert!(svg.starts_with("<?xml") && svg.ends_with("</svg>"));
        let path = svg
            .split(" d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let dark_in_svg: usize = path
            .split('h')
            .skip(1)
            .step_by(2)
            .map(|run| run.split('v').next().unwrap().parse::<usize>().unwrap())
            .sum();
        let dark: usize = (0..code.width())
            .flat_map(|y| (0..code.width()).map(move |x| (x, y)))
            .filter(|&(x, y)| code.is_dark(x, y))
            .count();
        assert_eq!(dark_in_svg, dark);
    }

    #[test]
    fn penalty_follows_the_standard_rules() {
        // 6x6 all light: runs of 6 in 12 lines (4 each), 25 blocks (3 each), 100 % light
        // (10 per 5 % from half: 100).
        let light = vec![false; 36];
        assert_eq!(penalty(&light, 6), 12 * 4 + 25 * 3 + 100);
        // A checkerboard has no runs, no blocks, and is half dark.
        let checker: Vec<bool> = (0..36).map(|i| (i / 6 + i % 6) % 2 == 0).collect();
        assert_eq!(penalty(&checker, 6), 0);
    }
}

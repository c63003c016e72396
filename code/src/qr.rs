//! The QR of a code, as SVG. Error-correction level M suits screens; the `HZ1:` + Base45 text
//! is all QR alphanumeric characters, so a typical code fits version 10.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// The QR could not be built (the text is too long for any QR version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode the code as a QR: {0}")]
pub struct QrError(pub String);

/// Smallest edge of the rendered SVG, in pixels.
pub const QR_MIN_PIXELS: u32 = 240;

/// The QR symbol of a code's text at error-correction level M.
///
/// # Errors
/// The text does not fit a QR code.
pub fn qr_code(text: &str) -> Result<QrCode, QrError> {
    QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| QrError(e.to_string()))
}

/// A standalone SVG document of the code's QR.
///
/// # Errors
/// The text does not fit a QR code.
pub fn qr_svg(text: &str) -> Result<String, QrError> {
    Ok(qr_code(text)?
        .render::<svg::Color<'_>>()
        .min_dimensions(QR_MIN_PIXELS, QR_MIN_PIXELS)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::claims::tests::sample;
    use crate::key::{KeyPair, KeyRole};

    /// Reads a QR back from its modules, as a scanner would from a screen.
    fn scan(code: &QrCode) -> String {
        const SCALE: usize = 4;
        const QUIET: usize = 4;
        let modules = code.width();
        let colors = code.to_colors();
        let side = (modules + 2 * QUIET) * SCALE;
        let mut img = rqrr::PreparedImage::prepare_from_bitmap(side, side, |x, y| {
            let (mx, my) = (x / SCALE, y / SCALE);
            if mx < QUIET || my < QUIET || mx >= modules + QUIET || my >= modules + QUIET {
                return false;
            }
            colors[(my - QUIET) * modules + (mx - QUIET)] == qrcode::Color::Dark
        });
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1);
        grids[0].decode().unwrap().1
    }

    #[test]
    fn a_real_code_fits_version_10_at_level_m_and_scans_back() {
        let key = KeyPair::from_seed([3; 32], KeyRole::Origin, sample().issuer, 0, 2_000_000_000);
        let text = key.sign(&sample()).unwrap();
        let code = qr_code(&text).unwrap();
        assert_eq!(code.error_correction_level(), EcLevel::M);
        assert!(
            matches!(code.version(), qrcode::Version::Normal(v) if v <= 10),
            "{:?}",
            code.version()
        );
        assert_eq!(scan(&code), text);
        let svg = qr_svg(&text).unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"));
    }
}

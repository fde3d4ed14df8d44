//! Onboarding labels: the payload as a QR code (level M; the `FL1/` text is QR-alphanumeric so
//! it fits version 6 for registration IDs up to 80 characters), rendered for a terminal, as
//! SVG or as PNG (a grayscale image written with the `png` crate).

use fieldlink_protocol::payload::OnboardingPayload;
use qrcode::{Color, EcLevel, QrCode, render::svg, render::unicode::Dense1x2};

use crate::exit::{CliError, Exit};

/// Quiet zone around the code, in modules (the QR standard's minimum).
const QUIET_ZONE: usize = 4;

fn code(text: &str) -> Result<QrCode, CliError> {
    QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).map_err(|error| {
        CliError::new(
            Exit::InvalidPayload,
            "label_too_large",
            format!("cannot encode the label as a QR code: {error}"),
        )
    })
}

/// The QR symbol version (1..=40) `text` needs at level M.
pub fn version(text: &str) -> Result<i16, CliError> {
    match code(text)?.version() {
        qrcode::Version::Normal(v) | qrcode::Version::Micro(v) => Ok(v),
    }
}

/// The QR code drawn with Unicode half blocks, dark on light, plus the text and manual code.
pub fn terminal(payload: &OnboardingPayload) -> Result<String, CliError> {
    let text = payload.encode();
    let drawing = code(&text)?
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build();
    Ok(format!(
        "{drawing}\n{}\n  payload:     {text}\n  manual code: {}\n",
        payload.registration_id,
        payload.manual_code().encode()
    ))
}

/// An SVG document of the QR code.
pub fn svg(text: &str) -> Result<String, CliError> {
    Ok(code(text)?
        .render::<svg::Color<'_>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build())
}

/// A grayscale PNG of the QR code, `scale` pixels per module.
pub fn png(text: &str, scale: u32) -> Result<Vec<u8>, CliError> {
    let code = code(text)?;
    let modules = code.width();
    let colors = code.to_colors();
    let scale = usize::try_from(scale.max(1)).unwrap_or(1);
    let side = (modules + 2 * QUIET_ZONE) * scale;
    let mut pixels = vec![255u8; side * side];
    for (index, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (x, y) = (index % modules + QUIET_ZONE, index / modules + QUIET_ZONE);
        for row in y * scale..(y + 1) * scale {
            let start = row * side + x * scale;
            pixels[start..start + scale].fill(0);
        }
    }
    let fail = |error: png::EncodingError| CliError::internal(format!("PNG encoding: {error}"));
    let side = u32::try_from(side).map_err(|_| CliError::internal("label image too large"))?;
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(fail)?;
        writer.write_image_data(&pixels).map_err(fail)?;
        writer.finish().map_err(fail)?;
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use fieldlink_protocol::payload::PopSecret;

    use super::*;

    fn payload(id: &str) -> OnboardingPayload {
        OnboardingPayload::new(id.to_owned(), PopSecret::from_bytes([9; 11]), 0xabc, 7).unwrap()
    }

    #[test]
    fn long_registration_ids_still_fit_version_6() {
        let id = format!("{}-x", "a".repeat(78));
        assert_eq!(id.len(), 80);
        assert!(version(&payload(&id).encode()).unwrap() <= 6);
    }

    #[test]
    fn renders_terminal_svg_and_a_decodable_png_header() {
        let label = payload("sensor-1");
        let text = terminal(&label).unwrap();
        assert!(text.contains("sensor-1"));
        assert!(text.contains(&label.encode()));
        assert!(text.contains('▀') || text.contains('▄') || text.contains('█'));
        assert!(svg(&label.encode()).unwrap().starts_with("<?xml"));
        let image = png(&label.encode(), 4).unwrap();
        assert_eq!(&image[1..4], b"PNG");
        let decoder = png::Decoder::new(std::io::Cursor::new(image));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!(info.width, info.height);
        assert_eq!(info.width % 4, 0);
    }
}

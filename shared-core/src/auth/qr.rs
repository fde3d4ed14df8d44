//! The verification URI as a QR code drawn with Unicode half blocks, for terminals.

use qrcode::{EcLevel, QrCode, render::unicode::Dense1x2};

/// `text` as a terminal QR code (two modules per character cell, quiet zone included), or
/// `None` if it does not fit a QR code.
pub fn terminal_qr(text: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_block_characters() {
        let qr = terminal_qr("https://sandbox.example/device?user_code=BCDF-GHJK").expect("fits");
        assert!(qr.lines().count() > 10);
        assert!(qr.contains('█') || qr.contains('▀') || qr.contains('▄'));
        assert!(terminal_qr(&"x".repeat(5000)).is_none());
    }
}

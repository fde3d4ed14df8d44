//! Bluetooth UUID text forms as platforms print them.

/// The Bluetooth base UUID `0000xxxx-0000-1000-8000-00805f9b34fb` with zero in the short part.
const BASE_UUID: u128 = 0x0000_0000_0000_1000_8000_0080_5f9b_34fb;

/// Parses a UUID as a platform prints it: 128-bit with or without dashes, or the 16-bit
/// (`"464C"`) and 32-bit short forms iOS uses for SIG-assigned UUIDs. Any case.
pub(crate) fn parse(text: &str) -> Option<u128> {
    let hex: String = text.trim().chars().filter(|c| *c != '-').collect();
    if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    match hex.len() {
        4 | 8 => u128::from_str_radix(&hex, 16)
            .ok()
            .map(|short| BASE_UUID | (short << 96)),
        32 => u128::from_str_radix(&hex, 16).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use fieldlink_protocol::gatt;

    use super::*;

    #[test]
    fn parses_every_platform_form() {
        assert_eq!(parse(gatt::SERVICE_UUID_STR), Some(gatt::SERVICE_UUID));
        assert_eq!(
            parse(&gatt::SERVICE_UUID_STR.to_uppercase()),
            Some(gatt::SERVICE_UUID)
        );
        assert_eq!(
            parse(&gatt::SERVICE_UUID_STR.replace('-', "")),
            Some(gatt::SERVICE_UUID)
        );
        assert_eq!(parse("464C"), Some(gatt::SERVICE_DATA_UUID));
        assert_eq!(parse("0000464c"), Some(gatt::SERVICE_DATA_UUID));
        assert_eq!(
            parse("0000464c-0000-1000-8000-00805f9b34fb"),
            Some(gatt::SERVICE_DATA_UUID)
        );
    }

    #[test]
    fn rejects_garbage() {
        for text in [
            "",
            "xyz",
            "464",
            "+464",
            "4e440001-9ed1-4205-9301-1ce0dbed452",
            "g64c",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }
}

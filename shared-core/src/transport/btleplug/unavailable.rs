//! Why Bluetooth cannot be used, with stable codes, and how platform errors map to
//! [`TransportError`].

use std::fmt;

use crate::transport::TransportError;

/// Why the installer's Bluetooth cannot be used. Carried by [`TransportError::Unavailable`] as
/// `"<code>: <advice>"`, so the public `bluetooth_unavailable` error names the cause;
/// [`Unavailability::of`] reads it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unavailability {
    /// No Bluetooth stack answers: on Linux, no system D-Bus or no `org.bluez` on it.
    NoBluez,
    /// The stack has no adapter (or none with the requested name).
    NoAdapter,
    /// The adapter exists but is powered off (or rfkill-blocked).
    BluetoothOff,
    /// The OS refused access (macOS/iOS/Android permission, Linux D-Bus policy).
    PermissionDenied,
}

impl Unavailability {
    /// Every cause, for tests and docs.
    pub const ALL: [Self; 4] = [
        Self::NoBluez,
        Self::NoAdapter,
        Self::BluetoothOff,
        Self::PermissionDenied,
    ];

    /// Stable snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            Self::NoBluez => "no_bluez",
            Self::NoAdapter => "no_adapter",
            Self::BluetoothOff => "bluetooth_off",
            Self::PermissionDenied => "bluetooth_permission_denied",
        }
    }

    /// What the installer should do about it.
    pub fn advice(self) -> &'static str {
        match self {
            Self::NoBluez => {
                "the Bluetooth service is not running: on Linux install BlueZ and start it \
                 (`systemctl start bluetooth`); in a container, share the host's system D-Bus"
            }
            Self::NoAdapter => "no Bluetooth adapter found: plug one in or enable it",
            Self::BluetoothOff => {
                "the Bluetooth adapter is off: turn it on (`bluetoothctl power on`, \
                 `rfkill unblock bluetooth`, or the system settings)"
            }
            Self::PermissionDenied => {
                "the system denied Bluetooth access: grant this app the Bluetooth permission"
            }
        }
    }

    /// The transport error for this cause, with `detail` (what the platform said).
    pub fn error(self, detail: impl fmt::Display) -> TransportError {
        TransportError::Unavailable(format!("{}: {} ({detail})", self.code(), self.advice()))
    }

    /// The cause carried by `error`, if it is an [`TransportError::Unavailable`] built by
    /// [`error`](Self::error).
    pub fn of(error: &TransportError) -> Option<Self> {
        let TransportError::Unavailable(text) = error else {
            return None;
        };
        let code = text.split(':').next()?;
        Self::ALL.into_iter().find(|cause| cause.code() == code)
    }
}

impl fmt::Display for Unavailability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Whether a platform error text means "no Bluetooth stack on the bus".
fn names_missing_stack(text: &str) -> bool {
    const SIGNS: [&str; 5] = [
        "org.bluez was not provided",
        "ServiceUnknown",
        "system_bus_socket",
        "Failed to connect to socket",
        "Could not connect",
    ];
    SIGNS.iter().any(|sign| text.contains(sign))
}

/// Maps an adapter-level btleplug failure (manager, adapter list, scan) during `what`.
pub(super) fn adapter_error(error: ::btleplug::Error, what: &str) -> TransportError {
    use ::btleplug::Error;
    match error {
        Error::PermissionDenied => Unavailability::PermissionDenied.error(what),
        Error::NoAdapterAvailable => Unavailability::NoAdapter.error(what),
        Error::TimedOut(_) => TransportError::Timeout,
        other => {
            let text = other.to_string();
            if names_missing_stack(&text) {
                Unavailability::NoBluez.error(format!("{what}: {text}"))
            } else {
                TransportError::Platform(format!("{what}: {text}"))
            }
        }
    }
}

/// Maps a failure on an open link during `what`: the link is unusable either way, so anything
/// but a timeout is [`TransportError::Disconnected`] (logged with the platform's words).
pub(super) fn link_error(error: ::btleplug::Error, what: &str) -> TransportError {
    match error {
        ::btleplug::Error::TimedOut(_) => TransportError::Timeout,
        other => {
            tracing::debug!(%other, what, "BLE link operation failed");
            TransportError::Disconnected
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_round_trip_through_the_transport_error() {
        let mut codes: Vec<_> = Unavailability::ALL.iter().map(|c| c.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Unavailability::ALL.len());
        for cause in Unavailability::ALL {
            let error = cause.error("platform words");
            assert_eq!(Unavailability::of(&error), Some(cause));
            let text = error.to_string();
            assert!(
                text.contains(cause.code()) && text.contains("platform words"),
                "{text}"
            );
        }
        assert_eq!(Unavailability::of(&TransportError::Timeout), None);
        assert_eq!(
            Unavailability::of(&TransportError::Unavailable("something else".into())),
            None
        );
    }

    #[test]
    fn missing_system_bus_and_missing_bluez_are_no_bluez() {
        for text in [
            "Failed to connect to socket /run/dbus/system_bus_socket: No such file or directory",
            "The name org.bluez was not provided by any .service files",
        ] {
            let error = adapter_error(::btleplug::Error::Other(text.into()), "listing adapters");
            assert_eq!(
                Unavailability::of(&error),
                Some(Unavailability::NoBluez),
                "{error}"
            );
        }
    }

    #[test]
    fn other_adapter_failures_stay_platform_errors() {
        let error = adapter_error(
            ::btleplug::Error::Other("Operation already in progress".into()),
            "scan",
        );
        assert_eq!(
            error,
            TransportError::Platform("scan: Operation already in progress".into())
        );
        assert_eq!(
            Unavailability::of(&adapter_error(::btleplug::Error::PermissionDenied, "scan")),
            Some(Unavailability::PermissionDenied)
        );
        assert_eq!(
            adapter_error(
                ::btleplug::Error::TimedOut(std::time::Duration::from_secs(1)),
                "scan"
            ),
            TransportError::Timeout
        );
    }

    #[test]
    fn link_failures_are_disconnects_except_timeouts() {
        assert_eq!(
            link_error(::btleplug::Error::NotConnected, "write"),
            TransportError::Disconnected
        );
        assert_eq!(
            link_error(
                ::btleplug::Error::Other("org.bluez.Error.Failed".into()),
                "write"
            ),
            TransportError::Disconnected
        );
        assert_eq!(
            link_error(
                ::btleplug::Error::TimedOut(std::time::Duration::from_secs(1)),
                "write"
            ),
            TransportError::Timeout
        );
    }
}

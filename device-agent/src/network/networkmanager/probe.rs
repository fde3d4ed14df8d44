//! DPS reachability: the last join stage, once the device is online.

use std::time::Duration;

use async_trait::async_trait;

/// Checks that the DPS endpoint answers once the device is online.
#[async_trait]
pub trait ReachabilityProbe: Send + Sync {
    /// Reaches `host` (`name`, `name:port`, `[v6]:port`) within `timeout`.
    async fn reach(&self, host: &str, timeout: Duration) -> Result<(), String>;
}

/// Opens a TCP connection to the host (port 443 unless the host names one).
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpProbe;

#[async_trait]
impl ReachabilityProbe for TcpProbe {
    async fn reach(&self, host: &str, timeout: Duration) -> Result<(), String> {
        let target = with_default_port(host, 443);
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&target)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(format!("{target}: {error}")),
            Err(_) => Err(format!("{target}: no answer within {timeout:?}")),
        }
    }
}

/// `host` with `:port` unless it has one (`[::1]:8443`, `dps:8443`).
fn with_default_port(host: &str, port: u16) -> String {
    let has_port = match host.rsplit_once(':') {
        Some((name, digits)) => {
            !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (!name.contains(':') || name.ends_with(']'))
        }
        None => false,
    };
    if has_port {
        host.to_owned()
    } else if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_targets_get_a_default_port() {
        assert_eq!(with_default_port("dps.example", 443), "dps.example:443");
        assert_eq!(with_default_port("127.0.0.1:8443", 443), "127.0.0.1:8443");
        assert_eq!(with_default_port("[::1]:8443", 443), "[::1]:8443");
        assert_eq!(with_default_port("::1", 443), "[::1]:443");
        assert_eq!(with_default_port("[::1]", 443), "[::1]:443");
    }

    #[tokio::test]
    async fn the_tcp_probe_reaches_a_listener_and_reports_a_closed_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap().to_string();
        TcpProbe.reach(&open, Duration::from_secs(2)).await.unwrap();
        drop(listener);
        let error = TcpProbe
            .reach(&open, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(error.starts_with(&open), "{error}");
    }
}

//! Redirect-URI matching: exact for everything except loopback redirects, whose port may vary
//! (RFC 8252 §7.3: native apps listen on an ephemeral port).

use std::net::IpAddr;

use url::{Host, Url};

/// Whether `url` is `http` to a loopback IP literal (`127.0.0.0/8` or `::1`). `localhost` is not
/// accepted (RFC 8252 §8.3: it may resolve elsewhere).
pub fn is_loopback(url: &Url) -> bool {
    url.scheme() == "http"
        && match url.host() {
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            _ => false,
        }
}

/// Whether `requested` matches one of the `registered` redirect URIs.
pub fn is_registered(registered: &[String], requested: &str) -> bool {
    let Ok(asked) = Url::parse(requested) else {
        return false;
    };
    if asked.fragment().is_some() {
        return false;
    }
    registered.iter().any(|candidate| {
        if candidate == requested {
            return true;
        }
        let Ok(reg) = Url::parse(candidate) else {
            return false;
        };
        is_loopback(&reg)
            && is_loopback(&asked)
            && reg.host() == asked.host()
            && reg.path() == asked.path()
            && reg.query() == asked.query()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered() -> Vec<String> {
        vec![
            "http://127.0.0.1/callback".to_owned(),
            "http://[::1]/callback".to_owned(),
            "com.example.fieldlink:/oauth2redirect".to_owned(),
            "https://app.example/cb".to_owned(),
        ]
    }

    #[test]
    fn loopback_any_port_same_path() {
        let r = registered();
        assert!(is_registered(&r, "http://127.0.0.1:53117/callback"));
        assert!(is_registered(&r, "http://127.0.0.1/callback"));
        assert!(is_registered(&r, "http://[::1]:4000/callback"));
        assert!(!is_registered(&r, "http://127.0.0.1:53117/other"));
        assert!(!is_registered(&r, "http://localhost:53117/callback"));
        assert!(!is_registered(&r, "http://127.0.0.1:53117/callback?x=1"));
        assert!(!is_registered(&r, "http://127.0.0.1:53117/callback#frag"));
    }

    #[test]
    fn everything_else_is_exact() {
        let r = registered();
        assert!(is_registered(&r, "com.example.fieldlink:/oauth2redirect"));
        assert!(!is_registered(&r, "com.example.fieldlink:/oauth2redirect2"));
        assert!(!is_registered(&r, "com.evil:/oauth2redirect"));
        assert!(is_registered(&r, "https://app.example/cb"));
        assert!(!is_registered(&r, "https://app.example:8443/cb"));
        assert!(!is_registered(&r, "https://app.example/cb/../x"));
        assert!(!is_registered(&r, "not a url"));
    }
}

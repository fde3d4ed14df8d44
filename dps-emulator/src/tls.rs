//! A private CA and server certificates (rcgen), and the rustls server configuration (ring).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::fmt;
use std::sync::Arc;

/// Why certificates or the TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen refused the parameters or key.
    #[error("certificate generation failed: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the certificate or key.
    #[error("TLS configuration failed: {0}")]
    Rustls(#[from] rustls::Error),
    /// No DNS name or IP address was given for the server certificate.
    #[error("the server certificate needs at least one DNS name or IP address")]
    NoNames,
}

/// The common name of the emulator's own CA ([`CertificateAuthority::generate`] and
/// [`CertificateAuthority::from_key_pem`]); a CA shared with other services can carry another
/// name ([`CertificateAuthority::generate_named`], [`CertificateAuthority::from_key_pem_named`]).
pub const CA_COMMON_NAME: &str = "fieldlink DPS emulator CA";

/// A private certificate authority. `Debug` hides the key.
pub struct CertificateAuthority {
    certificate: rcgen::Certificate,
    key: KeyPair,
    common_name: String,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("common_name", &self.common_name)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl CertificateAuthority {
    /// A new CA named [`CA_COMMON_NAME`] with a fresh P-256 key.
    pub fn generate() -> Result<Self, TlsError> {
        Self::generate_named(CA_COMMON_NAME)
    }

    /// A new CA with a fresh P-256 key and `common_name` as its subject's CN.
    pub fn generate_named(common_name: &str) -> Result<Self, TlsError> {
        Self::with_key(KeyPair::generate()?, common_name)
    }

    /// The CA named [`CA_COMMON_NAME`] for an existing PEM key (see
    /// [`CertificateAuthority::from_key_pem_named`]).
    pub fn from_key_pem(key_pem: &str) -> Result<Self, TlsError> {
        Self::from_key_pem_named(key_pem, CA_COMMON_NAME)
    }

    /// The CA for an existing PEM key and name. The same key and name give the same CA
    /// subject, key and key identifier, so certificates issued now chain to a CA certificate
    /// saved earlier (a different name gives a CA that certificate does not vouch for).
    pub fn from_key_pem_named(key_pem: &str, common_name: &str) -> Result<Self, TlsError> {
        Self::with_key(KeyPair::from_pem(key_pem)?, common_name)
    }

    fn with_key(key: KeyPair, common_name: &str) -> Result<Self, TlsError> {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, common_name);
        name.push(DnType::OrganizationName, "fieldlink");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let certificate = params.self_signed(&key)?;
        Ok(Self {
            certificate,
            key,
            common_name: common_name.to_owned(),
        })
    }

    /// The CA's common name (what [`CertificateAuthority::from_key_pem_named`] needs besides
    /// the key to re-create it).
    pub fn common_name(&self) -> &str {
        &self.common_name
    }

    /// The CA certificate, PEM (what clients trust).
    pub fn cert_pem(&self) -> String {
        self.certificate.pem()
    }

    /// The CA private key, PEM (keep it to re-create the CA; it is a secret).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Issues a server certificate for DNS names and/or IP addresses (an entry that parses as
    /// an IP address becomes an IP SAN; `*.example.net` wildcards are allowed).
    pub fn issue_server_certificate(
        &self,
        names: &[String],
    ) -> Result<ServerCertificate, TlsError> {
        let first = names.first().ok_or(TlsError::NoNames)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.to_vec())?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, first.as_str());
        params.distinguished_name = name;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let certificate = params.signed_by(&key, &self.certificate, &self.key)?;
        Ok(ServerCertificate {
            cert_pem: certificate.pem(),
            cert_der: certificate.der().clone(),
            key_der: key.serialize_der(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A server certificate and its key. `Debug` hides the key.
#[derive(Clone)]
pub struct ServerCertificate {
    /// The certificate, PEM.
    pub cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
    key_pem: String,
}

impl fmt::Debug for ServerCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCertificate")
            .field("key", &"<redacted>")
            .finish()
    }
}

impl ServerCertificate {
    /// The private key, PEM (PKCS#8; a secret: for servers that load their key from a file).
    pub fn key_pem(&self) -> String {
        self.key_pem.clone()
    }

    /// A rustls server configuration (ring provider, TLS 1.2 and 1.3, ALPN h2 and http/1.1).
    pub fn rustls_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert_der.clone()], key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_a_usable_server_certificate() {
        let ca = CertificateAuthority::generate().unwrap();
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let server = ca
            .issue_server_certificate(&[
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                "*.azure-devices-provisioning.net".to_owned(),
            ])
            .unwrap();
        server.rustls_config().unwrap();
        assert!(!format!("{server:?}{ca:?}").contains("PRIVATE"));
    }

    fn verifies(trusted_ca: &CertificateAuthority, server: &ServerCertificate, host: &str) -> bool {
        use rustls::client::WebPkiServerVerifier;
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::{ServerName, UnixTime};
        let mut roots = rustls::RootCertStore::empty();
        roots.add(trusted_ca.certificate.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        verifier
            .verify_server_cert(
                &server.cert_der,
                &[],
                &ServerName::try_from(host.to_owned()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .is_ok()
    }

    #[test]
    fn a_ca_re_created_from_its_key_issues_certificates_the_old_ca_certificate_trusts() {
        let original = CertificateAuthority::generate().unwrap();
        let recreated = CertificateAuthority::from_key_pem(&original.key_pem()).unwrap();
        let server = recreated
            .issue_server_certificate(&["localhost".to_owned()])
            .unwrap();
        assert!(verifies(&original, &server, "localhost"));
        assert!(!verifies(&original, &server, "example.net"));
        let wildcard = recreated
            .issue_server_certificate(&["*.azure-devices-provisioning.net".to_owned()])
            .unwrap();
        assert!(verifies(
            &original,
            &wildcard,
            "dps-1.azure-devices-provisioning.net"
        ));
        let stranger = CertificateAuthority::generate().unwrap();
        assert!(!verifies(&stranger, &server, "localhost"));
    }

    #[test]
    fn a_named_ca_re_created_from_its_key_keeps_its_name() {
        let original = CertificateAuthority::generate_named("fieldlink sandbox CA").unwrap();
        let recreated =
            CertificateAuthority::from_key_pem_named(&original.key_pem(), "fieldlink sandbox CA")
                .unwrap();
        let server = recreated
            .issue_server_certificate(&["localhost".to_owned()])
            .unwrap();
        assert!(verifies(&original, &server, "localhost"));
        // The default name would make an issuer the saved CA certificate does not match.
        let renamed = CertificateAuthority::from_key_pem(&original.key_pem()).unwrap();
        let server = renamed
            .issue_server_certificate(&["localhost".to_owned()])
            .unwrap();
        assert!(!verifies(&original, &server, "localhost"));
    }

    #[test]
    fn the_common_name_is_the_one_asked_for() {
        let named = CertificateAuthority::generate_named("fieldlink sandbox CA").unwrap();
        let subject = |ca: &CertificateAuthority| {
            let name = &ca.certificate.params().distinguished_name;
            match name.get(&DnType::CommonName) {
                Some(rcgen::DnValue::Utf8String(cn)) => cn.clone(),
                other => panic!("unexpected CN {other:?}"),
            }
        };
        assert_eq!(subject(&named), "fieldlink sandbox CA");
        assert_eq!(named.common_name(), "fieldlink sandbox CA");
        let default = CertificateAuthority::generate().unwrap();
        assert_eq!(subject(&default), CA_COMMON_NAME);
        assert_eq!(default.common_name(), CA_COMMON_NAME);
    }

    #[test]
    fn a_certificate_needs_a_name() {
        let ca = CertificateAuthority::generate().unwrap();
        assert!(matches!(
            ca.issue_server_certificate(&[]),
            Err(TlsError::NoNames)
        ));
    }
}

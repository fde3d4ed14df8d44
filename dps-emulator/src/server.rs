//! Starting and stopping the emulator's listeners.

use axum::ServiceExt as _;
use hyper::body as hyper_body;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::EmulatorConfig;
use crate::control::EmulatorControl;
use crate::http::app;
use crate::instance::InstanceError;
use crate::tls::{CertificateAuthority, TlsError};

/// How long [`RunningEmulator::shutdown`] waits for in-flight requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Certificates or the TLS configuration failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// An instance in the configuration is invalid.
    #[error(transparent)]
    Instance(#[from] InstanceError),
    /// Neither HTTP nor HTTPS was configured.
    #[error("no listener configured: set httpBind and/or tls")]
    NoListener,
}

/// The HTTPS side of a running emulator.
#[derive(Clone)]
pub struct HttpsEndpoint {
    /// Bound address.
    pub addr: SocketAddr,
    /// The host name clients should use (the first certificate name).
    pub host: String,
    /// The CA certificate clients must trust, PEM.
    pub ca_pem: String,
    /// The CA private key, PEM (to re-create the same CA on a later run).
    ca_key_pem: String,
}

impl fmt::Debug for HttpsEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpsEndpoint")
            .field("addr", &self.addr)
            .field("host", &self.host)
            .field("ca_key_pem", &"<redacted>")
            .finish()
    }
}

impl HttpsEndpoint {
    /// `https://{host}:{port}`.
    pub fn base_url(&self) -> String {
        format!("https://{}:{}", self.host, self.addr.port())
    }

    /// The CA private key, PEM (a secret; pass it back as `TlsOptions::ca_key_pem`).
    pub fn ca_key_pem(&self) -> &str {
        &self.ca_key_pem
    }
}

/// Entry point.
#[derive(Debug)]
pub struct DpsEmulator;

impl DpsEmulator {
    /// Creates the configured instances and starts the listeners.
    pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, StartError> {
        Self::start_with(EmulatorControl::new(), config).await
    }

    /// Like [`DpsEmulator::start`], on an existing state (e.g. to serve it on more listeners).
    pub async fn start_with(
        control: EmulatorControl,
        config: EmulatorConfig,
    ) -> Result<RunningEmulator, StartError> {
        if config.http_bind.is_none() && config.tls.is_none() {
            return Err(StartError::NoListener);
        }
        for instance in config.instances {
            control.add_instance(instance)?;
        }
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();

        let mut http_addr = None;
        if let Some(addr) = config.http_bind {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| StartError::Bind { addr, source })?;
            http_addr = Some(bound);
            let service = app(control.clone()).into_make_service();
            let mut stopped = stopped.clone();
            tasks.push(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                };
                if let Err(err) = axum::serve(listener, service)
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    tracing::error!(%err, "DPS emulator HTTP listener failed");
                }
            }));
        }

        let mut https = None;
        if let Some(tls) = config.tls {
            let ca = match &tls.ca_key_pem {
                Some(key) => CertificateAuthority::from_key_pem_named(key, &tls.ca_common_name)?,
                None => CertificateAuthority::generate_named(&tls.ca_common_name)?,
            };
            let certificate = ca.issue_server_certificate(&tls.names)?;
            let rustls_config =
                axum_server::tls_rustls::RustlsConfig::from_config(certificate.rustls_config()?);
            let addr = tls.bind;
            let listener = std::net::TcpListener::bind(addr)
                .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
                .map_err(|source| StartError::Bind { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| StartError::Bind { addr, source })?;
            let handle = axum_server::Handle::new();
            // TCP_NODELAY on every accepted connection: without it a small response written
            // after the TLS handshake waits for the client's delayed ACK (about 40 ms on Linux).
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(rustls_config)
                .acceptor(axum_server::accept::NoDelayAcceptor::new());
            let server = axum_server::from_tcp(listener)
                .acceptor(acceptor)
                .handle(handle.clone());
            let service = tower::ServiceBuilder::new()
                .map_request(|request: http::Request<hyper_body::Incoming>| {
                    request.map(axum::body::Body::new)
                })
                .service(app(control.clone()))
                .into_make_service();
            let mut stopped = stopped.clone();
            tasks.push(tokio::spawn(async move {
                let stop_watcher = tokio::spawn(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                    handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
                });
                if let Err(err) = server.serve(service).await {
                    tracing::error!(%err, "DPS emulator HTTPS listener failed");
                }
                stop_watcher.abort();
            }));
            https = Some(HttpsEndpoint {
                addr: bound,
                host: tls
                    .names
                    .first()
                    .cloned()
                    .unwrap_or_else(|| bound.ip().to_string()),
                ca_pem: ca.cert_pem(),
                ca_key_pem: ca.key_pem(),
            });
        }
        Ok(RunningEmulator {
            control,
            http_addr,
            https,
            stop,
            tasks,
        })
    }
}

/// A running emulator. Dropping it stops the listeners; [`RunningEmulator::shutdown`] also
/// waits for them.
pub struct RunningEmulator {
    control: EmulatorControl,
    http_addr: Option<SocketAddr>,
    https: Option<HttpsEndpoint>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for RunningEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningEmulator")
            .field("http_addr", &self.http_addr)
            .field("https", &self.https)
            .finish()
    }
}

impl RunningEmulator {
    /// The state handle (instances, enrollments, registration states, metrics).
    pub fn control(&self) -> &EmulatorControl {
        &self.control
    }

    /// The plain-HTTP address, if enabled.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// `http://127.0.0.1:{port}`, if plain HTTP is enabled.
    pub fn http_base_url(&self) -> Option<String> {
        self.http_addr.map(|addr| format!("http://{addr}"))
    }

    /// The HTTPS endpoint, if enabled.
    pub fn https(&self) -> Option<&HttpsEndpoint> {
        self.https.as_ref()
    }

    /// `https://{host}:{port}`, if HTTPS is enabled.
    pub fn https_base_url(&self) -> Option<String> {
        self.https.as_ref().map(HttpsEndpoint::base_url)
    }

    /// The CA certificate to trust, PEM, if HTTPS is enabled.
    pub fn ca_pem(&self) -> Option<&str> {
        self.https.as_ref().map(|https| https.ca_pem.as_str())
    }

    /// The base URL devices should use: HTTPS when enabled, else plain HTTP.
    pub fn base_url(&self) -> String {
        self.https_base_url()
            .or_else(|| self.http_base_url())
            .unwrap_or_default()
    }

    /// The "global endpoint" to hand devices (`host:port` of [`RunningEmulator::base_url`]).
    pub fn global_endpoint(&self) -> String {
        let url = self.base_url();
        url.split_once("://")
            .map(|(_, rest)| rest.to_owned())
            .unwrap_or(url)
    }

    /// Stops the listeners and waits (at most [`SHUTDOWN_GRACE`] plus a second) for them.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut self.tasks);
        let wait = futures_join(tasks);
        if tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), wait)
            .await
            .is_err()
        {
            tracing::warn!("DPS emulator listeners did not stop in time; abandoning them");
        }
    }
}

async fn futures_join(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

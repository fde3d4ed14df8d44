//! Assembling and running the API in-process: [`ProvisioningApi::builder`] →
//! [`ProvisioningApi::router`] (mount it yourself), [`ProvisioningApi::serve`] (plain HTTP, own
//! task on a listener) or [`ProvisioningApi::serve_tls`] (HTTPS with a rustls configuration).
//! [`serve_router_tls`] serves any router over HTTPS the same way (the sandbox issuer on a
//! listener of its own).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::Router;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::{
    auth::Authenticator,
    clock::{Clock, SystemClock},
    config::ApiConfig,
    dps::{DpsServiceClient, http::HttpDpsServiceClient, status::RegistrationStatus},
    http::{self, ApiState, Shared},
    issuer::Issuer,
    metrics::Metrics,
    storage::{PoolError, Storage, StorageError},
    ticketing::TicketKeyring,
};

/// How often expired idempotency records are purged.
const PURGE_EVERY: Duration = Duration::from_secs(600);
/// How long a stopping server lets in-flight requests finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A configured pool instance could not be added.
    #[error("cannot seed DPS instance {name:?}: {source}")]
    Seed {
        /// Instance name.
        name: String,
        /// Why.
        source: PoolError,
    },
    /// Binding or serving failed.
    #[error("cannot serve: {0}")]
    Io(#[from] std::io::Error),
}

/// Builds a [`ProvisioningApi`].
pub struct ApiBuilder {
    config: ApiConfig,
    storage: Arc<dyn Storage>,
    dps: Option<Arc<dyn DpsServiceClient>>,
    clock: Arc<dyn Clock>,
    issuer: Option<Issuer>,
}

impl std::fmt::Debug for ApiBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ApiBuilder {
    /// Uses `client` for DPS service API calls (default: HTTPS with the system roots).
    pub fn dps_client(mut self, client: Arc<dyn DpsServiceClient>) -> Self {
        self.dps = Some(client);
        self
    }

    /// Uses `clock` instead of the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Also serves the sandbox OIDC issuer's routes and trusts its tokens (its live key set,
    /// so key rotation is seen at once).
    pub fn issuer(mut self, issuer: Issuer) -> Self {
        self.config.issuers.push(issuer.trusted_issuer());
        self.issuer = Some(issuer);
        self
    }

    /// Opens the ticket keyring (creating the first key if needed) and seeds the pool.
    pub async fn build(self) -> Result<ProvisioningApi, StartError> {
        let Self {
            config,
            storage,
            dps,
            clock,
            issuer,
        } = self;
        for spec in &config.dps_pool {
            if storage.instance(&spec.name).await?.is_none() {
                match storage.add_instance(spec.clone(), clock.now_ms()).await {
                    Ok(_) | Err(PoolError::AlreadyExists) => {}
                    Err(source) => {
                        return Err(StartError::Seed {
                            name: spec.name.clone(),
                            source,
                        });
                    }
                }
            }
        }
        let dps = match dps {
            Some(client) => client,
            None => Arc::new(HttpDpsServiceClient::new(
                reqwest::Client::builder()
                    .use_rustls_tls()
                    .build()
                    .map_err(|e| std::io::Error::other(format!("HTTP client: {e}")))?,
                Duration::from_secs(5),
            )),
        };
        let keyring = TicketKeyring::open(storage.clone(), clock.clone()).await?;
        let shared = Shared {
            auth: Authenticator::new(config.issuers.clone(), config.token_leeway_s),
            status: RegistrationStatus::new(dps, clock.clone(), config.registration_status),
            metrics: Metrics::default(),
            storage,
            clock,
            keyring,
            config,
        };
        Ok(ProvisioningApi {
            state: ApiState {
                shared: Arc::new(shared),
            },
            issuer,
        })
    }
}

/// The provisioning API, assembled.
#[derive(Debug, Clone)]
pub struct ProvisioningApi {
    state: ApiState,
    issuer: Option<Issuer>,
}

impl ProvisioningApi {
    /// Starts building an API over `storage` with `config`.
    pub fn builder(config: ApiConfig, storage: Arc<dyn Storage>) -> ApiBuilder {
        ApiBuilder {
            config,
            storage,
            dps: None,
            clock: Arc::new(SystemClock),
            issuer: None,
        }
    }

    /// The axum router (all routes, middleware and state).
    pub fn router(&self) -> Router {
        let router = http::router(self.state.clone());
        match &self.issuer {
            Some(issuer) => router.merge(issuer.router()),
            None => router,
        }
    }

    /// The storage it uses (seeding allowlists and pools in tests and sandboxes).
    pub fn storage(&self) -> Arc<dyn Storage> {
        self.state.shared.storage.clone()
    }

    /// The background task that purges expired idempotency records.
    fn spawn_purge(&self) -> JoinHandle<()> {
        let purge_state = self.state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PURGE_EVERY);
            loop {
                tick.tick().await;
                let shared = &purge_state.shared;
                if let Err(error) = shared
                    .storage
                    .purge_idempotency_keys(shared.clock.now_ms())
                    .await
                {
                    tracing::warn!(%error, "could not purge idempotency keys");
                }
            }
        })
    }

    /// Serves plain HTTP on `listener` in a background task until [`RunningApi::shutdown`].
    /// Meant for loopback (tests, a local sandbox behind TLS elsewhere); anything reachable from
    /// the network should use [`ProvisioningApi::serve_tls`].
    pub async fn serve(self, listener: TcpListener) -> Result<RunningApi, StartError> {
        let addr = listener.local_addr()?;
        let router = self.router();
        let (stop, stopped) = oneshot::channel::<()>();
        let purge = self.spawn_purge();
        let task = tokio::spawn(async move {
            let result = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            purge.abort();
            result
        });
        Ok(RunningApi {
            addr,
            scheme: "http",
            stop: Some(stop),
            task,
        })
    }

    /// Binds `addr` (use port 0 for an ephemeral port) and serves plain HTTP.
    pub async fn bind(self, addr: SocketAddr) -> Result<RunningApi, StartError> {
        let listener = TcpListener::bind(addr).await?;
        self.serve(listener).await
    }

    /// Serves HTTPS on `listener` with `tls` (a rustls server configuration, e.g. from
    /// [`crate::settings::TlsSettings::rustls_config`]) until [`RunningApi::shutdown`]. The
    /// sandbox issuer's routes, when configured, are served on the same listener.
    pub async fn serve_tls(
        self,
        listener: std::net::TcpListener,
        tls: Arc<rustls::ServerConfig>,
    ) -> Result<RunningApi, StartError> {
        let purge = self.spawn_purge();
        spawn_tls(self.router(), listener, tls, Some(purge))
    }

    /// Binds `addr` (use port 0 for an ephemeral port) and serves HTTPS with `tls`.
    pub async fn bind_tls(
        self,
        addr: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
    ) -> Result<RunningApi, StartError> {
        let listener = std::net::TcpListener::bind(addr)?;
        self.serve_tls(listener, tls).await
    }
}

/// Serves `router` over HTTPS on `listener` with `tls` in a background task (no API state: the
/// sandbox issuer alone, for instance). Must be called inside a tokio runtime.
pub fn serve_router_tls(
    router: Router,
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
) -> Result<RunningApi, StartError> {
    spawn_tls(router, listener, tls, None)
}

/// The HTTPS server task; `companion` (the purge task) is stopped with it.
fn spawn_tls(
    router: Router,
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    companion: Option<JoinHandle<()>>,
) -> Result<RunningApi, StartError> {
    let prepared = listener
        .set_nonblocking(true)
        .and_then(|()| listener.local_addr());
    let addr = match prepared {
        Ok(addr) => addr,
        Err(error) => {
            if let Some(companion) = companion {
                companion.abort();
            }
            return Err(error.into());
        }
    };
    let handle = axum_server::Handle::new();
    // TCP_NODELAY on every accepted connection: without it a small response written after the
    // TLS handshake waits for the client's delayed ACK (about 40 ms on Linux).
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(
        axum_server::tls_rustls::RustlsConfig::from_config(tls),
    )
    .acceptor(axum_server::accept::NoDelayAcceptor::new());
    let server = axum_server::from_tcp(listener)
        .acceptor(acceptor)
        .handle(handle.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let watcher = tokio::spawn(async move {
            let _ = stopped.await;
            handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
        });
        let result = server.serve(router.into_make_service()).await;
        watcher.abort();
        if let Some(companion) = companion {
            companion.abort();
        }
        result
    });
    Ok(RunningApi {
        addr,
        scheme: "https",
        stop: Some(stop),
        task,
    })
}

/// A running API (or a router served by [`serve_router_tls`]).
#[derive(Debug)]
pub struct RunningApi {
    addr: SocketAddr,
    scheme: &'static str,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningApi {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}`, or `https://{addr}` when served with TLS.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.scheme == "https"
    }

    /// Stops accepting, lets in-flight requests finish (up to 10 s), and returns.
    pub async fn shutdown(mut self) -> Result<(), StartError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.task).await {
            Ok(Ok(result)) => Ok(result?),
            Ok(Err(join)) => Err(StartError::Io(std::io::Error::other(join.to_string()))),
            Err(_) => {
                self.task.abort();
                Ok(())
            }
        }
    }

    /// Waits until the server stops on its own (the binary's main loop).
    pub async fn wait(mut self) -> Result<(), StartError> {
        match (&mut self.task).await {
            Ok(result) => Ok(result?),
            Err(join) => Err(StartError::Io(std::io::Error::other(join.to_string()))),
        }
    }
}

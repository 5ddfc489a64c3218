//! The server: the engine behind the HTTP facade, with the optional metrics listener, the
//! scheduler (`[automation]`), a graceful drain and the shutdown snapshot. `roster serve` and the integration tests
//! both run it, so what the tests start is what operators start (mini-redis's
//! `server::run` is the shape).
//!
//! ```text
//! run(config, listener, shutdown) ─ opens ─▶ UserManager
//!   └─ Server::new(manager, listener) ─ binds server.metrics_listen, if set
//!        └─ run(shutdown): serve … shutdown fires → sockets told (1001), no new
//!           connections, requests in flight get engine.shutdown_timeout → snapshots
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::engine::{CloseCode, EngineError, UserManager};

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The engine failed to open (store, master key) or to shut down.
    #[error("opening the store in {dir}: {source}")]
    Open {
        /// The data directory.
        dir: PathBuf,
        /// What failed.
        source: EngineError,
    },
    /// The engine failed while stopping.
    #[error("shutting down: {0}")]
    Shutdown(EngineError),
    /// A socket could not be bound or served.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let what = what.into();
    move |source| ServerError::Io { what, source }
}

/// Opens the engine on `config`, serves it on `listener` until `shutdown` resolves, then
/// drains and snapshots. What `roster serve` runs.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let dir = config.store.data_dir.clone();
    // Opening reads the store and may migrate it: blocking work, off the runtime.
    let manager = tokio::task::spawn_blocking(move || UserManager::open(config))
        .await
        .map_err(|e| ServerError::Open {
            dir: dir.clone(),
            source: EngineError::Internal(e.to_string()),
        })?
        .map_err(|source| ServerError::Open { dir, source })?;
    Server::new(manager, listener).await?.run(shutdown).await
}

/// An opened engine with its listeners bound, ready to serve.
pub struct Server {
    manager: UserManager,
    listener: TcpListener,
    metrics: Option<TcpListener>,
}

impl Server {
    /// Binds the metrics listener of `server.metrics_listen`, if one is configured, beside
    /// `listener` for the API.
    pub async fn new(manager: UserManager, listener: TcpListener) -> Result<Self, ServerError> {
        let metrics = match manager.config().server.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(io(format!("binding server.metrics_listen {addr}")))?,
            ),
            None => None,
        };
        Ok(Self {
            manager,
            listener,
            metrics,
        })
    }

    /// Where the API listens.
    pub fn addr(&self) -> Result<SocketAddr, ServerError> {
        self.listener
            .local_addr()
            .map_err(io("reading the address"))
    }

    /// Where the metrics listener listens, if there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The engine served.
    pub fn manager(&self) -> &UserManager {
        &self.manager
    }

    /// Serves until `shutdown` resolves. Then the event sockets are told the server is
    /// going (1001), no new connection is accepted, requests in flight get
    /// `engine.shutdown_timeout` to finish, and every live user is snapshotted.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Self {
            manager,
            listener,
            metrics,
        } = self;
        let addr = listener.local_addr().map_err(io("reading the address"))?;
        let data_dir = manager.config().store.data_dir.display().to_string();
        tracing::info!(%addr, data_dir, users = manager.user_count(), "listening on {addr}");
        // The metrics listener stops with the server: it holds the engine too.
        let (stopping, mut stopped) = tokio::sync::watch::channel(false);
        let metrics = match metrics {
            Some(metrics) => {
                let maddr = metrics
                    .local_addr()
                    .map_err(io("reading the metrics address"))?;
                tracing::info!(%maddr, "metrics on http://{maddr}/metrics");
                let app = crate::api::metrics_app(manager.clone());
                Some(tokio::spawn(async move {
                    let until = async move {
                        let _ = stopped.changed().await;
                    };
                    if let Err(e) = axum::serve(metrics, app)
                        .with_graceful_shutdown(until)
                        .await
                    {
                        tracing::error!(error = %e, "metrics listener failed");
                    }
                }))
            }
            None => None,
        };
        // The scheduler stops when the shutdown signal comes, before the drain: a run in
        // progress is cut short and recorded as interrupted.
        let (scheduler_stop, mut scheduler_stopped) = tokio::sync::watch::channel(false);
        let scheduler = manager.config().automation.enabled.then(|| {
            let scheduler = crate::jobs::Scheduler::new(manager.clone());
            tokio::spawn(scheduler.run(async move {
                let _ = scheduler_stopped.changed().await;
            }))
        });
        // Federated rounds close at their deadlines; the task stops with the scheduler.
        let mut rounds_stopped = scheduler_stop.subscribe();
        let rounds = {
            let m = manager.clone();
            tokio::spawn(async move {
                m.personalization()
                    .run_federated_rounds(async move {
                        let _ = rounds_stopped.changed().await;
                    })
                    .await;
            })
        };
        let app = axum::ServiceExt::into_make_service_with_connect_info::<SocketAddr>(
            crate::api::app(manager.clone()),
        );
        let drain = manager.config().engine.shutdown_timeout;
        let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
        let realtime = std::sync::Arc::clone(manager.realtime());
        let served = axum::serve(listener, app).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = scheduler_stop.send(true);
            // Sockets are not requests: tell them (1001) instead of waiting for them.
            realtime.close_everything(CloseCode::ServerShutdown);
            tracing::info!(
                ?drain,
                "shutting down: no new connections, draining requests"
            );
            let _ = signalled_tx.send(());
        });
        // Requests in flight get `drain` to finish after the signal; then we stop
        // regardless.
        let deadline = async move {
            if signalled_rx.await.is_ok() {
                tokio::time::sleep(drain).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            served = served => served.map_err(io("serving"))?,
            () = deadline => tracing::warn!("drain timed out; closing remaining connections"),
        }
        let _ = stopping.send(true);
        if let Some(task) = metrics {
            let _ = task.await;
        }
        if let Some(task) = scheduler {
            let _ = task.await;
        }
        let _ = rounds.await;
        tracing::info!("writing snapshots");
        manager.shutdown().await.map_err(ServerError::Shutdown)?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn signalled() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

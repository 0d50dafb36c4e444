//! The application: builds every part from a [`Config`] and serves until shutdown.
//!
//! # Owns
//! Start-up order and shutdown order. [`run`] is what the binary calls and what tests call on a
//! port-0 listener: there is no test-only server path.
//!
//! # Guarantees
//! - The HTTP listener answers (`/-/healthy`) at once; `/-/ready` answers 503 until every queue is
//!   open (opening scans the newest chunk of each queue). A push that arrives meanwhile waits for
//!   the queues, up to [`ingest::OPEN_WAIT`], and is then queued as usual; only if they are still
//!   not open by then does it get 503 with `Retry-After`.
//! - Every request passes the listener first (TLS, basic auth, limits: the `listener` module);
//!   ingest requests also pass the bound on concurrent inserts.
//! - Shutdown: stop accepting, let requests in progress finish, stop the senders (a send in flight
//!   gets a few seconds), then flush every queue (fsync + position) before returning.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::admin::{self, StatusSource};
use crate::config::Config;
use crate::forward::{Fanout, ForwardError, StorageStatus};
use crate::ingest::{self, FanoutSlot, IngestState};
use crate::listener::{Listener, ListenerError, limit_inserts};
use crate::scrape::discovery::ProviderContext;
use crate::scrape::manager::{ReloadError, Scraper, ScraperError, TargetsView};
use crate::stats::{
    DiscoveryMetrics, DiscoverySnapshot, IngestMetrics, IngestSnapshot, ListenerMetrics,
    ListenerSnapshot,
};

/// Errors that stop the application.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A storage could not be opened (queue locked, directory not writable, bad TLS files).
    #[error(transparent)]
    Forward(#[from] ForwardError),
    /// The listener could not be set up (TLS settings rustls refuses).
    #[error(transparent)]
    Listener(#[from] ListenerError),
    /// The scraper could not start (bad `--scrape-config` file, TLS files).
    #[error(transparent)]
    Scrape(#[from] ScraperError),
    /// An internal task failed.
    #[error("{0}")]
    Task(String),
}

struct App {
    fanout: Arc<FanoutSlot>,
    metrics: Arc<IngestMetrics>,
    listener: Arc<ListenerMetrics>,
    discovery: Arc<DiscoveryMetrics>,
    scraper: OnceLock<Arc<Scraper>>,
}

impl StatusSource for App {
    fn storages(&self) -> Vec<StorageStatus> {
        self.fanout
            .get()
            .map(|f| f.storages().iter().map(|s| s.status()).collect())
            .unwrap_or_default()
    }

    fn ingest(&self) -> IngestSnapshot {
        self.metrics.snapshot()
    }

    fn listener(&self) -> ListenerSnapshot {
        self.listener.snapshot()
    }

    fn discovery(&self) -> DiscoverySnapshot {
        self.discovery.snapshot()
    }

    fn ready(&self) -> bool {
        self.fanout.get().is_some()
    }

    fn targets(&self) -> Option<Arc<TargetsView>> {
        self.scraper.get().map(|s| s.view())
    }

    fn reload(&self) -> Option<tokio::sync::oneshot::Receiver<Result<(), ReloadError>>> {
        let scraper = Arc::clone(self.scraper.get()?);
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let _ = tx.send(scraper.reload().await);
        });
        Some(rx)
    }
}

/// A translated OTLP push may be at most this many times `--max-request-bytes` (encoded):
/// ordinary pushes grow 2 to 3 times (every series repeats its labels), a histogram of thousands
/// of buckets far more.
const OTLP_MAX_GROWTH: usize = 4;

/// The OTLP translation settings the `otlp:` section asks for.
fn otlp_settings(
    cfg: &crate::config::OtlpConfig,
    max_request_bytes: usize,
) -> crate::otlp::Settings {
    use crate::config::OtlpTranslationStrategy as Strategy;
    let mut settings = crate::otlp::Settings {
        max_output_bytes: max_request_bytes.saturating_mul(OTLP_MAX_GROWTH),
        ..crate::otlp::Settings::default()
    };
    settings.namer.with_suffixes =
        cfg.translation_strategy == Strategy::UnderscoreEscapingWithSuffixes;
    settings
        .promote_resource_attributes
        .clone_from(&cfg.promote_resource_attributes);
    settings
}

/// Runs promrelay on `listener` until `shutdown` completes.
pub async fn run(
    cfg: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let app = Arc::new(App {
        fanout: Arc::new(FanoutSlot::default()),
        metrics: Arc::new(IngestMetrics::default()),
        listener: Arc::new(ListenerMetrics::default()),
        discovery: Arc::new(DiscoveryMetrics::default()),
        scraper: OnceLock::new(),
    });
    let listener_settings = cfg.listener.clone();
    let http = Listener::new(listener_settings.clone(), Arc::clone(&app.listener))?;
    let ingest_state = Arc::new(IngestState {
        fanout: Arc::clone(&app.fanout),
        open_wait: ingest::OPEN_WAIT,
        metrics: Arc::clone(&app.metrics),
        max_request_bytes: usize::try_from(cfg.max_request_bytes).unwrap_or(usize::MAX),
        otlp: otlp_settings(
            &cfg.otlp,
            usize::try_from(cfg.max_request_bytes).unwrap_or(usize::MAX),
        ),
    });
    let ingest_routes = limit_inserts(
        ingest::router(ingest_state),
        listener_settings.max_concurrent_inserts,
        listener_settings.insert_max_queue_duration,
        Arc::clone(&app.listener),
    );
    let router = ingest_routes.merge(admin::router(Arc::<App>::clone(&app)));

    let stop = CancellationToken::new();
    let stop_http = stop.clone();
    let signal = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        signal.cancel();
    });
    let server = tokio::spawn(http.serve(listener, router, stop_http));

    let open_cfg = cfg.clone();
    let fanout = tokio::task::spawn_blocking(move || Fanout::open(&open_cfg))
        .await
        .map_err(|e| ServerError::Task(e.to_string()))?;
    let fanout = match fanout {
        Ok(f) => Arc::new(f),
        Err(e) => {
            stop.cancel();
            let _ = server.await;
            return Err(e.into());
        }
    };
    let senders_stop = stop.child_token();
    let senders = match fanout.spawn_senders(senders_stop.clone()) {
        Ok(s) => s,
        Err(e) => {
            stop.cancel();
            let _ = server.await;
            return Err(e.into());
        }
    };
    app.fanout.set(Arc::clone(&fanout));
    if let Some(path) = &cfg.scrape.config_file {
        match Scraper::start(
            path.clone(),
            cfg.scrape.cluster,
            Arc::clone(&fanout),
            Arc::clone(&app.metrics),
            ProviderContext {
                metrics: Arc::clone(&app.discovery),
                dns_server: cfg.scrape.dns_sd_resolver,
            },
            cfg.scrape.max_dropped_targets,
        )
        .await
        {
            Ok(s) => {
                let s = Arc::new(s);
                let _ = app.scraper.set(Arc::clone(&s));
                tokio::spawn(reload_on_sighup(s, stop.clone()));
            }
            Err(e) => {
                stop.cancel();
                let _ = server.await;
                return Err(e.into());
            }
        }
    }
    for st in fanout.storages() {
        let s = st.status();
        info!(storage = %s.id, url = %s.url, pending_blocks = s.pending_blocks, "storage ready");
    }
    info!("promrelay ready");

    server.await.map_err(|e| ServerError::Task(e.to_string()))?;
    if let Some(s) = app.scraper.get() {
        s.stop().await;
    }
    info!("stopped accepting; stopping senders");
    senders_stop.cancel();
    for s in senders.into_iter().chain(fanout.take_tenant_senders()) {
        let _ = s.await;
    }
    let f = Arc::clone(&fanout);
    let _ = tokio::task::spawn_blocking(move || f.flush()).await;
    info!("queues flushed; bye");
    Ok(())
}

/// Reloads the scrape config on every SIGHUP until `stop`.
async fn reload_on_sighup(scraper: Arc<Scraper>, stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload with POST /-/reload");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => match scraper.reload().await {
                Ok(()) => info!("SIGHUP: scrape config reloaded"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: scrape config not reloaded; the old one keeps running"),
            },
            _ = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod otlp_settings_tests {
    use super::otlp_settings;
    use crate::config::{OtlpConfig, OtlpTranslationStrategy};

    #[test]
    fn the_otlp_section_sets_the_translation() {
        let settings = otlp_settings(
            &OtlpConfig {
                translation_strategy: OtlpTranslationStrategy::UnderscoreEscapingWithoutSuffixes,
                promote_resource_attributes: vec!["host.name".to_owned()],
            },
            1 << 20,
        );
        assert!(!settings.namer.with_suffixes);
        assert_eq!(settings.promote_resource_attributes, vec!["host.name"]);
        assert_eq!(settings.max_output_bytes, 4 << 20);
        assert!(
            otlp_settings(&OtlpConfig::default(), 1 << 20)
                .namer
                .with_suffixes
        );
    }
}

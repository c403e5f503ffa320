//! `rounds-server`: the Rounds companion server.
//!
//! Layers, outermost first: [`http`] (REST, patient pages, operations endpoints) calls the
//! domain modules ([`sessions`], [`visits`], [`invitations`]), which use [`rooms`] (admission
//! decisions, no I/O), [`tokens`] (signing keys), [`audit`] (hash-chained log) and [`store`]
//! (SQLite). [`config`] is the only place settings are read.

pub mod access;
pub mod audit;
pub mod chat;
pub mod check;
pub mod cli;
pub mod clinic_content;
pub mod config;
pub mod demo;
pub mod ehr;
pub mod error;
pub mod events;
pub mod firewall;
pub mod http;
pub mod invitations;
pub mod listener;
pub mod media;
pub mod metrics;
pub mod oidc;
pub mod ratelimit;
pub mod rooms;
pub mod sessions;
pub mod sfu;
pub mod signaling;
pub mod store;
pub mod tickets;
pub mod tokens;
pub mod visits;

use std::sync::Arc;

use anyhow::Context;

use crate::audit::Audit;
use crate::config::Config;
use crate::invitations::Notifier;
use crate::ratelimit::RateLimits;
use crate::store::Store;
use crate::tokens::Tokens;

/// Everything a request handler may use. One pointer: every request clones it (axum hands
/// each extractor its own copy), so a clone is one reference count, not one per part.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    pub config: Arc<Config>,
    /// SMART on FHIR launches in flight and their HTTP client.
    pub ehr: Arc<ehr::Ehr>,
    pub store: Store,
    pub audit: Audit,
    pub tokens: Arc<Tokens>,
    pub notifier: Arc<Notifier>,
    pub limits: Arc<RateLimits>,
    pub rooms: rooms::Rooms,
    /// The clinicians' live queue feed.
    pub events: events::Events,
    /// Unspent one-time sign-in tickets for the desktop app.
    pub tickets: Arc<tickets::Tickets>,
    /// The hospital's identity provider, when SSO is configured.
    pub oidc: Option<Arc<oidc::Oidc>>,
}

impl AppState {
    /// Opens the store (migrating it), loads the keys and starts the audit writer.
    pub async fn open(config: Config) -> anyhow::Result<Self> {
        let dir = &config.storage.data_dir;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the data directory {}", dir.display()))?;
        let store = Store::open(dir, config.storage.synchronous)
            .await
            .with_context(|| format!("opening the database in {}", dir.display()))?;
        let applied = store.migrate().await.context("migrating the database")?;
        if applied > 0 {
            tracing::info!(applied, "database migrated");
        }
        let ehr = ehr::Ehr::new(config.ehr.http_timeout_secs).context("setting up EHR launch")?;
        let tokens = Tokens::load(&config).context("loading the token signing keys")?;
        let audit = Audit::start(store.pool.clone())
            .await
            .context("starting the audit log")?;
        let notifier = Notifier::from_config(&config).context("setting up invitations")?;
        let limits = RateLimits::new(&config.limits);
        let oidc = match &config.oidc {
            Some(c) => Some(Arc::new(
                oidc::Oidc::new(c.clone()).context("setting up the identity provider client")?,
            )),
            None => None,
        };
        Ok(Self(Arc::new(Shared {
            config: Arc::new(config),
            ehr: Arc::new(ehr),
            store,
            audit,
            tokens: Arc::new(tokens),
            notifier: Arc::new(notifier),
            limits: Arc::new(limits),
            rooms: rooms::Rooms::default(),
            events: events::Events::default(),
            tickets: Arc::default(),
            oidc,
        })))
    }
}

/// Runs the server until Ctrl-C or SIGTERM.
pub async fn serve(state: AppState) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(state.config.server.listen)
        .await
        .with_context(|| format!("listening on {}", state.config.server.listen))?;
    let addr = listener.local_addr()?;
    let sfu = if state.config.media.enabled {
        let m = &state.config.media;
        let sfu = sfu::Sfu::start(sfu::SfuConfig {
            udp_listen: m.udp_listen,
            advertise_ip: state.config.media_advertise_ip(),
            tcp_port: m.ice_tcp.then_some(addr.port()),
            udp_enabled: m.udp_enabled,
            video_codec: match m.video_codec {
                config::VideoCodecSetting::Vp8 => sfu::VideoCodec::Vp8,
                config::VideoCodecSetting::H264 => sfu::VideoCodec::H264,
            },
            connect_deadline: sfu::CONNECT_DEADLINE,
        })
        .await
        .with_context(|| format!("starting media on UDP {}", m.udp_listen))?;
        tracing::info!(udp = %sfu.udp_addr(), ice_tcp = m.ice_tcp, "media (SFU) is ready");
        state.rooms.attach_sfu(sfu.clone());
        Some(sfu)
    } else {
        tracing::info!("media is disabled: signaling and chat only");
        None
    };
    tracing::info!(%addr, public_url = state.config.public_url(), "rounds-server is listening");
    spawn_background(&state);
    let app = http::app(state);
    listener::run(listener, app, sfu, shutdown_signal()).await;
    tracing::info!("rounds-server stopped");
    Ok(())
}

fn spawn_background(state: &AppState) {
    invitations::spawn_reminders(state.clone());
    ratelimit::spawn_cleanup(state.limits.clone());
    metrics::spawn_upkeep();
    let s = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            match s.tokens.maintain() {
                Ok(Some(kid)) => {
                    tracing::info!(%kid, "rotated the token signing key");
                    let event =
                        audit::Event::new("system", audit::Action::KeysRotated).subject(&kid);
                    if let Err(e) = s.audit.record(event).await {
                        tracing::error!(error = %e, "could not audit the key rotation");
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = format!("{e:#}"), "token key maintenance failed"),
            }
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

//! The one controller: it owns the app's state, and every Tauri command is a thin call to
//! one of its methods. It has no Tauri in it, so it is tested on its own against a real
//! server.
//!
//! State it owns: the policy and settings, the session (the access token in memory, the
//! refresh token only in the keychain), today's queue, the live feed and its reconnects,
//! the alert decisions and the call. It tells the shell what changed through
//! [`AppEvent`]s on a broadcast channel.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rounds_client::ProxyConfig;
use rounds_proto::{
    Clinician, CreateInvitationRequest, CreateVisitRequest, CreatedVisit, EhrChoice, Invitation,
    Participant, Queue, QueueEvent, SessionResponse, Visit,
};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use ts_rs::TS;
use url::Url;

use crate::alerts::{Alert, Alerts, waiting_count};
use crate::api::{ApiError, ServerApi, parse_server_url};
use crate::call::{Call, CallState, DeviceChoice, DeviceSlot, Devices, RenderSink};
use crate::feed::{FeedEnd, backoff};
use crate::netcheck::NetworkCheck;
use crate::oidc::{Browser, SystemBrowser};
use crate::policy::{Policy, Settings};
use crate::secrets::{SecretStore, refresh_token_name};
use rounds_media::native::{DEVICE_POLL_INTERVAL, DeviceChange, DeviceKind, DeviceWatcher};

/// How far ahead of its expiry an access token is refreshed.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// How often the queue is re-read even without events (wait times move), and long waits
/// are checked.
const TICK: Duration = Duration::from_secs(30);

/// The live connection to the server, as the tray and the window show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Connection {
    SignedOut,
    Connecting,
    Online,
    /// Lost; the next attempt is in `retry_in_secs`.
    Reconnecting {
        retry_in_secs: u32,
        reason: String,
    },
}

/// Everything the window needs to draw its frame.
#[derive(Debug, Clone, Serialize, TS)]
pub struct AppStatus {
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clinician: Option<Clinician>,
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_url: Option<String>,
    /// IT's policy fixes the server: the sign-in form does not offer to change it.
    pub server_locked: bool,
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_email: Option<String>,
    pub connection: Connection,
    pub waiting: u32,
    /// Where the sign-in is kept, in words ("the system keyring (Secret Service)").
    pub keychain: String,
    /// IT allows a synthetic camera and microphone where none exist (labelled on screen).
    pub synthetic_media_allowed: bool,
}

/// What changed, for the shell (tray, notifications) and the window.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AppEvent {
    Status {
        status: AppStatus,
    },
    Queue {
        queue: Queue,
        waiting: u32,
    },
    /// Show an OS notification; clicking it opens the visit.
    Alert {
        alert: Alert,
    },
    /// Bring the window up on this visit (a notification click or a `rounds://` link).
    OpenVisit {
        visit_id: String,
        /// Join its call at once (`rounds://visit/{id}?join=1`, the EHR's "start visit").
        join: bool,
    },
    /// The call changed (people, speaker, quality, mute); `call.ended` when it is over.
    Call {
        call: CallState,
    },
    /// A chat message in the call.
    Chat {
        message: rounds_proto::ChatMessage,
    },
    /// A camera, microphone or speaker was connected or disconnected: the lists now.
    Devices {
        devices: Devices,
    },
    /// Bring the window up on the network check (a `rounds://network-check` link).
    ShowNetworkCheck,
    /// The network check moved on: a path started or finished, or all are done.
    NetworkCheck {
        check: NetworkCheck,
    },
}

/// The sign-in form.
#[derive(Debug, Clone, Deserialize, TS)]
pub struct SignInRequest {
    /// Ignored when IT's policy fixes the server.
    #[ts(optional)]
    pub server_url: Option<String>,
    pub email: String,
    pub password: String,
}

/// Whether a server offers the hospital sign-in, for the sign-in screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct SsoOptions {
    /// Offer "Sign in with your hospital account".
    pub available: bool,
    /// Keep the email-and-password form (IT may turn it off when the hospital sign-in is on).
    pub password_login: bool,
}

/// What a `rounds://` link did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct LinkOutcome {
    pub signed_in: bool,
    #[ts(optional)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_visit: Option<String>,
}

/// A visit to open, and whether to join its call at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct OpenRequest {
    pub visit_id: String,
    pub join: bool,
}

/// A failure, as the window shows it.
pub type UiResult<T> = Result<T, ApiError>;

#[derive(Clone)]
struct Session {
    api: ServerApi,
    server: Url,
    access: String,
    fresh_until: Instant,
    clinician: Clinician,
}

struct Inner {
    policy: Policy,
    /// The route to the server: REST, the live queue and the call's WebSocket all take it.
    proxy: ProxyConfig,
    /// The same route, as the network check takes it.
    netcheck_proxy: rounds_netcheck::ProxySettings,
    /// One network check at a time.
    network_check: tokio::sync::Mutex<()>,
    /// A link asked for the network check and the window has not shown it yet.
    pending_network_check: AtomicBool,
    settings_path: PathBuf,
    settings: Mutex<Settings>,
    secrets: Arc<dyn SecretStore>,
    session: Mutex<Option<Session>>,
    /// Refresh tokens work once: only one refresh may be in flight.
    refreshing: tokio::sync::Mutex<()>,
    queue: Mutex<Option<Queue>>,
    alerts: Mutex<Alerts>,
    connection: Mutex<Connection>,
    events: broadcast::Sender<AppEvent>,
    feed: Mutex<Option<JoinHandle<()>>>,
    call: tokio::sync::Mutex<Option<(Arc<Call>, JoinHandle<()>)>>,
    pending_open: Mutex<Option<(String, bool)>>,
    /// Hot-plug: devices are watched while the window is open or a call runs.
    window_open: AtomicBool,
    in_call: AtomicBool,
    device_watch: Mutex<Option<(DeviceWatcher, JoinHandle<()>)>>,
    /// Opens the hospital sign-in page: the system browser, or a script in tests.
    browser: Mutex<Arc<dyn Browser>>,
}

/// The app's controller. Cheap to clone.
#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn keychain_error(e: crate::secrets::SecretError) -> ApiError {
    ApiError::new("keychain", e.0)
}

impl Controller {
    /// A controller with IT's policy, the clinician's settings file and a secret store
    /// (the OS keychain in the app), connecting directly.
    pub fn new(policy: Policy, settings_path: PathBuf, secrets: Arc<dyn SecretStore>) -> Self {
        Self::with_proxy(policy, settings_path, secrets, ProxyConfig::direct())
    }

    /// The same, reaching the server through `proxy` where it applies (the app passes the
    /// system's, read once at start).
    pub fn with_proxy(
        policy: Policy,
        settings_path: PathBuf,
        secrets: Arc<dyn SecretStore>,
        proxy: ProxyConfig,
    ) -> Self {
        let settings = Settings::load(&settings_path);
        let alerts = Alerts::new(
            policy.wait_alert_minutes(),
            policy.notification_names.unwrap_or(false),
        );
        let (events, _) = broadcast::channel(256);
        Controller {
            inner: Arc::new(Inner {
                policy,
                netcheck_proxy: crate::netcheck::proxy_settings(&proxy),
                proxy,
                network_check: tokio::sync::Mutex::new(()),
                pending_network_check: AtomicBool::new(false),
                settings_path,
                settings: Mutex::new(settings),
                secrets,
                session: Mutex::new(None),
                refreshing: tokio::sync::Mutex::new(()),
                queue: Mutex::new(None),
                alerts: Mutex::new(alerts),
                connection: Mutex::new(Connection::SignedOut),
                events,
                feed: Mutex::new(None),
                call: tokio::sync::Mutex::new(None),
                pending_open: Mutex::new(None),
                window_open: AtomicBool::new(false),
                in_call: AtomicBool::new(false),
                device_watch: Mutex::new(None),
                browser: Mutex::new(Arc::new(SystemBrowser)),
            }),
        }
    }

    /// What changed, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<AppEvent> {
        self.inner.events.subscribe()
    }

    fn emit(&self, event: AppEvent) {
        let _ = self.inner.events.send(event);
    }

    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    pub fn settings(&self) -> Settings {
        lock(&self.inner.settings).clone()
    }

    /// Saves the clinician's choices (devices, start at login).
    pub fn set_settings(&self, settings: Settings) -> UiResult<Settings> {
        settings.save(&self.inner.settings_path).map_err(|e| {
            ApiError::new(
                "settings",
                format!("Cannot save your settings ({e}). They apply until Rounds restarts."),
            )
        })?;
        *lock(&self.inner.settings) = settings.clone();
        Ok(settings)
    }

    /// A server's API, on the controller's route to it.
    fn api_for(&self, server: Url) -> UiResult<ServerApi> {
        ServerApi::with_proxy(server, &self.inner.proxy)
    }

    /// The server to use: IT's, else the last one signed in to.
    fn configured_server(&self) -> Option<String> {
        self.inner
            .policy
            .server_url
            .clone()
            .or_else(|| lock(&self.inner.settings).server_url.clone())
    }

    pub fn status(&self) -> AppStatus {
        let session = lock(&self.inner.session).clone();
        let settings = lock(&self.inner.settings).clone();
        AppStatus {
            clinician: session.as_ref().map(|s| s.clinician.clone()),
            server_url: session
                .as_ref()
                .map(|s| s.server.as_str().trim_end_matches('/').to_owned())
                .or_else(|| self.configured_server()),
            server_locked: self.inner.policy.server_url.is_some(),
            last_email: settings.email,
            connection: lock(&self.inner.connection).clone(),
            waiting: lock(&self.inner.queue)
                .as_ref()
                .map(|q| waiting_count(q) as u32)
                .unwrap_or(0),
            keychain: self.inner.secrets.describe().to_owned(),
            synthetic_media_allowed: self.inner.policy.synthetic_media.unwrap_or(false),
        }
    }

    fn set_connection(&self, connection: Connection) {
        let changed = {
            let mut c = lock(&self.inner.connection);
            let changed = *c != connection;
            *c = connection;
            changed
        };
        if changed {
            self.emit(AppEvent::Status {
                status: self.status(),
            });
        }
    }

    fn server_for(&self, requested: Option<&str>) -> UiResult<Url> {
        if let Some(fixed) = &self.inner.policy.server_url {
            if let Some(r) = requested
                && parse_server_url(r)? != parse_server_url(fixed)?
            {
                return Err(ApiError::new(
                    "server-locked",
                    "Your IT department set the Rounds server for this computer; this link is for a different one.",
                ));
            }
            return parse_server_url(fixed);
        }
        match requested.or(self.configured_server().as_deref()) {
            Some(url) => parse_server_url(url),
            None => Err(ApiError::new(
                "no-server",
                "Enter your Rounds server's address first. IT can tell you what it is.",
            )),
        }
    }

    async fn secret_get(&self, name: String) -> UiResult<Option<String>> {
        let secrets = self.inner.secrets.clone();
        tokio::task::spawn_blocking(move || secrets.get(&name))
            .await
            .map_err(|e| ApiError::new("keychain", e.to_string()))?
            .map_err(keychain_error)
    }

    async fn secret_set(&self, name: String, value: String) -> UiResult<()> {
        let secrets = self.inner.secrets.clone();
        tokio::task::spawn_blocking(move || secrets.set(&name, &value))
            .await
            .map_err(|e| ApiError::new("keychain", e.to_string()))?
            .map_err(keychain_error)
    }

    async fn secret_delete(&self, name: String) -> UiResult<()> {
        let secrets = self.inner.secrets.clone();
        tokio::task::spawn_blocking(move || secrets.delete(&name))
            .await
            .map_err(|e| ApiError::new("keychain", e.to_string()))?
            .map_err(keychain_error)
    }

    /// Takes a fresh session pair: the refresh token goes to the keychain (first, so a
    /// keychain failure signs nobody in), the access token stays in memory.
    async fn adopt(&self, api: ServerApi, server: Url, pair: SessionResponse) -> UiResult<()> {
        self.secret_set(refresh_token_name(&server), pair.refresh_token.clone())
            .await?;
        let session = Session {
            api,
            server: server.clone(),
            access: pair.access_token,
            fresh_until: Instant::now()
                + Duration::from_secs(u64::from(pair.expires_in)).saturating_sub(REFRESH_MARGIN),
            clinician: pair.clinician,
        };
        let email = session.clinician.email.clone();
        *lock(&self.inner.session) = Some(session);
        {
            let mut settings = lock(&self.inner.settings);
            settings.email = Some(email);
            if self.inner.policy.server_url.is_none() {
                settings.server_url = Some(server.as_str().trim_end_matches('/').to_owned());
            }
            if let Err(e) = settings.save(&self.inner.settings_path) {
                tracing::warn!(error = %e, "cannot save settings");
            }
        }
        Ok(())
    }

    /// Signs in with a local account.
    pub async fn sign_in(&self, req: SignInRequest) -> UiResult<AppStatus> {
        let server = self.server_for(req.server_url.as_deref())?;
        let api = self.api_for(server.clone())?;
        let pair = api.login(req.email.trim(), &req.password).await?;
        self.adopt(api, server, pair).await?;
        tracing::info!("signed in");
        self.start_feed();
        Ok(self.status())
    }

    /// Replaces the system browser for the hospital sign-in (tests drive it with a script).
    pub fn set_browser(&self, browser: Arc<dyn Browser>) {
        *lock(&self.inner.browser) = browser;
    }

    /// Whether the server offers the hospital sign-in. A server without it, or one that
    /// cannot be reached, offers the password form only.
    pub async fn sso_options(&self, server_url: Option<String>) -> UiResult<SsoOptions> {
        let server = self.server_for(server_url.as_deref())?;
        match self.api_for(server)?.oidc_sign_in().await {
            Ok(info) => Ok(SsoOptions {
                available: true,
                password_login: info.password_login,
            }),
            Err(e) if e.status == Some(404) || e.is_unreachable() => Ok(SsoOptions {
                available: false,
                password_login: true,
            }),
            Err(e) => Err(e),
        }
    }

    /// The EHRs the clinician can start a visit from, for the "Start from the EHR" button.
    /// An older server without EHR support, or one that cannot be reached, offers none.
    pub async fn ehr_options(&self, server_url: Option<String>) -> UiResult<Vec<EhrChoice>> {
        let server = self.server_for(server_url.as_deref())?;
        match self.api_for(server)?.ehr_options().await {
            Ok(options) => Ok(options.ehrs),
            Err(e) if e.status == Some(404) || e.is_unreachable() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// A standalone SMART launch: opens the EHR's sign-in in the system browser, where the
    /// clinician picks the patient and encounter. The EHR then returns to the Rounds server,
    /// whose page hands the visit to this app with a `rounds://visit/...` link, as a launch
    /// from the chart does. Works signed in or not: the link carries its own sign-in.
    pub async fn start_ehr_launch(&self, server_url: Option<String>, iss: String) -> UiResult<()> {
        let server = self.server_for(server_url.as_deref())?;
        let options = self.api_for(server.clone())?.ehr_options().await?;
        let Some(choice) = options
            .ehrs
            .into_iter()
            .find(|e| e.iss.trim_end_matches('/') == iss.trim_end_matches('/'))
        else {
            return Err(ApiError::new(
                "no-such-ehr",
                "Rounds is not set up for that EHR any more. Ask your IT department.",
            ));
        };
        // Only ever open a page of the server this app signs in to.
        let url = Url::parse(&choice.standalone_url)
            .ok()
            .filter(|u| u.origin() == server.origin())
            .ok_or_else(|| {
                ApiError::new(
                    "bad-launch-url",
                    "The Rounds server sent an EHR launch address that is not its own, so Rounds did not open it.",
                )
            })?;
        let browser = lock(&self.inner.browser).clone();
        browser.open(&url).map_err(|e| {
            tracing::warn!(error = %e, "could not open the browser for an EHR launch");
            ApiError::new(
                "no-browser",
                "Rounds could not open your web browser. Check that a default browser is set.",
            )
        })?;
        tracing::info!("standalone EHR launch opened in the browser");
        Ok(())
    }

    /// Signs in with the hospital's identity provider: its page opens in the system
    /// browser, which returns to this app on a loopback address; the server then checks
    /// the answer and starts the session, kept exactly like a password sign-in.
    pub async fn sign_in_sso(&self, server_url: Option<String>) -> UiResult<AppStatus> {
        let server = self.server_for(server_url.as_deref())?;
        let api = self.api_for(server.clone())?;
        let info = api.oidc_sign_in().await?;
        let browser = lock(&self.inner.browser).clone();
        let answer =
            crate::oidc::authorize(&info, browser.as_ref(), crate::oidc::SIGN_IN_TIMEOUT).await?;
        let pair = api.oidc_token(&answer).await?;
        self.adopt(api, server, pair).await?;
        tracing::info!("signed in with the hospital account");
        self.start_feed();
        Ok(self.status())
    }

    /// At start-up: signs back in with the refresh token in the keychain, if there is one.
    /// Returns whether it did. No token, or a refused one, leaves the app signed out.
    pub async fn restore(&self) -> UiResult<bool> {
        let Some(server) = self.configured_server() else {
            return Ok(false);
        };
        let server = parse_server_url(&server)?;
        let Some(refresh) = self.secret_get(refresh_token_name(&server)).await? else {
            return Ok(false);
        };
        let api = self.api_for(server.clone())?;
        self.set_connection(Connection::Connecting);
        match api.refresh(&refresh).await {
            Ok(pair) => {
                self.adopt(api, server, pair).await?;
                tracing::info!("signed back in from the keychain");
                self.start_feed();
                Ok(true)
            }
            Err(e) if e.is_unauthorized() => {
                self.secret_delete(refresh_token_name(&server)).await?;
                self.set_connection(Connection::SignedOut);
                Ok(false)
            }
            Err(e) => {
                // The server is away (no network yet after boot): keep the token, retry.
                self.set_connection(Connection::Reconnecting {
                    retry_in_secs: 5,
                    reason: e.message.clone(),
                });
                Err(e)
            }
        }
    }

    /// Signs out: the server ends the session, the keychain forgets it.
    pub async fn sign_out(&self) -> UiResult<AppStatus> {
        self.stop_feed();
        let session = lock(&self.inner.session).take();
        if let Some(s) = session {
            let name = refresh_token_name(&s.server);
            if let Some(refresh) = self.secret_get(name.clone()).await?
                && let Err(e) = s.api.logout(&refresh).await
            {
                tracing::warn!(error = %e, "sign-out: the server was not told");
            }
            self.secret_delete(name).await?;
        }
        *lock(&self.inner.queue) = None;
        self.set_connection(Connection::SignedOut);
        self.emit(AppEvent::Status {
            status: self.status(),
        });
        Ok(self.status())
    }

    /// A valid access token, refreshing it first when it is about to expire.
    async fn access(&self) -> UiResult<(ServerApi, String)> {
        let current = lock(&self.inner.session).clone().ok_or_else(|| {
            ApiError::new("signed-out", "You are signed out. Sign in to continue.")
        })?;
        if Instant::now() < current.fresh_until {
            return Ok((current.api, current.access));
        }
        self.refresh_now(&current.access).await
    }

    /// Refreshes the session once, unless another caller already did.
    async fn refresh_now(&self, stale_access: &str) -> UiResult<(ServerApi, String)> {
        let _one = self.inner.refreshing.lock().await;
        let current = lock(&self.inner.session).clone().ok_or_else(|| {
            ApiError::new("signed-out", "You are signed out. Sign in to continue.")
        })?;
        if current.access != stale_access && Instant::now() < current.fresh_until {
            return Ok((current.api, current.access));
        }
        let name = refresh_token_name(&current.server);
        let refresh = self.secret_get(name).await?.ok_or_else(|| {
            ApiError::new(
                "signed-out",
                "Your sign-in is no longer in the keychain. Sign in again.",
            )
        })?;
        match current.api.refresh(&refresh).await {
            Ok(pair) => {
                self.adopt(current.api.clone(), current.server.clone(), pair)
                    .await?;
                let s = lock(&self.inner.session).clone().ok_or_else(|| {
                    ApiError::new("signed-out", "You are signed out. Sign in to continue.")
                })?;
                Ok((s.api, s.access))
            }
            Err(e) if e.is_unauthorized() => {
                tracing::info!("session ended by the server");
                self.stop_feed();
                *lock(&self.inner.session) = None;
                self.secret_delete(refresh_token_name(&current.server))
                    .await?;
                self.set_connection(Connection::SignedOut);
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Runs an API call with a fresh token, retrying once after a refresh on a 401.
    async fn with_api<T, F, Fut>(&self, call: F) -> UiResult<T>
    where
        F: Fn(ServerApi, String) -> Fut,
        Fut: std::future::Future<Output = UiResult<T>>,
    {
        let (api, access) = self.access().await?;
        match call(api, access.clone()).await {
            Err(e) if e.is_unauthorized() => {
                let (api, access) = self.refresh_now(&access).await?;
                call(api, access).await
            }
            other => other,
        }
    }

    /// Today's queue, read now from the server.
    pub async fn queue(&self) -> UiResult<Queue> {
        let queue = self
            .with_api(|api, t| async move { api.queue(&t).await })
            .await?;
        let waiting = waiting_count(&queue) as u32;
        *lock(&self.inner.queue) = Some(queue.clone());
        self.emit(AppEvent::Queue {
            queue: queue.clone(),
            waiting,
        });
        Ok(queue)
    }

    /// The queue as last read, without a network round trip.
    pub fn cached_queue(&self) -> Option<Queue> {
        lock(&self.inner.queue).clone()
    }

    pub async fn create_visit(&self, req: CreateVisitRequest) -> UiResult<CreatedVisit> {
        let req = &req;
        let created = self
            .with_api(|api, t| async move { api.create_visit(&t, req).await })
            .await?;
        let _ = self.queue().await;
        Ok(created)
    }

    /// Everyone in a visit, the lobby included.
    pub async fn participants(&self, visit_id: String) -> UiResult<Vec<Participant>> {
        let v = &visit_id;
        self.with_api(|api, t| async move { api.participants(&t, v).await })
            .await
    }

    async fn decide(
        &self,
        visit_id: &str,
        action: &'static str,
        participant: &str,
    ) -> UiResult<Participant> {
        let p = self
            .with_api(|api, t| async move { api.decide(&t, visit_id, action, participant).await })
            .await?;
        let _ = self.queue().await;
        Ok(p)
    }

    pub async fn admit(&self, visit_id: String, participant_id: String) -> UiResult<Participant> {
        self.decide(&visit_id, "admit", &participant_id).await
    }

    pub async fn deny(&self, visit_id: String, participant_id: String) -> UiResult<Participant> {
        self.decide(&visit_id, "deny", &participant_id).await
    }

    pub async fn remove(&self, visit_id: String, participant_id: String) -> UiResult<Participant> {
        self.decide(&visit_id, "remove", &participant_id).await
    }

    pub async fn end_visit(&self, visit_id: String) -> UiResult<Visit> {
        let v = &visit_id;
        let visit = self
            .with_api(|api, t| async move { api.end_visit(&t, v).await })
            .await?;
        let _ = self.queue().await;
        Ok(visit)
    }

    pub async fn running_late(&self, visit_id: String, minutes: u32) -> UiResult<Visit> {
        let v = &visit_id;
        let visit = self
            .with_api(|api, t| async move { api.running_late(&t, v, minutes).await })
            .await?;
        let _ = self.queue().await;
        Ok(visit)
    }

    pub async fn invite(
        &self,
        visit_id: String,
        req: CreateInvitationRequest,
    ) -> UiResult<Invitation> {
        let (v, r) = (&visit_id, &req);
        self.with_api(|api, t| async move { api.invite(&t, v, r).await })
            .await
    }

    /// A room token for the signed-in clinician, to join the visit's call.
    pub async fn provider_token(&self, visit_id: &str) -> UiResult<(Url, rounds_proto::RoomToken)> {
        let token = self
            .with_api(|api, t| async move { api.provider_token(&t, visit_id).await })
            .await?;
        let server = lock(&self.inner.session)
            .as_ref()
            .map(|s| s.server.clone())
            .ok_or_else(|| ApiError::new("signed-out", "You are signed out."))?;
        Ok((server, token))
    }

    /// Handles a `rounds://` link: `rounds://signin?server=…&ticket=…` signs in;
    /// `rounds://visit/{id}[?ticket=…&server=…]` signs in if it carries a ticket, then
    /// opens the visit.
    pub async fn open_link(&self, link: String) -> UiResult<LinkOutcome> {
        let bad = || {
            ApiError::new(
                "bad-link",
                "This Rounds link is not complete. Open it again from where you found it.",
            )
        };
        let url = Url::parse(link.trim()).map_err(|_| bad())?;
        if url.scheme() != "rounds" {
            return Err(bad());
        }
        let query = |key: &str| {
            url.query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        };
        let ticket = query("ticket");
        let server = query("server");
        let open_visit = match url.host_str() {
            // IT's "check your network" link: works signed out, and checks only the server
            // this app is set up for, never one named in the link.
            Some("network-check") => {
                self.show_network_check();
                return Ok(LinkOutcome {
                    signed_in: false,
                    open_visit: None,
                });
            }
            Some("signin") => None,
            Some("visit") => {
                let id = url
                    .path_segments()
                    .and_then(|mut s| s.next())
                    .filter(|id| !id.is_empty() && id.len() <= 64)
                    .filter(|id| id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
                    .ok_or_else(bad)?;
                Some(id.to_owned())
            }
            _ => return Err(bad()),
        };
        let mut signed_in = false;
        if let Some(ticket) = ticket {
            let server = self.server_for(server.as_deref())?;
            let api = self.api_for(server.clone())?;
            let pair = api.redeem_ticket(&ticket).await?;
            // A ticket replaces whoever was signed in here.
            if lock(&self.inner.session).is_some() {
                self.stop_feed();
            }
            self.adopt(api, server, pair).await?;
            tracing::info!("signed in from a link");
            self.start_feed();
            signed_in = true;
        } else if lock(&self.inner.session).is_none() {
            return Err(ApiError::new(
                "signed-out",
                "Sign in to Rounds first, then open the link again.",
            ));
        }
        if let Some(visit_id) = &open_visit {
            let join = query("join").is_some_and(|v| v == "1" || v == "true");
            self.request_open(visit_id.clone(), join);
        }
        Ok(LinkOutcome {
            signed_in,
            open_visit,
        })
    }

    /// Asks the shell to open a visit (a notification was clicked).
    pub fn open_visit(&self, visit_id: String) {
        self.request_open(visit_id, false);
    }

    fn request_open(&self, visit_id: String, join: bool) {
        tracing::info!(visit = %visit_id, join, "opening a visit");
        *lock(&self.inner.pending_open) = Some((visit_id.clone(), join));
        self.emit(AppEvent::OpenVisit { visit_id, join });
    }

    /// The visit a link or notification asked to open and the window has not shown yet
    /// (a window built after the request missed its event). Taken once.
    pub fn take_pending_open(&self) -> Option<OpenRequest> {
        lock(&self.inner.pending_open)
            .take()
            .map(|(visit_id, join)| OpenRequest { visit_id, join })
    }

    /// Asks the shell to bring the window up on the network check (a link, the tray).
    pub fn show_network_check(&self) {
        tracing::info!("opening the network check");
        self.inner
            .pending_network_check
            .store(true, Ordering::SeqCst);
        self.emit(AppEvent::ShowNetworkCheck);
    }

    /// Whether a link asked for the network check since the window last looked. Taken once.
    pub fn take_pending_network_check(&self) -> bool {
        self.inner
            .pending_network_check
            .swap(false, Ordering::SeqCst)
    }

    /// Runs the connectivity self-test from this computer against the server: the one IT
    /// set, else `server_url` (the sign-in form's, so someone who cannot sign in can still
    /// check), else the one last signed in to. Web and signaling take the app's proxy
    /// route. Each step is reported as an [`AppEvent::NetworkCheck`]; the result is returned
    /// too. Never fails for a network problem: that is what the report is about.
    pub async fn network_check(&self, server_url: Option<String>) -> UiResult<NetworkCheck> {
        let server = self.server_for(server_url.as_deref())?;
        let Ok(_one) = self.inner.network_check.try_lock() else {
            return Err(ApiError::new(
                "busy",
                "The network check is already running. Its results appear as each path is checked.",
            ));
        };
        let options = rounds_netcheck::Options {
            timeout: crate::netcheck::STEP_TIMEOUT,
            proxy: self.inner.netcheck_proxy.clone(),
            ..rounds_netcheck::Options::default()
        };
        let started = chrono::Utc::now()
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string();
        let mut check = NetworkCheck::starting(&server, &options.proxy, started);
        self.emit(AppEvent::NetworkCheck {
            check: check.clone(),
        });
        tracing::info!("network check started");
        let report = rounds_netcheck::run(&server, &options, |progress| {
            if let rounds_netcheck::Progress::Done(r) = progress {
                tracing::info!(
                    path = r.path.label(),
                    status = ?r.status,
                    rtt_ms = r.rtt.map(|d| d.as_millis() as u64),
                    "network check path"
                );
            }
            check.progress(progress);
            self.emit(AppEvent::NetworkCheck {
                check: check.clone(),
            });
        })
        .await;
        check.finish(report.verdict, &report.summary);
        tracing::info!(verdict = ?report.verdict, "network check finished");
        self.emit(AppEvent::NetworkCheck {
            check: check.clone(),
        });
        Ok(check)
    }

    /// Reconnect the live feed now (the network came back, the computer woke up).
    pub fn reconnect_now(&self) {
        if lock(&self.inner.session).is_some() {
            self.start_feed();
        }
    }

    fn stop_feed(&self) {
        if let Some(task) = lock(&self.inner.feed).take() {
            task.abort();
        }
    }

    fn start_feed(&self) {
        self.stop_feed();
        let me = self.clone();
        let task = tokio::spawn(async move { me.feed_loop().await });
        *lock(&self.inner.feed) = Some(task);
    }

    /// Keeps the live queue feed open for as long as the clinician is signed in.
    async fn feed_loop(&self) {
        let mut attempt = 0u32;
        loop {
            self.set_connection(if attempt == 0 {
                Connection::Connecting
            } else {
                lock(&self.inner.connection).clone()
            });
            let reason = match self.feed_once(&mut attempt).await {
                Ok(()) => return,
                Err(reason) => reason,
            };
            let wait = backoff(attempt);
            attempt = attempt.saturating_add(1);
            tracing::info!(attempt, retry_in_ms = wait.as_millis() as u64, %reason, "queue feed lost; reconnecting");
            self.set_connection(Connection::Reconnecting {
                retry_in_secs: wait.as_secs().max(1) as u32,
                reason,
            });
            tokio::time::sleep(wait).await;
        }
    }

    /// One connection of the feed. `Ok` means stop for good (signed out).
    async fn feed_once(&self, attempt: &mut u32) -> Result<(), String> {
        let (api, access) = match self.access().await {
            Ok(a) => a,
            Err(e) if e.code == "signed-out" || e.is_unauthorized() => return Ok(()),
            Err(e) => return Err(e.message),
        };
        let mut stream = match api.open_feed(&access).await {
            Ok(s) => s,
            Err(e) if e.is_unauthorized() => {
                return match self.refresh_now(&access).await {
                    Ok(_) => Err("the session was renewed".into()),
                    Err(e) if e.is_unauthorized() => Ok(()),
                    Err(e) => Err(e.message),
                };
            }
            Err(e) => return Err(e.message),
        };
        // Connected: read the queue fresh, since events may have been missed meanwhile.
        if let Err(e) = self.queue().await {
            return Err(e.message);
        }
        *attempt = 0;
        self.set_connection(Connection::Online);
        let mut tick = tokio::time::interval(TICK);
        tick.tick().await;
        loop {
            tokio::select! {
                next = stream.next() => match next {
                    Ok(event) => self.on_event(event).await,
                    Err(FeedEnd::Closed) => return Err("the server closed the live queue".into()),
                    Err(FeedEnd::Idle) => return Err("the live queue went quiet".into()),
                    Err(FeedEnd::Broken(e)) => return Err(format!("the connection broke ({e})")),
                },
                _ = tick.tick() => {
                    if let Err(e) = self.queue().await {
                        return Err(e.message);
                    }
                    self.check_long_waits();
                }
            }
        }
    }

    async fn on_event(&self, event: QueueEvent) {
        if matches!(event, QueueEvent::Hello { .. }) {
            return;
        }
        let queue = match self.queue().await {
            Ok(q) => q,
            Err(e) => {
                tracing::info!(error = %e, "cannot read the queue after an event");
                return;
            }
        };
        let alert = lock(&self.inner.alerts).on_event(&event, &queue);
        if let Some(alert) = alert {
            tracing::info!(kind = ?alert.kind, visit = %alert.visit_id, "alert");
            self.emit(AppEvent::Alert { alert });
        }
        self.check_long_waits();
    }

    /// The cameras, microphones and speakers present now.
    pub async fn devices(&self) -> Devices {
        let allowed = self.inner.policy.synthetic_media.unwrap_or(false);
        tokio::task::spawn_blocking(move || crate::call::devices(allowed))
            .await
            .unwrap_or(Devices {
                cameras: Vec::new(),
                microphones: Vec::new(),
                speakers: Vec::new(),
                synthetic_allowed: allowed,
            })
    }

    /// Joins the visit's call with native media; remote video goes to `render`.
    pub async fn start_call(&self, visit_id: String, render: RenderSink) -> UiResult<CallState> {
        let mut slot = self.inner.call.lock().await;
        if let Some((current, _)) = slot.as_ref() {
            if current.visit_id() == visit_id {
                return Ok(current.state());
            }
            return Err(ApiError::new(
                "in-call",
                "You are already in another visit's call. Leave it first.",
            ));
        }
        let (server, token) = self.provider_token(&visit_id).await?;
        let settings = self.settings();
        let choice = DeviceChoice {
            camera: settings.camera,
            microphone: settings.microphone,
            speaker: settings.speaker,
        };
        let call = Arc::new(
            Call::start(
                visit_id,
                server,
                token.token,
                choice,
                self.inner.policy.synthetic_media.unwrap_or(false),
                render,
                self.inner.proxy.clone(),
            )
            .await?,
        );
        let me = self.clone();
        let watched = call.clone();
        let mut events = call.events();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tokio::select! {
                    ev = events.recv() => match ev {
                        Ok(ev) => {
                            watched.observe(&ev);
                            if let rounds_proto::ServerMessage::Chat { message } = &ev {
                                me.emit(AppEvent::Chat { message: message.clone() });
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => break,
                    },
                    _ = tick.tick() => {}
                }
                let state = watched.state();
                let over = state.ended.is_some();
                me.emit(AppEvent::Call { call: state });
                if over {
                    break;
                }
            }
        });
        let state = call.state();
        *slot = Some((call, task));
        drop(slot);
        self.inner.in_call.store(true, Ordering::SeqCst);
        self.update_device_watch();
        self.emit(AppEvent::Call {
            call: state.clone(),
        });
        Ok(state)
    }

    /// The window was built (`true`) or released (`false`): device lists are watched only
    /// while someone can see them or a call uses them.
    pub fn set_window_open(&self, open: bool) {
        self.inner.window_open.store(open, Ordering::SeqCst);
        self.update_device_watch();
    }

    /// Whether devices are being watched for hot-plug now.
    pub fn watching_devices(&self) -> bool {
        lock(&self.inner.device_watch).is_some()
    }

    fn update_device_watch(&self) {
        let want = self.inner.window_open.load(Ordering::SeqCst)
            || self.inner.in_call.load(Ordering::SeqCst);
        let mut slot = lock(&self.inner.device_watch);
        if !want {
            if let Some((watcher, task)) = slot.take() {
                task.abort();
                drop(watcher);
                tracing::debug!("device watch stopped");
            }
            return;
        }
        if slot.is_some() {
            return;
        }
        match DeviceWatcher::spawn(DEVICE_POLL_INTERVAL) {
            Ok((watcher, mut changes)) => {
                let me = self.clone();
                let task = tokio::spawn(async move {
                    while let Some(change) = changes.recv().await {
                        me.on_device_change(change).await;
                    }
                });
                *slot = Some((watcher, task));
                tracing::debug!("device watch started");
            }
            Err(e) => {
                tracing::warn!(error = %e, "devices cannot be watched; lists refresh on demand")
            }
        }
    }

    async fn on_device_change(&self, change: DeviceChange) {
        tracing::info!(
            kind = ?change.kind,
            added = change.added.len(),
            removed = change.removed.len(),
            "devices changed"
        );
        let call = self
            .inner
            .call
            .lock()
            .await
            .as_ref()
            .map(|(c, _)| c.clone());
        if let Some(call) = call {
            let c = call.clone();
            let _ = tokio::task::spawn_blocking(move || c.on_device_change(&change)).await;
            self.emit(AppEvent::Call { call: call.state() });
        }
        let devices = self.devices().await;
        self.emit(AppEvent::Devices { devices });
    }

    /// Switches the call to another camera, microphone or speaker (`None`: the system's
    /// default), and keeps it as the choice for later calls.
    pub async fn switch_device(&self, slot: DeviceSlot, id: Option<String>) -> UiResult<CallState> {
        let kind = DeviceKind::from(slot);
        let chosen = id.clone();
        let to = tokio::task::spawn_blocking(move || {
            let present = crate::call::usable_devices(kind).unwrap_or_default();
            match chosen {
                Some(id) => present.into_iter().find(|d| d.id == id),
                None => rounds_media::native::default_device(kind)
                    .ok()
                    .flatten()
                    .or_else(|| present.into_iter().next()),
            }
        })
        .await
        .map_err(|e| ApiError::new("media", e.to_string()))?
        .ok_or_else(|| {
            ApiError::new(
                "no-device",
                "That device is not connected any more. Choose another.",
            )
        })?;
        let state = self
            .with_call(|c| async move {
                let switched = c.clone();
                tokio::task::spawn_blocking(move || {
                    switched.switch(kind, &crate::devices::Switch::Device(to))
                })
                .await
                .map_err(|e| ApiError::new("media", e.to_string()))??;
                Ok(c.state())
            })
            .await?;
        let mut settings = self.settings();
        match slot {
            DeviceSlot::Camera => settings.camera = id,
            DeviceSlot::Microphone => settings.microphone = id,
            DeviceSlot::Speaker => settings.speaker = id,
        }
        if let Err(e) = self.set_settings(settings) {
            tracing::warn!(error = %e, "the device choice is not saved");
        }
        self.emit(AppEvent::Call {
            call: state.clone(),
        });
        Ok(state)
    }

    async fn with_call<T, F, Fut>(&self, f: F) -> UiResult<T>
    where
        F: FnOnce(Arc<Call>) -> Fut,
        Fut: std::future::Future<Output = UiResult<T>>,
    {
        let call = self
            .inner
            .call
            .lock()
            .await
            .as_ref()
            .map(|(c, _)| c.clone())
            .ok_or_else(|| ApiError::new("no-call", "You are not in a call."))?;
        f(call).await
    }

    /// The call as it is now, if there is one.
    pub async fn call_state(&self) -> Option<CallState> {
        self.inner
            .call
            .lock()
            .await
            .as_ref()
            .map(|(c, _)| c.state())
    }

    pub async fn set_mic_muted(&self, muted: bool) -> UiResult<CallState> {
        self.with_call(|c| async move {
            c.set_mic_muted(muted).await?;
            Ok(c.state())
        })
        .await
    }

    pub async fn set_camera_off(&self, off: bool) -> UiResult<CallState> {
        self.with_call(|c| async move {
            c.set_camera_off(off).await?;
            Ok(c.state())
        })
        .await
    }

    /// Shares the screen with everyone in the call (beside the camera), or stops.
    pub async fn share_screen(&self, on: bool) -> UiResult<CallState> {
        let state = self
            .with_call(|c| async move {
                if on {
                    c.start_screen_share().await?;
                } else {
                    c.stop_screen_share().await?;
                }
                Ok(c.state())
            })
            .await?;
        self.emit(AppEvent::Call {
            call: state.clone(),
        });
        Ok(state)
    }

    /// Mute someone's microphone, stop their camera, or remove them. Nobody can unmute
    /// anyone else.
    pub async fn host_action(
        &self,
        participant_id: String,
        action: rounds_proto::HostAction,
    ) -> UiResult<()> {
        self.with_call(|c| async move { c.host(&participant_id, action).await })
            .await
    }

    pub async fn send_chat(&self, text: String) -> UiResult<()> {
        self.with_call(|c| async move { c.chat(text).await }).await
    }

    pub async fn set_render_size(
        &self,
        participant_id: String,
        width: u32,
        height: u32,
    ) -> UiResult<()> {
        self.with_call(|c| async move {
            c.set_render_size(&participant_id, width, height);
            Ok(())
        })
        .await
    }

    /// Leaves the call (the visit goes on for the others).
    pub async fn leave_call(&self) -> UiResult<()> {
        let taken = self.inner.call.lock().await.take();
        if let Some((call, task)) = taken {
            task.abort();
            let _ = task.await;
            // The watcher task held the only other reference; a command still running
            // against the call drops its clone when done, which closes the connection.
            if let Ok(call) = Arc::try_unwrap(call) {
                call.leave().await;
            }
            tracing::info!("left the call");
        }
        self.inner.in_call.store(false, Ordering::SeqCst);
        self.update_device_watch();
        Ok(())
    }

    fn check_long_waits(&self) {
        let Some(queue) = self.cached_queue() else {
            return;
        };
        let due = lock(&self.inner.alerts).on_tick(chrono::Utc::now(), &queue);
        for alert in due {
            self.emit(AppEvent::Alert { alert });
        }
    }
}

//! The window's commands. Each is one line: it calls one [`Controller`] method. The same
//! macro that defines them lists their signatures, from which the UI's typed bindings
//! (`ui/src/generated/desktop.ts`) are generated.

use rounds_desktop_core::controller::{
    AppStatus, LinkOutcome, OpenRequest, SignInRequest, SsoOptions,
};
use rounds_desktop_core::netcheck::NetworkCheck;
use rounds_desktop_core::{ApiError, CallState, Controller, DeviceSlot, Devices, Settings};
use rounds_proto::{
    CreateInvitationRequest, CreateVisitRequest, CreatedVisit, EhrChoice, HostAction, Invitation,
    Participant, Queue, Visit,
};
use tauri::State;

/// One command's signature, for the bindings.
#[derive(Debug)]
pub struct Signature {
    pub name: &'static str,
    pub args: Vec<(&'static str, String)>,
    pub ret: String,
}

macro_rules! commands {
    (extra [$($extra:ident),*] $( $(#[$doc:meta])* fn $name:ident($($arg:ident : $ty:ty),*) -> $ret:ty = |$c:ident| $body:expr; )*) => {
        $(
            $(#[$doc])*
            #[tauri::command(rename_all = "snake_case")]
            pub async fn $name(
                controller: State<'_, Controller>,
                $($arg: $ty),*
            ) -> Result<$ret, ApiError> {
                let $c = controller.inner().clone();
                $body
            }
        )*

        /// Every command's signature, in definition order.
        pub fn signatures() -> Vec<Signature> {
            vec![$(Signature {
                name: stringify!($name),
                args: vec![$((stringify!($arg), <$ty as ts_rs::TS>::name())),*],
                ret: <$ret as ts_rs::TS>::name(),
            }),*]
        }

        /// The invoke handler for all of them.
        pub fn handler() -> impl Fn(tauri::ipc::Invoke<tauri::Wry>) -> bool + Send + Sync + 'static {
            tauri::generate_handler![$($name,)* $($extra),*]
        }
    };
}

commands! {
    extra [set_start_at_login, start_call]
    /// The app's status: who is signed in, the connection, how many are waiting.
    fn status() -> AppStatus = |c| Ok(c.status());
    /// Sign in with a local account.
    fn sign_in(req: SignInRequest) -> AppStatus = |c| c.sign_in(req).await;
    /// Whether the server offers the hospital sign-in, and keeps the password form.
    fn sso_options(server_url: Option<String>) -> SsoOptions = |c| c.sso_options(server_url).await;
    /// Sign in with the hospital account, in the system browser.
    fn sign_in_sso(server_url: Option<String>) -> AppStatus = |c| c.sign_in_sso(server_url).await;
    /// The EHRs a visit can be started from (standalone SMART launch).
    fn ehr_options(server_url: Option<String>) -> Vec<EhrChoice> = |c| c.ehr_options(server_url).await;
    /// Start a standalone launch at that EHR, in the system browser; the visit opens in the app.
    fn start_ehr_launch(server_url: Option<String>, iss: String) -> () = |c| c.start_ehr_launch(server_url, iss).await;
    /// Sign out: the server ends the session and the keychain forgets it.
    fn sign_out() -> AppStatus = |c| c.sign_out().await;
    /// Follow a `rounds://` link (sign-in ticket, open a visit).
    fn open_link(link: String) -> LinkOutcome = |c| c.open_link(link).await;
    /// Today's queue, read now.
    fn queue() -> Queue = |c| c.queue().await;
    /// Everyone in a visit, the lobby included.
    fn participants(visit_id: String) -> Vec<Participant> = |c| c.participants(visit_id).await;
    fn admit(visit_id: String, participant_id: String) -> Participant = |c| c.admit(visit_id, participant_id).await;
    fn deny(visit_id: String, participant_id: String) -> Participant = |c| c.deny(visit_id, participant_id).await;
    fn remove(visit_id: String, participant_id: String) -> Participant = |c| c.remove(visit_id, participant_id).await;
    fn end_visit(visit_id: String) -> Visit = |c| c.end_visit(visit_id).await;
    /// Tell the waiting patient the clinician runs late (0 clears it).
    fn running_late(visit_id: String, minutes: u32) -> Visit = |c| c.running_late(visit_id, minutes).await;
    /// Send a link by SMS or email, or create one to copy.
    fn invite(visit_id: String, req: CreateInvitationRequest) -> Invitation = |c| c.invite(visit_id, req).await;
    fn create_visit(req: CreateVisitRequest) -> CreatedVisit = |c| c.create_visit(req).await;
    fn settings() -> Settings = |c| Ok(c.settings());
    fn set_settings(settings: Settings) -> Settings = |c| c.set_settings(settings);
    /// The visit a link or notification asked for, if the window has not opened it yet.
    fn take_pending_open() -> Option<OpenRequest> = |c| Ok(c.take_pending_open());
    /// Cameras, microphones and speakers present now.
    fn devices() -> Devices = |c| Ok(c.devices().await);
    fn call_state() -> Option<CallState> = |c| Ok(c.call_state().await);
    fn set_mic_muted(muted: bool) -> CallState = |c| c.set_mic_muted(muted).await;
    fn set_camera_off(off: bool) -> CallState = |c| c.set_camera_off(off).await;
    /// Share the whole screen with the call, or stop sharing.
    fn share_screen(on: bool) -> CallState = |c| c.share_screen(on).await;
    /// Use another camera, microphone or speaker in the call (none: the system default).
    fn switch_device(slot: DeviceSlot, id: Option<String>) -> CallState = |c| c.switch_device(slot, id).await;
    /// Mute someone's microphone, stop their camera, or remove them.
    fn host_action(participant_id: String, action: HostAction) -> () = |c| c.host_action(participant_id, action).await;
    fn send_chat(text: String) -> () = |c| c.send_chat(text).await;
    /// The window draws this participant at this many device pixels.
    fn set_render_size(participant_id: String, width: u32, height: u32) -> () = |c| c.set_render_size(participant_id, width, height).await;
    fn leave_call() -> () = |c| c.leave_call().await;
    /// Check from this computer that the server's web port, signaling and media paths
    /// work (the server: IT's, else `server_url`, else the last one signed in to).
    fn network_check(server_url: Option<String>) -> NetworkCheck = |c| c.network_check(server_url).await;
    /// Whether a `rounds://network-check` link asked for the check since the window looked.
    fn take_pending_network_check() -> bool = |c| Ok(c.take_pending_network_check());
    /// The window drew something worth timing (the queue, for the cold-start benchmark).
    fn shown(what: String) -> () = |_c| { crate::mark_shown(&what); Ok(()) };
}

/// Joins a visit's call. Remote video (and the self-view, as `local`) arrives on `frames`
/// as binary messages: u16 id length, the participant id, u32 width, u32 height (all
/// little-endian), then the I420 planes.
#[tauri::command(rename_all = "snake_case")]
pub async fn start_call(
    controller: State<'_, Controller>,
    visit_id: String,
    frames: tauri::ipc::Channel<tauri::ipc::InvokeResponseBody>,
) -> Result<CallState, ApiError> {
    let render: rounds_desktop_core::call::RenderSink = std::sync::Arc::new(move |who, frame| {
        let _ = frames.send(tauri::ipc::InvokeResponseBody::Raw(pack_frame(who, frame)));
    });
    controller
        .inner()
        .clone()
        .start_call(visit_id, render)
        .await
}

/// One frame for the window (see [`start_call`]).
pub fn pack_frame(participant: &str, frame: &rounds_media::I420Frame) -> Vec<u8> {
    let id = participant.as_bytes();
    let id_len = u16::try_from(id.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(2 + id.len() + 8 + frame.data.len());
    out.extend_from_slice(&id_len.to_le_bytes());
    out.extend_from_slice(&id[..usize::from(id_len)]);
    out.extend_from_slice(&frame.width.to_le_bytes());
    out.extend_from_slice(&frame.height.to_le_bytes());
    out.extend_from_slice(&frame.data);
    out
}

/// Start at login, or not (the autostart plugin registers the OS's login item).
#[tauri::command(rename_all = "snake_case")]
pub async fn set_start_at_login(
    app: tauri::AppHandle,
    controller: State<'_, Controller>,
    enabled: bool,
) -> Result<Settings, ApiError> {
    use tauri_plugin_autostart::ManagerExt;
    let c = controller.inner().clone();
    if c.policy().autostart == Some(true) && !enabled {
        return Err(ApiError::new(
            "policy",
            "Your IT department starts Rounds at login on this computer.",
        ));
    }
    let launcher = app.autolaunch();
    let done = if enabled {
        launcher.enable()
    } else {
        launcher.disable()
    };
    done.map_err(|e| {
        ApiError::new(
            "autostart",
            format!("Cannot change starting at login ({e})."),
        )
    })?;
    let mut settings = c.settings();
    settings.start_at_login = enabled;
    c.set_settings(settings)
}

/// The signatures of the commands written outside the macro.
pub fn extra_signatures() -> Vec<Signature> {
    vec![
        Signature {
            name: "set_start_at_login",
            args: vec![("enabled", <bool as ts_rs::TS>::name())],
            ret: <Settings as ts_rs::TS>::name(),
        },
        Signature {
            name: "start_call",
            args: vec![
                ("visit_id", <String as ts_rs::TS>::name()),
                ("frames", "Channel<ArrayBuffer>".to_owned()),
            ],
            ret: <CallState as ts_rs::TS>::name(),
        },
    ]
}

//! The window's commands. Each is one line: it calls one [`Controller`] method. The same
//! macro that defines them lists their signatures, from which the UI's typed bindings
//! (`ui/src/generated/desktop.ts`) are generated.

use rounds_desktop_core::controller::{AppStatus, LinkOutcome, SignInRequest};
use rounds_desktop_core::{ApiError, Controller, Settings};
use rounds_proto::{
    CreateInvitationRequest, CreateVisitRequest, CreatedVisit, Invitation, Participant, Queue,
    Visit,
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
    extra [set_start_at_login]
    /// The app's status: who is signed in, the connection, how many are waiting.
    fn status() -> AppStatus = |c| Ok(c.status());
    /// Sign in with a local account.
    fn sign_in(req: SignInRequest) -> AppStatus = |c| c.sign_in(req).await;
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
    vec![Signature {
        name: "set_start_at_login",
        args: vec![("enabled", <bool as ts_rs::TS>::name())],
        ret: <Settings as ts_rs::TS>::name(),
    }]
}

//! `rounds-desktop`: the Tauri 2 shell of the Rounds clinician app.
//!
//! The shell owns what needs the OS: the window (released while hidden, so an idle app
//! stays small), the tray, notifications, `rounds://` links and a single instance. All
//! decisions live in [`rounds_desktop_core::Controller`], which every command calls.

pub mod bindings;
mod command_names;
pub mod commands;
mod notify;
mod tray;

use std::sync::Arc;

use rounds_desktop_core::{AppEvent, Controller, Keychain, Policy};
use tauri::{AppHandle, Emitter, Manager, RunEvent, WebviewUrl, WebviewWindowBuilder};

pub use command_names::COMMAND_NAMES;

/// The event the window listens to for [`AppEvent`]s.
pub const EVENT: &str = "rounds://event";

/// The main window's label (capabilities/main.json grants this window only).
pub const MAIN: &str = "main";

/// When this process started running Rust code, for the start-up measurements.
static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// The window drew `what` (the queue): logged once per start with the time since the
/// process started, which the cold-start benchmark reads (`desktop-cold-start`).
pub fn mark_shown(what: &str) {
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if seen.iter().any(|w| w == what) || seen.len() > 16 {
        return;
    }
    seen.push(what.to_owned());
    let ms = STARTED.get().map_or(0, |t| t.elapsed().as_millis() as u64);
    tracing::info!(what, since_start_ms = ms, "shown");
}

/// Shows the main window, building it (and its web view) if it was released.
/// A main window is built or being built. Built during start-up, a window is not found by
/// label until the event loop runs, so a link followed meanwhile would build a second one.
static WINDOW_BUILT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn show_main(app: &AppHandle) {
    use std::sync::atomic::Ordering;
    if let Some(w) = app.get_webview_window(MAIN) {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
        return;
    }
    if WINDOW_BUILT.swap(true, Ordering::SeqCst) {
        return;
    }
    let built = WebviewWindowBuilder::new(app, MAIN, WebviewUrl::App("provider.html".into()))
        .title("Rounds")
        .inner_size(1200.0, 800.0)
        .min_inner_size(720.0, 520.0)
        .build();
    match built {
        Ok(window) => {
            tracing::info!("window opened");
            let controller = app.state::<Controller>().inner().clone();
            // Device lists are watched for hot-plug only while they can be seen. (The
            // controller's tasks live on the async runtime, not this event-loop thread.)
            let opened = controller.clone();
            tauri::async_runtime::spawn(async move { opened.set_window_open(true) });
            window.on_window_event(move |event| {
                if let tauri::WindowEvent::Destroyed = event {
                    WINDOW_BUILT.store(false, Ordering::SeqCst);
                    tracing::info!("window released");
                    let closed = controller.clone();
                    tauri::async_runtime::spawn(async move { closed.set_window_open(false) });
                }
            });
        }
        Err(e) => {
            WINDOW_BUILT.store(false, Ordering::SeqCst);
            tracing::error!(error = %e, "cannot open the window");
        }
    }
}

/// `rounds://` links from the command line of this or a second launch.
fn links_in(args: &[String]) -> Vec<String> {
    args.iter()
        .filter(|a| a.starts_with("rounds://"))
        .cloned()
        .collect()
}

fn follow_link(app: &AppHandle, link: String) {
    let controller = app.state::<Controller>().inner().clone();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        match controller.open_link(link).await {
            Ok(outcome) => tracing::info!(signed_in = outcome.signed_in, "link followed"),
            Err(e) => {
                tracing::warn!(code = %e.code, "link refused");
                notify::show_problem(&app, "Rounds could not open that link", &e.message);
            }
        }
        show_main(&app);
    });
}

/// Runs the app until the clinician quits from the tray.
pub fn run() {
    let _ = STARTED.set(std::time::Instant::now());
    let hidden = std::env::args().any(|a| a == "--hidden");
    let policy_path = rounds_desktop_core::policy::policy_path();
    let policy = match Policy::load(&policy_path) {
        Ok(p) => p,
        Err(e) => {
            // IT must hear that their policy is broken; run without it rather than not at all.
            eprintln!("rounds-desktop: {e:#}");
            Policy::default()
        }
    };

    // The system proxy, read once: REST, the live queue and the call's WebSocket all use it.
    let proxy = match rounds_client::ProxyConfig::from_vars(|name| std::env::var(name).ok()) {
        Ok(p) => p,
        Err(e) => {
            // IT must hear that the proxy setting is broken; going direct may still work.
            eprintln!("rounds-desktop: the proxy setting is ignored: {e}");
            rounds_client::ProxyConfig::direct()
        }
    };

    let mut builder = tauri::Builder::default()
        // First: a second launch hands its arguments (and rounds:// links) to this one.
        .plugin(tauri_plugin_single_instance::init(|app, args, _cwd| {
            tracing::info!("second launch forwarded");
            for link in links_in(&args) {
                follow_link(app, link);
            }
            show_main(app);
        }))
        .plugin(tauri_plugin_deep_link::init())
        .plugin(
            tauri_plugin_log::Builder::new()
                .level(log::LevelFilter::Info)
                .targets([
                    tauri_plugin_log::Target::new(tauri_plugin_log::TargetKind::Stderr),
                    tauri_plugin_log::Target::new(tauri_plugin_log::TargetKind::LogDir {
                        file_name: None,
                    }),
                ])
                .build(),
        )
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            Some(vec!["--hidden"]),
        ))
        .plugin(tauri_plugin_window_state::Builder::default().build());
    // Updates are verified against the release key's public half, given at build time;
    // builds without one (development, tests) have no updater.
    if let Some(pubkey) = option_env!("ROUNDS_UPDATER_PUBKEY") {
        builder = builder.plugin(tauri_plugin_updater::Builder::new().pubkey(pubkey).build());
    }

    let app = builder
        .invoke_handler(commands::handler())
        .setup(move |app| {
            let data = app.path().app_data_dir()?;
            let controller = Controller::with_proxy(
                policy,
                data.join("settings.json"),
                Arc::new(Keychain),
                proxy,
            );
            app.manage(controller.clone());
            tray::build(app.handle())?;
            forward_events(app.handle().clone(), controller.clone());

            // Off the start-up path: on Linux this runs `update-desktop-database` and
            // `xdg-mime` (a shell script, over 100 ms on a busy machine), and the window
            // need not wait for it.
            #[cfg(any(target_os = "linux", windows))]
            {
                let handle = app.handle().clone();
                std::thread::spawn(move || {
                    use tauri_plugin_deep_link::DeepLinkExt;
                    if let Err(e) = handle.deep_link().register_all() {
                        tracing::warn!(error = %e, "cannot register rounds:// links");
                    }
                });
            }
            {
                use tauri_plugin_deep_link::DeepLinkExt;
                let handle = app.handle().clone();
                app.deep_link().on_open_url(move |event| {
                    for url in event.urls() {
                        follow_link(&handle, url.to_string());
                    }
                });
            }

            let links = links_in(&std::env::args().collect::<Vec<_>>());
            let handle = app.handle().clone();
            tauri::async_runtime::spawn(async move {
                if links.is_empty() {
                    match controller.restore().await {
                        Ok(restored) => tracing::info!(restored, "start-up sign-in"),
                        Err(e) => tracing::info!(code = %e.code, "start-up sign-in failed"),
                    }
                }
                for link in links {
                    follow_link(&handle, link);
                }
            });
            if !hidden {
                show_main(app.handle());
            }
            Ok(())
        })
        .build(tauri::generate_context!())
        .expect("the Rounds window system could not start");

    app.run(|app, event| match event {
        // Closing the window releases it (and its web view); the app stays in the tray.
        RunEvent::ExitRequested { api, code, .. } if code.is_none() => {
            api.prevent_exit();
            tracing::info!("window closed; still running in the tray");
        }
        RunEvent::Exit => {
            tracing::info!("quitting");
            let _ = app;
        }
        _ => {}
    });
}

/// Sends the controller's events to the window, the tray and the notification daemon.
fn forward_events(app: AppHandle, controller: Controller) {
    let mut rx = controller.subscribe();
    tauri::async_runtime::spawn(async move {
        loop {
            let event = match rx.recv().await {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            };
            match &event {
                AppEvent::Status { status } => tray::update(&app, status),
                AppEvent::Queue { .. } => tray::update(&app, &controller.status()),
                AppEvent::Alert { alert } => notify::show_alert(&app, &controller, alert),
                // On the event loop, as start-up's own `show_main` is: from this task the
                // two could each find no window and build one apiece.
                AppEvent::OpenVisit { .. } | AppEvent::ShowNetworkCheck => {
                    let handle = app.clone();
                    let _ = app.run_on_main_thread(move || show_main(&handle));
                }
                AppEvent::Call { .. }
                | AppEvent::Chat { .. }
                | AppEvent::Devices { .. }
                | AppEvent::NetworkCheck { .. } => {}
            }
            let _ = app.emit(EVENT, &event);
        }
    });
}

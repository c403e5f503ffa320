//! The tray icon: status and the number of patients waiting, and the way back to the
//! window when it is closed.

use rounds_desktop_core::{AppStatus, Connection, Controller};
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Manager};

const TRAY: &str = "rounds";

/// The status line, e.g. "Online · 2 patients waiting".
pub fn status_line(status: &AppStatus) -> String {
    let connection = match &status.connection {
        Connection::SignedOut => return "Signed out".into(),
        Connection::Connecting => "Connecting…".to_owned(),
        Connection::Online => "Online".to_owned(),
        Connection::Reconnecting { retry_in_secs, .. } => {
            format!("Offline, retrying in {retry_in_secs} s")
        }
    };
    match status.waiting {
        0 => format!("{connection} · nobody waiting"),
        1 => format!("{connection} · 1 patient waiting"),
        n => format!("{connection} · {n} patients waiting"),
    }
}

pub fn build(app: &AppHandle) -> tauri::Result<()> {
    let status = MenuItem::with_id(app, "status", "Signed out", false, None::<&str>)?;
    let open = MenuItem::with_id(app, "open", "Open Rounds", true, None::<&str>)?;
    let check = MenuItem::with_id(
        app,
        "network_check",
        "Check the network",
        true,
        None::<&str>,
    )?;
    let sign_out = MenuItem::with_id(app, "sign_out", "Sign out", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit Rounds", true, None::<&str>)?;
    let menu = Menu::with_items(
        app,
        &[
            &status,
            &PredefinedMenuItem::separator(app)?,
            &open,
            &check,
            &sign_out,
            &PredefinedMenuItem::separator(app)?,
            &quit,
        ],
    )?;
    app.manage(StatusItem(status));
    let mut tray = TrayIconBuilder::with_id(TRAY)
        .tooltip("Rounds · signed out")
        .menu(&menu)
        .show_menu_on_left_click(false)
        .on_menu_event(|app, event| match event.id.as_ref() {
            "open" => crate::show_main(app),
            // The window follows the controller's request (see `forward_events`).
            "network_check" => app.state::<Controller>().show_network_check(),
            "sign_out" => {
                let controller = app.state::<Controller>().inner().clone();
                tauri::async_runtime::spawn(async move {
                    let _ = controller.sign_out().await;
                });
            }
            "quit" => app.exit(0),
            _ => {}
        })
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                crate::show_main(tray.app_handle());
            }
        });
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    tray.build(app)?;
    Ok(())
}

struct StatusItem(MenuItem<tauri::Wry>);

/// Shows the status in the tray's tooltip, menu and (where the tray has one) label.
pub fn update(app: &AppHandle, status: &AppStatus) {
    let line = status_line(status);
    if let Some(item) = app.try_state::<StatusItem>() {
        let _ = item.0.set_text(&line);
    }
    if let Some(tray) = app.tray_by_id(TRAY) {
        let _ = tray.set_tooltip(Some(format!("Rounds · {line}")));
        let label = (status.waiting > 0).then(|| status.waiting.to_string());
        let _ = tray.set_title(label);
    }
}

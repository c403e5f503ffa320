//! OS notifications through the desktop's notification service (D-Bus
//! `org.freedesktop.Notifications` on Linux). Clicking an alert opens its visit.

use rounds_desktop_core::{Alert, Controller};
use tauri::AppHandle;

const APP_NAME: &str = "Rounds";

/// Shows an alert; a click (the default action) opens the visit.
pub fn show_alert(app: &AppHandle, controller: &Controller, alert: &Alert) {
    let mut n = notify_rust::Notification::new();
    n.appname(APP_NAME)
        .summary(&alert.title)
        .body(&alert.body)
        .icon("health.rounds.desktop");
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        n.action("default", "Open visit")
            .hint(notify_rust::Hint::Category("im.received".into()))
            .hint(notify_rust::Hint::Resident(true));
    }
    let handle = match n.show() {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "no notification service; the alert shows in the window only");
            return;
        }
    };
    tracing::info!(kind = ?alert.kind, visit = %alert.visit_id, "notification shown");
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        let (app, controller, visit) = (app.clone(), controller.clone(), alert.visit_id.clone());
        // Waiting for the click blocks: do it on its own thread.
        std::thread::spawn(move || {
            handle.wait_for_action(|action| {
                if action == "default" {
                    tracing::info!("notification clicked");
                    controller.open_visit(visit);
                    crate::show_main(&app);
                }
            });
        });
    }
    #[cfg(not(all(unix, not(target_os = "macos"))))]
    {
        let _ = (app, controller, handle);
    }
}

/// Tells the clinician something went wrong while the window may be closed.
pub fn show_problem(_app: &AppHandle, title: &str, body: &str) {
    if let Err(e) = notify_rust::Notification::new()
        .appname(APP_NAME)
        .summary(title)
        .body(body)
        .show()
    {
        tracing::warn!(error = %e, "no notification service");
    }
}

/// Every command the window may invoke. `build.rs` turns each into an `allow-…` permission;
/// a test checks this list against the commands themselves.
pub const COMMAND_NAMES: &[&str] = &[
    "status",
    "sign_in",
    "sign_out",
    "open_link",
    "queue",
    "participants",
    "admit",
    "deny",
    "remove",
    "end_visit",
    "running_late",
    "invite",
    "create_visit",
    "settings",
    "set_settings",
    "set_start_at_login",
];

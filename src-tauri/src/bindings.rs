//! The UI's typed bindings, generated from the commands and the controller's types.
//!
//! `ui/src/generated/desktop.ts` is this module's output. A test fails when it is stale;
//! `ROUNDS_WRITE_BINDINGS=1 cargo test -p rounds-desktop bindings` rewrites it.

use rounds_desktop_core::alerts::{Alert, AlertKind};
use rounds_desktop_core::call::{CallParticipant, CallState, Device, DeviceSlot, Devices};
use rounds_desktop_core::controller::{
    AppEvent, AppStatus, Connection, LinkOutcome, OpenRequest, SignInRequest, SsoOptions,
};
use rounds_desktop_core::netcheck::{CheckPath, NetVerdict, NetworkCheck, PathCheck, PathState};
use rounds_desktop_core::{ApiError, Settings};
use ts_rs::TS;

use crate::commands::{Signature, extra_signatures, signatures};

/// Types the window uses that come from `crates/proto` (generated into `proto.ts`).
const FROM_PROTO: &[&str] = &[
    "ChatMessage",
    "Clinician",
    "CreateInvitationRequest",
    "CreateVisitRequest",
    "CreatedVisit",
    "EhrChoice",
    "HostAction",
    "Invitation",
    "Participant",
    "ParticipantState",
    "Queue",
    "Role",
    "Visit",
];

fn camel(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for ch in name.chars() {
        if ch == '_' {
            upper = true;
        } else if upper {
            out.extend(ch.to_uppercase());
            upper = false;
        } else {
            out.push(ch);
        }
    }
    out
}

fn command_ts(s: &Signature) -> String {
    let params: Vec<String> = s.args.iter().map(|(n, t)| format!("{n}: {t}")).collect();
    let args: Vec<&str> = s.args.iter().map(|(n, _)| *n).collect();
    let payload = if args.is_empty() {
        String::new()
    } else {
        format!(", {{ {} }}", args.join(", "))
    };
    format!(
        "  {}: ({}): Promise<{}> => invoke<{}>(\"{}\"{}),\n",
        camel(s.name),
        params.join(", "),
        s.ret,
        s.ret,
        s.name,
        payload
    )
}

/// The whole `desktop.ts`.
pub fn typescript() -> String {
    let mut out = String::from(
        "// Generated from src-tauri (commands.rs) and crates/desktop; do not edit.\n\
         // Regenerate: ROUNDS_WRITE_BINDINGS=1 cargo test -p rounds-desktop bindings\n\n\
         import { invoke, Channel } from \"@tauri-apps/api/core\";\n",
    );
    out.push_str(&format!(
        "import type {{ {} }} from \"./proto\";\n\n",
        FROM_PROTO.join(", ")
    ));
    for decl in [
        ApiError::decl(),
        Connection::decl(),
        AppStatus::decl(),
        AlertKind::decl(),
        Alert::decl(),
        AppEvent::decl(),
        SignInRequest::decl(),
        SsoOptions::decl(),
        LinkOutcome::decl(),
        Settings::decl(),
        OpenRequest::decl(),
        Device::decl(),
        Devices::decl(),
        DeviceSlot::decl(),
        CallParticipant::decl(),
        CallState::decl(),
        CheckPath::decl(),
        PathState::decl(),
        PathCheck::decl(),
        NetVerdict::decl(),
        NetworkCheck::decl(),
    ] {
        out.push_str("export ");
        out.push_str(&decl);
        out.push_str("\n\n");
    }
    out.push_str(&format!(
        "/** The event carrying an AppEvent. */\nexport const EVENT = \"{}\";\n\n",
        crate::EVENT
    ));
    out.push_str("/** Every command of the Rounds window, typed. Errors reject with an ApiError. */\nexport const commands = {\n");
    for s in signatures().iter().chain(extra_signatures().iter()) {
        out.push_str(&command_ts(s));
    }
    out.push_str("};\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_are_current() {
        let path = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(
                || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
                std::path::PathBuf::from,
            )
            .join("../ui/src/generated/desktop.ts");
        let fresh = typescript();
        if std::env::var_os("ROUNDS_WRITE_BINDINGS").is_some() {
            std::fs::write(&path, &fresh).expect("write the bindings");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "ui/src/generated/desktop.ts is stale: run ROUNDS_WRITE_BINDINGS=1 cargo test -p rounds-desktop bindings"
        );
    }

    #[test]
    fn every_command_has_a_permission_and_a_binding() {
        let mut defined: Vec<&str> = signatures()
            .iter()
            .chain(extra_signatures().iter())
            .map(|s| s.name)
            .collect();
        let mut listed = crate::COMMAND_NAMES.to_vec();
        defined.sort_unstable();
        listed.sort_unstable();
        assert_eq!(
            defined, listed,
            "src/command_names.rs and commands.rs disagree"
        );

        let capability: serde_json::Value =
            serde_json::from_str(include_str!("../capabilities/main.json"))
                .expect("capabilities/main.json");
        let granted: Vec<String> = capability["permissions"]
            .as_array()
            .expect("permissions")
            .iter()
            .filter_map(|p| p.as_str())
            .map(str::to_owned)
            .collect();
        for name in crate::COMMAND_NAMES {
            let permission = format!("allow-{}", name.replace('_', "-"));
            assert!(
                granted.contains(&permission),
                "the window lacks {permission}"
            );
        }
        // Least privilege: nothing beyond our commands and event listening.
        for p in &granted {
            assert!(
                p.starts_with("allow-") || p.starts_with("core:event:"),
                "unexpected permission {p}"
            );
        }
    }

    #[test]
    fn names_become_camel_case() {
        assert_eq!(camel("set_start_at_login"), "setStartAtLogin");
        assert_eq!(camel("queue"), "queue");
    }
}

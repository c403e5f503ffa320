#!/usr/bin/env bash
# Builds and starts Rounds on this machine: the companion server in demo mode, with an
# embedded SQLite store in ./data. It prints the clinician login and the patient link.
# Arguments are passed on to `rounds-server demo` (try --help).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh

say() { printf '==> %s\n' "$*"; }

bash scripts/install-deps.sh

say "building rounds-server (release)"
cargo build --release -p rounds-server

# --- Desktop app -------------------------------------------------------------------------
# When the desktop app (src-tauri/) lands, build and start it here, but only where there is
# a screen to show it on:
#
#   if [[ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]]; then
#       say "building rounds-desktop (release)"
#       cargo build --release -p rounds-desktop
#       "$CARGO_TARGET_DIR/release/rounds-desktop" &
#   fi
#
# The server stays in the foreground below, so Ctrl-C ends the whole demo.
# -----------------------------------------------------------------------------------------

say "starting rounds-server demo"
exec "$CARGO_TARGET_DIR/release/rounds-server" demo "$@"

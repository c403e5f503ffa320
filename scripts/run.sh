#!/usr/bin/env bash
# Builds and starts Rounds on this machine: the companion server in demo mode, with an
# embedded SQLite store in ./data, and, where there is a display, the clinician desktop app
# signed in to it. It prints the clinician login and the patient link.
# Arguments are passed on to `rounds-server demo` (try --help).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh

say() { printf '==> %s\n' "$*"; }

bash scripts/install-deps.sh

say "building the patient pages and the clinician window (ui/)"
(cd ui && npm run build)

say "building rounds-server (release)"
cargo build --release -p rounds-server

# --- Desktop app -------------------------------------------------------------------------
# Where there is a screen, the clinician app starts too, signed in to the demo clinician by
# a one-time link the demo server writes (it works once, for two minutes).
desktop_link=""
if [[ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" && -z "${ROUNDS_NO_DESKTOP:-}" ]]; then
    say "building rounds-desktop (release; the first build takes a while)"
    cargo build --release -p rounds-desktop
    link_dir="$(mktemp -d)"
    desktop_link="$link_dir/desktop-link"
    (
        for _ in $(seq 1 600); do
            if [[ -s "$desktop_link" ]]; then
                say "starting the Rounds desktop app"
                "$CARGO_TARGET_DIR/release/rounds-desktop" "$(cat "$desktop_link")" &
                rm -rf "$link_dir"
                exit 0
            fi
            sleep 0.2
        done
        echo "the demo server did not write a desktop sign-in link; start rounds-desktop yourself" >&2
    ) &
else
    say "no display: starting the server only (the desktop app needs a screen)"
fi
# The server stays in the foreground below, so Ctrl-C ends the whole demo.
# -----------------------------------------------------------------------------------------

say "starting rounds-server demo"
if [[ -n "$desktop_link" ]]; then
    exec "$CARGO_TARGET_DIR/release/rounds-server" demo --desktop-link "$desktop_link" "$@"
fi
exec "$CARGO_TARGET_DIR/release/rounds-server" demo "$@"

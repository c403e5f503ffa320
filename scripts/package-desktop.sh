#!/usr/bin/env bash
# Packages the clinician desktop app: a .deb and an AppImage under
# $CARGO_TARGET_DIR/release/bundle/. Installs tauri-cli 2.x with cargo if it is missing.
# For signed updates and code signing, see docs/desktop.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh

say() { printf '==> %s\n' "$*"; }

bash scripts/install-deps.sh

if ! cargo tauri --version 2>/dev/null | grep -q '^tauri-cli 2\.'; then
    say "installing tauri-cli 2.x (cargo install; a few minutes, once)"
    cargo install tauri-cli --version '^2' --locked
fi

say "building and packaging rounds-desktop"
cd src-tauri
cargo tauri build --bundles deb appimage "$@"
say "packages:"
find "$CARGO_TARGET_DIR/release/bundle" -maxdepth 2 \( -name '*.deb' -o -name '*.AppImage' \) -print

#!/usr/bin/env bash
# Packages the clinician desktop app: a .deb, then an AppImage, under
# $CARGO_TARGET_DIR/release/bundle/. It builds the release app as the tests do (so CI's build
# is reused) and bundles it with `tauri bundle`, the second half of `cargo tauri build`. The
# Tauri CLI is the one `cargo install tauri-cli` builds when that is installed, else the same
# CLI from the UI's npm packages (no compile).
#
# The AppImage step downloads linuxdeploy and AppRun from GitHub; where GitHub cannot be
# reached it fails after the .deb is made (docs/desktop.md, "Packaging", says what it needs).
# For signed updates and code signing, see docs/desktop.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh

say() { printf '==> %s\n' "$*"; }

bash scripts/install-deps.sh

if cargo tauri --version 2>/dev/null | grep -q '^tauri-cli 2\.'; then
    tauri=(cargo tauri)
else
    tauri=("$ROUNDS_ROOT/ui/node_modules/.bin/tauri")
fi
say "using $("${tauri[@]}" --version)"

say "building rounds-desktop (release)"
(cd ui && npm run build)
cargo build --release -p rounds-desktop
cd src-tauri
say "packaging it as a .deb"
"${tauri[@]}" bundle --bundles deb "$@"
say "packaging the same build as an AppImage"
if ! "${tauri[@]}" bundle --bundles appimage "$@"; then
    say "the AppImage was not made: the bundler needs linuxdeploy and AppRun from GitHub (see docs/desktop.md)"
    status=1
fi
say "packages:"
find "$CARGO_TARGET_DIR/release/bundle" -maxdepth 2 \( -name '*.deb' -o -name '*.AppImage' \) -print
exit "${status:-0}"

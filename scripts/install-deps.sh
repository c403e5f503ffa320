#!/usr/bin/env bash
# Installs what building and testing Rounds needs on Debian 12 or Ubuntu, then the UI's npm
# packages. Installs only what is missing, so running it again does nothing.
#
# Run as root, or as a user who may use sudo.
set -euo pipefail

# ---------------------------------------------------------------------------------------
# System packages (Debian/Ubuntu names). Add new needs here, one per line.
SYSTEM_PACKAGES=(
    build-essential
    pkg-config
    curl
    ca-certificates
    git
    python3
    python3-aiosmtpd # SMTP sink for the email tests
    sqlite3
    libvpx-dev       # VP8 encode and decode in the Rust media client (crates/media)
    libopus-dev      # Opus encode and decode in the Rust media client (crates/media)
    chromium         # the patient pages' end-to-end tests (tests/e2e)
    fonts-liberation # readable text in those tests' screenshots
    iproute2         # ip netns and veth for the reliability suite (tests/reliability)
    nftables         # the reliability suite's firewalls, counters, loss and link cuts
    iptables         # iptables-legacy NFQUEUE: the loss tests' delay where the kernel has no netem
    janus            # the benchmark peer: capacity against Janus' VideoRoom (tests/bench)
    janus-demos      # Janus' own janus.js, for the join-time page against Janus (tests/e2e/bench/janus)
    # The clinician desktop app (src-tauri): Tauri 2 on WebKitGTK, tray, keychain, sound.
    file
    libwebkit2gtk-4.1-dev
    libxdo-dev
    libssl-dev
    libayatana-appindicator3-dev
    librsvg2-dev
    libdbus-1-dev    # D-Bus: notifications and the Secret Service
    libasound2-dev   # cpal (microphone, speaker)
    libclang-dev     # nokhwa's bindgen (camera)
    clang
    libv4l-dev       # nokhwa on Linux (camera)
    libwebrtc-audio-processing-dev # echo cancellation, noise suppression, gain control
    libxcb1-dev      # screen share on X11 (crates/media, feature native)
    # The desktop app's tests: a real desktop session without a screen or sound card.
    xvfb
    xauth
    imagemagick      # screenshots
    dbus-x11
    dunst            # the notification daemon
    libnotify-bin
    gnome-keyring    # the Secret Service
    libsecret-tools  # secret-tool, to check what the keychain holds
    pulseaudio       # a null sink and a sine source stand in for speaker and microphone
    pulseaudio-utils
    libasound2-plugins
    alsa-utils
    xdg-utils
    desktop-file-utils
    tinyproxy-bin    # a real HTTP proxy: `rounds-server check` and the desktop app's REST, live queue
                     # and signaling through HTTPS_PROXY (the binary only: no system service)
)
# ---------------------------------------------------------------------------------------

# Oldest Node.js the UI toolchain (eslint 9, vite 6) supports; Debian 12 ships 18.19.
MIN_NODE="18.18"

# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

say() { printf '==> %s\n' "$*"; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

is_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

# "MAJOR.MINOR" of the node on PATH, or nothing.
node_version() {
    local v
    v="$(node --version 2>/dev/null)" || return 0
    v="${v#v}"
    printf '%s' "${v%.*}"
}

# True if version $1 (MAJOR.MINOR) is at least $2.
at_least() {
    [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]
}

node_ok() {
    local v
    v="$(node_version)"
    [[ -n "$v" ]] && at_least "$v" "$MIN_NODE"
}

sudo_cmd=()
as_root() {
    if [[ $EUID -ne 0 && ${#sudo_cmd[@]} -eq 0 ]]; then
        command -v sudo >/dev/null 2>&1 ||
            die "installing packages needs root; run this as root or install sudo."
        # Without a terminal nobody can type a password: fail instead of waiting.
        if [[ -t 0 ]]; then sudo_cmd=(sudo); else sudo_cmd=(sudo -n); fi
    fi
    "${sudo_cmd[@]}" "$@"
}

# --- System packages ---------------------------------------------------------------------
wanted=("${SYSTEM_PACKAGES[@]}")
if ! node_ok; then
    wanted+=(nodejs npm)
elif ! command -v npm >/dev/null 2>&1; then
    wanted+=(npm)
fi

missing=()
for pkg in "${wanted[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done

if [[ ${#missing[@]} -gt 0 ]]; then
    command -v apt-get >/dev/null 2>&1 ||
        die "this is not a Debian or Ubuntu system; install these packages yourself, then run this again: ${missing[*]}"
    say "installing system packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get update -qq -o DPkg::Lock::Timeout=900
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -o DPkg::Lock::Timeout=900 --no-install-recommends "${missing[@]}"
fi

if ! node_ok; then
    found="$(node_version)"
    if [[ -n "$found" ]]; then found="this system has ${found}"; else found="no node was found"; fi
    die "the UI needs Node.js ${MIN_NODE} or newer, but ${found}. Install a newer Node.js (for example from nodejs.org) and run this again."
fi
command -v npm >/dev/null 2>&1 || die "npm is missing; install it alongside Node.js and run this again."

# --- Rust --------------------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1; then
    die "Rust is not installed. Install it with rustup (see https://rustup.rs), open a new shell so cargo is on your PATH, and run this again."
fi
rust_min="$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$ROUNDS_ROOT/Cargo.toml" 2>/dev/null | head -n1)"
rust_have="$(rustc --version 2>/dev/null | awk '{print $2}')"
if [[ -n "$rust_min" ]] && ! at_least "${rust_have%%-*}" "$rust_min"; then
    die "Rounds needs Rust ${rust_min} or newer, but rustc is ${rust_have:-missing}. Update it with \`rustup update stable\` and run this again."
fi

# cargo-fuzz drives the fuzz targets in fuzz/ (scripts/fuzz.sh).
if ! cargo fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz (cargo install)"
    cargo install --locked cargo-fuzz --version 0.13.2
fi

# --- npm packages ------------------------------------------------------------------------
# Installs a folder's locked packages when they are missing or older than the lock file.
npm_ci() {
    local dir="$1" what="$2"
    shift 2
    [[ -f "$dir/package-lock.json" ]] || return 0
    local stamp="$dir/node_modules/.package-lock.json"
    if [[ ! -f "$stamp" || "$dir/package-lock.json" -nt "$stamp" ]]; then
        say "installing $what (npm ci in ${dir#"$ROUNDS_ROOT"/})"
        (cd "$dir" && npm ci --no-audit --no-fund "$@")
    fi
}
npm_ci "$ROUNDS_ROOT/ui" "UI packages"
# esbuild's install script only fetches a binary the tests do not need.
npm_ci "$ROUNDS_ROOT/tests/e2e" "end-to-end test packages" --ignore-scripts
# The SSO and EHR-launch peers; a dependency of the FHIR server downloads a binary on install.
npm_ci "$ROUNDS_ROOT/tests/sso" "SSO and EHR test peers" --ignore-scripts

say "dependencies ready"

# shellcheck shell=bash
# Shared environment for the scripts in this folder. Source it; do not run it.
#
# Safe to source more than once. Values already set by the caller win.

ROUNDS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROUNDS_ROOT

# rustup installs into ~/.cargo/bin, which a fresh login shell may not have on PATH yet.
if [[ -d "$HOME/.cargo/bin" && ":$PATH:" != *":$HOME/.cargo/bin:"* ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

# Build output lives outside the clone: it grows to several GB and should not be swept up
# by editors, file watchers or backups of the source tree.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rounds/target}"

if [[ "${CI:-}" == "true" ]]; then
    export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-always}"
    # Incremental state only costs disk and time on a build that starts cold.
    export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
else
    export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-auto}"
fi
export CARGO_NET_RETRY="${CARGO_NET_RETRY:-5}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

export NPM_CONFIG_AUDIT="${NPM_CONFIG_AUDIT:-false}"
export NPM_CONFIG_FUND="${NPM_CONFIG_FUND:-false}"
export NPM_CONFIG_UPDATE_NOTIFIER="${NPM_CONFIG_UPDATE_NOTIFIER:-false}"

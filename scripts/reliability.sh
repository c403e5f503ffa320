#!/usr/bin/env bash
# The reliability suite (issue 8): firewalls, faults, abuse and loss against the real
# rounds-server in network namespaces. Needs root (ip netns, nftables, mount).
#
#   scripts/reliability.sh ci      the CI-sized run that scripts/test.sh does (about 4 min),
#                                  the 5 % and 10 % loss tests included
#   scripts/reliability.sh full    the full counts: 1,000,000 garbage datagrams and 2,000
#                                  garbage TCP connections, 1,000 tokenless WebSockets,
#                                  1,000 slowloris clients; plus the loss tests
#   scripts/reliability.sh loss    only the 5 % and 10 % loss tests
#   scripts/reliability.sh load    50 visits x 3 participants for 30 minutes (loadgen, release),
#                                  judged (no crash, memory steady, loss < 0.5 %) and written
#                                  into docs/reliability.md
#   scripts/reliability.sh load-ci the same shape for 2 minutes, judged the same way
#
# Results and figures: docs/reliability.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
# shellcheck source=scripts/env.sh
source scripts/env.sh

if [[ $EUID -ne 0 ]]; then
    echo "error: the reliability suite creates network namespaces and mounts; run it as root." >&2
    exit 1
fi

nextest() {
    cargo build -q -p rounds-server --bin rounds-server
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run -p rounds-reliability --no-fail-fast --no-capture "$@"
    elif [[ "$*" == "-E test(/^loss::/)" ]]; then
        cargo test -p rounds-reliability -- --test-threads=1 loss::
    else
        cargo test -p rounds-reliability -- --test-threads=1
    fi
}

case "${1:-ci}" in
    ci)
        nextest
        ;;
    full)
        ROUNDS_GARBAGE_DATAGRAMS=1000000 ROUNDS_GARBAGE_TCP=2000 \
            ROUNDS_TOKENLESS_WS=1000 ROUNDS_SLOWLORIS=1000 \
            nextest
        ;;
    loss)
        nextest -E 'test(/^loss::/)'
        ;;
    load | load-ci)
        # 150 live VP8 encoders do not fit on two cores: participants replay a clip encoded
        # once (each still publishes and receives over its own DTLS-SRTP connections).
        cargo build -q --release -p rounds-server -p rounds-bench
        if [[ "$1" == load ]]; then
            seconds=1800 warm_up=120 report=(--report docs/reliability.md --section load)
        else
            seconds=120 warm_up=40 report=()
        fi
        nice -n 10 "$CARGO_TARGET_DIR/release/loadgen" --rooms 50 --participants 3 \
            --video tiny --replay --seconds "$seconds" --warm-up "$warm_up" --check \
            "${report[@]}"
        ;;
    *)
        echo "usage: $0 [ci|full|loss|load|load-ci]" >&2
        exit 2
        ;;
esac

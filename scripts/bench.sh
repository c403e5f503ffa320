#!/usr/bin/env bash
# Reruns the Rounds benchmark suite and writes docs/benchmarks.md (each measure replaces its
# own section). Run it on an otherwise idle machine with at least two cores: the capacity
# measure pins the SFU to core 0 and the load generator to core 1.
#
#   scripts/bench.sh            every measure, full size (about 30 minutes plus the soak)
#   scripts/bench.sh smoke      every measure in a tiny form, debug build (the test command's
#                               "benchmark smoke runs" step); writes nothing
#   scripts/bench.sh capacity|packet-cost|soak|tokens|join|loadgen   one measure (join: the
#                               patient pages against Janus, about 20 minutes)
#   scripts/bench.sh desktop    the clinician app: idle 10 min, cold start, CPU in a call
#                               (prints the figures; docs/benchmarks.md gets them by hand)
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
# shellcheck source=scripts/env.sh
source scripts/env.sh

mode="${1:-all}"
report=docs/benchmarks.md
bin="$CARGO_TARGET_DIR/release"
say() { printf '==> %s\n' "$*"; }

release_build() { cargo build -q --release -p rounds-server -p rounds-bench; }

capacity() { "$bin/capacity" --rooms 4 --step 25 --report "$report"; }
packet_cost() { "$bin/packet-cost" --report "$report"; }
soak() { "$bin/soak" --cycles "${SOAK_CYCLES:-10000}" --report "$report"; }
tokens() { "$bin/token-bench" --report "$report"; }
loadgen() {
    "$bin/loadgen" --rooms 1 --participants 2 --seconds 20 --video 720p \
        --report "$report" --section sfu-2party
}
# Measure 4: click to first remote frame in Chromium, 100 joins of each flow, Rounds' patient
# pages against a page on Janus' janus.js (the browsers are driven from tests/e2e).
join() {
    (cd ui && npm run build >/dev/null) && release_build &&
        "$bin/join-time" --joins 100 --report "$report"
}

# The desktop app's measures run its release binary in an Xvfb session (tests/desktop);
# its call is measured against call-peer (crates/client), release-built too.
desktop() {
    (cd ui && npm run build) &&
        cargo build -q --release -p rounds-desktop -p rounds-client --bins &&
        cargo build -q -p rounds-desktop-tests --bins || return 1
    local debug="$CARGO_TARGET_DIR/debug"
    "$debug/desktop-idle" --seconds 600 &&
        "$debug/desktop-cold-start" --runs 10 &&
        "$debug/desktop-call-cpu" --seconds 60
}

smoke() {
    local debug="$CARGO_TARGET_DIR/debug"
    # rounds-client's bin is call-peer, the other party of desktop-call-cpu.
    cargo build -q -p rounds-server -p rounds-bench -p rounds-desktop-tests -p rounds-client --bins || return 1
    local failed=0
    for run in "token-bench --smoke" "loadgen --smoke" "desktop-idle --smoke" "desktop-cold-start --smoke" "desktop-call-cpu --smoke" \
        "capacity --smoke" "packet-cost --smoke --core -1" "soak --smoke --server-core -1 --generator-core -1" \
        "join-time --smoke"; do
        say "smoke: $run"
        # shellcheck disable=SC2086
        timeout 120 "$debug"/$run >/dev/null || { say "FAILED: $run"; failed=1; }
    done
    return "$failed"
}

case "$mode" in
smoke) smoke ;;
all)
    release_build || exit 1
    status=0
    for m in capacity packet_cost soak tokens loadgen join; do
        say "$m"
        "$m" || { say "FAILED: $m"; status=1; }
    done
    exit "$status"
    ;;
capacity | packet-cost | soak | tokens | loadgen)
    release_build && "${mode//-/_}"
    ;;
join) join ;;
desktop) desktop ;;
*)
    echo "usage: scripts/bench.sh [all|smoke|capacity|packet-cost|soak|tokens|loadgen|join|desktop]" >&2
    exit 2
    ;;
esac

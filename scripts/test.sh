#!/usr/bin/env bash
# Runs every test: the Rust workspace (unit, integration, doc tests) and the UI (lint, type
# check, unit tests). Every step runs even if an earlier one fails; the exit status is
# non-zero if any failed.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
# shellcheck source=scripts/env.sh
source scripts/env.sh

started=$SECONDS
# Each line carries the minutes and seconds since the start, so slow steps stand out.
say() {
    local t=$((SECONDS - started))
    printf '==> [%02d:%02d] %s\n' $((t / 60)) $((t % 60)) "$*"
}

bash scripts/install-deps.sh || exit 1
# A long-lived build cache fills the disk otherwise, and then everything fails at once.
bash scripts/prune-cache.sh || exit 1

passed=()
failed=()
# Each step's output is also kept, so that the end of the run can repeat what a failed step
# said: a CI log is often read from its tail only.
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
failed_logs=()
step() {
    local name="$1"
    shift
    local log
    log="$logs/$(( ${#passed[@]} + ${#failed[@]} )).log"
    say "$name"
    if "$@" 2>&1 | tee "$log"; then
        passed+=("$name")
    else
        failed+=("$name")
        failed_logs+=("$log")
        say "FAILED: $name"
    fi
}
# The lines of a failed step's log that name what failed, then its last lines.
recap() {
    local log="$1"
    echo "---- lines that name a failure:"
    sed 's/\x1b\[[0-9;]*m//g' "$log" |
        grep -aE '(^|[^a-z])(FAIL|FAILED|failed|panicked|error(\[|:)|not ok|TIMEOUT|SIGSEGV|SIGABRT)' |
        grep -av 'fail 0' | tail -n 40
    echo "---- its last lines:"
    tail -n 25 "$log"
}
in_ui() { (cd ui && "$@"); }

# The server serves the built patient app; its end-to-end tests need it.
step "ui build" in_ui npm run build
# The desktop app's tests (tests/desktop) run its release binary, which embeds the built UI.
step "desktop app release build" cargo build --release -p rounds-desktop

# The reliability suite (tests/reliability) runs in its own step below.
if cargo nextest --version >/dev/null 2>&1; then
    step "rust tests (cargo nextest)" cargo nextest run --workspace --all-targets --no-fail-fast \
        -E 'not package(rounds-reliability)'
else
    step "rust tests (cargo test)" cargo test --workspace --all-targets --no-fail-fast \
        --exclude rounds-reliability
fi
step "rust doc tests" cargo test --workspace --doc
# Every benchmark also runs in a tiny smoke form, so none of them rots.
# The list lives in scripts/bench.sh (capacity against Janus, cost per packet, soak, ...).
bench_smoke() { bash scripts/bench.sh smoke; }
step "benchmark smoke runs" bench_smoke
step "ui lint" in_ui npm run lint
step "ui typecheck" in_ui npm run typecheck
step "ui tests" in_ui npm test
# Firewalls, faults and abuse against the real server in network namespaces (needs root;
# fails, never skips, without it). The long forms: scripts/reliability.sh full|loss|load.
step "reliability, CI-sized (namespaces, nftables)" bash scripts/reliability.sh ci
# The load run's shape (50 visits of 3 people) for 2 minutes; 30 minutes: reliability.sh load.
step "load, CI-sized (50 visits x 3 for 2 minutes)" bash scripts/reliability.sh load-ci
# Every fuzz target for 20 s; the 10-million-execution run is scripts/fuzz.sh long.
step "fuzzing, short (cargo-fuzz)" bash scripts/fuzz.sh ci
patient_e2e() { cargo build -q -p rounds-server && (cd tests/e2e && npm test); }
step "patient pages end-to-end (Chromium)" patient_e2e

# Tests that failed and then passed on a retry (nextest's FLAKY) are named even when all passed.
if flaky="$(sed 's/\x1b\[[0-9;]*m//g' "$logs"/*.log |
    grep -aE '(^|[^A-Za-z])(FLAKY [0-9]+/[0-9]+|TRY [0-9]+ (FAIL|TRMNTD))')"; then
    say "tests that needed a retry:"
    printf '%s\n' "$flaky"
fi
total=$((${#passed[@]} + ${#failed[@]}))
if [[ ${#failed[@]} -gt 0 ]]; then
    for i in "${!failed[@]}"; do
        say "recap of the failed step: ${failed[$i]}"
        recap "${failed_logs[$i]}"
    done
    list="$(printf '%s, ' "${failed[@]}")"
    say "tests FAILED: ${#failed[@]} of ${total} steps failed: ${list%, }"
    exit 1
fi
say "tests passed: all ${total} steps"

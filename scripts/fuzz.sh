#!/usr/bin/env bash
# Fuzzing with cargo-fuzz (libFuzzer). The targets live in fuzz/, a workspace of their own.
#
#   scripts/fuzz.sh ci      every target for 20 s (what scripts/test.sh runs)
#   scripts/fuzz.sh long [TARGET...]
#                           each target (default: all) for 10,000,000 executions, at the
#                           lowest CPU priority, built without AddressSanitizer unless
#                           ROUNDS_FUZZ_SANITIZER=address; prints executions and time
#   scripts/fuzz.sh run TARGET [libFuzzer flags...]
#
# cargo-fuzz needs nightly compiler flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain take
# them, for this build only. New inputs that reach new code are added to fuzz/corpus/; commit
# them (run `cargo fuzz cmin TARGET` first to keep the corpus small). A crash leaves its input
# in fuzz/artifacts/ and fails the script.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz" || exit 1
# shellcheck source=scripts/env.sh
source ../scripts/env.sh
# The fuzz build uses sanitizer flags: keep it out of the workspace's target folder, and
# outside the clone, so a fresh checkout reuses it.
export CARGO_TARGET_DIR="${ROUNDS_FUZZ_TARGET_DIR:-$HOME/.cache/rounds/fuzz-target}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "error: cargo-fuzz is missing; scripts/install-deps.sh installs it." >&2
    exit 1
fi

targets=(signaling_decode rest_bodies sdp_offer media_demux)

run() {
    local target="$1"
    shift
    mkdir -p "corpus/$target"
    cargo fuzz run -O "$target" "corpus/$target" -- -max_len=4096 "$@"
}

case "${1:-ci}" in
    ci)
        # New inputs go to a scratch folder, so the test command leaves the tree clean; the
        # committed corpus is read as the seed.
        scratch="$(mktemp -d)"
        trap 'rm -rf "$scratch"' EXIT
        for t in "${targets[@]}"; do
            mkdir -p "$scratch/$t"
            cargo fuzz run -O "$t" "$scratch/$t" "corpus/$t" -- -max_len=4096 -max_total_time=20
        done
        ;;
    long)
        shift
        [[ $# -gt 0 ]] && targets=("$@")
        # AddressSanitizer makes the media targets about five times slower (sdp_offer: about
        # 500 executions a second with it, 2,700 without), which puts 10,000,000 out of reach
        # of a working day. Rounds' own crates forbid unsafe code, so what a long run hunts is
        # panics, aborts, hangs and runaway memory, which libFuzzer catches without it; the CI
        # run keeps AddressSanitizer on every change for the unsafe code of dependencies.
        sanitizer="${ROUNDS_FUZZ_SANITIZER:-none}"
        if [[ "$sanitizer" != address ]]; then
            export CARGO_TARGET_DIR="${CARGO_TARGET_DIR}-$sanitizer"
        fi
        for t in "${targets[@]}"; do
            log="$(mktemp)"
            started=$SECONDS
            # libFuzzer reports on stderr; keep its last lines for the summary.
            if ! nice -n 19 cargo fuzz run -O -s "$sanitizer" "$t" "corpus/$t" -- -max_len=4096 \
                -runs=10000000 -print_final_stats=1 2>&1 | tee "$log"; then
                echo "==> $t: FAILED (see fuzz/artifacts/$t)" >&2
                rm -f "$log"
                exit 1
            fi
            echo "==> $t: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log" | tail -1)," \
                "$((SECONDS - started)) s with the build, sanitizer $sanitizer, no crash"
            rm -f "$log"
        done
        ;;
    run)
        shift
        run "$@"
        ;;
    *)
        echo "usage: $0 [ci|long|run TARGET ...]" >&2
        exit 2
        ;;
esac

#!/usr/bin/env bash
# Keeps the shared build cache from filling the disk.
#
# Cargo never deletes anything from a target dir: every change of features, flags or code
# leaves the previous test binaries (hundreds of MB each) and libraries behind. A long-lived
# cache on a CI machine or a developer's workstation grows until the disk is full, and then
# every build, npm install and SQLite write fails at once.
#
# When the free space on the cache's disk is under ROUNDS_CACHE_MIN_FREE_GB (default 30),
# this removes, under each profile of $CARGO_TARGET_DIR and $ROUNDS_FUZZ_TARGET_DIR:
#   - incremental compilation state;
#   - every test or binary executable in deps/ but the newest of its name;
#   - every library in deps/ but the three newest builds of its name.
# Whatever it removes, cargo rebuilds on demand; nothing else is touched.
#
# Usage: scripts/prune-cache.sh [--force]   (--force prunes whatever the free space)
set -euo pipefail

# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

min_free_gb="${ROUNDS_CACHE_MIN_FREE_GB:-30}"
force=0
[[ "${1:-}" == "--force" ]] && force=1

free_gb() {
    local dir=$1
    while [[ ! -d "$dir" ]]; do dir=$(dirname "$dir"); done
    df -Pk "$dir" | awk 'NR == 2 { printf "%d", $4 / 1048576 }'
}

prune_deps() {
    local deps=$1
    [[ -d "$deps" ]] || return 0
    # One line per artifact: mtime, kind (exe or lib), crate name, build hash, file name.
    find "$deps" -maxdepth 1 -type f -printf '%T@ %f\n' |
        awk -v hex16="$(printf '[0-9a-f]%.0s' {1..16})" '{
            # mawk, the default awk on Debian, has no {16} repetition.
            file = $2
            if (!match(file, "-" hex16 "(\\.|$)")) next
            stem = substr(file, 1, RSTART - 1)
            hash = substr(file, RSTART + 1, 16)
            kind = (stem ~ /^lib/) ? "lib" : "exe"
            if (kind == "lib") sub(/^lib/, "", stem)
            print $1, kind, stem, hash, file
        }' |
        sort -k3,3 -k2,2 -k1,1nr |
        awk -v deps="$deps" '{
            key = $2 " " $3
            if (!((key, $4) in group)) group[key, $4] = ++count[key]
            keep = ($2 == "exe") ? 1 : 3
            if (group[key, $4] > keep) print deps "/" $5
        }' |
        xargs -r rm -f --
}

prune_target() {
    local target=$1 profile
    [[ -d "$target" ]] || return 0
    for profile in "$target"/debug "$target"/release "$target"/*/debug "$target"/*/release; do
        [[ -d "$profile" ]] || continue
        rm -rf "$profile/incremental"
        prune_deps "$profile/deps"
    done
}

fuzz_target="${ROUNDS_FUZZ_TARGET_DIR:-$HOME/.cache/rounds/fuzz-target}"
before=$(free_gb "$CARGO_TARGET_DIR")
if ((force == 0 && before >= min_free_gb)); then
    exit 0
fi
echo "prune-cache: ${before} GB free under $CARGO_TARGET_DIR (want ${min_free_gb}); removing stale build artifacts"
prune_target "$CARGO_TARGET_DIR"
prune_target "$fuzz_target"
echo "prune-cache: ${before} GB free before, $(free_gb "$CARGO_TARGET_DIR") GB after"

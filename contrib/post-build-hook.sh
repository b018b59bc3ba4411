#!/bin/sh
# Nix post-build hook for larder: records the paths a build produced and
# returns at once, so builds are never slowed by uploads. `larder watch`
# drains the queue and pushes. Install: post-build-hook = /path/to/this file
# in nix.conf (see docs/post-build-hook.md).
set -eu
dir=${LARDER_QUEUE_DIR:-/var/lib/larder/queue}
mkdir -p "$dir"
# Nix 2.8.0 passes an empty OUT_PATHS (NixOS/nix#6446): then record the
# derivation, and `larder watch` pushes its outputs.
paths=${OUT_PATHS:-${DRV_PATH:-}}
[ -n "$paths" ] || exit 0
tmp="$dir/.tmp.$$"
# shellcheck disable=SC2086 # a space-separated list by design
printf '%s\n' $paths > "$tmp"
# The rename makes the entry appear whole: the watcher never reads a half-written file.
mv "$tmp" "$dir/$(date +%s%N).$$"

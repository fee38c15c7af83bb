#!/usr/bin/env bash
# `npm run bench`: runs every benchmark in bench/ (files named *.bench.ts), one after another,
# each printing its own figures and its ratios against the peers. `npm run bench -- NAME` runs
# only the benchmarks whose file name contains NAME.
set -euo pipefail
cd "$(dirname "$0")/.."
filter=${1:-}
status=0
for f in bench/*.bench.ts; do
  [ -e "$f" ] || continue
  case "$f" in *"$filter"*) ;; *) continue ;; esac
  echo "=== $f"
  node "$f" || status=1
done
exit $status

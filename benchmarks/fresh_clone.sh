#!/usr/bin/env bash
# The README's two commands, copied literally from README.md, on a fresh clone of this repository with no
# ../shared beside it, an empty HOME (so empty tlearn and pip caches) and a fresh venv; prints each exit status
# and wall time. `--tests` also runs the second (test) command. Needs ~2 GB in /tmp; heavy: run it through
# ../shared/bin/heavy where that exists.
#   benchmarks/fresh_clone.sh [--tests]
set -u
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
base=${FRESH_DIR:-/tmp/tlearn-fresh}
rm -rf "$base" && mkdir -p "$base/home"
git clone -q "$repo" "$base/tlearn"
cd "$base/tlearn"
export HOME="$base/home"
unset PYTHONPATH TLEARN_CACHE VIRTUAL_ENV
first=$(grep -m1 'tlearn demo$' README.md)
second=$(grep -m1 'python -m pytest -q$' README.md)
run() {  # name, command line
  local start=$(date +%s); bash -c "$2" > "$base/$1.log" 2>&1; local rc=$?
  echo "$1 command: exit $rc in $(( $(date +%s) - start )) s   ($2; log $base/$1.log)"
}
run first "$first"
ls tlearn-demo/linear-probe/metrics.json tlearn-demo/linear-probe/report.html
[ "${1:-}" = "--tests" ] && run second "$second" && tail -1 "$base/second.log"
exit 0

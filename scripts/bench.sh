#!/usr/bin/env bash
# Run every benchmark in bench/ (or those named: scripts/bench.sh bench/bench_photo.py ...);
# each prints its table and rewrites its docs/benchmarks-*.md page.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
if (($#)); then benches=("$@"); else benches=(bench/bench_*.py); fi
for bench in "${benches[@]}"; do
    printf '\033[1m==> %s\033[0m\n' "$bench" >&2
    .venv/bin/python "$bench"
done

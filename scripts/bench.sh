#!/usr/bin/env bash
# Run every benchmark; each prints its table and rewrites its docs/benchmarks-*.md page.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
for bench in bench/bench_engine.py bench/bench_stores.py bench/bench_vision_payload.py \
    bench/bench_photo_privacy.py bench/bench_http.py bench/bench_report_flow.py; do
    printf '\033[1m==> %s\033[0m\n' "$bench" >&2
    .venv/bin/python "$bench"
done

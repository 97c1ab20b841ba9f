#!/usr/bin/env bash
# Run snapreport on embedded defaults: memory sessions, SQLite orders and local media under
# ./data, manual vision unless SNAPREPORT_VISION__BASE_URL is set. Extra arguments go to
# `snapreport serve` (e.g. --port 9000).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/snapreport serve "$@"

#!/usr/bin/env bash
# Run every check and every test: lint, format, types, then the whole pytest suite against real
# servers (redis-server, PostgreSQL, moto's S3, local fakes of the VLM and WeCom APIs, chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
say "ruff check"
.venv/bin/ruff check src tests bench
say "ruff format --check"
.venv/bin/ruff format --check src tests bench
say "mypy --strict"
.venv/bin/mypy
say "pytest"
exec .venv/bin/pytest "$@"

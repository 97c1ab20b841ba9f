#!/usr/bin/env bash
# Prepare this checkout: a virtual environment with snapreport and, with --dev, everything the
# tests need (Python packages, redis-server, PostgreSQL, Debian's chromium). Idempotent and quick
# when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[[ "${1:-}" == "--dev" ]] && dev=1

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

python=""
for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        python="$candidate"
        break
    fi
done
if [[ -z "$python" ]]; then
    echo "snapreport needs Python 3.11 or newer (install python3 from your distribution)" >&2
    exit 1
fi

if [[ ! -x .venv/bin/python ]]; then
    say "creating .venv with $("$python" --version)"
    "$python" -m venv .venv
fi

extras=""
[[ $dev == 1 ]] && extras="[dev]"
stamp=".venv/.snapreport-installed${extras}"
want="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    say "installing snapreport${extras} into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".${extras}"
    echo "$want" >"$stamp"
fi

[[ $dev == 1 ]] || exit 0

# System packages the tests talk to: a real redis-server, PostgreSQL and Debian's chromium.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    missing+=(postgresql)
fi
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# a CJK font, so that screenshots of the page show Chinese text rather than boxes
fc-list :lang=zh 2>/dev/null | grep -q . || missing+=(fonts-wqy-zenhei)
if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        say "installing system packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "the tests need these system packages: ${missing[*]}" >&2
        echo "install them (Debian: sudo apt-get install ${missing[*]}) and run again" >&2
        exit 1
    fi
fi

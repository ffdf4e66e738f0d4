#!/usr/bin/env bash
# Install everything the tests need, then run the whole suite: lint, types, tests, figures.
# Runs on a fresh machine with only Python 3.11 (as root for the Debian packages).
set -euo pipefail
cd "$(dirname "$0")/.."

# --quick: the inner loop, on a machine that ran this script once: no install, no types, no
# lab, no fault matrix, no long sandbox test, no bench, and no test that took 2 s or more
# when this machine last ran it (.test-durations.json, which every other run writes: the
# clouds' multi-second end-to-end scenarios). CI runs all of it. Figures: docs/develop.md
if [ "${1:-}" = "--quick" ]; then
  shift
  python3 -m ruff check provisioner tests bench examples
  set +e
  python3 -m pytest -n "$(nproc)" --dist loadgroup -m "not slow and not long and not lab" \
    --quick-under "${QUICK_UNDER:-2.0}" "$@"
  status=$?
  set -e
  if [ "$status" = 5 ]; then
    echo "pytest collected no tests: failing the run" >&2
    exit 1
  fi
  exit "$status"
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  # (shellcheck) lints the connector setup script; the namespace lab runs it for real with
  # OpenVPN, iptables and iproute2 (certificates made with openssl; conntrack: the lab cloud's
  # stateful filters)
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    shellcheck openvpn iptables iproute2 openssl procps iputils-ping conntrack >/dev/null
fi
# uv installs the same packages from the same index as pip, in a fraction of the time (the SDKs
# of four clouds: pip took ~150 s of a fresh clone's run); pip when uv cannot be had
if python3 -m pip install -q --disable-pip-version-check uv && python3 -m uv --version >/dev/null; then
  # (compiled at install, on every core: else each test worker and subprocess compiles the SDKs)
  python3 -m uv pip install -q --compile-bytecode --python python3 -e '.[test]'
else
  python3 -m pip install -q --disable-pip-version-check -e '.[test]'
fi

# tools as modules: a pyenv Python (CI's) makes no shim for a script that uv installed
python3 -m ruff check provisioner tests bench examples
python3 -m mypy
# the figures first (calls per phase, apply times: bench/run.py --quick), so that the tests'
# pass/fail summary is the last thing the run prints; a bench that fails fails the run
python3 bench/run.py --quick
set +e
# more workers than cores: the lab's workers (each cloud's pair on one of its own) mostly wait on
# their namespaces' network
# the 15 slowest tests and the suite's wall time (a figure line) are printed at the end: the next
# regression shows
# four workers more than cores: the lab's four failover pairs each wait on a worker of their own
# while sandbox serve's processes and each cloud's group keep the cores busy; groups are handed
# out in the suite's order (conftest: the longest first), not the most tests first
# (2 cores: 175 s; the tests' CPU, ~320 s, is the floor)
python3 -m pytest -n "$(( $(nproc) + 4 ))" --dist loadgroup --no-loadscope-reorder \
  --durations=15 "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "pytest collected no tests: failing the run" >&2
  exit 1
fi
exit "$status"

#!/usr/bin/env bash
# Install everything the test suite needs (memcached, tmux, Chromium, strace, a venv with jobd
# and its test extras), make sure MariaDB answers, and run the whole suite.
# This is what `.ci/run` runs; the README documents it as the test command.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v memcached >/dev/null || missing+=(memcached)
command -v tmux >/dev/null || missing+=(tmux)
command -v systemd-analyze >/dev/null || missing+=(systemd)   # `systemd-analyze verify` of our units
command -v chromium >/dev/null || missing+=(chromium)          # the `jobd web` page, tested in headless Chromium
command -v strace >/dev/null || missing+=(strace)              # what reaches the disk: a SQLite commit's fsyncs
if ((${#missing[@]})); then
    echo "installing ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# MariaDB: the suite uses the local server (127.0.0.1:3306, root, no password).
if ! mariadb -h 127.0.0.1 -uroot -e 'SELECT 1' >/dev/null 2>&1; then
    echo "MariaDB does not answer on 127.0.0.1:3306; trying to start it"
    as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
    for _ in $(seq 1 30); do
        mariadb -h 127.0.0.1 -uroot -e 'SELECT 1' >/dev/null 2>&1 && break
        sleep 1
    done
    mariadb -h 127.0.0.1 -uroot -e 'SELECT 1' >/dev/null
fi

[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
# Compile the code the suite's processes import, once. The suite starts hundreds
# of Python processes (masters, workers, CLI commands), and where the
# environment says not to write bytecode (PYTHONDONTWRITEBYTECODE, as some CI
# images set) each of them would compile jobd again: 0.3 s of CPU per master.
.venv/bin/python -m compileall -q -j 0 jobd cli migrations tests bench examples >/dev/null

echo "type-checking (mypy)"
.venv/bin/python -m mypy

status=0
# Two test processes (JOBD_TEST_PROCESSES to change): the tests mostly wait on
# real processes, and each uses its own folder, database and memcached.
.venv/bin/python -m pytest -n "${JOBD_TEST_PROCESSES:-2}" --dist worksteal "$@" || status=$?
if [[ $status == 5 ]]; then
    echo "pytest collected no tests: that is a failure" >&2
    exit 1
fi

# The chaos soak (about 2 minutes): three masters on MariaDB killed and cut at
# random; it prints its figures and fails when a job was lost, ran twice at
# once, or a schedule tick fired twice. JOBD_SKIP_CHAOS=1 leaves it out.
if [[ -z ${JOBD_SKIP_CHAOS:-} ]]; then
    echo "chaos soak (bench/chaos.py --quick)"
    chaos=0
    .venv/bin/python bench/chaos.py --quick || chaos=$?
    if [[ $chaos != 0 ]]; then
        echo "chaos soak failed (exit $chaos)" >&2
        [[ $status != 0 ]] || status=$chaos
    fi
fi
exit $status

#!/usr/bin/env bash
# Make sure the PostgreSQL server binaries (initdb, pg_ctl, postgres) are installed: the test
# suite starts a throwaway server from them (tests/support/postgres.py looks in the same places).
# Found: prints where and exits 0. Missing: as root with apt-get, installs Debian's `postgresql`;
# otherwise says how to install it and exits 1.
set -euo pipefail

find_bindir() {
    local dir candidates=()
    [[ -n "${PG_BINDIR:-}" ]] && candidates+=("$PG_BINDIR")
    if command -v initdb >/dev/null 2>&1; then
        candidates+=("$(dirname "$(readlink -f "$(command -v initdb)")")")
    fi
    if command -v pg_config >/dev/null 2>&1; then
        candidates+=("$(pg_config --bindir 2>/dev/null || true)")
    fi
    # /usr/lib/postgresql/<version>/bin, newest first
    while IFS= read -r dir; do
        candidates+=("$dir")
    done < <(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5 -V -r)
    candidates+=(/usr/local/pgsql/bin)
    for dir in "${candidates[@]}"; do
        if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" ]]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

if bindir=$(find_bindir); then
    echo "PostgreSQL for the tests: $bindir"
    exit 0
fi

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "PostgreSQL server binaries not found; installing Debian's postgresql package (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    install=(apt-get install -y -q --no-install-recommends postgresql)
    if ! "${install[@]}"; then
        # a fresh image often has no package lists yet
        apt-get update -q
        "${install[@]}"
    fi
    if bindir=$(find_bindir); then
        echo "PostgreSQL for the tests: $bindir"
        exit 0
    fi
    echo "error: installed postgresql, but initdb/pg_ctl/postgres are still not found" >&2
    exit 1
fi

cat >&2 <<'MSG'
error: the tests need the PostgreSQL server binaries (initdb, pg_ctl, postgres), and none were
found on PATH, via pg_config, or under /usr/lib/postgresql/*/bin. Install them, then rerun:
  Debian/Ubuntu:  sudo apt-get install postgresql
  Fedora/RHEL:    sudo dnf install postgresql-server
  macOS:          brew install postgresql
or set PG_BINDIR to the directory that holds initdb. (`make test` installs it itself when run as root.)
MSG
exit 1

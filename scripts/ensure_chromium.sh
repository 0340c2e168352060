#!/usr/bin/env bash
# Make sure a Chromium is installed: the browser tests drive the system Chromium with
# Playwright (tests/support/browser.py looks in the same places; Playwright's own browser
# download cannot work on our machines). Found: prints where and exits 0. Missing: as root
# with apt-get, installs Debian's `chromium`; otherwise says how to install it and exits 1.
set -euo pipefail

find_chromium() {
    local candidate
    for candidate in "${LAKEHOUSE_CHROMIUM:-}" chromium chromium-browser google-chrome; do
        if [[ -n "$candidate" ]] && command -v "$candidate" >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

if path=$(find_chromium); then
    echo "Chromium for the browser tests: $path"
    exit 0
fi

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "Chromium not found; installing Debian's chromium package (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    install=(apt-get install -y -q --no-install-recommends chromium)
    if ! "${install[@]}"; then
        # a fresh image often has no package lists yet
        apt-get update -q
        "${install[@]}"
    fi
    if path=$(find_chromium); then
        echo "Chromium for the browser tests: $path"
        exit 0
    fi
    echo "error: installed chromium, but no chromium binary is on PATH" >&2
    exit 1
fi

cat >&2 <<'MSG'
error: the browser tests need Chromium, and none was found on PATH (chromium,
chromium-browser, google-chrome) or in LAKEHOUSE_CHROMIUM. Install it, then rerun:
  Debian/Ubuntu:  sudo apt-get install chromium
  Fedora/RHEL:    sudo dnf install chromium
or set LAKEHOUSE_CHROMIUM to the browser's path. (`make test` installs it itself when run as root.)
MSG
exit 1

#!/bin/sh
# Make sure Debian's chromium is installed for the e2e tests (Playwright drives it; browsers
# are never downloaded by Playwright). Idempotent: does nothing when /usr/bin/chromium exists.
# Needs root (or sudo-less root containers) only when chromium is missing.
set -eu

CHROMIUM=/usr/bin/chromium

fail() {
    echo "ensure-chromium: $*" >&2
    exit 1
}

if [ ! -x "$CHROMIUM" ]; then
    echo "ensure-chromium: $CHROMIUM not found, installing Debian's chromium package"
    if [ "$(id -u)" -ne 0 ]; then
        fail "chromium is missing and this is not root; run as root: apt-get install -y chromium"
    fi
    command -v apt-get >/dev/null 2>&1 || fail "apt-get not available; install chromium at $CHROMIUM by hand"
    apt-get update || fail "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium \
        || fail "apt-get install chromium failed"
    [ -x "$CHROMIUM" ] || fail "chromium package installed but $CHROMIUM is still missing"
fi

# Debian's wrapper script may print shell noise on stderr; keep only the version line.
version=$("$CHROMIUM" --version 2>/dev/null | head -n 1) || true
[ -n "$version" ] || fail "$CHROMIUM exists but does not report a version"
echo "ensure-chromium: $version ($CHROMIUM)"

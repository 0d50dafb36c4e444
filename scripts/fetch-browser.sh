#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium for the status page test
# (tests/status_page_browser.rs), which runs `chromium --headless --dump-dom` and
# `--screenshot` against a running promrelay.
#
# Why installed and not unpacked like the peers (fetch-peers.sh): Chromium needs dozens of shared
# libraries and fonts from other packages; apt resolves them, unpacking by hand would not. Nothing
# starts as a service. Needs root (or sudo) only when Chromium is missing.
#
# Idempotent: when `chromium --version` answers, it does nothing. Safe against concurrent apt
# runs (it waits for dpkg's lock).
set -euo pipefail

say() { printf 'fetch-browser: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "'$*' needs root"
    fi
}

if chromium --version >/dev/null 2>&1; then
    exit 0
fi

# fonts-dejavu-core: the page's sans-serif text in screenshots (Chromium depends only on "some" font).
packages=(chromium fonts-dejavu-core)
apt_install() {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        -o DPkg::Lock::Timeout=600 --no-install-recommends "${packages[@]}"
}
if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    say "apt lists are empty: apt-get update"
    as_root apt-get update -qq -o DPkg::Lock::Timeout=600
fi
if ! apt_install; then
    say "apt-get install failed: apt-get update, then once more"
    as_root apt-get update -qq -o DPkg::Lock::Timeout=600
    apt_install || die "cannot install ${packages[*]}"
fi
chromium --version >/dev/null 2>&1 || die "chromium was installed but does not run"
say "installed $(chromium --version)"

#!/usr/bin/env bash
# Fetches the real peers that the end-to-end tests run against: Debian's Prometheus,
# VictoriaMetrics (with vmagent), node_exporter and dnsmasq (the DNS server the dns_sd tests
# query), unpacked into .peers/ at the repo root.
#
# Why Debian packages: they come through apt from a registry every developer and CI machine
# reaches, with no download of prebuilt binaries from anywhere else. Why unpacked and not
# installed: nothing system-wide may change and no service may start; tests start each peer
# themselves on a free loopback port (tests/common/mod.rs), at the fixed paths .peers/bin/<name>.
#
# Idempotent: a second run fetches only peers whose binary is missing (a peer added to the
# lists below is fetched on the next run) and checks that every binary runs. Safe from any cwd
# and against concurrent runs (a lock file serialises them).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Resolved, so wrappers written below still work when .peers is a link shared by several checkouts.
peers="$(realpath -m "$repo_root/.peers")"
debs="$peers/debs"
root="$peers/root"
bin="$peers/bin"
done_stamp="$peers/.complete"


# Stable name under .peers/bin -> path inside the unpacked packages. Debian names node_exporter
# prometheus-node-exporter; the tests use the upstream names.
declare -A binaries=(
    [prometheus]=usr/bin/prometheus
    [promtool]=usr/bin/promtool
    [victoria-metrics]=usr/bin/victoria-metrics
    [vmagent]=usr/bin/vmagent
    [node_exporter]=usr/bin/prometheus-node-exporter
    [dnsmasq]=usr/sbin/dnsmasq
)
names=(prometheus promtool victoria-metrics vmagent node_exporter dnsmasq)

# The Debian package that ships each binary.
declare -A package_of=(
    [prometheus]=prometheus
    [promtool]=prometheus
    [victoria-metrics]=victoria-metrics
    [vmagent]=victoria-metrics
    [node_exporter]=prometheus-node-exporter
    [dnsmasq]=dnsmasq-base
)

# Shared libraries the binaries link against, and the Debian package that ships each. On a
# Debian 12 machine all of them are already there (libzstd1 is a pre-dependency of dpkg); this
# is the fallback for a slimmer image.
declare -A library_packages=(
    [libzstd.so.1]=libzstd1
    [libnetfilter_conntrack.so.3]=libnetfilter-conntrack3
    [libnftables.so.1]=libnftables1
    [libnfnetlink.so.0]=libnfnetlink0
    [libnftnl.so.11]=libnftnl11
)

say() { printf 'fetch-peers: %s\n' "$*" >&2; }
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

apt_lists_are_empty() {
    ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null
}

# Downloads the named packages into $debs unless a .deb of that package is already cached.
download() {
    local wanted=() pkg
    for pkg in "$@"; do
        compgen -G "$debs/${pkg}_*.deb" >/dev/null || wanted+=("$pkg")
    done
    [[ ${#wanted[@]} -eq 0 ]] && return 0

    if apt_lists_are_empty; then
        say "apt lists are empty: apt-get update"
        as_root apt-get update -qq
    fi
    # Download into a scratch folder first so an interrupted download never looks cached.
    local scratch
    scratch="$(mktemp -d "$peers/download.XXXXXX")"
    # The sandbox user _apt cannot write into our folder; downloading as ourselves is fine.
    if ! (cd "$scratch" && apt-get download -qq -o APT::Sandbox::User="$(id -un)" "${wanted[@]}"); then
        say "apt-get download failed: apt-get update, then once more"
        as_root apt-get update -qq
        (cd "$scratch" && apt-get download -qq -o APT::Sandbox::User="$(id -un)" "${wanted[@]}") ||
            { rm -rf "$scratch"; die "cannot download ${wanted[*]}"; }
    fi
    mv "$scratch"/*.deb "$debs/"
    rm -rf "$scratch"
}

declare -A unpacked=()
unpack() {
    local pkg deb
    for pkg in "$@"; do
        [[ -n ${unpacked[$pkg]:-} ]] && continue
        unpacked[$pkg]=1
        for deb in "$debs/${pkg}"_*.deb; do
            say "unpacking $(basename "$deb")"
            dpkg-deb -x "$deb" "$root"
        done
    done
}

# Prints the sonames a binary needs that the dynamic linker cannot find.
missing_libraries() {
    LD_LIBRARY_PATH="$(bundled_library_path)" ldd "$1" 2>/dev/null | awk '/=> not found/ { print $1 }'
}

bundled_library_path() {
    local dirs=() dir
    for dir in "$root"/lib/*-linux-gnu "$root"/usr/lib/*-linux-gnu; do
        [[ -d $dir ]] && dirs+=("$dir")
    done
    local IFS=:
    printf '%s' "${dirs[*]}"
}

# Links .peers/bin/<name> to the binary, or, when the binary needs libraries that came from
# .peers/root, writes a wrapper that points the linker there and execs the binary (so the
# process id a test holds is the peer's own).
link() {
    local name="$1" target="$root/${binaries[$1]}"
    [[ -x $target ]] || die "package did not contain ${binaries[$1]}"
    local needs_bundled=false lib missing
    [[ -n $(ldd "$target" 2>/dev/null | awk '/=> not found/ { print $1 }') ]] && needs_bundled=true
    # A bundled library may need others in turn (dnsmasq: libnftables1 needs libnftnl11), so
    # look again after each round until nothing is missing.
    while missing="$(missing_libraries "$target")" && [[ -n $missing ]]; do
        for lib in $missing; do
            [[ -n ${library_packages[$lib]:-} ]] || die "$name needs $lib, and no package for it is known: add it to library_packages"
            [[ -z ${unpacked[${library_packages[$lib]}]:-} ]] || die "$name still misses $lib after unpacking ${library_packages[$lib]}"
            download "${library_packages[$lib]}"
            unpack "${library_packages[$lib]}"
        done
    done
    rm -f "$bin/$name"
    if $needs_bundled; then
        cat >"$bin/$name" <<WRAPPER
#!/bin/sh
# Written by scripts/fetch-peers.sh: $name needs libraries unpacked next to it.
LD_LIBRARY_PATH="$(bundled_library_path)\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$target" "\$@"
WRAPPER
        chmod +x "$bin/$name"
    else
        ln -s "../root/${binaries[$name]}" "$bin/$name"
    fi
}

package_version() {
    local deb
    for deb in "$debs/${1}"_*.deb; do
        dpkg-deb -f "$deb" Version
    done
}

# Every binary must run, not only exist: a missing library shows up here, not in a test.
verify_and_report() {
    local name pkg
    for name in "${names[@]}"; do
        "$bin/$name" --version >/dev/null 2>&1 || die "$bin/$name --version failed; delete $peers and run again"
    done
    printf 'peers in %s\n' "$bin"
    for name in "${names[@]}"; do
        pkg=${package_of[$name]}
        printf '  %-17s %-42s (Debian %s %s)\n' "$name" "$bin/$name" "$pkg" "$(package_version "$pkg")"
    done
}

mkdir -p "$peers"
exec 9>"$peers/.lock"
flock 9

missing_names=()
for name in "${names[@]}"; do
    [[ -x $bin/$name ]] || missing_names+=("$name")
done
if [[ ${#missing_names[@]} -gt 0 ]]; then
    mkdir -p "$debs" "$root" "$bin"
    missing_packages=()
    for name in "${missing_names[@]}"; do
        missing_packages+=("${package_of[$name]}")
    done
    download "${missing_packages[@]}"
    unpack "${missing_packages[@]}"
    for name in "${missing_names[@]}"; do
        link "$name"
    done
    touch "$done_stamp"
fi
verify_and_report

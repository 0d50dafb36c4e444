# shellcheck shell=bash
# Helpers shared by the benchmark scripts (bench-vs-vmagent.sh, bench-scrape.sh): messages,
# the processes a script starts (all ended on exit), free loopback ports, waiting for an HTTP
# endpoint, a process' CPU time and peak RSS from /proc, and Debian's nginx.
#
# Sourced, not run: `source "$(dirname "$0")/lib.sh"` after `set -euo pipefail`. Sourcing installs
# the EXIT/INT/TERM traps that end every process listed in `pids`. Messages start with the
# script's name without .sh ("bench-scrape: ...").

script_name=$(basename "$0" .sh)

say() { printf '%s: %s\n' "$script_name" "$*" >&2; }
die() { say "error: $*"; exit 1; }
now() { date +%s.%N; }

# Prints the script's header comment (line 2 up to `set -euo pipefail`) and exits with CODE.
usage() { # [CODE]
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit "${1:-0}"
}

require_tools() { # HINT TOOL...
    local hint=$1 tool
    shift
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "$tool is needed ($hint)"
    done
}

# --- processes: every one we start is remembered and ended on exit -----------------------------
# After `cmd & x_pid=$!`, add it: `pids+=("$x_pid")`.
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget() { # PID
    local keep_pids=() p
    for p in "${pids[@]}"; do [[ $p == "$1" ]] || keep_pids+=("$p"); done
    pids=("${keep_pids[@]}")
}

# Ends a process we started, politely first; returns once it is gone.
stop_pid() { # PID
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget "$pid"
}

# utime + stime of PID in clock ticks (getconf CLK_TCK a second). Field 2, the process name, has
# no spaces for any process these scripts start.
cpu_ticks() { # PID
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}
# Peak resident set size (VmHWM) of PID in MiB, one decimal.
peak_rss_mib() { # PID
    awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

rss_mib() { # PID: resident now
    awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

# --- ports ------------------------------------------------------------------------------------
# Ports are picked outside the kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range),
# where the local port of any outgoing connection on the machine could take a port between our
# check and the server's bind, and make the bind fail although nothing listened.
used_ports=" "
read -r ephemeral_low ephemeral_high 2>/dev/null </proc/sys/net/ipv4/ip_local_port_range ||
    { ephemeral_low=32768 ephemeral_high=60999; }
if ((ephemeral_low > 11000)); then
    port_base=10000 port_span=$((ephemeral_low - 10000))
elif ((ephemeral_high < 64535)); then
    port_base=$((ephemeral_high + 1)) port_span=$((65535 - ephemeral_high))
else # the whole range is ephemeral: nothing better to do than to take our chances
    port_base=20000 port_span=30000
fi

# Sets the variable named VAR to a TCP port on 127.0.0.1 that nobody listens on now and that this
# script has not handed out before. Not `$(free_port)`: the subshell would forget what it handed
# out, and two calls could return the same port.
free_port() { # VAR
    local p
    while :; do
        p=$((port_base + ((RANDOM << 15) | RANDOM) % port_span))
        [[ $used_ports == *" $p "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            used_ports+="$p "
            printf -v "$1" '%s' "$p"
            return
        fi
    done
}

# Waits until URL answers 2xx; any further arguments go to curl (e.g. --cacert, -u for a listener
# with TLS and basic auth).
wait_http() { # URL SECONDS [CURL_ARGS...]
    local url=$1 deadline=$((SECONDS + $2))
    shift 2
    until curl -fs -o /dev/null --max-time 1 "$@" "$url"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# --- nginx ------------------------------------------------------------------------------------
# Sets nginx_bin to Debian's nginx: the installed one, or the package unpacked into DIR (nothing
# installed system-wide, no service started).
find_nginx() { # DIR
    nginx_bin=$(command -v nginx || true)
    [[ -z $nginx_bin && -x /usr/sbin/nginx ]] && nginx_bin=/usr/sbin/nginx
    if [[ -z $nginx_bin ]]; then
        local nginx_root=$1 scratch
        if [[ ! -x $nginx_root/usr/sbin/nginx ]]; then
            say "fetching Debian's nginx package into $nginx_root"
            scratch=$(mktemp -d)
            if ! (cd "$scratch" && apt-get download -qq -o APT::Sandbox::User="$(id -un)" nginx); then
                apt-get update -qq
                (cd "$scratch" && apt-get download -qq -o APT::Sandbox::User="$(id -un)" nginx) || die "cannot download nginx"
            fi
            mkdir -p "$nginx_root"
            dpkg-deb -x "$scratch"/nginx_*.deb "$nginx_root"
            rm -rf "$scratch"
        fi
        nginx_bin=$nginx_root/usr/sbin/nginx
    fi
    "$nginx_bin" -v 2>/dev/null || die "$nginx_bin does not run (missing libraries? apt-get install -y nginx)"
}

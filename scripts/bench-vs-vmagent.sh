#!/usr/bin/env bash
# promrelay beside vmagent (Debian's victoria-metrics 1.79.5) under the same remote-write load,
# each forwarding to the same two sinks (one nginx answering 204 on two ports).
#
# Modes (both by default):
#   throughput  pushes as fast as the proxy answers for --load-secs over --connections connections;
#               then waits until the proxy's backlog is empty. Prints pushes/s accepted, samples
#               per CPU-second of the proxy (utime+stime from load start until the backlog is
#               empty), peak RSS (VmHWM), and how long the backlog took to empty after the load.
#   drain       pushes at a fixed --drain-rate; after --warmup-secs the sinks stop (connections
#               refused) for --outage-secs while the load goes on; the load stops and the sinks
#               come back together. Prints the time from the sinks' return until the backlog is
#               empty, the backlog then, samples per CPU-second and peak RSS. That time includes
#               each proxy's wait before it retries (vmagent 1.79 doubles it after each failure,
#               2, 4, 8, 16, 32 s...; promrelay waits at most max_backoff, 5 s by default), so
#               the time of the first delivery after the sinks' return is printed too.
# Every measurement starts both proxies fresh (new data directories) and with default settings,
# except promrelay's queue cap, raised so an outage never drops data (vmagent has no cap by default;
# the dropped columns check that neither dropped anything).
#
# "Backlog empty": every byte accepted has been delivered to both sinks. For promrelay,
# /api/v1/queues shows pending_bytes 0 for every storage; for vmagent, its /metrics show every
# block it made as sent and every sample accepted as in a block (see probe() for why not its
# pending_data_bytes). Either must then stay so, with no further send requests, for 2 s; the time
# and CPU of the first of those polls count. The sinks' logs give the MB each really received.
#
# Load: examples/rw_loadgen.rs, pushes of 10,000 distinct series × 1 sample, 10 labels each (what
# one Prometheus remote-write shard sends with max_samples_per_send: 10000), ~2.7 MB protobuf /
# 0.45 MB snappy, from a ring of 64 distinct bodies (8 disjoint series sets × 8 scrapes).
#
# Fairness on a 2-core machine: the proxy runs pinned to CPU 0, the load generator and nginx to
# CPU 1 (--no-pin to turn off), so neither proxy competes with its own load and both runtimes
# see one CPU (Go's GOMAXPROCS and tokio's worker count follow the affinity mask). Other work on
# the machine still lands on CPU 0; hence three runs, medians, and the order of the two proxies
# alternating from run to run.
#
# --tls-auth puts both listeners behind TLS and basic auth (issue 10): a CA and an ECDSA P-256
# server certificate for 127.0.0.1 made by openssl in the bench directory (vmagent's docs advise
# ECDSA over RSA for speed, so neither side pays for RSA), one user with a bcrypt hash of cost 10
# for promrelay's --web.config.file (as `htpasswd -nBC 10` writes; promrelay checks it once per
# credentials and caches the result) and the same user and password as vmagent's -httpAuth.*
# (compared in plain text). The load generator then pushes over https with the credentials, and
# the script's probes pass them too. The sinks stay plain HTTP: only the listener side changes.
#
# Usage: scripts/bench-vs-vmagent.sh [--runs 3] [--modes throughput,drain] [--load-secs 20]
#          [--connections 4] [--drain-rate 20] [--warmup-secs 5] [--outage-secs 60] [--no-pin]
#          [--tls-auth]
#          [--proxies promrelay,vmagent] [--dir target/bench-vs-vmagent] [--keep]
#          [--promrelay-storage 'max_block_bytes: 1MiB, concurrency: 2'] [--vmagent-flags '-a=b -c=d']
# The defaults take about 13 minutes. The outage is the issue's 60 s: a 30 s one ends just after
# vmagent's fourth retry, so it waits 32 s more and looks slow, where after 60 s its next retry
# comes 2 s after the sinks' return (see the first-delivery figure).
# --report FILE prints the tables of an earlier run's results.tsv again.
# --promrelay-storage adds per-storage settings (YAML, as in promrelay's --config file) to both
# storages; --vmagent-flags adds flags to vmagent: for what-if runs, the defaults compare defaults.
set -euo pipefail
# One { } group to the end, so bash reads the whole script before it runs any of it: it reads a
# script as it goes, and an edit of this file during a run (which lasts minutes) would have it
# run pieces of the new text, such as "line 160: ----------: command not found".
{
cd "$(dirname "$0")/.."
repo=$PWD
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

runs=3
modes=throughput,drain
load_secs=20
connections=4
drain_rate=20
warmup_secs=5
outage_secs=60
pin=true
proxies=promrelay,vmagent
dir=target/bench-vs-vmagent
keep=false
empty_timeout=300
promrelay_storage=
vmagent_flags=
report_only=
tls_auth=false

while [[ $# -gt 0 ]]; do
    case $1 in
        --runs) runs=$2; shift 2 ;;
        --modes) modes=$2; shift 2 ;;
        --load-secs) load_secs=$2; shift 2 ;;
        --connections) connections=$2; shift 2 ;;
        --drain-rate) drain_rate=$2; shift 2 ;;
        --warmup-secs) warmup_secs=$2; shift 2 ;;
        --outage-secs) outage_secs=$2; shift 2 ;;
        --no-pin) pin=false; shift ;;
        --tls-auth) tls_auth=true; shift ;;
        --proxies) proxies=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        --keep) keep=true; shift ;;
        --promrelay-storage) promrelay_storage=$2; shift 2 ;;
        --vmagent-flags) vmagent_flags=$2; shift 2 ;;
        --empty-timeout) empty_timeout=$2; shift 2 ;;
        --report) report_only=$2; shift 2 ;;
        -h | --help) usage ;;
        *) say "unknown argument $1"; usage 2 ;;
    esac
done
for n in "$runs" "$load_secs" "$connections" "$warmup_secs" "$outage_secs" "$empty_timeout"; do
    [[ $n =~ ^[0-9]+$ ]] || { say "$n is not a whole number"; exit 2; }
done
[[ $drain_rate =~ ^[0-9]+(\.[0-9]+)?$ ]] || { say "--drain-rate $drain_rate is not a number"; exit 2; }
IFS=, read -r -a mode_list <<<"$modes"
IFS=, read -r -a proxy_list <<<"$proxies"
read -r -a vmagent_extra <<<"$vmagent_flags"
for m in "${mode_list[@]}"; do [[ $m == throughput || $m == drain ]] || { say "unknown mode $m"; exit 2; }; done
for p in "${proxy_list[@]}"; do [[ $p == promrelay || $p == vmagent ]] || { say "unknown proxy $p"; exit 2; }; done

require_tools "apt-get install -y curl jq util-linux gawk dpkg" curl jq taskset awk dpkg-deb
$tls_auth && require_tools "apt-get install -y openssl" openssl

# --- report ---------------------------------------------------------------------------------
# Prints the per-run table, per-run ratios and the medians per proxy and mode over the runs of a
# results file; median ratios are promrelay's median over vmagent's.
report() { # RESULTS.tsv
    awk -F'\t' '
function median(key,   n, i, j, t, v) {
    n = cnt[key]
    for (i = 1; i <= n; i++) v[i] = val[key, i]
    for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function add(mode, proxy, metric, x,   k) {
    if (x == "-") return
    k = mode SUBSEP proxy SUBSEP metric; val[k, ++cnt[k]] = x + 0; seen[mode] = 1
}
function m(mode, proxy, metric,   k) { k = mode SUBSEP proxy SUBSEP metric; return (k in cnt) ? median(k) : "" }
function ratio(a, b) { return (a == "" || b == "" || a == "-" || b == "-" || b == 0) ? "-" : sprintf("%.2f", a / b) }
function verdict(r, goal,   g) {
    if (goal == "" || r == "-") return ""
    split(goal, g, " ")
    return ((g[1] == ">=" && r + 0 >= g[2]) || (g[1] == "<=" && r + 0 <= g[2])) ? "  met" : "  MISSED"
}
function row(label, mode, metric, fmt, goal,   p, v, r) {
    p = m(mode, "promrelay", metric); v = m(mode, "vmagent", metric); r = ratio(p, v)
    printf "  %-38s %12s %12s %7s   %s%s\n", label, p == "" ? "-" : sprintf(fmt, p), v == "" ? "-" : sprintf(fmt, v), r, goal, verdict(r, goal)
}
{
    add($2, $3, "pps", $4); add($2, $3, "cpu", $6); add($2, $3, "spcs", $7); add($2, $3, "rss", $8)
    add($2, $3, "empty", $9); add($2, $3, "resume", $10); add($2, $3, "backlog", $11)
    add($2, $3, "sink", ($13 < $14 ? $13 : $14))
    for (i = 4; i <= 14; i++) by[$1, $2, $3, i] = $i
    if ($1 > runs) runs = $1
    line[NR] = $0
}
END {
    printf "\nper run: pushes/s accepted, samples accepted, proxy CPU s (load start to backlog empty), samples per CPU-s,\n"
    printf "peak RSS MiB, backlog empty after load end / sinks return (s), first delivery after sinks return (s),\n"
    printf "backlog when sinks return (MB), blocks dropped, MB received by sink 1 and sink 2\n"
    for (i = 1; i <= NR; i++) {
        split(line[i], f, "\t")
        printf "  run %s %-10s %-9s %7s %9s %7s %8s %7s %7s %6s %5s %s %6s %6s\n", f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12], f[13], f[14]
    }
    printf "\nper-run ratios promrelay/vmagent: pushes/s, samples per CPU-s, peak RSS, backlog-empty time\n"
    for (r = 1; r <= runs; r++) for (md = 1; md <= 2; md++) {
        mode = md == 1 ? "throughput" : "drain"
        if (!((r, mode, "promrelay", 4) in by) || !((r, mode, "vmagent", 4) in by)) continue
        printf "  run %d %-10s %6s %6s %6s %6s\n", r, mode, ratio(by[r, mode, "promrelay", 4], by[r, mode, "vmagent", 4]),
            ratio(by[r, mode, "promrelay", 7], by[r, mode, "vmagent", 7]), ratio(by[r, mode, "promrelay", 8], by[r, mode, "vmagent", 8]),
            ratio(by[r, mode, "promrelay", 9], by[r, mode, "vmagent", 9])
    }
    printf "\nmedians of %d runs                           promrelay      vmagent   ratio   goal (promrelay/vmagent)\n", runs
    if ("throughput" in seen) {
        printf " throughput mode\n"
        row("pushes/s accepted", "throughput", "pps", "%.1f", "")
        row("samples per CPU-second", "throughput", "spcs", "%.0f", ">= 3")
        row("peak RSS (MiB)", "throughput", "rss", "%.1f", "<= 0.25")
        row("backlog empty after the load (s)", "throughput", "empty", "%.2f", "")
        row("MB received per sink", "throughput", "sink", "%.0f", "")
    }
    if ("drain" in seen) {
        printf " drain mode\n"
        row("drain time after sinks return (s)", "drain", "empty", "%.2f", "<= 1")
        row("  first delivery after sinks return (s)", "drain", "resume", "%.2f", "")
        row("backlog when sinks return (MB)", "drain", "backlog", "%.0f", "")
        row("pushes/s accepted", "drain", "pps", "%.1f", "")
        row("samples per CPU-second", "drain", "spcs", "%.0f", "")
        row("peak RSS (MiB)", "drain", "rss", "%.1f", "<= 0.25")
        row("MB received per sink", "drain", "sink", "%.0f", "")
    }
}' "$1"
}
if [[ -n $report_only ]]; then
    report "$report_only"
    exit 0
fi

# --- what we run ----------------------------------------------------------------------------
say "building promrelay and the load generator (release)"
cargo build --release --bin promrelay --example rw_loadgen -q
# cargo builds into CARGO_TARGET_DIR when it is set (a worktree sharing the main checkout's target/).
target_dir=${CARGO_TARGET_DIR:-$repo/target}
promrelay_bin=$target_dir/release/promrelay
loadgen_bin=$target_dir/release/examples/rw_loadgen

vmagent_bin=$repo/.peers/bin/vmagent
[[ -x $vmagent_bin ]] || scripts/fetch-peers.sh >&2
"$vmagent_bin" --version >/dev/null 2>&1 || die "$vmagent_bin does not run"

find_nginx "$repo/target/bench-peers/nginx"

if $pin && (($(nproc) >= 2)); then
    proxy_cpu=(taskset -c 0)
    load_cpu=(taskset -c 1)
    pinning="proxy on CPU 0, load generator and nginx on CPU 1"
else
    proxy_cpu=()
    load_cpu=()
    pinning="none"
fi
clk_tck=$(getconf CLK_TCK)

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
results=$dir/results.tsv
: >"$results"
sink1='' sink2='' proxy_port=''
free_port sink1
free_port sink2
free_port proxy_port

# --- TLS and basic auth (--tls-auth) ----------------------------------------------------------
# scheme and proxy_curl (curl's options for the proxy's own endpoints) serve both cases; the
# other arrays stay empty without --tls-auth.
scheme=http
proxy_curl=()
loadgen_auth=()
promrelay_auth=()
vmagent_auth=()
if $tls_auth; then
    tlsdir=$dir/tls
    mkdir -p "$tlsdir"
    user=bench
    password=bench-$RANDOM$RANDOM
    ossl() { openssl "$@" >>"$tlsdir/openssl.log" 2>&1 || die "openssl $1 failed: $(tail -3 "$tlsdir/openssl.log")"; }
    ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tlsdir/ca.key" \
        -out "$tlsdir/ca.pem" -days 2 -subj /CN=bench-ca \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tlsdir/server.key" \
        -out "$tlsdir/server.csr" -subj /CN=127.0.0.1
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
        >"$tlsdir/server.ext"
    ossl x509 -req -in "$tlsdir/server.csr" -CA "$tlsdir/ca.pem" -CAkey "$tlsdir/ca.key" \
        -set_serial 1 -days 2 -extfile "$tlsdir/server.ext" -out "$tlsdir/server.pem"
    # bcrypt, as exporter-toolkit wants: htpasswd (apache2-utils) if installed, else Python's
    # bcrypt module, else Python's crypt module (libxcrypt does bcrypt; gone in Python 3.13).
    if command -v htpasswd >/dev/null; then
        hash=$(htpasswd -nbBC 10 "$user" "$password" | cut -d: -f2-)
    else
        hash=$(python3 -W ignore -c '
import sys
p = sys.argv[1]
try:
    import bcrypt
    print(bcrypt.hashpw(p.encode(), bcrypt.gensalt(10)).decode())
except ImportError:
    import crypt
    print(crypt.crypt(p, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 10)))
' "$password" 2>/dev/null) || true
    fi
    [[ $hash == '$2'[aby]'$10$'* ]] ||
        die "cannot make a bcrypt hash: apt-get install -y apache2-utils (htpasswd), or pip install bcrypt"
    cat >"$tlsdir/web.yml" <<EOF
# promrelay's --web.config.file for --tls-auth (exporter-toolkit format).
tls_server_config:
  cert_file: $tlsdir/server.pem
  key_file: $tlsdir/server.key
basic_auth_users:
  $user: '$hash'
EOF
    scheme=https
    proxy_curl=(--cacert "$tlsdir/ca.pem" -u "$user:$password")
    loadgen_auth=(--ca-file "$tlsdir/ca.pem" --basic-auth "$user:$password")
    promrelay_auth=(--web.config.file "$tlsdir/web.yml")
    vmagent_auth=(-tls -tlsCertFile "$tlsdir/server.pem" -tlsKeyFile "$tlsdir/server.key"
        -httpAuth.username "$user" -httpAuth.password "$password")
fi

# --- sinks ----------------------------------------------------------------------------------
sinkdir=$dir/sinks
mkdir -p "$sinkdir"
cat >"$sinkdir/nginx.conf" <<EOF
# Two remote-write sinks that accept everything: 204 for any request. Each logs only the size of
# each request (buffered), so the script can tell how much each sink really received.
worker_processes 1;
daemon off;
pid $sinkdir/nginx.pid;
error_log $sinkdir/error.log warn;
events { worker_connections 1024; }
http {
    log_format size '\$content_length';
    client_max_body_size 0;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path $sinkdir/body;
    proxy_temp_path $sinkdir/proxy;
    fastcgi_temp_path $sinkdir/fastcgi;
    uwsgi_temp_path $sinkdir/uwsgi;
    scgi_temp_path $sinkdir/scgi;
    server { listen 127.0.0.1:$sink1; access_log $sinkdir/sink1.log size buffer=256k flush=1s; location / { return 204; } }
    server { listen 127.0.0.1:$sink2; access_log $sinkdir/sink2.log size buffer=256k flush=1s; location / { return 204; } }
}
EOF
sink_pid=
start_sinks() {
    "${load_cpu[@]}" "$nginx_bin" -p "$sinkdir" -c "$sinkdir/nginx.conf" -e "$sinkdir/error.log" \
        >>"$sinkdir/nginx.out" 2>&1 &
    sink_pid=$!
    pids+=("$sink_pid")
    if ! wait_http "http://127.0.0.1:$sink1/" 10 || ! wait_http "http://127.0.0.1:$sink2/" 10; then
        die "nginx did not start: $(tail -3 "$sinkdir/error.log" "$sinkdir/nginx.out" 2>/dev/null)"
    fi
}
stop_sinks() {
    stop_pid "$sink_pid"
    sink_pid=
}
# MB of request bodies (by Content-Length) that sink N answered since its log was last removed.
# nginx answers before it has read a body, but it reads and drops the rest before the connection
# serves another request, and both proxies keep their connections.
sink_mb() { # N
    awk '{ b += $1 } END { printf "%.0f", b / 1e6 }' "$sinkdir/sink$1.log" 2>/dev/null || echo 0
}

# --- proxies --------------------------------------------------------------------------------
proxy_pid=
start_proxy() { # NAME DATADIR
    local name=$1 data=$2
    rm -rf "$data"
    mkdir -p "$data"
    case $name in
        promrelay)
            local storages=(--remote-write-url "http://127.0.0.1:$sink1/api/v1/write"
                --remote-write-url "http://127.0.0.1:$sink2/api/v1/write")
            if [[ -n $promrelay_storage ]]; then
                printf 'storages:\n  - {url: "http://127.0.0.1:%s/api/v1/write", %s}\n  - {url: "http://127.0.0.1:%s/api/v1/write", %s}\n' \
                    "$sink1" "$promrelay_storage" "$sink2" "$promrelay_storage" >"$data.yaml"
                storages=(--config "$data.yaml")
            fi
            "${proxy_cpu[@]}" "$promrelay_bin" --listen "127.0.0.1:$proxy_port" --data-dir "$data" \
                "${storages[@]}" --queue-max-bytes 64GiB "${promrelay_auth[@]}" >"$data.log" 2>&1 &
            proxy_pid=$!
            pids+=("$proxy_pid")
            wait_http "$scheme://127.0.0.1:$proxy_port/-/ready" 30 "${proxy_curl[@]}" || die "promrelay did not get ready: $(tail -5 "$data.log")"
            ;;
        vmagent)
            "${proxy_cpu[@]}" "$vmagent_bin" -httpListenAddr "127.0.0.1:$proxy_port" \
                -remoteWrite.tmpDataPath "$data" \
                -remoteWrite.url "http://127.0.0.1:$sink1/api/v1/write" \
                -remoteWrite.url "http://127.0.0.1:$sink2/api/v1/write" "${vmagent_auth[@]}" "${vmagent_extra[@]}" \
                >"$data.log" 2>&1 &
            proxy_pid=$!
            pids+=("$proxy_pid")
            wait_http "$scheme://127.0.0.1:$proxy_port/health" 30 "${proxy_curl[@]}" || die "vmagent did not get ready: $(tail -5 "$data.log")"
            ;;
    esac
}
stop_proxy() {
    stop_pid "$proxy_pid"
    proxy_pid=
}

# Prints "PENDING_BYTES ACTIVITY DROPPED UNBATCHED": the bytes accepted but not yet delivered
# over both storages, a counter that moves whenever the proxy sends a request, blocks dropped so
# far, and samples accepted but not yet in a block (vmagent only).
#
# vmagent's vmagent_remotewrite_pending_data_bytes leaves out blocks its send workers hold, and a
# worker that failed holds its block through a retry wait of up to a minute; so its backlog here is
# the bytes of all blocks made (vmagent_remotewrite_block_size_bytes_sum) less the bytes sent
# (vmagent_remotewrite_bytes_sent_total), and the samples accepted but not yet in a block are
# rows_pushed_after_relabel less block_size_rows_sum.
probe() { # NAME
    case $1 in
        promrelay)
            curl -fs --max-time 5 "${proxy_curl[@]}" "$scheme://127.0.0.1:$proxy_port/api/v1/queues" | jq -r '
                [ (map(.pending_bytes) | add),
                  (map(.requests_total + .sent_blocks_total + .retries_total) | add),
                  (map(.dropped_blocks_total + .cap_dropped_blocks_total) | add), 0 ] | @tsv' | tr '\t' ' '
            ;;
        vmagent)
            curl -fs --max-time 5 "${proxy_curl[@]}" "$scheme://127.0.0.1:$proxy_port/metrics" | awk '
                /^vmagent_remotewrite_block_size_bytes_sum / { made = $NF }
                /^vmagent_remotewrite_bytes_sent_total\{/ { sent += $NF }
                /^vmagent_remotewrite_block_size_rows_sum / { rows_blocked = $NF }
                /^vmagent_remotewrite_rows_pushed_after_relabel_total\{/ { rows_in += $NF }
                /^vmagent_remotewrite_requests_total\{/ || /^vmagent_remotewrite_errors_total\{/ ||
                /^vmagent_remotewrite_blocks_sent_total\{/ ||
                /^vmagent_remotewrite_retries_count_total\{/ { a += $NF }
                /^vm_persistentqueue_blocks_dropped_total\{/ ||
                /^vmagent_remotewrite_packets_dropped_total\{/ { d += $NF }
                END { printf "%d %d %d %d\n", made - sent, a, d, rows_in - rows_blocked }'
            ;;
    esac
}

# Polls until the backlog has been empty, with no send activity, for 2 s. Sets empty_at (epoch
# seconds), empty_cpu (ticks) and dropped, for the first poll of that quiet stretch, and
# resumed_at for the first poll whose backlog is below BACKLOG (the first delivery after an
# outage). Fails after $empty_timeout s.
wait_empty() { # NAME BACKLOG
    local name=$1 initial=$2 deadline=$((SECONDS + empty_timeout)) pending activity t c
    local cand_t='' cand_c='' cand_a='' unbatched
    resumed_at=
    while ((SECONDS < deadline)); do
        t=$(now)
        c=$(cpu_ticks "$proxy_pid")
        read -r pending activity dropped unbatched < <(probe "$name") || { sleep 0.25; continue; }
        [[ -z $resumed_at ]] && ((pending < initial)) && resumed_at=$t
        if ((pending == 0 && unbatched == 0)); then
            if [[ -z $cand_t || $activity != "$cand_a" ]]; then
                cand_t=$t cand_c=$c cand_a=$activity
            elif awk -v a="$t" -v b="$cand_t" 'BEGIN { exit !(a - b >= 2) }'; then
                empty_at=$cand_t empty_cpu=$cand_c
                return 0
            fi
        else
            cand_t=
        fi
        sleep 0.25
    done
    return 1
}

# Runs the load generator in the background; returns once it has encoded its ring and starts
# sending. Sets loadgen_pid and loadgen_out.
start_load() { # OUTFILE ARGS...
    loadgen_out=$1
    shift
    "${load_cpu[@]}" "$loadgen_bin" --url "$scheme://127.0.0.1:$proxy_port/api/v1/write" \
        --connections "$connections" "${loadgen_auth[@]}" "$@" >"$loadgen_out" 2>"$loadgen_out.err" &
    loadgen_pid=$!
    pids+=("$loadgen_pid")
    for _ in $(seq 600); do
        grep -q 'ring of' "$loadgen_out.err" 2>/dev/null && return 0
        kill -0 "$loadgen_pid" 2>/dev/null || break
        sleep 0.05
    done
    die "load generator did not start: $(cat "$loadgen_out.err")"
}
finish_load() { # sets pushes_ok pushes_failed pushes_per_s samples_per_push
    wait "$loadgen_pid" || die "load generator failed: $(cat "$loadgen_out.err")"
    forget "$loadgen_pid"
    local line
    line=$(grep '^result ' "$loadgen_out") || die "no result from the load generator"
    field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
    pushes_ok=$(field pushes_ok)
    pushes_failed=$(field pushes_failed)
    pushes_per_s=$(field pushes_per_s)
    samples_per_push=$(field samples_per_push)
    ((pushes_failed == 0)) || say "warning: $pushes_failed pushes failed: $(tail -1 "$loadgen_out.err")"
}

# --- one measurement -------------------------------------------------------------------------
# Appends to $results: run mode proxy pushes_per_s samples cpu_s samples_per_cpu_s peak_rss_mib
# empty_s resume_s backlog_mb dropped sink1_mb sink2_mb
measure() { # RUN MODE NAME
    local run=$1 mode=$2 name=$3 work=$dir/run$1-$2-$3
    local c0 t_on=0 backlog=0 drain_s resume_s=- cpu_s spcs rss backlog_mb
    rm -f "$sinkdir"/sink[12].log
    start_sinks
    start_proxy "$name" "$work"
    c0=$(cpu_ticks "$proxy_pid")
    case $mode in
        throughput)
            start_load "$work.load" --duration "${load_secs}s"
            finish_load
            t_on=$(now)
            ;;
        drain)
            start_load "$work.load" --duration "$((warmup_secs + outage_secs))s" --rate "$drain_rate"
            sleep "$warmup_secs"
            stop_sinks
            finish_load
            read -r backlog _ _ _ < <(probe "$name") || backlog=0
            start_sinks
            t_on=$(now)
            ;;
    esac
    wait_empty "$name" "$backlog" || die "$name: backlog still not empty $empty_timeout s after the load ($(probe "$name"))"
    drain_s=$(awk -v a="$empty_at" -v b="$t_on" 'BEGIN { printf "%.2f", a - b }')
    [[ $mode == drain && -n $resumed_at ]] && resume_s=$(awk -v a="$resumed_at" -v b="$t_on" 'BEGIN { printf "%.2f", a - b }')
    backlog_mb=$(awk -v b="$backlog" 'BEGIN { printf "%.0f", b / 1e6 }')
    cpu_s=$(awk -v c="$empty_cpu" -v c0="$c0" -v hz="$clk_tck" 'BEGIN { printf "%.2f", (c - c0) / hz }')
    spcs=$(awk -v n="$pushes_ok" -v s="$samples_per_push" -v c="$cpu_s" 'BEGIN { printf "%.0f", (c > 0 ? n * s / c : 0) }')
    rss=$(peak_rss_mib "$proxy_pid")
    stop_proxy
    stop_sinks
    $keep || rm -rf "$work"
    local s1 s2
    s1=$(sink_mb 1)
    s2=$(sink_mb 2)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$mode" "$name" \
        "$pushes_per_s" "$((pushes_ok * samples_per_push))" "$cpu_s" "$spcs" "$rss" "$drain_s" \
        "$resume_s" "$backlog_mb" "$dropped" "$s1" "$s2" >>"$results"
    local what="backlog empty ${drain_s} s after the load"
    [[ $mode == drain ]] && what="drained in ${drain_s} s (first delivery after ${resume_s} s) from a ${backlog_mb} MB backlog"
    say "$(printf 'run %s %-10s %-9s %5.1f pushes/s %8s samples/CPU-s  peak RSS %5s MiB  %s; sinks got %s/%s MB%s' \
        "$run" "$mode" "$name" "$pushes_per_s" "$spcs" "$rss" "$what" "$s1" "$s2" \
        "$( ((dropped == 0)) || echo ", DROPPED $dropped blocks")")"
}

say "sinks: nginx $("$nginx_bin" -v 2>&1 | sed 's/.*\///') on 127.0.0.1:$sink1 and :$sink2; pinning: $pinning"
[[ -n $promrelay_storage ]] && say "promrelay storages with: $promrelay_storage"
[[ -n $vmagent_flags ]] && say "vmagent with: $vmagent_flags"
$tls_auth && say "listeners: TLS (ECDSA P-256 certificate from $tlsdir) and basic auth; the load generator and probes use https"
say "load: $connections connections; throughput: ${load_secs} s as fast as answered; drain: ${drain_rate} pushes/s, sinks off after ${warmup_secs} s for ${outage_secs} s"
for run in $(seq "$runs"); do
    order=("${proxy_list[@]}")
    if ((run % 2 == 0)) && ((${#order[@]} == 2)); then order=("${order[1]}" "${order[0]}"); fi
    for mode in "${mode_list[@]}"; do
        for name in "${order[@]}"; do
            measure "$run" "$mode" "$name"
        done
    done
done

report "$results"
say "raw figures in $results"
exit
}

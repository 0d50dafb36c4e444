#!/usr/bin/env bash
# Kubernetes discovery, promrelay beside vmagent (Debian's victoria-metrics 1.79.5): memory and CPU
# of each discovering --pods pods from the fake API server (examples/fake_kube_apiserver.rs, the
# tests' fake as a process), and following a watch storm of --rate changes a second for
# --storm-secs.
#
# The fake serves the fixture cluster of tests/fixtures/kubernetes/ plus --pods generated pods in
# namespace `load`, each shaped as a real ReplicaSet pod (two containers with four ports, an init
# container, managedFields, ~4 KiB of JSON). The storm's changes are watch events: half are
# modifications (the pod's Ready condition flips, an annotation changes), half come in pairs that
# replace a pod (DELETED, then ADDED with a new name and IP), so the pod count stays --pods.
#
# The scrape config (the same for both): one job, `kubernetes_sd_configs` role pod on the fake;
# relabeling keeps one target per pod (its port named `metrics`) and points every target at
# 127.0.0.1:1, a closed port, with the pod's namespace and name as labels; scrape interval 5m.
# So each keeps --pods targets (and follows the storm's replacements) while its scrapes cost next
# to nothing: a refused connection every 30 ms on average. The remote-write URL is a closed port
# too (the few `up` samples wait in the queue).
#
# Measured per proxy and run (both start fresh each time):
#   baseline   RSS (VmRSS) 15 s after start on the fixture cluster alone (--pods 0);
#   listed     RSS and CPU seconds (utime+stime) from start until --list-secs later, when it must
#              list all --pods targets (checked after the measurement);
#   storm      CPU seconds over the storm and until --settle-secs after it, when it must again
#              list exactly --pods targets; peak RSS (VmHWM) over the whole run; RSS at the end.
#   per 1,000 pods: (listed RSS - baseline RSS) / (pods / 1000).
# Medians of --runs runs, the proxies' order alternating, with the ratio promrelay/vmagent.
#
# Fairness on a 2-core machine: the proxy runs pinned to CPU 0, the fake API server to CPU 1
# (--no-pin to turn off), so both runtimes see one CPU.
#
# Usage: scripts/bench-discovery.sh [--runs 3] [--pods 10000] [--rate 1000] [--storm-secs 30]
#          [--list-secs 20] [--settle-secs 10] [--proxies promrelay,vmagent] [--no-pin]
#          [--dir target/bench-discovery] [--keep]
# The defaults take about 8 minutes.
set -euo pipefail
# One { } group to the end, so bash reads the whole script before it runs any of it.
{
cd "$(dirname "$0")/.."
repo=$PWD
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

runs=3
pods=10000
rate=1000
storm_secs=30
list_secs=20
settle_secs=10
proxies=promrelay,vmagent
pin=true
dir=target/bench-discovery
keep=false

while [[ $# -gt 0 ]]; do
    case $1 in
        --runs) runs=$2; shift 2 ;;
        --pods) pods=$2; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        --storm-secs) storm_secs=$2; shift 2 ;;
        --list-secs) list_secs=$2; shift 2 ;;
        --settle-secs) settle_secs=$2; shift 2 ;;
        --proxies) proxies=$2; shift 2 ;;
        --no-pin) pin=false; shift ;;
        --dir) dir=$2; shift 2 ;;
        --keep) keep=true; shift ;;
        -h | --help) usage ;;
        *) say "unknown argument $1"; usage 2 ;;
    esac
done
for n in "$runs" "$pods" "$rate" "$storm_secs" "$list_secs" "$settle_secs"; do
    if ! [[ $n =~ ^[0-9]+$ ]] || ((n == 0)); then
        say "$n is not a positive whole number"
        exit 2
    fi
done
IFS=, read -r -a proxy_list <<<"$proxies"
for p in "${proxy_list[@]}"; do [[ $p == promrelay || $p == vmagent ]] || { say "unknown proxy $p"; exit 2; }; done

require_tools "apt-get install -y curl gawk util-linux python3" curl awk taskset python3

# --- what we run ----------------------------------------------------------------------------
build=(--example fake_kube_apiserver)
[[ " ${proxy_list[*]} " == *" promrelay "* ]] && build+=(--bin promrelay)
say "building ${build[*]} (release)"
cargo build --release "${build[@]}" -q
target_dir=${CARGO_TARGET_DIR:-$repo/target}
promrelay_bin=$target_dir/release/promrelay
fake_bin=$target_dir/release/examples/fake_kube_apiserver
vmagent_bin=$repo/.peers/bin/vmagent
[[ -x $vmagent_bin ]] || scripts/fetch-peers.sh >&2
"$vmagent_bin" --version >/dev/null 2>&1 || die "$vmagent_bin does not run"

if $pin && (($(nproc) >= 2)); then
    proxy_cpu=(taskset -c 0)
    fake_cpu=(taskset -c 1)
    pinning="proxy on CPU 0, fake API server on CPU 1"
else
    proxy_cpu=()
    fake_cpu=()
    pinning="none"
fi
clk_tck=$(getconf CLK_TCK)

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
results=$dir/results.tsv
: >"$results"

rss_mib() { # PID
    awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}
cpu_s() { # TICKS_FROM TICKS_TO
    awk -v a="$2" -v b="$1" -v hz="$clk_tck" 'BEGIN { printf "%.2f", (a - b) / hz }'
}

# --- the fake API server ----------------------------------------------------------------------
fake_pid='' fake_url='' fake_port=''
start_fake() { # PODS LOG
    free_port fake_port
    "${fake_cpu[@]}" "$fake_bin" --listen "127.0.0.1:$fake_port" --pods "$1" \
        --storm-rate "$rate" --storm-seconds "$storm_secs" >"$2" 2>"$2.err" &
    fake_pid=$!
    pids+=("$fake_pid")
    local deadline=$((SECONDS + 120))
    until grep -q '^listening on ' "$2"; do
        kill -0 "$fake_pid" 2>/dev/null || die "the fake API server exited: $(tail -n 5 "$2.err")"
        ((SECONDS < deadline)) || die "the fake API server did not start"
        sleep 0.1
    done
    fake_url=$(sed -n 's/^listening on //p' "$2")
}

# --- proxies ----------------------------------------------------------------------------------
config=$dir/scrape.yml
proxy_pid='' proxy_port=''
start_proxy() { # NAME WORKDIR
    local name=$1 data=$2
    rm -rf "$data"
    mkdir -p "$data"
    cat >"$config" <<EOF
scrape_configs:
  - job_name: pods
    scrape_interval: 5m
    kubernetes_sd_configs:
      - role: pod
        api_server: $fake_url
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_container_port_name]
        regex: metrics
        action: keep
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
      - target_label: __address__
        replacement: 127.0.0.1:1
EOF
    free_port proxy_port
    case $name in
        promrelay)
            "${proxy_cpu[@]}" "$promrelay_bin" --listen "127.0.0.1:$proxy_port" --data-dir "$data" \
                --remote-write-url "http://127.0.0.1:1/api/v1/write" \
                --scrape-config "$config" >"$data.log" 2>&1 &
            proxy_pid=$!
            ;;
        vmagent)
            "${proxy_cpu[@]}" "$vmagent_bin" -httpListenAddr "127.0.0.1:$proxy_port" \
                -promscrape.config "$config" -remoteWrite.tmpDataPath "$data" \
                -remoteWrite.url "http://127.0.0.1:1/api/v1/write" >"$data.log" 2>&1 &
            proxy_pid=$!
            ;;
    esac
    pids+=("$proxy_pid")
}

# Active targets of job `pods` the proxy lists now.
active_targets() {
    curl -fs --max-time 30 "http://127.0.0.1:$proxy_port/api/v1/targets" |
        python3 -c 'import json, sys
d = json.load(sys.stdin)["data"]["activeTargets"]
print(sum(1 for t in d if t["scrapePool"] == "pods" and t["labels"].get("namespace") == "load"))'
}

# Waits up to SECONDS for the proxy to list WANT targets of job `pods`; prints the last count.
wait_targets() { # WANT SECONDS
    local deadline=$((SECONDS + $2)) n=0
    while :; do
        n=$(active_targets 2>/dev/null || echo 0)
        ((n == $1 || SECONDS >= deadline)) && break
        sleep 1
    done
    echo "$n"
}

# --- one measurement --------------------------------------------------------------------------
# Appends to $results: run proxy baseline_rss listed_rss list_cpu storm_cpu peak_rss end_rss
measure() { # RUN NAME
    local run=$1 name=$2 work=$dir/run$1-$2
    local base_rss c0 c1 c1b c2 listed_rss peak end_rss n

    start_fake 0 "$work-fake0.out"
    start_proxy "$name" "$work-base"
    sleep 15
    base_rss=$(rss_mib "$proxy_pid")
    stop_pid "$proxy_pid"
    stop_pid "$fake_pid"

    start_fake "$pods" "$work-fake.out"
    start_proxy "$name" "$work"
    c0=$(cpu_ticks "$proxy_pid")
    sleep "$list_secs"
    c1=$(cpu_ticks "$proxy_pid")
    listed_rss=$(rss_mib "$proxy_pid")
    n=$(wait_targets "$pods" 60)
    ((n == pods)) || say "warning: $name listed $n of $pods targets after $list_secs s (+60 s)"
    c1b=$(cpu_ticks "$proxy_pid")
    kill -USR1 "$fake_pid"
    local deadline=$((SECONDS + storm_secs + 60))
    until grep -q '^storm done' "$work-fake.out"; do
        ((SECONDS < deadline)) || die "the storm did not end"
        sleep 0.2
    done
    sleep "$settle_secs"
    c2=$(cpu_ticks "$proxy_pid")
    peak=$(peak_rss_mib "$proxy_pid")
    end_rss=$(rss_mib "$proxy_pid")
    n=$(wait_targets "$pods" 60)
    ((n == pods)) || say "warning: $name lists $n of $pods targets after the storm (+60 s)"
    stop_pid "$proxy_pid"
    stop_pid "$fake_pid"
    $keep || rm -rf "$work" "$work-base" "$work.log" "$work-base.log"
    local list_cpu storm_cpu
    list_cpu=$(cpu_s "$c0" "$c1")
    storm_cpu=$(cpu_s "$c1b" "$c2")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$name" "$base_rss" "$listed_rss" \
        "$list_cpu" "$storm_cpu" "$peak" "$end_rss" >>"$results"
    say "$(printf 'run %s %-9s baseline %6s MiB  listed %6s MiB (CPU %5s s)  storm CPU %6s s  peak %6s MiB  end %6s MiB' \
        "$run" "$name" "$base_rss" "$listed_rss" "$list_cpu" "$storm_cpu" "$peak" "$end_rss")"
}

say "$pods pods, a storm of $rate changes/s for $storm_secs s; listing measured at $list_secs s, settling $settle_secs s; pinning: $pinning"
for run in $(seq "$runs"); do
    order=("${proxy_list[@]}")
    if ((run % 2 == 0)); then
        reversed=()
        for ((i = ${#order[@]} - 1; i >= 0; i--)); do reversed+=("${order[i]}"); done
        order=("${reversed[@]}")
    fi
    for name in "${order[@]}"; do measure "$run" "$name"; done
done

# --- the table --------------------------------------------------------------------------------
awk -F'\t' -v pods="$pods" '
    function median(list,   n, a, i, j, t) {
        n = split(list, a, " ")
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    { for (f = 3; f <= 8; f++) v[$2, f] = v[$2, f] " " $f; seen[$2] = 1 }
    END {
        split("baseline RSS (MiB)|RSS with the pods listed (MiB)|CPU s to list|CPU s for the storm + settle|peak RSS (MiB)|RSS after the storm (MiB)", name, "|")
        printf "%-34s %12s %12s %8s\n", "median of runs", "promrelay", "vmagent", "ratio"
        for (f = 3; f <= 8; f++) {
            p = ("promrelay" in seen) ? median(v["promrelay", f]) : ""
            m = ("vmagent" in seen) ? median(v["vmagent", f]) : ""
            printf "%-34s %12s %12s %8s\n", name[f - 2], p, m, (p != "" && m + 0 > 0) ? sprintf("%.2f", p / m) : "-"
        }
        for (who in seen) per[who] = (median(v[who, 4]) - median(v[who, 3])) / (pods / 1000)
        p = ("promrelay" in seen) ? sprintf("%.2f", per["promrelay"]) : ""
        m = ("vmagent" in seen) ? sprintf("%.2f", per["vmagent"]) : ""
        printf "%-34s %12s %12s %8s\n", "MiB per 1,000 pods", p, m, (p != "" && m + 0 > 0) ? sprintf("%.2f", p / m) : "-"
    }' "$results"
exit 0
}

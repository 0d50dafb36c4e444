#!/usr/bin/env bash
# promrelay's built-in scraper beside vmagent's (Debian's victoria-metrics 1.79.5): the same
# targets at the same interval for the same time, each forwarding to the same fast sink.
#
# Targets: one nginx serving one exposition file on --targets loopback ports (one `listen` each),
# scraped every --interval. The exposition is node_exporter's real output (captured once from
# .peers/bin/node_exporter) topped up with a web application's histograms and gauges to --series
# samples; its exact size is printed. The sink is the same nginx answering 204 to every request.
#
# Measured per scraper, over --secs after --warmup-secs (loops spread over the interval, connections
# opened): samples written per CPU-second of the scraper process (utime+stime from
# /proc/PID/stat), the samples/s it wrote (to see it kept up: the expected rate is printed), and its
# peak RSS (VmHWM) over the whole run. "Samples written" counts the same thing on both sides: the
# scraped samples plus the five series each scrape adds (up, scrape_duration_seconds, ...):
#   promrelay  /metrics promrelay_ingested_samples_total{source="scrape"} (which counts exactly that,
#              plus stale markers, none in a steady state)
#   vmagent    /metrics vm_promscrape_scraped_samples_sum + 5 * vm_promscrape_scraped_samples_count
#
# Fairness on a 2-core machine: the scraper runs pinned to CPU 0, nginx to CPU 1 (--no-pin to turn
# off), so both runtimes see one CPU (Go's GOMAXPROCS and tokio's worker count follow the affinity
# mask). Other work on the machine still lands on CPU 0; hence three runs, medians, and the order of
# the two scrapers alternating from run to run. Both run with their default settings.
#
# Goal (issue 13): at least 4x vmagent's samples per CPU-second at 200 and 1,000 targets, with
# every scrape on time, and at most half its peak RSS.
#
# --perf records where promrelay spends its CPU during each measured window (perf record, cpu-clock
# samples with DWARF call graphs, into DIR/perf-runN.data) and prints the top functions; perf's own
# cost lands on promrelay then, so those runs' figures are not for comparison.
#
# --busy-cpu keeps the scraper's CPU from going idle between scrapes: a busy loop at the idle
# scheduling class (SCHED_IDLE, `chrt -i 0`) on CPU 0 runs only when the scraper does not want it,
# and its CPU is not the scraper's. On this VM a CPU that idles between bursts of work wakes slower
# (caches, host scheduling): with it, promrelay's figure rose from 1.8M to 2.8M and vmagent's from
# 0.77M to 1.04M (issue 13's note). The default measures the machine as it is.
#
# Usage: scripts/bench-scrape.sh [--runs 3] [--secs 60] [--warmup-secs 5] [--targets 300]
#          [--series 1000] [--interval 1s] [--scrapers promrelay,vmagent] [--no-pin] [--perf]
#          [--busy-cpu] [--dir target/bench-scrape] [--keep]
# The defaults take about 7 minutes; `--runs 1 --secs 15` is a quick look.
set -euo pipefail
# One { } group to the end, so bash reads the whole script before it runs any of it: it reads a
# script as it goes, and an edit of this file during a run would have it run pieces of the new text.
{
cd "$(dirname "$0")/.."
repo=$PWD
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

runs=3
secs=60
warmup_secs=5
targets=300
series=1000
interval=1s
scrapers=promrelay,vmagent
pin=true
perf=false
busy_cpu=false
dir=target/bench-scrape
keep=false

while [[ $# -gt 0 ]]; do
    case $1 in
        --runs) runs=$2; shift 2 ;;
        --secs) secs=$2; shift 2 ;;
        --warmup-secs) warmup_secs=$2; shift 2 ;;
        --targets) targets=$2; shift 2 ;;
        --series) series=$2; shift 2 ;;
        --interval) interval=$2; shift 2 ;;
        --scrapers) scrapers=$2; shift 2 ;;
        --no-pin) pin=false; shift ;;
        --perf) perf=true; shift ;;
        --busy-cpu) busy_cpu=true; shift ;;
        --dir) dir=$2; shift 2 ;;
        --keep) keep=true; shift ;;
        -h | --help) usage ;;
        *) say "unknown argument $1"; usage 2 ;;
    esac
done
for n in "$runs" "$secs" "$warmup_secs" "$targets" "$series"; do
    if ! [[ $n =~ ^[0-9]+$ ]] || ((n == 0)); then
        say "$n is not a positive whole number"
        exit 2
    fi
done
((targets <= 5000)) || { say "at most 5000 targets"; exit 2; }
[[ $interval =~ ^[0-9]+(ms|s|m)$ ]] || { say "--interval $interval is not like 1s or 500ms"; exit 2; }
interval_s=$(awk -v i="$interval" 'BEGIN { n = i + 0; if (i ~ /ms$/) n /= 1000; else if (i ~ /m$/) n *= 60; print n }')
IFS=, read -r -a scraper_list <<<"$scrapers"
for s in "${scraper_list[@]}"; do [[ $s == promrelay || $s == vmagent ]] || { say "unknown scraper $s"; exit 2; }; done

require_tools "apt-get install -y curl gawk util-linux dpkg" curl awk taskset dpkg-deb
if $perf; then
    command -v perf >/dev/null || die "--perf needs perf (apt-get install -y linux-perf)"
fi

# --- what we run ----------------------------------------------------------------------------
say "building promrelay (release)"
cargo build --release --bin promrelay -q
# cargo builds into CARGO_TARGET_DIR when it is set (a worktree, or another build profile to compare).
promrelay_bin=${CARGO_TARGET_DIR:-$repo/target}/release/promrelay

vmagent_bin=$repo/.peers/bin/vmagent
node_exporter_bin=$repo/.peers/bin/node_exporter
[[ -x $vmagent_bin && -x $node_exporter_bin ]] || scripts/fetch-peers.sh >&2
"$vmagent_bin" --version >/dev/null 2>&1 || die "$vmagent_bin does not run"

find_nginx "$repo/target/bench-peers/nginx"

if $pin && (($(nproc) >= 2)); then
    scraper_cpu=(taskset -c 0)
    nginx_cpu=(taskset -c 1)
    pinning="scraper on CPU 0, nginx (targets and sink) on CPU 1"
else
    scraper_cpu=()
    nginx_cpu=()
    pinning="none"
fi
if $busy_cpu; then
    $pin && (($(nproc) >= 2)) || die "--busy-cpu needs the pinning (the scraper's CPU is CPU 0)"
    require_tools "apt-get install -y util-linux" chrt
    chrt -i 0 taskset -c 0 sh -c 'while :; do :; done' &
    pids+=("$!")
    pinning="$pinning; CPU 0 kept busy at the idle scheduling class"
fi
clk_tck=$(getconf CLK_TCK)

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
results=$dir/results.tsv
: >"$results"

# --- the exposition ---------------------------------------------------------------------------
www=$dir/www
mkdir -p "$www"
exposition=$www/metrics
node_port='' sink_port='' scraper_port='' port=''
free_port node_port
"$node_exporter_bin" --web.listen-address="127.0.0.1:$node_port" >"$dir/node_exporter.log" 2>&1 &
node_pid=$!
pids+=("$node_pid")
wait_http "http://127.0.0.1:$node_port/metrics" 30 || die "node_exporter did not start: $(tail -n 3 "$dir/node_exporter.log")"
curl -fs --max-time 10 "http://127.0.0.1:$node_port/metrics" >"$dir/node_exporter.prom"
stop_pid "$node_pid"
# Tops node_exporter's samples up to $series with what a web application exposes: request
# duration histograms per handler (12 buckets, _sum, _count), then a gauge per queue.
awk -v want="$series" '
    { print }
    /^[^#]/ && NF { n++ }
    END {
        split("0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 +Inf", le, " ")
        if (n + 14 <= want) {
            print "# HELP app_http_request_duration_seconds Time spent answering HTTP requests."
            print "# TYPE app_http_request_duration_seconds histogram"
        }
        for (h = 0; n + 14 <= want; h++) {
            total = 1000 + h * 37
            for (b = 1; b <= 12; b++) {
                c = int(total * b / 12)
                printf "app_http_request_duration_seconds_bucket{code=\"200\",handler=\"/api/v1/resource%03d\",method=\"GET\",le=\"%s\"} %d\n", h, le[b], c
            }
            printf "app_http_request_duration_seconds_sum{code=\"200\",handler=\"/api/v1/resource%03d\",method=\"GET\"} %.3f\n", h, total * 0.0421
            printf "app_http_request_duration_seconds_count{code=\"200\",handler=\"/api/v1/resource%03d\",method=\"GET\"} %d\n", h, total
            n += 14
        }
        if (n < want) {
            print "# HELP app_queue_depth Items waiting in a work queue."
            print "# TYPE app_queue_depth gauge"
        }
        for (q = 0; n < want; q++) { printf "app_queue_depth{queue=\"q%03d\"} %d\n", q, q * 3; n++ }
    }' "$dir/node_exporter.prom" >"$exposition"
samples_per_scrape=$(awk '!/^#/ && NF' "$exposition" | wc -l)
exposition_kib=$(($(stat -c %s "$exposition") / 1024))

# --- nginx: the targets and the sink ------------------------------------------------------------
free_port sink_port
target_ports=()
for _ in $(seq "$targets"); do
    free_port port
    target_ports+=("$port")
done
nginx_dir=$dir/nginx
mkdir -p "$nginx_dir"
{
    cat <<EOF
# $targets scrape targets serving $exposition, and a remote-write sink answering 204.
worker_processes 1;
worker_rlimit_nofile 16384;
daemon off;
pid $nginx_dir/nginx.pid;
error_log $nginx_dir/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_max_body_size 0;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    sendfile on;
    client_body_temp_path $nginx_dir/body;
    proxy_temp_path $nginx_dir/proxy;
    fastcgi_temp_path $nginx_dir/fastcgi;
    uwsgi_temp_path $nginx_dir/uwsgi;
    scgi_temp_path $nginx_dir/scgi;
    server { listen 127.0.0.1:$sink_port; location / { return 204; } }
    server {
EOF
    for p in "${target_ports[@]}"; do echo "        listen 127.0.0.1:$p;"; done
    cat <<EOF
        root $www;
        location = /metrics { types { } default_type "text/plain; version=0.0.4; charset=utf-8"; }
    }
}
EOF
} >"$nginx_dir/nginx.conf"
rm -f "$nginx_dir/error.log"
"${nginx_cpu[@]}" "$nginx_bin" -p "$nginx_dir" -c "$nginx_dir/nginx.conf" -e "$nginx_dir/error.log" \
    >"$nginx_dir/nginx.out" 2>&1 &
nginx_pid=$!
pids+=("$nginx_pid")
wait_http "http://127.0.0.1:$sink_port/" 10 || die "nginx did not start: $(tail -n 3 "$nginx_dir/error.log" "$nginx_dir/nginx.out" 2>/dev/null)"
wait_http "http://127.0.0.1:${target_ports[0]}/metrics" 10 || die "nginx does not serve the targets"

scrape_config=$dir/prometheus.yml
{
    printf 'global:\n  scrape_interval: %s\n  scrape_timeout: %s\nscrape_configs:\n  - job_name: bench\n    static_configs:\n      - targets:\n' "$interval" "$interval"
    for p in "${target_ports[@]}"; do printf "          - '127.0.0.1:%s'\n" "$p"; done
} >"$scrape_config"

# --- scrapers ---------------------------------------------------------------------------------
free_port scraper_port
scraper_pid=
start_scraper() { # NAME DATADIR
    local name=$1 data=$2
    rm -rf "$data"
    mkdir -p "$data"
    case $name in
        promrelay)
            "${scraper_cpu[@]}" "$promrelay_bin" --listen "127.0.0.1:$scraper_port" --data-dir "$data" \
                --remote-write-url "http://127.0.0.1:$sink_port/api/v1/write" \
                --scrape-config "$scrape_config" >"$data.log" 2>&1 &
            scraper_pid=$!
            pids+=("$scraper_pid")
            wait_http "http://127.0.0.1:$scraper_port/-/ready" 30 || die "promrelay did not get ready: $(tail -n 5 "$data.log")"
            ;;
        vmagent)
            "${scraper_cpu[@]}" "$vmagent_bin" -httpListenAddr "127.0.0.1:$scraper_port" \
                -promscrape.config "$scrape_config" \
                -remoteWrite.tmpDataPath "$data" \
                -remoteWrite.url "http://127.0.0.1:$sink_port/api/v1/write" >"$data.log" 2>&1 &
            scraper_pid=$!
            pids+=("$scraper_pid")
            wait_http "http://127.0.0.1:$scraper_port/health" 30 || die "vmagent did not get ready: $(tail -n 5 "$data.log")"
            ;;
    esac
}
stop_scraper() {
    stop_pid "$scraper_pid"
    scraper_pid=
}

# Samples written so far (scraped + 5 per scrape); see the header.
samples_written() { # NAME
    local text
    text=$(curl -fs --max-time 5 "http://127.0.0.1:$scraper_port/metrics") || die "$1: /metrics does not answer"
    case $1 in
        promrelay)
            awk '/^promrelay_ingested_samples_total\{.*source="scrape"/ { s += $NF; f = 1 }
                 END { if (!f) exit 1; printf "%.0f\n", s }' <<<"$text" ||
                die "promrelay: no promrelay_ingested_samples_total{source=\"scrape\"} in /metrics"
            ;;
        vmagent)
            awk '/^vm_promscrape_scraped_samples_sum / { s = $NF; f++ }
                 /^vm_promscrape_scraped_samples_count / { c = $NF; f++ }
                 END { if (f != 2) exit 1; printf "%.0f\n", s + 5 * c }' <<<"$text" ||
                die "vmagent: no vm_promscrape_scraped_samples_sum/_count in /metrics"
            ;;
    esac
}

# --- one measurement -------------------------------------------------------------------------
# Appends to $results: run scraper samples cpu_s samples_per_cpu_s samples_per_s peak_rss_mib
measure() { # RUN NAME
    local run=$1 name=$2 work=$dir/run$1-$2
    local c0 c1 s0 s1 t0 t1 cpu_s spcs rate rss
    start_scraper "$name" "$work"
    sleep "$warmup_secs"
    t0=$(now) c0=$(cpu_ticks "$scraper_pid") s0=$(samples_written "$name")
    if $perf && [[ $name == promrelay ]]; then
        perf record -q -e cpu-clock -F "${PERF_FREQ:-199}" --call-graph dwarf,16384 -p "$scraper_pid" \
            -o "$dir/perf-run$run.data" -- sleep "$secs" >"$dir/perf-run$run.log" 2>&1 ||
            die "perf record failed: $(tail -n 3 "$dir/perf-run$run.log")"
    else
        sleep "$secs"
    fi
    t1=$(now) c1=$(cpu_ticks "$scraper_pid") s1=$(samples_written "$name")
    rss=$(peak_rss_mib "$scraper_pid")
    rss_now=$(rss_mib "$scraper_pid")
    stop_scraper
    $keep || rm -rf "$work" "$work.log"
    if $perf && [[ $name == promrelay ]]; then
        say "run $run: where promrelay spent its CPU (self time, top 25; call graphs: perf report -i $dir/perf-run$run.data)"
        perf report -i "$dir/perf-run$run.data" --no-children --sort symbol --stdio -g none 2>/dev/null |
            grep -E '^ +[0-9]' | sed 's/ *-  *- *$//' | head -25 >&2 || true
    fi
    cpu_s=$(awk -v a="$c1" -v b="$c0" -v hz="$clk_tck" 'BEGIN { printf "%.2f", (a - b) / hz }')
    spcs=$(awk -v n="$((s1 - s0))" -v c="$cpu_s" 'BEGIN { printf "%.0f", (c > 0 ? n / c : 0) }')
    rate=$(awk -v n="$((s1 - s0))" -v a="$t1" -v b="$t0" 'BEGIN { printf "%.0f", n / (a - b) }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$name" "$((s1 - s0))" "$cpu_s" "$spcs" "$rate" "$rss" >>"$results"
    say "$(printf 'run %s %-9s %9s samples/CPU-s  %8s samples/s  CPU %6s s  peak RSS %6s MiB (%s at the end)' \
        "$run" "$name" "$spcs" "$rate" "$cpu_s" "$rss" "$rss_now")"
}

expected_rate=$(awk -v t="$targets" -v s="$samples_per_scrape" -v i="$interval_s" 'BEGIN { printf "%.0f", t * (s + 5) / i }')
say "targets: $targets on nginx $("$nginx_bin" -v 2>&1 | sed 's/.*\///'), each $samples_per_scrape samples ($exposition_kib KiB, node_exporter's + synthetic), every $interval"
say "expected: $expected_rate samples/s written; measuring ${secs} s after ${warmup_secs} s of warm-up; pinning: $pinning"
for run in $(seq "$runs"); do
    order=("${scraper_list[@]}")
    if ((run % 2 == 0)) && ((${#order[@]} == 2)); then order=("${order[1]}" "${order[0]}"); fi
    for name in "${order[@]}"; do
        measure "$run" "$name"
    done
done

# --- report ---------------------------------------------------------------------------------
# Medians per scraper over the runs; ratios are promrelay's median over vmagent's.
awk -F'\t' -v runs="$runs" -v expected="$expected_rate" '
function median(key,   n, i, j, t, v) {
    n = cnt[key]
    for (i = 1; i <= n; i++) v[i] = val[key, i]
    for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function add(s, metric, x,   k) { k = s SUBSEP metric; val[k, ++cnt[k]] = x }
function m(s, metric,   k) { k = s SUBSEP metric; return (k in cnt) ? median(k) : "" }
function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "-" : sprintf("%.2f", a / b) }
function row(label, metric, fmt, goal,   p, v) {
    p = m("promrelay", metric); v = m("vmagent", metric)
    printf "  %-28s %14s %14s %8s   %s\n", label, p == "" ? "-" : sprintf(fmt, p), v == "" ? "-" : sprintf(fmt, v), ratio(p, v), goal
}
{ add($2, "samples", $3); add($2, "cpu", $4); add($2, "spcs", $5); add($2, "rate", $6); add($2, "rss", $7); line[NR] = $0 }
END {
    printf "\nper run (scraper: samples written, CPU s, samples/CPU-s, samples/s, peak RSS MiB)\n"
    for (i = 1; i <= NR; i++) { split(line[i], f, "\t"); printf "  run %s %-9s %10s %8s %10s %9s %8s\n", f[1], f[2], f[3], f[4], f[5], f[6], f[7] }
    printf "\nmedians of %d runs                 promrelay        vmagent    ratio   goal (promrelay/vmagent)\n", runs
    row("samples per CPU-second", "spcs", "%.0f", ">= 4")
    row("peak RSS (MiB)", "rss", "%.1f", "<= 0.5")
    row("samples/s written", "rate", "%.0f", "expected " expected)
    row("CPU seconds", "cpu", "%.2f", "")
}' "$results"
say "raw figures in $results"
exit
}

#!/usr/bin/env bash
# The queue's append speed beside the disk's raw sequential write speed, same volume, same disk.
# Usage: scripts/bench-queue-vs-dd.sh [DIR on the disk to measure] [MiB=2048] [runs=3]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-target/bench-dd}
mib=${2:-2048}
runs=${3:-3}
mkdir -p "$dir"
cargo build --release --example queue_fill -q
for i in $(seq "$runs"); do
  rm -rf "$dir/q" "$dir/dd"
  dd_line=$(dd if=/dev/zero of="$dir/dd" bs=1M count="$mib" conv=fdatasync 2>&1 | tail -1)
  rm -f "$dir/dd"
  q_line=$(target/release/examples/queue_fill "$dir/q" "$mib" 64 interval)
  rm -rf "$dir/q"
  echo "run $i: dd: $dd_line | queue (64 KiB blocks, interval): $q_line"
done

#!/usr/bin/env bash
# VMs on this machine, as root: the time from `cloonix apply` to every VM of the lab
# answering `cloonix exec`, for 1 and for 4 VMs of the built-in guest (one NIC each, on one
# lan), from nothing; each case RUNS times (default 3), the table gives the median and the
# range, and the accelerator status reported. The built-in guest is built (and cached)
# before the first timed run. It cleans only what it made: its lab `bench-vm` and its
# temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
if [ -z "${CLOONIX:-}" ]; then cargo build --release --quiet; fi
cloonix=${CLOONIX:-./target/release/cloonix}
work=$(mktemp -d)
trap 'rm -rf "$work"; $cloonix destroy bench-vm >/dev/null 2>&1 || true' EXIT

lab() { # n
    printf 'name: bench-vm\nlans: [l]\nendpoints:\n'
    for i in $(seq "$1"); do
        printf '  vm%s: {kind: kvm, eth: [{lan: l, ip: 10.250.0.%s/24}]}\n' "$i" "$i"
    done
}
now() { date +%s.%N; }
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
range() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {printf "%.2f–%.2f", lo, hi}'; }

$cloonix destroy bench-vm >/dev/null 2>&1
lab 1 >"$work/1.yaml"
lab 4 >"$work/4.yaml"
# Warm: the built-in guest into the image cache.
$cloonix apply "$work/1.yaml" >/dev/null 2>&1
accel=$($cloonix status bench-vm | grep -o 'accel [a-z]*' | head -1)
$cloonix destroy bench-vm >/dev/null 2>&1

declare -A t
for _ in $(seq "$runs"); do
    for n in 1 4; do
        s=$(now)
        $cloonix apply "$work/$n.yaml" >/dev/null 2>&1
        for i in $(seq "$n"); do $cloonix exec bench-vm "vm$i" -- true; done
        t[$n]="${t[$n]:-} $(echo "$(now) - $s" | bc)"
        $cloonix destroy bench-vm >/dev/null 2>&1
    done
done
printf '| case (%s, median of %s runs; range) | seconds |\n|---|---|\n' "$accel" "$runs"
for n in 1 4; do
    printf '| apply → every VM answers exec, %s VM(s) | %.2f (%s) |\n' "$n" "$(median "${t[$n]}")" "$(range "${t[$n]}")"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

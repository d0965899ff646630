#!/usr/bin/env bash
# The reconciler's benchmark on this machine, as root: apply of 100 and 300 busybox
# containers on 10 lans from nothing, a no-op re-apply of the 300, one eth added on the
# 300, repair of one deleted interface, destroy; and Mininet building, starting and
# tearing down 100 hosts on one Linux bridge in the same run, for comparison.
# Each case runs RUNS times (default 3); the table gives the median.
# Needs: mininet bridge-utils (installed if missing).
#
# It cleans only what it made: its own lab `bench` (through cloonix destroy) and its
# temporary directory. Mininet tears down what it built when it exits; `mn -c` is never
# run, since it kills every `ping` on the machine and removes files and links it did
# not make.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
for p in mininet bridge-utils; do
    dpkg -s "$p" >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >&2
done
# CLOONIX=path runs another build (e.g. an older commit's, for a comparison on one
# machine); NO_MININET=1 leaves Mininet out.
if [ -z "${CLOONIX:-}" ]; then cargo build --release --quiet; fi
cloonix=${CLOONIX:-./target/release/cloonix}
work=$(mktemp -d)
trap 'rm -rf "$work"; $cloonix destroy bench >/dev/null 2>&1 || true' EXIT
python3 bench/gen.py 100 10 >"$work/100.yaml"
python3 bench/gen.py 300 10 >"$work/300.yaml"
python3 bench/gen.py 300 10 --extra-eth >"$work/300x.yaml"

now() { date +%s.%N; }
declare -A t
timed() { # name command...
    local name=$1; shift
    local s; s=$(now)
    "$@" >/dev/null 2>&1
    t[$name]="${t[$name]:-} $(echo "$(now) - $s" | bc)"
}
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

$cloonix destroy bench >/dev/null 2>&1
for _ in $(seq "$runs"); do
    timed apply100 $cloonix apply "$work/100.yaml"
    timed destroy100 $cloonix destroy bench
    if [ -z "${NO_MININET:-}" ]; then
        timed mininet100 mn --topo single,100 --switch lxbr --controller none --test none
    fi
    timed apply300 $cloonix apply "$work/300.yaml"
    timed noop300 $cloonix apply "$work/300.yaml"
    timed oneeth300 $cloonix apply "$work/300x.yaml"
    ip -n cloonix_bench_n5 link del eth0
    timed repair300 $cloonix apply "$work/300x.yaml"
    timed destroy300 $cloonix destroy bench
done

row() { printf '| %s | %.2f |\n' "$1" "$(median "${t[$2]}")"; }
printf '| case (median of %s runs) | seconds |\n|---|---|\n' "$runs"
row "cloonix: apply 100 containers on 10 lans, from nothing" apply100
row "cloonix: destroy them" destroy100
printf '| cloonix: apply + destroy of 100 | %.2f |\n' \
    "$(echo "$(median "${t[apply100]}") + $(median "${t[destroy100]}")" | bc)"
if [ -z "${NO_MININET:-}" ]; then
    row 'Mininet: `mn --topo single,100 --switch lxbr --controller none --test none`' mininet100
fi
row "cloonix: apply 300 containers on 10 lans, from nothing" apply300
row "cloonix: no-op re-apply of the 300" noop300
row "cloonix: add one eth on the 300-node lab" oneeth300
row "cloonix: repair one deleted interface on the 300-node lab" repair300
row "cloonix: destroy the 300" destroy300
echo "all runs:" >&2
for k in "${!t[@]}"; do echo "  $k:${t[$k]}" >&2; done

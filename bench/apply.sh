#!/usr/bin/env bash
# The reconciler's benchmark on this machine, as root: apply of 100 and 300 busybox
# containers on 10 lans from nothing, a no-op re-apply of the 300, one eth added on the
# 300, repair of one deleted interface, destroy; and Mininet building, starting and
# tearing down 100 hosts on one Linux bridge in the same run, for comparison.
# Prints a Markdown table. Needs: mininet bridge-utils (installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
for p in mininet bridge-utils; do
    dpkg -s "$p" >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >&2
done
cargo build --release --quiet
cloonix=./target/release/cloonix
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
    t[$name]=$(echo "$(now) - $s" | bc)
}

$cloonix destroy bench >/dev/null 2>&1
timed apply100 $cloonix apply "$work/100.yaml"
timed destroy100 $cloonix destroy bench
mn -c >/dev/null 2>&1 || true
timed mininet100 mn --topo single,100 --switch lxbr --controller none --test none
timed apply300 $cloonix apply "$work/300.yaml"
timed noop300 $cloonix apply "$work/300.yaml"
timed oneeth300 $cloonix apply "$work/300x.yaml"
ip -n cloonix_bench_n5 link del eth0
timed repair300 $cloonix apply "$work/300x.yaml"
timed destroy300 $cloonix destroy bench

both=$(echo "${t[apply100]} + ${t[destroy100]}" | bc)
printf '| case | seconds |\n|---|---|\n'
printf '| cloonix: apply 100 containers on 10 lans, from nothing | %.2f |\n' "${t[apply100]}"
printf '| cloonix: destroy them | %.2f |\n' "${t[destroy100]}"
printf '| cloonix: apply + destroy of 100 | %.2f |\n' "$both"
printf '| Mininet: `mn --topo single,100 --switch lxbr --controller none --test none` | %.2f |\n' "${t[mininet100]}"
printf '| cloonix: apply 300 containers on 10 lans, from nothing | %.2f |\n' "${t[apply300]}"
printf '| cloonix: no-op re-apply of the 300 | %.2f |\n' "${t[noop300]}"
printf '| cloonix: add one eth on the 300-node lab | %.2f |\n' "${t[oneeth300]}"
printf '| cloonix: repair one deleted interface on the 300-node lab | %.2f |\n' "${t[repair300]}"
printf '| cloonix: destroy the 300 | %.2f |\n' "${t[destroy300]}"

#!/usr/bin/env bash
# Time to all checks green for the OSPF demos, as root: `cloonix apply --wait` of
# topologies/ospf-square.yaml (4 routers, 4 hosts, 12 checks) and ospf-spider.yaml
# (25 routers on 48 links, 5 hosts, 12 checks), from no lab to the last check passed,
# with the routers' image already built, and with it built first (the first run on a host).
# Cached runs: RUNS times each (default 3), the table gives the median; with the build:
# COLD_RUNS times each (default 1).
#
# It makes labs ${PREFIX}square and ${PREFIX}spider (PREFIX default `bench-`) and destroys
# them. For the runs with the build it removes the demos' image from the cache, as
# `cloonix images prune` would, and only while no lab uses it; the last run leaves it built.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
cold_runs=${COLD_RUNS:-1}
prefix=${PREFIX:-bench-}
cargo build --release --quiet
cloonix=$PWD/target/release/cloonix
work=$(mktemp -d)
cleanup() {
    for d in square spider; do $cloonix destroy "$prefix$d" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT
cp -r topologies/ospf "$work/"
for d in square spider; do
    sed "s/^name: ospf-$d\$/name: $prefix$d/" "topologies/ospf-$d.yaml" >"$work/$d.yaml"
done

# The cache id of the routers' image (the hosts run the built-in busybox one), and the
# labs using it, from `cloonix images -o json`.
image_of() { # lab
    $cloonix images -o json | python3 -c '
import json, sys
for m in json.load(sys.stdin):
    if sys.argv[1] in m["labs"] and m["kind"] == "debian":
        print(m["id"])' "$1"
}
users_of() { # id
    $cloonix images -o json | python3 -c '
import json, sys
for m in json.load(sys.stdin):
    if m["id"] == sys.argv[1]:
        print(len(m["labs"]))' "$1"
}

declare -A t
# One apply --wait from no lab: wall time, apply's own time and when the checks were green.
run() { # key demo
    local key=$1 demo=$2 s e out
    s=$(date +%s.%N)
    out=$($cloonix apply --wait -o json "$work/$demo.yaml" 2>/dev/null)
    e=$(date +%s.%N)
    python3 -c '
import json, sys
r = json.loads(sys.argv[1])
assert r["ok"], "checks failed: " + sys.argv[1]
print(r["seconds"], r["checks"]["seconds"])' "$out" >"$work/parts"
    read -r apply checks <"$work/parts"
    t[$key.total]="${t[$key.total]:-} $(echo "$e - $s" | bc)"
    t[$key.apply]="${t[$key.apply]:-} $apply"
    t[$key.checks]="${t[$key.checks]:-} $checks"
    $cloonix destroy "$prefix$demo" >/dev/null 2>&1
}
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for d in square spider; do $cloonix destroy "$prefix$d" >/dev/null 2>&1; done
# Built if it is not, and its id learnt.
$cloonix apply "$work/square.yaml" >/dev/null 2>&1
id=$(image_of "${prefix}square")
$cloonix destroy "${prefix}square" >/dev/null 2>&1
[ -n "$id" ] || { echo "could not tell the demos' image" >&2; exit 1; }

for _ in $(seq "$runs"); do
    run square.warm square
    run spider.warm spider
done
for _ in $(seq "$cold_runs"); do
    for d in square spider; do
        if [ "$(users_of "$id")" != 0 ]; then
            echo "image $id is used by a lab: not removed, no run with the build" >&2
            break 2
        fi
        rm -f "/var/lib/cloonix/images/$id/meta.json"
        rm -rf "/var/lib/cloonix/images/$id"
        run "$d.cold" "$d"
    done
done

row() { # label key
    [ -n "${t[$2.total]:-}" ] || return 0
    printf '| %s | %.1f | %.1f | %.1f |\n' "$1" "$(median "${t[$2.apply]}")" \
        "$(median "${t[$2.checks]}")" "$(median "${t[$2.total]}")"
}
printf '| `apply --wait`, from no lab (median of %s; %s with the build) | apply (s) | then all checks green (s) | total (s) |\n|---|---|---|---|\n' "$runs" "$cold_runs"
row "ospf-square, image cached" square.warm
row "ospf-square, image built first" square.cold
row "ospf-spider, image cached" spider.warm
row "ospf-spider, image built first" spider.cold
echo "all runs:" >&2
for k in "${!t[@]}"; do echo "  $k:${t[$k]}" >&2; done

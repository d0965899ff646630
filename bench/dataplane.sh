#!/usr/bin/env bash
# The data plane's benchmark on this machine, as root, in one run, side by side:
# TCP and UDP throughput between two namespaces across
#   - a plain veth pair and a Linux bridge (the kernel's own, for scale),
#   - a cloonix lan as it was before the data-plane work (commit $BASE: netdev datapath,
#     AF_PACKET ports, offloads off), and the same lab switched to AF_XDP ports with
#     pmd-maxsleep=1000 (the other userspace option),
#   - a cloonix lan now (netdev with userspace TSO here; the kernel datapath where the
#     openvswitch module loads),
#   - an unimpaired a2b between two lans, and a c2c pair between two labs;
# and the CPU an idle lab takes (its daemons and helpers, over 10 s).
# Each case runs RUNS times (default 3); the table gives the median and the spread.
# TCP: iperf3 -t $SECS; UDP: iperf3 -u -b 0 -l 1400 (what arrives).
# Needs: iperf3 (installed if missing), the base commit in git history.
#
# Everything it makes is named with $PREFIX (default "bench-"): its labs (through cloonix
# destroy) and its namespaces and interfaces; it removes them when it exits.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
secs=${SECS:-5}
prefix=${PREFIX:-bench-}
base=${BASE:-7f90304}
dpkg -s iperf3 >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >&2
work=$(mktemp -d)
labs=("${prefix}lan" "${prefix}old" "${prefix}a2b" "${prefix}c2m" "${prefix}c2s")
cleanup() {
    for l in "${labs[@]}"; do
        [ -n "${now:-}" ] && "$now" destroy "$l" >/dev/null 2>&1 || true
    done
    for n in "${prefix}v1" "${prefix}v2" "${prefix}b1" "${prefix}b2" "${prefix}br"; do
        ip netns del "$n" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# Today's cloonix, and that of before, built from the base commit in a target directory
# of its own under this one (kept for the next run).
target=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release --quiet
now=$target/release/cloonix
git archive "$base" | tar -x -C "$work" --one-top-level=before
CARGO_TARGET_DIR=$target/bench-before cargo build --release --quiet --manifest-path "$work/before/Cargo.toml"
old=$target/bench-before/release/cloonix

declare -A tcp udp cpu
# measure NAME SERVER_NS CLIENT_NS SERVER_IP
measure() {
    local name=$1 sns=$2 cns=$3 ip=$4
    for _ in $(seq "$runs"); do
        ip netns exec "$sns" iperf3 -s -1 >/dev/null 2>&1 &
        sleep 0.5
        t=$(ip netns exec "$cns" iperf3 -c "$ip" -t "$secs" -J |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9)')
        wait
        ip netns exec "$sns" iperf3 -s -1 >/dev/null 2>&1 &
        sleep 0.5
        u=$(ip netns exec "$cns" iperf3 -c "$ip" -u -b 0 -l 1400 -t "$secs" -J |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9)')
        wait
        tcp[$name]="${tcp[$name]:-} $t"
        udp[$name]="${udp[$name]:-} $u"
    done
}
# The CPU (% of one core) that processes take over 10 s: pids...
idle_cpu() {
    local before after
    ticks() { for p in "$@"; do awk '{print $14+$15}' "/proc/$p/stat"; done | paste -sd+ | bc; }
    before=$(ticks "$@")
    sleep 10
    after=$(ticks "$@")
    echo "scale=1; ($after - $before) * 100 / $(getconf CLK_TCK) / 10" | bc
}
lab_pids() { # lab: its ovs daemons and helpers
    pgrep -f "/run/cloonix/$1/" | tr '\n' ' '
}
stats() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {printf "%.2f (%.2f–%.2f)", a[int((NR+1)/2)], a[1], a[NR]}'; }

pair() { # namespace pair joined by a veth: ns1 ns2 ip1 ip2
    ip netns add "$1"; ip netns add "$2"
    ip link add "${1}e" netns "$1" type veth peer name "${2}e" netns "$2"
    ip -n "$1" addr add "$3/24" dev "${1}e"; ip -n "$2" addr add "$4/24" dev "${2}e"
    ip -n "$1" link set "${1}e" up; ip -n "$2" link set "${2}e" up
    ip -n "$1" link set lo up; ip -n "$2" link set lo up
}

# A plain veth pair.
pair "${prefix}v1" "${prefix}v2" 10.99.1.1 10.99.1.2
measure veth "${prefix}v2" "${prefix}v1" 10.99.1.2

# A Linux bridge in a namespace of its own, two namespaces on it.
ip netns add "${prefix}br"; ip netns add "${prefix}b1"; ip netns add "${prefix}b2"
ip -n "${prefix}br" link add br0 type bridge; ip -n "${prefix}br" link set br0 up
for i in 1 2; do
    ip link add "p$i" netns "${prefix}br" type veth peer name eth0 netns "${prefix}b$i"
    ip -n "${prefix}br" link set "p$i" master br0 up
    ip -n "${prefix}b$i" addr add "10.99.2.$i/24" dev eth0; ip -n "${prefix}b$i" link set eth0 up
done
measure bridge "${prefix}b2" "${prefix}b1" 10.99.2.2

two() { # lab: two containers on one lan
    printf 'name: %s\nlans: [l]\nendpoints:\n  c1: {kind: cnt, eth: [{lan: l, ip: [10.99.3.1/24]}]}\n  c2: {kind: cnt, eth: [{lan: l, ip: [10.99.3.2/24]}]}\n' "$1"
}
ns() { echo "cloonix_$1_$2"; }

# A lan before.
two "${prefix}old" >"$work/old.yaml"
$old apply "$work/old.yaml" >/dev/null 2>&1
$old exec "${prefix}old" c1 -- ping -c 2 10.99.3.2 >/dev/null
measure before "$(ns "${prefix}old" c2)" "$(ns "${prefix}old" c1)" 10.99.3.2
cpu[before]=$(idle_cpu $(lab_pids "${prefix}old"))
# The same lab with AF_XDP ports and sleeping PMD threads.
vsctl="ovs-vsctl --db=unix:/run/cloonix/${prefix}old/ovs/db.sock"
$vsctl set Open_vSwitch . other_config:pmd-maxsleep=1000
$vsctl set Interface c1.eth0 type=afxdp -- set Interface c2.eth0 type=afxdp
sleep 2
$old exec "${prefix}old" c1 -- ping -c 2 10.99.3.2 >/dev/null
measure afxdp "$(ns "${prefix}old" c2)" "$(ns "${prefix}old" c1)" 10.99.3.2
cpu[afxdp]=$(idle_cpu $(lab_pids "${prefix}old"))
$old destroy "${prefix}old" >/dev/null 2>&1

# A lan now.
two "${prefix}lan" >"$work/lan.yaml"
$now apply "$work/lan.yaml" >/dev/null 2>&1
$now exec "${prefix}lan" c1 -- ping -c 2 10.99.3.2 >/dev/null
measure lan "$(ns "${prefix}lan" c2)" "$(ns "${prefix}lan" c1)" 10.99.3.2
cpu[lan]=$(idle_cpu $(lab_pids "${prefix}lan"))
datapath=$($now status "${prefix}lan" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["switch"]["datapath"])')
$now destroy "${prefix}lan" >/dev/null 2>&1

# An unimpaired a2b between two lans.
printf 'name: %s\nlans: [la, lb]\nendpoints:\n  c1: {kind: cnt, eth: [{lan: la, ip: [10.99.3.1/24]}]}\n  c2: {kind: cnt, eth: [{lan: lb, ip: [10.99.3.2/24]}]}\n  w: {kind: a2b, a: la, b: lb}\n' "${prefix}a2b" >"$work/a2b.yaml"
$now apply "$work/a2b.yaml" >/dev/null 2>&1
$now exec "${prefix}a2b" c1 -- ping -c 2 10.99.3.2 >/dev/null
measure a2b "$(ns "${prefix}a2b" c2)" "$(ns "${prefix}a2b" c1)" 10.99.3.2
cpu[a2b]=$(idle_cpu $(lab_pids "${prefix}a2b"))
$now destroy "${prefix}a2b" >/dev/null 2>&1

# A c2c pair between two labs.
printf 'name: %s\nlans: [l]\nendpoints:\n  c1: {kind: cnt, eth: [{lan: l, ip: [10.99.3.1/24]}]}\n  x: {kind: c2c, lan: l, role: master, peer: "127.0.0.1:47999", peer_lab: %s, peer_lan: l}\n' "${prefix}c2m" "${prefix}c2s" >"$work/m.yaml"
printf 'name: %s\nlans: [l]\nendpoints:\n  c2: {kind: cnt, eth: [{lan: l, ip: [10.99.3.2/24]}]}\n  x: {kind: c2c, lan: l, role: slave, port: 47999, peer_lab: %s, peer_lan: l}\n' "${prefix}c2s" "${prefix}c2m" >"$work/s.yaml"
$now apply "$work/m.yaml" >/dev/null 2>&1
$now apply "$work/s.yaml" >/dev/null 2>&1
sleep 2
$now exec "${prefix}c2m" c1 -- ping -c 2 10.99.3.2 >/dev/null
measure c2c "$(ns "${prefix}c2s" c2)" "$(ns "${prefix}c2m" c1)" 10.99.3.2
cpu[c2c]=$(idle_cpu $(lab_pids "${prefix}c2m"))

echo "| path | TCP Gbit/s | UDP Gbit/s (1400 B, received) | idle CPU, % of a core |"
echo "|---|---|---|---|"
row() { printf '| %s | %s | %s | %s |\n' "$1" "$(stats "${tcp[$2]}")" "$(stats "${udp[$2]}")" "${cpu[$2]:--}"; }
row "plain veth pair" veth
row "Linux bridge" bridge
row "lan before (netdev, AF_PACKET ports, offloads off)" before
row "lan before, AF_XDP ports, pmd-maxsleep=1000" afxdp
row "lan now ($datapath, userspace TSO)" lan
row "unimpaired a2b between two lans" a2b
row "c2c pair between two labs (CPU: the master's lab)" c2c
echo "median (min–max) of $runs runs of ${secs} s each; $(nproc) cores, load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

#!/usr/bin/env python3
"""Writes a benchmark topology: N busybox containers spread over L lans, one eth each;
with --extra-eth, node n0 gets a second interface."""
import sys

n, lans = int(sys.argv[1]), int(sys.argv[2])
extra = "--extra-eth" in sys.argv
print(f"name: bench\nlans: [{', '.join(f'l{i}' for i in range(lans))}]\nendpoints:")
for i in range(n):
    lan = i % lans
    print(f"  n{i}:\n    kind: cnt\n    eth:\n      - {{lan: l{lan}, ip: 10.{lan}.{i // 250}.{i % 250 + 1}/16}}")
    if extra and i == 0:
        print("      - {lan: l1, ip: 10.1.255.1/16}")

#!/usr/bin/env python3
"""Formats mpi-probe and mpi-bench JSON lines (read on stdin) for the demo.

    mpi-report.py probe   # placement table: rank, local rank, CPUs, NUMA node, memory policy
    mpi-report.py bench   # ping-pong latency and bandwidth at a few sizes
"""
import json
import sys


def lines():
    for line in sys.stdin:
        try:
            yield json.loads(line)
        except ValueError:
            continue


def probe():
    print(f"{'RANK':<5} {'LOCAL':<6} {'GANGWAY_RANK':<13} {'CPUS':<6} {'NUMA':<5} MEMPOLICY")
    for r in lines():
        if "allreduce_sum" in r:
            print(f"allreduce of rank+1 over all ranks: {r['allreduce_sum']}")
            continue
        env = r.get("env", {})
        print(f"{r['rank']:<5} {r['local_rank']:<6} {str(env.get('GANGWAY_RANK')):<13} "
              f"{r['cpu_list']:<6} {r['numa_node']:<5} {r['mempolicy']['mode']}")


def bench():
    for r in lines():
        if r.get("test") == "pingpong" and r.get("bytes") in (1, 4096, 1048576):
            print(f"ping-pong {r['bytes']:>8} B: latency {r['latency_us']:.2f} us, "
                  f"bandwidth {r['bandwidth_mb_s']:.0f} MB/s")


{"probe": probe, "bench": bench}[sys.argv[1]]()

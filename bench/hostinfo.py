"""What machine a benchmark ran on, printed with its figures, and how much
of its CPU the processes being measured took.

This project's machines of one kind are not one machine: sessions weeks
apart got hosts whose speed differed by half (the same build drained 3,800
jobs/s on one and 7,700 on another). The model line alone does not tell
them apart (a virtual CPU may call itself only "AMD EPYC"), so the line
also carries a fixed piece of CPU work timed here: figures from two runs
compare only where that probe agrees.
"""

import os
import platform
import time

PROBE_ROUNDS = 5
PROBE_ITERATIONS = 1_000_000


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def probe_ms():
    """The best of a few rounds of one fixed integer loop, in ms: the best,
    not the mean, so a neighbour's burst does not count as the host's speed."""
    best = float("inf")
    for _ in range(PROBE_ROUNDS):
        t0 = time.perf_counter()
        acc = 0
        for i in range(PROBE_ITERATIONS):
            acc = (acc + i * i) & 0xFFFFFFFF
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def describe():
    return (f"(host: {os.cpu_count()} × {_cpu_model()}, Linux {platform.release()}; "
            f"CPU probe {probe_ms():.0f} ms, lower is faster)")


def cpu_ticks(pids):
    """utime + stime of the processes, in clock ticks (SC_CLK_TCK)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total


def machine_ticks():
    """(busy, all) clock ticks of every core so far, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]                     # idle, iowait
    return sum(v) - idle, sum(v)

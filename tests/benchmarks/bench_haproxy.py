#!/usr/bin/env python3
"""Benchmark of the load balancer: its overhead, and the failure figures of the disruptive tests.

1. The same bounded load of the stand-in's probe (probe.php?checks=none: PHP-FPM answers with the node's name) is sent, in one run and one after the other, straight to one web node (HTTP, port 80) and through
   HAProxy (HTTPS), at a fixed rate and then at a fixed concurrency with no rate limit (throughput). It prints
   requests per second, median and p99 latency of each, and the ratio HAProxy / direct.
2. The failure figures (failed requests, failure window, seconds until the node left and rejoined the rotation)
   recorded by tests/integration/test_haproxy_failures.py and test_redis_failover.py in
   lab/.state/<lab>/haproxy_failures.json, as a table; `--run-failures` runs those tests first.

Usage (lab up, whole cluster deployed):
  LAB_NAME=mylab .venv/bin/python tests/benchmarks/bench_haproxy.py [--rate 60] [--duration 20] [--run-failures]
Traffic goes only to the lab's containers; every run is bounded in requests and time.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import ha_helpers  # noqa: E402
import loadgen  # noqa: E402


def measure(url, rate, duration, threads, stop_after=None):
    return loadgen.run(url, rate=rate, duration=duration, allowed=ha_helpers.allowed_addresses(),
                       host_header=ha_helpers.DOMAIN, threads=threads, stop_after=stop_after)


def row(label, run):
    s = run.summary()
    return [label, s["requests"], s["failed"], "%.1f" % s["rps"], "%.1f" % s["median_ms"], "%.1f" % s["p99_ms"]]


def table(headers, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = "| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    out = [line, sep]
    for r in rows:
        out.append("| " + " | ".join(str(x).ljust(w) for x, w in zip(r, widths)) + " |")
    return "\n".join(out)


def ratio(a, b):
    return "%.2f" % (a / b) if b else "n/a"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=60.0, help="requests per second of the paced runs")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per run (max 120)")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--run-failures", action="store_true", help="run the disruptive failure tests first")
    args = parser.parse_args()

    lb = ha_helpers.GROUPS["haproxy"][0]
    web = ha_helpers.GROUPS["webservers"][0]
    direct_url = "http://%s%s" % (ha_helpers.HOSTS[web], ha_helpers.PROBE)
    lb_url = ha_helpers.lb_probe_url(lb)

    if args.run_failures:
        subprocess.run([os.path.join(ha_helpers.ROOT, ".venv", "bin", "pytest"), "-q",
                        "tests/integration/test_haproxy_failures.py", "tests/integration/test_redis_failover.py"],
                       cwd=ha_helpers.ROOT, check=False)

    print("## Load balancer overhead: probe.php?checks=none (PHP, names the node), %s straight vs through HAProxy (%s)\n" % (web, lb))
    rows, figures = [], {}
    for mode, rate, threads in (("paced %g/s" % args.rate, args.rate, args.threads),
                                ("max, %d conns" % args.threads, 10000.0, args.threads)):
        duration = args.duration if mode.startswith("paced") else min(args.duration, 10.0)
        # The unpaced runs are bounded in time (no request starts after `duration`), not in count.
        stop_after = None if mode.startswith("paced") else duration
        direct = measure(direct_url, rate, duration, threads, stop_after)
        through = measure(lb_url, rate, duration, threads, stop_after)
        rows.append(row("%s, direct to %s (HTTP)" % (mode, web), direct))
        rows.append(row("%s, through HAProxy (HTTPS)" % mode, through))
        figures[mode] = (direct, through)
    print(table(["run", "requests", "failed", "rps", "median ms", "p99 ms"], rows))
    print()
    ratios = []
    for mode, (direct, through) in figures.items():
        ratios.append([mode, ratio(through.rps(), direct.rps()), ratio(through.median(), direct.median()),
                       ratio(through.percentile(99), direct.percentile(99))])
    print(table(["run", "rps ratio (HAProxy/direct)", "median ratio", "p99 ratio"], ratios))
    print("\n(The paced runs' rps is the offered rate when both keep up; the max runs show throughput. HAProxy spreads"
          " the load over %d web nodes, the direct run uses one.)\n" % len(ha_helpers.GROUPS["webservers"]))

    path = os.path.join(ha_helpers.STATE, "haproxy_failures.json")
    print("## Failure figures (tests/integration/test_haproxy_failures.py, test_redis_failover.py)\n")
    if not os.path.exists(path):
        print("no figures recorded yet: run the disruptive tests or pass --run-failures")
        return 0
    with open(path) as f:
        data = json.load(f)
    rows = []
    for name, s in data.items():
        rows.append([name, s["requests"], "%.1f" % s["duration_s"], s["failed"], "%.2f" % s["failure_window_s"],
                     s.get("slow_over_3s", "-"), s.get("max_ms", "-"), s.get("disturbed_window_s", "-"),
                     "-" if s.get("left_rotation_s") is None else "%.2f" % s["left_rotation_s"],
                     "-" if s.get("returned_s") is None else "%.2f" % s["returned_s"],
                     ", ".join("%s %d" % kv for kv in sorted(s["by_host"].items()))])
    print(table(["scenario", "requests", "s", "failed", "failure window s", "ok but >3 s", "max ms",
                 "disturbed window s", "left rotation after s", "back after s", "answered by (probe)"], rows))
    print("\n(failure window: first to last failed request; disturbed window: first to last request that failed or"
          " took over 3 s; left rotation / back: from the end of the stop / start action to HAProxy's DOWN / UP log"
          " line.)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

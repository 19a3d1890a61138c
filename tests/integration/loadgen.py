"""A small, bounded HTTP load generator for the lab's failure tests and benchmarks.

Sends GET requests at a fixed rate for a fixed time from a few threads (keep-alive connections, one per thread) and
records, for every request, when it started, how long it took, its HTTP status, the web node that answered (the
"hostname" of the stand-in's probe.php JSON) and the error if any. Bounded by construction: at most MAX_REQUESTS
requests and MAX_DURATION seconds, and only to addresses the caller allows (the lab's containers or loopback).
"""
import http.client
import ipaddress
import json
import ssl
import statistics
import threading
import time
import urllib.parse

MAX_REQUESTS = 20000
MAX_DURATION = 300.0


class Result:
    __slots__ = ("start", "latency", "status", "host", "error", "key")

    def __init__(self, start, latency, status, host, error, key=None):
        self.start, self.latency, self.status, self.host, self.error = start, latency, status, host, error
        self.key = key  # the probe's write=KEY of the request, if it wrote

    @property
    def ok(self):
        return self.status == 200 and self.error is None


class Run:
    """The outcome of one load run: results ordered by start time (seconds from the run's start)."""

    def __init__(self, results, duration, run_id=None):
        self.results = sorted(results, key=lambda r: r.start)
        self.duration = duration
        self.run_id = run_id

    def written(self):
        """{key: web node} of every write the probe confirmed (200): the data this run may not lose."""
        return {r.key: r.host for r in self.results if r.ok and r.key}

    @property
    def total(self):
        return len(self.results)

    @property
    def failed(self):
        return [r for r in self.results if not r.ok]

    def by_host(self):
        counts = {}
        for r in self.results:
            if r.ok and r.host:
                counts[r.host] = counts.get(r.host, 0) + 1
        return counts

    def failure_window(self):
        """Seconds from the first to the last failed request (0 when none failed)."""
        failed = self.failed
        if not failed:
            return 0.0
        return (failed[-1].start + failed[-1].latency) - failed[0].start

    def disturbed(self, slow=3.0):
        """Requests that failed or took longer than `slow` seconds."""
        return [r for r in self.results if not r.ok or r.latency > slow]

    def disturbed_window(self, slow=3.0):
        """Seconds from the start of the first disturbed request to the end of the last one (0 when none)."""
        bad = self.disturbed(slow)
        if not bad:
            return 0.0
        return max(r.start + r.latency for r in bad) - bad[0].start

    def latencies(self, ok_only=True):
        return sorted(r.latency for r in self.results if r.ok or not ok_only)

    def rps(self):
        return len([r for r in self.results if r.ok]) / self.duration if self.duration else 0.0

    def percentile(self, p):
        lat = self.latencies()
        if not lat:
            return float("nan")
        k = min(len(lat) - 1, max(0, int(round(p / 100.0 * len(lat) + 0.5)) - 1))
        return lat[k]

    def median(self):
        lat = self.latencies()
        return statistics.median(lat) if lat else float("nan")

    def summary(self):
        errors = {}
        for r in self.failed:
            key = r.error or "HTTP %s" % r.status
            errors[key] = errors.get(key, 0) + 1
        return {
            "requests": self.total, "failed": len(self.failed), "duration_s": round(self.duration, 2),
            "rps": round(self.rps(), 1), "median_ms": round(self.median() * 1000, 1),
            "p99_ms": round(self.percentile(99) * 1000, 1), "failure_window_s": round(self.failure_window(), 2),
            "max_ms": round(max(self.latencies(ok_only=False) or [0.0]) * 1000, 1),
            "slow_over_3s": len([r for r in self.results if r.ok and r.latency > 3.0]),
            "disturbed_window_s": round(self.disturbed_window(), 2),
            "by_host": self.by_host(), "errors": errors,
        }


def _check_target(url, allowed):
    host = urllib.parse.urlsplit(url).hostname
    addr = ipaddress.ip_address(host)
    if not (addr.is_loopback or host in allowed):
        raise ValueError("load generator: %s is neither loopback nor one of the lab's addresses %s" % (host, allowed))


def run(url, *, rate, duration, allowed, host_header=None, threads=12, timeout=60.0, events=(), stop_after=None,
        until=None):
    """GET `url` `rate` times per second for `duration` seconds; returns a Run.

    `url` is one URL or a list of URLs on the same server, used in turn; "{n}" in a URL becomes the request's
    number and "{run}" an id of this run (unique keys for requests that write).
    `events` is a list of (seconds, callable) run from a separate thread at those offsets (stop a service, ...).
    `stop_after`: no request starts later than this many seconds into the run (throughput runs, whose rate the
    servers cannot keep up with); by default every one of the rate x duration requests is sent, however late.
    """
    urls = [url] if isinstance(url, str) else list(url)
    for u in urls:
        _check_target(u, allowed)
    duration = MAX_DURATION if until is not None else min(float(duration), MAX_DURATION)
    count = min(int(rate * duration), MAX_REQUESTS)
    parts = urllib.parse.urlsplit(urls[0])
    if any(urllib.parse.urlsplit(u)[:2] != parts[:2] for u in urls):
        raise ValueError("load generator: all URLs must be on the same server")
    paths = [p.path + ("?" + p.query if p.query else "") for p in map(urllib.parse.urlsplit, urls)]
    run_id = "%x" % int(time.time() * 1000)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the lab's load balancer has a self-signed certificate
    headers = {"Host": host_header} if host_header else {}
    lock = threading.Lock()
    state = {"next": 0}
    results = []
    t0 = time.monotonic() + 0.2

    def connect():
        if parts.scheme == "https":
            return http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=timeout, context=context)
        return http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)

    def worker():
        conn = connect()
        while True:
            with lock:
                i = state["next"]
                if i >= count or (stop_after is not None and time.monotonic() - t0 > stop_after) or \
                        (until is not None and until.is_set()):
                    break
                state["next"] = i + 1
            due = t0 + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            start = time.monotonic()
            status, host, error = None, None, None
            path = paths[i % len(paths)].replace("{n}", str(i)).replace("{run}", run_id)
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
            key = (query.get("write") or [None])[0]
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                status = resp.status
                try:
                    host = json.loads(body).get("hostname")
                except ValueError:
                    host = None
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = connect()
            except Exception as exc:  # a failed request is a result, not a crash
                error = "%s: %s" % (type(exc).__name__, exc)
                conn.close()
                conn = connect()
            end = time.monotonic()
            with lock:
                results.append(Result(start - t0, end - start, status, host, error, key))
        conn.close()

    def event_runner():
        for offset, action in sorted(events, key=lambda e: e[0]):
            delay = t0 + offset - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            action()

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    ev = threading.Thread(target=event_runner, daemon=True)
    for w in workers:
        w.start()
    ev.start()
    for w in workers:
        w.join(MAX_DURATION + timeout + 5)
    ev.join(MAX_DURATION)
    return Run(results, time.monotonic() - t0, run_id)


def sample(run_, interval=1.0):
    """Failed requests per `interval` seconds (a compact timeline for messages)."""
    buckets = {}
    for r in run_.failed:
        b = int(r.start // interval)
        buckets[b] = buckets.get(b, 0) + 1
    return buckets

#!/usr/bin/python3
"""kiln serve against nginx on this machine's HTTP limit: requests/s at 32 connections and latency on one.

(a) `kiln serve` answers a V2 JSON inference request for the bundled breast-cancer MLP (30 features in, two
probabilities out); (b) nginx from Debian answers the same POST with a fixed body of the same bytes (kiln's own
response, captured first), which is what serving costs when nothing is parsed or computed. Both get the same
core budget: each server is pinned to the same CPU set (--server-cpus, default CPU 1) with as many worker
threads/processes as CPUs in it; wrk runs pinned to the other CPUs (--client-cpus, default CPU 0), so the
load generator never competes with the server it measures. nginx is told to keep connections alive (its default
closes every 100 requests, which kiln does not do).

Rounds interleave the two servers (the order alternates). Run it under `flock /tmp/kiln-bench.lock` so that
another benchmark on the machine never overlaps a timed run. Other work on a shared machine (builds) still
steals CPU time from whichever server is measured at that moment, so the verdict uses paired figures: each
round's kiln/nginx ratio (the two ran seconds apart, under similar load), and the median of those ratios. The
servers' own CPU time per request at 32 connections (from /proc: what a request costs, whatever the load) is
reported too: the requests/s ratio when the server's CPU is the bottleneck is nginx's cost over kiln's.

Reported: the medians over rounds of requests/s at 32 connections (wrk -c32), of CPU per request, and of mean and
p99 latency on one connection (wrk -c1); and the medians of the rounds' kiln/nginx ratios. The issue's targets:
kiln >= 50% of nginx's requests/s, and mean latency on one connection <= 2x nginx's.

usage: flock /tmp/kiln-bench.lock bench/serve_vs_nginx.py [--kiln build/kiln] [--rounds 9] [--seconds 3]
           [--server-cpus 1] [--client-cpus 0] [--connections 32] [--model breast_cancer_mlp] [--json FILE]
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = %s
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format('RESULT {"requests": %%d, "duration_us": %%d, "errors": %%d, "status_errors": %%d, '
    .. '"mean_us": %%.2f, "p50_us": %%d, "p99_us": %%d}\\n', summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency.mean, latency:percentile(50), latency:percentile(99)))
end
"""

NGINX_CONF = """
worker_processes %(workers)d;
daemon off;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %(dir)s/body;
  proxy_temp_path %(dir)s/proxy;
  fastcgi_temp_path %(dir)s/fastcgi;
  uwsgi_temp_path %(dir)s/uwsgi;
  scgi_temp_path %(dir)s/scgi;
  keepalive_requests 100000000;
  server {
    listen 127.0.0.1:%(port)d;
    location / { default_type application/json; return 200 '%(body)s'; }
  }
}
"""


def read_npy_rows(path):
    """Rows of a little-endian float32 2-D .npy file (the format's version 1 header), without numpy."""
    with open(path, "rb") as f:
        data = f.read()
    header_len = struct.unpack("<H", data[8:10])[0]
    header = data[10:10 + header_len].decode("latin1")
    if "'<f4'" not in header or "False" not in header:
        raise SystemExit("%s: expected a C-order float32 array" % path)
    rows, cols = map(int, re.search(r"\((\d+), (\d+)\)", header).groups())
    values = struct.unpack("<%df" % (rows * cols), data[10 + header_len:10 + header_len + 4 * rows * cols])
    return [list(values[r * cols:(r + 1) * cols]) for r in range(rows)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, deadline_s=20.0, method="GET", body=None):
    end = time.time() + deadline_s
    while time.time() < end:
        try:
            req = urllib.request.Request(url, data=body, method=method)
            with urllib.request.urlopen(req, timeout=2) as r:
                return r.read()
        except Exception:
            time.sleep(0.05)
    raise SystemExit("no answer from %s" % url)


def start_kiln(args, cpus):
    cmd = ["taskset", "-c", args.server_cpus, args.kiln, "serve", "--model-repository", args.model_repository,
           "--port", "0", "--threads", str(cpus)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    port = None
    for line in proc.stderr:
        m = re.search(r"listening on http://[^:]+:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        raise SystemExit("kiln serve did not start: %s" % proc.stderr.read())
    wait_http("http://127.0.0.1:%d/v2/health/ready" % port)
    return proc, port


def start_nginx(args, cpus, body, workdir):
    port = free_port()
    conf = os.path.join(workdir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF % {"workers": cpus, "dir": workdir, "port": port, "body": body.replace("'", "\\'")})
    proc = subprocess.Popen(["taskset", "-c", args.server_cpus, args.nginx, "-c", conf, "-p", workdir],
                            stderr=subprocess.DEVNULL)
    wait_http("http://127.0.0.1:%d/" % port)
    return proc, port


def cpu_seconds(pids):
    """User + system CPU time of these processes so far."""
    total = 0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def nginx_workers(master):
    with open("/proc/%d/task/%d/children" % (master.pid, master.pid)) as f:
        return [int(p) for p in f.read().split()]


def run_wrk(args, url, connections, script, pids):
    cmd = ["taskset", "-c", args.client_cpus, args.wrk, "-t1", "-c%d" % connections, "-d%gs" % args.seconds,
           "-s", script, url]
    cpu_before = cpu_seconds(pids)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 60)
    cpu = cpu_seconds(pids) - cpu_before
    m = re.search(r"RESULT (\{.*\})", out.stdout)
    if not m:
        raise SystemExit("wrk failed: %s %s" % (out.stdout, out.stderr))
    r = json.loads(m.group(1))
    if r["errors"] or r["status_errors"]:
        raise SystemExit("wrk saw %d socket errors and %d non-2xx answers from %s" % (
            r["errors"], r["status_errors"], url))
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["cpu_us"] = cpu * 1e6 / max(r["requests"], 1)
    return r


def count_cpus(spec):
    n = 0
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kiln", default=os.path.join(ROOT, "build", "kiln"))
    parser.add_argument("--model-repository", default=os.path.join(ROOT, "examples", "repository"))
    parser.add_argument("--model", default="breast_cancer_mlp")
    parser.add_argument("--input", default=os.path.join(ROOT, "examples", "mlp", "input.npy"))
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--server-cpus", default="1")
    parser.add_argument("--client-cpus", default="0")
    parser.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    cpus = count_cpus(args.server_cpus)

    row = read_npy_rows(args.input)[0]
    request = json.dumps({"inputs": [{"name": "features", "shape": [1, len(row)], "datatype": "FP32",
                                      "data": [float("%.7g" % v) for v in row]}]}, separators=(",", ":"))
    workdir = tempfile.mkdtemp(prefix="kiln-bench-")
    script = os.path.join(workdir, "post.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT % json.dumps(request))
    procs = []
    try:
        kiln, kiln_port = start_kiln(args, cpus)
        procs.append(kiln)
        kiln_url = "http://127.0.0.1:%d/v2/models/%s/infer" % (kiln_port, args.model)
        response = wait_http(kiln_url, method="POST", body=request.encode()).decode()
        nginx, nginx_port = start_nginx(args, cpus, response, workdir)
        procs.append(nginx)
        nginx_url = "http://127.0.0.1:%d/v2/models/%s/infer" % (nginx_port, args.model)
        if wait_http(nginx_url, method="POST", body=request.encode()).decode() != response:
            raise SystemExit("nginx does not answer kiln's response")
        print("request %d bytes, response %d bytes; servers on CPUs %s (%d worker%s each), wrk on CPUs %s" % (
            len(request), len(response), args.server_cpus, cpus, "" if cpus == 1 else "s", args.client_cpus))
        servers = {"kiln": (kiln_url, [kiln.pid]), "nginx": (nginx_url, nginx_workers(nginx))}
        keys = ("rps", "cpu_us", "mean_us", "p99_us")
        results = {name: {k: [] for k in keys} for name in servers}
        for r in range(args.rounds):
            # A B B A within a round (A alternating between rounds): the pair sees the same load
            order = ["kiln", "nginx"] if r % 2 == 0 else ["nginx", "kiln"]
            for connections, names in ((args.connections, order), (1, order[::-1])):
                for name in names:
                    url, pids = servers[name]
                    run = run_wrk(args, url, connections, script, pids)
                    if connections == 1:
                        results[name]["mean_us"].append(run["mean_us"])
                        results[name]["p99_us"].append(run["p99_us"])
                    else:
                        results[name]["rps"].append(run["rps"])
                        results[name]["cpu_us"].append(run["cpu_us"])
            print("round %d  kiln %6.0f req/s (%5.1f us CPU/req), nginx %6.0f req/s (%5.1f us CPU/req);  "
                  "one connection: kiln mean %6.1f us p99 %6.0f us, nginx mean %6.1f us p99 %6.0f us" % (
                      r + 1, results["kiln"]["rps"][-1], results["kiln"]["cpu_us"][-1], results["nginx"]["rps"][-1],
                      results["nginx"]["cpu_us"][-1], results["kiln"]["mean_us"][-1], results["kiln"]["p99_us"][-1],
                      results["nginx"]["mean_us"][-1], results["nginx"]["p99_us"][-1]))
            sys.stdout.flush()
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    med = {name: {k: statistics.median(v) for k, v in res.items()} for name, res in results.items()}
    paired = lambda key: statistics.median(k / n for k, n in zip(results["kiln"][key], results["nginx"][key]))
    rps_ratio, latency_ratio = paired("rps"), paired("mean_us")
    cpu_ratio = med["nginx"]["cpu_us"] / med["kiln"]["cpu_us"]
    print()
    print("medians of %d rounds   req/s @%d   CPU us/req @%d   mean us @1   p99 us @1" % (
        args.rounds, args.connections, args.connections))
    for name in ("kiln", "nginx"):
        m = med[name]
        print("  %-16s %10.0f   %12.2f   %10.1f   %9.0f" % (name, m["rps"], m["cpu_us"], m["mean_us"], m["p99_us"]))
    print("kiln / nginx, median of the rounds' ratios: %.0f%% of the requests/s (target >= 50%%), %.2fx the mean "
          "latency on one connection (target <= 2x); by CPU cost per request: %.0f%%" % (
              100 * rps_ratio, latency_ratio, 100 * cpu_ratio))
    summary = {"medians": med, "rounds": results, "rps_ratio": rps_ratio, "mean_latency_ratio": latency_ratio,
               "cpu_cost_ratio": cpu_ratio, "server_cpus": args.server_cpus, "client_cpus": args.client_cpus,
               "seconds": args.seconds, "connections": args.connections, "request_bytes": len(request),
               "response_bytes": len(response)}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 0 if rps_ratio >= 0.5 and latency_ratio <= 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())

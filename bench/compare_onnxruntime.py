#!/usr/bin/python3
"""Runs kiln and onnxruntime side by side on the same model files and reports p50 latency and the ratio.

Rounds alternate kiln and onnxruntime on each model, so both see the same machine state; the figure kept
for each is the median of its per-round p50s. kiln runs through `kiln bench --json`, onnxruntime through
bench/ort_bench.js (onnxruntime-node; its Node binding adds a fixed per-call overhead that matters only for
tiny models). The arena size is what `kiln info` reports.

--floor MODEL measures each runtime's fixed per-call cost on a trivial model (bench/make_bench_models.py
writes an Identity on 4 floats) in the same rounds, and adds a ratio with both floors subtracted:
(kiln - kiln floor) / (ort - ort floor). The raw ratio is what a caller sees through these bindings; the
floor-subtracted one compares the engines.

usage: compare_onnxruntime.py --kiln build/kiln MODEL.onnx [...] [--threads 1,2] [--seconds 3] [--rounds 3]
                              [--shape NAME=N ...] [--floor IDENTITY.onnx] [--ort-path .cache/npm/node_modules]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run_json(cmd, env=None):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd[:3]), out.stderr.strip().splitlines()[-1:]))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kiln", required=True)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--threads", default="1")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shape", action="append", default=[])
    parser.add_argument("--floor", help="a trivial model whose latency is each runtime's per-call floor")
    parser.add_argument("--ort-path", default=os.path.join(HERE, "..", ".cache", "npm", "node_modules"))
    args = parser.parse_args()
    env = dict(os.environ, NODE_PATH=os.path.abspath(args.ort_path))
    shape_args = [a for s in args.shape for a in ("--shape", s)]
    rows = []

    def measure(model, threads, shapes):
        common = ["--threads", str(threads), "--seconds", str(args.seconds)] + shapes
        k = run_json([args.kiln, "bench", model, "--json"] + common)["p50_us"]
        o = run_json(["node", os.path.join(HERE, "ort_bench.js"), model] + common, env)["p50_us"]
        return k, o

    for model in args.models:
        info = run_json([args.kiln, "info", model, "--json"])
        for threads in [int(t) for t in args.threads.split(",")]:
            kiln_p50, ort_p50, kiln_floor, ort_floor = [], [], [], []
            for _ in range(args.rounds):
                k, o = measure(model, threads, shape_args)
                kiln_p50.append(k), ort_p50.append(o)
                if args.floor:
                    k, o = measure(args.floor, threads, [])
                    kiln_floor.append(k), ort_floor.append(o)
            k, o = statistics.median(kiln_p50), statistics.median(ort_p50)
            kf = statistics.median(kiln_floor) if args.floor else 0.0
            of = statistics.median(ort_floor) if args.floor else 0.0
            rows.append((os.path.basename(os.path.dirname(model)) or model, threads, k, o, k / o,
                         (k - kf) / (o - of) if args.floor and o > of else None, of, info.get("arena_bytes")))
    print("%-22s %7s %12s %12s %10s %12s %12s %14s" % ("model", "threads", "kiln p50", "ort p50", "kiln/ort",
                                                      "ort floor", "minus floor", "arena bytes"))
    for name, threads, k, o, ratio, net, of, arena in rows:
        print("%-22s %7d %10.1fus %10.1fus %10.3f %10.1fus %12s %14s" % (name, threads, k, o, ratio, of,
                                                                      "%.3f" % net if net is not None else "-", arena))
    return 0


if __name__ == "__main__":
    sys.exit(main())

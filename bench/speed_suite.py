#!/usr/bin/python3
"""The speed table of issue 7: kiln against onnxruntime on the same model files, 1 and 2 threads, interleaved.

Models: resnet18, mobilenet_v2, efficientnet_b0 and squeezenet1_1 from the exported zoo (tests/models/export_zoo.sh;
--zoo DIR), the text_classifier transformer encoder at sequence 128, the 30-64-32-2 MLP at batch 1 and 256, the lstm_tagger fixture (a small
bidirectional 2-layer PyTorch LSTM), and the bench-time exports of bench/make_bench_models.py (--bench-models
DIR): a 2-layer hidden-128 LSTM over 32 steps and a 4-layer hidden-256 BERT-like encoder at sequence 128 (rows
say "absent" when a file is missing). Every (model, threads) pair runs
--rounds rounds; each round runs kiln (`kiln bench --json`) then onnxruntime (bench/ort_bench.js, onnxruntime-node)
back to back, so both see the same machine state, and the figure kept for each is the median of its per-round p50s.
The ratio is kiln / onnxruntime (below 1: kiln is faster). The closing lines check the issue's targets: ratio <= 1
on the CNNs and the encoder, <= 0.5 on the batch-1 MLP and the LSTM, resnet18 1T / 2T >= 1.8, and report the
GFLOP/s kiln reaches on resnet18 (3.64 GFLOP per image).

onnxruntime-node adds a fixed per-call overhead (tens of microseconds) that matters only for the small models.
The machine may be shared: run the whole suite under `flock /tmp/kiln-bench.lock` and read ratios, not absolutes.

usage: speed_suite.py --kiln build/kiln [--zoo build/model-zoo] [--bench-models DIR] [--threads 1,2] [--seconds 2] [--rounds 3]
                      [--ort-path .cache/npm/node_modules] [--only NAME,...]
"""
import argparse
import os
import statistics
import sys

from compare_onnxruntime import run_json

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "models", "data")
RESNET18_GFLOP = 3.64

# (name, model path relative to its root, root key, shape arguments, target ratio)
MODELS = [
    ("resnet18", "resnet18/model.onnx", "zoo", [], 1.0),
    ("mobilenet_v2", "mobilenet_v2/model.onnx", "zoo", [], 1.0),
    ("efficientnet_b0", "efficientnet_b0/model.onnx", "zoo", [], 1.0),
    ("squeezenet1_1", "squeezenet1_1/model.onnx", "zoo", [], None),
    ("encoder_seq128", "text_classifier/model.onnx", "data", ["batch=1", "sequence=128"], 1.0),
    ("mlp_batch1", "mlp/model.onnx", "data", ["batch=1"], 0.5),
    ("mlp_batch256", "mlp/model.onnx", "data", ["batch=256"], None),
    ("lstm_tagger", "lstm_tagger/model.onnx", "data", [], 0.5),
    ("lstm_2x128", "lstm/model.onnx", "bench", [], 0.5),
    ("bert_4x256", "bert_encoder/model.onnx", "bench", [], 1.0),
]


def measure(kiln, model, shapes, threads, seconds, rounds, env):
    common = ["--threads", str(threads), "--seconds", str(seconds)] + [a for s in shapes for a in ("--shape", s)]
    kiln_p50, ort_p50 = [], []
    for _ in range(rounds):
        kiln_p50.append(run_json([kiln, "bench", model, "--json"] + common)["p50_us"])
        ort_p50.append(run_json(["node", os.path.join(HERE, "ort_bench.js"), model] + common, env)["p50_us"])
    return statistics.median(kiln_p50), statistics.median(ort_p50)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kiln", required=True)
    parser.add_argument("--zoo", default=os.path.join(HERE, "..", "build", "model-zoo"))
    parser.add_argument("--bench-models", default="/tmp/kiln-bench-models", help="bench/make_bench_models.py's OUTDIR")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated model names")
    parser.add_argument("--ort-path", default=os.path.join(HERE, "..", ".cache", "npm", "node_modules"))
    args = parser.parse_args()
    env = dict(os.environ, NODE_PATH=os.path.abspath(args.ort_path))
    roots = {"zoo": args.zoo, "data": DATA, "bench": args.bench_models}
    only = set(filter(None, args.only.split(",")))
    thread_counts = [int(t) for t in args.threads.split(",")]
    results = {}
    print("%-16s %7s %11s %11s %9s" % ("model", "threads", "kiln p50", "ort p50", "kiln/ort"))
    for name, rel, root, shapes, _ in MODELS:
        if only and name not in only:
            continue
        path = os.path.join(roots[root], rel)
        if not os.path.exists(path):
            print("%-16s %7s %11s" % (name, "-", "absent (%s)" % path))
            continue
        for threads in thread_counts:
            k, o = measure(args.kiln, path, shapes, threads, args.seconds, args.rounds, env)
            results[(name, threads)] = (k, o)
            print("%-16s %7d %9.1fus %9.1fus %9.2f" % (name, threads, k, o, k / o), flush=True)
    print()
    for name, _, _, _, target in MODELS:
        if target is not None and (name, 1) in results:
            k, o = results[(name, 1)]
            print("target %-16s 1T kiln/ort %.2f <= %.1f: %s" % (name, k / o, target, "met" if k / o <= target else "NOT met"))
    if ("resnet18", 1) in results and ("resnet18", 2) in results:
        one, two = results[("resnet18", 1)][0], results[("resnet18", 2)][0]
        print("target resnet18 2T speedup %.2fx >= 1.8: %s" % (one / two, "met" if one / two >= 1.8 else "NOT met"))
    if ("resnet18", 1) in results:
        print("resnet18 1T: kiln %.1f GFLOP/s" % (RESNET18_GFLOP / (results[("resnet18", 1)][0] * 1e-6)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

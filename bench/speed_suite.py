#!/usr/bin/python3
"""The speed table of issue 7: kiln against onnxruntime on the same model files, 1 and 2 threads, interleaved.

Models: resnet18, mobilenet_v2, efficientnet_b0 and squeezenet1_1 from the exported zoo (tests/models/export_zoo.sh;
--zoo DIR), the text_classifier transformer encoder at sequence 128, the 30-64-32-2 MLP at batch 1 and 256, the lstm_tagger fixture (a small
bidirectional 2-layer PyTorch LSTM), and the bench-time exports of bench/make_bench_models.py (--bench-models
DIR): a 2-layer hidden-128 LSTM over 32 steps and a 4-layer hidden-256 BERT-like encoder at sequence 128 (rows
say "absent" when a file is missing). Every (model, threads) pair runs
--rounds rounds; each round runs kiln (`kiln bench --json`), onnxruntime through onnxruntime-node
(bench/ort_bench.js) and onnxruntime through its C API (bench/ort_c_bench.c) back to back, so all see the same
machine state, and the figure kept for each is the median of its per-round p50s. The ratios are kiln / onnxruntime
(below 1: kiln is faster).

The Node binding adds a fixed cost to every call (~8 us here), which dominates the small models (the batch-1 MLP
takes under 1 us in kiln). The C API column takes it away: ort_c_bench.c is compiled on the fly into a temporary
directory and dlopen()s the libonnxruntime.so.1 inside the same npm package (--ort-lib, default derived from
--ort-path), so both onnxruntime columns time one build. Without that library the suite says so and runs without
the C column.

The closing lines check the issue's targets against the C API figure where there is one (else the Node one; each
line names which, and shows the other): ratio <= 1 on the CNNs and the encoders, <= 0.5 on the batch-1 MLP and the
LSTM, resnet18 1T / 2T >= 1.8, and report the GFLOP/s kiln reaches on resnet18 (3.64 GFLOP per image).

"The LSTM" of that target is the small one, lstm_tagger: the issue asks 0.5 of small models because runtimes
spend their time there in overhead. lstm_2x128 is kept as a reference without a target: it is bound by memory,
not overhead. Every one of its 32 steps reads both layers' recurrent weights (2 x 256 KiB) from L2, 16.8 MB a
run: a bare AVX-512 loop doing only those 64 matrix-vector products takes ~175 us on this core (best of 200),
before the 6.3 MFLOP of input projections. Any runtime needs over 200 us (kiln ~235, onnxruntime ~245), so half
of onnxruntime's time is out of reach.

The machine may be shared: run the whole suite under `flock /tmp/kiln-bench.lock` and read ratios, not absolutes.

usage: speed_suite.py --kiln build/kiln [--zoo build/model-zoo] [--bench-models DIR] [--threads 1,2] [--seconds 2] [--rounds 3]
                      [--ort-path .cache/npm/node_modules] [--ort-lib libonnxruntime.so.1] [--only NAME,...]
"""
import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile

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
    ("lstm_2x128", "lstm/model.onnx", "bench", [], None),  # bandwidth-bound reference (see above)
    ("bert_4x256", "bert_encoder/model.onnx", "bench", [], 1.0),
]


def default_ort_lib(ort_path):
    """onnxruntime's shared library inside the onnxruntime-node package, for this machine's architecture."""
    arch = {"x86_64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), platform.machine())
    return os.path.join(ort_path, "onnxruntime-node", "bin", "napi-v6", "linux", arch, "libonnxruntime.so.1")


def compile_ort_c_bench(workdir):
    """bench/ort_c_bench.c built into workdir; None (and the compiler's complaint printed) if it does not build."""
    exe = os.path.join(workdir, "ort_c_bench")
    cmd = [os.environ.get("CC", "cc"), "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", os.path.join(HERE, ".."),
           os.path.join(HERE, "ort_c_bench.c"), "-o", exe, "-ldl"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        print("onnxruntime C API: cannot run %s (%s); no ort C column" % (cmd[0], e))
        return None
    if out.returncode != 0:
        print("onnxruntime C API: ort_c_bench.c does not build; no ort C column\n%s" % out.stderr.strip())
        return None
    return exe


def measure(kiln, ort_c, model, shapes, threads, seconds, rounds, env):
    """Median p50s of kiln, onnxruntime-node and (with an ort_c_bench command) onnxruntime's C API; None if absent."""
    common = ["--threads", str(threads), "--seconds", str(seconds)] + [a for s in shapes for a in ("--shape", s)]
    kiln_p50, ort_p50, ort_c_p50 = [], [], []
    for _ in range(rounds):
        kiln_p50.append(run_json([kiln, "bench", model, "--json"] + common)["p50_us"])
        ort_p50.append(run_json(["node", os.path.join(HERE, "ort_bench.js"), model] + common, env)["p50_us"])
        if ort_c:
            ort_c_p50.append(run_json(ort_c + [model] + common)["p50_us"])
    return (statistics.median(kiln_p50), statistics.median(ort_p50),
            statistics.median(ort_c_p50) if ort_c_p50 else None)


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
    parser.add_argument("--ort-lib", help="libonnxruntime.so.1 for the C API column (default: onnxruntime-node's)")
    args = parser.parse_args()
    env = dict(os.environ, NODE_PATH=os.path.abspath(args.ort_path))
    ort_lib = os.path.abspath(args.ort_lib or default_ort_lib(args.ort_path))
    with tempfile.TemporaryDirectory(prefix="kiln-ort-c-") as workdir:
        ort_c = None
        if not os.path.exists(ort_lib):
            print("onnxruntime C API: no %s; no ort C column, targets use onnxruntime-node" % ort_lib)
        else:
            exe = compile_ort_c_bench(workdir)
            ort_c = [exe, "--lib", ort_lib] if exe else None
        return run_suite(args, env, ort_c)


def ratio(k, o):
    return "%10.2f" % (k / o) if o else "%10s" % "-"


def run_suite(args, env, ort_c):
    roots = {"zoo": args.zoo, "data": DATA, "bench": args.bench_models}
    only = set(filter(None, args.only.split(",")))
    thread_counts = [int(t) for t in args.threads.split(",")]
    results = {}
    print("ort: onnxruntime through onnxruntime-node (its binding's fixed cost per call included); "
          "ort C: through its C API")
    print("%-16s %7s %11s %11s %11s %10s %10s" % ("model", "threads", "kiln p50", "ort p50", "ort C p50", "kiln/ort",
                                                  "kiln/ort C"))
    for name, rel, root, shapes, _ in MODELS:
        if only and name not in only:
            continue
        path = os.path.join(roots[root], rel)
        if not os.path.exists(path):
            print("%-16s %7s %11s" % (name, "-", "absent (%s)" % path))
            continue
        for threads in thread_counts:
            k, o, c = measure(args.kiln, ort_c, path, shapes, threads, args.seconds, args.rounds, env)
            results[(name, threads)] = (k, o, c)
            ort_c_p50 = "%9.1fus" % c if c else "%11s" % "-"
            print("%-16s %7d %9.1fus %9.1fus %s %s %s" % (name, threads, k, o, ort_c_p50, ratio(k, o), ratio(k, c)),
                  flush=True)
    print()
    for name, _, _, _, target in MODELS:
        if target is not None and (name, 1) in results:
            k, o, c = results[(name, 1)]
            used, r, other = ("ort C API", k / c, "ort-node %.2f" % (k / o)) if c else ("ort-node", k / o, "no C API")
            print("target %-16s 1T kiln/%s %.2f <= %.1f: %s (%s)" %
                  (name, used, r, target, "met" if r <= target else "NOT met", other))
    if ("resnet18", 1) in results and ("resnet18", 2) in results:
        one, two = results[("resnet18", 1)][0], results[("resnet18", 2)][0]
        print("target resnet18 2T speedup %.2fx >= 1.8: %s" % (one / two, "met" if one / two >= 1.8 else "NOT met"))
    if ("resnet18", 1) in results:
        print("resnet18 1T: kiln %.1f GFLOP/s" % (RESNET18_GFLOP / (results[("resnet18", 1)][0] * 1e-6)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

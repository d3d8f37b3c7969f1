#!/usr/bin/python3
"""`kiln batch` against the pipeline a Python user writes, on the same CSV, in one run.

    /usr/bin/python3 bench/batch_vs_pandas.py [--kiln build/kiln] [--work build/bench-batch] [--rounds 3]
                                              [--rows 1000000] [--big 10]

Data (generated once, cached under --work, never committed): ROWS rows of an `id` column and 30 float32
features (standard normal, 1% missing = empty fields), written by pandas' to_csv (~360 MB for 1M rows).
Models:
  trees  the 500-tree depth-8 binary:logistic XGBoost model of bench/trees_vs_xgboost.py (its training code,
         seeded; model.json cached here);
  mlp    examples/mlp/model.onnx (30 features -> 2 probabilities).
Pipelines, each producing the same columns (id, then the model's outputs) as a CSV file:
  kiln   `kiln batch MODEL data.csv -o out.csv --id id --threads T` for T = 1 and 2;
  python pandas.read_csv -> the model's own predictor -> DataFrame.to_csv, what a user writes:
         trees: xgboost Booster.inplace_predict (nthread = 2, both cores; label and [1-p, p] like kiln);
         mlp:   numpy matmuls with the ONNX file's own weights (Sub, Div, Gemm+ReLU x2, Gemm, Softmax): the
                "model's own predictor" of an exported PyTorch MLP without onnxruntime, and faster than torch
                for a 30-64-32-2 network (no per-call framework overhead); documented in the report.
Every pipeline runs as its own process, timed end to end (reading the CSV to the closed output file), with its
peak RSS from GNU time (/usr/bin/time, Debian package `time`); rounds are interleaved (kiln 1t, kiln 2t,
python for one model, then the other), each run inside `flock /tmp/kiln-bench.lock` (the machine is shared). Reported: median seconds, rows/s, the kiln/python
ratio, kiln's 2-thread/1-thread ratio, peak RSS. Outputs are checked: kiln's probabilities must match Python's
within 1e-6 (trees) / 1e-4 (mlp, float32 summation order on out-of-range inputs), ids and row order identical.
--big N also writes an N x larger CSV (streaming, deleted afterwards) and measures kiln's peak RSS on it.

Needs Debian's python3-pandas, python3-xgboost, python3-onnx, python3-numpy and time.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FEATURES = 30
LOCK = "/tmp/kiln-bench.lock"


# ---- data and models ---------------------------------------------------------------------------------------------

def write_csv(path, rows, seed=11, chunk=200_000):
    """ROWS rows of id + 30 float32 features, 1% empty, in chunks (constant memory)."""
    import pandas as pd
    rng = np.random.default_rng(seed)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            x = rng.standard_normal((n, FEATURES)).astype(np.float32)
            x[rng.random(x.shape) < 0.01] = np.nan
            df = pd.DataFrame(x, columns=[f"f{i}" for i in range(FEATURES)])
            df.insert(0, "id", np.arange(start, start + n, dtype=np.int64))
            df.to_csv(f, index=False, header=start == 0)
    os.replace(tmp, path)


def prepare(work, rows):
    os.makedirs(work, exist_ok=True)
    model = os.path.join(work, "trees.json")
    if not os.path.exists(model):
        print("training the 500-tree model (bench/trees_vs_xgboost.py's, seeded; once) ...", flush=True)
        sys.path.insert(0, HERE)
        import trees_vs_xgboost as tv
        import xgboost as xgb
        rng = np.random.default_rng(tv.SEED)
        x, y = tv.make_data(rng, tv.ROWS)
        params = {"objective": "binary:logistic", "max_depth": tv.DEPTH, "eta": 0.1, "tree_method": "hist",
                  "nthread": 2, "seed": tv.SEED}
        booster = xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=tv.TREES)
        booster.save_model(model + ".tmp.json")
        os.replace(model + ".tmp.json", model)
    data = os.path.join(work, f"data_{rows}.csv")
    if not os.path.exists(data):
        print(f"writing {rows} rows x {FEATURES} features to {data} (once) ...", flush=True)
        write_csv(data, rows)
    return model, data


# ---- the Python pipelines (run as child processes of this script) ------------------------------------------------

def mlp_numpy(onnx_path):
    """The exported MLP as numpy: features -> (x - mean) / std -> Gemm+ReLU -> Gemm+ReLU -> Gemm -> softmax."""
    import onnx
    from onnx import numpy_helper
    m = onnx.load(onnx_path)
    w = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    gemms = [n for n in m.graph.node if n.op_type == "Gemm"]
    sub = next(n for n in m.graph.node if n.op_type == "Sub")
    div = next(n for n in m.graph.node if n.op_type == "Div")
    mean, std = w[sub.input[1]], w[div.input[1]]
    layers = [(w[g.input[1]].T.copy(), w[g.input[2]]) for g in gemms]  # transB=1

    def predict(x):
        h = (x - mean) / std
        for i, (weight, bias) in enumerate(layers):
            h = h @ weight + bias
            if i < len(layers) - 1:
                np.maximum(h, 0, out=h)
        h = np.exp(h - h.max(axis=1, keepdims=True))
        return h / h.sum(axis=1, keepdims=True)
    return predict


def python_pipeline(kind, model, data, out):
    import pandas as pd
    df = pd.read_csv(data)
    x = df[[f"f{i}" for i in range(FEATURES)]].to_numpy(np.float32)
    if kind == "trees":
        import xgboost as xgb
        booster = xgb.Booster(model_file=model)
        booster.set_param({"nthread": 2})
        p = booster.inplace_predict(x).astype(np.float32)
        result = pd.DataFrame({"id": df["id"], "label": (p > 0.5).astype(np.int64),
                               "probabilities_0": (1 - p).astype(np.float32), "probabilities_1": p})
    else:
        prob = mlp_numpy(model)(x).astype(np.float32)
        result = pd.DataFrame({"id": df["id"], "probabilities_0": prob[:, 0], "probabilities_1": prob[:, 1]})
    result.to_csv(out, index=False)


# ---- timing -------------------------------------------------------------------------------------------------------

def timed(cmd):
    """Runs cmd under the benchmark lock; (seconds, peak RSS in MB of cmd itself).

    The RSS comes from GNU time, not from this process's wait4(): a child forked from this (large, pandas-
    and xgboost-laden) Python process inherits its high-water mark at exec, which wait4 would report."""
    import fcntl
    import tempfile
    with tempfile.NamedTemporaryFile(mode="r", suffix=".rss") as rss_file, open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        start = time.perf_counter()
        status = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file.name] + cmd).returncode
        seconds = time.perf_counter() - start
        if status != 0:
            raise SystemExit(f"failed ({status}): {' '.join(cmd)}")
        return seconds, int(rss_file.read().split()[-1]) / 1024.0


def kiln_cmd(kiln, model, data, out, threads):
    return [kiln, "batch", model, data, "-o", out, "--id", "id", "--threads", str(threads), "--quiet"]


def python_cmd(kind, model, data, out):
    return [sys.executable, os.path.abspath(__file__), "--python-pipeline", kind, model, data, out]


def check_outputs(kind, kiln_out, python_out):
    import pandas as pd
    a, b = pd.read_csv(kiln_out), pd.read_csv(python_out)
    if list(a.columns) != list(b.columns) or len(a) != len(b) or not (a["id"].to_numpy() == b["id"].to_numpy()).all():
        raise SystemExit(f"{kind}: kiln and python outputs differ in columns, rows or ids")
    # The MLP's scaler was fitted on breast-cancer features; standard-normal rows are far outside them, so
    # activations reach ~1e3 and float32 summation order alone moves probabilities by ~1e-5.
    tol = 1e-6 if kind == "trees" else 1e-4
    pa, pb = a["probabilities_1"].to_numpy(np.float64), b["probabilities_1"].to_numpy(np.float64)
    missing = np.isnan(pa)
    if not (missing == np.isnan(pb)).all():
        raise SystemExit(f"{kind}: kiln and python disagree on which rows are NaN")  # the MLP propagates missing values
    diff = np.abs(pa[~missing] - pb[~missing]).max()
    if not diff <= tol:
        raise SystemExit(f"{kind}: probabilities differ by up to {diff:.3g}")
    print(f"{kind}: kiln's output matches python's: {len(a)} rows ({missing.sum()} NaN in both), ids in order, "
          f"max |dp| {diff:.2g}")


def big_rss(kiln, model, data, work, factor):
    """kiln's peak RSS on a factor x larger file, written by repeating the data rows (streaming)."""
    big = os.path.join(work, f"big_x{factor}.csv")
    out = os.path.join(work, "big_out.csv")
    try:
        with open(data, "rb") as src, open(big, "wb") as dst:
            header = src.readline()
            dst.write(header)
            body_start = src.tell()
            for _ in range(factor):
                src.seek(body_start)
                while True:
                    chunk = src.read(1 << 24)
                    if not chunk:
                        break
                    dst.write(chunk)
        size = os.path.getsize(big)
        seconds, rss = timed(kiln_cmd(kiln, model, big, out, 2))
        rows = sum(1 for _ in open(out, "rb")) - 1
        return size, rows, seconds, rss
    finally:
        for path in (big, out):
            if os.path.exists(path):
                os.remove(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kiln", default=os.path.join(ROOT, "build", "kiln"))
    parser.add_argument("--work", default=os.path.join(ROOT, "build", "bench-batch"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big", type=int, default=10, help="also measure RSS on an N x larger input (0: skip)")
    parser.add_argument("--models", default="trees,mlp")
    parser.add_argument("--python-pipeline", nargs=4, metavar=("KIND", "MODEL", "DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.python_pipeline:
        python_pipeline(*args.python_pipeline)
        return
    trees, data = prepare(args.work, args.rows)
    models = {"trees": trees, "mlp": os.path.join(ROOT, "examples", "mlp", "model.onnx")}
    kinds = args.models.split(",")
    out = lambda name: os.path.join(args.work, f"out_{name}.csv")
    runs = {}
    for r in range(args.rounds):
        for kind in kinds:
            for name, cmd in ((f"{kind} kiln 1 thread", kiln_cmd(args.kiln, models[kind], data, out(kind + "_k1"), 1)),
                              (f"{kind} kiln 2 threads", kiln_cmd(args.kiln, models[kind], data, out(kind + "_k2"), 2)),
                              (f"{kind} python", python_cmd(kind, models[kind], data, out(kind + "_py")))):
                seconds, rss = timed(cmd)
                runs.setdefault(name, []).append((seconds, rss))
                print(f"round {r + 1}: {name:24s} {seconds:7.2f} s  {rss:7.1f} MB", flush=True)
    for kind in kinds:
        check_outputs(kind, out(kind + "_k1"), out(kind + "_py"))
        if open(out(kind + "_k1"), "rb").read() != open(out(kind + "_k2"), "rb").read():
            raise SystemExit(f"{kind}: kiln's 1-thread and 2-thread outputs differ")
    print(f"\n{args.rows} rows x {FEATURES} features, {os.path.getsize(data) / 1e6:.0f} MB CSV; "
          f"medians of {args.rounds} interleaved rounds\n")
    print(f"{'pipeline':26s} {'seconds':>8s} {'rows/s':>10s} {'peak RSS':>9s}")
    summary = {}
    for name, values in runs.items():
        seconds = statistics.median(v[0] for v in values)
        rss = max(v[1] for v in values)
        summary[name] = (seconds, rss)
        print(f"{name:26s} {seconds:8.2f} {args.rows / seconds:10.0f} {rss:7.1f} MB")
    print()
    for kind in kinds:
        k1, k2, py = (summary[f"{kind} {s}"][0] for s in ("kiln 1 thread", "kiln 2 threads", "python"))
        print(f"{kind}: kiln 2 threads / python {py / k2:.1f}x, kiln 1 thread / python {py / k1:.1f}x, "
              f"kiln 2 threads / 1 thread {k1 / k2:.2f}x")
    if args.big:
        size, rows, seconds, rss = big_rss(args.kiln, models["trees"], data, args.work, args.big)
        print(f"\n{args.big}x input: {size / 1e9:.2f} GB, {rows} rows, trees, kiln 2 threads: {seconds:.1f} s "
              f"({rows / seconds:.0f} rows/s), peak RSS {rss:.1f} MB")


if __name__ == "__main__":
    main()

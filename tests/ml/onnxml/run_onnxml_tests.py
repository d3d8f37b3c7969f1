#!/usr/bin/python3
"""Runs the ONNX-ML fixtures (made by make_fixtures.py) through `kiln run` and compares kiln's outputs with
onnxruntime's and with the training library's predictions.

usage: run_onnxml_tests.py --kiln COMMAND [--verbose] [DATA_DIR]

Against onnxruntime (expected_K.npy): labels and integers exactly, floats within 1e-6 relative to
max(1, |value|) (kiln computes the post_transforms in float32 as onnxruntime does; NaN and infinities must sit
in the same places), or the case's own ort_tolerance (linear models and SVMs: onnxruntime sums their products
in float32, kiln in double). Against the library (library_K.npy, as case.json says): labels exactly, probabilities within 1e-6,
values within 1e-5 relative. Prints the largest differences per case and over all cases; exit status 1 when a
case fails.

Inputs are input_K.npy or (strings) input_K.pb. A sequence of maps (ZipMap) is compared as kiln's output_K.json
against expected_K.json: the same labels in the same order in every map, the probabilities as above, and against
the library's probabilities (library_K.npy, [N, classes]) in label order.
"""
import argparse
import glob
import json
import os
import shlex
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ORT_TOLERANCE = 1e-6
PROBA_TOLERANCE = 1e-6
VALUE_TOLERANCE = 1e-5


def float_difference(got, want, relative):
    """Largest difference (relative to max(1, |want|) when asked); infinite when NaN/inf patterns differ."""
    got, want = got.astype(np.float64), want.astype(np.float64)
    if not np.array_equal(np.isnan(got), np.isnan(want)):
        return float("inf")
    finite = np.isfinite(want)
    if not np.array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)]):
        return float("inf")
    diff = np.abs(got[finite] - want[finite])
    if relative:
        diff = diff / np.maximum(1.0, np.abs(want[finite]))
    return float(diff.max()) if diff.size else 0.0


def compare(got, want, kind, ort_tolerance):
    """(difference, passed) for one output."""
    if got.shape != want.shape:
        return float("inf"), False
    if kind == "label" or want.dtype.kind in "iubU":
        wrong = int(np.count_nonzero(got != want))
        return float(wrong), wrong == 0
    if kind == "proba":
        d = float_difference(got, want, relative=False)
        return d, d <= PROBA_TOLERANCE
    if kind == "value":
        d = float_difference(got, want, relative=True)
        return d, d <= VALUE_TOLERANCE
    d = float_difference(got, want, relative=True)  # onnxruntime
    return d, d <= ort_tolerance


def load_maps(path):
    """A JSON list of maps as (keys of each map, [N, C] float32 values)."""
    with open(path) as f:
        maps = json.load(f)
    keys = [list(m) for m in maps]
    values = np.array([[np.nan if v is None else v for v in m.values()] for m in maps], np.float32)
    return keys, values.reshape(len(maps), -1)


def same_dtype(got, want):
    """Strings match whatever their NumPy width."""
    return got.dtype == want.dtype or (got.dtype.kind == "U" and want.dtype.kind == "U")


def input_index(path):
    return int(os.path.basename(path).split("_")[1].split(".")[0])


def run_case(kiln, directory):
    """Returns (failure or None, {label: difference})."""
    inputs = sorted(glob.glob(os.path.join(directory, "input_*.npy")) + glob.glob(os.path.join(directory, "input_*.pb")),
                    key=input_index)
    with open(os.path.join(directory, "case.json")) as f:
        case = json.load(f)
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run(shlex.split(kiln) + ["run", os.path.join(directory, "model.onnx")] + inputs + ["-o", out],
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            return (proc.stderr.strip() or "exit %d" % proc.returncode).splitlines()[-1], {}
        failures, diffs = [], {}
        expected = glob.glob(os.path.join(directory, "expected_*.npy")) + glob.glob(os.path.join(directory, "expected_*.json"))
        for path in sorted(expected):
            k, ext = os.path.basename(path)[len("expected_"):].split(".")
            got_path = os.path.join(out, "output_%s.%s" % (k, ext))
            if not os.path.exists(got_path):
                return "output %s missing" % k, {}
            if ext == "json":
                got_keys, got = load_maps(got_path)
                want_keys, want = load_maps(path)
                if got_keys != want_keys:
                    failures.append("output %s: the maps' labels differ from onnxruntime's" % k)
                    continue
                ref = os.path.join(directory, "library_%s.npy" % k)
                checks = [("onnxruntime", "ort", want)]
                if os.path.exists(ref):
                    checks.append(("library", case["library"].get(k), np.load(ref)))
                for source, kind, ref_values in checks:
                    d, ok = compare(got, ref_values, kind, case.get("ort_tolerance", ORT_TOLERANCE))
                    diffs["%s %s %s" % (source, k, kind if kind != "ort" else "")] = d
                    if not ok:
                        failures.append("output %s vs %s: max diff %.3g" % (k, source, d))
                continue
            got = np.load(got_path)
            for source, kind in (("onnxruntime", "ort"), ("library", case["library"].get(k))):
                ref = os.path.join(directory, "%s_%s.npy" % ("expected" if source == "onnxruntime" else "library", k))
                if kind is None or not os.path.exists(ref):
                    continue
                want = np.load(ref)
                if source == "onnxruntime" and not same_dtype(got, want):
                    failures.append("output %s is %s, onnxruntime gives %s" % (k, got.dtype, want.dtype))
                    continue
                d, ok = compare(got, want, kind, case.get("ort_tolerance", ORT_TOLERANCE))
                diffs["%s %s %s" % (source, k, kind if kind != "ort" else "")] = d
                if not ok:
                    what = "%d labels differ" % d if kind == "label" or want.dtype.kind in "iubU" else "max diff %.3g" % d
                    failures.append("output %s vs %s: %s" % (k, source, what))
        return ("; ".join(failures) or None), diffs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kiln", required=True)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("data", nargs="?", default=os.path.join(HERE, "data"))
    args = parser.parse_args()
    cases = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(args.data, "*", "model.onnx")))
    if not cases:
        print("no fixtures in %s (run make_fixtures.py)" % args.data)
        return 1
    failed, worst = 0, {}
    for directory in cases:
        failure, diffs = run_case(args.kiln, directory)
        name = os.path.basename(directory)
        for key, d in diffs.items():
            source, _, kind = key.split(" ", 2)
            bucket = "%s %s" % (source, kind or "floats")
            if "label" in key:
                bucket = "%s labels" % source
            worst[bucket] = max(worst.get(bucket, 0.0), d)
        if failure:
            failed += 1
            print("FAIL %s: %s" % (name, failure))
        elif args.verbose:
            print("ok   %-36s %s" % (name, ", ".join("%s %.2g" % (k, v) for k, v in sorted(diffs.items()))))
    print("%d of %d ONNX-ML cases pass; largest differences: %s" %
          (len(cases) - failed, len(cases), ", ".join("%s %.3g" % kv for kv in sorted(worst.items()))))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Runs LightGBM's reference vectors through `kiln run` and compares with LightGBM's own predictions.

Each case directory (see ../shared/testdata/lightgbm/README.md) holds model.txt, input.npy, pred.npy (LightGBM's
transformed predictions), raw.npy (its raw scores) and leaf.npy (checked bit-exactly by tests/unit/test_lightgbm.c,
which needs no binary). For every case present:

  - `kiln run model.txt input.npy`: the predictions must be within 1e-6 (absolute) of pred.npy: for classifiers the
    `probabilities` output (binary models: probabilities[:, 1] is LightGBM's P(class 1)), and the `label` output must
    be the most probable class; for regressors the `variable` output;
  - `kiln run --raw`: the margins must be within 1e-6 (relative, to scores of magnitude 1 or more) of raw.npy.

kiln's outputs are float32, so the differences left are float32 roundings of LightGBM's float64 values.

usage: run_lightgbm_tests.py --kiln COMMAND [--data DIR] [--threads N]

DIR defaults to $KILN_LIGHTGBM_DATA, then ../shared/testdata/lightgbm beside the repository. When it is absent the
script prints "skipped: ..." and exits 77 (CTest's SKIP_RETURN_CODE).
"""
import argparse
import glob
import os
import shlex
import subprocess
import sys
import tempfile

import numpy as np

PRED_ATOL = 1e-6
RAW_RTOL = 1e-6
SKIP = 77


def default_data_dir():
    if os.environ.get("KILN_LIGHTGBM_DATA"):
        return os.environ["KILN_LIGHTGBM_DATA"]
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    return os.path.join(os.path.dirname(repo), "shared", "testdata", "lightgbm")


def run_kiln(kiln, case, out, threads, raw):
    command = shlex.split(kiln) + ["run", os.path.join(case, "model.txt"), os.path.join(case, "input.npy"),
                                   "-o", out, "--threads", str(threads)] + (["--raw"] if raw else [])
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("kiln run%s failed: %s" % (" --raw" if raw else "", proc.stderr.strip()))
    outputs = sorted(glob.glob(os.path.join(out, "output_*.npy")))
    return [np.load(p) for p in outputs]


def scores_of(outputs, reference):
    """kiln's outputs in the shape of LightGBM's arrays: ([rows] or [rows, classes]) float64, plus labels."""
    if len(outputs) == 2:  # classifier: label, probabilities
        label, probabilities = outputs
        scores = probabilities.astype(np.float64)
        if reference.ndim == 1:  # binary: LightGBM gives P(class 1); kiln [1-p, p] (raw: [-s, s])
            scores = scores[:, 1]
        return scores, label
    variable = outputs[0].astype(np.float64)
    return (variable[:, 0] if reference.ndim == 1 else variable), None


def check_case(kiln, case, threads):
    pred = np.load(os.path.join(case, "pred.npy"))
    raw = np.load(os.path.join(case, "raw.npy"))
    with tempfile.TemporaryDirectory() as out:
        got, label = scores_of(run_kiln(kiln, case, os.path.join(out, "pred"), threads, False), pred)
        got_raw, _ = scores_of(run_kiln(kiln, case, os.path.join(out, "raw"), threads, True), raw)
    if got.shape != pred.shape or got_raw.shape != raw.shape:
        return False, "shapes differ: kiln %s / %s, LightGBM %s / %s" % (got.shape, got_raw.shape, pred.shape,
                                                                          raw.shape)
    pred_diff = float(np.max(np.abs(got - pred)))
    raw_diff = float(np.max(np.abs(got_raw - raw) / np.maximum(1.0, np.abs(raw))))
    problems = []
    if not pred_diff <= PRED_ATOL:
        problems.append("predictions differ by up to %.3g" % pred_diff)
    if not raw_diff <= RAW_RTOL:
        problems.append("raw scores differ by up to %.3g (relative)" % raw_diff)
    if label is not None:
        want = (pred > 0.5).astype(np.int64) if pred.ndim == 1 else np.argmax(pred, axis=1)
        wrong = int(np.sum(label != want))
        if wrong:
            problems.append("%d labels are not the most probable class" % wrong)
    summary = "pred max |diff| %.3g, raw max rel diff %.3g" % (pred_diff, raw_diff)
    return not problems, summary + ("" if not problems else ": " + "; ".join(problems))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kiln", required=True, help="the kiln binary (may include an emulator prefix)")
    parser.add_argument("--data", default=default_data_dir(), help="directory of LightGBM reference cases")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    cases = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(args.data, "*", "model.txt")))
    if not cases:
        print("skipped: LightGBM reference vectors absent (%s)" % args.data)
        return SKIP
    failures = 0
    for case in cases:
        name = os.path.basename(case)
        try:
            ok, summary = check_case(args.kiln, case, args.threads)
        except (RuntimeError, OSError, ValueError) as error:
            ok, summary = False, str(error)
        failures += not ok
        print("%-28s %s  %s" % (name, "ok  " if ok else "FAIL", summary))
    print("%d of %d LightGBM cases match" % (len(cases) - failures, len(cases)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Runs exported models through `kiln run` and compares with onnxruntime's outputs.

Each model directory holds model.onnx, input_K.npy and expected_K.npy (onnxruntime's outputs, made by
make_fixtures.py). kiln must match within rtol 1e-3 / atol 1e-4, with 1 thread and with 2.

usage: run_model_tests.py --kiln COMMAND DIR [DIR ...]

DIR holds model directories or is one. COMMAND is the kiln binary, possibly behind an emulator
("cmake/qemu-aarch64-run build-aarch64/kiln").
"""
import argparse
import glob
import os
import shlex
import subprocess
import sys
import tempfile

import numpy as np

RTOL, ATOL = 1e-3, 1e-4


def model_dirs(roots):
    for root in roots:
        if os.path.exists(os.path.join(root, "model.onnx")):
            yield root
        else:
            for d in sorted(glob.glob(os.path.join(root, "*", "model.onnx"))):
                yield os.path.dirname(d)


def check(kiln, directory, threads):
    inputs = sorted(glob.glob(os.path.join(directory, "input_*.npy")), key=lambda p: int(p.split("_")[-1][:-4]))
    expected = sorted(glob.glob(os.path.join(directory, "expected_*.npy")), key=lambda p: int(p.split("_")[-1][:-4]))
    if not expected:
        return "no expected_*.npy (run make_fixtures.py)"
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run(shlex.split(kiln) + ["run", os.path.join(directory, "model.onnx")] + inputs +
                              ["-o", out, "--threads", str(threads)], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            return (proc.stderr.strip() or "exit %d" % proc.returncode).splitlines()[-1]
        for k, path in enumerate(expected):
            want = np.load(path)
            got_path = os.path.join(out, "output_%d.npy" % k)
            if not os.path.exists(got_path):
                return "output %d missing" % k
            got = np.load(got_path)
            if got.shape != want.shape or got.dtype != want.dtype:
                return "output %d is %s %s, onnxruntime gives %s %s" % (k, got.dtype, got.shape, want.dtype, want.shape)
            if not np.allclose(got, want, rtol=RTOL, atol=ATOL):
                return "output %d differs from onnxruntime: max abs diff %g" % (k, float(np.abs(got - want).max()))
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kiln", required=True)
    parser.add_argument("dirs", nargs="+")
    args = parser.parse_args()
    failures = 0
    count = 0
    for directory in model_dirs(args.dirs):
        name = os.path.basename(directory)
        for threads in (1, 2):
            count += 1
            problem = check(args.kiln, directory, threads)
            print("%-4s %s (threads %d)%s" % ("FAIL" if problem else "ok", name, threads,
                                             ": " + problem if problem else ""))
            failures += problem is not None
    if count == 0:
        print("no models found in " + " ".join(args.dirs))
        return 1
    print("%d of %d model runs match onnxruntime (rtol %g, atol %g)" % (count - failures, count, RTOL, ATOL))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Runs the ONNX backend node tests through `kiln run` and compares every output with the expected one.

Each test is a directory with model.onnx and test_data_set_*/input_K.pb, output_K.pb. kiln is run exactly as
a user would (`kiln run model.onnx input_0.pb ... -o DIR`), and DIR/output_K.npy is compared with
output_K.pb: same shape, same dtype, values within rtol 1e-3 / atol 1e-5 (NaN matches NaN). String outputs
are written by kiln as NumPy unicode arrays and must match exactly.

The count reported is over the "tensor" node tests: those whose inputs and outputs are all numeric or bool
tensors (886 with python3-onnx 1.12; onnxruntime 1.30 passes 844 of them). Tests with sequences, optionals
or strings ("other") are counted separately; sequence and optional outputs are read from the directories
kiln writes for them (output_K/0.npy, 1.npy, ...) and compared element by element.

expected_pass.txt names the tests that must pass: any of them failing fails this script (a regression), and
tests that pass but are not listed are printed so the list can grow (--update writes it).

usage: run_node_tests.py --kiln PATH --data DIR [--expected FILE] [--filter REGEX] [--jobs N] [--update]
                         [--by-op] [--verbose]
"""
import argparse
import collections
import concurrent.futures
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

RTOL, ATOL = 1e-3, 1e-5
TIMEOUT_S = 120


def classify(model):
    """'tensor', 'string' or 'other' by the graph's input and output types."""
    values = list(model.graph.input) + list(model.graph.output)
    if not all(v.type.HasField("tensor_type") for v in values):
        return "other"
    if any(v.type.tensor_type.elem_type == onnx.TensorProto.STRING for v in values):
        return "string"
    return "tensor"


def compare(expected, actual):
    if expected.shape != actual.shape:
        return "shape %s, expected %s" % (actual.shape, expected.shape)
    if expected.dtype == object:
        # string tensors: onnx gives an object array of str; kiln writes NumPy's fixed-width unicode ('<U')
        if actual.dtype.kind != "U":
            return "dtype %s, expected strings" % actual.dtype
        expected = expected.astype(str)
    if expected.dtype != actual.dtype:
        return "dtype %s, expected %s" % (actual.dtype, expected.dtype)
    if expected.dtype.kind in "fc":
        ok = np.isclose(actual, expected, rtol=RTOL, atol=ATOL, equal_nan=True)
        if not ok.all():
            bad = np.argwhere(~ok)[0]
            idx = tuple(int(i) for i in bad)
            return "value at %s is %r, expected %r (%d mismatches)" % (
                idx, actual[idx], expected[idx], int((~ok).sum()))
    elif not np.array_equal(expected, actual):
        bad = np.argwhere(expected != actual)[0]
        idx = tuple(int(i) for i in bad)
        return "value at %s is %r, expected %r" % (idx, actual[idx], expected[idx])
    return None


def read_expected(path, value_type):
    """The expected output: an array, or for sequences a list and for optionals None / an array / a list."""
    with open(path, "rb") as f:
        data = f.read()
    if value_type.HasField("sequence_type"):
        proto = onnx.SequenceProto()
        proto.ParseFromString(data)
        return numpy_helper.to_list(proto)
    if value_type.HasField("optional_type"):
        proto = onnx.OptionalProto()
        proto.ParseFromString(data)
        return numpy_helper.to_optional(proto)
    proto = onnx.TensorProto()
    proto.ParseFromString(data)
    return numpy_helper.to_array(proto)


def read_sequence_dir(path):
    items = []
    while os.path.exists(os.path.join(path, "%d.npy" % len(items))):
        items.append(np.load(os.path.join(path, "%d.npy" % len(items))))
    return items


def read_actual(out_dir, k, value_type):
    """Output k as kiln run -o writes it: output_K.npy, or the directory output_K/ for a sequence (0.npy,
    1.npy, ...) or an optional (empty: no value; 0.npy: a tensor; 0/: a sequence)."""
    path = os.path.join(out_dir, "output_%d" % k)
    if value_type.HasField("sequence_type"):
        return read_sequence_dir(path) if os.path.isdir(path) else None
    if value_type.HasField("optional_type"):
        if not os.path.isdir(path):
            return None, False
        if os.path.exists(os.path.join(path, "0.npy")):
            return np.load(os.path.join(path, "0.npy")), True
        if os.path.isdir(os.path.join(path, "0")):
            return read_sequence_dir(os.path.join(path, "0")), True
        return None, True
    return np.load(path + ".npy") if os.path.exists(path + ".npy") else None


def compare_value(expected, actual, value_type):
    if value_type.HasField("optional_type"):
        actual, written = actual
        if not written:
            return "was not written"
        if expected is None or actual is None:
            return None if expected is None and actual is None else "optional %s, expected %s" % (
                "empty" if actual is None else "present", "empty" if expected is None else "present")
        value_type = value_type.optional_type.elem_type
    if value_type.HasField("sequence_type"):
        if actual is None:
            return "was not written"
        if len(actual) != len(expected):
            return "sequence of %d, expected %d" % (len(actual), len(expected))
        for i, (e, a) in enumerate(zip(expected, actual)):
            problem = compare(e, a)
            if problem:
                return "element %d: %s" % (i, problem)
        return None
    if actual is None:
        return "was not written"
    return compare(expected, actual)


def run_test(kiln, test_dir):
    """(passed, reason) for one test directory; every data set must pass."""
    model_path = os.path.join(test_dir, "model.onnx")
    output_types = [o.type for o in onnx.load(model_path).graph.output]
    sets = sorted(d for d in os.listdir(test_dir) if d.startswith("test_data_set_"))
    for data_set in sets:
        set_dir = os.path.join(test_dir, data_set)
        n_in = len([f for f in os.listdir(set_dir) if f.startswith("input_")])
        n_out = len([f for f in os.listdir(set_dir) if f.startswith("output_")])
        inputs = [os.path.join(set_dir, "input_%d.pb" % i) for i in range(n_in)]
        with tempfile.TemporaryDirectory() as out_dir:
            try:
                proc = subprocess.run([kiln, "run", model_path] + inputs + ["-o", out_dir],
                                      capture_output=True, text=True, timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                return False, "timed out after %ds" % TIMEOUT_S
            if proc.returncode != 0:
                lines = (proc.stderr.strip() or "exit %d" % proc.returncode).splitlines()
                if proc.returncode < 0 or "Sanitizer" in proc.stderr or "runtime error" in proc.stderr:
                    return False, "CRASH (exit %d): %s" % (proc.returncode, " | ".join(lines[-3:]))
                return False, lines[-1]
            for k in range(n_out):
                value_type = output_types[k]
                expected = read_expected(os.path.join(set_dir, "output_%d.pb" % k), value_type)
                problem = compare_value(expected, read_actual(out_dir, k, value_type), value_type)
                if problem:
                    return False, "%s output %d: %s" % (data_set, k, problem)
    return True, None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kiln", required=True)
    parser.add_argument("--data", required=True, help="directory holding node/test_* (generate_node_tests.py)")
    parser.add_argument("--expected", help="file listing tests that must pass")
    parser.add_argument("--filter", help="only tests whose name matches this regex")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--update", action="store_true", help="rewrite --expected with the tests that pass")
    parser.add_argument("--by-op", action="store_true", help="print pass counts per operator")
    parser.add_argument("--verbose", action="store_true", help="print every failure's reason")
    args = parser.parse_args()

    node_dir = os.path.join(args.data, "node")
    names = sorted(os.listdir(node_dir))
    if args.filter:
        names = [n for n in names if re.search(args.filter, n)]
    kinds, ops = {}, {}
    for name in names:
        model = onnx.load(os.path.join(node_dir, name, "model.onnx"))
        kinds[name] = classify(model)
        ops[name] = sorted({n.op_type for n in model.graph.node if n.op_type != "Constant"} or {"Constant"})

    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(run_test, args.kiln, os.path.join(node_dir, n)): n for n in names}
        for future in concurrent.futures.as_completed(futures):
            results[futures[future]] = future.result()

    passed = {n for n, (ok, _) in results.items() if ok}
    crashes = sorted(n for n, (ok, why) in results.items() if not ok and why.startswith("CRASH"))
    tensor_tests = [n for n in names if kinds[n] == "tensor"]
    other_tests = [n for n in names if kinds[n] != "tensor"]
    if args.verbose:
        for n in names:
            if n not in passed:
                print("FAIL %s: %s" % (n, results[n][1]))
    if args.by_op:
        per_op = collections.defaultdict(lambda: [0, 0])
        for n in tensor_tests:
            for op in ops[n]:
                per_op[op][1] += 1
                per_op[op][0] += n in passed
        for op in sorted(per_op):
            print("  %-32s %3d / %3d" % (op, per_op[op][0], per_op[op][1]))

    status = 0
    for n in crashes:
        print("CRASH %s: %s" % (n, results[n][1]))
        status = 1
    if args.expected:
        expected = set()
        if os.path.exists(args.expected):
            with open(args.expected) as f:
                expected = {line.strip() for line in f if line.strip() and not line.startswith("#")}
        if args.filter:
            expected = {n for n in expected if re.search(args.filter, n)}
        regressions = sorted(n for n in expected if n in results and n not in passed)
        missing = sorted(n for n in expected if n not in results)
        for n in regressions:
            print("REGRESSION %s: %s" % (n, results[n][1]))
        for n in missing:
            print("MISSING %s: listed as passing but not generated" % n)
        new = sorted(passed - expected)
        if new and not args.update:
            print("%d tests pass that %s does not list yet (run with --update to add them):" % (
                len(new), os.path.basename(args.expected)))
            for n in new:
                print("  " + n)
        if args.update:
            with open(args.expected, "w") as f:
                f.write("# ONNX backend node tests (python3-onnx 1.12) that kiln must pass; see run_node_tests.py.\n")
                for n in sorted(passed):
                    f.write(n + "\n")
        if regressions or missing:
            status = 1
    value_tests = {n for n in other_tests if kinds[n] == "other"}
    string_tests = {n for n in other_tests if kinds[n] == "string"}
    print("ONNX node tests: %d of %d tensor tests pass (rtol %g, atol %g); %d of %d sequence/optional tests "
          "and %d of %d string tests pass" % (
              len(passed & set(tensor_tests)), len(tensor_tests), RTOL, ATOL,
              len(passed & value_tests), len(value_tests), len(passed & string_tests), len(string_tests)))
    return status


if __name__ == "__main__":
    sys.exit(main())

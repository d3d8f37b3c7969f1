#!/usr/bin/python3
"""The command-line contract other tools rely on (DESIGN.md, "Interfaces"), checked end to end:

- `kiln run MODEL INPUT... -o DIR` writes DIR/output_K.npy per graph output (TensorProto with --format pb),
  equal to onnxruntime's outputs for the bundled example; without -o it prints them;
- `kiln info --json` describes inputs/outputs with symbolic dims by name and the arena size;
- a classifier's ZipMap'd probabilities (a sequence of maps) come out as output_K.json, or a SequenceProto of
  MapProto with --format pb, and `kiln info --json` names their kind;
- `kiln bench --json` prints exactly one line with exactly the agreed keys;
- exit status 0 on success, 1 with one line on stderr on failure, 2 for a bad command line, 3 from `kiln info`
  when nodes are unsupported; --help for every command.

usage: test_cli.py KILN REPO_ROOT
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto

FAILURES = []


def check(condition, what):
    if not condition:
        FAILURES.append(what)
        print("FAIL " + what)


def run(kiln, *args):
    return subprocess.run([kiln] + list(args), capture_output=True, text=True, timeout=120)


def one_line_error(proc, code, words, what):
    lines = proc.stderr.strip().splitlines()
    check(proc.returncode == code, "%s: exit %d, expected %d" % (what, proc.returncode, code))
    check(len(lines) == 1 and words in lines[0], "%s: stderr %r should be one line containing %r" % (
        what, proc.stderr, words))


def main():
    kiln, root = sys.argv[1], sys.argv[2]
    model = os.path.join(root, "examples", "mlp", "model.onnx")
    features = os.path.join(root, "examples", "mlp", "input.npy")
    expected = os.path.join(root, "tests", "models", "data", "mlp")
    with tempfile.TemporaryDirectory() as tmp:
        # run: files per output, npy and pb
        out = os.path.join(tmp, "out", "nested")
        proc = run(kiln, "run", model, features, "-o", out)
        check(proc.returncode == 0 and proc.stdout == "", "run -o: exit 0 and quiet (%r)" % proc.stderr)
        got = np.load(os.path.join(out, "output_0.npy"))
        check(got.shape == (4, 2) and got.dtype == np.float32, "run -o: output_0.npy is float32 [4,2]")
        check(np.allclose(got.sum(1), 1, atol=1e-5), "run -o: probabilities sum to 1")
        check(not any(f.endswith(".partial") for f in os.listdir(out)), "run -o: no partial files left")
        proc = run(kiln, "run", model, features, "-o", out, "--format", "pb")
        tensor = TensorProto()
        with open(os.path.join(out, "output_0.pb"), "rb") as f:
            tensor.ParseFromString(f.read())
        check(tensor.name == "probabilities" and np.array_equal(numpy_helper.to_array(tensor), got),
              "run --format pb: TensorProto named after the output, same values")
        proc = run(kiln, "run", model, features)
        check(proc.returncode == 0 and proc.stdout.startswith("probabilities: float32 [4,2] = ["), "run prints outputs")
        # the committed mlp fixture against onnxruntime's outputs
        proc = run(kiln, "run", os.path.join(expected, "model.onnx"), os.path.join(expected, "input_0.npy"), "-o", tmp)
        check(np.allclose(np.load(os.path.join(tmp, "output_0.npy")), np.load(os.path.join(expected, "expected_0.npy")),
                          rtol=1e-3, atol=1e-4), "run matches onnxruntime on the mlp fixture")

        # a sequence of maps: JSON by default, SequenceProto of MapProto with --format pb
        zipmap = os.path.join(root, "tests", "ml", "onnxml", "data", "iris_logreg_zipmap")
        zip_args = [os.path.join(zipmap, "model.onnx"), os.path.join(zipmap, "input_0.npy")]
        proc = run(kiln, "run", *zip_args, "-o", os.path.join(tmp, "zip"))
        check(proc.returncode == 0, "run zipmap: exit 0 (%r)" % proc.stderr)
        with open(os.path.join(tmp, "zip", "output_1.json")) as f:
            maps = json.load(f)
        with open(os.path.join(zipmap, "expected_1.json")) as f:
            expected_maps = json.load(f)
        check(len(maps) == len(expected_maps) and all(list(m) == ["setosa", "versicolor", "virginica"] for m in maps),
              "run zipmap: output_1.json has one map per row keyed by the class names")
        check(np.array_equal(np.load(os.path.join(tmp, "zip", "output_0.npy")), np.load(os.path.join(zipmap, "expected_0.npy"))),
              "run zipmap: string labels as a NumPy unicode array")
        proc = run(kiln, "run", *zip_args, "-o", os.path.join(tmp, "zippb"), "--format", "pb")
        seq = onnx.SequenceProto()
        with open(os.path.join(tmp, "zippb", "output_1.pb"), "rb") as f:
            seq.ParseFromString(f.read())
        as_lists = numpy_helper.to_list(seq)
        check(seq.elem_type == onnx.SequenceProto.MAP and len(as_lists) == len(maps) and
              all({k.decode(): np.float32(v) for k, v in pb.items()} == {k: np.float32(v) for k, v in m.items()}
                  for pb, m in zip(as_lists, maps)),
              "run zipmap --format pb: a SequenceProto of MapProto with the JSON's values")
        outputs = json.loads(run(kiln, "info", zip_args[0], "--json").stdout)["outputs"]
        check(outputs[1].get("kind") == "sequence" and outputs[1].get("elem_kind") == "map" and
              outputs[1].get("key_dtype") == "string", "info --json: a sequence of maps is named")

        # info --json
        proc = run(kiln, "info", model, "--json")
        info = json.loads(proc.stdout)
        check(proc.returncode == 0, "info: exit 0")
        check(info["inputs"] == [{"name": "features", "dtype": "float32", "shape": ["batch", 30]}], "info: input")
        check(info["outputs"] == [{"name": "probabilities", "dtype": "float32", "shape": ["batch", 2]}], "info: output")
        check(info["opsets"] == {"ai.onnx": 13} and info["unsupported"] == [], "info: opsets, nothing unsupported")
        check(isinstance(info["arena_bytes"], int) and info["arena_bytes"] > 0, "info: arena bytes")
        check(info["operators"].get("Gemm") == 3, "info: operator histogram")
        proc = run(kiln, "info", model)
        check(proc.returncode == 0 and "[batch,30]" in proc.stdout and "arena:" in proc.stdout, "info: text")

        # an unsupported model: info lists every unsupported node and exits 3; run refuses with one line
        graph = helper.make_graph(
            [helper.make_node("NoSuchOp", ["x"], ["a"], name="first"), helper.make_node("AlsoMissing", ["a"], ["y"])],
            "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
        bad = os.path.join(tmp, "unsupported.onnx")
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), bad)
        proc = run(kiln, "info", bad, "--json")
        check(proc.returncode == 3 and len(json.loads(proc.stdout)["unsupported"]) == 2, "info: unsupported -> 3")
        one_line_error(run(kiln, "run", bad, features), 1, "NoSuchOp", "run unsupported")

        # bench --json: one line, exactly the agreed keys
        proc = run(kiln, "bench", model, "--json", "--seconds", "0.2", "--shape", "batch=8")
        lines = proc.stdout.strip().splitlines()
        check(proc.returncode == 0 and len(lines) == 1, "bench --json: one line")
        bench = json.loads(lines[0])
        check(list(bench) == ["model", "threads", "runs", "load_ms", "p50_us", "p90_us", "p99_us", "min_us"],
              "bench --json: keys %s" % list(bench))
        check(bench["runs"] > 0 and bench["min_us"] <= bench["p50_us"] <= bench["p90_us"] <= bench["p99_us"],
              "bench --json: percentiles ordered")
        # bench --profile: the JSON line stays alone on stdout; the table (on stderr) names the MLP's operators
        proc = run(kiln, "bench", model, "--json", "--profile", "--seconds", "0.2", "--shape", "batch=8")
        check(proc.returncode == 0 and len(proc.stdout.strip().splitlines()) == 1, "bench --profile --json: one line")
        check("profile:" in proc.stderr and "Gemm" in proc.stderr and "slowest nodes" in proc.stderr,
              "bench --profile: operator table on stderr")

        # errors: one line, right exit code
        one_line_error(run(kiln, "run", model), 2, "has 1 input but 0 files", "run without inputs")
        one_line_error(run(kiln, "run", os.path.join(tmp, "missing.onnx")), 1, "cannot open", "run missing model")
        np.save(os.path.join(tmp, "wide.npy"), np.zeros((4, 31), np.float32))
        one_line_error(run(kiln, "run", model, os.path.join(tmp, "wide.npy")), 1, "expects [?,30]", "run wrong shape")
        one_line_error(run(kiln, "run", model, features, "--threads", "x"), 2, "--threads", "run bad --threads")
        one_line_error(run(kiln, "bench", model, "--shape", "oops"), 2, "NAME=DIMS", "bench bad --shape")
        one_line_error(run(kiln, "nosuchcommand"), 2, "unknown command", "unknown command")
        with open(model, "rb") as f:
            truncated = f.read()[:1000]
        with open(os.path.join(tmp, "truncated.onnx"), "wb") as f:
            f.write(truncated)
        one_line_error(run(kiln, "info", os.path.join(tmp, "truncated.onnx")), 1, "truncated", "info truncated model")

        for command in ["run", "info", "bench"]:
            proc = run(kiln, command, "--help")
            check(proc.returncode == 0 and proc.stdout.startswith("usage: kiln " + command), command + " --help")
        check(run(kiln, "--help").returncode == 0, "kiln --help")
    print("%s: %d failures" % (os.path.basename(__file__), len(FAILURES)))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())

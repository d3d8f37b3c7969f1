#!/usr/bin/python3
"""kiln's tree engine against XGBoost's own C API predictor and onnxruntime's TreeEnsembleClassifier, side by side.

One command (from the repository root, after building kiln in build/):

    /usr/bin/python3 bench/trees_vs_xgboost.py [--kiln-build build] [--work build/bench-trees] [--rounds 5]

It trains (once, seeded, cached under --work) a 500-tree depth-8 binary:logistic XGBoost model on 30 features,
draws 100k other rows (1% NaN), and writes the model three ways:
  model.json        XGBoost's own JSON (what XGBoost loads, and what `kiln run model.json` loads once the native
                    XGBoost loader exists)
  model_kiln.onnx   the same trees as one ai.kiln::TreeEnsemble node: exactly the graph kiln's native loader builds
                    (formats/tree_schema.h), so kiln is measured through its public API either way
  model_ort.onnx    the usual ONNX-ML conversion (TreeEnsembleClassifier, BRANCH_LT, missing tracks default_left)
It then builds three small C programs and runs them, in interleaved rounds, single-threaded:
  bench/kiln_tree_bench.c    kiln through its public C API (include/kiln.h), linked with build/libkiln.a;
  bench/xgb_c_api_bench.c    XGBoost's C API (-lxgboost, libxgboost-dev), the faster of its two entry points;
  bench/tree_kernels_bench.c kiln's tree engine alone, each kernel variant (portable C, AVX2, AVX-512) forced;
and onnxruntime through onnxruntime-node (bench/ort_bench.js), whose fixed per-call cost is measured on an
Identity model of the same input and reported separately. Measured:
  batch-1 latency: the median of many single-row predictions (each a different row, so no library profits from
                   the branch predictor or the caches remembering one path), whole calls through each API;
  100k throughput: one call on all 100k rows, median over repeated calls.
kiln loads model.json when its native loader accepts it, else model_kiln.onnx (the same graph); the line
`kiln model:` says which, so nothing changes here when the loader lands. Before timing, every engine's
probabilities on the 100k rows are compared with XGBoost's own (Python) prediction.

Needs /usr/bin/python3 with numpy, onnx and xgboost (Debian packages), libxgboost-dev, node with onnxruntime-node
(--ort-path or NODE_PATH). Everything generated stays under --work; nothing is written to the source tree.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TREES, DEPTH, FEATURES, ROWS, SEED = 500, 8, 30, 100_000, 7


def make_data(rng, rows):
    """Rows of standard normal features with 1% missing (NaN); the label depends on a few of them non-linearly."""
    x = rng.standard_normal((rows, FEATURES)).astype(np.float32)
    y = (np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2] + 0.5 * x[:, 3] ** 2 - np.abs(x[:, 4]) + 0.3 * x[:, 5:15].sum(axis=1)
         + rng.standard_normal(rows) > 0).astype(np.float32)
    x[rng.random(x.shape) < 0.01] = np.nan
    return x, y


def train(work):
    import xgboost as xgb
    rng = np.random.default_rng(SEED)
    x_train, y_train = make_data(rng, ROWS)
    x_bench, _ = make_data(rng, ROWS)
    params = {"objective": "binary:logistic", "max_depth": DEPTH, "eta": 0.1, "tree_method": "hist", "nthread": 2,
              "seed": SEED}
    booster = xgb.train(params, xgb.DMatrix(x_train, label=y_train), num_boost_round=TREES)
    booster.save_model(os.path.join(work, "model.json"))
    x_bench.tofile(os.path.join(work, "x.f32"))
    booster.set_param({"nthread": 1})
    expected = booster.inplace_predict(x_bench).astype(np.float32)
    expected.tofile(os.path.join(work, "xgboost_python.f32"))
    # node visits per row: the depth of each leaf reached, summed over the trees (for ns per node visit)
    trees, _ = xgboost_trees(json.load(open(os.path.join(work, "model.json"))))
    leaves = booster.predict(xgb.DMatrix(x_bench), pred_leaf=True).astype(np.int64)
    visits = 0
    for t, tree in enumerate(trees):
        depth = np.zeros(len(tree["left_children"]), dtype=np.int64)
        for i, (left, right) in enumerate(zip(tree["left_children"], tree["right_children"])):
            if left != -1:
                depth[left] = depth[right] = depth[i] + 1  # XGBoost numbers children after their parent
        visits += depth[leaves[:, t]].sum()
    json.dump({"visits_per_row": visits / ROWS}, open(os.path.join(work, "meta.json"), "w"))


def xgboost_trees(model):
    """(trees, base margin) of an XGBoost JSON binary:logistic model; each tree as per-node lists."""
    learner = model["learner"]
    if learner["objective"]["name"] != "binary:logistic":
        raise SystemExit("the benchmark model must be binary:logistic")
    base_score = float(learner["learner_model_param"]["base_score"])
    margin = -math.log(1.0 / base_score - 1.0)  # XGBoost's ProbToMargin for the logistic objective
    return learner["gradient_booster"]["model"]["trees"], margin


def kiln_model(trees, margin, path):
    """The ai.kiln::TreeEnsemble graph kiln's native XGBoost loader builds (see formats/tree_schema.h)."""
    roots, kind, feature, threshold, missing, true_, false_, leaf_first, leaf_weights = ([] for _ in range(9))
    for t in trees:
        first = len(kind)
        roots.append(first)
        for i, left in enumerate(t["left_children"]):
            leaf = left == -1
            kind.append(0 if leaf else 1)
            feature.append(0 if leaf else t["split_indices"][i])
            threshold.append(0.0 if leaf else float(t["split_conditions"][i]))
            missing.append(0 if t["default_left"][i] else 1)  # TREE_MISSING_TRUE / FALSE: left is the true branch
            true_.append(0 if leaf else first + left)
            false_.append(0 if leaf else first + t["right_children"][i])
            leaf_first.append(len(leaf_weights) if leaf else 0)
            if leaf:
                leaf_weights.append(float(t["split_conditions"][i]))
    n = len(kind)
    leaves = len(leaf_weights)
    ints = lambda name, v: helper.make_attribute(name, helper.make_tensor(name, TensorProto.INT32, [len(v)], v))
    doubles = lambda name, v: helper.make_attribute(name, helper.make_tensor(name, TensorProto.DOUBLE, [len(v)], v))
    attrs = [ints("tree_roots", roots), ints("nodes_kind", kind), ints("nodes_feature", feature),
             ints("nodes_compare", [0] * n), doubles("nodes_threshold", threshold), ints("nodes_missing", missing),
             ints("nodes_zero_missing", [0] * n), ints("nodes_true", true_), ints("nodes_false", false_),
             ints("nodes_leaf_first", leaf_first), ints("nodes_leaf_count", [1 if k == 0 else 0 for k in kind]),
             ints("leaf_targets", [0] * leaves), doubles("leaf_weights", leaf_weights),
             doubles("base_values", [margin])]
    node = helper.make_node("TreeEnsemble", ["input"], ["label", "probabilities"], domain="ai.kiln", name="trees",
                            n_features=FEATURES, n_targets=1, n_trees=len(trees), n_nodes=n, n_category_words=0,
                            n_leaf_weights=leaves, aggregate=0, n_classes=2, thresholds_are_double=0,
                            sum_in_float32=1, zero_tiny_inputs=0, classifier=1, average_divisor=0.0,
                            sigmoid_scale=1.0, post_transform="LOGISTIC", source="xgboost binary:logistic (bench)")
    node.attribute.extend(attrs)
    save_model(node, path, ("ai.kiln", 1))


def ort_model(trees, margin, path):
    """The usual ONNX-ML conversion: TreeEnsembleClassifier with XGBoost's `x < t` and default directions."""
    a = {k: [] for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes", "nodes_values",
                         "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true",
                         "class_treeids", "class_nodeids", "class_ids", "class_weights")}
    for tid, t in enumerate(trees):
        for i, left in enumerate(t["left_children"]):
            leaf = left == -1
            a["nodes_treeids"].append(tid)
            a["nodes_nodeids"].append(i)
            a["nodes_featureids"].append(0 if leaf else t["split_indices"][i])
            a["nodes_modes"].append("LEAF" if leaf else "BRANCH_LT")
            a["nodes_values"].append(0.0 if leaf else float(t["split_conditions"][i]))
            a["nodes_truenodeids"].append(0 if leaf else left)
            a["nodes_falsenodeids"].append(0 if leaf else t["right_children"][i])
            a["nodes_missing_value_tracks_true"].append(int(t["default_left"][i]) if not leaf else 0)
            if leaf:
                a["class_treeids"].append(tid)
                a["class_nodeids"].append(i)
                a["class_ids"].append(0)
                a["class_weights"].append(float(t["split_conditions"][i]))
    node = helper.make_node("TreeEnsembleClassifier", ["input"], ["label", "probabilities"], domain="ai.onnx.ml",
                            classlabels_int64s=[0, 1], post_transform="LOGISTIC", base_values=[margin], **a)
    save_model(node, path, ("ai.onnx.ml", 3))


def save_model(node, path, domain_opset):
    graph = helper.make_graph([node], "trees",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", FEATURES])],
                              [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
                               helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(*domain_opset)])
    model.ir_version = 8
    onnx.save(model, path)


def trees_text(trees, margin, path):
    """The trees for bench/tree_kernels_bench.c: one line per node (see there)."""
    with open(path, "w") as out:
        out.write("%d %d %.17g\n" % (len(trees), FEATURES, margin))
        for t in trees:
            out.write("%d\n" % len(t["left_children"]))
            for i, left in enumerate(t["left_children"]):
                out.write("%d %d %d %.9g %d %.9g\n" % (left, t["right_children"][i], t["split_indices"][i],
                                                       t["split_conditions"][i], t["default_left"][i],
                                                       t["split_conditions"][i]))


def identity_model(path):
    """What onnxruntime-node costs per call with no work: an Identity on one row of the same input."""
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "identity",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", FEATURES])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", FEATURES])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def prepare(work):
    stamp = os.path.join(work, "stamp")
    want = "trees=%d depth=%d features=%d rows=%d seed=%d v3" % (TREES, DEPTH, FEATURES, ROWS, SEED)
    if os.path.exists(stamp) and open(stamp).read() == want:
        return
    os.makedirs(work, exist_ok=True)
    print("training the %d-tree depth-%d model (once; cached in %s) ..." % (TREES, DEPTH, work), flush=True)
    train(work)
    trees, margin = xgboost_trees(json.load(open(os.path.join(work, "model.json"))))
    kiln_model(trees, margin, os.path.join(work, "model_kiln.onnx"))
    ort_model(trees, margin, os.path.join(work, "model_ort.onnx"))
    identity_model(os.path.join(work, "identity.onnx"))
    trees_text(trees, margin, os.path.join(work, "trees.txt"))
    open(stamp, "w").write(want)


def compile_programs(work, kiln_build):
    cc = os.environ.get("CC", "cc")
    flags = ["-O2", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra"]
    kiln_lib = [os.path.join(kiln_build, "libkiln.a"), "-lm", "-lpthread"]
    for source, target, extra in (("xgb_c_api_bench.c", "xgb_bench", ["-lxgboost", "-lm"]),
                                  ("kiln_tree_bench.c", "kiln_bench", kiln_lib),
                                  ("tree_kernels_bench.c", "tree_kernels_bench", kiln_lib)):
        subprocess.run([cc, *flags, "-I", ROOT, "-I", os.path.join(ROOT, "include"), os.path.join(HERE, source),
                        "-o", os.path.join(work, target), *extra], check=True)


def run_json(cmd, env=None, all_lines=False):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit("%s failed:\n%s" % (" ".join(cmd), out.stderr.strip()))
    lines = [json.loads(line) for line in out.stdout.strip().splitlines()]
    return lines if all_lines else lines[-1]


def commands(work, seconds, ort_path):
    """The command lines of every measurement, and the environment they run in."""
    data = os.path.join(work, "x.f32")
    common = ["--data", data, "--rows", str(ROWS), "--features", str(FEATURES), "--seconds", str(seconds)]
    ort = lambda model, rows: ["node", os.path.join(HERE, "ort_bench.js"), os.path.join(work, model), "--shape",
                               "input=%d,%d" % (rows, FEATURES), "--threads", "1", "--seconds", str(seconds),
                               "--data", data]
    cmds = {
        "kiln": [os.path.join(work, "kiln_bench"), "--model", os.path.join(work, "model.json"),
                 "--fallback-model", os.path.join(work, "model_kiln.onnx"), *common],
        "xgboost": [os.path.join(work, "xgb_bench"), "--model", os.path.join(work, "model.json"), *common],
        "ort-batch1": ort("model_ort.onnx", 1),
        "ort-batch": ort("model_ort.onnx", ROWS),
        "ort-floor": ort("identity.onnx", 1),
        "kernels": [os.path.join(work, "tree_kernels_bench"), os.path.join(work, "trees.txt"), data, str(ROWS),
                    str(seconds / 2)],
    }
    return cmds, dict(os.environ, NODE_PATH=os.path.abspath(ort_path), OMP_NUM_THREADS="1")


def check_predictions(work, cmds, env):
    """Every engine's probabilities on the 100k rows against XGBoost's own (Python) prediction."""
    expected = np.fromfile(os.path.join(work, "xgboost_python.f32"), dtype=np.float32)
    diff = {}
    for name in ("kiln", "xgboost"):
        out = os.path.join(work, name + "_probabilities.f32")
        info = run_json(cmds[name] + ["--check", out], env)
        diff[name] = float(np.max(np.abs(np.fromfile(out, dtype=np.float32) - expected)))
        if name == "kiln":
            print("kiln model: %s" % info["model"])
    ort_out = os.path.join(work, "ort")
    subprocess.run(["node", os.path.join(ROOT, "tests", "models", "ort_run.js"), os.path.join(work, "model_ort.onnx"),
                    ort_out, write_npy(work, os.path.join(work, "x.f32"))], check=True, env=env)
    diff["onnxruntime"] = float(np.max(np.abs(np.load(os.path.join(ort_out, "expected_1.npy"))[:, 1] - expected)))
    print("max |p - xgboost python p| over %d rows: %s" % (ROWS, ", ".join("%s %.2g" % kv for kv in diff.items())))


def run_rounds(cmds, env, rounds):
    """Interleaved rounds: each engine once per round; returns per engine the lists of batch-1 us / batch ms."""
    res = {k: {"batch1": [], "batch": []} for k in ("kiln", "xgboost", "onnxruntime", "ort-floor")}
    kernels = {}
    for r in range(rounds):
        for name in ("kiln", "xgboost"):
            j = run_json(cmds[name], env)
            res[name]["batch1"].append(j["batch1_p50_us"])
            res[name]["batch"].append(j["batch_ms"])
            if name == "xgboost":
                res["xgboost"]["paths"] = (j["batch1_path"], j["batch_path"])
        res["onnxruntime"]["batch1"].append(run_json(cmds["ort-batch1"], env)["p50_us"])
        res["onnxruntime"]["batch"].append(run_json(cmds["ort-batch"], env)["p50_us"] / 1000)
        res["ort-floor"]["batch1"].append(run_json(cmds["ort-floor"], env)["p50_us"])
        for j in run_json(cmds["kernels"], env, all_lines=True):
            kernels.setdefault(j["variant"], {"batch1": [], "batch": [], "exact": True})
            kernels[j["variant"]]["batch1"].append(j["batch1_p50_us"])
            kernels[j["variant"]]["batch"].append(j["batch_ms"])
            kernels[j["variant"]]["exact"] &= j["equals_reference"]
        print("round %d/%d done" % (r + 1, rounds), flush=True)
    return res, kernels


def report(work, res, kernels, rounds):
    med = lambda d: {m: statistics.median(d[m]) if d[m] else 0.0 for m in ("batch1", "batch")}
    k, x, o, floor = med(res["kiln"]), med(res["xgboost"]), med(res["onnxruntime"]), med(res["ort-floor"])["batch1"]
    visits = json.load(open(os.path.join(work, "meta.json")))["visits_per_row"]
    line = lambda name, b1, bt: print("%-40s %10.2f us %10.1f ms %8.2fM %8.3f ns %8.3f ns" %
                                      (name, b1, bt, ROWS / bt / 1000, b1 * 1000 / visits, bt * 1e6 / (visits * ROWS)))
    print("\n%d trees, depth %d, %d features, binary:logistic, %d rows; single thread; medians of %d interleaved rounds"
          % (TREES, DEPTH, FEATURES, ROWS, rounds))
    print("node visits per row: %.0f (mean leaf depth %.2f); 'ns/visit' = time / (rows x visits per row)"
          % (visits, visits / TREES))
    print("%-40s %13s %13s %9s %11s %11s" % ("", "batch-1 p50", "100k rows", "rows/s", "ns/visit b1", "ns/visit 100k"))
    line("kiln (public C API)", k["batch1"], k["batch"])
    line("xgboost (C API, %s / %s)" % res["xgboost"]["paths"], x["batch1"], x["batch"])
    line("onnxruntime (onnxruntime-node)", o["batch1"], o["batch"])
    print("%-40s %10.2f us   (an Identity on one row: the binding's own cost per call)"
          % ("  onnxruntime-node floor", floor))
    for variant, v in kernels.items():
        line("kiln engine alone, %s%s" % (variant, "" if v["exact"] else " (NOT EQUAL TO REFERENCE)"),
             statistics.median(v["batch1"]), statistics.median(v["batch"]))
    print("\nxgboost / kiln:      batch-1 %.2fx   100k %.2fx   (how many times faster kiln is)" %
          (x["batch1"] / k["batch1"], x["batch"] / k["batch"]))
    print("onnxruntime / kiln:  batch-1 %.2fx (%.2fx without the binding's floor)   100k %.2fx" %
          (o["batch1"] / k["batch1"], (o["batch1"] - floor) / k["batch1"], o["batch"] / k["batch"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kiln-build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--work", default=os.path.join(ROOT, "build", "bench-trees"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement and engine")
    parser.add_argument("--ort-path",
                        default=os.environ.get("NODE_PATH", os.path.join(ROOT, ".cache", "npm", "node_modules")),
                        help="node_modules with onnxruntime-node (default: $NODE_PATH, else .cache/npm/node_modules)")
    args = parser.parse_args()
    work = os.path.abspath(args.work)
    prepare(work)
    compile_programs(work, args.kiln_build)
    cmds, env = commands(work, args.seconds, args.ort_path)
    check_predictions(work, cmds, env)
    res, kernels = run_rounds(cmds, env, args.rounds)
    report(work, res, kernels, args.rounds)
    return 0


def write_npy(work, data):
    path = os.path.join(work, "x.npy")
    if not os.path.exists(path):
        np.save(path, np.fromfile(data, dtype=np.float32).reshape(ROWS, FEATURES))
    return path


if __name__ == "__main__":
    sys.exit(main())

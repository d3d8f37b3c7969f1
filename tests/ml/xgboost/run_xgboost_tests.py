#!/usr/bin/python3
"""Runs kiln on the XGBoost fixtures (make_fixtures.py) and compares with XGBoost's own predictions.

    /usr/bin/python3 tests/ml/xgboost/run_xgboost_tests.py --kiln build/kiln [FIXTURE_DIR] [--verbose]

For every model, in both encodings (model.json, model.ubj):
  - `kiln run` must give XGBoost's predictions: probabilities and regression values within 1e-6 (relative to
    the value beyond magnitude 1, where float32 cannot resolve 1e-6), labels exactly;
  - `kiln run --raw` must give XGBoost's margins (predict(output_margin=True)) within the same bound;
  - the model rewritten in XGBoost 2.x's schema (base_score "[5E-1]", size_leaf_vector "1", iteration_indptr)
    must predict the same;
  - every tree must end in the leaf XGBoost's pred_leaf names;
  - models whose node arrays were scrambled (children pointing anywhere, including back up the tree; features,
    flags and categories out of range) must load and run, or fail with a one-line error: never crash (run
    this script with an AddressSanitizer build of kiln to check reads too). kiln has no leaf output, so the model is
    rewritten as a regressor with one output per tree whose leaves hold their own node ids (the splits are
    untouched); its raw outputs are then the leaf choices, read through the whole loader and engine.
Only numpy is needed (not xgboost). Prints one line per check and "N passed, N failed".
"""
import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

TOLERANCE = 1e-6


def run_kiln(kiln, model, inputs, outdir, raw=False):
    command = [kiln, "run", model, inputs, "-o", outdir] + (["--raw"] if raw else [])
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"kiln run failed: {result.stderr.strip() or result.stdout.strip()}")
    outputs = []
    while os.path.exists(os.path.join(outdir, f"output_{len(outputs)}.npy")):
        outputs.append(np.load(os.path.join(outdir, f"output_{len(outputs)}.npy")))
    return outputs


def excess(got, want):
    """Largest error beyond the tolerance (<= 0 when everything is close enough)."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"shape {got.shape}, expected {want.shape}")
    if got.size == 0:
        return 0.0
    scale = np.maximum(1.0, np.abs(want))
    return float(np.max(np.abs(got - want) / scale))


def require_close(what, got, want):
    error = excess(got, want)
    if not error <= TOLERANCE:
        worst = int(np.argmax(np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64)).reshape(-1)))
        raise AssertionError(f"{what}: off by {error:.3g} (element {worst}: kiln "
                             f"{np.asarray(got).reshape(-1)[worst]!r}, xgboost {np.asarray(want).reshape(-1)[worst]!r})")
    return error


def require_equal(what, got, want):
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or not np.array_equal(got, want):
        differ = np.flatnonzero(got.reshape(-1) != want.reshape(-1)) if got.shape == want.shape else []
        raise AssertionError(f"{what}: differs ({len(differ)} elements, first {differ[:5].tolist()})"
                             if len(differ) else f"{what}: shape {got.shape}, expected {want.shape}")


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def softmax(x):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def check_classifier(objective, outputs, raw_outputs, predict, margin):
    """Errors of one classifier model (binary as [1-p, p]); raises on a mismatch."""
    label, probabilities = outputs
    raw_label, raw_scores = raw_outputs
    if objective.startswith("multi:"):
        if objective == "multi:softprob":
            error = require_close("probabilities", probabilities, predict)
            require_equal("label", label, np.argmax(predict, axis=1))
        else:  # softmax predicts the label; its probabilities are the softmax of the margins
            error = require_close("probabilities", probabilities, softmax(margin))
            require_equal("label", label, predict.astype(np.int64))
        return max(error, require_close("raw margins", raw_scores, margin))
    if objective == "binary:hinge":
        require_equal("label", label, predict.astype(np.int64))
        error = require_close("probabilities", probabilities, np.stack([1 - predict, predict], 1))
    else:
        p = predict if objective == "binary:logistic" else sigmoid(margin)  # logitraw predicts the margin
        error = require_close("probabilities", probabilities, np.stack([1 - p, p], 1))
        require_equal("label", label, (margin > 0).astype(np.int64))
    require_equal("raw label", raw_label, (margin > 0).astype(np.int64))
    return max(error, require_close("raw margins", raw_scores, np.stack([-margin, margin], 1)))


def check_regressor(outputs, raw_outputs, predict, margin):
    (values,), (raw_values,) = outputs, raw_outputs
    rows = len(values)
    error = require_close("predictions", values, predict.reshape(rows, -1))
    return max(error, require_close("raw margins", raw_values, margin.reshape(rows, -1)))


def check_predictions(kiln, fixture, model, tmp):
    with open(os.path.join(fixture, "model.json")) as f:
        objective = json.load(f)["learner"]["objective"]["name"]
    inputs = os.path.join(fixture, "input.npy")
    predict = np.load(os.path.join(fixture, "predict.npy"))
    margin = np.load(os.path.join(fixture, "margin.npy"))
    outputs = run_kiln(kiln, model, inputs, os.path.join(tmp, "out"))
    raw_outputs = run_kiln(kiln, model, inputs, os.path.join(tmp, "raw"), raw=True)
    if len(outputs) == 2:
        return check_classifier(objective, outputs, raw_outputs, predict, margin)
    return check_regressor(outputs, raw_outputs, predict, margin)


def trees_of(model):
    booster = model["learner"]["gradient_booster"]
    return booster["gbtree"]["model"] if booster["name"] == "dart" else booster["model"]


def schema_2_model(model):
    """The model as XGBoost 2.x writes it (the fields 2.x changed; the trees are the same)."""
    model = copy.deepcopy(model)
    model["version"] = [2, 1, 3]
    param = model["learner"]["learner_model_param"]
    param["base_score"] = f"[{param['base_score']}]"
    trees = trees_of(model)
    for tree in trees["trees"]:
        tree["tree_param"]["size_leaf_vector"] = "1"
    groups = max(int(param["num_class"]), int(param["num_target"]), 1)
    parallel = int(trees["gbtree_model_param"]["num_parallel_tree"])
    trees["iteration_indptr"] = list(range(0, len(trees["trees"]) + 1, groups * parallel))
    return model


def check_schema_2(kiln, fixture, tmp):
    with open(os.path.join(fixture, "model.json")) as f:
        model = schema_2_model(json.load(f))
    path = os.path.join(tmp, "model.json")
    with open(path, "w") as f:
        json.dump(model, f)
    return check_predictions(kiln, fixture, path, tmp)


def leaf_id_model(model):
    """The model with each leaf's value replaced by its node id and one output per tree."""
    model = copy.deepcopy(model)
    learner = model["learner"]
    booster = learner["gradient_booster"]
    trees_model = trees_of(model)
    n_trees = len(trees_model["trees"])
    if booster["name"] == "dart":
        booster["weight_drop"] = [1.0] * n_trees
    for tree in trees_model["trees"]:
        for node, left in enumerate(tree["left_children"]):
            if left == -1:
                tree["split_conditions"][node] = float(node)
    trees_model["tree_info"] = list(range(n_trees))
    learner["learner_model_param"].update(num_class="0", num_target=str(n_trees), base_score="0")
    learner["objective"] = {"name": "reg:squarederror"}
    return model


def check_leaves(kiln, fixture, tmp):
    with open(os.path.join(fixture, "model.json")) as f:
        model = leaf_id_model(json.load(f))
    path = os.path.join(tmp, "leaf_ids.json")
    with open(path, "w") as f:
        json.dump(model, f)
    (leaves,) = run_kiln(kiln, path, os.path.join(fixture, "input.npy"), os.path.join(tmp, "leaves"), raw=True)
    expected = np.load(os.path.join(fixture, "leaves.npy")).astype(np.float32)
    require_equal("leaf choices", leaves, expected)
    return 0.0


MUTATED_ARRAYS = ("left_children", "right_children", "split_indices", "default_left", "split_type", "categories",
                  "categories_nodes", "categories_segments", "categories_sizes")


def check_mutations(kiln, fixture, tmp, count=150):
    with open(os.path.join(fixture, "model.json")) as f:
        original = json.load(f)
    rng = np.random.default_rng(len(fixture))
    inputs = os.path.join(fixture, "input.npy")
    refused = 0
    for _ in range(count):
        model = copy.deepcopy(original)
        trees = trees_of(model)["trees"]
        for _ in range(int(rng.integers(1, 4))):
            tree = trees[int(rng.integers(len(trees)))]
            arrays = [name for name in MUTATED_ARRAYS if tree.get(name)]
            values = tree[arrays[int(rng.integers(len(arrays)))]]
            n = len(tree["left_children"])
            values[int(rng.integers(len(values)))] = int(rng.choice([-2, -1, 0, 1, n - 1, n, n + 1, 2**31 - 1, 2**40,
                                                                      int(rng.integers(n))]))
        path = os.path.join(tmp, "mutant.json")
        with open(path, "w") as f:
            json.dump(model, f)
        result = subprocess.run([kiln, "run", path, inputs, "-o", os.path.join(tmp, "mutant")],
                                capture_output=True, text=True)
        message = result.stderr.strip()
        if result.returncode not in (0, 1) or "Sanitizer" in message or "runtime error" in message:
            raise AssertionError(f"kiln exited with {result.returncode}: {message[-2000:]}")
        if result.returncode == 1:
            refused += 1
            if "\n" in message or not message:
                raise AssertionError(f"the refusal is not one line: {message!r}")
    if refused == 0:
        raise AssertionError("no mutant was refused")
    return 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kiln", required=True)
    parser.add_argument("fixtures", nargs="?", default=os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    fixtures = sorted(d for d in os.listdir(args.fixtures)
                      if os.path.exists(os.path.join(args.fixtures, d, "model.json")))
    passed = failed = 0
    for name in fixtures:
        fixture = os.path.join(args.fixtures, name)
        checks = [(f"{name}/model.{ext}", lambda tmp, ext=ext: check_predictions(
                      args.kiln, fixture, os.path.join(fixture, f"model.{ext}"), tmp)) for ext in ("json", "ubj")]
        checks.append((f"{name}/schema-2.x", lambda tmp: check_schema_2(args.kiln, fixture, tmp)))
        checks.append((f"{name}/leaves", lambda tmp: check_leaves(args.kiln, fixture, tmp)))
        if name in ("categorical", "pruned_exact", "multi_softprob"):
            checks.append((f"{name}/scrambled", lambda tmp: check_mutations(args.kiln, fixture, tmp)))
        for label, check in checks:
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    error = check(tmp)
                    passed += 1
                    if args.verbose:
                        print(f"PASS {label} (largest error {error:.3g})")
                except AssertionError as e:
                    failed += 1
                    print(f"FAIL {label}: {e}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())

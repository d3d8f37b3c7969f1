#!/usr/bin/python3
"""Trains the small XGBoost models kiln's XGBoost loader is tested against, and records XGBoost's predictions.

    /usr/bin/python3 tests/ml/xgboost/make_fixtures.py [OUTDIR]     (default: the directory of this script)

Needs Debian's python3-xgboost (1.7.4) and python3-sklearn (for its bundled datasets); everything is seeded,
so a rerun with the same packages writes the same files. Each model gets a directory with:

    model.json, model.ubj   the Booster saved in both encodings (Booster.save_model)
    input.npy               float32 [N, F] rows: dataset rows with NaN, and rows probing every split threshold
                            (exactly at it, one float32 step below and above) and, for categorical features,
                            negative, fractional, unseen and huge categories
    predict.npy             Booster.predict (what XGBoost outputs: probabilities, labels or values)
    margin.npy              Booster.predict(output_margin=True)
    leaves.npy              Booster.predict(pred_leaf=True) as int16 [N, n_trees]: the node each tree ends in

Predictions come from the model reloaded from model.json, i.e. from exactly what kiln reads.
"""
import json
import os
import sys
import zlib

import numpy as np
import xgboost as xgb
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
RNG = np.random.default_rng(20240501)


def with_nan(x, fraction):
    x = x.astype(np.float32).copy()
    x[RNG.random(x.shape) < fraction] = np.nan
    return x


def split_thresholds(model_json):
    """(feature, threshold) of every numeric split in the model."""
    model = model_json["learner"]["gradient_booster"]
    model = model["gbtree"]["model"] if model["name"] == "dart" else model["model"]
    found = set()
    for tree in model["trees"]:
        split_type = tree.get("split_type", [0] * len(tree["left_children"]))
        for i, left in enumerate(tree["left_children"]):
            if left != -1 and split_type[i] == 0:
                found.add((tree["split_indices"][i], float(np.float32(tree["split_conditions"][i]))))
    return sorted(found)


def probe_rows(base_row, thresholds, rng, limit=40):
    """Rows equal to base_row except one feature at, just below and just above a split threshold."""
    if len(thresholds) > limit:
        thresholds = [thresholds[i] for i in sorted(rng.choice(len(thresholds), limit, replace=False))]
    rows = []
    for feature, t in thresholds:
        t = np.float32(t)
        for value in (t, np.nextafter(t, np.float32(-np.inf)), np.nextafter(t, np.float32(np.inf))):
            row = base_row.copy()
            row[feature] = value
            rows.append(row)
    return np.array(rows, dtype=np.float32).reshape(-1, len(base_row))


def category_rows(base_row, feature, n_categories):
    values = [-1.0, -0.5, -0.0, 0.0, 0.5, 0.999, 1.5, n_categories - 0.5, n_categories, n_categories + 1,
              31, 32, 63, 64, 65, 1000, 1e7, np.nan] + list(range(n_categories))
    rows = []
    for v in values:
        row = base_row.copy()
        row[feature] = v
        rows.append(row)
    return np.array(rows, dtype=np.float32)


def save(name, booster, inputs, feature_types=None):
    directory = os.path.join(OUT, name)
    os.makedirs(directory, exist_ok=True)
    booster.save_model(os.path.join(directory, "model.json"))
    booster.save_model(os.path.join(directory, "model.ubj"))
    reloaded = xgb.Booster(model_file=os.path.join(directory, "model.json"))
    with open(os.path.join(directory, "model.json")) as f:
        model_json = json.load(f)
    base = np.nanmedian(np.where(np.isnan(inputs), np.nan, inputs), axis=0).astype(np.float32)
    base = np.where(np.isnan(base), 0, base).astype(np.float32)
    rng = np.random.default_rng(zlib.crc32(name.encode()))  # each model's probes apart from the others'
    rows = [inputs, probe_rows(base, split_thresholds(model_json), rng),
            np.full((1, inputs.shape[1]), np.nan, np.float32)]
    for feature, kind in enumerate(feature_types or []):
        if kind == "c":
            rows.append(category_rows(base, feature, int(np.nanmax(inputs[:, feature])) + 1))
    x = np.concatenate(rows).astype(np.float32)
    categorical = bool(feature_types and "c" in feature_types)
    d = xgb.DMatrix(x, feature_types=feature_types, enable_categorical=categorical)
    np.save(os.path.join(directory, "input.npy"), x)
    np.save(os.path.join(directory, "predict.npy"), reloaded.predict(d).astype(np.float32))
    np.save(os.path.join(directory, "margin.npy"), reloaded.predict(d, output_margin=True).astype(np.float32))
    leaves = reloaded.predict(d, pred_leaf=True).astype(np.int16).reshape(len(x), -1)
    np.save(os.path.join(directory, "leaves.npy"), leaves)
    print(f"{name}: {leaves.shape[1]} trees, {len(x)} rows, objective {model_json['learner']['objective']['name']}")


def float32_sum_order(x, y):
    """Stumps whose leaves are rewritten so that summing in float32, in tree order, from the base margin is
    visible: 1e8 + 1 rounds back to 1e8 in float32, so XGBoost's margin is 0.5 where a double sum gives 3.5 and
    a float32 sum in reverse order 0."""
    b = train({"objective": "reg:squarederror", "max_depth": 1}, x, y, 6)
    model = json.loads(b.save_raw("json"))
    model["learner"]["learner_model_param"]["base_score"] = "0"
    for tree, value in zip(model["learner"]["gradient_booster"]["model"]["trees"], [1e8, 1.0, 1.0, 1.0, -1e8, 0.5]):
        tree["split_conditions"] = [c if left != -1 else value
                                    for c, left in zip(tree["split_conditions"], tree["left_children"])]
    b = xgb.Booster()
    b.load_model(bytearray(json.dumps(model).encode()))
    return b


def train(params, x, y, rounds, feature_types=None, **dmatrix):
    categorical = bool(feature_types and "c" in feature_types)
    d = xgb.DMatrix(x, y, feature_types=feature_types, enable_categorical=categorical, **dmatrix)
    params = {"tree_method": "hist", "max_depth": 3, "eta": 0.3, "seed": 7, "nthread": 1, **params}
    return xgb.train(params, d, rounds)


def main():
    cancer = load_breast_cancer()
    x_cancer = with_nan(cancer.data, 0.15)
    y_cancer = cancer.target.astype(np.float32)
    test_cancer = x_cancer[::16]

    b = train({"objective": "binary:logistic", "base_score": 0.3}, x_cancer, y_cancer, 10)
    save("binary_logistic", b, test_cancer)
    b = train({"objective": "binary:logitraw"}, x_cancer, y_cancer, 6)
    save("binary_logitraw", b, test_cancer)
    b = train({"objective": "binary:hinge"}, x_cancer, y_cancer, 6)
    save("binary_hinge", b, test_cancer)
    b = train({"objective": "binary:logistic", "booster": "dart", "rate_drop": 0.3, "skip_drop": 0.0,
               "one_drop": 1}, x_cancer, y_cancer, 8)
    save("dart_binary", b, test_cancer)
    b = train({"objective": "binary:logistic", "num_parallel_tree": 4, "subsample": 0.7, "colsample_bynode": 0.7,
               "eta": 1.0}, x_cancer, y_cancer, 2)
    save("random_forest", b, test_cancer)
    # the exact method prunes after growing: pruned nodes stay in the arrays as deleted nodes (num_deleted)
    b = train({"objective": "binary:logistic", "tree_method": "exact", "max_depth": 4, "gamma": 2.0}, x_cancer,
              y_cancer, 5)
    save("pruned_exact", b, test_cancer)

    wine = load_wine()
    x_wine = with_nan(wine.data, 0.1)
    for objective in ("multi:softprob", "multi:softmax"):
        b = train({"objective": objective, "num_class": 3, "max_depth": 2}, x_wine, wine.target, 4)
        save(objective.replace(":", "_"), b, x_wine[::6])

    diabetes = load_diabetes()
    x_diabetes = with_nan(diabetes.data, 0.1)
    b = train({"objective": "reg:squarederror", "base_score": 150.0}, x_diabetes, diabetes.target, 10)
    save("reg_squarederror", b, x_diabetes[::10])

    x = with_nan(RNG.normal(size=(600, 6)), 0.1)
    logit = np.nan_to_num(x[:, 0]) - 0.5 * np.nan_to_num(x[:, 1]) + 0.3 * np.nan_to_num(x[:, 2]) ** 2
    share = (1 / (1 + np.exp(-logit))).astype(np.float32)
    b = train({"objective": "reg:logistic"}, x, share, 8)
    save("reg_logistic", b, x[::15])
    counts = RNG.poisson(np.exp(0.4 * np.nan_to_num(x[:, 0]) + 0.2 * np.nan_to_num(x[:, 3]) + 1.0)).astype(np.float32)
    b = train({"objective": "count:poisson", "base_score": 2.0}, x, counts, 8)
    save("count_poisson", b, x[::15])
    b = train({"objective": "reg:tweedie", "tweedie_variance_power": 1.4}, x, counts, 8)
    save("reg_tweedie", b, x[::15])
    b = train({"objective": "reg:gamma"}, x, counts + 0.5, 6)
    save("reg_gamma", b, x[::15])
    two_targets = np.stack([logit, np.nan_to_num(x[:, 4]) * 2 - np.nan_to_num(x[:, 5])], 1).astype(np.float32)
    b = train({"objective": "reg:squarederror", "max_depth": 2}, x, two_targets, 4)
    save("reg_two_targets", b, x[::15])

    save("float32_sum_order", float32_sum_order(x, logit), x[::40])

    # categorical: one feature with many categories (partition splits), one with few (one-hot splits)
    n = 1500
    many = RNG.integers(0, 40, n).astype(np.float32)
    few = RNG.integers(0, 3, n).astype(np.float32)
    numeric = RNG.normal(size=(n, 2)).astype(np.float32)
    score = (many % 3 == 0) * 1.0 + (few == 1) * 0.8 + numeric[:, 0] + (RNG.random(n) < 0.1)
    x_cat = np.column_stack([many, numeric[:, 0], few, numeric[:, 1]]).astype(np.float32)
    x_cat = with_nan(x_cat, 0.08)
    types = ["c", "q", "c", "q"]
    b = train({"objective": "binary:logistic", "max_cat_to_onehot": 4, "max_depth": 4}, x_cat,
              (score > 1.2).astype(np.float32), 8, feature_types=types)
    save("categorical", b, x_cat[::30], feature_types=types)


if __name__ == "__main__":
    main()

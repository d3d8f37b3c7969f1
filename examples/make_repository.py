#!/usr/bin/python3
"""Builds the model repository `kiln serve` serves in the README (examples/repository/):

  breast_cancer_mlp/1/model.onnx     a copy of examples/mlp/model.onnx (made by examples/make_example.py)
  breast_cancer_mlp/config.json      batching options
  breast_cancer_gbdt/1/model.json    XGBoost (python3-xgboost), 20 trees of depth 3
  breast_cancer_gbdt/2/model.json    the same with 40 trees
  breast_cancer_gbdt/config.json     both versions served, its input renamed to "features" like the MLP's
  ../request.json                    a V2 inference request for the four patients of examples/mlp/input.npy
                                     (the README's curl example)

Both are trained on the same split of scikit-learn's Wisconsin breast-cancer data as the MLP (seeded), so the
four held-out patients in examples/mlp/input.npy go to either model. XGBoost's label 1 is "benign" (sklearn's
target), so `probabilities` is [P(malignant), P(benign)] like the MLP's output.

usage: /usr/bin/python3 examples/make_repository.py
"""
import json
import os
import shutil

import numpy as np
import xgboost as xgb
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.join(HERE, "repository")

MLP_CONFIG = {
    "description": "Breast-cancer MLP (examples/make_example.py): 30 measurements -> [P(malignant), P(benign)]",
    "max_batch_size": 64,
    "max_queue_delay_us": 0,
    "max_queue_size": 1024,
}

GBDT_CONFIG = {
    "description": "Breast-cancer XGBoost model (examples/make_repository.py); versions 1 and 2 both served",
    "version_policy": {"latest": {"num_versions": 2}},
    "input_names": {"input": "features"},
    "max_batch_size": 64,
}


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")


def write_request(path):
    """The rows of examples/mlp/input.npy as a V2 JSON request, nested [4][30], float32 values written short."""
    rows = np.load(os.path.join(HERE, "mlp", "input.npy"))
    data = [[float(np.format_float_positional(v, unique=True)) for v in row] for row in rows]
    request = {"id": "readme", "inputs": [{"name": "features", "shape": list(rows.shape), "datatype": "FP32",
                                          "data": data}]}
    with open(path, "w") as f:
        f.write(json.dumps(request) + "\n")


def main():
    data = load_breast_cancer()
    x, y = data.data.astype(np.float32), data.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    mlp_dir = os.path.join(REPO, "breast_cancer_mlp", "1")
    os.makedirs(mlp_dir, exist_ok=True)
    shutil.copyfile(os.path.join(HERE, "mlp", "model.onnx"), os.path.join(mlp_dir, "model.onnx"))
    write_json(os.path.join(REPO, "breast_cancer_mlp", "config.json"), MLP_CONFIG)
    for version, trees in ((1, 20), (2, 40)):
        model = xgb.XGBClassifier(n_estimators=trees, max_depth=3, learning_rate=0.3, random_state=0)
        model.fit(x_train, y_train)
        accuracy = (model.predict(x_test) == y_test).mean()
        out = os.path.join(REPO, "breast_cancer_gbdt", str(version))
        os.makedirs(out, exist_ok=True)
        model.save_model(os.path.join(out, "model.json"))
        print("breast_cancer_gbdt version %d: %d trees, held-out accuracy %.3f" % (version, trees, accuracy))
    write_json(os.path.join(REPO, "breast_cancer_gbdt", "config.json"), GBDT_CONFIG)
    write_request(os.path.join(HERE, "request.json"))


if __name__ == "__main__":
    main()

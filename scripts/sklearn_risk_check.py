#!/usr/bin/env python3
"""Cross-check of revlake's risk model with scikit-learn.

Reads the training features revlake exported (`revlake score --train --export-features DIR`:
DIR/train.csv and DIR/test.csv, the feature columns then `label`), standardizes them with the
training part's mean and population std (a constant column gets std 1, like revlake), fits
scikit-learn's LogisticRegression with the same L2 penalty (C = 1 / l2, intercept unpenalized)
and prints JSON: the feature names, intercept and standardized coefficients, and the ROC-AUC and
log-loss on the holdout.

    python3 scripts/sklearn_risk_check.py DIR [--l2 1.0]
"""
import argparse
import csv
import json
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    data = np.array([[float(x) for x in r] for r in body], dtype=float)
    return header[:-1], data[:, :-1], data[:, -1].astype(int)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("--l2", type=float, default=1.0)
    args = parser.parse_args()
    names, x_train, y_train = read(f"{args.dir}/train.csv")
    _, x_test, y_test = read(f"{args.dir}/test.csv")
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std <= 1e-12] = 1.0
    z_train = (x_train - mean) / std
    z_test = (x_test - mean) / std
    model = LogisticRegression(C=1.0 / args.l2, tol=1e-10, max_iter=100000)
    model.fit(z_train, y_train)
    p = model.predict_proba(z_test)[:, 1]
    json.dump(
        {
            "features": names,
            "intercept": float(model.intercept_[0]),
            "coefficients": [float(c) for c in model.coef_[0]],
            "auc": float(roc_auc_score(y_test, p)),
            "log_loss": float(log_loss(y_test, p)),
            "train_rows": int(len(y_train)),
            "test_rows": int(len(y_test)),
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()

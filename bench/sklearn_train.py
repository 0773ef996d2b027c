"""The scikit-learn side of `bench/train.sh`: the same rows, split, encoding and hyperparameters
as `caretaker bench train PIPELINE.toml`, fitted with scikit-learn, timed per family.

    python bench/sklearn_train.py PIPELINE.toml [--json]

Cleaning follows Caretaker's quality stage (rows with a null in a required column, a non-finite
or out-of-range number, or a repeated id are dropped); the split is Caretaker's (anchored at the
newest event: the last `holdout_days` held out, the `window_days` before that trained on).
"""
import json
import math
import sys
import time
import tomllib
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.naive_bayes import GaussianNB
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier


def load(config_path):
    cfg = tomllib.loads(Path(config_path).read_text())
    root = Path(config_path).parent / cfg.get("root", ".")
    path = Path(cfg["dataset"]["path"])
    path = path if path.is_absolute() else root / path
    if path.is_dir():
        df = pl.read_parquet(str(path) + "/**/*.parquet", hive_partitioning=True)
    else:
        df = pl.read_parquet(path)
    return cfg, df


def clean(cfg, df):
    d, q = cfg["dataset"], cfg.get("quality", {})
    required = [d["id"], d["timestamp"], d["label"], *d.get("numeric", []), *d.get("categorical", [])]
    ok = pl.all_horizontal([pl.col(c).is_not_null() for c in required])
    for c in d.get("numeric", []):
        x = pl.col(c).cast(pl.Float64)
        ok = ok & x.is_finite()
        if c in q.get("ranges", {}):
            lo, hi = q["ranges"][c]
            ok = ok & (x >= lo) & (x <= hi)
    ok = ok & pl.col(d["id"]).is_first_distinct()
    return df.filter(ok)


def split(cfg, df):
    d, t = cfg["dataset"], cfg.get("training", {})
    ts = d["timestamp"]
    newest = df[ts].max()
    holdout_from = newest - timedelta(days=t.get("holdout_days", 7))
    window_from = newest - timedelta(days=t.get("window_days", 60))
    train = df.filter((pl.col(ts) > window_from) & (pl.col(ts) <= holdout_from))
    hold = df.filter(pl.col(ts) > holdout_from)
    return train, hold


def model(c, seed):
    fam = c["family"]
    if fam == "logistic_regression":
        return LogisticRegression(C=1.0 / c.get("alpha", 1.0), max_iter=c.get("max_iterations", 100),
                                  tol=c.get("gradient_tolerance", 1e-4))
    if fam == "decision_tree":
        return DecisionTreeClassifier(max_depth=c.get("max_depth"), min_samples_leaf=c.get("min_samples_leaf", 1),
                                      criterion=c.get("split_quality", "gini"), random_state=seed)
    if fam == "gaussian_nb":
        return GaussianNB(var_smoothing=c.get("var_smoothing", 1e-9))
    if fam == "random_forest":
        return RandomForestClassifier(n_estimators=c.get("n_trees", 100), max_depth=c.get("max_depth"),
                                      min_samples_leaf=c.get("min_samples_leaf", 1),
                                      max_features=c.get("features_per_split", "sqrt"),
                                      max_samples=c.get("max_samples"), n_jobs=2, random_state=seed)
    if fam == "gradient_boosting":
        return HistGradientBoostingClassifier(
            learning_rate=c.get("learning_rate", 0.1), max_iter=c.get("max_iterations", 100),
            max_leaf_nodes=c.get("max_leaf_nodes", 31), max_depth=c.get("max_depth"),
            min_samples_leaf=c.get("min_samples_leaf", 20), l2_regularization=c.get("l2_regularization", 0.0),
            early_stopping=c.get("early_stopping", "auto"), random_state=seed)
    raise SystemExit(f"unknown family {fam}")


def main():
    cfg, df = load(sys.argv[1])
    d, t = cfg["dataset"], cfg.get("training", {})
    df = clean(cfg, df)
    train, hold = split(cfg, df)
    num, cat = d.get("numeric", []), d.get("categorical", [])
    levels = t.get("one_hot_max_levels", 20)
    prep = ColumnTransformer([
        ("num", StandardScaler(), num),
        ("cat", OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=levels + 1, sparse_output=False), cat),
    ])
    started = time.perf_counter()
    x_train = prep.fit_transform(train.select(num + cat).to_pandas())
    x_hold = prep.transform(hold.select(num + cat).to_pandas())
    encode_seconds = time.perf_counter() - started
    y_train = train[d["label"]].cast(pl.Int8).to_numpy()
    y_hold = hold[d["label"]].cast(pl.Int8).to_numpy()
    out = {"rows": df.height, "train_rows": train.height, "holdout_rows": hold.height,
           "encode_seconds": encode_seconds, "candidates": []}
    for c in cfg["candidates"]:
        m = model(c, t.get("seed", 42))
        started = time.perf_counter()
        m.fit(x_train, y_train)
        fit_seconds = time.perf_counter() - started
        p = m.predict_proba(x_hold)[:, 1]
        out["candidates"].append({
            "name": c["name"], "family": c["family"], "fit_seconds": fit_seconds,
            "f1": f1_score(y_hold, p >= 0.5, zero_division=0),
            "roc_auc": roc_auc_score(y_hold, p) if 0 < y_hold.sum() < len(y_hold) else None,
        })
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

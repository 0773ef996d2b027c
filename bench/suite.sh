#!/usr/bin/env bash
# The training benchmark suite: bench/train.sh (every family's fit time and holdout F1 against
# scikit-learn, same split and hyperparameters) on each dataset of the suite, one after the other.
#
#   bench/suite.sh DIR      DIR holds the reference generator's files (../shared/peers/gen_data.py):
#       data_1000000.parquet   gen_data.py data --rows 1000000 --seed 1 (the nightly shape)
#       wide_100000.parquet    gen_data.py wide --rows 100000 --seed 1
#       wide_1000000.parquet   gen_data.py wide --rows 1000000 --seed 1
#   PYTHON=/path/to/venv/bin/python       a Python with the reference's requirements
#
# Like for like: both sides fit the same encoded columns (standardised numbers, one-hot levels);
# the forests draw sqrt(k) columns per split (scikit-learn's max_features="sqrt", Caretaker's
# default features_per_split) from bootstrap samples as large as the training rows
# (max_samples=None on both sides); gradient boosting has HistGradientBoostingClassifier's
# parameters and defaults on both sides (early stopping on a tenth of the rows above 10,000).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="$(realpath "$1")"
for pair in "peer.toml data_1000000.parquet" "wide.toml wide_100000.parquet" "wide.toml wide_1000000.parquet"; do
    set -- $pair
    if [ ! -f "$dir/$2" ]; then
        echo "$dir/$2 is missing: generate it with gen_data.py (see the top of this script)" >&2
        exit 2
    fi
    echo "== $2 ($1)"
    "$here/train.sh" "$here/$1" "$dir/$2"
done

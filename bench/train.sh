#!/usr/bin/env bash
# Fit time and holdout F1 per family: Caretaker against scikit-learn, on the same file, split
# and hyperparameters, measured one after the other in the same run (this machine is shared:
# compare the ratios, not the absolute times).
#
#   bench/train.sh PIPELINE.toml [DATA]     DATA replaces dataset.path (e.g. a peer file)
#   PYTHON=/path/to/venv/bin/python         a Python with polars and scikit-learn (../shared/peers)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/caretaker-target}"
python="${PYTHON:-python3}"
pipeline="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ $# -ge 2 ]; then
    data="$(realpath "$2")"
    sed "s|^path = .*|path = \"$data\"|" "$pipeline" > "$work/pipeline.toml"
    pipeline="$work/pipeline.toml"
fi
cargo build --release -q -p caretaker
"$CARGO_TARGET_DIR/release/caretaker" bench train "$pipeline" --json > "$work/caretaker.json"
"$python" "$here/sklearn_train.py" "$pipeline" > "$work/sklearn.json"
"$python" - "$work/caretaker.json" "$work/sklearn.json" <<'PY'
import json, sys
ours, ref = (json.load(open(p)) for p in sys.argv[1:3])
print(f"rows {ours['rows']}: train {ours['train_rows']} (sklearn {ref['train_rows']}), holdout {ours['holdout_rows']} (sklearn {ref['holdout_rows']})")
print(f"{'candidate':<12} {'family':<20} {'fit s':>8} {'sklearn s':>10} {'ratio':>7} {'f1':>7} {'sklearn f1':>10} {'diff':>7}")
theirs = {c['name']: c for c in ref['candidates']}
for c in ours['candidates']:
    r = theirs[c['name']]
    print(f"{c['name']:<12} {c['family']:<20} {c['fit_seconds']:>8.2f} {r['fit_seconds']:>10.2f} "
          f"{c['fit_seconds'] / r['fit_seconds']:>7.2f} {c['f1']:>7.4f} {r['f1']:>10.4f} {c['f1'] - r['f1']:>+7.4f}")
PY

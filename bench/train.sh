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
/usr/bin/time -v "$CARGO_TARGET_DIR/release/caretaker" bench train "$pipeline" --json > "$work/caretaker.json" 2> "$work/caretaker.time"
/usr/bin/time -v "$python" "$here/sklearn_train.py" "$pipeline" > "$work/sklearn.json" 2> "$work/sklearn.time"
"$python" - "$work/caretaker.json" "$work/sklearn.json" "$work/caretaker.time" "$work/sklearn.time" <<'PY'
import json, re, sys
ours, ref = (json.load(open(p)) for p in sys.argv[1:3])
peak = [int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(p).read()).group(1)) / 1024 for p in sys.argv[3:5]]
print(f"rows {ours['rows']}: train {ours['train_rows']} (sklearn {ref['train_rows']}), holdout {ours['holdout_rows']} (sklearn {ref['holdout_rows']})")
print(f"{'candidate':<12} {'family':<20} {'fit s':>8} {'sklearn s':>10} {'ratio':>7} {'f1':>7} {'sklearn f1':>10} {'diff':>7}")
theirs = {c['name']: c for c in ref['candidates']}
for c in ours['candidates']:
    r = theirs[c['name']]
    print(f"{c['name']:<12} {c['family']:<20} {c['fit_seconds']:>8.2f} {r['fit_seconds']:>10.2f} "
          f"{c['fit_seconds'] / r['fit_seconds']:>7.2f} {c['f1']:>7.4f} {r['f1']:>10.4f} {c['f1'] - r['f1']:>+7.4f}")
print(f"peak memory of the whole process: caretaker {peak[0]:.0f} MiB, scikit-learn {peak[1]:.0f} MiB ({peak[0] / peak[1]:.2f}x)")
print(f"best F1: caretaker {max(c['f1'] for c in ours['candidates']):.4f}, scikit-learn {max(c['f1'] for c in ref['candidates']):.4f}")
PY

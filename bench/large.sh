#!/usr/bin/env bash
# The whole nightly run on a dataset larger than a run holds (issue 25: 100M rows within 4 GiB):
# makes ROWS rows of the reference's `gen_data.py data` in parts (bench/large_data.py) and a
# 1M-row pattern store, once, into DIR, then runs bench/nightly.sh on them with bench/large.toml
# (training.max_rows = 10M), Caretaker alone (the reference pipeline reads the whole file into
# memory). Prints the stages' times and peak memory and the run's peak resident set.
#
#   PEERS=/path/to/peers bench/large.sh DIR [ROWS] [PIPELINE.toml]
#       PEERS: the reference pipeline's directory (gen_data.py, schema.py)
#       PYTHON: a Python with the reference's requirements
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="$1"; rows="${2:-100000000}"; pipeline="${3:-$here/large.toml}"
python="${PYTHON:-python3}"
: "${PEERS:?set PEERS to the directory of the reference pipeline (gen_data.py)}"
data="$dir/data_$rows"
parts=$(( (rows + 4999999) / 5000000 ))
"$python" "$here/large_data.py" "$PEERS" "$data" --rows "$rows" --parts "$parts"
[ -f "$dir/patterns_1000000.parquet" ] ||
    "$python" "$PEERS/gen_data.py" patterns --rows 1000000 --seed 1 --out "$dir/patterns_1000000.parquet"
du -sh "$data"
REFERENCE= PYTHON="$python" "$here/nightly.sh" "$data" "$dir/patterns_1000000.parquet" 1 "$pipeline"

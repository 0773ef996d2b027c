#!/usr/bin/env bash
# The whole nightly run, Caretaker against the reference pipeline, on the same files, one after
# the other in the same run: wall time and peak memory (maximum resident set, from
# /usr/bin/time -v) of each side and their ratios, and Caretaker's time and peak memory per stage.
#
#   bench/nightly.sh DATA.parquet PATTERNS.parquet [REPEATS] [PIPELINE.toml]
#       DATA and PATTERNS made by gen_data.py (`data`, `patterns`) of the reference pipeline;
#       PIPELINE defaults to bench/nightly.toml (its dataset and pattern store paths are replaced)
#   REFERENCE=/path/to/peer_pipeline.py   the reference pipeline (required)
#   PYTHON=/path/to/venv/bin/python       a Python with the reference's requirements
#   CARETAKER_BIN=/path/to/caretaker      a caretaker binary to measure instead of building one
#
# Each run starts from a fresh copy of the pattern store and an empty registry and state, on both
# sides, with the clock at the end of the generated data (CARETAKER_NOW; the reference's default).
# REFERENCE= (empty) runs Caretaker alone.
#
# The reference's pattern table is not a Caretaker pattern store: its rows are converted once, with
# the same ids, ages, uses and confidences, status "active", and one condition each that holds the
# row's payload text on a feature the data does not have (so the store is about as large, and
# counting uses passes over them as unmatchable, as it would patterns of retired features).
# Caretaker's pattern stage also mines rules from the training window, which the reference
# does not do.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/caretaker-target}"
python="${PYTHON:-python3}"
data="$(realpath "$1")"
patterns="$(realpath "$2")"
repeats="${3:-1}"
pipeline="${4:-$here/nightly.toml}"
reference="${REFERENCE-}"
if [ -z "${REFERENCE+set}" ]; then
    echo "set REFERENCE to the reference pipeline (peer_pipeline.py), or REFERENCE= to run Caretaker alone" >&2
    exit 2
fi
work="$(mktemp -d)"; [ -n "${KEEP_WORK:-}" ] && echo "work directory: $work" >&2
trap '[ -n "${KEEP_WORK:-}" ] || rm -rf "$work"' EXIT
if [ -z "${CARETAKER_BIN:-}" ]; then
    cargo build --release -q -p caretaker
fi
bin="${CARETAKER_BIN:-$CARGO_TARGET_DIR/release/caretaker}"
# The generated data ends on 2024-03-01 (schema.py's NOW).
export CARETAKER_NOW="${CARETAKER_NOW:-2024-03-01T00:00:00Z}"

measure() { # OUT_PREFIX COMMAND...: stdout to OUT.out, /usr/bin/time -v to OUT.time
    local out="$1"; shift
    /usr/bin/time -v "$@" > "$out.out" 2> "$out.time"
}

"$python" - "$patterns" "$work/store.parquet" <<'PY'
import sys
import polars as pl
src, out = sys.argv[1:3]
df = pl.read_parquet(src)
pl.DataFrame({
    "pattern_id": df["pattern_id"].cast(pl.String),
    "conditions": df.select(pl.concat_list(pl.struct(
        pl.lit("payload").alias("feature"), pl.lit("==").alias("op"), pl.col("payload").cast(pl.String).alias("value"))))
        .to_series(),
    "predicts": pl.Series([True] * df.height),
    "support": pl.Series([0.01] * df.height),
    "confidence": df["confidence"].cast(pl.Float64),
    "lift": pl.Series([1.0] * df.height),
    "created_at": df["created_at"].cast(pl.Datetime("us")),
    "last_seen_at": df["created_at"].cast(pl.Datetime("us")),
    "last_used_at": df["last_used_at"].cast(pl.Datetime("us")),
    "usage_count": df["usage_count"].cast(pl.UInt64),
    "status": pl.Series(["active"] * df.height),
}).write_parquet(out, compression="zstd")
PY

for r in $(seq 1 "$repeats"); do
    run="$work/caretaker_$r"
    mkdir -p "$run"
    cp "$work/store.parquet" "$run/patterns.parquet"
    sed -e "s|^path = .*|path = \"$data\"|" -e "s|^store = .*|store = \"$run/patterns.parquet\"|" \
        -e "s|^\\(models\\|reports\\|state\\) = \"\\(.*\\)\"|\\1 = \"$run/\\2\"|" "$pipeline" > "$run/pipeline.toml"
    measure "$run/run" "$bin" run "$run/pipeline.toml" --json || true
    if [ -n "$reference" ]; then
        ref="$work/reference_$r"
        mkdir -p "$ref"
        cp "$patterns" "$ref/patterns.parquet"
        measure "$ref/run" "$python" "$reference" "$data" --patterns "$ref/patterns.parquet" \
            --out "$ref/out" --models "$ref/models"
    fi
done

"$python" - "$work" "$repeats" "$reference" <<'PY'
import json, os, re, sys
work, repeats, reference = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def timed(prefix):
    text = open(prefix + ".time").read()
    wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", text).group(1)
    seconds = sum(float(p) * 60 ** i for i, p in enumerate(reversed(wall.split(":"))))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 1024
    cpu = sum(float(re.search(rf"{k} time \(seconds\): (\S+)", text).group(1)) for k in ("User", "System"))
    status = int(re.search(r"Exit status: (\d+)", text).group(1))
    return seconds, rss, cpu, status

rows = []
for r in range(1, repeats + 1):
    ours = timed(f"{work}/caretaker_{r}/run")
    report = json.load(open(f"{work}/caretaker_{r}/run.out"))
    theirs = timed(f"{work}/reference_{r}/run") if reference else None
    rows.append((ours, report, theirs))
    if ours[3] not in (0, 1):
        sys.exit(f"caretaker run exited {ours[3]}: {open(f'{work}/caretaker_{r}/run.time').read()[-2000:]}")

report = rows[-1][1]
print(f"{report.get('data', {}).get('rows', '?')} rows; caretaker stages (last run):")
for s in report.get("stages", []):
    peak = s.get("peak_rss_bytes")
    peak = f"{peak / 2**20:8.0f} MiB" if peak else ""
    print(f"  {s['stage']:<10} {s['seconds']:8.2f} s  {peak}")
for c in report.get("candidates", []):
    f1 = (c.get("metrics") or {}).get("f1")
    print(f"  candidate {c['name']:<12} {c['family']:<20} train {c['train_seconds']:7.2f} s  holdout F1 {f1 if f1 is None else round(f1, 4)}")
print(f"  gate: {report['gate']['decision']}")
print(f"{'run':>4} {'caretaker s':>12} {'MiB':>7} {'cpu s':>7} {'reference s':>12} {'MiB':>7} {'cpu s':>7} {'speed-up':>9} {'memory':>7}")
for r, (ours, _, theirs) in enumerate(rows, 1):
    if theirs:
        print(f"{r:>4} {ours[0]:>12.2f} {ours[1]:>7.0f} {ours[2]:>7.1f} {theirs[0]:>12.2f} {theirs[1]:>7.0f} {theirs[2]:>7.1f} "
              f"{theirs[0] / ours[0]:>8.2f}x {ours[1] / theirs[1]:>7.2f}")
    else:
        print(f"{r:>4} {ours[0]:>12.2f} {ours[1]:>7.0f} {ours[2]:>7.1f}")
if reference:
    print("speed-up: reference wall time / caretaker's (goal >= 5); memory: caretaker's peak / the reference's (goal <= 0.5)")
PY

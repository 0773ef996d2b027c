#!/usr/bin/env bash
# The quality stage's speed: Caretaker's stage against a bare polars streaming scan of the same
# file (goal: at most 1.5x), and against the reference pipeline's quality stage (goal: at least
# 10x faster), all measured one after the other in the same run.
#
#   bench/quality.sh DATA.parquet [REPEATS]      DATA made by ../shared/peers/gen_data.py
#   PYTHON=/path/to/venv/bin/python              a Python with the reference's requirements
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/caretaker-target}"
python="${PYTHON:-python3}"
data="$(realpath "$1")"
repeats="${2:-3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
sed "s|^path = .*|path = \"$data\"|" "$here/peer.toml" > "$work/pipeline.toml"
cargo build --release -q -p caretaker
bin="$CARGO_TARGET_DIR/release/caretaker"
"$bin" bench quality "$work/pipeline.toml" --repeats "$repeats" --json > "$work/both.json"
"$bin" bench quality "$work/pipeline.toml" --repeats 1 --only scan --json > "$work/scan.json"
"$bin" bench quality "$work/pipeline.toml" --repeats 1 --only quality --json > "$work/quality.json"
"$python" "$here/peer_quality.py" "$data" --repeats "$repeats" > "$work/peer.json"
"$python" - "$work" <<'PY'
import json, sys, os
w = sys.argv[1]
both, scan, qual, peer = (json.load(open(os.path.join(w, f))) for f in ("both.json", "scan.json", "quality.json", "peer.json"))
mib = lambda b: b / 2**20 if b else float("nan")
print(f"{both['rows']} rows, {both['bytes'] / 2**20:.1f} MiB in {both['files']} file(s)")
print(f"bare polars scan       {both['scan_median']:8.3f} s   peak {mib(scan['peak_rss_bytes']):8.0f} MiB")
print(f"caretaker quality      {both['quality_median']:8.3f} s   peak {mib(qual['peak_rss_bytes']):8.0f} MiB   "
      f"ratio to the scan {both['ratio']:.2f} (goal <= 1.5)")
if both.get("cpu_ratio") is not None:
    print(f"processor time         scan {both['scan_cpu_seconds']:.3f} s, caretaker {both['quality_cpu_seconds']:.3f} s per repeat "
          f"(all threads): ratio {both['cpu_ratio']:.2f}")
if both.get("quality_page_faults") is not None:
    print(f"of which in the kernel scan {both['scan_system_seconds']:.3f} s, caretaker {both['quality_system_seconds']:.3f} s; "
          f"page faults scan {both['scan_page_faults']:,.0f}, caretaker {both['quality_page_faults']:,.0f} per repeat")
print(f"reference quality      {peer['quality_median']:8.3f} s   peak {peer['peak_rss_mib']:8.0f} MiB   "
      f"(+ {peer['load_seconds']:.3f} s to load the file first)")
print(f"reference / caretaker  {peer['quality_median'] / both['quality_median']:8.1f}x   "
      f"with the reference's load: {(peer['quality_median'] + peer['load_seconds']) / both['quality_median']:.1f}x (goal >= 10)")
PY

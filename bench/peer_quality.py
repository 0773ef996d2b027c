"""The reference pipeline's quality stage alone, timed: `quality(df, out)` of
../shared/peers/peer_pipeline.py on the file's rows, after a timed load.

    python bench/peer_quality.py DATA.parquet [--peers DIR] [--repeats N]

Prints one JSON document: load seconds, quality seconds per repeat, peak RSS.
"""
import argparse
import json
import os
import resource
import sys
import tempfile
import time

parser = argparse.ArgumentParser()
parser.add_argument("data")
parser.add_argument("--peers", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "peers"))
parser.add_argument("--repeats", type=int, default=3)
args = parser.parse_args()
sys.path.insert(0, os.path.abspath(args.peers))

import polars as pl  # noqa: E402
import peer_pipeline  # noqa: E402

started = time.perf_counter()
df = pl.read_parquet(args.data)
load_seconds = time.perf_counter() - started
seconds = []
with tempfile.TemporaryDirectory() as out:
    for _ in range(args.repeats):
        started = time.perf_counter()
        clean, rep = peer_pipeline.quality(df, out)
        seconds.append(time.perf_counter() - started)
print(json.dumps({
    "rows": df.height,
    "load_seconds": load_seconds,
    "quality_seconds": seconds,
    "quality_median": sorted(seconds)[len(seconds) // 2],
    "quality_score": rep["quality_score"],
    "drift": rep["drift"],
    "quarantined_rows": rep["quarantined_rows"],
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}, indent=2))

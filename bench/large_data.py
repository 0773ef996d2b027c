"""Many rows of the reference pipeline's `gen_data.py data`, generated in parts so that no process
holds them all: the same columns, defects and id format as one `gen_data.py data` call of that many
rows would give (ids "ev{seed}-{i}" counting across the parts, timestamps ascending over the 60 days,
part k holding the k-th slice of them), without drift.

  python bench/large_data.py PEERS_DIR OUT_DIR --rows 100000000 --parts 20 [--seed 1]
      [--null-frac 0.005 --oor-frac 0.002 --dup-frac 0.001]

PEERS_DIR holds gen_data.py and schema.py. Parts already written (same name, complete) are kept, so
an interrupted run resumes.
"""
import argparse
import os
import sys

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("peers")
ap.add_argument("out")
ap.add_argument("--rows", type=int, required=True)
ap.add_argument("--parts", type=int, default=20)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--null-frac", type=float, default=0.005)
ap.add_argument("--oor-frac", type=float, default=0.002)
ap.add_argument("--dup-frac", type=float, default=0.001)
a = ap.parse_args()
sys.path.insert(0, os.path.abspath(a.peers))

import polars as pl  # noqa: E402
from gen_data import make_data  # noqa: E402
from schema import DATA_DAYS, DATA_START  # noqa: E402

os.makedirs(a.out, exist_ok=True)
step = -(-a.rows // a.parts)
span_us = DATA_DAYS * 86400 * 10**6
start = pl.lit(DATA_START).cast(pl.Datetime("us"))
for k in range(a.parts):
    n = min(step, a.rows - k * step)
    path = os.path.join(a.out, f"part-{k:04d}.parquet")
    if n <= 0 or os.path.exists(path):
        continue
    # Part k: its own random draws (seed), its ids and timestamps moved to its place in the whole.
    df = make_data(n, a.seed * 100_000 + k, a.null_frac, a.oor_frac, a.dup_frac, 0.0)
    local = pl.col("event_id").str.split("-").list.get(1).cast(pl.Int64)
    offset_us = (pl.col("ts") - start).dt.total_microseconds()
    df = df.with_columns(
        pl.format("ev{}-{}", pl.lit(a.seed), local + k * step).alias("event_id"),
        (start + pl.duration(microseconds=(offset_us // a.parts) + k * (span_us // a.parts))).alias("ts"),
    )
    tmp = path + ".tmp"
    df.write_parquet(tmp, compression="zstd")
    os.replace(tmp, path)
    print(f"{path}: {n} rows", flush=True)

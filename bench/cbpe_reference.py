"""NannyML's CBPE on the rows of Caretaker's estimate test
(`crates/caretaker-evaluate/src/estimate.rs`, `nannyml_reference_values_are_reproduced`), to check
that `caretaker_evaluate::estimate` computes what NannyML computes.

    pip install nannyml && python bench/cbpe_reference.py

Analysis rows (integer arithmetic only, so that Rust makes the same ones), i in 0..2000:
    p = (((i * 7919) % 1000) + 0.5) / 1000, squared
with threshold 0.5 (NannyML's y_pred). The reference rows, whose labels NannyML needs to decide
whether to recalibrate, are 50,000 rows whose labels are drawn from their probabilities (calibrated
by construction; NannyML is told to keep them). Prints NannyML's estimates and its sampling-error bands (three standard
errors, its default; Caretaker's band is a percentile band of label draws, so the bands differ).
"""
import numpy as np
import pandas as pd
import nannyml as nml

rng = np.random.default_rng(7)
ref_p = rng.random(50_000) ** 2
reference = pd.DataFrame({
    "p": ref_p,
    "pred": (ref_p >= 0.5).astype(int),
    "y": (rng.random(ref_p.size) < ref_p).astype(int),
})
i = np.arange(2000)
p = ((((i * 7919) % 1000) + 0.5) / 1000) ** 2
analysis = pd.DataFrame({"p": p, "pred": (p >= 0.5).astype(int)})

metrics = ["roc_auc", "f1", "precision", "recall", "accuracy"]
cbpe = nml.CBPE(
    y_pred_proba="p",
    y_pred="pred",
    y_true="y",
    metrics=metrics,
    chunk_size=2000,
    problem_type="classification_binary",
)
cbpe.fit(reference)
# NannyML recalibrates when an isotonic fit on the reference lowers its calibration error, which a
# fit on 50,000 noisy labels nearly always does; the probabilities are calibrated by construction,
# so keep them as they are, as Caretaker does (its calibration is the candidate's own).
print("NannyML would recalibrate:", bool(cbpe.needs_calibration), "- kept as they are")
cbpe.needs_calibration = False
result = cbpe.estimate(analysis).filter(period="analysis").to_df()
for m in metrics:
    value = float(result[(m, "value")].iloc[0])
    low = float(result[(m, "lower_confidence_boundary")].iloc[0])
    high = float(result[(m, "upper_confidence_boundary")].iloc[0])
    print(f"{m}: {value!r}  band [{low:.4f}, {high:.4f}]")

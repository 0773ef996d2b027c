"""Reference values for Caretaker's calibration tests
(`crates/caretaker-evaluate/src/calibration.rs`, `reference_*` tests), computed with numpy and
scikit-learn on rows both sides generate with integer arithmetic alone:

    row i of n = 600:  p = ((i * 7919) % 1000 + 0.5) / 1000
                       label = ((i * 2654435761) % 2**32) / 2**32 < p * p

so the model says p where the true rate is p²: overconfident, with a known error.

    python bench/calibration_reference.py

Prints the expected calibration error (ten equal-width bins, row-weighted |observed - predicted|),
scikit-learn's IsotonicRegression(out_of_bounds="clip") and Platt scaling of the log-odds
(sklearn.calibration._sigmoid_calibration, what CalibratedClassifierCV(method="sigmoid") fits) at
probe points, as Rust literals to paste into the tests.
"""
import numpy as np
from sklearn.calibration import _sigmoid_calibration
from sklearn.isotonic import IsotonicRegression

N = 600
PROBES = [0.0, 0.05, 0.2, 0.37, 0.5, 0.63, 0.81, 0.99, 1.0]

i = np.arange(N, dtype=np.int64)
p = ((i * 7919) % 1000 + 0.5) / 1000
y = (((i * 2654435761) % 2**32) / 2**32 < p * p).astype(float)


def ece(labels, probabilities, bins=10):
    which = np.minimum((np.clip(probabilities, 0, 1) * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        rows = which == b
        if rows.any():
            total += rows.sum() * abs(labels[rows].mean() - probabilities[rows].mean())
    return total / len(labels)


iso = IsotonicRegression(out_of_bounds="clip").fit(p, y)
eps = 1e-12
clipped = np.clip(p, eps, 1 - eps)
logit = np.log(clipped / (1 - clipped))
a, b = _sigmoid_calibration(logit, y)


def sigmoid(q):
    q = np.clip(np.asarray(q, dtype=float), eps, 1 - eps)
    return 1 / (1 + np.exp(a * np.log(q / (1 - q)) + b))


print(f"positives: {int(y.sum())} of {N}")
print(f"ece before: {ece(y, p)!r}")
print(f"ece after isotonic (in-sample): {ece(y, iso.predict(p))!r}")
print(f"ece after sigmoid (in-sample): {ece(y, sigmoid(p))!r}")
print("probes:", PROBES)
print("isotonic:", [float(v) for v in iso.predict(PROBES)])
print(f"sigmoid a, b: {a!r}, {b!r}")
print("sigmoid:", [float(v) for v in sigmoid(PROBES)])

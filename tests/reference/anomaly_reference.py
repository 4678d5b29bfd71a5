"""Golden values for the anomaly scoring: the dynamic threshold of Hundman et al. 2018 ("Detecting Spacecraft
Anomalies Using LSTMs and Nonparametric Dynamic Thresholding", KDD 2018, section 3.2), written from the paper's
equations with numpy, and numpy's quantile.

For a window of smoothed errors e_s, each candidate epsilon = mean(e_s) + z * std(e_s), z in 2, 2.5, ..., 10, scores
    (delta_mean / mean(e_s) + delta_std / std(e_s)) / (|e_a| + |E_seq|^2)
with e_a the errors above epsilon, E_seq their runs of consecutive indices, and delta_mean / delta_std the drop in
mean / standard deviation (population) when e_a is removed. The arg-max is the threshold. Pruning: the maxima of the
runs in decreasing order, then the largest error not above epsilon; runs are kept up to the last position i where
(m_i - m_{i+1}) / m_i >= p (p = 0.13).
"""
import json
import numpy as np


def runs_above(e, eps):
    above = e > eps
    runs, start = [], None
    for i, a in enumerate(above):
        if a and start is None:
            start = i
        if not a and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(e)))
    return runs


def dynamic_threshold(e, p=0.13):
    mean, std = e.mean(), e.std()
    best, chosen = -np.inf, mean + 10 * std
    for z in np.arange(2.0, 10.0 + 1e-9, 0.5):
        eps = mean + z * std
        above = e[e > eps]
        if above.size == 0:
            continue
        below = e[e < eps]
        n_runs = len(runs_above(e, eps))
        score = ((mean - below.mean()) / mean + (std - below.std()) / std) / (above.size + n_runs ** 2)
        if score > best:
            best, chosen = score, eps
    runs = runs_above(e, chosen)
    if not runs:
        return chosen, []
    maxima = sorted(((e[s:t].max(), (s, t)) for s, t in runs), key=lambda m: -m[0])
    normal = e[e <= chosen]
    values = [m for m, _ in maxima] + [normal.max() if normal.size else 0.0]
    keep = 0
    for i in range(len(maxima)):
        if (values[i] - values[i + 1]) / values[i] >= p:
            keep = i + 1
    kept = sorted(r for _, r in maxima[:keep])
    return chosen, kept


rng = np.random.default_rng(7)
cases = []
for case in range(6):
    n = 300
    e = np.abs(rng.normal(1.0, 0.3, n)) + 0.05 * np.sin(np.arange(n) / 7)
    if case >= 1:
        e[120:135] += 3.0 + case          # a strong anomaly
    if case >= 2:
        e[200:203] += 1.2                 # a weak one (pruned or kept depending on the case)
    if case >= 3:
        e[40:42] += 6.0                   # a short, very strong one
    if case == 5:
        e[250:252] += 0.9
    smoothed = np.empty(n)
    for i in range(n):
        smoothed[i] = e[i] if i == 0 else smoothed[i - 1] + 0.2 * (e[i] - smoothed[i - 1])
    eps, kept = dynamic_threshold(smoothed)
    cases.append({"scores": smoothed.tolist(), "threshold": float(eps), "anomalies": [list(r) for r in kept]})

values = rng.normal(2.0, 1.0, 101)
quantiles = {str(q): float(np.quantile(values, q)) for q in (0.5, 0.9, 0.99, 0.999)}
with open("golden/anomaly/dynamic_threshold.json", "w") as f:
    json.dump({"cases": cases, "quantile_values": values.tolist(), "quantiles": quantiles}, f)
print("wrote golden/anomaly/dynamic_threshold.json:", [(round(c["threshold"], 3), c["anomalies"]) for c in cases])

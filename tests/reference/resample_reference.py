"""Golden vectors for streaming rational resampling (Signal.Features.Filters.PolyphaseResampler).

Run with Debian's interpreter:  command -p python3 tests/reference/resample_reference.py
Writes tests/reference/golden/features/resample.json: for each (input rate, output rate), a two-channel float32 input
and scipy.signal.resample_poly's float64 output (default window ('kaiser', 5.0), zero padding), plus the filter taps
resample_poly designs (firwin(2*10*max(up, down) + 1, 1/max(up, down), window=('kaiser', 5.0)) * up).
"""

import json
import math
import os

import numpy as np
import scipy.signal

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "features")


def signal(n, rate, seed):
    t = np.arange(n) / rate
    rng = np.random.default_rng(seed)
    a = 0.8 * np.sin(2 * np.pi * 440.0 * t) + 0.3 * np.sin(2 * np.pi * 0.3 * rate * t + 0.3) + 0.05 * rng.standard_normal(n) + 0.1
    b = scipy.signal.chirp(t, 20.0, t[-1], 0.45 * rate) * 0.5 + 0.02 * rng.standard_normal(n)
    return np.stack([a, b], axis=1).astype(np.float32)


def case(rate_in, rate_out, n, seed):
    g = math.gcd(rate_in, rate_out)
    up, down = rate_out // g, rate_in // g
    x = signal(n, rate_in, seed)
    y = scipy.signal.resample_poly(x.astype(np.float64), up, down, axis=0)
    max_rate = max(up, down)
    half_len = 10 * max_rate
    taps = scipy.signal.firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * up
    return {
        "input_rate": rate_in, "output_rate": rate_out, "up": up, "down": down,
        "input": x.astype(np.float64).ravel().tolist(), "output": y.ravel().tolist(), "taps": taps.tolist(),
    }


def main():
    cases = [case(48000, 12000, 4000, 1), case(25600, 12000, 3000, 2), case(8000, 12000, 1500, 3), case(44100, 48000, 2000, 4)]
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "resample.json"), "w") as fh:
        json.dump({"channels": 2, "cases": cases}, fh, separators=(",", ":"))
    print("wrote", os.path.join(OUT, "resample.json"))


if __name__ == "__main__":
    main()

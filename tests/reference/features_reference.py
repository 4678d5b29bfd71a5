"""Golden vectors for Signal.Features, computed with numpy/scipy.

Run with Debian's interpreter (the first python3 on PATH may lack numpy/scipy):

    command -p python3 tests/reference/features_reference.py

Writes tests/reference/golden/features/*.json. The files are committed; the C#
tests read them and never need Python. librosa is not installed here, so its
mel and MFCC formulas are written out below from its documented definitions
(librosa.filters.mel, librosa.feature.mfcc, librosa.feature.spectral_*).
Inputs are drawn as float32 and stored exactly; expected values are float64.
"""

import json
import os

import numpy as np
import scipy.fft
import scipy.signal
import scipy.stats

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "features")
RNG = np.random.default_rng(20261121)


def f32(values):
    return np.asarray(values, dtype=np.float32)


def dump(name, payload):
    os.makedirs(OUT, exist_ok=True)

    def conv(v):
        if isinstance(v, np.ndarray):
            return v.astype(np.float64).tolist()
        if isinstance(v, (np.floating, np.integer)):
            return v.item()
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v

    with open(os.path.join(OUT, name + ".json"), "w") as fh:
        json.dump(conv(payload), fh, separators=(",", ":"))


def test_signal(n, rate, seed_offset=0):
    """Two tones, a chirp and noise: broadband enough to exercise every bin."""
    t = np.arange(n) / rate
    rng = np.random.default_rng(1000 + seed_offset)
    x = (0.8 * np.sin(2 * np.pi * 440.0 * t)
         + 0.3 * np.sin(2 * np.pi * 1870.0 * t + 0.3)
         + 0.2 * scipy.signal.chirp(t, 50.0, t[-1] if n > 1 else 1.0, rate / 3)
         + 0.05 * rng.standard_normal(n)
         + 0.1)
    return f32(x)


# ---------------------------------------------------------------- FFT
def gen_fft():
    cases = []
    for n in [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]:
        x = f32(RNG.standard_normal(n))
        spec = np.fft.rfft(x.astype(np.float64))
        cases.append({"n": n, "input": x, "real": spec.real, "imag": spec.imag})
    dump("fft", {"cases": cases})


# ---------------------------------------------------------------- windows
def gen_windows():
    cases = []
    for kind in ["boxcar", "hann", "hamming", "blackman"]:
        for n in [1, 2, 16, 17, 1024]:
            for symmetric in [False, True]:
                w = scipy.signal.get_window(kind, n, fftbins=not symmetric)
                cases.append({"kind": {"boxcar": "rectangular"}.get(kind, kind),
                              "n": n, "symmetric": symmetric, "values": w})
    dump("windows", {"cases": cases})


# ---------------------------------------------------------------- mel (librosa.filters.mel written out)
def hz_to_mel(f, htk):
    f = np.asanyarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-30) / min_log_hz) / logstep, mels)


def mel_to_hz(m, htk):
    m = np.asanyarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), freqs)


def mel_filters(sr, n_fft, n_mels, fmin, fmax, htk, norm):
    fftfreqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, 1 + n_fft // 2))
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    if norm == "slaney":
        enorm = 2.0 / (mel_f[2: n_mels + 2] - mel_f[:n_mels])
        weights *= enorm[:, np.newaxis]
    return weights


def gen_mel():
    cases = []
    for sr, n_fft, n_mels, fmin, fmax, htk, norm in [
        (12000, 1024, 40, 0.0, 6000.0, False, "slaney"),
        (16000, 512, 26, 20.0, 4000.0, True, "none"),
        (22050, 2048, 128, 0.0, 11025.0, False, "slaney"),
        (8000, 256, 20, 100.0, 3500.0, True, "slaney"),
        (12000, 1024, 40, 0.0, 6000.0, False, "none"),
    ]:
        cases.append({"rate": sr, "n": n_fft, "bands": n_mels, "fmin": fmin, "fmax": fmax,
                      "scale": "htk" if htk else "slaney", "norm": norm,
                      "weights": mel_filters(sr, n_fft, n_mels, fmin, fmax, htk, norm)})
    dump("mel", {"cases": cases})


# ---------------------------------------------------------------- per-frame features
def frames_of(x, frame, hop):
    count = 0 if len(x) < frame else 1 + (len(x) - frame) // hop
    return np.stack([x[i * hop: i * hop + frame] for i in range(count)]) if count else np.zeros((0, frame))


def time_stats(fr):
    fr = fr.astype(np.float64)
    mean = fr.mean()
    rms = np.sqrt(np.mean(fr ** 2))
    std = fr.std()
    ptp = fr.max() - fr.min()
    crest = np.max(np.abs(fr)) / rms if rms > 0 else 0.0
    skew = scipy.stats.skew(fr) if std > 0 else 0.0
    kurt = scipy.stats.kurtosis(fr) if std > 0 else 0.0
    signs = fr >= 0  # librosa's zero_pos=True: zero counts as positive
    zcr = np.count_nonzero(signs[1:] != signs[:-1]) / (len(fr) - 1) if len(fr) > 1 else 0.0
    return {"mean": mean, "rms": rms, "std": std, "peak_to_peak": ptp, "crest_factor": crest,
            "skewness": skew, "kurtosis": kurt, "zcr": zcr}


def spectral_stats(power, prev_power, sr, n_fft, rolloff_pct, band_edges):
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    total = power.sum()
    if total > 0:
        centroid = np.sum(freqs * power) / total
        bandwidth = np.sqrt(np.sum(power * (freqs - centroid) ** 2) / total)
        cumulative = np.cumsum(power)
        rolloff = freqs[np.nonzero(cumulative >= rolloff_pct * total)[0][0]]
        p = power / total
        nz = p[p > 0]
        entropy = -np.sum(nz * np.log(nz)) / np.log(len(power))
    else:
        centroid = bandwidth = rolloff = 0.0
        entropy = 0.0
    floored = np.maximum(power, 1e-10)
    flatness = np.exp(np.mean(np.log(floored))) / np.mean(floored)
    flux = 0.0 if prev_power is None else np.sqrt(np.sum((power - prev_power) ** 2))
    peak = int(np.argmax(power))
    energies = []
    for lo, hi in zip(band_edges[:-1], band_edges[1:]):
        mask = (freqs >= lo) & (freqs < hi)
        energies.append(power[mask].sum())
    return {"spectral_centroid": centroid, "spectral_bandwidth": bandwidth, "spectral_rolloff": rolloff,
            "spectral_flatness": flatness, "spectral_entropy": entropy, "spectral_flux": flux,
            "peak_frequency": freqs[peak], "peak_magnitude": np.sqrt(power[peak]),
            "dominant_band": float(np.argmax(energies)), "band_energy": np.asarray(energies)}


def lifter(mfcc, L):
    if L <= 0:
        return mfcc
    n = np.arange(mfcc.shape[-1])
    return mfcc * (1 + (L / 2.0) * np.sin(np.pi * (n + 1) / L))


def gen_frames():
    sr, n_fft, hop, n_mels, n_mfcc = 12000, 1024, 384, 40, 13
    x = test_signal(12000, sr)
    # a silent stretch: features of an all-zero frame must stay finite
    x[6000:7300] = 0.0
    window = scipy.signal.get_window("hann", n_fft, fftbins=True)
    fr = frames_of(x.astype(np.float64), n_fft, hop)
    mel_w = mel_filters(sr, n_fft, n_mels, 0.0, sr / 2, False, "slaney")
    edges = [0.0, 500.0, 1000.0, 2000.0, 4000.0, 6000.0]
    rows = []
    prev = None
    mfccs = []
    for f in fr:
        spec = np.fft.rfft(f * window)
        power = spec.real ** 2 + spec.imag ** 2
        row = time_stats(f)
        row.update(spectral_stats(power, prev, sr, n_fft, 0.85, edges))
        mel = mel_w @ power
        log_mel = 10.0 * np.log10(np.maximum(mel, 1e-10))
        mfcc = scipy.fft.dct(log_mel, type=2, norm="ortho")[:n_mfcc]
        row["mel"] = mel
        row["log_power"] = 10.0 * np.log10(np.maximum(power, 1e-10))
        row["mfcc"] = mfcc
        row["mfcc_lifter22"] = lifter(mfcc, 22)
        mfccs.append(mfcc)
        prev = power
        rows.append(row)
    mfccs = np.asarray(mfccs)
    # Regression deltas (HTK / savgol polyorder 1) with edge replication, width 2*2+1.
    deltas = scipy.signal.savgol_filter(mfccs, 5, 1, deriv=1, axis=0, mode="nearest")
    dump("frames", {"rate": sr, "frame": n_fft, "hop": hop, "mel_bands": n_mels, "mfcc": n_mfcc,
                    "band_edges": edges, "rolloff": 0.85, "signal": x, "rows": rows,
                    "mfcc_delta_n2": deltas})


# ---------------------------------------------------------------- filters
def rbj(kind, f0, q, fs):
    """Audio EQ Cookbook (R. Bristow-Johnson) biquads, normalised to a0 = 1."""
    w0 = 2 * np.pi * f0 / fs
    alpha = np.sin(w0) / (2 * q)
    c = np.cos(w0)
    if kind == "lowpass":
        b = [(1 - c) / 2, 1 - c, (1 - c) / 2]
    elif kind == "highpass":
        b = [(1 + c) / 2, -(1 + c), (1 + c) / 2]
    elif kind == "bandpass":
        b = [alpha, 0.0, -alpha]
    elif kind == "notch":
        b = [1.0, -2 * c, 1.0]
    else:
        raise ValueError(kind)
    a = [1 + alpha, -2 * c, 1 - alpha]
    return np.asarray(b) / a[0], np.asarray(a) / a[0]


def gen_filters():
    fs = 1000.0
    x = test_signal(3000, fs, seed_offset=7)
    cases = []
    for btype, order, cutoff in [("lowpass", 4, 100.0), ("highpass", 3, 50.0), ("lowpass", 1, 200.0),
                                 ("highpass", 8, 20.0), ("lowpass", 5, 333.0)]:
        sos = scipy.signal.butter(order, cutoff, btype, fs=fs, output="sos")
        cases.append({"design": "butterworth", "mode": btype, "order": order, "frequency": cutoff, "q": 0.0,
                      "output": scipy.signal.sosfilt(sos, x.astype(np.float64))})
    for kind, f0, q in [("lowpass", 120.0, 0.7071067811865476), ("highpass", 30.0, 2.0),
                        ("bandpass", 250.0, 5.0), ("notch", 60.0, 30.0)]:
        b, a = rbj(kind, f0, q, fs)
        cases.append({"design": "biquad", "mode": kind, "order": 2, "frequency": f0, "q": q,
                      "output": scipy.signal.lfilter(b, a, x.astype(np.float64))})
    # IIR designs beyond the Butterworth low/high-pass: scipy's own design (output='sos') and sosfilt.
    for design, btype, order, wn, rp, rs in [
            ("butterworth", "bandpass", 4, [50.0, 150.0], None, None),
            ("butterworth", "bandstop", 3, [100.0, 200.0], None, None),
            ("butterworth", "bandpass", 8, [5.0, 10.0], None, None),  # low normalised band: where a polynomial route fails
            ("chebyshev1", "lowpass", 4, 100.0, 1.0, None),
            ("chebyshev1", "highpass", 5, 200.0, 0.5, None),
            ("chebyshev1", "bandpass", 3, [100.0, 300.0], 1.0, None),
            ("elliptic", "lowpass", 4, 100.0, 1.0, 40.0),
            ("elliptic", "bandstop", 4, [200.0, 300.0], 0.5, 60.0),
            ("elliptic", "highpass", 3, 50.0, 1.0, 50.0),
            ("bessel", "lowpass", 4, 100.0, None, None),
            ("bessel", "highpass", 3, 50.0, None, None),
            ("bessel", "bandpass", 2, [100.0, 200.0], None, None),
            ("chebyshev2", "lowpass", 4, 150.0, None, 40.0),
            ("chebyshev2", "highpass", 3, 40.0, None, 30.0),
            ("chebyshev2", "bandstop", 2, [120.0, 180.0], None, 50.0)]:
        if design == "butterworth":
            sos = scipy.signal.butter(order, wn, btype, fs=fs, output="sos")
        elif design == "chebyshev1":
            sos = scipy.signal.cheby1(order, rp, wn, btype, fs=fs, output="sos")
        elif design == "elliptic":
            sos = scipy.signal.ellip(order, rp, rs, wn, btype, fs=fs, output="sos")
        elif design == "chebyshev2":
            sos = scipy.signal.cheby2(order, rs, wn, btype, fs=fs, output="sos")
        else:
            sos = scipy.signal.bessel(order, wn, btype, fs=fs, output="sos")
        case = {"design": design, "mode": btype, "order": order, "q": 0.0,
                "output": scipy.signal.sosfilt(sos, x.astype(np.float64))}
        if isinstance(wn, list):
            case["frequencies"] = wn
            case["frequency"] = 0.0
        else:
            case["frequency"] = wn
        if rp is not None:
            case["rp"] = rp
        if rs is not None:
            case["rs"] = rs
        cases.append(case)
    # FIR filters by the window method: scipy's firwin and lfilter(h, 1, x).
    for btype, taps, wn, window in [("lowpass", 51, 100.0, "hamming"), ("highpass", 31, 50.0, "hann"),
                                    ("bandpass", 63, [100.0, 200.0], "blackman"), ("bandstop", 41, [200.0, 300.0], "hamming")]:
        h = scipy.signal.firwin(taps, wn, window=window, pass_zero=btype in ("lowpass", "bandstop"), fs=fs)
        case = {"design": "fir", "mode": btype, "order": 1, "q": 0.0, "taps": taps, "window": window,
                "output": scipy.signal.lfilter(h, [1.0], x.astype(np.float64))}
        if isinstance(wn, list):
            case["frequencies"] = wn
            case["frequency"] = 0.0
        else:
            case["frequency"] = wn
        cases.append(case)
    dump("filters", {"rate": fs, "signal": x, "cases": cases})


def envelope_power(frame, n, fs, band):
    """Envelope spectrum as Signal computes it, with scipy.signal.hilbert as the analytic signal."""
    spectrum = np.fft.rfft(frame.astype(np.float64), n)
    bin_hz = fs / n
    first = int(np.ceil(band[0] / bin_hz))
    end = min(n // 2, int(np.floor(band[1] / bin_hz))) + 1
    mask = np.zeros(n // 2 + 1)
    mask[first:end] = 1
    banded = np.fft.irfft(spectrum * mask, n)
    envelope = np.abs(scipy.signal.hilbert(banded))
    envelope = envelope - envelope.mean()
    return np.abs(np.fft.rfft(envelope)) ** 2, np.arange(n // 2 + 1) * bin_hz


def gen_envelope():
    """An outer-race fault: impacts at BPFO ring a 3.2 kHz resonance, plus a shaft tone and noise."""
    fs, n_frame, fft_n = 12000.0, 4000, 4096
    balls, d, pitch, shaft = 9, 7.94, 39.04, 29.95   # CWRU's drive-end SKF 6205
    ratio = d / pitch
    faults = [balls / 2 * shaft * (1 - ratio), balls / 2 * shaft * (1 + ratio),
              pitch / (2 * d) * shaft * (1 - ratio ** 2), shaft / 2 * (1 - ratio)]
    rng = np.random.default_rng(77)
    t = np.arange(2 * n_frame) / fs
    x = 0.3 * np.sin(2 * np.pi * shaft * t) + 0.05 * rng.standard_normal(t.size)
    for onset in np.arange(0.001, t[-1], 1 / faults[0]):
        k = t >= onset
        x[k] += np.exp(-(t[k] - onset) * 800) * np.sin(2 * np.pi * 3200 * (t[k] - onset))
    x = x.astype(np.float32).astype(np.float64)  # what the C# test reads
    edges = [0, 50, 100, 150, 200, 300, 500, 1000]
    width = 0.05
    rows = []
    for start in range(0, x.size - n_frame + 1, n_frame // 2):
        frame = x[start:start + n_frame]
        p1, f = envelope_power(frame, fft_n, fs, [2000.0, 4500.0])
        bands = [p1[(f >= lo) & (f < hi)].sum() for lo, hi in zip(edges[:-1], edges[1:])]
        p2, _ = envelope_power(frame, fft_n, fs, [0.0, fs / 2])
        fault = [p2[(f >= c * (1 - width)) & (f < c * (1 + width))].sum() for c in faults]
        rows.append(bands + fault)
    dump("envelope", {"rate": fs, "frameLength": n_frame, "hop": n_frame // 2, "signal": x.astype(np.float32),
                      "edges": edges, "width": width, "faults": faults,
                      "bearing": {"balls": balls, "ballDiameter": d, "pitchDiameter": pitch, "contactAngle": 0.0, "shaftHz": shaft},
                      "rows": np.array(rows)})


if __name__ == "__main__":
    gen_fft()
    gen_windows()
    gen_mel()
    gen_frames()
    gen_filters()
    gen_envelope()
    print("golden files written to", OUT)

"""Small recordings written by numpy itself, for the .npy/.npz/CSV reader tests of Signal.Engine.

    command -p python3 tests/reference/recordings_reference.py
"""

import json
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "recordings")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(5)

multi = rng.standard_normal((50, 3))
np.save(os.path.join(OUT, "c_f4_2d.npy"), multi.astype("<f4"))
np.save(os.path.join(OUT, "fortran_f8_2d.npy"), np.asfortranarray(multi))
np.save(os.path.join(OUT, "i2_1d.npy"), (multi[:, 0] * 1000).astype("<i2"))
np.save(os.path.join(OUT, "big_endian_f8_1d.npy"), multi[:, 1].astype(">f8"))
np.savez(os.path.join(OUT, "cwru_like.npz"), DE=multi[:, :1], FE=multi[:, 1:2])
np.savetxt(os.path.join(OUT, "with_header.csv"), multi, delimiter=",", header="x,y,z", comments="", fmt="%.17g")
with open(os.path.join(OUT, "expected.json"), "w") as fh:
    json.dump({"multi": multi.tolist(), "i2": (multi[:, 0] * 1000).astype("<i2").tolist()}, fh)
print("recordings written to", OUT)

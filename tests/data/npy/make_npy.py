"""Regenerates the reference .npy files used by tests/test_io.cpp.

Run from this directory:  python3 make_npy.py
The committed files were written by numpy 2.4.6 (Python 3.11). Other numpy
versions may pad the header differently; the C++ test compares against the
committed files, not against a fresh run.
"""
import numpy as np

# Written with np.save (format 1.0): test_io.cpp checks the values and that
# trm::io::serialize_npy reproduces these files byte for byte.
arrays = {
    "f32_2x3": np.array([[0.0, 1.5, -2.25], [3.0e-8, 1.0e30, -0.0]], dtype="<f4"),
    "f64_vec": np.array([1.0 / 3.0, -2.5, 1.0e300], dtype="<f8"),
    "f16_vec": np.array([1.0, -2.5, 65504.0, 2.0**-24], dtype="<f2"),
    "i64_vec": np.array([-3, 0, 7, 2**40], dtype="<i8"),
    "i32_3x1x2": (np.arange(6, dtype="<i4") - 3).reshape(3, 1, 2),
    "i16_vec": np.array([-32768, 32767], dtype="<i2"),
    "i8_vec": np.array([-128, 127, 0], dtype="i1"),
    "u8_scalar": np.array(200, dtype="u1"),
    "bool_2x2": np.array([[True, False], [False, True]]),
    "f32_empty_0x3": np.zeros((0, 3), dtype="<f4"),
}
for name, array in arrays.items():
    np.save(f"{name}.npy", array)

# Other format versions (same array shapes numpy would write as 1.0).
with open("i16_v2.npy", "wb") as f:
    np.lib.format.write_array(f, np.array([[1, -2], [3, -4]], dtype="<i2"), version=(2, 0))
with open("f64_v3.npy", "wb") as f:
    np.lib.format.write_array(f, np.array([0.5, -0.25], dtype="<f8"), version=(3, 0))

# Files the loader must reject with a clear error.
np.save("f32_fortran.npy", np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)))
np.save("f32_bigendian.npy", np.arange(3, dtype=">f4"))

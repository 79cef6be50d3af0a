"""Writes numpy_random.json: numpy legacy-RNG (RandomState / MT19937) reference draws.

Usage: python make_numpy_random.py [out.json]   (needs numpy only)

All "calls" come, in order, from one stream seeded with np.random.seed(42), the global
RandomState the TRM ARC builder uses. "fresh_state" is a separate RandomState(42).
"""
import json
import sys

import numpy as np


def main(out_path):
    calls = []
    np.random.seed(42)
    for n in [1, 2, 3, 7, 8, 9, 10, 17, 30, 31]:
        calls.append({"call": "randint", "args": [0, n], "result": int(np.random.randint(0, n))})
    for _ in range(3):
        perm = np.random.permutation(np.arange(1, 10, dtype=np.uint8))
        calls.append({"call": "permutation9", "result": [int(x) for x in perm]})
    items = list(range(10))
    np.random.shuffle(items)
    calls.append({"call": "shuffle10", "result": items})
    for _ in range(20):
        calls.append({"call": "randint", "args": [0, 8], "result": int(np.random.randint(0, 8))})
    calls.append({"call": "randint", "args": [0, 2**31 - 1], "result": int(np.random.randint(0, 2**31 - 1))})
    calls.append({"call": "randint", "args": [0, 2**33], "result": int(np.random.randint(0, 2**33))})

    rs = np.random.RandomState(42)
    fresh = {
        "seed": 42,
        "key_first5": [int(x) for x in rs.get_state()[1][:5]],
        "randint_0_2pow32_uint32_x5": [int(rs.randint(0, 2**32, dtype=np.uint32)) for _ in range(5)],
    }

    doc = {"numpy_version": np.__version__, "seed": 42, "calls": calls, "fresh_state": fresh}
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "numpy_random.json")

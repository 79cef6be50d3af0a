#!/usr/bin/env python3
"""Convert a PyTorch TRM/HRM checkpoint (a torch.save'd state dict, e.g.
checkpoints/<project>/<run>/step_<N> from the reference trainers) to safetensors for trm.

    python3 tools/convert_checkpoint.py step_65104 sudoku_mlp.safetensors [--keep-prefix]

Every tensor is written as float32 (the reference stores fp32 master weights; bf16/fp16 buffers
such as H_init/L_init are widened exactly). By default the prefixes torch.compile and the loss head
add (`_orig_mod.`, `model.inner.`) are stripped so the names are the model's own state-dict names
(trm::load_model accepts both forms). Non-persistent buffers never appear in a state dict.
The output is written to a temporary file next to the destination and renamed into place, so an
interrupted run never leaves a half-written file. Needs torch (not needed by trm itself).
"""
import argparse
import json
import os
import struct
import sys
import tempfile

PREFIXES = ("_orig_mod.model.inner.", "model.inner.", "_orig_mod.")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("output")
    ap.add_argument("--keep-prefix", action="store_true", help="keep the stored names unchanged")
    args = ap.parse_args()

    import torch  # imported late so --help works without torch

    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        print(f"{args.checkpoint}: expected a state dict (name -> tensor), found {type(state).__name__}", file=sys.stderr)
        return 1
    tensors = {}
    for name, value in state.items():
        if not torch.is_tensor(value):
            print(f"{args.checkpoint}: entry '{name}' is a {type(value).__name__}, not a tensor", file=sys.stderr)
            return 1
        out = name
        if not args.keep_prefix:
            for p in PREFIXES:
                if out.startswith(p):
                    out = out[len(p):]
                    break
        if out in tensors:
            print(f"{args.checkpoint}: '{name}' and another entry both map to '{out}'", file=sys.stderr)
            return 1
        tensors[out] = value.detach().to(torch.float32).contiguous().numpy()

    header, offset = {}, 0
    for name in sorted(tensors):
        a = tensors[name]
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    header["__metadata__"] = {"format": "pt", "source": os.path.basename(args.checkpoint)}
    hbytes = json.dumps(header, separators=(",", ":")).encode()
    hbytes += b" " * (-len(hbytes) % 8)

    directory = os.path.dirname(os.path.abspath(args.output))
    fd, tmp = tempfile.mkstemp(prefix=".convert_", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(hbytes)))
            f.write(hbytes)
            for name in sorted(tensors):
                f.write(tensors[name].astype("<f4", copy=False).tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, args.output)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"wrote {len(tensors)} tensors to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The PyTorch reference on a GPU, timed on the shapes of benchmarks/bench_cuda.cu, as the official
code trains: fp32 master weights cast to bf16 where they are used (CastedLinear / CastedEmbedding,
forward_dtype = bfloat16), bf16 activations, RMSNorm computed in fp32, attention through
torch.nn.functional.scaled_dot_product_attention (flash attention on Hopper), the stablemax loss in
float64, AdamATan2 and the sparse sign-SGD of the puzzle rows, the EMA; with and without
torch.compile of the supervision step's forward. The model functions are tools/trm_reference.py's
(checked against the official code on the CPU in fp32); this script only moves them to the device
and the dtype. A manual tool (torch with CUDA needed), run by tools/gpu_check.sh.

Cases (the names of bench_cuda's benchmarks, without the backend):
  train/mlp/B   one training call, Sudoku TRM-MLP (hidden 512, T=3, n=6, 97 positions)
  train/att/B   one training call, TRM-Att at 916 positions (30x30, 8 heads, RoPE, T=3, n=4)
  infer/mlp/B, infer/att/B   16 supervision steps forward, no gradient

Each case runs in its own process (a fresh CUDA context and compile cache); prints one JSON line per
case: seconds per call (median), sample_steps_per_s, the torch version, whether compiled.

Usage:
  python3 tools/bench_reference_gpu.py --cases train/mlp/768,train/att/64 [--compile both|on|off]
  python3 tools/bench_reference_gpu.py --worker train/mlp/256 --iters 5 --compiled 0 [--device cpu --dtype fp32]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_case(case: str):
    what, model, batch = case.split("/")
    if what not in ("train", "infer") or model not in ("mlp", "att"):
        raise SystemExit(f"unknown case {case}")
    return what, model, int(batch)


def make_config(ref, model: str, b: int):
    common = dict(hidden_size=512, num_heads=8, expansion=4.0, L_layers=2, H_cycles=3, halt_max_steps=16,
                  halt_exploration_prob=0.1, puzzle_emb_ndim=512, puzzle_emb_len=16, num_puzzle_identifiers=1,
                  batch_size=b, lr=1e-4, lr_min_ratio=1.0, lr_warmup_steps=0, total_steps=1 << 30,
                  weight_decay=1.0, puzzle_emb_lr=1e-4, puzzle_emb_weight_decay=1.0, ema_rate=0.999)
    if model == "mlp":
        return ref.Config(**common, L_cycles=6, vocab_size=11, seq_len=81, mlp_t=True, pos_encodings="none")
    return ref.Config(**common, L_cycles=4, vocab_size=12, seq_len=900, mlp_t=False, pos_encodings="rope")


def worker(case: str, iters: int, compiled: bool, device: str, dtype_name: str) -> dict:
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, HERE)
    import trm_reference as ref

    dev = torch.device(device)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype_name]
    what, model, b = parse_case(case)
    cfg = make_config(ref, model, b)

    # --- the reference's functions on the device, in the forward dtype ------------------------
    rope_cache = {}

    def rope_tables(c):
        if "t" not in rope_cache:
            hd = c.head_dim
            inv = 1.0 / (c.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float32, device=dev) / hd))
            ang = torch.outer(torch.arange(c.total_len, dtype=torch.float32, device=dev), inv)
            ang = torch.cat([ang, ang], dim=-1)
            rope_cache["t"] = (ang.cos().to(dtype), ang.sin().to(dtype))
        return rope_cache["t"]

    def rms_norm(h, eps):  # the official RMSNorm: in fp32, back to the input dtype
        x = h.float()
        return (x * torch.rsqrt(x.square().mean(dim=-1, keepdim=True) + eps)).to(h.dtype)

    sdpa = getattr(F, "scaled_dot_product_attention", None)

    def self_attention(x, w_qkv, w_o, c, rope):
        B, S, _ = x.shape
        H, hd = c.num_heads, c.head_dim
        qkv = (x @ w_qkv.t()).view(B, S, 3 * H, hd)
        q, k, v = qkv[:, :, :H], qkv[:, :, H:2 * H], qkv[:, :, 2 * H:]
        if rope is not None:
            q, k = ref.apply_rope(q, *rope), ref.apply_rope(k, *rope)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        if sdpa is not None:
            o = sdpa(q, k, v)
        else:  # torch < 2.0 (a CPU check of this script)
            o = torch.softmax((q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd)), dim=-1) @ v
        return o.transpose(1, 2).reshape(B, S, H * hd) @ w_o.t()

    ref.rope_tables = rope_tables
    ref.rms_norm = rms_norm
    ref.self_attention = self_attention

    _, weights = ref.init_weights(cfg, 0)
    w = {k: v.to(dev) for k, v in weights.items()}
    names = ref.trainable_names(w)
    S, D = cfg.total_len, cfg.hidden_size
    g = torch.Generator().manual_seed(1)
    batch = dict(inputs=torch.randint(1, cfg.vocab_size, (b, cfg.seq_len), generator=g, dtype=torch.int32).to(dev),
                 labels=torch.randint(1, cfg.vocab_size, (b, cfg.seq_len), generator=g, dtype=torch.int32).to(dev),
                 puzzle_identifiers=torch.zeros(b, dtype=torch.int32, device=dev))

    def step_forward(wc, y, z, inputs, rows):
        return ref.inner_forward(wc, cfg, y, z, inputs, rows)

    fwd = torch.compile(step_forward) if compiled else step_forward

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    times = []
    if what == "train":
        for k in names:
            w[k].requires_grad_(True)
        m = {k: torch.zeros_like(w[k]) for k in names}
        v = {k: torch.zeros_like(w[k]) for k in names}
        ema = {k: w[k].detach().clone() for k in names}
        state = dict(y=torch.zeros(b, S, D, dtype=dtype, device=dev), z=torch.zeros(b, S, D, dtype=dtype, device=dev),
                     steps=torch.zeros(b, dtype=torch.int32, device=dev), halted=torch.ones(b, dtype=torch.bool, device=dev),
                     t=0)
        gen = torch.Generator(device=dev).manual_seed(12345)

        def call():
            state["t"] += 1
            h = state["halted"]
            wc = {k: t.to(dtype) for k, t in w.items()}  # CastedLinear: the fp32 master weights, cast at use
            y = torch.where(h.view(-1, 1, 1), wc["H_init"], state["y"])
            z = torch.where(h.view(-1, 1, 1), wc["L_init"], state["z"])
            steps = torch.where(h, torch.zeros_like(state["steps"]), state["steps"])
            ids = batch["puzzle_identifiers"]
            rows = w["puzzle_emb.weights"][ids.long()].clone().requires_grad_(True)
            y, z, logits, q_halt, q_cont = fwd(wc, y, z, batch["inputs"], rows.to(dtype))
            with torch.no_grad():
                steps = steps + 1
                halted = (steps >= cfg.halt_max_steps) | (q_halt.float() > 0)
                explore = torch.rand(q_halt.shape, generator=gen, device=dev) < cfg.halt_exploration_prob
                min_steps = explore * torch.randint(2, cfg.halt_max_steps + 1, steps.shape, generator=gen, device=dev)
                halted = halted & (steps >= min_steps)
            lm_loss, q_halt_loss, total, _ = ref.losses_and_metrics(logits, q_halt.float(), batch["labels"], halted, steps)
            grads = torch.autograd.grad((1.0 / b) * total, [w[k] for k in names] + [rows])
            lr = cfg.lr
            with torch.no_grad():
                # sign-SGD of the batch's puzzle rows (ids summed), as ref.puzzle_sign_sgd, on the device
                uniq, inv = torch.unique(ids.long(), return_inverse=True)
                gsum = torch.zeros(uniq.shape[0], D, dtype=torch.float32, device=dev).index_add_(0, inv, grads[-1].float())
                table = w["puzzle_emb.weights"]
                table[uniq] = table[uniq] * (1.0 - cfg.puzzle_emb_lr * cfg.puzzle_emb_weight_decay) - cfg.puzzle_emb_lr * torch.sign(gsum)
                for k, gk in zip(names, grads[:-1]):
                    ref.adam_atan2_step(w[k].data, gk.float(), m[k], v[k], state["t"], lr, cfg)
                for k in names:
                    ema[k].mul_(cfg.ema_rate).add_(w[k].detach(), alpha=1.0 - cfg.ema_rate)
            state.update(y=y.detach(), z=z.detach(), steps=steps, halted=halted)

        call()  # warm-up (and compilation)
        call()
        sync()
        for _ in range(iters):
            t0 = time.perf_counter()
            call()
            sync()
            times.append(time.perf_counter() - t0)
        samples = b
    else:
        steps_n = cfg.halt_max_steps

        def evaluate(steps):
            with torch.no_grad():
                wc = {k: t.to(dtype) for k, t in w.items()}
                rows = wc["puzzle_emb.weights"][batch["puzzle_identifiers"].long()]
                y = wc["H_init"].expand(b, S, D).clone()
                z = wc["L_init"].expand(b, S, D).clone()
                for _ in range(steps):
                    y, z, logits, q_halt, q_cont = fwd(wc, y, z, batch["inputs"], rows)
                    logits.argmax(-1)
                return logits

        evaluate(2)  # warm-up (and compilation)
        sync()
        for _ in range(iters):
            t0 = time.perf_counter()
            evaluate(steps_n)
            sync()
            times.append(time.perf_counter() - t0)
        samples = b * steps_n
    sec = statistics.median(times)
    out = dict(case=case, seconds=sec, all_seconds=times, sample_steps_per_s=samples / sec, compiled=compiled,
               dtype=dtype_name, device=device, torch=torch.__version__)
    if dev.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(0)
        out["peak_mem_gb"] = torch.cuda.max_memory_allocated() / 1e9
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="train/mlp/768,train/att/64,infer/mlp/768,infer/att/64")
    ap.add_argument("--compile", default="both", choices=["both", "on", "off"])
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--timeout", type=float, default=240, help="seconds per case process")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--compiled", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.iters, bool(args.compiled), args.device, args.dtype)), flush=True)
        return 0
    modes = {"both": [0, 1], "on": [1], "off": [0]}[args.compile]
    status = 0
    for case in args.cases.split(","):
        parse_case(case)
        for compiled in modes:
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", case, "--iters", str(args.iters), "--compiled",
                   str(compiled), "--device", args.device, "--dtype", args.dtype]
            try:
                out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=args.timeout)
                print(out.stdout.strip().splitlines()[-1], flush=True)
            except subprocess.TimeoutExpired:
                print(json.dumps(dict(case=case, compiled=bool(compiled), error=f"timeout after {args.timeout} s")), flush=True)
                status = 1
            except subprocess.CalledProcessError as e:
                tail = (e.stderr or "").strip().splitlines()[-3:]
                print(json.dumps(dict(case=case, compiled=bool(compiled), error=" | ".join(tail))), flush=True)
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())

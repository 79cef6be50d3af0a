#!/usr/bin/env python3
"""Times the PyTorch reference (tools/trm_reference.py: its model, its training call) on the
shapes of benchmarks/bench_trm.cpp, interleaved with that benchmark binary, and prints our speed
as a ratio to PyTorch's. A manual tool (torch needed); CI does not run it.

Cases (same names as bench_trm's benchmarks):
  train/mlp/{1,16,64}   one training call, Sudoku TRM-MLP (hidden 512, 2 layers, T=3, n=6)
  infer/mlp/{1,16,64}   16 supervision steps forward (no gradient) + heads after each step
  train/att/{1,8}       one training call, TRM-Att at 916 positions (30x30 grid, 8 heads, RoPE,
                        T=3, n=4, vocab 12)
  infer/att/{1,8}       16-step inference of TRM-Att 916
infer/mlp/64 and infer/att/8 take minutes each (both sides) and are left out unless --long.

For each round and each case: our binary runs the case (its own process), then PyTorch runs it
(its own process), so both see the same machine state; the report gives medians over rounds.
PyTorch's environment is tuned for a small CPU machine: 2 threads (torch.set_num_threads,
OMP/MKL_NUM_THREADS), OMP_WAIT_POLICY=PASSIVE (idle OpenMP threads sleep instead of spinning
against the BLAS threads), MALLOC_TRIM_THRESHOLD_ and MALLOC_TOP_PAD_ raised (glibc keeps freed
memory instead of returning it to the kernel and faulting it in again every call).
Peak memory: ours is bench_trm's peak_MB (live heap high-water mark) and rss_MB; PyTorch's is the
worker process's ru_maxrss, and the same minus the RSS before the model was built ("delta").

Usage:
  python3 tools/bench_reference.py --bench /tmp/build-trmbench/benchmarks/bench_trm
  python3 tools/bench_reference.py --bench ... --cases train/mlp/1,train/mlp/16 --rounds 3
  python3 tools/bench_reference.py --bench ... --long --json results.json
  python3 tools/bench_reference.py --worker train/mlp/16 --iters 2     # PyTorch side only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

DEFAULT_CASES = ["train/mlp/1", "train/mlp/16", "train/mlp/64", "infer/mlp/1", "infer/mlp/16",
                 "train/att/1", "train/att/8", "infer/att/1"]
LONG_CASES = ["infer/mlp/64", "infer/att/8"]
# Timed calls per case and side (after one untimed warm-up call); bench_trm uses the same counts.
ITERS = {"train/mlp/1": 10, "train/mlp/16": 3, "train/mlp/64": 1, "infer/mlp/1": 2, "infer/mlp/16": 1,
         "infer/mlp/64": 1, "train/att/1": 2, "train/att/8": 1, "infer/att/1": 1, "infer/att/8": 1}

TORCH_ENV = {
    "OMP_NUM_THREADS": "2",
    "MKL_NUM_THREADS": "2",
    "OMP_WAIT_POLICY": "PASSIVE",
    "MALLOC_TRIM_THRESHOLD_": str(16 << 30),
    "MALLOC_TOP_PAD_": str(1 << 30),
}


def parse_case(case: str):
    what, model, batch = case.split("/")
    if what not in ("train", "infer") or model not in ("mlp", "att"):
        raise SystemExit(f"unknown case {case}")
    return what, model, int(batch)


# --------------------------------------------------------------------------------------------
# PyTorch side (runs in a worker process)
# --------------------------------------------------------------------------------------------

def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return float(line.split()[1]) * 1024.0 / 1e6
    return 0.0


def worker(case: str, iters: int) -> dict:
    import resource

    import torch
    sys.path.insert(0, HERE)
    import trm_reference as ref

    torch.set_num_threads(2)
    what, model, b = parse_case(case)
    common = dict(hidden_size=512, num_heads=8, expansion=4.0, L_layers=2, H_cycles=3, halt_max_steps=16,
                  halt_exploration_prob=0.1, puzzle_emb_ndim=512, puzzle_emb_len=16, num_puzzle_identifiers=1,
                  batch_size=b, lr=1e-4, lr_min_ratio=1.0, lr_warmup_steps=0, total_steps=1 << 30,
                  weight_decay=1.0, puzzle_emb_lr=1e-4, puzzle_emb_weight_decay=1.0, ema_rate=0.999)
    if model == "mlp":
        cfg = ref.Config(**common, L_cycles=6, vocab_size=11, seq_len=81, mlp_t=True, pos_encodings="none")
    else:
        cfg = ref.Config(**common, L_cycles=4, vocab_size=12, seq_len=900, mlp_t=False, pos_encodings="rope")
    rss0 = rss_mb()
    _, weights = ref.init_weights(cfg, 0)
    g = torch.Generator().manual_seed(1)
    batch = dict(inputs=torch.randint(1, cfg.vocab_size, (b, cfg.seq_len), generator=g, dtype=torch.int32),
                 labels=torch.randint(1, cfg.vocab_size, (b, cfg.seq_len), generator=g, dtype=torch.int32),
                 puzzle_identifiers=torch.zeros(b, dtype=torch.int32))
    times = []
    if what == "train":
        tr = ref.Trainer(cfg, weights)
        tr.call(batch)  # warm-up (allocator, first-touch)
        for _ in range(iters):
            t0 = time.perf_counter()
            tr.call(batch)
            times.append(time.perf_counter() - t0)
    else:
        w = weights
        S, D = cfg.total_len, cfg.hidden_size

        def evaluate(steps: int):
            with torch.no_grad():
                rows = w["puzzle_emb.weights"][batch["puzzle_identifiers"].long()]
                y = w["H_init"].expand(b, S, D).clone()
                z = w["L_init"].expand(b, S, D).clone()
                for _ in range(steps):
                    y, z, logits, q_halt, q_cont = ref.inner_forward(w, cfg, y, z, batch["inputs"], rows)
                return logits

        evaluate(1)  # warm-up: one supervision step
        for _ in range(iters):
            t0 = time.perf_counter()
            evaluate(cfg.halt_max_steps)
            times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0 / 1e6  # KiB -> MB (10^6 bytes)
    return dict(case=case, seconds=statistics.median(times), all_seconds=times, peak_rss_mb=peak,
                peak_rss_delta_mb=peak - rss0, torch=torch.__version__, threads=torch.get_num_threads())


def run_torch(case: str, iters: int) -> dict:
    env = dict(os.environ)
    env.update(TORCH_ENV)
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", case, "--iters", str(iters)],
                         env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# Our side
# --------------------------------------------------------------------------------------------

def run_ours(binary: str, case: str) -> dict:
    what, model, b = parse_case(case)
    env = dict(os.environ)
    # OpenBLAS 0.3.21 falls back to generic SSE kernels on CPUs it does not know (docs/PERFORMANCE.md).
    env.setdefault("OPENBLAS_CORETYPE", "SkylakeX")
    if case in LONG_CASES:
        env["TRM_BENCH_LONG"] = "1"
    name = f"{what}/{model}/batch:{b}"
    out = subprocess.run([binary, f"--benchmark_filter=^{name}/", "--benchmark_format=json"], env=env, check=True,
                         capture_output=True, text=True)
    data = json.loads(out.stdout)
    runs = [r for r in data["benchmarks"] if r["name"].startswith(name + "/")]
    if not runs:
        raise SystemExit(f"bench_trm ran no benchmark named {name}")
    r = runs[0]
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[r["time_unit"]]
    return dict(case=case, seconds=r["real_time"] * scale, pct_of_sgemm=r.get("pct_of_sgemm"),
                gflops=r.get("FLOP/s", 0) * 1e-9, sgemm_gflops=r.get("sgemm_GFLOP/s"), peak_mb=r.get("peak_MB"),
                rss_mb=r.get("rss_MB"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", help="path to the bench_trm binary")
    ap.add_argument("--cases", default=None, help="comma-separated cases (default: all but the long ones)")
    ap.add_argument("--long", action="store_true", help="also infer/mlp/64 and infer/att/8")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds (medians are reported)")
    ap.add_argument("--torch-only", action="store_true", help="skip our binary")
    ap.add_argument("--json", default=None, help="write every measurement to this file")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--iters", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args.worker, args.iters)))
        return 0
    if not args.bench and not args.torch_only:
        ap.error("--bench is required (or --torch-only)")
    cases = args.cases.split(",") if args.cases else DEFAULT_CASES + (LONG_CASES if args.long else [])
    for c in cases:
        parse_case(c)
    results = {c: {"ours": [], "torch": []} for c in cases}
    for rnd in range(args.rounds):
        for c in cases:
            if not args.torch_only:
                o = run_ours(args.bench, c)
                results[c]["ours"].append(o)
                print(f"[round {rnd + 1}] ours  {c:14s} {o['seconds']:9.3f} s  {o['pct_of_sgemm']:5.1f}% of sgemm  "
                      f"peak {o['peak_mb']:7.0f} MB", flush=True)
            t = run_torch(c, ITERS.get(c, 1))
            results[c]["torch"].append(t)
            print(f"[round {rnd + 1}] torch {c:14s} {t['seconds']:9.3f} s  peak RSS {t['peak_rss_mb']:7.0f} MB "
                  f"(+{t['peak_rss_delta_mb']:.0f})", flush=True)

    print()
    print(f"medians over {args.rounds} round(s); speedup = PyTorch time / our time")
    print(f"{'case':14s} {'ours s':>9s} {'torch s':>9s} {'speedup':>8s} {'%sgemm':>7s} {'ours peak MB':>13s} "
          f"{'torch RSS MB':>13s}")
    for c in cases:
        t = statistics.median(r["seconds"] for r in results[c]["torch"])
        tr = statistics.median(r["peak_rss_mb"] for r in results[c]["torch"])
        if results[c]["ours"]:
            o = statistics.median(r["seconds"] for r in results[c]["ours"])
            p = statistics.median(r["pct_of_sgemm"] for r in results[c]["ours"])
            m = statistics.median(r["peak_mb"] for r in results[c]["ours"])
            print(f"{c:14s} {o:9.3f} {t:9.3f} {t / o:7.2f}x {p:6.1f}% {m:13.0f} {tr:13.0f}")
        else:
            print(f"{c:14s} {'':9s} {t:9.3f} {'':8s} {'':7s} {'':13s} {tr:13.0f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Self-contained PyTorch reference of the Tiny Recursive Model (TRM) training computation.

Written for the C++ port in this repository (see /work/shared/SPEC.md or the project's spec):
it reimplements, from the formulas, everything one training call of the reference code does,

  * the model: token + puzzle-prefix embedding (scaled by sqrt(D)), post-norm blocks
    (attention with RoPE, or the sequence-mixing "mlp_t" SwiGLU), the channel SwiGLU,
    RMSNorm without scale, the T x (n + 1) recursion with gradient only through the last
    cycle, lm_head / q_head;
  * the ACT wrapper and its batched carry (halted rows restart from H_init / L_init and take
    the incoming row of the new batch, other rows keep their data);
  * the losses: stablemax cross entropy in float64 (ignore label -100, per-sequence mean,
    summed over the batch), BCE on q_halt against "sequence exactly correct";
    total = lm_loss + 0.5 * q_halt_loss, back-propagated as total / batch_size;
  * the optimisers: AdamATan2 (as the `adam-atan2` 0.0.3 CUDA kernel computes it, see
    `adam_atan2_step`), the sign-SGD of the sparse puzzle embedding, the warmup + cosine
    learning-rate schedule, and the EMA of the trainable parameters;

and writes deterministic fixtures (safetensors, sorted keys, no time in the metadata) that
the C++ tests compare against.  Everything is fp32 except the stablemax loss (float64).

Usage
-----
  python3 tools/trm_reference.py --out tests/data --seed 0            # writes all three fixtures
  python3 tools/trm_reference.py --out tests/data --variant mlp       # only one of them (mlp|att|hrm)
  python3 tools/trm_reference.py --out /tmp/x --spread-threads 2      # also measure the
        # thread-count spread: recompute with 2 threads and print max differences
  python3 tools/trm_reference.py --out /tmp/x \\
        --check-official /tmp/trm_official --check-adam-atan2 /tmp/adam_atan2_official
        # run the official model code (SamsungSAILMontreal/TinyRecursiveModels checkout,
        # imported at run time, never copied) on the same weights and inputs and print the
        # max differences per tensor family; optionally also the official AdamATan2 python
        # wrapper (imoneoi/adam-atan2 checkout, tag 0.0.3) driven by the package's own
        # pure-PyTorch reference math instead of its CUDA kernel.

  python3 tools/trm_reference.py --out /tmp/x --variant hrm \
        --check-official-hrm /tmp/hrm_official --check-official /tmp/trm_official
        # the HRM variant (H_level + L_level, one-step gradient, Q-learning halting with the
        # extra forward, SPEC §5) against the official sapientinc/HRM model (flash-attn is
        # replaced by an explicit-softmax stub module; the checkout is not modified) and the
        # TRM repo's models/recursive_reasoning/hrm.py

Generation always runs with torch.set_num_threads(1) unless --threads says otherwise; the
same seed gives a byte-identical file.

Tensor naming inside a fixture: see tests/data/README.md.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import hashlib
import json
import math
import os
import struct
import sys
import types
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

IGNORE_LABEL = -100
FORMAT_TAG = "trm-reference-fixture-v1"


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------

@dataclasses.dataclass
class Config:
    arch: str = "trm"          # "trm" (one net, L_level) or "hrm" (H_level + L_level, SPEC §5)
    H_layers: int = 0          # HRM only: layers of H_level
    hidden_size: int = 64
    num_heads: int = 2
    expansion: float = 4.0
    L_layers: int = 2
    H_cycles: int = 2          # T
    L_cycles: int = 3          # n
    halt_max_steps: int = 4    # N_sup
    halt_exploration_prob: float = 0.0
    puzzle_emb_ndim: int = 64
    puzzle_emb_len: int = 16
    num_puzzle_identifiers: int = 3
    vocab_size: int = 11
    seq_len: int = 81
    batch_size: int = 4
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    pos_encodings: str = "rope"  # "rope" or "none"
    mlp_t: bool = False
    no_ACT_continue: bool = True
    # optimisation
    lr: float = 1e-3
    lr_min_ratio: float = 0.1
    lr_warmup_steps: int = 5
    total_steps: int = 20
    beta1: float = 0.9
    beta2: float = 0.95
    weight_decay: float = 0.1
    puzzle_emb_lr: float = 1e-2
    puzzle_emb_weight_decay: float = 0.1
    ema_rate: float = 0.999
    # AdamATan2 flavour: False = package adam-atan2 0.0.3 (lr/bc1 outside atan2, used by the
    # reference); True = bias correction of m inside atan2 (adam-atan2 0.0.2 / SPEC 4.1 text)
    adam_bc1_inside_atan2: bool = False
    # fixture content
    num_traj_calls: int = 20
    q_head_weight_std: float = 0.01
    puzzle_emb_init_std: float = 0.1

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def prefix_len(self) -> int:
        if self.puzzle_emb_len != 0:
            return self.puzzle_emb_len
        return -(-self.puzzle_emb_ndim // self.hidden_size)

    @property
    def total_len(self) -> int:
        return self.seq_len + self.prefix_len


def swiglu_inter(width: int, expansion: float) -> int:
    """Intermediate width of a SwiGLU: round(e * w * 2/3) rounded up to a multiple of 256
    (Python's round, i.e. half-to-even, as the reference)."""
    r = round(expansion * width * 2 / 3)
    return ((r + 255) // 256) * 256


VARIANTS = {
    "mlp": ("trm_mlp_h64.safetensors", dict(mlp_t=True, pos_encodings="none")),
    "att": ("trm_att_h64.safetensors", dict(mlp_t=False, pos_encodings="rope", num_heads=2)),
    # HRM (sapientinc/HRM hrm_act_v1): 2 + 2 layers, H_cycles 2, L_cycles 2, one prefix position,
    # attention + RoPE, Q-learning halting with the extra forward (no_ACT_continue = False).
    "hrm": ("hrm_att_h64.safetensors", dict(arch="hrm", mlp_t=False, pos_encodings="rope", num_heads=2,
                                            H_layers=2, L_layers=2, H_cycles=2, L_cycles=2, puzzle_emb_len=1,
                                            no_ACT_continue=False)),
}


def net_levels(cfg: Config) -> List[Tuple[str, int]]:
    """The reasoning nets in construction order: TRM one `L_level`; HRM `H_level` then `L_level`."""
    if cfg.arch == "hrm":
        return [("H_level", cfg.H_layers), ("L_level", cfg.L_layers)]
    return [("L_level", cfg.L_layers)]


# --------------------------------------------------------------------------------------
# Initialisation (JAX-style truncated normal whose *actual* std is `std`)
# --------------------------------------------------------------------------------------

def trunc_normal_(t: torch.Tensor, std: float, gen: torch.Generator,
                  lo: float = -2.0, hi: float = 2.0) -> torch.Tensor:
    """Standard normal truncated to [lo, hi], rescaled so that its std equals `std`.
    Sampled by the inverse CDF: u ~ U[erf(lo/sqrt2), erf(hi/sqrt2)], x = sqrt2 * erfinv(u)."""
    with torch.no_grad():
        if std == 0:
            return t.zero_()
        r2 = math.sqrt(2.0)
        a, b = math.erf(lo / r2), math.erf(hi / r2)
        z = (b - a) / 2
        phi = lambda x: math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        var = 1 - (hi * phi(lo) - lo * phi(hi)) / z - ((phi(lo) - phi(hi)) / z) ** 2
        comp = std / math.sqrt(var)
        t.uniform_(a, b, generator=gen)
        t.erfinv_()
        t.mul_(r2 * comp)
        t.clamp_(lo * comp, hi * comp)
    return t


def layer_param_shapes(cfg: Config) -> List[Tuple[str, Tuple[int, int]]]:
    """Per-layer weight names and shapes, in construction order."""
    D = cfg.hidden_size
    out = []
    if cfg.mlp_t:
        it = swiglu_inter(cfg.total_len, cfg.expansion)
        out += [("mlp_t.gate_up_proj.weight", (2 * it, cfg.total_len)),
                ("mlp_t.down_proj.weight", (cfg.total_len, it))]
    else:
        out += [("self_attn.qkv_proj.weight", (3 * cfg.num_heads * cfg.head_dim, D)),
                ("self_attn.o_proj.weight", (D, cfg.num_heads * cfg.head_dim))]
    ic = swiglu_inter(D, cfg.expansion)
    out += [("mlp.gate_up_proj.weight", (2 * ic, D)),
            ("mlp.down_proj.weight", (D, ic))]
    return out


def init_weights(cfg: Config, seed: int):
    """Returns (base, weights): `base` is the reference's own initialisation for this seed
    (same draw order as the reference constructor: embed_tokens, lm_head, q_head weight
    [drawn, then zeroed], per layer (mlp_t | attention) then mlp, H_init, L_init); `weights`
    additionally replaces q_head.weight by trunc-normal(std 0.01) and the (zero) puzzle table
    by trunc-normal(std 0.1) rows, both drawn next from the same generator."""
    if cfg.pos_encodings not in ("rope", "none"):
        raise NotImplementedError("only pos_encodings rope / none are implemented")
    g = torch.Generator().manual_seed(seed)
    D, V = cfg.hidden_size, cfg.vocab_size
    w: Dict[str, torch.Tensor] = {}
    w["embed_tokens.embedding_weight"] = trunc_normal_(torch.empty(V, D), 1.0 / math.sqrt(D), g)
    w["lm_head.weight"] = trunc_normal_(torch.empty(V, D), 1.0 / math.sqrt(D), g)
    w["q_head.weight"] = trunc_normal_(torch.empty(2, D), 1.0 / math.sqrt(D), g)
    w["q_head.bias"] = torch.zeros(2)
    w["puzzle_emb.weights"] = torch.zeros(cfg.num_puzzle_identifiers, cfg.puzzle_emb_ndim)
    for level, layers in net_levels(cfg):
        for i in range(layers):
            for name, shape in layer_param_shapes(cfg):
                w[f"{level}.layers.{i}.{name}"] = trunc_normal_(torch.empty(*shape), 1.0 / math.sqrt(shape[1]), g)
    w["H_init"] = trunc_normal_(torch.empty(D), 1.0, g)
    w["L_init"] = trunc_normal_(torch.empty(D), 1.0, g)
    w["q_head.weight"].zero_()
    w["q_head.bias"].fill_(-5.0)
    base = {k: v.clone() for k, v in w.items()}
    trunc_normal_(w["q_head.weight"], cfg.q_head_weight_std, g)
    trunc_normal_(w["puzzle_emb.weights"], cfg.puzzle_emb_init_std, g)
    return base, w


BUFFER_NAMES = ("puzzle_emb.weights", "H_init", "L_init")


def trainable_names(w: Dict[str, torch.Tensor]) -> List[str]:
    return [k for k in w if k not in BUFFER_NAMES]


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------

def rms_norm(h: torch.Tensor, eps: float) -> torch.Tensor:
    return h * torch.rsqrt(h.square().mean(dim=-1, keepdim=True) + eps)


def swiglu(x: torch.Tensor, w_gate_up: torch.Tensor, w_down: torch.Tensor) -> torch.Tensor:
    inter = w_down.shape[1]
    gu = x @ w_gate_up.t()
    return (F.silu(gu[..., :inter]) * gu[..., inter:]) @ w_down.t()


def rope_tables(cfg: Config):
    hd = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    ang = torch.outer(torch.arange(cfg.total_len, dtype=torch.float32), inv_freq)
    ang = torch.cat([ang, ang], dim=-1)                       # [S, hd], rotate-half layout
    return ang.cos(), ang.sin()


def apply_rope(t: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # t: [B, S, H, hd]
    h = t.shape[-1] // 2
    rot = torch.cat([-t[..., h:], t[..., :h]], dim=-1)
    return t * cos[:, None, :] + rot * sin[:, None, :]


def self_attention(x, w_qkv, w_o, cfg: Config, rope) -> torch.Tensor:
    B, S, _ = x.shape
    H, hd = cfg.num_heads, cfg.head_dim
    qkv = (x @ w_qkv.t()).view(B, S, 3 * H, hd)     # all q heads, then k heads, then v heads
    q, k, v = qkv[:, :, :H], qkv[:, :, H:2 * H], qkv[:, :, 2 * H:]
    if rope is not None:
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, S, hd]
    att = torch.softmax((q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd)), dim=-1)  # no mask
    o = (att @ v).transpose(1, 2).reshape(B, S, H * hd)
    return o @ w_o.t()


def block(h: torch.Tensor, w: Dict[str, torch.Tensor], i: int, cfg: Config, rope, level: str = "L_level") -> torch.Tensor:
    p = f"{level}.layers.{i}."
    eps = cfg.rms_norm_eps
    if cfg.mlp_t:
        ht = h.transpose(1, 2)                        # [B, D, S]: mix along the sequence axis
        ht = rms_norm(ht + swiglu(ht, w[p + "mlp_t.gate_up_proj.weight"], w[p + "mlp_t.down_proj.weight"]), eps)
        h = ht.transpose(1, 2)
    else:
        h = rms_norm(h + self_attention(h, w[p + "self_attn.qkv_proj.weight"], w[p + "self_attn.o_proj.weight"], cfg, rope), eps)
    return rms_norm(h + swiglu(h, w[p + "mlp.gate_up_proj.weight"], w[p + "mlp.down_proj.weight"]), eps)


def net(h, injection, w, cfg: Config, rope, level: str = "L_level"):
    h = h + injection
    for i in range(cfg.H_layers if level == "H_level" else cfg.L_layers):
        h = block(h, w, i, cfg, rope, level)
    return h


def embed(w, cfg: Config, inputs: torch.Tensor, puzzle_rows: torch.Tensor) -> torch.Tensor:
    D = cfg.hidden_size
    tok = w["embed_tokens.embedding_weight"][inputs.long()]               # [B, L, D]
    B = tok.shape[0]
    pad = cfg.prefix_len * D - puzzle_rows.shape[-1]
    pre = F.pad(puzzle_rows, (0, pad)) if pad > 0 else puzzle_rows
    x = torch.cat([pre.view(B, cfg.prefix_len, D), tok], dim=1)
    return math.sqrt(D) * x


def inner_forward(w, cfg: Config, y, z, inputs, puzzle_rows):
    """One supervision step: T-1 gradient-free cycles, then one cycle with gradient."""
    if cfg.arch == "hrm":
        return inner_forward_hrm(w, cfg, y, z, inputs, puzzle_rows)
    rope = rope_tables(cfg) if cfg.pos_encodings == "rope" else None
    x = embed(w, cfg, inputs, puzzle_rows)
    with torch.no_grad():
        for _ in range(cfg.H_cycles - 1):
            for _ in range(cfg.L_cycles):
                z = net(z, y + x, w, cfg, rope)
            y = net(y, z, w, cfg, rope)
    for _ in range(cfg.L_cycles):
        z = net(z, y + x, w, cfg, rope)
    y = net(y, z, w, cfg, rope)
    logits = (y @ w["lm_head.weight"].t())[:, cfg.prefix_len:]
    q = y[:, 0] @ w["q_head.weight"].t() + w["q_head.bias"]
    return y.detach(), z.detach(), logits, q[:, 0], q[:, 1]


def inner_forward_hrm(w, cfg: Config, z_H, z_L, inputs, puzzle_rows):
    """HRM's supervision step (SPEC §5): H_cycles x (L_cycles L-updates, then an H-update), all
    without gradient except the very last L-update and the last H-update (one-step gradient):
    z_L <- L(z_L, z_H + x), z_H <- H(z_H, z_L). Outputs and q read z_H (q: position 0)."""
    rope = rope_tables(cfg) if cfg.pos_encodings == "rope" else None
    x = embed(w, cfg, inputs, puzzle_rows)
    with torch.no_grad():
        for h in range(cfg.H_cycles):
            for l in range(cfg.L_cycles):
                if not (h == cfg.H_cycles - 1 and l == cfg.L_cycles - 1):
                    z_L = net(z_L, z_H + x, w, cfg, rope, "L_level")
            if h != cfg.H_cycles - 1:
                z_H = net(z_H, z_L, w, cfg, rope, "H_level")
    z_L = net(z_L, z_H + x, w, cfg, rope, "L_level")
    z_H = net(z_H, z_L, w, cfg, rope, "H_level")
    logits = (z_H @ w["lm_head.weight"].t())[:, cfg.prefix_len:]
    q = z_H[:, 0] @ w["q_head.weight"].t() + w["q_head.bias"]
    return z_H.detach(), z_L.detach(), logits, q[:, 0], q[:, 1]


# --------------------------------------------------------------------------------------
# Losses and metrics
# --------------------------------------------------------------------------------------

def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token -log p_label with p_k = s(l_k) / sum_j s(l_j), s(v) = v + 1 (v >= 0),
    1 / (1 - v + 1e-30) (v < 0), in float64; ignored tokens give 0."""
    l = logits.to(torch.float64)
    neg = torch.clamp(l, max=0.0)   # keeps the unused branch finite (same values)
    s = torch.where(l < 0, 1.0 / (1.0 - neg + 1e-30), l + 1.0)
    logp = torch.log(s / s.sum(dim=-1, keepdim=True))
    mask = labels != IGNORE_LABEL
    lp = logp.gather(-1, torch.where(mask, labels, 0).long().unsqueeze(-1)).squeeze(-1)
    return -torch.where(mask, lp, torch.zeros_like(lp))


def losses_and_metrics(logits, q_halt, labels, halted, steps, q_cont=None, target_q_cont=None):
    mask = labels != IGNORE_LABEL
    counts = mask.sum(-1)
    div = counts.clamp_min(1).unsqueeze(-1)
    with torch.no_grad():
        correct = mask & (logits.argmax(-1) == labels)
        seq_correct = correct.sum(-1) == counts
        valid = halted & (counts > 0)
        metrics = dict(
            count=int(valid.sum()),
            accuracy=float(torch.where(valid, (correct.float() / div).sum(-1), 0.0).sum()),
            exact_accuracy=int((valid & seq_correct).sum()),
            q_halt_accuracy=int((valid & ((q_halt >= 0) == seq_correct)).sum()),
            steps=int(torch.where(valid, steps, 0).sum()),
        )
    lm_loss = (stablemax_cross_entropy(logits, labels) / div).sum()               # float64
    q_halt_loss = F.binary_cross_entropy_with_logits(q_halt, seq_correct.to(q_halt.dtype), reduction="sum")
    if target_q_cont is None:
        total = lm_loss + 0.5 * q_halt_loss
        return lm_loss, q_halt_loss, total, metrics
    # Q-learning (no_ACT_continue = False): soft-target BCE on q_continue, same 0.5 weight
    q_cont_loss = F.binary_cross_entropy_with_logits(q_cont, target_q_cont, reduction="sum")
    total = lm_loss + 0.5 * (q_halt_loss + q_cont_loss)
    metrics["q_continue_loss"] = float(q_cont_loss.detach())
    return lm_loss, q_halt_loss, total, metrics


# --------------------------------------------------------------------------------------
# Optimisers and schedule
# --------------------------------------------------------------------------------------

def lr_at(step: int, base: float, cfg: Config) -> float:
    """Learning rate for optimizer step `step` (the reference increments its step counter
    before the first call, so the first update uses step = 1, not 0)."""
    if step < cfg.lr_warmup_steps:
        return base * float(step) / float(max(1, cfg.lr_warmup_steps))
    progress = float(step - cfg.lr_warmup_steps) / float(max(1, cfg.total_steps - cfg.lr_warmup_steps))
    return base * (cfg.lr_min_ratio + max(0.0, (1 - cfg.lr_min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))))


def adam_atan2_step(p, g, m, v, t: int, lr: float, cfg: Config):
    """AdamATan2 (no epsilon), fp32 state, scalar factors computed in double then cast:
        p <- p * (1 - lr*wd);  m <- lerp(m, g, 1-b1);  v <- lerp(v, g^2, 1-b2)
        p <- p - (lr / (1 - b1^t)) * atan2(m, sqrt(v) / sqrt(1 - b2^t))      (package 0.0.3)
    or, with adam_bc1_inside_atan2, p <- p - lr * atan2(m / (1 - b1^t), sqrt(v) / sqrt(1 - b2^t))."""
    b1, b2 = cfg.beta1, cfg.beta2
    bc1 = 1.0 - b1 ** float(t)
    bc2 = 1.0 - b2 ** float(t)
    f32 = lambda x: float(np.float32(x))
    with torch.no_grad():
        p.mul_(f32(1.0 - lr * cfg.weight_decay))
        m.lerp_(g, f32(1.0 - b1))
        v.lerp_(g * g, f32(1.0 - b2))
        denom = v.sqrt() / f32(math.sqrt(bc2))
        if cfg.adam_bc1_inside_atan2:
            p.sub_(f32(lr) * torch.atan2(m * f32(1.0 / bc1), denom))
        else:
            p.sub_(f32(lr / bc1) * torch.atan2(m, denom))


def puzzle_sign_sgd(table: torch.Tensor, ids: torch.Tensor, row_grads: torch.Tensor, lr: float, wd: float):
    """Sparse sign-SGD: gradients of duplicated ids are summed; only rows present in the batch
    are decayed and updated: w <- w * (1 - lr*wd) - lr * sign(g_sum)."""
    with torch.no_grad():
        uniq, inv = torch.unique(ids.long(), return_inverse=True)
        gsum = torch.zeros(uniq.shape[0], row_grads.shape[1], dtype=row_grads.dtype).index_add_(0, inv, row_grads)
        rows = table[uniq]
        rows.mul_(1.0 - lr * wd).add_(torch.sign(gsum), alpha=-lr)
        table[uniq] = rows


# --------------------------------------------------------------------------------------
# Training state and one training call
# --------------------------------------------------------------------------------------

class Trainer:
    def __init__(self, cfg: Config, weights: Dict[str, torch.Tensor]):
        self.cfg = cfg
        self.w = {k: v.clone() for k, v in weights.items()}
        self.names = trainable_names(self.w)
        for k in self.names:
            self.w[k].requires_grad_(True)
        self.m = {k: torch.zeros_like(self.w[k]) for k in self.names}
        self.v = {k: torch.zeros_like(self.w[k]) for k in self.names}
        self.ema = {k: self.w[k].detach().clone() for k in self.names}
        self.step = 0
        B, S, D = cfg.batch_size, cfg.total_len, cfg.hidden_size
        # initial carry: y/z unset (every row is halted, so they are replaced before use)
        self.y = torch.zeros(B, S, D)
        self.z = torch.zeros(B, S, D)
        self.steps = torch.zeros(B, dtype=torch.int32)
        self.halted = torch.ones(B, dtype=torch.bool)
        self.data = None
        self.explore_gen = torch.Generator().manual_seed(12345)

    def call(self, batch: Dict[str, torch.Tensor]):
        """One training call = forward on the carried batch, backward of total/B, both
        optimisers, EMA. Returns a dict with every recorded quantity."""
        cfg, w = self.cfg, self.w
        self.step += 1
        h = self.halted
        y = torch.where(h.view(-1, 1, 1), w["H_init"], self.y)
        z = torch.where(h.view(-1, 1, 1), w["L_init"], self.z)
        steps = torch.where(h, torch.zeros_like(self.steps), self.steps)
        if self.data is None:
            data = {k: v.clone() for k, v in batch.items()}
        else:
            data = {k: torch.where(h.view((-1,) + (1,) * (v.ndim - 1)), batch[k], v) for k, v in self.data.items()}

        ids = data["puzzle_identifiers"]
        rows = w["puzzle_emb.weights"][ids.long()].clone().requires_grad_(True)
        y, z, logits, q_halt, q_cont = inner_forward(w, cfg, y, z, data["inputs"], rows)

        with torch.no_grad():
            steps = steps + 1
            halted = steps >= cfg.halt_max_steps
            target_q_cont = None
            if cfg.halt_max_steps > 1:           # training mode
                if cfg.no_ACT_continue:
                    halted = halted | (q_halt > 0)
                else:                            # Q-learning ACT (HRM; TRM "w/ ACT")
                    halted = halted | (q_halt > q_cont)
                if cfg.halt_exploration_prob > 0:
                    explore = torch.rand(q_halt.shape, generator=self.explore_gen) < cfg.halt_exploration_prob
                    min_steps = explore * torch.randint(2, cfg.halt_max_steps + 1, steps.shape, generator=self.explore_gen)
                    halted = halted & (steps >= min_steps)
                if not cfg.no_ACT_continue:
                    # target: an extra inner forward from the NEW carry, same data, current weights
                    _, _, _, nqh, nqc = inner_forward(w, cfg, y, z, data["inputs"], rows)
                    last = steps >= cfg.halt_max_steps
                    target_q_cont = torch.sigmoid(torch.where(last, nqh, torch.maximum(nqh, nqc)))

        lm_loss, q_halt_loss, total, metrics = losses_and_metrics(logits, q_halt, data["labels"], halted, steps,
                                                                  q_cont, target_q_cont)
        params = [w[k] for k in self.names]
        grads = torch.autograd.grad((1.0 / cfg.batch_size) * total, params + [rows])
        grad = {k: g for k, g in zip(self.names, grads[:-1])}
        row_grad = grads[-1]

        lr = lr_at(self.step, cfg.lr, cfg)
        lr_e = lr_at(self.step, cfg.puzzle_emb_lr, cfg)
        puzzle_sign_sgd(w["puzzle_emb.weights"], ids, row_grad, lr_e, cfg.puzzle_emb_weight_decay)
        for k in self.names:
            adam_atan2_step(w[k].data, grad[k], self.m[k], self.v[k], self.step, lr, cfg)
        with torch.no_grad():
            for k in self.names:
                self.ema[k] = (1.0 - cfg.ema_rate) * w[k].detach() + cfg.ema_rate * self.ema[k]

        self.y, self.z, self.steps, self.halted, self.data = y, z, steps, halted, data
        return dict(logits=logits.detach(), q_halt=q_halt.detach(), q_cont=q_cont.detach(),
                    target_q_cont=None if target_q_cont is None else target_q_cont.detach().clone(),
                    lm_loss=lm_loss.item(), q_halt_loss=q_halt_loss.item(), total=total.item(),
                    grad={k: g.detach().clone() for k, g in grad.items()}, row_grad=row_grad.detach().clone(),
                    y=y, z=z, steps=steps.clone(), halted=halted.clone(), metrics=metrics, lr=lr, lr_e=lr_e)


# --------------------------------------------------------------------------------------
# Data (real-looking Sudoku)
# --------------------------------------------------------------------------------------

def sudoku_batch(cfg: Config, g: torch.Generator, ignore_rows=(), all_ignore_row: Optional[int] = None):
    """Valid 9x9 solutions (base pattern + random digit/row/band/column/stack permutations and
    transpose), ~55% blanks. Tokens: 1 blank, 2..10 digits. Labels: the full solution (2..10);
    rows in `ignore_rows` get 3-12 labels set to -100, `all_ignore_row` gets only -100."""
    assert cfg.seq_len == 81
    B = cfg.batch_size
    inputs = torch.empty(B, 81, dtype=torch.int32)
    labels = torch.empty(B, 81, dtype=torch.int32)
    r = torch.arange(9)
    base = (3 * (r[:, None] % 3) + r[:, None] // 3 + r[None, :]) % 9      # valid solution, 0..8
    for b in range(B):
        digits = torch.randperm(9, generator=g)
        rows = torch.cat([3 * band + torch.randperm(3, generator=g) for band in torch.randperm(3, generator=g)])
        cols = torch.cat([3 * st + torch.randperm(3, generator=g) for st in torch.randperm(3, generator=g)])
        sol = digits[base[rows][:, cols]]
        if torch.rand((), generator=g) < 0.5:
            sol = sol.t()
        sol = sol.reshape(81) + 2                                           # 2..10
        blank = torch.rand(81, generator=g) < 0.55
        inputs[b] = torch.where(blank, torch.ones_like(sol), sol).to(torch.int32)
        labels[b] = sol.to(torch.int32)
        if b in ignore_rows:
            k = int(torch.randint(3, 13, (), generator=g))
            labels[b, torch.randperm(81, generator=g)[:k]] = IGNORE_LABEL
    if all_ignore_row is not None:
        labels[all_ignore_row] = IGNORE_LABEL
    ids = torch.randint(0, cfg.num_puzzle_identifiers, (B,), generator=g, dtype=torch.int64).to(torch.int32)
    return dict(inputs=inputs, labels=labels, puzzle_identifiers=ids)


def make_batches(cfg: Config, seed: int):
    g = torch.Generator().manual_seed(seed + 1000)
    out = []
    for k in range(cfg.num_traj_calls):
        ignore_rows = (1, 3) if k % 2 == 0 else (0,)
        out.append(sudoku_batch(cfg, g, ignore_rows=ignore_rows, all_ignore_row=2 if k == 8 else None))
    return out


# --------------------------------------------------------------------------------------
# Fixture assembly
# --------------------------------------------------------------------------------------

def config_tensors(cfg: Config, seed: int) -> Dict[str, np.ndarray]:
    i32 = lambda x: np.array([int(x)], dtype=np.int32)
    f32 = lambda x: np.array([x], dtype=np.float32)
    c = {
        "hidden_size": i32(cfg.hidden_size), "num_heads": i32(cfg.num_heads), "head_dim": i32(cfg.head_dim),
        "L_layers": i32(cfg.L_layers), "H_cycles": i32(cfg.H_cycles), "L_cycles": i32(cfg.L_cycles),
        "halt_max_steps": i32(cfg.halt_max_steps), "puzzle_emb_ndim": i32(cfg.puzzle_emb_ndim),
        "puzzle_emb_len": i32(cfg.prefix_len), "num_puzzle_identifiers": i32(cfg.num_puzzle_identifiers),
        "vocab_size": i32(cfg.vocab_size), "seq_len": i32(cfg.seq_len), "batch_size": i32(cfg.batch_size),
        "mlp_t": i32(cfg.mlp_t), "pos_rope": i32(cfg.pos_encodings == "rope"),
        "no_ACT_continue": i32(cfg.no_ACT_continue), "mlp_inter": i32(swiglu_inter(cfg.hidden_size, cfg.expansion)),
        "mlp_t_inter": i32(swiglu_inter(cfg.total_len, cfg.expansion) if cfg.mlp_t else 0),
        "seed": i32(seed), "num_traj_calls": i32(cfg.num_traj_calls), "lr_warmup_steps": i32(cfg.lr_warmup_steps),
        "total_steps": i32(cfg.total_steps), "adam_bc1_inside_atan2": i32(cfg.adam_bc1_inside_atan2),
        "ignore_label": i32(IGNORE_LABEL),
        "expansion": f32(cfg.expansion), "rms_norm_eps": f32(cfg.rms_norm_eps), "rope_theta": f32(cfg.rope_theta),
        "halt_exploration_prob": f32(cfg.halt_exploration_prob), "lr": f32(cfg.lr), "lr_min_ratio": f32(cfg.lr_min_ratio),
        "beta1": f32(cfg.beta1), "beta2": f32(cfg.beta2), "weight_decay": f32(cfg.weight_decay),
        "puzzle_emb_lr": f32(cfg.puzzle_emb_lr), "puzzle_emb_weight_decay": f32(cfg.puzzle_emb_weight_decay),
        "ema_rate": f32(cfg.ema_rate), "q_head_weight_std": f32(cfg.q_head_weight_std),
        "puzzle_emb_init_std": f32(cfg.puzzle_emb_init_std), "q_head_bias_init": f32(-5.0),
    }
    if cfg.arch == "hrm":   # (only in HRM fixtures: the TRM fixtures stay byte-identical)
        c.update({"arch_hrm": i32(1), "H_layers": i32(cfg.H_layers)})
    return {"config." + k: v for k, v in c.items()}


def npy(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    if t.dtype in (torch.int32, torch.int64, torch.bool):
        return t.to(torch.int32).numpy().copy()
    return t.to(torch.float32).numpy().copy()


def build_fixture(cfg: Config, seed: int, restart_from: Optional[Dict[str, np.ndarray]] = None) -> Dict[str, np.ndarray]:
    """All fixture tensors. With `restart_from` (another fixture), trajectory call k > 0 starts
    from restart_from's carry of call k-1 instead of its own (used to measure spreads)."""
    _, weights = init_weights(cfg, seed)
    batches = make_batches(cfg, seed)
    out: Dict[str, np.ndarray] = dict(config_tensors(cfg, seed))
    for k, v in weights.items():
        out["weights." + k] = npy(v)

    # single call = first training call (its batch is also traj call 0)
    tr = Trainer(cfg, weights)
    r = tr.call(batches[0])
    b0 = batches[0]
    out.update({
        "call.inputs": npy(b0["inputs"]), "call.labels": npy(b0["labels"]),
        "call.puzzle_identifiers": npy(b0["puzzle_identifiers"]),
        "call.logits": npy(r["logits"]), "call.q_halt_logits": npy(r["q_halt"]),
        "call.q_continue_logits": npy(r["q_cont"]), "call.y": npy(r["y"]), "call.z": npy(r["z"]),
        "call.lm_loss": np.array([r["lm_loss"]], np.float32), "call.q_halt_loss": np.array([r["q_halt_loss"]], np.float32),
        "call.total_loss": np.array([r["total"]], np.float32),
        "call.halted": npy(r["halted"]), "call.steps": npy(r["steps"]),
        "grad.puzzle_emb.rows": npy(r["row_grad"]),
    })
    if r["target_q_cont"] is not None:
        out["call.target_q_continue"] = npy(r["target_q_cont"])
        out["call.q_continue_loss"] = np.array([r["metrics"]["q_continue_loss"]], np.float32)
    for k, g in r["grad"].items():
        out["grad." + k] = npy(g)

    # trajectory: fresh trainer, 20 calls
    tr = Trainer(cfg, weights)
    rec = {k: [] for k in ("total", "lm", "qh", "halted", "steps", "acc", "exact", "count", "qacc", "qhl", "lr", "lr_e", "y", "z",
                           "qc", "qcl", "target")}
    for k, batch in enumerate(batches):
        if restart_from is not None and k > 0:
            tr.y = torch.from_numpy(restart_from["traj.carry_y"][k - 1].copy())
            tr.z = torch.from_numpy(restart_from["traj.carry_z"][k - 1].copy())
        r = tr.call(batch)
        m = r["metrics"]
        cnt = max(m["count"], 1)
        rec["total"].append(r["total"]); rec["lm"].append(r["lm_loss"]); rec["qh"].append(r["q_halt_loss"])
        rec["halted"].append(npy(r["halted"])); rec["steps"].append(npy(r["steps"]))
        rec["acc"].append(m["accuracy"] / cnt); rec["exact"].append(m["exact_accuracy"] / cnt)
        rec["qacc"].append(m["q_halt_accuracy"] / cnt); rec["count"].append(m["count"])
        rec["qhl"].append(npy(r["q_halt"])); rec["lr"].append(r["lr"]); rec["lr_e"].append(r["lr_e"])
        rec["y"].append(npy(r["y"])); rec["z"].append(npy(r["z"]))
        if r["target_q_cont"] is not None:
            rec["qc"].append(m["q_continue_loss"]); rec["qcl"].append(npy(r["q_cont"])); rec["target"].append(npy(r["target_q_cont"]))
    f = lambda xs: np.array(xs, dtype=np.float32)
    out.update({
        "traj.inputs": np.stack([npy(b["inputs"]) for b in batches]),
        "traj.labels": np.stack([npy(b["labels"]) for b in batches]),
        "traj.puzzle_identifiers": np.stack([npy(b["puzzle_identifiers"]) for b in batches]),
        "traj.total_loss": f(rec["total"]), "traj.lm_loss": f(rec["lm"]), "traj.q_halt_loss": f(rec["qh"]),
        "traj.halted": np.stack(rec["halted"]), "traj.steps": np.stack(rec["steps"]),
        "traj.accuracy": f(rec["acc"]), "traj.exact_accuracy": f(rec["exact"]),
        "traj.q_halt_accuracy": f(rec["qacc"]), "traj.count": np.array(rec["count"], np.int32),
        "traj.q_halt_logits": np.stack(rec["qhl"]), "traj.lr": f(rec["lr"]), "traj.puzzle_emb_lr": f(rec["lr_e"]),
        "traj.carry_y": np.stack(rec["y"]), "traj.carry_z": np.stack(rec["z"]),
    })
    if rec["target"]:   # Q-learning halting (HRM fixtures only)
        out.update({"traj.q_continue_loss": f(rec["qc"]), "traj.q_continue_logits": np.stack(rec["qcl"]),
                    "traj.target_q_continue": np.stack(rec["target"])})
    for k in tr.names:
        out["traj.ema." + k] = npy(tr.ema[k])
        out["traj.final." + k] = npy(tr.w[k])
    out["traj.final.puzzle_emb.weights"] = npy(tr.w["puzzle_emb.weights"])
    return out


# --------------------------------------------------------------------------------------
# safetensors writer (sorted keys, deterministic header)
# --------------------------------------------------------------------------------------

DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32", np.dtype(np.float64): "F64"}


def write_safetensors(path: str, tensors: Dict[str, np.ndarray], metadata: Dict[str, str]) -> None:
    header = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, off = [], 0
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k])
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[k] = {"dtype": DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":"), sort_keys=False).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(h)))
        fh.write(h)
        for b in blobs:
            fh.write(b)


def read_safetensors(path: str) -> Dict[str, np.ndarray]:
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(n))
        data = fh.read()
    inv = {v: k for k, v in DTYPES.items()}
    out = {}
    for k, d in header.items():
        if k == "__metadata__":
            continue
        a, b = d["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype=inv[d["dtype"]].newbyteorder("<")).reshape(d["shape"]).astype(inv[d["dtype"]])
    return out


# --------------------------------------------------------------------------------------
# Comparison helpers
# --------------------------------------------------------------------------------------

def family(name: str) -> str:
    if name.startswith("config.") or name.startswith("weights.") or name in (
            "call.inputs", "call.labels", "call.puzzle_identifiers") or name in (
            "traj.inputs", "traj.labels", "traj.puzzle_identifiers"):
        return "inputs"
    if name.startswith("grad."):
        return "grad.puzzle_emb.rows" if name == "grad.puzzle_emb.rows" else "grad.params"
    if name.startswith("traj.ema."):
        return "traj.ema"
    if name.startswith("traj.final."):
        return "traj.final.puzzle_emb" if "puzzle_emb" in name else "traj.final.params"
    if name in ("call.y", "call.z"):
        return "call.carry"
    if name in ("call.q_halt_logits", "call.q_continue_logits"):
        return "call.q_logits"
    if name in ("call.lm_loss", "call.q_halt_loss", "call.total_loss", "call.q_continue_loss"):
        return "call.losses"
    if name in ("traj.total_loss", "traj.lm_loss", "traj.q_halt_loss", "traj.q_continue_loss"):
        return "traj.losses"
    return name


def compare(ours: Dict[str, np.ndarray], theirs: Dict[str, np.ndarray], title: str) -> Dict[str, Tuple[float, float]]:
    """Per family: (max |a-b|, max over tensors of max|a-b| / max|b|)."""
    res: Dict[str, List[float]] = {}
    for k in sorted(theirs):
        if k not in ours:
            continue
        a, b = ours[k].astype(np.float64), theirs[k].astype(np.float64)
        if a.shape != b.shape:
            raise SystemExit(f"shape mismatch for {k}: {a.shape} vs {b.shape}")
        d = float(np.max(np.abs(a - b))) if a.size else 0.0
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        rel = d / scale if scale > 0 else d
        fam = family(k)
        cur = res.setdefault(fam, [0.0, 0.0, 0])
        cur[0] = max(cur[0], d); cur[1] = max(cur[1], rel); cur[2] += 1
    print(f"== {title}")
    for fam, (d, rel, n) in sorted(res.items()):
        print(f"  {fam:28s} tensors={n:3d}  max_abs={d:.3e}  max_rel(to max|ref|)={rel:.3e}")
    return {k: (v[0], v[1]) for k, v in res.items()}


# --------------------------------------------------------------------------------------
# Official-code check (imports a checkout at run time; nothing is copied)
# --------------------------------------------------------------------------------------

def _load_function(path: str, name: str, glb: dict):
    src = open(path).read()
    tree = ast.parse(src)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            mod = ast.Module(body=[node], type_ignores=[])
            exec(compile(mod, path, "exec"), glb)
            return glb[name]
    raise KeyError(f"{name} not found in {path}")


def _explicit_attention(q, k, v, causal=False, **_):
    """Stand-in for flash_attn_func on CPU (q, k, v: [B, S, H, hd]): softmax(q k^T / sqrt(hd)) v,
    fp32, no mask; returns [B, S, H, hd] contiguous as flash-attn does."""
    assert not causal
    qh, kh, vh = (t.transpose(1, 2) for t in (q, k, v))
    att = torch.softmax((qh @ kh.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1])), dim=-1)
    return (att @ vh).transpose(1, 2).contiguous()


class _SimpleEMA:
    """shadow <- (1 - mu) p + mu shadow over trainable parameters (the HRM repo has no EMA)."""
    def __init__(self, mu):
        self.mu = mu

    def register(self, model):
        self.shadow = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    def update(self, model):
        for n, p in model.named_parameters():
            if p.requires_grad:
                self.shadow[n] = (1.0 - self.mu) * p.detach() + self.mu * self.shadow[n]


def _forget_models_package():
    """Both official repos name their package `models`: drop a previously imported one."""
    for k in [k for k in sys.modules if k == "models" or k.startswith("models.")]:
        del sys.modules[k]


def run_official(cfg: Config, seed: int, official: str, adam_pkg: Optional[str],
                 restart_from: Optional[Dict[str, np.ndarray]] = None) -> Dict[str, np.ndarray]:
    """Runs the official TRM model / loss head / sparse sign-SGD / EMA (and optionally the
    official AdamATan2 python wrapper) on our weights and batches; returns fixture-named
    tensors for comparison. CPU, fp32, no torch.compile.
    With cfg.arch == "hrm", `official` is either a sapientinc/HRM checkout (models/hrm/hrm_act_v1.py;
    flash-attn is replaced by `_explicit_attention` through a stub module, the checkout itself is
    not modified; no EMA there, so `_SimpleEMA`) or a TinyRecursiveModels checkout, whose
    models/recursive_reasoning/hrm.py is then used."""
    os.environ["DISABLE_COMPILE"] = "1"
    _forget_models_package()
    sys.path.insert(0, official)
    sapient_hrm = cfg.arch == "hrm" and os.path.exists(os.path.join(official, "models", "hrm", "hrm_act_v1.py"))
    if sapient_hrm:
        stub = types.SimpleNamespace(flash_attn_func=_explicit_attention)
        sys.modules["flash_attn_interface"] = stub
        sys.modules["flash_attn"] = stub
        from models.hrm.hrm_act_v1 import HierarchicalReasoningModel_ACTV1 as TinyRecursiveReasoningModel_ACTV1  # type: ignore
        EMAHelper = _SimpleEMA
    else:
        if cfg.arch == "hrm":
            from models.recursive_reasoning.hrm import HierarchicalReasoningModel_ACTV1 as TinyRecursiveReasoningModel_ACTV1  # type: ignore
        else:
            from models.recursive_reasoning.trm import TinyRecursiveReasoningModel_ACTV1   # type: ignore
        from models.ema import EMAHelper                                               # type: ignore
    from models.losses import ACTLossHead                                          # type: ignore
    from models.sparse_embedding import CastedSparseEmbeddingSignSGD_Distributed   # type: ignore
    lr_fn = _load_function(os.path.join(official, "pretrain.py"), "cosine_schedule_with_warmup_lr_lambda", {"math": math})

    if adam_pkg is not None:
        from typing import Tuple as _T
        ref_impl = _load_function(os.path.join(adam_pkg, "adam_atan2", "adam_atan2_test.py"),
                                  "_adam_atan2_reference_impl", {"torch": torch, "Tuple": _T})

        def backend_impl(params, grads, exp_avgs, exp_avg_sqs, steps, lr, beta1, beta2, wd):
            # the kernel's scalar factors (csrc/adam_atan2.cu 0.0.3) + the package's reference math
            with torch.no_grad():
                for p, g, m, v, s in zip(params, grads, exp_avgs, exp_avg_sqs, steps):
                    t = float(s.item())
                    np_, nm, nv = ref_impl(p.detach().clone(), g, m.clone(), v.clone(), step_size=lr / (1 - beta1 ** t),
                                           wd_step_size=lr * wd, bias_correction2_sqrt=math.sqrt(1 - beta2 ** t),
                                           beta1=beta1, beta2=beta2)
                    p.copy_(np_); m.copy_(nm); v.copy_(nv)
        sys.modules["adam_atan2_backend"] = types.SimpleNamespace(adam_atan2_cuda_impl_=backend_impl)
        sys.path.insert(0, adam_pkg)
        from adam_atan2 import AdamATan2   # type: ignore
    else:
        AdamATan2 = None

    arch = dict(batch_size=cfg.batch_size, seq_len=cfg.seq_len, puzzle_emb_ndim=cfg.puzzle_emb_ndim,
                num_puzzle_identifiers=cfg.num_puzzle_identifiers, vocab_size=cfg.vocab_size,
                H_cycles=cfg.H_cycles, L_cycles=cfg.L_cycles, H_layers=cfg.H_layers, L_layers=cfg.L_layers,
                hidden_size=cfg.hidden_size, expansion=cfg.expansion, num_heads=cfg.num_heads,
                pos_encodings=cfg.pos_encodings, rms_norm_eps=cfg.rms_norm_eps, rope_theta=cfg.rope_theta,
                halt_max_steps=cfg.halt_max_steps, halt_exploration_prob=cfg.halt_exploration_prob,
                forward_dtype="float32", mlp_t=cfg.mlp_t, puzzle_emb_len=cfg.puzzle_emb_len,
                no_ACT_continue=cfg.no_ACT_continue, causal=False)

    base, weights = init_weights(cfg, seed)
    batches = make_batches(cfg, seed)
    P = "model.inner."

    def make_model():
        torch.manual_seed(seed)
        m = ACTLossHead(TinyRecursiveReasoningModel_ACTV1(arch), loss_type="stablemax_cross_entropy")
        return m

    model = make_model()
    sd = model.state_dict()
    init_diff = max(float((sd[P + k] - v).abs().max()) for k, v in base.items())
    assert set(k[len(P):] for k in sd) == set(base), (sorted(sd), sorted(base))
    print(f"official init (torch.manual_seed({seed})) vs our init: max |diff| = {init_diff:.3e}")

    def run(num_calls: int, record_grads: bool):
        model = make_model()
        model.load_state_dict({P + k: v.clone() for k, v in weights.items()}, strict=True)
        model.train()
        sparse = CastedSparseEmbeddingSignSGD_Distributed(model.model.puzzle_emb.buffers(), world_size=1, lr=0,
                                                          weight_decay=cfg.puzzle_emb_weight_decay)
        opts, base_lrs = [sparse], [cfg.puzzle_emb_lr]
        if AdamATan2 is not None:
            opts.append(AdamATan2(model.parameters(), lr=0, weight_decay=cfg.weight_decay, betas=(cfg.beta1, cfg.beta2)))
            base_lrs.append(cfg.lr)
            own_adam = None
        else:
            own_adam = {n: (torch.zeros_like(p), torch.zeros_like(p)) for n, p in model.named_parameters()}
        ema = EMAHelper(mu=cfg.ema_rate)
        ema.register(model)
        carry, step, recs = None, 0, []
        for k in range(num_calls):
            batch = {kk: vv.clone() for kk, vv in batches[k].items()}
            step += 1                                           # as pretrain.train_batch
            if carry is None:
                carry = model.initial_carry(batch)
            elif restart_from is not None:
                carry.inner_carry.z_H = torch.from_numpy(restart_from["traj.carry_y"][k - 1].copy())
                carry.inner_carry.z_L = torch.from_numpy(restart_from["traj.carry_z"][k - 1].copy())
            carry, loss, metrics, outs, _ = model(carry=carry, batch=batch,
                                                  return_keys=["logits", "q_halt_logits", "q_continue_logits",
                                                               "target_q_continue"])
            ((1 / cfg.batch_size) * loss).backward()
            rec = dict(total=loss.item(), lm=metrics["lm_loss"].item(), qh=metrics["q_halt_loss"].item(),
                       logits=outs["logits"], qh_l=outs["q_halt_logits"], qc_l=outs["q_continue_logits"],
                       y=carry.inner_carry.z_H.clone(), z=carry.inner_carry.z_L.clone(),
                       halted=carry.halted.clone(), steps=carry.steps.clone(),
                       count=int(metrics["count"]), acc=float(metrics["accuracy"]), exact=int(metrics["exact_accuracy"]))
            if "target_q_continue" in outs:
                rec["qc"] = metrics["q_continue_loss"].item()
                rec["target"] = outs["target_q_continue"]
            if record_grads:
                rec["grad"] = {n[len(P):]: p.grad.clone() for n, p in model.named_parameters()}
                rec["row_grad"] = model.model.puzzle_emb.local_weights.grad.clone()
            for opt, blr in zip(opts, base_lrs):
                lr = lr_fn(current_step=step, base_lr=blr, num_warmup_steps=round(cfg.lr_warmup_steps),
                           num_training_steps=cfg.total_steps, min_ratio=cfg.lr_min_ratio)
                for gr in opt.param_groups:
                    gr["lr"] = lr
                opt.step()
                opt.zero_grad()
            if own_adam is not None:
                lr = lr_fn(current_step=step, base_lr=cfg.lr, num_warmup_steps=round(cfg.lr_warmup_steps),
                           num_training_steps=cfg.total_steps, min_ratio=cfg.lr_min_ratio)
                for n, p in model.named_parameters():
                    adam_atan2_step(p.data, p.grad, own_adam[n][0], own_adam[n][1], step, lr, cfg)
                    p.grad = None
            rec["lr"] = lr
            ema.update(model)
            recs.append(rec)
        return model, ema, recs

    out: Dict[str, np.ndarray] = {}
    _, _, recs = run(1, True)
    r = recs[0]
    out.update({"call.logits": npy(r["logits"]), "call.q_halt_logits": npy(r["qh_l"]),
                "call.q_continue_logits": npy(r["qc_l"]), "call.y": npy(r["y"]), "call.z": npy(r["z"]),
                "call.lm_loss": np.array([r["lm"]], np.float32), "call.q_halt_loss": np.array([r["qh"]], np.float32),
                "call.total_loss": np.array([r["total"]], np.float32), "call.halted": npy(r["halted"]),
                "call.steps": npy(r["steps"]), "grad.puzzle_emb.rows": npy(r["row_grad"])})
    if "target" in r:
        out["call.target_q_continue"] = npy(r["target"])
        out["call.q_continue_loss"] = np.array([r["qc"]], np.float32)
    for k, g in r["grad"].items():
        out["grad." + k] = npy(g)

    model, ema, recs = run(cfg.num_traj_calls, False)
    f = lambda xs: np.array(xs, dtype=np.float32)
    out.update({
        "traj.total_loss": f([r["total"] for r in recs]), "traj.lm_loss": f([r["lm"] for r in recs]),
        "traj.q_halt_loss": f([r["qh"] for r in recs]),
        "traj.halted": np.stack([npy(r["halted"]) for r in recs]), "traj.steps": np.stack([npy(r["steps"]) for r in recs]),
        "traj.accuracy": f([r["acc"] / max(r["count"], 1) for r in recs]),
        "traj.exact_accuracy": f([r["exact"] / max(r["count"], 1) for r in recs]),
        "traj.count": np.array([r["count"] for r in recs], np.int32),
        "traj.q_halt_logits": np.stack([npy(r["qh_l"]) for r in recs]), "traj.lr": f([r["lr"] for r in recs]),
        "traj.carry_y": np.stack([npy(r["y"]) for r in recs]), "traj.carry_z": np.stack([npy(r["z"]) for r in recs]),
    })
    if "target" in recs[0]:
        out.update({"traj.q_continue_loss": f([r["qc"] for r in recs]),
                    "traj.q_continue_logits": np.stack([npy(r["qc_l"]) for r in recs]),
                    "traj.target_q_continue": np.stack([npy(r["target"]) for r in recs])})
    for n, p in model.named_parameters():
        out["traj.final." + n[len(P):]] = npy(p)
    for n, v in ema.shadow.items():
        out["traj.ema." + n[len(P):]] = npy(v)
    out["traj.final.puzzle_emb.weights"] = npy(model.model.puzzle_emb.weights)
    return out


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------

def variant_config(name: str) -> Config:
    return Config(**VARIANTS[name][1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory for the fixtures")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variant", choices=["mlp", "att", "hrm", "all"], default="all")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads for generation (default 1)")
    ap.add_argument("--spread-threads", type=int, default=0,
                    help="if > 0, recompute with this many threads and print the max differences")
    ap.add_argument("--check-official", default=None, help="path to a TinyRecursiveModels checkout (TRM variants, "
                    "and its models/recursive_reasoning/hrm.py for the hrm variant)")
    ap.add_argument("--check-official-hrm", default=None, help="path to a sapientinc/HRM checkout (hrm variant)")
    ap.add_argument("--check-adam-atan2", default=None, help="path to an imoneoi/adam-atan2 checkout (tag 0.0.3)")
    ap.add_argument("--adam-bc1-inside-atan2", action="store_true",
                    help="use the adam-atan2 0.0.2 / SPEC-text variant (not what the reference runs)")
    args = ap.parse_args(argv)

    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)
    names = ["mlp", "att", "hrm"] if args.variant == "all" else [args.variant]
    for name in names:
        fname = VARIANTS[name][0]
        cfg = variant_config(name)
        cfg.adam_bc1_inside_atan2 = args.adam_bc1_inside_atan2
        torch.set_num_threads(args.threads)
        fx = build_fixture(cfg, args.seed)
        path = os.path.join(args.out, fname)
        meta = {"format": FORMAT_TAG, "generator": "tools/trm_reference.py", "variant": name,
                "seed": str(args.seed), "torch_threads": str(args.threads)}
        write_safetensors(path, fx, meta)
        back = read_safetensors(path)
        assert set(back) == set(fx) and all(np.array_equal(back[k], fx[k]) for k in fx)
        sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
        print(f"wrote {path}: {os.path.getsize(path)} bytes, {len(fx)} tensors, sha256 {sha}")
        print(f"  call: lm_loss={fx['call.lm_loss'][0]:.6f} q_halt_loss={fx['call.q_halt_loss'][0]:.6f} "
              f"total={fx['call.total_loss'][0]:.6f}")
        print(f"  traj total_loss: {np.array2string(fx['traj.total_loss'], precision=4, max_line_width=200)}")
        if args.spread_threads > 0:
            torch.set_num_threads(args.spread_threads)
            tag = f"{name}: threads={args.spread_threads} vs threads={args.threads}"
            compare(build_fixture(cfg, args.seed), fx, tag + ", free-running carry")
            compare(build_fixture(cfg, args.seed, restart_from=fx), fx, tag + ", traj call k restarted from the fixture's carry k-1")
        checkouts = [("official code", args.check_official)]
        if cfg.arch == "hrm":
            checkouts = [("official HRM code (sapientinc/HRM)", args.check_official_hrm),
                         ("TRM repo's hrm.py", args.check_official)]
        for label, checkout in checkouts:
            if not checkout:
                continue
            torch.set_num_threads(args.threads)
            what = " (+ official AdamATan2 wrapper)" if args.check_adam_atan2 else " (AdamATan2: ours)"
            for restart in (None, fx):
                off = run_official(cfg, args.seed, checkout, args.check_adam_atan2, restart_from=restart)
                compare(fx, off, f"{name}: ours vs {label}{what}, "
                        + ("free-running carry" if restart is None else "traj call k restarted from our carry k-1"))
                for k in ("traj.halted", "traj.steps", "call.halted", "call.steps", "traj.count"):
                    assert np.array_equal(fx[k], off[k]), k
                print("  halted / steps / count identical")
        torch.set_num_threads(args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Encoder precision: fp32 (the default, what the shipped models are trained on) or bf16.

bf16 runs the frozen encoders' matrix products in bfloat16 (accumulating in fp32), about
twice as fast on CPUs with native bf16 instructions (AVX512-BF16 or AMX). The features move
slightly (cosine similarity to fp32 above 0.9999 on DermBench sentences), so bf16 vectors are
cached under their own keys and never mixed with fp32 ones; benchmarks/bench_scoring.py
measures the speed and what it does to the scores.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch

PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown encoder precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "bf16" and not native_bf16():
        warnings.warn("this CPU has no native bf16 instructions: bf16 encoding will be slower than fp32",
                      RuntimeWarning, stacklevel=2)
    return precision


def native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@contextlib.contextmanager
def autocast(precision: str, device: str = "cpu") -> Iterator[None]:
    device_type = "cuda" if str(device).startswith("cuda") else "cpu"
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        yield

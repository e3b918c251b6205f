"""What the benchmarks share. The quality benchmarks (benchmark_quality.py, benchmark_hsi.py): the
machine they ran on, its load, side-by-side panels, and running a training entry point as a logged
subprocess. The timing benchmarks (benchmark.py, benchmark_inference.py): the process settings and
the device their command lines choose."""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def importable(module: str) -> bool:
    """Whether an optional package (bm3d, bm4d, matplotlib) is installed, without importing it."""
    return importlib.util.find_spec(module) is not None


def machine_load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def cpu_model() -> str:
    """``lscpu``'s Model name (the /proc/cpuinfo line where lscpu is missing)."""
    try:
        listing = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        listing = ""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    for line in listing.splitlines() + cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("Model name", "model name"):
            return value.strip()
    return platform.processor() or "unknown"


def machine(threads: int) -> dict:
    """The CPU, its bf16 features, the threads the benchmark used, the platform and torch."""
    import torch

    from denoise.ops.precision import CPU_FLAGS, cpu_bf16_flags

    found = cpu_bf16_flags() or ()
    return {"cpu_model": cpu_model(), "cpus": os.cpu_count(), "threads": threads,
            **{flag: flag in found for flag in CPU_FLAGS},
            "platform": platform.platform(), "torch": torch.__version__}


def panel(images, crop: int):
    """A (C, H, W) strip of the centre crops of (H, W, C) ``images``, side by side, in [0, 1]."""
    import numpy as np

    height, width = images[0].shape[:2]
    side_h, side_w = min(crop, height), min(crop, width)
    top, left = (height - side_h) // 2, (width - side_w) // 2
    tiles = [np.clip(im[top:top + side_h, left:left + side_w], 0, 1) for im in images]
    return np.concatenate(tiles, axis=1).transpose(2, 0, 1)


def run_logged(command: list[str], threads: int, log: Path, timeout: float | None, what: str) -> float:
    """Run ``command`` from the repository root with ``threads`` OpenMP threads, its output in ``log``;
    the wall seconds, or SystemExit with one line naming ``what`` failed and where its log is."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    print(f"{what}: " + " ".join(command[1:]), flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    seconds = time.perf_counter() - started
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"error: {what} failed (exit {done.returncode}): {tail[0]} (log: {log})")
    return seconds


# The timing benchmarks' helpers import torch and the package when called, so that the quality
# benchmarks, which only launch the entry points, import neither.
def apply_process_settings(args) -> None:
    """``--default-allocator`` and ``--threads``: glibc's malloc thresholds raised as the entry points
    raise them (denoise/cli/allocator.py) unless asked not to, and torch's CPU threads."""
    import torch

    from denoise.cli.allocator import keep_freed_memory

    if not args.default_allocator:
        keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)


def device_of(args):
    """The torch device ``--device`` names; a device that is not there ends the run in one line."""
    from denoise.cli.device import choose_device
    from denoise.errors import ConfigError

    try:
        return choose_device(args.device)
    except ConfigError as error:
        raise SystemExit(f"error: --{error}") from None

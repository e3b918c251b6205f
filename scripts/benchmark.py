"""Speed and memory of blind-spot networks: training step, single forward, SIDD block protocol.

    python scripts/benchmark.py --config tbsn                          # all measurements, CPU
    python scripts/benchmark.py --config tbsn --measure train --size 128 --batch 1
    python scripts/benchmark.py --compare "tbsn form=literal" "tbsn precision=bf16" --measure train
    python scripts/benchmark.py --config tbsn --device cuda --batch 4 --json bench.json

A *config* is a network config of configs/model/net followed by ``key=value`` words: the run
options ``precision=32|bf16`` (autocast), ``channels_last=true``, ``compile=true``, and for the
block measurement ``protocol=tbsn|apbsn`` (``denoise.ops.protocols``; default tbsn) and
``r3_pad=N`` (default: the protocol's, 0 for tbsn); every other word is a Hydra override of the
network config (``form=literal``, ``dim=32``, ...).

Measurements (``--measure``, comma-separated):

- ``train``: one optimisation step on a (batch, C, size, size) input in [0, 255] with the blind-spot
  L1 loss and AdamW, split into forward, backward and optimizer time;
- ``forward``: one forward pass of the same input without gradients;
- ``block``: one 256x256 SIDD block (a real one from ../shared when present) through the full
  protocol, PD 2 then R3 with T=8 passes, untiled (the TBSN protocol: R3 on the unpadded image;
  ``r3_pad=2`` pads each R3 pass by 2 as AP-BSN does).

Each is timed after ``--warmup`` runs, ``--repeats`` times; the table gives the median and the
spread (min-max). With ``--compare`` the two configs run alternately in one process, so slow
phases of a shared machine hit both alike, and the ratio of medians is printed. FLOPs come from
torch's flop counter (convolutions, matmuls and attention; elementwise work is not counted),
and the achieved rate is given as a fraction of the machine's GEMM peak for the config's dtype,
timed in the same run: the faster of ``torch.matmul`` (BLAS) and the same product as a 1x1
convolution on a channels-last map (oneDNN / cuDNN), both printed. Peak memory: max allocated
on CUDA; on CPU the peak resident set of a fresh process that builds the model and runs the
measurement once, counted from just before the run (the model and Python are included; the
table also gives the resident set before the run).
``--no-memory`` skips it.
Random weights: the numbers are the cost, not the quality.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from benchmark_common import apply_process_settings, device_of
from torch.utils import flop_counter

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "model" / "net"
SIDD_BLOCKS = ROOT.parent / "shared" / "data" / "sidd_samples" / "val_blocks.mat"
MEASURES = ("train", "forward", "block")
RUN_OPTIONS = {
    "precision": "32", "channels_last": "false", "compile": "false", "protocol": "tbsn", "r3_pad": "",
}
DATA_SCALE = 255.0  # the paper recipe's network input range


@flop_counter.register_flop_formula(torch.ops.aten._scaled_dot_product_flash_attention_for_cpu)
def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


@flop_counter.register_flop_formula(torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward)
def _cpu_attention_backward_flops(grad_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                                  **kwargs) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_shape, query_shape, key_shape, value_shape)


@dataclass
class Config:
    """A network config name, its Hydra overrides and the run options."""

    text: str
    name: str
    overrides: list[str]
    precision: str = "32"
    channels_last: bool = False
    compile: bool = False
    protocol: str = "tbsn"  # the block measurement's inference protocol (denoise.ops.protocols)
    r3_pad: int | None = None  # None: the protocol's

    @classmethod
    def parse(cls, text: str) -> Config:
        name, *words = text.split()
        options, overrides = dict(RUN_OPTIONS), []
        for word in words:
            key, sep, value = word.partition("=")
            if not sep:
                raise SystemExit(f"error: config {text!r}: {word!r} is not key=value")
            if key in options:
                options[key] = value
            else:
                overrides.append(word)
        precision = options["precision"].removesuffix("-mixed")
        if precision not in ("32", "bf16"):
            raise SystemExit(f"error: config {text!r}: precision={precision!r}, expected 32 or bf16")
        flags = {}
        for key in ("channels_last", "compile"):
            if options[key].lower() not in ("true", "false"):
                raise SystemExit(f"error: config {text!r}: {key}={options[key]!r}, expected true or false")
            flags[key] = options[key].lower() == "true"
        from denoise.ops.protocols import PROTOCOLS

        if options["protocol"] not in PROTOCOLS:
            known = ", ".join(PROTOCOLS)
            raise SystemExit(
                f"error: config {text!r}: protocol={options['protocol']!r}, expected one of {known}"
            )
        r3_pad = options["r3_pad"]
        if r3_pad and not r3_pad.isdigit():
            raise SystemExit(f"error: config {text!r}: r3_pad={r3_pad!r}, expected an integer >= 0")
        protocol = {"protocol": options["protocol"], "r3_pad": int(r3_pad) if r3_pad else None}
        return cls(text, name, overrides, precision, **flags, **protocol)

    def inference(self):
        """The block measurement's inference settings: the protocol, untiled, in the config's precision."""
        from denoise.ops.inference import InferenceSettings
        from denoise.ops.protocols import PROTOCOLS

        values = {**PROTOCOLS[self.protocol], "tile_size": 0, "precision": self.precision}
        if self.r3_pad is not None:
            values["r3_pad"] = self.r3_pad
        return InferenceSettings(**values)

    @property
    def dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.precision == "bf16" else torch.float32


def build_network(config: Config, device: torch.device) -> torch.nn.Module:
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from hydra.utils import instantiate
    from omegaconf.errors import OmegaConfBaseException

    import denoise.cli.config_store  # noqa: F401  (the config nodes built from the code's defaults)

    if not (CONFIGS / f"{config.name}.yaml").is_file():
        known = sorted(p.stem for p in CONFIGS.glob("*.yaml"))
        raise SystemExit(f"error: no network config {config.name!r} in {CONFIGS} (known: {', '.join(known)})")
    torch.manual_seed(0)
    try:
        with initialize_config_dir(str(CONFIGS), version_base="1.3"):
            cfg = compose(config.name, overrides=config.overrides)
        net = instantiate(cfg).to(device)
    except (HydraException, OmegaConfBaseException, ValueError) as error:  # a bad override or value
        reason = " ".join(str(error).split())
        raise SystemExit(f"error: config {config.text!r}: {reason}") from None
    if config.channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net


class Runner:
    """Builds one config and runs its measurements; every ``run_*`` returns phase -> seconds."""

    def __init__(self, config: Config, args: argparse.Namespace, device: torch.device):
        self.config, self.device = config, device
        self.net = build_network(config, device)
        self.parameters = sum(p.numel() for p in self.net.parameters())
        self.in_channels = self.net.in_channels
        self.model = torch.compile(self.net) if config.compile else self.net
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=3e-4, weight_decay=0.01)
        generator = torch.Generator().manual_seed(0)
        shape = (args.batch, self.in_channels, args.size, args.size)
        self.x = self._layout(torch.rand(shape, generator=generator) * DATA_SCALE)
        self.block: torch.Tensor | None = None  # read on the first block measurement only

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.config.channels_last else x

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16")

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def _timed(self, phases: dict[str, float], name: str, step: Callable[[], object]) -> object:
        self._sync()
        start = time.perf_counter()
        result = step()
        self._sync()
        phases[name] = time.perf_counter() - start
        return result

    def run_train(self) -> dict[str, float]:
        phases: dict[str, float] = {}
        self.optimizer.zero_grad(set_to_none=True)

        def forward() -> torch.Tensor:
            with self._autocast():
                return F.l1_loss(self.model(self.x).float(), self.x)

        loss = self._timed(phases, "forward", forward)
        self._timed(phases, "backward", loss.backward)
        self._timed(phases, "optimizer", self.optimizer.step)
        phases["total"] = sum(phases.values())
        return phases

    def run_forward(self) -> dict[str, float]:
        phases: dict[str, float] = {}
        with torch.no_grad(), self._autocast():
            self._timed(phases, "total", lambda: self.model(self.x))
        return phases

    def run_block(self) -> dict[str, float]:
        from denoise.ops.inference import blind_spot_denoise

        settings = self.config.inference()

        def scaled(x: torch.Tensor) -> torch.Tensor:
            return self.model(x * DATA_SCALE) / DATA_SCALE

        scaled.size_multiple = self.net.size_multiple
        self.prepare("block")
        phases: dict[str, float] = {}
        with torch.no_grad():
            self._timed(phases, "total", lambda: blind_spot_denoise(scaled, self.block, settings))
        return phases

    def prepare(self, measure: str) -> None:
        """Read what a measurement needs from disk (the SIDD block), outside what is measured."""
        if measure == "block" and self.block is None:
            self.block = self._layout(sidd_block(self.in_channels))

    def run(self, measure: str) -> dict[str, float]:
        return getattr(self, f"run_{measure}")()

    def flops(self, measure: str) -> int:
        counter = flop_counter.FlopCounterMode(display=False)
        with counter:
            self.run(measure)
        return counter.get_total_flops()


def sidd_block(channels: int) -> torch.Tensor:
    """The first SIDD validation block in [0, 1] when ../shared has it, else uniform noise."""
    if SIDD_BLOCKS.is_file() and channels == 3:
        import scipy.io

        block = scipy.io.loadmat(SIDD_BLOCKS)["ValidationNoisyBlocksSrgb"][0, 0]
        return torch.from_numpy(block).permute(2, 0, 1)[None].float() / 255.0
    return torch.rand(1, channels, 256, 256, generator=torch.Generator().manual_seed(0))


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _median_seconds(step: Callable[[], object], device: torch.device, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def gemm_rates(dtype: torch.dtype, device: torch.device, size: int, repeats: int = 5) -> dict[str, float]:
    """FLOP/s of a size x size x size product of ``dtype`` in each GEMM library torch uses.

    ``matmul``: ``torch.matmul`` (BLAS: MKL on CPU). ``conv``: the same product as a 1x1
    convolution on a channels-last map (oneDNN on CPU, cuDNN on CUDA), which the networks' 1x1
    and 3x3 convolutions run on. They can differ by 2x (MKL on an AMD CPU: 211 vs 451 GFLOP/s).
    """
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    with torch.no_grad():
        x = a.reshape(1, size, 1, size).contiguous(memory_format=torch.channels_last)
        weight = b.reshape(size, size, 1, 1)
        seconds = {
            "matmul": _median_seconds(lambda: a @ b, device, repeats),
            "conv": _median_seconds(lambda: F.conv2d(x, weight), device, repeats),
        }
    return {kernel: 2 * size**3 / s for kernel, s in seconds.items()}


def gemm_peak(dtype: torch.dtype, device: torch.device, size: int, repeats: int = 5) -> tuple[float, dict]:
    """The machine's practical peak for ``dtype``: the faster GEMM library (see :func:`gemm_rates`)."""
    rates = gemm_rates(dtype, device, size, repeats)
    return max(rates.values()), rates


def _status_mb(key: str) -> float:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise KeyError(key)


def _peak_memory_child(text: str, args: argparse.Namespace, measure: str, queue) -> None:
    apply_process_settings(args)
    runner = Runner(Config.parse(text), args, torch.device("cpu"))
    runner.prepare(measure)
    # Restart the peak-RSS counter so that the transient memory of building the model (Hydra,
    # reading the .mat file) does not count: the peak is that of a process doing this work.
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_mb("VmRSS")
    runner.run(measure)
    queue.put((_status_mb("VmHWM"), before))


def cpu_peak_memory(text: str, args: argparse.Namespace, measure: str) -> tuple[float, float]:
    """(peak RSS during the measurement, RSS before it) in MB, from a fresh process (Linux)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_peak_memory_child, args=(text, args, measure, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


@dataclass
class Result:
    config: str
    measure: str
    parameters: int
    dtype: str
    phases: dict[str, list[float]] = field(default_factory=dict)
    flops: int | None = None
    peak_memory_mb: float | None = None
    model_memory_mb: float | None = None
    compile_s: float | None = None

    def add(self, phases: dict[str, float]) -> None:
        for name, seconds in phases.items():
            self.phases.setdefault(name, []).append(seconds)

    def median(self, phase: str = "total") -> float:
        return statistics.median(self.phases[phase])

    def summary(self, matmul_flops: float) -> dict:
        total = self.median()
        out = {
            "config": self.config, "measure": self.measure, "parameters": self.parameters,
            "seconds": {
                name: {"median": statistics.median(ts), "min": min(ts), "max": max(ts), "runs": ts}
                for name, ts in self.phases.items()
            },
            "dtype": self.dtype, "flops": self.flops, "peak_memory_mb": self.peak_memory_mb, "model_memory_mb": self.model_memory_mb,
            "compile_s": self.compile_s,
        }
        if self.flops:
            out["flop_rate"] = self.flops / total
            out["fraction_of_matmul"] = self.flops / total / matmul_flops
        return out


def print_table(summaries: list[dict], peaks: dict[str, tuple[float, dict]]) -> None:
    print()
    header = f"{'config':34s} {'measure':8s} {'median s':>9s} {'min-max s':>15s} {'GFLOP':>8s} " \
             f"{'GFLOP/s':>8s} {'of mm':>6s} {'peak MB':>8s} {'(before)':>8s}  phases (median s)"
    print(header)
    print("-" * len(header))
    for s in summaries:
        total = s["seconds"]["total"]
        flops = f"{s['flops'] / 1e9:8.1f}" if s["flops"] else f"{'-':>8s}"
        rate = f"{s['flop_rate'] / 1e9:8.1f}" if s.get("flop_rate") else f"{'-':>8s}"
        fraction = f"{100 * s['fraction_of_matmul']:5.1f}%" if s.get("fraction_of_matmul") else f"{'-':>6s}"
        memory = " ".join(
            f"{s[key]:8.0f}" if s[key] else f"{'-':>8s}" for key in ("peak_memory_mb", "model_memory_mb")
        )
        phases = ", ".join(
            f"{name} {t['median']:.3f}" for name, t in s["seconds"].items() if name != "total"
        )
        print(
            f"{s['config']:34s} {s['measure']:8s} {total['median']:9.3f} "
            f"{total['min']:7.3f}-{total['max']:<7.3f} {flops} {rate} {fraction} {memory}  {phases}"
        )
    print("matmul peak: " + ", ".join(
        f"{dtype} {peak / 1e9:.0f} GFLOP/s ("
        + ", ".join(f"{kernel} {rate / 1e9:.0f}" for kernel, rate in rates.items()) + ")"
        for dtype, (peak, rates) in peaks.items()
    ))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--config", default="tbsn", help="network config and options (default: tbsn)")
    which.add_argument("--compare", nargs=2, metavar=("A", "B"), help="two configs, run alternately")
    parser.add_argument("--measure", default="train,forward,block", help="comma-separated: " + ", ".join(MEASURES))
    parser.add_argument("--size", type=int, default=128, help="train/forward input side (default 128)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="auto", help="auto (a GPU if there is one), cpu, cuda, cuda:1, ...")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--no-flops", action="store_true", help="skip the FLOP count")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--default-allocator", action="store_true",
        help="keep glibc's malloc thresholds (the entry points raise them: denoise/cli/allocator.py)",
    )
    args = parser.parse_args()
    apply_process_settings(args)

    measures = [m.strip() for m in args.measure.split(",") if m.strip()]
    unknown = sorted(set(measures) - set(MEASURES))
    if unknown:
        raise SystemExit(f"error: --measure: unknown {unknown}, expected some of {', '.join(MEASURES)}")
    device = device_of(args)
    texts = args.compare or [args.config]
    configs = [Config.parse(text) for text in texts]
    runners = [Runner(config, args, device) for config in configs]
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, device {device}, "
          f"{torch.get_num_threads()} threads; input {args.batch}x{runners[0].in_channels}x{args.size}x{args.size}")

    results = []
    for measure in measures:
        pair = [Result(c.text, measure, r.parameters, dtype_name(c.dtype)) for c, r in zip(configs, runners)]
        for runner, result in zip(runners, pair):
            start = time.perf_counter()
            runner.run(measure)  # first warm-up: includes compilation when compile=true
            if runner.config.compile:
                result.compile_s = time.perf_counter() - start
            for _ in range(args.warmup - 1):
                runner.run(measure)
        for _ in range(args.repeats):  # alternate the configs run by run
            for runner, result in zip(runners, pair):
                result.add(runner.run(measure))
        for runner, result in zip(runners, pair):
            if not args.no_flops:
                result.flops = runner.flops(measure)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                runner.run(measure)
                result.peak_memory_mb = torch.cuda.max_memory_allocated(device) / 2**20
            elif not args.no_memory:
                result.peak_memory_mb, result.model_memory_mb = cpu_peak_memory(result.config, args, measure)
            print(f"{result.config} / {measure}: {result.median():.3f} s median of {args.repeats}", flush=True)
        results.extend(pair)

    peaks = {dtype_name(dtype): gemm_peak(dtype, device, args.matmul_size) for dtype in (torch.float32, torch.bfloat16)}
    matmul = {dtype: peak for dtype, (peak, _) in peaks.items()}
    summaries = [r.summary(matmul[r.dtype]) for r in results]
    print_table(summaries, peaks)
    if len(results) == 2 * len(measures):
        for a, b in zip(results[::2], results[1::2]):
            print(f"ratio B/A {b.measure}: {b.median() / a.median():.3f}  (A = {a.config!r}, B = {b.config!r})")
    if args.json:
        report = {
            "machine": {"processor": platform.processor(), "device": str(device), "threads": torch.get_num_threads(),
                        "torch": torch.__version__,
                        "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
            "input": {"batch": args.batch, "size": args.size, "warmup": args.warmup, "repeats": args.repeats},
            "matmul_flop_rate": matmul, "gemm_flop_rates": {dtype: rates for dtype, (_, rates) in peaks.items()},
            "results": summaries,
        }
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

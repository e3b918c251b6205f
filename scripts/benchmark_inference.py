"""Time and peak memory of the inference protocol: per 256x256 SIDD block, and on a large photo.

    python scripts/benchmark_inference.py block --net tbsn --r3 8            # one block, PD 2 + R3 T=8
    python scripts/benchmark_inference.py photo --net tbsn --size 3000 4000  # a 12-megapixel photo, tiled
    python scripts/benchmark_inference.py photo --net tbsn --real-tiles 3    # compute 3 tiles per pass only
    python scripts/benchmark_inference.py photo --net photos_student         # the photos recipe's student
    python scripts/benchmark_inference.py photo --net tbsn --device cuda --precision bf16

``--net`` is a network config of configs/model/net, run through the blind-spot protocol (``--pd``,
``--r3``), or ``photos_student``: the U-Net student of ``experiment=photos_distill`` (32 channels,
4 levels) in one pass on [0, 1] values followed by the recipe's chroma smoothing and detail
restoration, as its checkpoints run in ``predict.py``.

Random weights (timing only). ``--real-tiles K`` runs the network on the first K tiles of each
kind of pass (PD pass, full-resolution R3 passes) and returns zeros for the others: every
image-sized buffer of the protocol is still allocated and the per-tile peak is reached, so the
peak memory is that of the full run, and the time is extrapolated from the mean time per tile.
Each invocation measures one configuration in its own process, so the peak resident memory
(``ru_maxrss``) belongs to it; the line printed also gives the resident memory before inference
(Python, torch, the model). On a GPU (``--device cuda``) the whole image moves to the device, as
``predict.py`` moves it, and the peak is the device memory allocated. On a shared machine the
times are approximate.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

import torch
from benchmark_common import apply_process_settings, device_of
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

import denoise.cli.config_store  # noqa: F401  (the config nodes built from the code's defaults)
from denoise.ops.inference import (
    InferenceSettings,
    NetworkPass,
    blind_spot_denoise,
    network_alignment,
    single_pass_denoise,
)
from denoise.ops.settings import FINISHING_OFF

CONFIG_ROOT = Path(__file__).resolve().parents[1] / "configs"
CONFIGS = CONFIG_ROOT / "model" / "net"
STUDENT = "photos_student"
PHOTOS_RECIPE = CONFIG_ROOT / "experiment" / "photos_distill.yaml"
SIDD_BLOCKS = Path(__file__).resolve().parents[2] / "shared" / "data" / "sidd_samples" / "val_blocks.mat"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def photos_recipe() -> tuple[dict, dict[str, bool | float]]:
    """The student network config of ``experiment=photos_distill`` (the student group's default
    with the recipe's overrides) and the steps the recipe runs after its pass (``smooth_chroma``,
    ``restore_detail``, ``nonlocal_blend``)."""
    recipe = OmegaConf.load(PHOTOS_RECIPE).model
    GlobalHydra.instance().clear()  # a caller may have composed another config before
    with initialize_config_dir(str(CONFIG_ROOT / "model" / "student"), version_base="1.3"):
        student = OmegaConf.merge(compose("unet"), recipe.student)
    return student, {key: type(off)(recipe.inference.get(key, off)) for key, off in FINISHING_OFF.items()}


def build_student(device: torch.device) -> torch.nn.Module:
    """The photos recipe's student; it sees [0, 1] values (``data_scale: 1.0``)."""
    torch.manual_seed(0)
    return instantiate(photos_recipe()[0]).eval().to(device)


def build(name: str, device: torch.device) -> torch.nn.Module:
    if name == STUDENT:
        return build_student(device)
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose(name)
    torch.manual_seed(0)
    net = instantiate(cfg).eval().to(device)

    def scaled(x: torch.Tensor) -> torch.Tensor:  # the network sees [0, 255], as in training
        return net(x * 255.0) / 255.0

    scaled.size_multiple = net.size_multiple  # tiles align to the network's grid
    return scaled


class RealTiles:
    """The network on the first ``count`` calls after each of ``starts`` (the first call of each
    pass), zeros otherwise."""

    def __init__(self, net, count: int, starts: list[int]):
        self.net, self.count, self.starts, self.size_multiple = net, count, starts, net.size_multiple
        self.calls = 0
        self.seconds, self.computed, self.skipped = 0.0, 0, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        index, self.calls = self.calls, self.calls + 1
        if not any(start <= index < start + self.count for start in self.starts):
            self.skipped += 1
            return torch.zeros_like(x)
        synchronize(x.device)
        start = time.perf_counter()
        out = self.net(x)
        synchronize(x.device)
        self.seconds += time.perf_counter() - start
        self.computed += 1
        return out


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def block_input() -> torch.Tensor:
    if SIDD_BLOCKS.is_file():
        import scipy.io

        block = scipy.io.loadmat(SIDD_BLOCKS)["ValidationNoisyBlocksSrgb"][0, 0]
        return torch.from_numpy(block).permute(2, 0, 1)[None].float() / 255.0
    return torch.rand(1, 3, 256, 256)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["block", "photo"])
    parser.add_argument("--net", default="tbsn_small")
    parser.add_argument("--pd", type=int, default=2)
    parser.add_argument("--r3", type=int, default=8)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--ensemble", action="store_true")
    parser.add_argument("--precision", default="32")
    parser.add_argument("--size", type=int, nargs=2, default=[3000, 4000], metavar=("H", "W"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="auto", help="auto (a GPU if there is one), cpu, cuda, cuda:1, ...")
    parser.add_argument(
        "--real-tiles", type=int, default=None, help="photo: compute only K tiles per pass kind"
    )
    parser.add_argument(
        "--default-allocator", action="store_true",
        help="keep glibc's malloc thresholds (predict.py raises them: denoise/cli/allocator.py)",
    )
    args = parser.parse_args()
    apply_process_settings(args)
    device = device_of(args)
    net = build(args.net, device)
    student = args.net == STUDENT
    finishing = photos_recipe()[1] if student else dict(FINISHING_OFF)
    if student:  # one pass, then the recipe's steps after it (the student checkpoint's settings)
        args.pd, args.r3 = 1, 0
    denoise = single_pass_denoise if student else blind_spot_denoise
    settings = InferenceSettings(
        pd_factor=args.pd,
        r3_passes=args.r3,
        **finishing,
        tile_size=args.tile or None,
        tile_overlap=args.overlap,
        ensemble="pass" if args.ensemble else "none",
        precision=args.precision,
    )
    x = (block_input() if args.what == "block" else torch.rand(1, 3, *args.size)).to(device)
    if args.real_tiles:  # the first tiles of the PD pass and of the first R3 pass
        h, w = x.shape[-2:]
        sub_h, sub_w = -(-h // args.pd), -(-w // args.pd)
        pd_calls = NetworkPass(net, settings, settings.tile_size, network_alignment(net)).calls(
            args.pd**2, sub_h, sub_w
        )
        net = RealTiles(net, args.real_tiles, [0, pd_calls])
    before = current_rss_mb()
    calls = []
    with torch.inference_mode():
        if args.what == "block":
            denoise(net, x, settings)  # warm-up
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                denoise(net, x, settings)
                synchronize(device)
                times.append(time.perf_counter() - start)
            seconds = statistics.median(times)
        else:
            start = time.perf_counter()
            out = denoise(
                net, x, settings, progress=lambda done, total: calls.append((done, total))
            )
            synchronize(device)
            seconds = time.perf_counter() - start
            assert out.shape == x.shape
    h, w = x.shape[-2:]
    if args.real_tiles:
        per_tile = net.seconds / net.computed
        print(
            f"computed {net.computed} of {net.computed + net.skipped} tiles, {per_tile:.2f} s per tile: "
            f"~{per_tile * (net.computed + net.skipped) / 60:.0f} min for the whole protocol (extrapolated)"
        )
    print(
        f"{args.what} {h}x{w} net={args.net} PD{args.pd} R3 T={args.r3} ensemble={args.ensemble} "
        f"precision={args.precision} "
        + "".join(f"{key}={value} " for key, value in finishing.items())
        + f"tile={args.tile}/{args.overlap} "
        f"device={device.type} threads={torch.get_num_threads()}: {seconds:.2f} s, "
        + (f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MB"
           if device.type == "cuda" else f"peak RSS {peak_rss_mb():.0f} MB (before inference {before:.0f} MB)")
        + (f", {calls[-1][1]} network calls (tiles)" if calls else "")
    )


if __name__ == "__main__":
    main()

"""Parameters and forward+backward time of every registered block, and of blind-spot net configs.

    python scripts/benchmark_blocks.py                     # blocks at 1x48x128x128, 2 threads
    python scripts/benchmark_blocks.py --nets bsn_bra bsn_msda --threads 2

Times are the median of ``--repeats`` runs after one warm-up; on a shared machine they are
approximate. docs/blocks.md reports numbers measured with this script.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from denoise.nn import BLOCKS, BlockSpec, DualRepresentationFusion, build_block

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "model" / "net"


def median_time(step: Callable[[], None], repeats: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# Each block's reference configuration at 48 channels: the paper's level-1 setting (TBSN for
# gcsa/mwsa/ffn, Restormer for mdta/gdfn, HCANet for cafm/msfn, 3 heads of 16 for msda and bra).
REFERENCE = {
    "gdfn": {"ffn_expansion": 2.66},
    "msfn": {"ffn_expansion": 2.66},
}


def bench_blocks(dim: int, size: int, repeats: int) -> None:
    x = torch.randn(1, dim, size, size, requires_grad=True)
    print(f"block  params  fwd+bwd ms   (1x{dim}x{size}x{size})")
    for name in sorted(BLOCKS):
        block = build_block(name, BlockSpec(dim=dim, **REFERENCE.get(name, {})))
        ms = 1000 * median_time(lambda block=block: block(x).sum().backward(), repeats)
        print(f"{name:6s} {count(block):7d} {ms:10.0f}")
    fuse = DualRepresentationFusion(dim)
    x2 = torch.randn_like(x, requires_grad=True)
    ms = 1000 * median_time(lambda: fuse(x, x2).sum().backward(), repeats)
    print(f"{'mdaf':6s} {count(fuse):7d} {ms:10.0f}")


def bench_nets(names: list[str], size: int, repeats: int) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    import denoise.cli.config_store  # noqa: F401  (the config nodes built from the code's defaults)

    with initialize_config_dir(str(CONFIGS), version_base=None):
        for name in names:
            cfg = compose(config_name=name)
            net = instantiate(cfg)
            optimiser = torch.optim.AdamW(net.parameters(), lr=3e-4)
            x = torch.rand(1, cfg.in_channels, size, size) * 255

            def step(net=net, x=x, optimiser=optimiser):
                loss = (net(x) - x).abs().mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()

            ms = 1000 * median_time(step, repeats)
            print(f"{name:18s} {count(net):9,d} params  train step {ms:7.0f} ms  (1x{cfg.in_channels}x{size}x{size})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--dim", type=int, default=48)
    parser.add_argument("--nets", nargs="*", help="config names in configs/model/net; blocks if omitted")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.nets:
        bench_nets(args.nets, args.size, args.repeats)
    else:
        bench_blocks(args.dim, args.size, args.repeats)


if __name__ == "__main__":
    main()

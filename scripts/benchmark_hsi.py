"""Quality of the hyperspectral recipe against BM4D on one cube with synthetic noise.

    python scripts/benchmark_hsi.py ../shared/data/hsi/jasper_ridge.mat --noise hsi_gaussian --sigma 30 \\
        --minutes 2,5,10 --threads 2
    python scripts/benchmark_hsi.py ../shared/data/hsi/jasper_ridge.mat --noise hsi_noniid --minutes 2,5,10
    python scripts/benchmark_hsi.py cube.mat --cube-crop 48 --bands 0:64 --minutes 0.1   # seconds, for a test

The protocol of ``experiment=hsi_bsn``: the cube min-max normalised to [0, 1] as a whole, synthetic
noise from ``--noise`` (``hsi_gaussian`` with ``--sigma`` on the 0-255 scale; ``hsi_noniid``,
``stripe``, ``deadline``, ``impulse``, ``mixture`` with their configs' settings), and the last 20 %
of the width held out as the test region with one fixed, seeded noise realisation: the validation
cube of the ``HSIDataModule`` itself, so every method scores the very samples training validates on.
Rows:

- ``noisy``: the noisy test region;
- ``bm4d_true_sigma``: the ``bm4d`` package (``pip install denoise[classical]``) told the true noise
  level: ``noise.sigma`` / 255 for i.i.d. Gaussian noise; for any other noise the RMS over bands of
  the realised noise's per-band standard deviation (``bm4d`` takes one sigma or one stationary PSD
  for the whole volume, not a sigma per band);
- ``bm4d_estimated_sigma``: the same with the RMS over bands of a per-band noise estimate from the
  noisy test region alone (``denoise.data.noise_level.band_sigmas``: a Haar-wavelet MAD after the
  neighbouring bands' texture is regressed out): what a user without a clean cube gets;
  BM4D's core (the package's own binary) runs on one thread whatever ``--threads`` says;
- ``<experiment>_<m>min``: ``train.py experiment=<experiment>`` on the same cube and noise with
  ``trainer.max_time`` = m minutes (no step limit; the learning-rate milestones are fractions of the
  budget), one run per ``--minutes`` entry, as a subprocess with ``OMP_NUM_THREADS=<threads>``. It
  trains on the left 80 % only; its last checkpoint denoises the test region.

Metrics (denoise.metrics.hsi, every estimate clipped to [0, 1], peak 1): MPSNR, MSSIM, SAM (degrees)
and the per-band PSNR. Writes ``results.json`` (scores, per-band PSNR, times, steps, sigmas, CPU,
threads, load average), ``table.md``, ``panel.png`` (false colour from ``--rgb-bands``: noisy | each
method | clean), ``band_psnr.png`` (with matplotlib) and ``test_region.npz`` (the noisy, clean and
estimated test cubes) to ``--out``. Extra arguments are train.py overrides for the recipe and the
datamodule, e.g. ``data.seed=1`` or ``trainer.max_steps=50``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

from benchmark_common import importable, machine, machine_load, panel, run_logged

ROOT = Path(__file__).resolve().parents[1]
NOISES = ("hsi_gaussian", "hsi_noniid", "stripe", "deadline", "impulse", "mixture")
METHODS = ("bm4d", "recipe")
# Fractions of the band count: 60 / 30 / 10 of Jasper Ridge's 198 bands (near infrared, red, blue).
RGB_FRACTIONS = (0.303, 0.152, 0.051)


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments stop with one line, like the project's other errors (not usage + error)."""

    def error(self, message: str):
        raise SystemExit(f"error: {message}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cube", type=Path, help="a hyperspectral cube (.mat, .npy, .tif)")
    parser.add_argument("--noise", default="hsi_gaussian", help=f"synthetic noise, one of {', '.join(NOISES)}")
    parser.add_argument("--sigma", type=float, default=None,
                        help="hsi_gaussian's sigma on the 0-255 scale (default: the experiment's)")
    parser.add_argument("--minutes", default="2,5,10", help="training budgets of the recipe, comma-separated")
    parser.add_argument("--threads", type=int, default=2, help="threads of every method (OMP_NUM_THREADS)")
    parser.add_argument("--experiment", default="hsi_bsn", help="the recipe: a configs/experiment name")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default logs/benchmark_hsi/<time>)")
    parser.add_argument("--cube-crop", type=int, default=None,
                        help="a centre spatial crop of this side first (then min-max normalised on its own)")
    parser.add_argument("--bands", default=None, help="a [start:stop) range of bands first, e.g. 0:64 "
                        "(then min-max normalised on its own)")
    parser.add_argument("--rgb-bands", default=None, help="three band indices for the false-colour panel "
                        "(default: 30 %%, 15 %% and 5 %% of the band count, 60,30,10 on Jasper Ridge)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds before a recipe run is stopped")
    parser.add_argument("overrides", nargs="*", help="train.py overrides, e.g. data.seed=1")
    args = parser.parse_intermixed_args(argv)  # overrides may follow the options
    check_args(args)
    return args


def check_args(args: argparse.Namespace) -> None:
    if not args.cube.is_file():
        raise SystemExit(f"error: {args.cube}: no such cube file")
    if args.noise not in NOISES:
        raise SystemExit(f"error: --noise={args.noise}: unknown; choose from {', '.join(NOISES)}")
    if args.sigma is not None and (args.noise != "hsi_gaussian" or args.sigma <= 0):
        raise SystemExit(f"error: --sigma={args.sigma:g}: expected a number > 0 with --noise hsi_gaussian "
                         f"(the other noises draw per-band sigmas from noise.sigmas: override that instead)")
    args.minutes = parse_minutes(args.minutes)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"error: --methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if args.threads < 1:
        raise SystemExit(f"error: --threads={args.threads}: expected an integer >= 1")
    if args.cube_crop is not None and args.cube_crop < 1:
        raise SystemExit(f"error: --cube-crop={args.cube_crop}: expected a side >= 1")
    args.bands = parse_range(args.bands) if args.bands else None
    args.rgb_bands = parse_indices(args.rgb_bands) if args.rgb_bands else None


def parse_minutes(text: str) -> list[float]:
    try:
        minutes = [float(m) for m in text.split(",") if m.strip()]
    except ValueError:
        minutes = []
    if not minutes or not all(math.isfinite(m) and m > 0 for m in minutes):
        raise SystemExit(f"error: --minutes={text}: expected comma-separated minutes > 0, e.g. 2,5,10")
    return minutes


def parse_range(text: str) -> tuple[int, int]:
    start, _, stop = text.partition(":")
    try:
        bands = int(start), int(stop)
    except ValueError:
        bands = (-1, -1)
    if not 0 <= bands[0] < bands[1]:
        raise SystemExit(f"error: --bands={text}: expected start:stop with 0 <= start < stop, e.g. 0:64")
    return bands


def parse_indices(text: str) -> list[int]:
    try:
        indices = [int(i) for i in text.split(",")]
    except ValueError:
        indices = []
    if len(indices) != 3 or min(indices) < 0:
        raise SystemExit(f"error: --rgb-bands={text}: expected three band indices, e.g. 60,30,10")
    return indices


# --- the cube and the test region ----------------------------------------------------------------
def compose_train(overrides: list[str]):
    """train.py's config for ``overrides``, as the recipe's subprocess composes it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import denoise.cli.config_store  # noqa: F401  (the config nodes built from the code's defaults)

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        return compose("train", overrides=overrides)


def noise_overrides(args) -> list[str]:
    """The noise group and its amount."""
    overrides = [f"noise={args.noise}"]
    if args.sigma is not None:
        overrides.append(f"noise.sigma={args.sigma:g}")
    return overrides


def prepare_cube(args, out: Path) -> list[str]:
    """The data overrides for the cube: the file itself, or a .npy of its ``--cube-crop`` / ``--bands``."""
    from denoise.data.formats.hsi_cube import probe_cube, read_cube
    from denoise.errors import DataError

    data = compose_train([f"experiment={args.experiment}", *args.overrides]).data
    try:
        info = probe_cube(args.cube, data.key, data.layout)
        if args.cube_crop is None and args.bands is None:
            return [f"data.files=[{args.cube.resolve()}]", f"data.bands={info.bands}"]
        cube = cropped(read_cube(info), args.cube_crop, args.bands, args.cube)
    except DataError as error:
        raise SystemExit(f"error: {error}") from None
    import numpy as np

    path = out / "cube.npy"
    np.save(path, cube)
    return [f"data.files=[{path.resolve()}]", "data.layout=chw", "data.key=null", f"data.bands={cube.shape[0]}"]


def cropped(cube, side: int | None, bands: tuple[int, int] | None, path: Path):
    """The (bands, H, W) raw ``cube`` cut to a centre ``side`` x ``side`` crop and a band range."""
    count, height, width = cube.shape
    if bands is not None:
        if bands[1] > count:
            raise SystemExit(f"error: --bands={bands[0]}:{bands[1]}: {path} has {count} bands")
        cube = cube[bands[0]:bands[1]]
    if side is not None:
        if side > min(height, width):
            raise SystemExit(f"error: --cube-crop={side}: larger than {path}'s {height} x {width}")
        top, left = (height - side) // 2, (width - side) // 2
        cube = cube[:, top:top + side, left:left + side]
    return cube.copy()


def test_region(overrides: list[str]):
    """(noisy, clean, noise) of the datamodule's validation cube: the held-out test region with its
    one seeded noise realisation, (bands, H, W) float32 tensors in [0, 1] (noisy unclipped)."""
    from hydra.utils import instantiate

    from denoise.errors import UserInputError

    try:
        datamodule = instantiate(compose_train(overrides).data)
        datamodule.setup("fit")
    except UserInputError as error:
        raise SystemExit(f"error: {error}") from None
    if len(datamodule.val_set) != 1:
        raise SystemExit(f"error: expected one held-out test region, the datamodule has {len(datamodule.val_set)}")
    item = datamodule.val_set[0]
    return item["noisy"], item["clean"], datamodule.noise


# --- BM4D -----------------------------------------------------------------------------------------
def iid_sigma(noise) -> float | None:
    """The sigma (0-255) of i.i.d. Gaussian noise of one fixed level; None for any other noise."""
    from denoise.data.noise import GaussianNoise

    return noise.low if isinstance(noise, GaussianNoise) and noise.low == noise.high else None


def true_sigma(noise, noisy, clean) -> tuple[float, str, list[float]]:
    """(sigma, how it was found, per-band standard deviations of the realised noise)."""
    realised = (noisy - clean).double().std(dim=(1, 2))
    if iid_sigma(noise) is not None:
        return iid_sigma(noise) / 255.0, "noise.sigma / 255", realised.tolist()
    rms = realised.pow(2).mean().sqrt().item()
    return rms, "RMS over bands of the realised noise's per-band standard deviation", realised.tolist()


def rms(values) -> float:
    return math.sqrt(sum(float(v) ** 2 for v in values) / len(values))


def bm4d_estimate(noisy, sigma: float):
    """BM4D on a (bands, H, W) array with one sigma, as (bands, H, W); its volume is (H, W, bands)."""
    import bm4d

    return bm4d.bm4d(noisy.transpose(1, 2, 0), sigma).transpose(2, 0, 1)


# --- the recipe -----------------------------------------------------------------------------------
def run_recipe(args, setup: list[str], minutes: float, run_dir: Path) -> dict:
    """train.py for ``minutes``; its last checkpoint, steps, wall seconds and its logged final MPSNR.

    No step limit (the experiment's max_steps would end a long budget early); the user's overrides
    come last, so a ``trainer.max_steps`` among them still wins."""
    from denoise.cli.photos import max_time
    from denoise.lit.checkpointing import last_checkpoint_path

    command = [sys.executable, "train.py", *setup, "trainer.max_steps=-1", f"trainer.max_time={max_time(60 * minutes)}",
               *args.overrides, f"hydra.run.dir={run_dir.resolve()}"]
    seconds = run_logged(command, args.threads, run_dir / "train_stdout.log", args.timeout, "the recipe")
    checkpoint = last_checkpoint_path(run_dir)
    return {"minutes": minutes, "run_dir": str(run_dir), "checkpoint": str(checkpoint), "train_seconds": seconds,
            "steps": checkpoint_step(checkpoint), "logged_val_mpsnr": logged_metric(run_dir, "val/psnr")}


def checkpoint_step(path: Path) -> int:
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=False)["global_step"])


def logged_metric(run_dir: Path, name: str) -> float | None:
    """The last value of ``name`` in the run's CSV log (None without one)."""
    path = run_dir / "csv" / "metrics.csv"
    if not path.is_file():
        return None
    values = [row[name] for row in csv.DictReader(path.open()) if row.get(name)]
    return float(values[-1]) if values else None


def recipe_estimate(checkpoint: str, noisy):
    import torch

    from denoise.lit import load_model

    model = load_model(checkpoint).eval()
    with torch.no_grad():
        return model.denoise(noisy[None])[0]


# --- scores and reports ---------------------------------------------------------------------------
def scores(estimate, clean) -> dict:
    """The HSI protocol's metrics of one (bands, H, W) estimate (clipped to [0, 1]) and its per-band PSNR."""
    from denoise.metrics.hsi import band_psnr, hsi_image_metrics

    estimate = estimate.double().clamp(0, 1)
    return hsi_image_metrics(estimate, clean.double()) | {
        "band_psnr": [round(v, 3) for v in band_psnr(estimate[None], clean.double()[None])[0].tolist()]}


def rgb_bands(requested: list[int] | None, count: int) -> list[int]:
    if requested is None:
        return [min(count - 1, round(f * count)) for f in RGB_FRACTIONS]
    if max(requested) >= count:
        raise SystemExit(f"error: --rgb-bands={','.join(map(str, requested))}: the cube has {count} bands")
    return requested


def false_colour(cubes: list, clean, bands: list[int]):
    """(H, W, 3) false-colour images of (bands, H, W) tensors, each band stretched alike by the clean
    cube's 1st-99th percentiles (the raw values of most bands are dark)."""
    import numpy as np

    reference = clean[bands].double().numpy()
    low = np.percentile(reference, 1, axis=(1, 2))[:, None, None]
    high = np.percentile(reference, 99, axis=(1, 2))[:, None, None]
    scale = np.maximum(high - low, 1e-6)
    return [np.clip((cube[bands].double().numpy() - low) / scale, 0, 1).transpose(1, 2, 0) for cube in cubes]


def write_panel(path: Path, images: list) -> None:
    """Side by side, magnified (nearest) so that a thin test region stays visible."""
    import numpy as np

    from denoise.data.formats.image_files import write_image

    factor = max(1, 256 // images[0].shape[0])
    strip = panel(images, crop=max(images[0].shape[:2]))
    write_image(path, np.repeat(np.repeat(strip, factor, axis=1), factor, axis=2))


def plot_band_psnr(path: Path, results: dict) -> bool:
    if not importable("matplotlib"):
        print("matplotlib is not installed: no band_psnr.png", file=sys.stderr)
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4))
    for method, row in results["scores"].items():
        axes.plot(row["band_psnr"], label=method, linewidth=1)
    axes.set(xlabel="band index", ylabel="PSNR (dB)", title=results["title"])
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def table(results: dict) -> str:
    lines = ["| method | MPSNR (dB) | MSSIM | SAM (deg) | steps | seconds |", "|---|---|---|---|---|---|"]
    for method, row in results["scores"].items():
        steps = results["recipe"].get(method, {}).get("steps", "")
        seconds = results["seconds"].get(method)
        lines.append(f"| {results['labels'][method]} | {row['mpsnr']:.2f} | {row['mssim']:.4f} | "
                     f"{row['sam_deg']:.2f} | {steps} | {'' if seconds is None else f'{seconds:.0f}'} |")
    return "\n".join(lines)


# --- the benchmark --------------------------------------------------------------------------------
def run_bm4d(noisy, clean, noise, results: dict, estimates: dict) -> None:
    """Both BM4D rows: told the true sigma, and the sigma estimated from the noisy test region."""
    from denoise.data.noise_level import band_sigmas

    sigma, how, realised = true_sigma(noise, noisy, clean)
    estimated = [float(s) for s in band_sigmas(noisy.double().numpy())]
    results["sigmas"] = {"true_255": 255 * sigma, "true_from": how,
                         "realised_band_255": [round(255 * s, 3) for s in realised],
                         "estimated_255": 255 * rms(estimated),
                         "estimated_band_255": [round(255 * s, 3) for s in estimated],
                         "estimator": "denoise.data.noise_level.band_sigmas (Haar MAD after regressing out neighbouring "
                                      "bands), RMS over bands"}
    for method, value, label in (("bm4d_true_sigma", sigma, "BM4D, true sigma"),
                                 ("bm4d_estimated_sigma", rms(estimated), "BM4D, estimated sigma")):
        started = time.perf_counter()
        estimates[method] = bm4d_estimate(noisy.double().numpy(), value)
        results["seconds"][method] = time.perf_counter() - started
        results["labels"][method] = f"{label} ({255 * value:.1f})"
        print(f"{method}: sigma {255 * value:.2f} / 255, {results['seconds'][method]:.0f} s", flush=True)


def run_recipes(args, setup: list[str], noisy, out: Path, results: dict, estimates: dict) -> None:
    for minutes in args.minutes:
        method = f"{args.experiment}_{minutes:g}min"
        info = run_recipe(args, setup, minutes, out / method)
        started = time.perf_counter()
        estimates[method] = recipe_estimate(info["checkpoint"], noisy)
        info["denoise_seconds"] = time.perf_counter() - started
        results["recipe"][method] = info
        results["seconds"][method] = info["train_seconds"] + info["denoise_seconds"]
        results["labels"][method] = f"{args.experiment}, {minutes:g} min"


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before numpy / torch / bm4d start their pools
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    if "bm4d" in args.methods and not importable("bm4d"):
        print("bm4d is not installed (pip install 'denoise[classical]'): leaving BM4D out", file=sys.stderr)
        args.methods.remove("bm4d")
    out = args.out or ROOT / "logs" / "benchmark_hsi" / time.strftime("%Y-%m-%d_%H-%M-%S")
    out.mkdir(parents=True, exist_ok=True)
    load_before = machine_load()
    # The experiment, noise and cube: the same for the test region and every recipe run.
    setup = [f"experiment={args.experiment}", *noise_overrides(args), *prepare_cube(args, out)]
    noisy, clean, noise = test_region([*setup, *args.overrides])
    sigma = iid_sigma(noise)
    title = f"{args.cube.name} {tuple(clean.shape)} test region, {args.noise}" + (
        f" sigma {sigma:g}" if sigma is not None else "")
    results = {"cube": str(args.cube), "title": title, "noise": args.noise, "sigma": sigma,
               "experiment": args.experiment, "minutes": args.minutes, "threads": args.threads,
               "overrides": [*setup, *args.overrides], "test_region_shape": list(clean.shape),
               "labels": {"noisy": "noisy"}, "seconds": {}, "recipe": {}}
    estimates = {"noisy": noisy}
    if "bm4d" in args.methods:
        run_bm4d(noisy, clean, noise, results, estimates)
    if "recipe" in args.methods:
        run_recipes(args, setup, noisy, out, results, estimates)
    estimates = {method: torch.as_tensor(np.asarray(e)).float() for method, e in estimates.items()}
    results["methods"] = list(estimates)
    results["scores"] = {method: scores(estimate, clean) for method, estimate in estimates.items()}
    results |= {"load_average": {"before": load_before, "after": machine_load()}, "machine": machine(args.threads),
                "protocol": "HSI: estimates clipped to [0, 1], peak 1; MPSNR, MSSIM (7x7 uniform), SAM (deg)"}
    write_outputs(args, out, results, estimates, clean)
    return results


def write_outputs(args, out: Path, results: dict, estimates: dict, clean) -> None:
    import numpy as np

    bands = rgb_bands(args.rgb_bands, clean.shape[0])
    results["rgb_bands"] = bands
    write_panel(out / "panel.png", false_colour([*estimates.values(), clean], clean, bands))
    results["band_psnr_plot"] = plot_band_psnr(out / "band_psnr.png", results)
    np.savez(out / "test_region.npz", clean=clean.numpy(), **{m: e.numpy() for m, e in estimates.items()})
    text = table(results)
    (out / "table.md").write_text(f"{results['title']}, {args.threads} threads (panel: "
                                  f"{', '.join(results['methods'])}, clean; bands {bands} as RGB)\n\n{text}\n")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(text)
    print(f"load average before {results['load_average']['before']}, after "
          f"{results['load_average']['after']}; written to {out}")


if __name__ == "__main__":
    main()

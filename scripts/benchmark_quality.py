"""Quality of the photos recipe against classical denoisers, on a folder of noisy / clean pairs.

    python scripts/benchmark_quality.py ../shared/data/sidd_samples --minutes 10 --threads 2
    python scripts/benchmark_quality.py ../shared/data/cc15 --minutes 10 --threads 2 --tuned nlm
    python scripts/benchmark_quality.py pairs/ --methods nlm,bm3d          # the classical filters only

The folder holds ``noisy/`` and ``gt/`` with the same file names. The recipe is the one command a
user runs, ``python photos.py data.noisy_dir=<folder>/noisy photos.budget_minutes=<minutes>``
(teacher, student, denoised images), run as a subprocess with ``OMP_NUM_THREADS=<threads>`` and
never shown the clean images; its wall time is that of the whole command. The classical baselines
run in this process on the same images with the same thread count:

- ``nlm``: scikit-image's non-local means, ``h = 0.8 sigma`` (scikit-image's recommendation),
  5x5 patches, 13x13 search, with ``sigma`` estimated from the noisy image itself
  (``skimage.restoration.estimate_sigma``): what a user without clean references gets;
- ``bm3d``: the ``bm3d`` package (``pip install denoise[classical]``), ``sigma_psd`` = the same
  estimate.

Real camera noise is spatially correlated, so the wavelet estimate reads it too low; ``--tuned``
adds, as a labelled reference, the named filters with one strength factor per method chosen on the
ground truth from ``--tuned-factors`` (the best a user could get by trying strengths, and more).

``--outputs label=folder`` scores images already written (by ``predict.py``, an earlier run,
another tool: ``<folder>/<name>.<any extension>``) beside them, without running anything.

Metrics: the sRGB protocol of eval.py (8-bit rounding, per-image PSNR, Gaussian and uniform
SSIM), and on the same rounded images what a photographer sees (:mod:`denoise.metrics.appearance`):
the edge contrast kept (1 = as sharp as the clean photo) and the blotches left in flat areas,
luma and chroma, in 8-bit levels. Writes ``results.json`` (per image, means, times, settings,
machine load), ``table.md`` and ``panels/`` (noisy | each method | clean, a centre crop per image)
to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from benchmark_common import importable, machine, machine_load, panel, run_logged

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("recipe", "nlm", "bm3d")
SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a folder with noisy/ and gt/ (same file names)")
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget of the recipe (photos.budget_minutes)")
    parser.add_argument("--threads", type=int, default=2, help="threads of every method (OMP_NUM_THREADS)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    parser.add_argument("--teacher", action="store_true",
                        help="also the recipe's blind-spot teacher with its own protocol (PD 2 + R3), for comparison")
    parser.add_argument("--tuned", default="", help="nlm and/or bm3d (comma-separated): also run with a strength "
                        "tuned on the ground truth, as a labelled reference")
    parser.add_argument("--tuned-factors", default="1,2,3,4", help="multiples of the estimated sigma tried by --tuned")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default logs/benchmark_quality/<time>)")
    parser.add_argument("--panels", type=int, default=12, help="panels for the first N images")
    parser.add_argument("--crop", type=int, default=256, help="side of the panels' centre crop")
    parser.add_argument("--recipe-args", default="", help="extra photos.py overrides, space-separated")
    parser.add_argument("--timeout", type=float, default=None, help="seconds before the recipe is stopped")
    parser.add_argument("--outputs", default="", help="label=folder[,label=folder]: also score images already "
                        "written there (same names as noisy/, any extension)")
    args = parser.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    args.outputs = parse_outputs(parser, args.outputs)
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        parser.error(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if args.threads < 1:
        parser.error(f"--threads={args.threads}: expected an integer >= 1")
    if args.minutes <= 0:
        parser.error(f"--minutes={args.minutes}: expected a number > 0")
    args.tuned_factors = [float(f) for f in args.tuned_factors.split(",")]
    args.tuned = [m.strip() for m in args.tuned.split(",") if m.strip()]
    if set(args.tuned) - set(FILTERS):
        parser.error(f"--tuned: expected nlm and/or bm3d, got {', '.join(args.tuned)}")
    return args


def parse_outputs(parser: argparse.ArgumentParser, text: str) -> dict[str, Path]:
    outputs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        label, _, folder = item.partition("=")
        if not label or not folder:
            parser.error(f"--outputs: {item!r}; expected label=folder")
        taken = (*METHODS, "noisy", "teacher", *(f"{method}_gt_tuned" for method in FILTERS))
        if label in taken or label in outputs:
            parser.error(f"--outputs: label {label!r} is taken; choose another")
        if not Path(folder).is_dir():
            parser.error(f"--outputs: {folder} is not a folder")
        outputs[label] = Path(folder)
    return outputs


# --- data ------------------------------------------------------------------------------------------
def read_pairs(folder: Path) -> list[tuple]:
    """(name, noisy, clean) float64 (H, W, C) arrays in [0, 1]; SystemExit with one line on bad input."""
    noisy_dir, clean_dir = folder / "noisy", folder / "gt"
    for sub in (noisy_dir, clean_dir):
        if not sub.is_dir():
            raise SystemExit(f"error: {sub}: no such folder; expected {folder} to hold noisy/ and gt/")
    names = sorted(p.name for p in noisy_dir.iterdir() if p.suffix.lower() in SUFFIXES)
    if not names:
        raise SystemExit(f"error: {noisy_dir}: no images ({', '.join(SUFFIXES)})")
    pairs = []
    for name in names:
        if not (clean_dir / name).is_file():
            raise SystemExit(f"error: {clean_dir / name}: missing; every noisy image needs a clean one of the same name")
        (noisy, noisy_info), (clean, clean_info) = (read_picture(d / name) for d in (noisy_dir, clean_dir))
        if noisy.shape != clean.shape or {noisy_info.dtype, clean_info.dtype} != {"uint8"}:
            raise SystemExit(f"error: {name}: noisy {noisy.shape} {noisy_info.dtype} and clean {clean.shape} "
                             f"{clean_info.dtype}; expected two 8-bit images of one size")
        pairs.append((Path(name).stem, noisy, clean))
    return pairs


def read_picture(path: Path) -> tuple:
    """A float64 (H, W, C) array in [0, 1] without any alpha channel, and the file's ImageInfo."""
    from denoise.data.formats.image_files import read_image
    from denoise.errors import DataError

    try:
        image, info = read_image(path)
    except DataError as error:
        raise SystemExit(f"error: {error}") from None
    return image[: info.colour_channels].double().numpy().transpose(1, 2, 0), info


# --- classical baselines -------------------------------------------------------------------------
def estimated_sigma(noisy) -> float:
    from skimage.restoration import estimate_sigma

    return float(estimate_sigma(noisy, channel_axis=-1, average_sigmas=True))


def nlm(noisy, sigma: float):
    from skimage.restoration import denoise_nl_means

    return denoise_nl_means(noisy, h=0.8 * sigma, sigma=sigma, fast_mode=True, patch_size=5, patch_distance=6,
                            channel_axis=-1)


def bm3d_filter(noisy, sigma: float):
    import bm3d

    if noisy.shape[-1] == 3:
        return bm3d.bm3d_rgb(noisy, sigma)
    return bm3d.bm3d(noisy[..., 0], sigma)[..., None]


FILTERS = {"nlm": nlm, "bm3d": bm3d_filter}


# --- the recipe ------------------------------------------------------------------------------------
def run_recipe(args, noisy_dir: Path, run_dir: Path) -> tuple[Path, float, dict]:
    """Run photos.py on the noisy images; (folder of denoised images, wall seconds, stage seconds)."""
    command = [sys.executable, "photos.py", f"data.noisy_dir={noisy_dir.resolve()}",
               f"photos.budget_minutes={args.minutes:g}", f"hydra.run.dir={run_dir.resolve()}",
               *args.recipe_args.split()]
    seconds = run_logged(command, args.threads, run_dir / "recipe_stdout.log", args.timeout, "the recipe")
    stages = json.loads((run_dir / "photos.json").read_text()).get("seconds", {})
    return run_dir / "denoised", seconds, stages


def teacher_outputs(run_dir: Path, pairs) -> dict:
    """The recipe's teacher on every noisy image with the protocol saved in its checkpoint."""
    import numpy as np
    import torch

    from denoise.lit import load_model

    model = load_model(json.loads((run_dir / "photos.json").read_text())["teacher_ckpt"]).eval()
    outputs = {}
    for name, noisy, _ in pairs:
        with torch.no_grad():
            image = model.denoise(torch.from_numpy(noisy.transpose(2, 0, 1)).float()[None])[0]
        outputs[name] = np.clip(image.double().numpy().transpose(1, 2, 0), 0, 1)
    return outputs


def read_outputs(folder: Path, pairs) -> dict:
    """The image named like each pair's noisy photo (any extension) in ``folder``."""
    outputs = {}
    for name, noisy, _ in pairs:
        match = sorted(folder.glob(f"{name}.*"))
        if not match:
            raise SystemExit(f"error: {folder}: no output for {name} (expected {name}.<extension>)")
        outputs[name] = read_picture(match[0])[0]
        if outputs[name].shape != noisy.shape:
            raise SystemExit(f"error: {match[0]}: {outputs[name].shape}; expected the noisy photo's {noisy.shape}")
    return outputs


# --- reporting -------------------------------------------------------------------------------------
def appearance_table(results: dict, columns: list[str]) -> str:
    lines = ["| method | edge contrast | luma blotches | chroma blotches |", "|---|---|---|---|"]
    for c in columns:
        m = results["mean"][c]
        lines.append(f"| {c} | {m['edge_contrast']:.3f} | {m['blotch_luma']:.2f} | {m['blotch_chroma']:.2f} |")
    return "\n".join(lines)


def table(results: dict, columns: list[str]) -> str:
    head = "| image | " + " | ".join(f"{c} PSNR / SSIM" for c in columns) + " |"
    lines = [head, "|" + "---|" * (len(columns) + 1)]
    for name, row in results["per_image"].items():
        cells = [f"{row[c]['psnr']:.2f} / {row[c]['ssim_gaussian']:.3f}" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    mean = results["mean"]
    lines.append("| **mean** | " + " | ".join(f"**{mean[c]['psnr']:.2f} / {mean[c]['ssim_gaussian']:.3f}**"
                                            for c in columns) + " |")
    lines.append("| seconds | " + " | ".join(f"{results['seconds'].get(c, 0.0):.0f}" for c in columns) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before numpy / torch start their pools
    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT))
    from denoise.data.formats.image_files import write_image
    from denoise.metrics.appearance import appearance_metrics
    from denoise.metrics.srgb import quantize_8bit, srgb_image_metrics

    torch.set_num_threads(args.threads)
    if "bm3d" in args.methods and not importable("bm3d"):
        print("bm3d is not installed (pip install 'denoise[classical]'): leaving it out", file=sys.stderr)
        args.methods.remove("bm3d")
    pairs = read_pairs(args.folder)
    out = args.out or ROOT / "logs" / "benchmark_quality" / time.strftime("%Y-%m-%d_%H-%M-%S")
    out.mkdir(parents=True, exist_ok=True)
    load_before = machine_load()

    estimates: dict[str, dict] = {"noisy": {name: noisy for name, noisy, _ in pairs}}
    seconds: dict[str, float] = {}
    sigmas = {name: estimated_sigma(noisy) for name, noisy, _ in pairs}
    recipe_info = {}
    for method in args.methods:
        if method == "recipe":
            folder, seconds["recipe"], recipe_info["stage_seconds"] = run_recipe(args, args.folder / "noisy", out / "recipe")
            estimates["recipe"] = read_outputs(folder, pairs)
            if args.teacher:
                started = time.perf_counter()
                estimates["teacher"] = teacher_outputs(out / "recipe", pairs)
                seconds["teacher"] = time.perf_counter() - started
            continue
        started = time.perf_counter()
        estimates[method] = {name: FILTERS[method](noisy, sigmas[name]) for name, noisy, _ in pairs}
        seconds[method] = time.perf_counter() - started

    for label, folder in args.outputs.items():
        estimates[label] = read_outputs(folder, pairs)

    tuned = {}
    if args.tuned:
        for method in [m for m in args.tuned if m in args.methods]:
            best = None
            for factor in args.tuned_factors:
                started = time.perf_counter()
                images = {name: FILTERS[method](noisy, factor * sigmas[name]) for name, noisy, _ in pairs}
                score = float(np.mean([srgb_image_metrics(torch.from_numpy(images[n].transpose(2, 0, 1)),
                                                          torch.from_numpy(c.transpose(2, 0, 1)))["psnr"]
                                       for n, _, c in pairs]))
                print(f"tuned {method}: {factor} x estimated sigma -> {score:.2f} dB "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
                if best is None or score > best[0]:
                    best = (score, factor, images, time.perf_counter() - started)
            label = f"{method}_gt_tuned"
            estimates[label], seconds[label], tuned[label] = best[2], best[3], {"factor": best[1]}

    columns = list(estimates)
    per_image = {}
    for name, _, clean in pairs:
        reference = torch.from_numpy(clean.transpose(2, 0, 1))
        per_image[name] = {}
        for c in columns:
            estimate = torch.from_numpy(estimates[c][name].transpose(2, 0, 1))
            rounded = quantize_8bit(estimate).numpy().transpose(1, 2, 0)
            per_image[name][c] = {**srgb_image_metrics(estimate, reference), **appearance_metrics(rounded, clean)}
    mean = {c: {k: float(np.mean([per_image[n][c][k] for n in per_image])) for k in per_image[pairs[0][0]][c]}
            for c in columns}
    results = {
        "folder": str(args.folder), "minutes": args.minutes, "threads": args.threads, "methods": columns,
        "per_image": per_image, "mean": mean, "seconds": seconds, "recipe": recipe_info,
        "estimated_sigma_255": {n: round(255 * s, 2) for n, s in sigmas.items()}, "tuned": tuned,
        "load_average": {"before": load_before, "after": machine_load()},
        "machine": machine(args.threads),
        "protocol": "8-bit rounding; per-image PSNR (dB) and SSIM (Gaussian 11x11, sigma 1.5; uniform 7x7 in the JSON); "
                    "edge contrast and flat-area blotches (8-bit levels) of denoise.metrics.appearance",
        "outputs": {label: str(folder) for label, folder in args.outputs.items()},
    }
    panels = out / "panels"
    panels.mkdir(exist_ok=True)
    for name, _, clean in pairs[: args.panels]:
        write_image(panels / f"{name}.png", panel([estimates[c][name] for c in columns] + [clean], args.crop))
    text = table(results, columns) + "\n\n" + appearance_table(results, columns)
    (out / "table.md").write_text(f"{args.folder}, {args.minutes:g} min, {args.threads} threads ("
                                  f"columns: {', '.join(columns)}, clean)\n\n{text}\n")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(text)
    print(f"load average before {load_before}, after {results['load_average']['after']}; written to {out}")
    return results


if __name__ == "__main__":
    main()

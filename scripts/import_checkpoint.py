"""Turn an official TBSN or AP-BSN checkpoint into a checkpoint of this project.

    python scripts/import_checkpoint.py model_sidd.pth --arch tbsn --out tbsn_sidd.ckpt
    python scripts/import_checkpoint.py APBSN_SIDD.pth --arch apbsn --out apbsn_sidd.ckpt
    python scripts/import_checkpoint.py bsn_iter_20000.pth --arch tbsn --net tbsn_small --out small.ckpt
    python scripts/import_checkpoint.py small.pth --arch apbsn --set channels=16 num_blocks=2 --out s.ckpt

The checkpoint carries the paper's recipe (``experiment=sidd_bsn`` for TBSN, ``sidd_apbsn`` for
AP-BSN) with the network config ``--net`` (the paper configuration by default; ``--set`` changes
its keys, for official networks of other sizes) and the paper's
inference protocol, so ``eval.py``, ``predict.py`` and ``denoise.lit.load_model`` take it like a
trained checkpoint. TBSN runs in the phase form with the official global channel attention
(``gcsa_mode=global``); DBSN in the literal form, the one that equals the official network at
every image size. Anything in the file the importer does not recognise stops it with one line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from denoise.errors import UserInputError

ROOT = Path(__file__).resolve().parents[1]

# arch -> (recipe, default network config, network overrides that make it the official network)
ARCHITECTURES = {
    "tbsn": ("sidd_bsn", "tbsn", ["model.net.gcsa_mode=global"]),
    "apbsn": ("sidd_apbsn", "dbsn", ["model.net.form=literal"]),
}


def model_config(arch: str, net: str, net_keys: list[str] | None = None) -> dict:
    """The ``model`` block of the arch's recipe with network config ``net`` and its keys changed by
    ``net_keys`` (``key=value``), as train.py composes it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    import denoise.cli.config_store  # noqa: F401  (the config nodes built from the code's defaults)

    recipe, _, net_overrides = ARCHITECTURES[arch]
    if not (ROOT / "configs" / "model" / "net" / f"{net}.yaml").is_file():
        known = sorted(p.stem for p in (ROOT / "configs" / "model" / "net").glob("*.yaml"))
        raise UserInputError(f"--net {net}: no such network config (known: {', '.join(known)})")
    for item in net_keys or []:
        if "=" not in item:
            raise UserInputError(f"--set {item}: expected key=value (a key of configs/model/net/{net}.yaml)")
    overrides = [f"experiment={recipe}", f"model/net={net}", *net_overrides]
    overrides += [f"model.net.{item}" for item in net_keys or []]
    GlobalHydra.instance().clear()  # a caller may have composed another config before
    try:
        with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
            cfg = compose("train", overrides=overrides)
    except HydraException as error:
        raise UserInputError(
            f"--net {net} --set {' '.join(net_keys or [])}: {' '.join(str(error).split())}"
        ) from None
    model = OmegaConf.to_container(cfg.model, resolve=True)
    for key in ("_target_", "_recursive_"):
        model.pop(key, None)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "official", help="the official checkpoint (.pth), in any layout the official codes save"
    )
    parser.add_argument(
        "--arch", required=True, choices=sorted(ARCHITECTURES), help="which official code wrote it"
    )
    parser.add_argument("--out", required=True, help="the checkpoint to write (.ckpt)")
    parser.add_argument(
        "--net", default=None, help="network config of configs/model/net (default: tbsn / dbsn, the papers')"
    )
    parser.add_argument(
        "--set", nargs="+", default=[], metavar="KEY=VALUE", help="change keys of the network config"
    )
    args = parser.parse_args(argv)
    net = args.net or ARCHITECTURES[args.arch][1]
    described = " ".join([net, *args.set])
    try:
        from denoise.lit.importing import import_official, write_checkpoint

        module = import_official(args.official, args.arch, model_config(args.arch, net, args.set), described)
        imported_from = {"file": str(Path(args.official).resolve()), "arch": args.arch, "net": described}
        path = write_checkpoint(module, args.out, imported_from)
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    settings, parameters = module.inference, sum(p.numel() for p in module.net.parameters())
    print(
        f"wrote {path}: {args.arch} weights in model/net={described} "
        f"({parameters:,} parameters); inference: PD {settings.pd_factor} "
        f"({settings.pd_layout}, pad {settings.pd_pad}), R3 {settings.r3_passes} x {settings.r3_p} "
        f"(pad {settings.r3_pad}); benchmark ensemble: {module.benchmark_inference.ensemble}"
    )
    print(f"evaluate: python eval.py ckpt_path={path} data=sidd_val data.root=/datasets/SIDD")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

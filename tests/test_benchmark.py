"""scripts/benchmark.py runs every measurement and writes a complete report (tiny nets, 1 repeat)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TINY = "tbsn_small dim=8"


def benchmark(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--threads", "1", "--matmul-size", "256", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
    )


def test_compare_runs_both_configs_alternately_and_reports_each(tmp_path):
    out = tmp_path / "bench.json"
    done = benchmark("--compare", TINY, f"{TINY} form=literal", "--measure", "train,forward",
                     "--size", "32", "--repeats", "2", "--no-memory", "--json", str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    results = report["results"]
    assert [(r["config"].endswith("form=literal"), r["measure"]) for r in results] == [
        (False, "train"), (True, "train"), (False, "forward"), (True, "forward")
    ]
    for result in results:
        total = result["seconds"]["total"]
        assert len(total["runs"]) == 2 and total["min"] <= total["median"] <= total["max"]
        assert result["flops"] > 0 and result["fraction_of_matmul"] > 0
    train = results[0]["seconds"]
    phases = sum(train[phase]["runs"][0] for phase in ("forward", "backward", "optimizer"))
    assert abs(phases - train["total"]["runs"][0]) < 1e-9
    # The literal form computes the masked attention logits that the phase split never forms.
    assert results[1]["flops"] > results[0]["flops"]
    assert set(report["matmul_flop_rate"]) == {"float32", "bfloat16"}
    assert "ratio B/A train" in done.stdout and "ratio B/A forward" in done.stdout


@pytest.mark.slow
def test_block_protocol_with_flops_and_peak_memory(tmp_path):
    out = tmp_path / "bench.json"
    done = benchmark("--config", TINY, "--measure", "block", "--repeats", "1", "--json", str(out))
    assert done.returncode == 0, done.stderr
    (block,) = json.loads(out.read_text())["results"]
    assert block["measure"] == "block" and block["seconds"]["total"]["median"] > 0
    assert block["flops"] > 0
    # Peak resident memory of a fresh process doing the protocol, the model already built.
    assert block["peak_memory_mb"] >= block["model_memory_mb"] > 0


def test_bad_configs_get_a_one_line_error():
    done = benchmark("--config", "no_such_net", "--measure", "forward", "--no-memory")
    assert done.returncode != 0
    assert "error: no network config 'no_such_net'" in done.stderr.strip().splitlines()[-1]
    done = benchmark("--config", "tbsn_small precision=fp8", "--measure", "forward")
    assert "precision='fp8', expected 32 or bf16" in done.stderr
    for bad in ("tbsn_small form=diagonal", "tbsn_small no_such_key=1"):
        done = benchmark("--config", bad, "--measure", "forward", "--no-memory")
        last = done.stderr.strip().splitlines()[-1]
        assert done.returncode != 0 and last.startswith(f"error: config {bad!r}: "), done.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
@pytest.mark.parametrize("script", ["benchmark.py", "benchmark_inference.py"])
def test_a_device_that_is_not_there_is_one_line(script):
    words = ["--measure", "forward"] if script == "benchmark.py" else ["block"]
    for device, reason in (("cuda", "no CUDA device is available here"), ("gpu", "not a device name")):
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *words, "--device", device],
                              cwd=ROOT, capture_output=True, text=True, check=False)
        assert done.returncode != 0
        assert done.stderr.strip().splitlines()[-1].startswith(f"error: --device={device}: {reason}"), done.stderr


def test_report_gives_both_gemm_libraries_and_the_faster_as_the_peak(tmp_path):
    out = tmp_path / "bench.json"
    done = benchmark("--config", TINY, "--measure", "forward", "--size", "32", "--repeats", "1",
                     "--no-memory", "--json", str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    for dtype, rates in report["gemm_flop_rates"].items():
        assert set(rates) == {"matmul", "conv"} and min(rates.values()) > 0
        assert report["matmul_flop_rate"][dtype] == max(rates.values())


def test_photo_benchmark_runs_the_photos_recipe_student_with_its_steps_after_the_pass():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import benchmark_inference
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    student, finishing = benchmark_inference.photos_recipe()
    # configs/experiment/photos_distill.yaml: what predict.py runs with the recipe's checkpoints
    assert (student.dim, student.levels) == (32, 4)
    assert finishing == {"smooth_chroma": True, "restore_detail": True, "nonlocal_blend": 0.3, "edge_wiener_passes": 1}
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "benchmark_inference.py"), "photo", "--net", "photos_student",
         "--size", "64", "96", "--threads", "1"],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "photo 64x96 net=photos_student PD1 R3 T=0" in done.stdout
    assert "smooth_chroma=True restore_detail=True nonlocal_blend=0.3 edge_wiener_passes=1" in done.stdout

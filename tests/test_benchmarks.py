"""The benchmark scripts run end to end at smoke sizes and write their JSON records (machine,
date, command, rows).  Their speed targets are judged by running them, not here."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _main(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _record(path):
    record = json.loads(Path(path).read_text())
    assert {"benchmark", "date", "command", "machine", "summary", "rows"} <= set(record)
    assert record["machine"]["cpu_cores"] >= 1 and "torch" in record["machine"]
    return record


def test_data_path_benchmark(tmp_path, capsys):
    out = tmp_path / "data_path.json"
    assert _main("data_path")(["--smoke-test", "--out", str(out)]) == 0
    record = _record(out)
    pipelines = [row["pipeline"] for row in record["rows"]]
    assert pipelines[0].startswith("bdray") and pipelines[1] == "PIL Dataset + DataLoader"
    # both pipelines streamed the whole poisoned split in batches of the same shape
    assert record["rows"][0]["images"] == record["rows"][1]["images"] > 1000
    assert record["rows"][0]["last_batch"] == record["rows"][1]["last_batch"]
    assert "speedup_vs_best_pil" in record["summary"] and "target >= 10" in capsys.readouterr().out


def test_training_loop_benchmark_in_process(tmp_path):
    out = tmp_path / "training_loop.json"
    assert _main("training_loop")(["--smoke-test", "--skip-ray", "--methods", "debias_reweighting", "--out", str(out)]) == 0
    record = _record(out)
    assert [row["loop"] for row in record["rows"]] == ["bare PyTorch", "bdray in-process"]
    assert record["rows"][0]["ratio_vs_bare"] == 1.0
    # part 1: each method's engine epochs paired with bare epochs of the same updates
    methods = record["summary"]["methods"]
    assert [row["method"] for row in methods] == ["debias_reweighting"]
    assert all(row["epochs"] >= 2 and row["engine_epoch_s"] > 0 and row["bare_epoch_s"] > 0 for row in methods)


def test_population_benchmark(tmp_path):
    out = tmp_path / "population.json"
    assert _main("population")(["--smoke-test", "--out", str(out)]) == 0
    rows = _record(out)["rows"]
    assert [row["members"] for row in rows] == [1, 2]
    assert all(row["max_acc_gap"] <= 0.02 for row in rows)


@pytest.mark.skipif(sys.platform != "linux", reason="GPU check message is what matters")
def test_gpu_benchmark_without_a_gpu_says_why(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the skip message does not apply")
    out = tmp_path / "gpu.json"
    assert _main("gpu")(["--out", str(out)]) == 0
    assert "GPU benchmarks skipped: no NVIDIA GPU" in capsys.readouterr().out
    assert _record(out)["summary"]["skipped"] is True


@pytest.mark.ray
def test_sweep_overhead_benchmark(ray_local, tmp_path):
    out = tmp_path / "sweep_overhead.json"
    assert _main("sweep_overhead")(["--smoke-test", "--out", str(out)]) == 0
    row = _record(out)["rows"][0]
    assert row["executor"] == "tune" and row["trials"] == 3 and row["in_process_s"] > 0


@pytest.mark.ray
def test_gpu_benchmark_plumbing_on_cpu(ray_local, tmp_path):
    out = tmp_path / "gpu.json"
    assert _main("gpu")(["--smoke-test", "--allow-cpu", "--out", str(out)]) == 0
    rows = _record(out)["rows"]
    assert {row["benchmark"] for row in rows} == {"train epoch", "dhbe iterations", "packed trials"}
    assert [row["trials"] for row in rows if row["benchmark"] == "packed trials"] == [1, 2]

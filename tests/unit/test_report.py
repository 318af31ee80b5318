"""The benchmark measures what README reports; its targets are goals, not test assertions."""

import json
import subprocess
import sys

import pytest

KEYS = ("loader_speedup", "fit_speedup", "fit_overhead", "mfu", "device")


@pytest.mark.slow
def test_bench_cli_writes_every_figure_to_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "alexnet_utils", "bench", "--samples", "256", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())
    for key in KEYS:
        assert key in results, f"bench.json lacks {key}"
    assert results["device"] in ("cpu", "cuda") or results["device"].startswith("cuda")
    assert results["loader_speedup"] > 0 and results["fit_speedup"] > 0
    assert results["mfu"] is None or 0 < results["mfu"] <= 1, "a utilisation above 100% is impossible"
    assert results["loader_speedup_low"] <= results["loader_speedup"] <= results["loader_speedup_high"]
    assert results["device_loader_img_per_s"] > 0 and results["pil_loader_img_per_s"] > 0
    assert set(results["targets_met"]) == {"loader_speedup", "fit_speedup", "fit_overhead", "mfu"}
    assert "loader speed-up" in proc.stdout and "MFU" in proc.stdout


def test_a_benchmark_started_on_a_busy_machine_says_so_and_judges_no_target(monkeypatch):
    from alexnet_utils.course import report

    figures = {"loader_speedup": 25.0, "fit_speedup": 3.0, "fit_overhead": 0.01, "mfu": 0.8}
    parts = ("loader_comparison", "fit_comparison", "fit_overhead", "model_flop_utilisation")
    for part, key in zip(parts, figures, strict=True):
        monkeypatch.setattr(report, part, lambda *a, key=key, **k: {key: figures[key]})
    monkeypatch.setattr(report.measure, "training_throughput", lambda *a, **k: {})
    monkeypatch.setattr(report.os, "getloadavg", lambda: (3.2, 3.0, 2.5))
    results = report.run(samples=64)
    assert results["busy_before"] and results["busy"] and results["load_before"] == 3.2
    assert set(results["targets_met"].values()) == {None}, "no target is judged on a busy machine"
    monkeypatch.setattr(report.os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    quiet = report.run(samples=64)
    assert quiet["targets_met"] == {"loader_speedup": True, "fit_speedup": True, "fit_overhead": True, "mfu": True}


def test_the_grading_benchmark_hands_in_the_reference_the_blank_and_known_mistakes(tmp_path):
    import shutil

    import nbformat

    from alexnet_utils.course import release, report, wrong_answers

    name = "02_ablation"
    for folder in ("source", "release"):
        shutil.copytree(release.repo_root() / folder / name, tmp_path / folder / name)
    mistakes = [w for w in wrong_answers.suite(name) if not w.accepted][:2]
    assert report.generated_class(tmp_path, [name], wrong=2) == 4
    handed = {p.name for p in (tmp_path / "submitted").iterdir()}
    assert handed == {"reference", "blank", *(f"wrong-{w.id}" for w in mistakes)}
    (src,) = release.notebooks(tmp_path / "source" / name)
    reference = nbformat.read(tmp_path / "submitted" / "reference" / name / src.name, as_version=4)
    assert all(not c.outputs for c in reference.cells if c.cell_type == "code"), "handed in without outputs"
    for w in mistakes:
        nb = nbformat.read(tmp_path / "submitted" / f"wrong-{w.id}" / name / src.name, as_version=4)
        changed = [c.metadata["nbgrader"]["grade_id"] for c, r in zip(nb.cells, reference.cells, strict=True)
                   if c.source != r.source]
        assert changed == [w.cell], f"{w.id} patches its own solution cell only"

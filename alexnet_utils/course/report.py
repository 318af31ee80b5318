"""The course's standing benchmark: ``python -m alexnet_utils bench``.

Each figure compares two things measured in the same run on the same
machine, in alternating rounds (``measure.interleaved``), so load that hits
one side hits the other too; a ratio is the median over rounds, printed with
the rounds' interquartile range, and flagged when the rounds disagree so much
that the machine's load decided it. Targets (for a 2-core CPU) are printed
next to the figures; they are goals for this benchmark, never assertions in
the unit tests.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from torch import nn

from .. import data, measure, models
from ..runtime import autocast, autocast_dtype, default_device, usable_cores
from ..train import fit

TARGETS = {  # key: (comparison, threshold)
    "loader_speedup": (">=", 20.0),
    "fit_speedup": (">=", 2.5),
    "fit_overhead": ("<=", 0.05),
    "mfu": (">=", 0.60),
    "smoke_all_notebooks_s": ("<=", 300.0),
    "autograde_submission_s": ("<=", 360.0),
}


def _auto_dtype(device) -> torch.dtype | None:
    """What fit's precision="auto" picks for the benchmark's mini AlexNet on 32x32 images on ``device``."""
    mflops = measure.count_flops(models.mini_alexnet(), (1, 3, 32, 32)) / 1e6
    return autocast_dtype("auto", torch.device(device), mflops)


def _ratio(timed: measure.Interleaved, key: str) -> dict:
    """A ratio's median, its spread over rounds and whether load decided it, under one key."""
    low, high = timed.spread
    return {key: timed.ratio, f"{key}_low": low, f"{key}_high": high, f"{key}_busy": timed.busy}


def loader_comparison(images: data.ImageSet, batch_size: int, device, rounds: int = 5) -> dict:
    """(a) DeviceLoader vs DataLoader + PIL with 2 workers, same crop + flip + normalise, interleaved."""
    fast = data.DeviceLoader(images, batch_size, augment="crop_flip", device=device, channels_last=True)
    slow = data.pil_loader(images, batch_size, augment="crop_flip", num_workers=2)

    def drain(loader):
        def run():
            for x, _ in loader:
                x = x.to(device, non_blocking=True)
        return run

    timed = measure.interleaved(drain(fast), drain(slow), rounds=rounds, device=device)
    n = len(images)
    return {"device_loader_img_per_s": n / min(timed.a_s), "pil_loader_img_per_s": n / min(timed.b_s),
            **_ratio(timed, "loader_speedup")}


def _seed_style_epoch(model, loader, optimizer, device):
    """The loop a first PyTorch tutorial writes: fp32, NCHW, a PIL DataLoader."""
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def fit_comparison(images: data.ImageSet, batch_size: int, device, rounds: int = 3) -> dict:
    """(b) ``fit`` with its defaults vs the seed-style loop, same model and batches, epochs interleaved."""
    torch.manual_seed(0)
    seed_model = models.mini_alexnet().to(device)
    seed_opt = torch.optim.SGD(seed_model.parameters(), lr=0.01, momentum=0.9)
    pil = data.pil_loader(images, batch_size, augment="crop_flip", num_workers=2, drop_last=True)

    torch.manual_seed(0)
    fast_model = models.mini_alexnet()
    fast_opt = torch.optim.SGD(fast_model.parameters(), lr=0.01, momentum=0.9)
    loader = data.DeviceLoader(images, batch_size, augment="crop_flip", device=device, drop_last=True,
                               channels_last=True)
    timed = measure.interleaved(
        lambda: fit(fast_model, loader, epochs=1, optimizer=fast_opt, device=device, progress=False),
        lambda: _seed_style_epoch(seed_model, pil, seed_opt, device), rounds=rounds, device=device)
    n = len(loader) * batch_size
    return {"seed_loop_img_per_s": n / min(timed.b_s), "fit_img_per_s": n / min(timed.a_s),
            **_ratio(timed, "fit_speedup"), "fit_precision": str(_auto_dtype(device) or "fp32")}


def fit_overhead(images: data.ImageSet, batch_size: int, device, batches: int = 16, rounds: int = 5) -> dict:
    """(c) ``fit`` vs a bare loop over the very same device tensors, dtype and layout, interleaved."""
    device = torch.device(device)
    loader = data.DeviceLoader(images, batch_size, augment="crop_flip", device=device, channels_last=True)
    fixed = [b for _, b in zip(range(batches), loader, strict=False)]
    dtype = _auto_dtype(device)

    torch.manual_seed(0)
    bare_model = models.mini_alexnet().to(device).to(memory_format=torch.channels_last)
    bare_opt = torch.optim.SGD(bare_model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def bare_epoch():
        for x, y in fixed:
            with autocast(device, dtype):
                loss = loss_fn(bare_model(x).float(), y)
            bare_opt.zero_grad(set_to_none=True)
            loss.backward()
            bare_opt.step()

    torch.manual_seed(0)
    fit_model = models.mini_alexnet()
    fit_opt = torch.optim.SGD(fit_model.parameters(), lr=0.01, momentum=0.9)
    timed = measure.interleaved(
        bare_epoch, lambda: fit(fit_model, fixed, epochs=1, optimizer=fit_opt, device=device, progress=False),
        rounds=rounds, device=device)
    ratio = _ratio(timed, "fit_overhead")
    return {"bare_loop_s": min(timed.a_s), "fit_s": min(timed.b_s),
            **{k: v - 1 if isinstance(v, float) else v for k, v in ratio.items()}}


def model_flop_utilisation(images: data.ImageSet, batch_size: int, device, rounds: int = 7) -> dict:
    """(d) FLOP/s of fit's training step over a matmul peak, the two timed in alternating rounds."""
    device = torch.device(device)
    model = models.mini_alexnet().to(device)
    flops_per_image = measure.count_flops(model, (batch_size, 3, 32, 32), backward=True) / batch_size
    dtype = _auto_dtype(device) or torch.float32
    loader = data.DeviceLoader(images, batch_size, augment="crop_flip", device=device, channels_last=True)
    x, y = next(iter(loader))
    model = model.to(memory_format=torch.channels_last)
    precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")
    step = measure.train_step_fn(model, x, y, precision)
    result = measure.utilisation(step, flops_per_image * batch_size, dtype=dtype, rounds=rounds, device=device)
    return {"train_flops_per_image": flops_per_image, "mfu_dtype": str(dtype), **result}


def curriculum_timings() -> dict:
    """(e) wall time to execute every source notebook (smoke) and to autograde one submission."""
    import os

    import nbformat
    from nbclient import NotebookClient

    from . import release as course

    root = course.repo_root()
    old = os.environ.get("ALEXNET_PROFILE")
    os.environ["ALEXNET_PROFILE"] = "smoke"
    try:
        t0 = time.perf_counter()
        per_notebook = {}
        for name in course.assignments(root):
            for path in course.notebooks(root / "source" / name):
                t1 = time.perf_counter()
                nb = nbformat.read(path, as_version=4)
                NotebookClient(nb, timeout=600, kernel_name="python3",
                               resources={"metadata": {"path": str(path.parent)}}).execute()
                per_notebook[name] = time.perf_counter() - t1
        all_s = time.perf_counter() - t0
    finally:
        if old is None:
            os.environ.pop("ALEXNET_PROFILE", None)
        else:
            os.environ["ALEXNET_PROFILE"] = old
    autograde_s = course.time_autograde_one_submission(root)
    return {"smoke_all_notebooks_s": all_s, "smoke_per_notebook_s": per_notebook,
            "autograde_submission_s": autograde_s}


def generated_class(course: Path, names: list[str], wrong: int = 3) -> int:
    """Hand in, for each assignment: the reference, the blank release and ``wrong`` known wrong answers.

    The wrong answers are the first of tests/wrong_answers/<assignment>.yaml (patches of one solution
    region each), so every hand-in has a known score. Returns the number of hand-ins.
    """
    import nbformat

    from . import release as course_mod
    from .wrong_answers import apply, suite

    count = 0
    for name in names:
        (src,) = course_mod.notebooks(course / "source" / name)
        reference = course_mod.without_outputs(nbformat.read(src, as_version=4))
        hand_ins = {"reference": reference, "blank": nbformat.read(course / "release" / name / src.name, as_version=4)}
        for mistake in [w for w in suite(name) if not w.accepted][:wrong]:
            hand_ins[f"wrong-{mistake.id}"] = apply(reference, mistake)
        for student, nb in hand_ins.items():
            folder = course / "submitted" / student / name
            folder.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, folder / src.name)
            count += 1
    return count


def grading_throughput(names: list[str] | None = None, wrong: int = 3, worker_counts: list[int] | None = None,
                       students: int = 200, notebooks: int = 10, machine_cores: int = 16) -> dict:
    """(f) Submissions per minute: the serial path, then Dask with 1, 2 and every core's worth of workers.

    Each run grades the same generated class (reference, blank, known wrong answers) in a fresh copy
    of the course, cluster start-up included; ratios are to the serial run of this benchmark run.
    The projection for ``students`` x ``notebooks`` assumes this class's mix of notebooks and the
    parallel efficiency measured at the largest worker count here.
    """
    import shutil
    import tempfile

    from . import grading, parallel
    from . import release as course_mod

    root = course_mod.repo_root()
    names = names or course_mod.assignments(root)[:1]
    counts = worker_counts or sorted({1, 2, usable_cores()})
    with tempfile.TemporaryDirectory(prefix="alexnet-bench-grading-") as tmp:
        template = Path(tmp) / "template"
        template.mkdir()
        shutil.copy2(root / "nbgrader_config.py", template / "nbgrader_config.py")
        for folder in ("source", "release"):
            for name in names:
                shutil.copytree(root / folder / name, template / folder / name)
        n = generated_class(template, names, wrong)

        def fresh(label):
            dest = Path(tmp) / label
            shutil.copytree(template, dest)
            return dest

        serial = fresh("serial")
        t0 = time.perf_counter()
        expected = grading.grade(serial, names)
        serial_s = time.perf_counter() - t0
        runs = []
        for w in counts:
            course = fresh(f"workers-{w}")
            t0 = time.perf_counter()
            outcomes = parallel.grade_class(course, names, workers=w, progress=False)
            seconds = time.perf_counter() - t0
            ledger = parallel.ledger_stats(course)
            tasks = sorted(e["seconds"] for e in ledger)
            runs.append({"workers": w, "seconds": seconds, "per_min": 60 * n / seconds, "ratio": serial_s / seconds,
                         "same_as_serial": [o.__dict__ for o in outcomes] == [o.__dict__ for o in expected],
                         "task_s_median": tasks[len(tasks) // 2] if tasks else None,
                         "peak_worker_mb": max((e["peak_rss"] for e in ledger), default=0) / 2**20})
    best = max(runs, key=lambda r: r["workers"])
    efficiency = best["ratio"] / best["workers"]  # of linear scaling, against the serial path
    total = students * notebooks
    per_submission = serial_s / n
    one_machine = total * per_submission / (machine_cores * efficiency)
    return {"grading": {
        "assignments": names, "submissions": n, "cores": usable_cores(), "serial_s": serial_s,
        "serial_per_min": 60 * n / serial_s, "runs": runs, "efficiency": efficiency,
        "projection": {"students": students, "notebooks": notebooks, "machine_cores": machine_cores,
                       "serial_h": total * per_submission / 3600, "one_machine_h": one_machine / 3600,
                       "memory_gb": machine_cores * max(r["peak_worker_mb"] for r in runs) / 1024}}}


def grading_table(g: dict, machines: tuple[int, ...] = (1, 4, 10)) -> list[str]:
    p = g["projection"]
    lines = ["", f"(f) grading throughput: {g['submissions']} generated hand-ins of {', '.join(g['assignments'])} "
                 f"(reference, blank, known wrong answers) on {g['cores']} cores",
             f"{'':4}{'run':<28} {'seconds':>8} {'subm/min':>9} {'vs serial':>10} {'peak MB/worker':>15}  same",
             f"{'':4}{'serial (grading.grade)':<28} {g['serial_s']:>8.0f} {g['serial_per_min']:>9.1f} {'1.00x':>10} "
             f"{'-':>15}  -"]
    for r in g["runs"]:
        lines.append(f"{'':4}{'Dask, ' + str(r['workers']) + ' worker' + 's' * (r['workers'] > 1):<28} "
                     f"{r['seconds']:>8.0f} {r['per_min']:>9.1f} {r['ratio']:>9.2f}x {r['peak_worker_mb']:>15.0f}  "
                     f"{'yes' if r['same_as_serial'] else 'NO'}")
    lines.append(f"{'':4}projected {p['students']} students x {p['notebooks']} notebooks: serial "
                 f"{p['serial_h']:.1f} h; one {p['machine_cores']}-core machine {p['one_machine_h']:.2f} h "
                 f"(at {g['efficiency']:.0%} of linear, {p['memory_gb']:.0f} GB); "
                 + ", ".join(f"{m} machines {p['one_machine_h'] / m * 60:.0f} min" for m in machines if m > 1))
    return lines


BUSY_LOAD = 0.5  # 1-minute load from other work, before the benchmark starts, above which no target is judged


def other_load() -> float | None:
    """The 1-minute load average now, before the benchmark adds its own (None where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def run(curriculum: bool = False, device=None, batch_size: int = 128, samples: int = 4096,
        grading: bool = False) -> dict:
    """Every figure, each against its baseline in alternating rounds; targets judged on a quiet machine only.

    Interleaving evens out load that comes and goes, not load that slows one side more than the
    other (the PIL loader's worker processes compete with other work more than the device loader
    does): a benchmark that starts on a busy machine says so and judges no target.
    """
    load = other_load()
    device = torch.device(device) if device else default_device()
    images = data.shapes(samples)
    results = {"device": str(device), "device_name": _device_name(device), "torch": torch.__version__,
               "threads": torch.get_num_threads(), "batch_size": batch_size, "samples": samples,
               "load_before": load, "cores": usable_cores(),
               "busy_before": load is not None and load > BUSY_LOAD}
    results.update(loader_comparison(images, batch_size, device))
    results.update(fit_comparison(images, batch_size, device))
    results.update(fit_overhead(images, batch_size, device))
    results.update(model_flop_utilisation(images, batch_size, device))
    variants = [("fp32", False), ("fp32", True), ("bf16", True)]
    if device.type == "cuda":
        variants.append(("fp16", True))
    results["throughput"] = [
        measure.training_throughput(models.mini_alexnet(), batch_size, device=device, precision=p,
                                  channels_last=cl, steps=5)
        for p, cl in variants
    ]
    if curriculum:
        results.update(curriculum_timings())
    if grading:
        results.update(grading_throughput())
    judged = not results["busy_before"]
    results["targets_met"] = {k: _meets(results[k], *TARGETS[k]) if judged and results[k] is not None else None
                              for k in TARGETS if k in results}
    busy = [k for k in ("loader_speedup", "fit_speedup", "fit_overhead") if results.get(f"{k}_busy")]
    results["busy"] = bool(busy) or results["mfu"] is None or results["busy_before"]
    return results


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return f"{model}, {torch.get_num_threads()} threads"


def _meets(value: float, op: str, threshold: float) -> bool:
    return value >= threshold if op == ">=" else value <= threshold


def _spread(r: dict, key: str, fmt) -> str:
    """A ratio with its interquartile range over rounds, and a warning when load decided it."""
    text = f"{fmt(r[key])} [{fmt(r[key + '_low'])}, {fmt(r[key + '_high'])}]"
    return text + (" (busy machine)" if r.get(key + "_busy") else "")


def table(r: dict) -> str:
    def row(label, value, key=None):
        target = ""
        if key in TARGETS:
            op, th = TARGETS[key]
            met = r["targets_met"].get(key)
            target = f"target {op} {th:g}  {'met' if met else 'NOT MET' if met is not None else 'not judged'}"
        return f"{label:<58} {value:>26}  {target}"

    lines = [f"device: {r['device']} ({r['device_name']}), torch {r['torch']}, "
             f"mini AlexNet, batch {r['batch_size']}, {r['samples']} CIFAR-shaped images",
             *([f"BUSY MACHINE: other work had a 1-minute load of {r['load_before']:.1f} on {r['cores']} cores "
                f"before this benchmark started; no target is judged. Run it again on a quiet machine."]
               if r.get("busy_before") else []),
             "",
             row("(a) DeviceLoader, crop+flip+normalise, channels_last [img/s]",
                 f"{r['device_loader_img_per_s']:,.0f}"),
             row("    DataLoader + PIL, 2 workers, same augmentation [img/s]", f"{r['pil_loader_img_per_s']:,.0f}"),
             row("    loader speed-up [rounds' IQR]", _spread(r, "loader_speedup", lambda v: f"{v:.1f}x"),
                 "loader_speedup"),
             row(f"(b) fit defaults ({r['fit_precision']}, channels_last) [img/s]", f"{r['fit_img_per_s']:,.0f}"),
             row("    seed-style loop (PIL DataLoader, fp32, NCHW) [img/s]", f"{r['seed_loop_img_per_s']:,.0f}"),
             row("    fit speed-up [rounds' IQR]", _spread(r, "fit_speedup", lambda v: f"{v:.2f}x"), "fit_speedup"),
             row("(c) fit overhead vs a bare loop on the same tensors", _spread(r, "fit_overhead",
                                                                             lambda v: f"{v:+.1%}"), "fit_overhead"),
             row(f"(d) MFU: {r['achieved_flops'] / 1e9:,.0f} of {r['matmul_peak_flops'] / 1e9:,.0f} GFLOP/s "
                 f"({r['mfu_dtype'].replace('torch.', '')} matmul peak)",
                 f"{r['mfu']:.0%}" if r["mfu"] is not None else "not measured", "mfu")]
    if r.get("mfu_note"):
        lines.append(f"    {r['mfu_note']}")
    if "smoke_all_notebooks_s" in r:
        lines += [row("(e) every notebook, smoke profile [s]", f"{r['smoke_all_notebooks_s']:.0f}",
                      "smoke_all_notebooks_s"),
                  row("    autograde one complete submission [s]", f"{r['autograde_submission_s']:.0f}",
                      "autograde_submission_s")]
    lines += ["", f"{'training step throughput':<24} {'layout':<14} {'img/s':>8} {'ms/step':>8} {'peak MB':>8}"]
    for t in r["throughput"]:
        layout = "channels_last" if t["channels_last"] else "NCHW"
        lines.append(f"{t['precision']:<24} {layout:<14} {t['img_per_s']:>8.0f} {t['step_ms']:>8.1f} "
                     f"{t['peak_mem_mb']:>8.0f}")
    if "grading" in r:
        lines += grading_table(r["grading"])
    if r.get("busy"):
        lines += ["", "The machine was too busy to measure some ratios (flagged above): their rounds disagree by "
                      f"more than {measure.BUSY_SPREAD:.0%} of the median. Run again on a quiet machine."]
    return "\n".join(lines)

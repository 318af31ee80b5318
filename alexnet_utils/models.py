"""Every network in the course, built from one config (architectures only: weights live in ``weights``).

The layout follows torchvision's AlexNet (``features``, ``avgpool``,
``classifier``) so that weights, hooks and printouts look the same
everywhere in the course; each variant below is only a different config.
"""

from __future__ import annotations

__all__ = [
    "ACTIVATIONS", "NORMS", "INITS", "PAPER_LRN", "AlexNetConfig", "AlexNet", "alexnet_2012",
    "alexnet_torchvision", "mini_config", "mini_alexnet", "count_parameters", "replace_head", "paper_names",
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


def paper_names(model: nn.Module) -> dict[str, str]:
    """Module names -> the paper's layer names: ``features.0`` -> ``conv1``, ``classifier.1`` -> ``fc6``."""
    names = {}
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    names.update({n: f"conv{i + 1}" for i, n in enumerate(convs)})
    names.update({n: f"fc{len(convs) + i + 1}" for i, n in enumerate(linears)})
    return names

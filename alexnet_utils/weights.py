"""Pretrained weights and the offline stand-ins that replace them, one record per weights set.

Architectures live in ``models``; this module knows where trained weights come from:
torchvision's ImageNet AlexNet (its record carries the URL, checksum, input size,
preprocessing and categories, as torchvision's weights enums do) and, offline, small
networks trained here in seconds on the generated ``shapes`` set.
"""

from __future__ import annotations

__all__ = [
    "WeightsRecord", "ALEXNET_IMAGENET", "OFFLINE_STAND_INS", "pretrained_alexnet", "trained_stand_in",
    "transfer_stand_in",
]

from dataclasses import dataclass

import torch
from torch import nn

from . import data, train
from .models import AlexNet, alexnet_torchvision, mini_alexnet
from .profiles import run_profile
from .runtime import run_path


@dataclass(frozen=True)
class WeightsRecord:
    """Everything a set of pretrained weights needs beside its tensors, in one place."""

    name: str
    title: str
    input_size: int  # the crop the network was trained on
    resize: int  # the shorter side before the centre crop
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_classes: int

    @property
    def url(self) -> str:
        return data.ALEXNET_WEIGHTS_URL

    @property
    def sha256_prefix(self) -> str:
        """torchvision names weight files ``<name>-<first 8 hex of SHA-256>.pth``."""
        return self.url.rsplit("/", 1)[-1].rsplit(".", 1)[0].rsplit("-", 1)[-1]

    def path(self):
        return data.weights_path()

    def categories(self) -> list[str]:
        """The ImageNet class names, from torchvision's own metadata (no download)."""
        from torchvision.models import AlexNet_Weights

        return list(AlexNet_Weights.IMAGENET1K_V1.meta["categories"])

    def transforms(self):
        """The evaluation preprocessing the weights expect: resize, centre crop, scale, normalise."""
        from torchvision.transforms import v2

        return v2.Compose([v2.Resize(self.resize, antialias=True), v2.CenterCrop(self.input_size),
                           v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(self.mean, self.std)])

    def state_dict(self) -> dict:
        """The weights, verified (once per process per file) and fetched first when missing."""
        return data.load_weights("alexnet")


ALEXNET_IMAGENET = WeightsRecord("alexnet_imagenet", "torchvision's ImageNet AlexNet (IMAGENET1K_V1)",
                                 input_size=224, resize=256, mean=data.IMAGENET_MEAN, std=data.IMAGENET_STD,
                                 num_classes=1000)

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
            model.load_state_dict(ALEXNET_IMAGENET.state_dict())
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
                                checkpoint=run_path(name, run))
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

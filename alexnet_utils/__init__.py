"""alexnet_utils: what the AlexNet course's notebooks import as ``au``."""

from . import bench, data, models, train, viz
from .data import DeviceLoader, ImageSet, load, loaders
from .models import (
                     AlexNet,
                     AlexNetConfig,
                     alexnet_2012,
                     alexnet_torchvision,
                     count_parameters,
                     mini_alexnet,
                     pretrained_alexnet,
)
from .profiles import Profile, profile
from .train import History, evaluate, fit

__version__ = "0.1.0"
__all__ = [
    "bench", "data", "models", "train", "viz", "ImageSet", "DeviceLoader", "load", "loaders",
    "AlexNet", "AlexNetConfig", "alexnet_2012", "alexnet_torchvision", "count_parameters",
    "mini_alexnet", "pretrained_alexnet", "Profile", "profile", "History", "evaluate", "fit",
]

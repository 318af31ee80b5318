"""alexnet_utils: what the AlexNet course's notebooks import as ``au``.

The rule of the public API: a notebook calls only names listed in ``__all__``
here (``au.fit``) or in a listed module's own ``__all__`` (``au.viz.bar_chart``).
The instructor's tools live in ``alexnet_utils.course`` and are never imported here.
"""

from . import checkpoints, claims, data, experiment, measure, models, profiles, runtime, session, train, viz, weights
from .claims import Claim, claims_table
from .data import DeviceLoader, ImageSet, load, loaders
from .experiment import Comparison, Variant, compare, differences
from .measure import count_flops, layer_table
from .models import (
    AlexNet,
    AlexNetConfig,
    alexnet_2012,
    alexnet_torchvision,
    count_parameters,
    mini_alexnet,
    mini_config,
)
from .profiles import RunProfile, run_profile
from .runtime import run_path
from .session import start
from .train import History, TrainConfig, evaluate, fit
from .weights import pretrained_alexnet

__version__ = "0.3.0"
__all__ = [
    # modules, for their own __all__
    "checkpoints", "claims", "data", "experiment", "measure", "models", "profiles", "runtime", "session", "train",
    "viz", "weights",
    # starting a notebook
    "start", "run_profile", "RunProfile",
    # networks
    "AlexNet", "AlexNetConfig", "alexnet_2012", "alexnet_torchvision", "mini_alexnet", "mini_config",
    "pretrained_alexnet", "count_parameters",
    # data
    "ImageSet", "DeviceLoader", "load", "loaders",
    # training and comparing
    "TrainConfig", "History", "fit", "evaluate", "run_path", "Variant", "Comparison", "compare", "differences",
    # measuring and reporting
    "layer_table", "count_flops", "Claim", "claims_table",
]

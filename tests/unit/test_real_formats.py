"""The real-data path (``quick``/``full``) on a tiny cache in the real on-disk formats.

Nothing can be downloaded on a test machine, so ``tests/realdata.py`` writes
every dataset and the weights file as the real downloads lay them out, and
points the checksum checks at the fake files. What runs here is the code a real
download meets: the checksum checks, torchvision's dataset classes, the
resizing of the photo sets, the loaders and the weights file.
"""

import gzip
import pickle
import shutil

import pytest
import torch
from torchvision.datasets import Flowers102
from torchvision.datasets.utils import check_integrity

import alexnet_utils as au
from alexnet_utils import data, session
from alexnet_utils.data import DatasetCorruptError

from ..realdata import apply_patches, copy_dataset

DATASETS = ("cifar10", "mnist", "flowers102", "oxford_pets")
SPLITS = ("train", "test")
# torchvision's own MD5s, read when this module is imported, before any test patches them
TORCHVISION_MD5S = {name: data._checksums(name) for name in DATASETS}


@pytest.fixture(scope="session")
def fake(fake_cache):
    return fake_cache


@pytest.fixture(autouse=True)
def quick_on_fake_cache(monkeypatch, offline_smoke_profile, fake):
    """The quick profile (real data), reading the fake cache, with its MD5s and no network."""
    monkeypatch.setenv("ALEXNET_PROFILE", "quick")
    monkeypatch.setenv("ALEXNET_DATA", str(fake.root))
    apply_patches(fake, monkeypatch)
    return fake


def flip_one_byte(path):
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))
    return bytes(content)


# --------------------------------------------------------------------------- the checks

@pytest.mark.parametrize("name", DATASETS)
def test_fake_files_pass_only_the_patched_checksums(name, fake):
    root = fake.root / name
    files = [f"{name}/{rel}" for rel, _ in TORCHVISION_MD5S[name]]
    assert [(f"{name}/{rel}", md5) for rel, md5 in data._checksums(name)] == [(f, fake.md5[f]) for f in files]
    assert data.is_cached(name) and data._verify(name, root) == []
    assert not any(check_integrity(str(root / rel), md5) for rel, md5 in TORCHVISION_MD5S[name]), \
        "with torchvision's real MD5s every fake file is rejected: the checks are not bypassed"


def test_every_file_is_reported_cached_at_start(fake):
    assert data.is_cached("alexnet_weights")
    assert data.weights_path() == fake.weights_file
    lines = session.stand_ins([*DATASETS])
    assert len(lines) == 4 and all("(cached)" in line and str(fake.root) in line for line in lines), lines


# --------------------------------------------------------------------------- the datasets

@pytest.mark.parametrize("split", SPLITS)
def test_cifar10_is_read_from_its_pickled_batches(split, fake, capsys):
    ds = au.load("cifar10", split)
    n = fake.sizes["cifar10"][split]
    assert ds.images.shape == (n, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert torch.equal(ds.images, torch.from_numpy(fake.images["cifar10"][split])), "pixels in CHW order"
    assert ds.labels.tolist() == fake.labels["cifar10"][split]
    assert ds.classes == fake.classes["cifar10"] == data.CIFAR10_CLASSES
    assert ds.mean == data.CIFAR10_MEAN and ds.note == ""
    assert "stands in" not in capsys.readouterr().out, "the real-data path substitutes nothing"


def test_cifar10_batches_are_python2_pickles_as_the_real_ones(fake):
    """torchvision loads with latin1 (str keys); the CIFAR page's recipe with bytes (bytes keys)."""
    path = fake.root / "cifar10" / "cifar-10-batches-py" / "data_batch_1"
    with open(path, "rb") as f:
        as_str = pickle.load(f, encoding="latin1")
    with open(path, "rb") as f:
        as_bytes = pickle.load(f, encoding="bytes")
    assert set(as_str) == {"batch_label", "labels", "data", "filenames"}
    assert set(as_bytes) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert as_bytes[b"data"].dtype == "uint8" and as_bytes[b"data"].shape == (40, 3072)
    assert (as_str["data"] == as_bytes[b"data"]).all()
    with open(path.with_name("batches.meta"), "rb") as f:
        assert pickle.load(f, encoding="latin1")["label_names"] == list(data.CIFAR10_CLASSES)


@pytest.mark.parametrize("split", SPLITS)
def test_mnist_is_read_from_its_idx_files(split, fake):
    ds = au.load("mnist", split)
    n = fake.sizes["mnist"][split]
    assert ds.images.shape == (n, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert torch.equal(ds.images, torch.from_numpy(fake.images["mnist"][split]))
    assert ds.labels.tolist() == fake.labels["mnist"][split]
    assert ds.classes == tuple("0123456789") and ds.mean == data.MNIST_MEAN
    raw = fake.root / "mnist" / "MNIST" / "raw"
    prefix = "train" if split == "train" else "t10k"
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):  # checked .gz and read file agree
        assert gzip.decompress((raw / f"{prefix}-{kind}.gz").read_bytes()) == (raw / f"{prefix}-{kind}").read_bytes()


@pytest.mark.parametrize("split", SPLITS)
def test_flowers102_photos_of_varied_sizes_come_out_square(split, fake):
    ds = au.load("flowers102", split)
    n = fake.sizes["flowers102"][split]
    assert ds.images.shape == (n, 3, 160, 160) and ds.images.dtype == torch.uint8
    assert ds.labels.tolist() == fake.labels["flowers102"][split]
    assert 101 in fake.labels["flowers102"][split] and 0 in fake.labels["flowers102"][split]
    assert ds.classes == tuple(Flowers102.classes) and len(ds.classes) == 102
    assert ds.mean == data.IMAGENET_MEAN
    assert ds.images.float().std(dim=(1, 2, 3)).min() > 10, "photos, not blank images"


def test_photo_sets_resize_to_the_image_size_asked_for(fake):
    ds = au.load("flowers102", "test", image_size=64)
    assert ds.images.shape == (fake.sizes["flowers102"]["test"], 3, 64, 64)


@pytest.mark.parametrize("split", SPLITS)
def test_oxford_pets_reads_its_annotation_lists(split, fake):
    ds = au.load("oxford_pets", split)
    n = fake.sizes["oxford_pets"][split]
    assert ds.images.shape == (n, 3, 160, 160), "greyscale photos come out RGB too"
    assert ds.labels.tolist() == fake.labels["oxford_pets"][split]
    assert ds.classes == fake.classes["oxford_pets"] == \
        ("Abyssinian", "American Bulldog", "American Pit Bull Terrier", "Basset Hound")


def test_loaders_batch_the_cached_cifar10(fake):
    run = au.run_profile()
    train, val = au.loaders("cifar10", device="cpu")
    x, y = next(iter(train))
    assert x.shape == (run.batch_size, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert sum(len(y) for _, y in train) == fake.sizes["cifar10"]["train"]
    xs, ys = zip(*val, strict=True)
    assert torch.cat(ys).tolist() == fake.labels["cifar10"]["test"], "validation is not shuffled"
    mean = torch.tensor(data.CIFAR10_MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(data.CIFAR10_STD).view(1, 3, 1, 1) * 255
    pixels = (torch.cat(xs) * std + mean).round().to(torch.uint8)
    assert torch.equal(pixels, torch.from_numpy(fake.images["cifar10"]["test"])), "batches carry the cached images"


def test_loaders_batch_the_resized_photos(fake):
    train, _ = au.loaders("oxford_pets", batch_size=8, augment="flip", device="cpu")
    assert [tuple(x.shape) for x, _ in train] == [(8, 3, 160, 160)] * 2 + [(4, 3, 160, 160)]


# --------------------------------------------------------------------------- the weights

def test_pretrained_alexnet_loads_the_cached_weights_bit_exactly(fake):
    saved = torch.load(fake.weights_file, map_location="cpu", weights_only=True)
    model = au.pretrained_alexnet()
    state = model.state_dict()
    assert list(state) == list(saved)
    different = [k for k in saved if not torch.equal(state[k], saved[k])]
    assert not different, f"not loaded bit-exactly: {different}"
    transfer = au.pretrained_alexnet(num_classes=4)
    assert transfer.classifier[-1].out_features == 4
    assert torch.equal(transfer.features[0].weight, saved["features.0.weight"]), "only fc8 is replaced"


# --------------------------------------------------------------------------- damaged files

@pytest.mark.parametrize("name, damaged", [
    ("cifar10", "cifar-10-batches-py/data_batch_3"),
    ("mnist", "MNIST/raw/t10k-labels-idx1-ubyte.gz"),
    ("flowers102", "flowers-102/setid.mat"),
    ("oxford_pets", "oxford-iiit-pet/images.tar.gz"),  # checked, never read: still refused
    ("cifar10", "cifar-10-batches-py/batches.meta"),  # the class names, checked by torchvision too
    ("mnist", "MNIST/raw/train-images-idx3-ubyte"),  # what torchvision reads, unpacked from the checked .gz
])
def test_a_file_with_one_byte_changed_is_refused(name, damaged, fake, tmp_path, monkeypatch):
    cache = tmp_path / "damaged-cache"
    path = copy_dataset(fake, name, cache) / damaged
    content = flip_one_byte(path)
    monkeypatch.setenv("ALEXNET_DATA", str(cache))
    assert not data.is_cached(name)
    with pytest.raises(DatasetCorruptError) as err:
        au.load(name, "train")
    message = str(err.value)
    assert f"python -m alexnet_utils download {name} --force" in message
    assert str(path) in message, "the message names the damaged file"
    assert "network disabled by the fake data cache" in str(err.value.__cause__), "a fresh copy was asked for"
    assert path.read_bytes() == content, "a failed re-fetch leaves the cache as it was"
    assert not [p for p in cache.rglob(".partial-*")], "no half-fetched folder is left behind"


def test_weights_with_one_byte_changed_are_refused(fake, tmp_path, monkeypatch):
    cache = tmp_path / "damaged-cache"
    (cache / "weights").mkdir(parents=True)
    path = cache / "weights" / fake.weights_file.name
    shutil.copyfile(fake.weights_file, path)
    flip_one_byte(path)
    monkeypatch.setenv("ALEXNET_DATA", str(cache))
    assert not data.is_cached("alexnet_weights")
    with pytest.raises(DatasetCorruptError, match="python -m alexnet_utils download alexnet_weights --force") as err:
        au.pretrained_alexnet()
    assert "network disabled by the fake data cache" in str(err.value.__cause__)
    assert path.exists() and not [p for p in cache.rglob(".partial-*")]

"""Datasets, the offline stand-ins, the cache's failure messages and the DeviceLoader."""

import pytest
import torch

import alexnet_utils as au
from alexnet_utils import data
from alexnet_utils.data import DatasetCorruptError, DatasetMissingError, DeviceLoader


@pytest.fixture(scope="module")
def shapes_2000():
    return data.shapes(2000, seed=0)


@pytest.fixture(scope="module")
def mnist_train():
    return data.mnist5k("train")


@pytest.fixture(scope="module")
def mnist_test():
    return data.mnist5k("test")


def contrast_maps(ds):
    """Per-pixel distance from the background colour, summed over channels: (N, H, W).

    The shapes set draws foreground and background colours at random, so a
    class lives in the shape's outline, not in its colours; the corners are
    always background.
    """
    x = ds.images.float() / 255
    background = x[:, :, :2, :2].mean((2, 3), keepdim=True)
    return (x - background).abs().sum(1)


def class_means(maps, labels):
    return torch.stack([maps[labels == c].mean(0) for c in range(10)])


def unnormalise(x, ds):
    mean = torch.tensor(ds.mean).view(1, -1, 1, 1) * 255
    std = torch.tensor(ds.std).view(1, -1, 1, 1) * 255
    return x.float() * std + mean


def distinct_images(n=24, size=8, channels=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g)
    return data.ImageSet("noise", images, torch.arange(n) % 10, tuple("abcdefghij"),
                         mean=(0.5,) * channels, std=(0.25,) * channels)


def partial_folders(root):
    return [p for p in root.rglob("*") if p.name.startswith(".partial-")]


# --------------------------------------------------------------------------- shapes

def test_shapes_are_uint8_cifar_shaped_with_int64_labels():
    ds = data.shapes(100, seed=0)
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (100, 3, 32, 32)
    assert ds.labels.dtype == torch.int64 and ds.labels.shape == (100,)
    assert ds.classes == data.SHAPES_CLASSES and len(ds.classes) == 10
    assert len(ds) == 100 and ds.shape == (3, 32, 32)


def test_shapes_same_seed_gives_same_images():
    a, b = data.shapes(64, seed=3), data.shapes(64, seed=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_shapes_different_seed_gives_different_images():
    assert not torch.equal(data.shapes(64, seed=3).images, data.shapes(64, seed=4).images)


def test_shapes_classes_are_balanced():
    assert torch.bincount(data.shapes(500, seed=1).labels, minlength=10).tolist() == [50] * 10


def test_shapes_use_the_whole_pixel_range_not_a_constant_image(shapes_2000):
    per_image_std = shapes_2000.images.float().flatten(1).std(1)
    assert per_image_std.min() > 5


def test_shapes_classes_are_learnable_by_nearest_class_mean(shapes_2000):
    test = data.shapes(500, seed=1)
    means = class_means(contrast_maps(shapes_2000), shapes_2000.labels).flatten(1)
    queries = contrast_maps(test).flatten(1)
    predicted = torch.cdist(queries, means).argmin(1)
    accuracy = (predicted == test.labels).float().mean().item()
    assert accuracy > 0.2, f"nearest-class-mean accuracy {accuracy:.2f} is close to chance (0.1)"


def test_shapes_class_means_are_nearly_symmetric_under_horizontal_flip(shapes_2000):
    means = class_means(contrast_maps(shapes_2000), shapes_2000.labels)
    flip_gap = (means - means.flip(-1)).abs().mean((1, 2))
    between = (means[:, None] - means[None]).abs().mean((2, 3))
    between_classes = between[~torch.eye(10, dtype=torch.bool)].mean()
    assert flip_gap.max() < 0.6 * between_classes, (flip_gap, between_classes)


def test_triangles_are_symmetric_left_right_but_not_up_down(shapes_2000):
    means = class_means(contrast_maps(shapes_2000), shapes_2000.labels)
    for c in (data.SHAPES_CLASSES.index("triangle_up"), data.SHAPES_CLASSES.index("triangle_down")):
        h_gap = (means[c] - means[c].flip(-1)).abs().mean()
        v_gap = (means[c] - means[c].flip(-2)).abs().mean()
        assert v_gap > 3 * h_gap


def test_shapes_are_centred_on_the_image_centre_so_a_flip_keeps_the_distribution(shapes_2000):
    foreground = (contrast_maps(shapes_2000) > 0.3).float()
    columns = torch.arange(32.0)
    centroid_x = (foreground.sum(1) * columns).sum(1) / foreground.sum((1, 2))
    assert centroid_x.mean().item() == pytest.approx(15.5, abs=0.15)


# --------------------------------------------------------------------------- photos

def test_photos_are_resized_square_uint8_named_by_photo():
    photos = data.photos(48)
    assert photos.images.shape == (len(data.PHOTOS), 3, 48, 48) and photos.images.dtype == torch.uint8
    assert photos.classes == data.PHOTOS and photos.labels.tolist() == list(range(len(data.PHOTOS)))
    assert photos.mean == data.IMAGENET_MEAN and photos.images.float().std() > 20, "real photos, not blank"


def test_photos_take_the_networks_normalisation_and_grey_photos():
    photos = data.photos(32, names=("camera", "coffee"), mean=(0.5, 0.5, 0.5), std=(0.3, 0.3, 0.3))
    assert photos.images.shape == (2, 3, 32, 32)
    assert torch.equal(photos.images[0, 0], photos.images[0, 1]), "a grey photo gets three equal channels"
    assert torch.allclose(photos.normalise(), (photos.images.float() / 255 - 0.5) / 0.3)


def test_photos_unknown_name_is_a_clear_error():
    with pytest.raises(ValueError, match="no sample photo 'mona_lisa'"):
        data.photos(32, names=("mona_lisa",))


# --------------------------------------------------------------------------- mnist5k

def test_mnist5k_has_4000_train_and_1000_test_uint8_digits(mnist_train, mnist_test):
    assert mnist_train.images.shape == (4000, 1, 28, 28)
    assert mnist_test.images.shape == (1000, 1, 28, 28)
    assert mnist_train.images.dtype == mnist_test.images.dtype == torch.uint8
    assert mnist_train.classes == tuple("0123456789")


def test_mnist5k_train_has_400_digits_per_class(mnist_train):
    assert torch.bincount(mnist_train.labels, minlength=10).tolist() == [400] * 10


def test_mnist5k_splits_are_disjoint(mnist_train, mnist_test):
    train = {bytes(img.numpy()) for img in mnist_train.images}
    test = {bytes(img.numpy()) for img in mnist_test.images}
    assert len(train) == 4000 and len(test) == 1000
    assert not train & test


def test_mnist5k_labels_match_their_images(mnist_train):
    # digit 1 is the thinnest: its mean ink is far below digit 0's
    ink = [mnist_train.images[mnist_train.labels == c].float().mean().item() for c in range(10)]
    assert min(range(10), key=ink.__getitem__) == 1
    assert ink[0] > 1.3 * ink[1]


# --------------------------------------------------------------------------- ImageSet

def test_imageset_rejects_float_images():
    with pytest.raises(ValueError, match="uint8"):
        data.ImageSet("x", torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.long), ("a",), (0.5,) * 3,
                      (0.5,) * 3)


def test_imageset_rejects_label_count_mismatch():
    with pytest.raises(ValueError, match="labels"):
        data.ImageSet("x", torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.long),
                      ("a",), (0.5,) * 3, (0.5,) * 3)


def test_imageset_subset_is_deterministic_and_keeps_pairs():
    ds = distinct_images(n=24)
    a, b = ds.subset(10, seed=1), ds.subset(10, seed=1)
    assert len(a) == 10 and torch.equal(a.images, b.images)
    for img, label in zip(a.images, a.labels, strict=True):
        index = next(i for i in range(len(ds)) if torch.equal(ds.images[i], img))
        assert ds.labels[index] == label
    assert ds.subset(100) is ds


def test_imageset_normalise_uses_its_mean_and_std():
    ds = distinct_images(n=4)
    x = ds.normalise()
    torch.testing.assert_close(x, (ds.images.float() / 255 - 0.5) / 0.25)


# --------------------------------------------------------------------------- load()

def test_load_cifar10_in_smoke_says_shapes_stands_in(capsys):
    train = data.load("cifar10")
    out = capsys.readouterr().out
    assert "stands in for CIFAR-10" in out and "shapes" in out
    assert train.name == "shapes" and "stands in for CIFAR-10" in train.note
    assert train.images.shape == (512, 3, 32, 32)


def test_load_cifar10_test_split_in_smoke_has_256_images():
    test = data.load("cifar10", "test", announce=False)
    assert test.images.shape == (256, 3, 32, 32)


def test_load_cifar10_splits_differ():
    train = data.load("cifar10", "train", announce=False)
    test = data.load("cifar10", "test", announce=False)
    assert not torch.equal(train.images[:256], test.images)


def test_load_without_announce_prints_nothing(capsys):
    data.load("cifar10", announce=False)
    assert capsys.readouterr().out == ""


def test_load_mnist_in_smoke_gives_a_mnist5k_subset(capsys, mnist_train):
    train = data.load("mnist")
    assert "stands in for MNIST" in capsys.readouterr().out
    assert train.name == "mnist5k"
    assert train.images.shape == (512, 1, 28, 28)
    known = {bytes(img.numpy()) for img in mnist_train.images}
    assert all(bytes(img.numpy()) in known for img in train.images)


def test_load_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError) as err:
        data.load("imagenet")
    for name in ("cifar10", "mnist", "shapes", "mnist5k"):
        assert name in str(err.value)


def test_load_unknown_split_raises():
    with pytest.raises(ValueError, match="split"):
        data.load("shapes", "val")


def test_loaders_give_train_and_val_sized_by_profile(capsys):
    train, val = data.loaders("cifar10", device="cpu")
    assert capsys.readouterr().out.count("stands in for CIFAR-10") == 1
    assert len(train) == 512 // 64 and len(val) == 256 // 64
    assert train.augment == "crop_flip" and train.shuffle
    assert val.augment == "none" and not val.shuffle


# --------------------------------------------------------------------------- cache failures

@pytest.fixture
def network_down(monkeypatch):
    """torchvision's downloads fail as they do without a network; cached reads go through."""
    attempts = []

    def offline(name, root, split, download):
        attempts.append((name, split, download))
        if download:
            raise OSError("network unreachable")
        raise AssertionError("nothing was downloaded, so nothing should be read")

    monkeypatch.setattr(data, "_torchvision_dataset", offline)
    return attempts


def test_missing_cifar10_without_network_names_the_download_command(monkeypatch, cache, network_down):
    monkeypatch.setenv("ALEXNET_PROFILE", "quick")
    with pytest.raises(DatasetMissingError) as err:
        data.load("cifar10")
    message = str(err.value)
    assert "python -m alexnet_utils download cifar10" in message
    assert "network unreachable" in message
    assert network_down and network_down[0][2] is True
    assert not partial_folders(cache)


def test_missing_dataset_is_not_reported_as_cached(cache):
    assert not data.is_cached("cifar10")
    assert not data.is_cached("alexnet_weights")


def test_corrupt_cifar10_file_names_the_force_fix(monkeypatch, cache, network_down):
    monkeypatch.setenv("ALEXNET_PROFILE", "quick")
    batches = cache / "cifar10" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    (batches / "data_batch_1").write_bytes(b"junk" * 100)
    with pytest.raises(DatasetCorruptError) as err:
        data.load("cifar10")
    assert "python -m alexnet_utils download cifar10 --force" in str(err.value)
    assert network_down and all(download for _, _, download in network_down), \
        "a damaged copy is fetched again, never read"
    assert (batches / "data_batch_1").read_bytes() == b"junk" * 100, "a failed re-fetch leaves the cache as it was"


def test_junk_weights_file_is_never_loaded(monkeypatch, cache):
    def offline(url, dst, progress=True):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    path = data.weights_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a state dict")
    with pytest.raises(DatasetCorruptError, match="--force"):
        data.load_weights()


def test_missing_weights_without_network_names_the_download_command(monkeypatch, cache):
    def offline(url, dst, progress=True):
        with open(dst, "wb") as f:
            f.write(b"half a fi")
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(DatasetMissingError, match="python -m alexnet_utils download alexnet_weights"):
        data.load_weights()
    assert not data.weights_path().exists()
    assert not partial_folders(cache)


def test_download_rejects_unknown_names():
    with pytest.raises(ValueError, match="cifar10"):
        data.download("imagenet")


# --------------------------------------------------------------------------- DeviceLoader

def test_loader_length_with_and_without_drop_last():
    ds = distinct_images(n=100)
    assert len(DeviceLoader(ds, 32, device="cpu")) == 4
    assert len(DeviceLoader(ds, 32, device="cpu", drop_last=True)) == 3
    assert len(DeviceLoader(ds, 25, device="cpu", drop_last=True)) == 4


def test_loader_batches_have_the_right_shapes_and_dtypes():
    ds = distinct_images(n=100)
    batches = list(DeviceLoader(ds, 32, device="cpu"))
    assert [len(y) for _, y in batches] == [32, 32, 32, 4]
    x, y = batches[0]
    assert x.shape == (32, 3, 8, 8) and x.dtype == torch.float32 and x.device.type == "cpu"
    assert y.dtype == torch.int64


def test_loader_drop_last_drops_the_short_batch():
    batches = list(DeviceLoader(distinct_images(n=100), 32, device="cpu", drop_last=True))
    assert [len(y) for _, y in batches] == [32, 32, 32]


def test_loader_normalises_and_unnormalising_recovers_the_images():
    ds = data.shapes(50, seed=0)
    loader = DeviceLoader(ds, 16, shuffle=False, augment="none", device="cpu")
    x = torch.cat([b for b, _ in loader])
    y = torch.cat([labels for _, labels in loader])
    assert abs(x.mean().item()) < 1.0 and 0.5 < x.std().item() < 2.0
    torch.testing.assert_close(unnormalise(x, ds), ds.images.float(), rtol=0, atol=1e-4 * 255)
    assert torch.equal(y, ds.labels)


def test_loader_shuffles_every_epoch_but_keeps_image_label_pairs():
    ds = distinct_images(n=40)
    loader = DeviceLoader(ds, 40, shuffle=True, device="cpu")
    (x1, y1), = list(loader)
    (x2, y2), = list(loader)
    assert not torch.equal(y1, y2)
    first = unnormalise(x1, ds).round().to(torch.uint8)
    for img, label in zip(first, y1, strict=True):
        index = next(i for i in range(len(ds)) if torch.equal(ds.images[i], img))
        assert ds.labels[index] == label


def test_flip_augment_flips_some_images_and_leaves_others():
    ds = distinct_images(n=64)
    (x, _), = list(DeviceLoader(ds, 64, shuffle=False, augment="flip", device="cpu", seed=0))
    out = unnormalise(x, ds)
    flipped = kept = 0
    for original, seen in zip(ds.images.float(), out, strict=True):
        if torch.allclose(seen, original, atol=0.05):
            kept += 1
        elif torch.allclose(seen, original.flip(-1), atol=0.05):
            flipped += 1
        else:
            pytest.fail("a flip-augmented image is neither the original nor its mirror image")
    assert flipped > 10 and kept > 10


def test_crop_augment_cuts_a_shifted_window_of_the_zero_padded_image():
    ds, pad = distinct_images(n=32), 2
    (x, _), = list(DeviceLoader(ds, 32, shuffle=False, augment="crop", pad=pad, device="cpu", seed=0))
    assert x.shape == (32, 3, 8, 8)
    out = unnormalise(x, ds)
    padded = torch.nn.functional.pad(ds.images.float(), (pad,) * 4)
    shifts = []
    for i in range(len(ds)):
        matches = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                   if torch.allclose(out[i], padded[i, :, dy:dy + 8, dx:dx + 8], atol=0.05)]
        assert len(matches) == 1, f"image {i}: no single padded window matches ({matches})"
        shifts.append(matches[0])
    assert len(set(shifts)) > 5  # the windows really vary


def test_same_seed_gives_same_augmented_batches():
    ds = data.shapes(64, seed=0)
    a = DeviceLoader(ds, 16, augment="crop_flip", device="cpu", seed=7)
    b = DeviceLoader(ds, 16, augment="crop_flip", device="cpu", seed=7)
    c = DeviceLoader(ds, 16, augment="crop_flip", device="cpu", seed=8)
    batches_a, batches_b, batches_c = list(a), list(b), list(c)
    for (xa, ya), (xb, yb) in zip(batches_a, batches_b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not all(torch.equal(xa, xc) for (xa, _), (xc, _) in zip(batches_a, batches_c, strict=True))


def test_batch_larger_than_dataset_with_drop_last_raises():
    with pytest.raises(ValueError, match="batch_size"):
        DeviceLoader(distinct_images(n=10), 32, device="cpu", drop_last=True)


def test_batch_larger_than_dataset_without_drop_last_gives_one_batch():
    loader = DeviceLoader(distinct_images(n=10), 32, device="cpu")
    assert len(loader) == 1 and len(next(iter(loader))[1]) == 10


def test_zero_batch_size_raises():
    with pytest.raises(ValueError, match="batch_size"):
        DeviceLoader(distinct_images(n=10), 0, device="cpu")


def test_channels_last_flag_gives_channels_last_batches():
    ds = distinct_images(n=8)
    x, _ = next(iter(DeviceLoader(ds, 8, device="cpu", channels_last=True)))
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert not x.is_contiguous()


def test_dtype_flag_sets_batch_dtype():
    x, _ = next(iter(DeviceLoader(distinct_images(n=8), 8, device="cpu", dtype=torch.bfloat16)))
    assert x.dtype == torch.bfloat16


def test_unknown_augment_raises_listing_choices():
    with pytest.raises(ValueError) as err:
        DeviceLoader(distinct_images(n=8), 4, augment="autoaugment", device="cpu")
    for name in ("none", "flip", "crop", "crop_flip"):
        assert name in str(err.value)


def test_loader_batches_are_not_views_into_the_cached_images():
    ds = distinct_images(n=8)
    loader = DeviceLoader(ds, 8, shuffle=False, augment="none", device="cpu")
    x, _ = next(iter(loader))
    x.fill_(0)
    again, _ = next(iter(loader))
    torch.testing.assert_close(unnormalise(again, ds), ds.images.float(), rtol=0, atol=1e-4 * 255)


# --------------------------------------------------------------------------- PIL pipeline

def test_augmentation_none_normalises_like_the_imageset():
    from PIL import Image

    ds = data.shapes(2, seed=0)
    pil = Image.fromarray(ds.images[0].permute(1, 2, 0).numpy(), "RGB")
    out = data.augmentation("none", ds.mean, ds.std)(pil)
    torch.testing.assert_close(out, ds.normalise()[0], rtol=0, atol=1e-5)


def test_augmentation_unknown_preset_lists_the_presets():
    with pytest.raises(ValueError) as err:
        data.augmentation("mixup", (0.5,), (0.5,))
    for name in ("none", "flip", "crop", "crop_flip", "strong", "autoaugment"):
        assert name in str(err.value)


def test_pil_loader_without_augmentation_matches_the_device_loader():
    ds = data.shapes(20, seed=0)
    pil = data.pil_loader(ds, 8, augment="none", num_workers=0, shuffle=False)
    device = DeviceLoader(ds, 8, shuffle=False, augment="none", device="cpu")
    for (xp, yp), (xd, yd) in zip(pil, device, strict=True):
        assert xp.shape == xd.shape and xp.dtype == torch.float32
        torch.testing.assert_close(xp, xd, rtol=0, atol=1e-5)
        assert torch.equal(yp, yd)


def test_pil_loader_handles_grayscale_digits():
    ds = data.ImageSet("digits", torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8),
                       torch.arange(6), tuple("0123456789"), data.MNIST_MEAN, data.MNIST_STD)
    x, y = next(iter(data.pil_loader(ds, 6, augment="crop_flip", num_workers=0)))
    assert x.shape == (6, 1, 28, 28) and y.shape == (6,)


def test_package_exports_the_data_api():
    assert au.load is data.load and au.DeviceLoader is DeviceLoader and au.ImageSet is data.ImageSet

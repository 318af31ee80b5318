"""What the transfer-learning notebook needs: new tasks from a dataset, label budgets, a new head,
frozen parts, an offline pretrained stand-in, and comparisons on your own ImageSets."""

import pytest
import torch
from torch import nn

import alexnet_utils as au
from alexnet_utils import models, weights


def tiny_set(counts=(3, 5, 4), size=4):
    """Images whose every pixel is the image's own index, so a test can tell which ones were taken."""
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    images = torch.arange(len(labels), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, size, size).contiguous()
    return au.ImageSet("tiny", images, labels, tuple("abc"[: len(counts)]), (0.5,), (0.25,))


# --------------------------------------------------------------------------- class subsets and label budgets

def test_class_counts_name_every_class_even_empty_ones():
    assert tiny_set((3, 0, 4)).class_counts() == {"a": 3, "b": 0, "c": 4}


def test_select_classes_keeps_only_those_and_relabels_them_in_the_order_given():
    ds = tiny_set()
    sub = ds.select_classes([2, 0])
    assert sub.classes == ("c", "a") and len(sub) == 7
    assert sub.labels.tolist() == [1, 1, 1, 0, 0, 0, 0]
    for img, label in zip(sub.images, sub.labels, strict=True):  # every image keeps its own class
        original = int(img[0, 0, 0])
        assert ds.classes[int(ds.labels[original])] == sub.classes[int(label)]
    assert (sub.mean, sub.std, sub.name) == (ds.mean, ds.std, ds.name)


@pytest.mark.parametrize("bad", [[], [0, 0], [3], [-1]])
def test_select_classes_rejects_repeated_or_unknown_labels(bad):
    with pytest.raises(ValueError, match="distinct label numbers"):
        tiny_set().select_classes(bad)


def test_few_shot_takes_k_distinct_images_of_every_class_reproducibly():
    ds = tiny_set((6, 7, 8))
    shot = ds.few_shot(3, seed=1)
    assert shot.class_counts() == {"a": 3, "b": 3, "c": 3}
    ids = shot.images[:, 0, 0, 0].tolist()
    assert len(set(ids)) == 9
    assert all(int(ds.labels[i]) == int(y) for i, y in zip(ids, shot.labels, strict=True))
    assert torch.equal(ds.few_shot(3, seed=1).images, shot.images)
    assert not torch.equal(ds.few_shot(3, seed=2).images, shot.images)
    big = tiny_set((40, 40, 40)).few_shot(20, seed=0)
    assert big.labels[:20].unique().numel() > 1, "the images of the classes come shuffled, not class by class"


def test_few_shot_min_size_repeats_whole_copies_of_the_same_images():
    shot = tiny_set((6, 7, 8)).few_shot(2, seed=0)
    padded = tiny_set((6, 7, 8)).few_shot(2, seed=0, min_size=20)
    assert len(padded) == 24  # four copies of the 6 images: at least 20
    assert torch.equal(padded.images, shot.images.repeat(4, 1, 1, 1))
    assert padded.class_counts() == {"a": 8, "b": 8, "c": 8}
    assert len(tiny_set((6, 7, 8)).few_shot(2, min_size=5)) == 6


def test_few_shot_says_which_classes_are_too_small():
    with pytest.raises(ValueError, match=r"'a': 3"):
        tiny_set((3, 5, 4)).few_shot(4)
    with pytest.raises(ValueError, match="at least 1"):
        tiny_set().few_shot(0)


# --------------------------------------------------------------------------- a new head, frozen parts

def test_replace_head_freezes_the_features_and_gives_a_fresh_trainable_head():
    torch.manual_seed(0)
    model = au.mini_alexnet(10, width=0.25)
    fc6 = model.classifier[1].weight.clone()
    out = models.replace_head(model, 3, freeze=("features",))
    assert out is model
    assert model.classifier[-1].out_features == 3
    assert model.classifier[-1].in_features == model.classifier[4].out_features
    assert not any(p.requires_grad for p in model.features.parameters())
    assert all(p.requires_grad for p in model.classifier.parameters())
    assert au.count_parameters(model, trainable_only=True) == sum(p.numel() for p in model.classifier.parameters())
    assert torch.equal(model.classifier[1].weight, fc6), "fc6 keeps its (pretrained) weights"
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_replace_head_without_freeze_trains_everything_and_a_frozen_classifier_still_trains_the_head():
    model = models.replace_head(au.mini_alexnet(width=0.25), 4)
    assert all(p.requires_grad for p in model.parameters())
    probe = models.replace_head(au.mini_alexnet(width=0.25), 4, freeze=("features", "classifier"))
    trainable = [n for n, p in probe.named_parameters() if p.requires_grad]
    assert trainable == ["classifier.6.weight", "classifier.6.bias"]


def test_replace_head_rejects_a_prefix_that_names_nothing():
    with pytest.raises(ValueError, match="no parameters start with"):
        models.replace_head(au.mini_alexnet(width=0.25), 4, freeze=("backbone",))


def test_make_optimizer_keeps_frozen_parameters_out_and_scales_the_backbone():
    model = models.replace_head(au.mini_alexnet(width=0.25), 4)
    opt = au.TrainConfig(lr=0.01, lr_scale=(("features", 0.1),)).make_optimizer(model)
    assert sorted(g["lr"] for g in opt.param_groups) == pytest.approx([0.001, 0.01])
    frozen = models.replace_head(au.mini_alexnet(width=0.25), 4, freeze=("features",))
    opt = au.TrainConfig(lr=0.01, lr_scale=(("features", 0.1),)).make_optimizer(frozen)
    held = {id(p) for g in opt.param_groups for p in g["params"]}
    assert len(opt.param_groups) == 1 and held == {id(p) for p in frozen.classifier.parameters()}


# --------------------------------------------------------------------------- the offline pretrained stand-in

@pytest.fixture(scope="module")
def stand_in_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("stand-in-cache")


def test_transfer_stand_in_learns_is_cached_and_leaves_the_random_state_alone(stand_in_cache, monkeypatch, capsys):
    monkeypatch.setenv("ALEXNET_DATA", str(stand_in_cache))
    weights._stand_in_cache.clear()
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    model = weights.transfer_stand_in(progress=False)
    assert torch.equal(torch.rand(3), expected_next), "pretraining must not move the caller's random state"
    assert torch.get_num_threads() == threads
    out = capsys.readouterr().out
    assert "pretrained on 2,0" in out and "(disk, square, ring, plus, cross;" in out
    assert "stands in for torchvision's ImageNet" in out
    assert not model.training and model.config.in_channels == 3 and model.classifier[-1].out_features == 5
    new_images = au.data.shapes(1000, seed=5).select_classes(range(5))
    acc = au.evaluate(model, au.DeviceLoader(new_images, 256, shuffle=False))["acc"]
    assert acc > 0.5, f"the stand-in should have learned its five shapes (chance is 20%); it gets {acc:.0%}"
    again = weights.transfer_stand_in(progress=False)
    assert capsys.readouterr().out == "", "a second call in the same process is silent"
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values(),
                                                  strict=True))
    weights._stand_in_cache.clear()  # as after a kernel restart: reloaded from the run cache, not retrained
    reloaded = weights.transfer_stand_in(progress=False)
    assert "finished run loaded" in capsys.readouterr().out
    assert torch.equal(reloaded.features[0].weight, model.features[0].weight)


# --------------------------------------------------------------------------- comparisons on your own ImageSets

def tiny_mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 3))


def test_compare_trains_on_a_given_pair_of_imagesets_and_keys_the_cache_by_their_content(cache, capsys):
    au.start("test_nb")
    pool = au.data.mnist5k("train").select_classes([3, 5, 8])
    val = au.data.mnist5k("test").select_classes([3, 5, 8])
    cfg = au.TrainConfig(epochs=1, batch_size=32, augment="none")
    first = au.compare("shots", {"mlp": tiny_mlp}, data=(pool.few_shot(10), val), train=cfg, seeds=1,
                       progress=False)
    assert first.data == "mnist5k" and first.histories["mlp", 0].final("val_acc") > 0.34
    capsys.readouterr()
    au.compare("shots", {"mlp": tiny_mlp}, data=(pool.few_shot(10), val), train=cfg, seeds=1, progress=False)
    assert "finished run loaded" in capsys.readouterr().out
    au.compare("shots", {"mlp": tiny_mlp}, data=(pool.few_shot(10, seed=1), val), train=cfg, seeds=1,
               progress=False)
    assert "finished run loaded" not in capsys.readouterr().out, "other images must train again"


def test_compare_takes_a_function_of_the_seed_for_a_different_draw_per_seed(cache):
    pool = au.data.mnist5k("train").select_classes([0, 1, 2])
    val = au.data.mnist5k("test").select_classes([0, 1, 2])
    seen = []

    def draw(seed):
        seen.append(seed)
        return pool.few_shot(5, seed=seed), val

    result = au.compare("draws", {"mlp": tiny_mlp}, data=draw, train=au.TrainConfig(epochs=1, batch_size=16),
                        seeds=2, progress=False)
    assert seen == [0, 1] and set(result.histories) == {("mlp", 0), ("mlp", 1)}
    with pytest.raises(TypeError, match="pair of ImageSets"):
        au.compare("bad", {"mlp": tiny_mlp}, data=(pool,), progress=False)


def test_start_names_a_notebooks_own_stand_ins(cache, capsys):
    au.start("04_transfer_learning", data=("oxford_pets", "cifar10"),
             replaced_by={"oxford_pets": "mnist5k digits 5-9"})
    out = capsys.readouterr().out
    assert "stand-in: mnist5k digits 5-9 replaces Oxford-IIIT Pets" in out
    assert "stand-in: shapes replaces CIFAR-10" in out

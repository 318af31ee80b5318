"""compare(): variants under one budget, cached per profile, tidy tables and plots."""

from dataclasses import replace

import pytest
import torch
from torch import nn

import alexnet_utils as au

TINY = au.mini_config(width=0.125)
ONE_EPOCH = au.TrainConfig(epochs=1, batch_size=128)


def tiny_mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))


@pytest.fixture
def ablation(cache):
    au.start("test_nb")
    return au.compare("ablation", {
        "baseline": TINY,
        "sigmoid": replace(TINY, activation="sigmoid"),
        "no_aug": au.Variant(TINY, au.TrainConfig(augment="none")),
    }, data="cifar10", train=ONE_EPOCH, seeds=2, progress=False)


def test_every_variant_runs_with_every_seed_under_the_same_budget(ablation):
    assert set(ablation.histories) == {(v, s) for v in ("baseline", "sigmoid", "no_aug") for s in (0, 1)}
    assert all(len(h) == 1 for h in ablation.histories.values())
    frame = ablation.frame
    assert list(frame.columns[:3]) == ["variant", "seed", "epoch"]
    assert len(frame) == 6 and {"train_acc", "val_acc", "time_s"} <= set(frame.columns)
    assert ablation.config("no_aug").epochs == ablation.config("baseline").epochs == 1
    assert ablation.config("no_aug").augment == "none"


def test_changes_name_exactly_what_each_variant_alters(ablation):
    assert ablation.changes() == {"baseline": [], "sigmoid": ["model.activation"], "no_aug": ["train.augment"]}


def test_summary_has_mean_spread_gap_and_difference_to_baseline(ablation):
    summary = ablation.summary()
    assert list(summary.index) == ["baseline", "sigmoid", "no_aug"]
    vals = [ablation.histories["sigmoid", s].final("val_acc") for s in (0, 1)]
    assert summary.loc["sigmoid", "val_acc"] == pytest.approx(sum(vals) / 2)
    assert summary.loc["sigmoid", "val_acc_sd"] == pytest.approx(torch.tensor(vals).std().item())
    assert summary.loc["baseline", "vs_baseline"] == 0
    row = summary.loc["no_aug"]
    assert row["gap"] == pytest.approx(row["train_acc"] - row["val_acc"])


def test_a_restarted_kernel_reloads_finished_runs_instead_of_training(ablation, capsys):
    again = au.compare("ablation", {
        "baseline": TINY,
        "sigmoid": replace(TINY, activation="sigmoid"),
        "no_aug": au.Variant(TINY, au.TrainConfig(augment="none")),
    }, data="cifar10", train=ONE_EPOCH, seeds=2, progress=False)
    assert capsys.readouterr().out.count("finished run loaded") == 6
    for key, history in ablation.histories.items():
        assert again.histories[key].epochs == history.epochs
        for a, b in zip(again.models[key].parameters(), ablation.models[key].parameters(), strict=True):
            assert torch.equal(a, b)


def test_a_changed_variant_trains_again_and_replaces_its_stale_cache(ablation, cache, capsys):
    au.compare("ablation", {"baseline": replace(TINY, dropout=0.1)}, data="cifar10", train=ONE_EPOCH,
               seeds=[0], progress=False)
    assert "finished run loaded" not in capsys.readouterr().out
    files = list((cache / "runs" / "smoke" / "test_nb" / "ablation").glob("baseline-seed0-*.pt"))
    assert len(files) == 1


def test_same_seed_same_result(cache):
    runs = [au.compare(f"repeat{i}", {"mlp": tiny_mlp}, data="cifar10", train=ONE_EPOCH, seeds=[3], progress=False)
            for i in range(2)]
    assert runs[0].histories["mlp", 3].steps == runs[1].histories["mlp", 3].steps


def test_a_variant_may_not_change_the_budget(cache):
    for bad in (au.TrainConfig(epochs=3), au.TrainConfig(seed=1), au.TrainConfig(batch_size=32)):
        with pytest.raises(ValueError, match="budget"):
            au.compare("bad", {"a": TINY, "b": au.Variant(TINY, bad)}, train=ONE_EPOCH, progress=False)


def test_bad_variants_and_baseline_are_clear_errors(cache):
    with pytest.raises(TypeError, match="variant"):
        au.compare("bad", {"a": 3}, progress=False)
    with pytest.raises(ValueError, match="baseline"):
        au.compare("bad", {"a": TINY}, baseline="b", progress=False)
    with pytest.raises(TypeError, match="nn.Module"):
        au.compare("bad", {"a": lambda: 3}, train=ONE_EPOCH, progress=False)


def test_step_metrics_are_recorded_per_step_and_cached(cache):
    def grad_norm(model):
        return {"grad_norm": model[1].weight.grad.norm().item()}

    result = au.compare("metrics", {"mlp": tiny_mlp}, data="cifar10", train=ONE_EPOCH, seeds=1,
                        step_metrics=grad_norm, progress=False)
    steps = result.steps()
    assert len(steps) == len(result.histories["mlp", 0].steps) == 4  # 512 images, batches of 128
    assert (steps["grad_norm"] > 0).all()
    again = au.compare("metrics", {"mlp": tiny_mlp}, data="cifar10", train=ONE_EPOCH, seeds=1,
                       step_metrics=grad_norm, progress=False)
    assert again.steps()["grad_norm"].tolist() == steps["grad_norm"].tolist()


def test_plots_draw_one_line_and_one_bar_per_variant(ablation):
    fig = ablation.plot(show=False)
    assert len(fig.axes) == 2
    assert {t.get_text() for t in fig.axes[1].get_legend().get_texts()} == {"baseline", "sigmoid", "no_aug"}
    ticks = [t for t in fig.axes[0].get_xticks() if fig.axes[0].get_xlim()[0] <= t <= fig.axes[0].get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks), f"epochs are whole numbers; ticks {ticks}"
    fig = ablation.plot_final(show=False)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["baseline", "sigmoid", "no_aug"]


def test_differences_lists_the_fields_two_configs_disagree_on():
    a = au.TrainConfig(augment="crop_flip")
    changed = au.differences(a, replace(a, lr=0.1, augment="none"))
    assert changed == {"lr": (0.01, 0.1), "augment": ("crop_flip", "none")}
    assert au.differences(TINY, TINY) == {}
    with pytest.raises(TypeError):
        au.differences(a, TINY)


# --------------------------------------------------------------------------- chance and paired seeds

def _comparison(finals: dict[str, list[float]], val_size=1000, num_classes=10):
    seeds = tuple(range(len(next(iter(finals.values())))))
    result = au.Comparison("c", "shapes", au.TrainConfig(), {v: au.Variant(au.mini_config()) for v in finals}, seeds,
                           next(iter(finals)), val_size=val_size, num_classes=num_classes)
    for v, accs in finals.items():
        for s, acc in zip(seeds, accs, strict=True):
            result.histories[v, s] = au.History(epochs=[{"epoch": 1, "train_acc": acc, "val_acc": acc, "time_s": 1.0}])
    return result


def test_chance_band_is_three_binomial_standard_errors_on_the_validation_set():
    result = _comparison({"a": [0.11, 0.12], "b": [0.50, 0.52]}, val_size=900)
    chance = result.chance()
    assert chance.level == 0.1 and chance.band == pytest.approx(3 * (0.1 * 0.9 / 900) ** 0.5)
    assert chance.at_chance == ["a"] and not chance.all and "at chance: a" in str(chance)
    assert _comparison({"a": [0.1], "b": [0.11]}).chance().all


def test_paired_differences_are_seed_by_seed_with_the_sample_spread():
    result = _comparison({"a": [0.60, 0.70, 0.65], "b": [0.50, 0.62, 0.54]})
    paired = result.paired("a", "b")
    assert paired.diffs == pytest.approx([0.10, 0.08, 0.11]) and paired.mean == pytest.approx(29 / 300)
    assert paired.sd == pytest.approx(0.0152753, rel=1e-4) and paired.distinguishable
    one = _comparison({"a": [0.6], "b": [0.5]}).paired("a", "b")
    assert not one.distinguishable and "one seed" in str(one)
    with pytest.raises(ValueError, match="not one of the variants"):
        result.paired("a", "c")


def test_summary_prints_with_the_course_formats_and_a_dash_for_no_spread():
    text = repr(_comparison({"a": [0.65375], "b": [0.5]}).summary())
    assert "0.654" in text and "0.65375" not in text and "—" in text and "NaN" not in text


def test_chance_band_is_one_rule_for_compare_and_for_notebooks():
    assert au.experiment.chance_band(0.1, 900) == pytest.approx(0.03)
    assert _comparison({"a": [0.2]}, val_size=900).chance().band == au.experiment.chance_band(0.1, 900)
    with pytest.raises(ValueError, match="level"):
        au.experiment.chance_band(1.0, 10)

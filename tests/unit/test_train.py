"""fit() and evaluate(): history, schedules, divergence, checkpoint/resume, precision."""

import math

import pandas as pd
import pytest
import torch
from torch import nn

import alexnet_utils as au
from alexnet_utils import checkpoints, data
from alexnet_utils.train import History

COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "time_s"]


def setup(train_set, val_set, seed=0, lr=0.05, batch_size=64):
    """A tiny mini AlexNet, its loaders and an SGD optimizer, all seeded."""
    torch.manual_seed(seed)
    model = au.mini_alexnet(width=0.25)
    train = au.DeviceLoader(train_set, batch_size, augment="crop_flip", device="cpu", seed=seed)
    val = au.DeviceLoader(val_set, batch_size, shuffle=False, device="cpu")
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return model, train, val, optimizer


def run(model, train, val, optimizer, epochs, **kwargs):
    kwargs.setdefault("precision", "fp32")
    return au.fit(model, train, val, epochs=epochs, optimizer=optimizer, device="cpu", progress=False, **kwargs)


@pytest.fixture(scope="module")
def two_epochs(train_set, val_set):
    model, train, val, optimizer = setup(train_set, val_set)
    return run(model, train, val, optimizer, 2), len(train)


# --------------------------------------------------------------------------- History

def test_fit_returns_one_row_per_epoch_with_the_standard_columns(two_epochs):
    history, _ = two_epochs
    assert isinstance(history, History) and len(history) == 2
    assert [list(row) for row in history.epochs] == [COLUMNS, COLUMNS]
    assert history["epoch"] == [1, 2]


def test_history_records_every_step_loss(two_epochs):
    history, batches = two_epochs
    assert batches == 4
    assert len(history.steps) == 2 * batches
    assert history["train_loss"][0] == pytest.approx(sum(history.steps[:batches]) / batches)


def test_history_metrics_are_in_range(two_epochs):
    history, _ = two_epochs
    for row in history.epochs:
        assert 0 <= row["train_acc"] <= 1 and 0 <= row["val_acc"] <= 1
        assert row["train_loss"] > 0 and row["val_loss"] > 0 and row["time_s"] > 0
        assert row["lr"] == 0.05


def test_history_frame_is_a_dataframe_indexed_by_epoch(two_epochs):
    history, _ = two_epochs
    frame = history.frame()
    assert isinstance(frame, pd.DataFrame)
    assert frame.index.name == "epoch" and list(frame.index) == [1, 2]
    assert list(frame.columns) == COLUMNS[1:]
    assert frame.loc[2, "val_acc"] == history.final("val_acc")


def test_history_best_and_final():
    history = History(epochs=[{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.7},
                              {"epoch": 3, "val_acc": 0.6}])
    assert history.best() == 0.7 and history.final() == 0.6
    assert History().final() is None and History().frame().empty
    assert "3 epochs" in repr(history)


def test_fit_without_validation_has_no_val_columns(train_set, val_set):
    model, train, _, optimizer = setup(train_set, val_set)
    history = run(model, train, None, optimizer, 1)
    assert list(history.epochs[0]) == ["epoch", "train_loss", "train_acc", "lr", "time_s"]


def test_fit_takes_epochs_from_the_profile_by_default(train_set, val_set):
    model, train, _, optimizer = setup(train_set, val_set)
    history = au.fit(model, train, optimizer=optimizer, device="cpu", precision="fp32", progress=False)
    assert len(history) == au.run_profile("smoke").epochs == 2


def test_fit_learns_a_small_training_set(train_set):
    torch.manual_seed(0)
    model = au.mini_alexnet(width=0.25, dropout=0.0)
    loader = au.DeviceLoader(train_set.subset(32), 32, augment="none", device="cpu")
    history = au.fit(model, loader, epochs=40, optimizer=torch.optim.Adam(model.parameters(), lr=2e-3),
                     device="cpu", precision="fp32", progress=False)
    assert history["train_loss"][0] > 2.2
    assert min(history["train_loss"]) < 1.2


def test_fit_trains_in_train_mode(train_set, val_set):
    model, train, _, optimizer = setup(train_set, val_set)
    modes = []
    model.classifier.register_forward_hook(lambda m, i, o: modes.append(m.training))
    model.eval()
    run(model, train, None, optimizer, 1)
    assert modes and all(modes)


def test_fit_uses_channels_last_for_conv_nets(train_set, val_set):
    model, train, _, optimizer = setup(train_set, val_set)
    run(model, train, None, optimizer, 1)
    assert model.features[0].weight.is_contiguous(memory_format=torch.channels_last)


# --------------------------------------------------------------------------- schedules

def test_epoch_scheduler_steps_once_per_epoch(train_set, val_set):
    model, train, val, optimizer = setup(train_set, val_set, lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    history = run(model, train, None, optimizer, 3, scheduler=scheduler)
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0125)


def test_step_scheduler_steps_once_per_batch(train_set, val_set):
    model, train, val, optimizer = setup(train_set, val_set, lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.9)
    history = run(model, train, None, optimizer, 2, scheduler=scheduler, scheduler_interval="step")
    steps = len(train)
    assert history["lr"] == pytest.approx([0.1, 0.1 * 0.9**steps])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.9 ** (2 * steps))


def test_unknown_scheduler_interval_raises(train_set, val_set):
    model, train, _, optimizer = setup(train_set, val_set)
    with pytest.raises(ValueError, match="scheduler_interval"):
        run(model, train, None, optimizer, 1, scheduler_interval="batch")


def test_unknown_precision_raises(train_set, val_set):
    model, train, _, optimizer = setup(train_set, val_set)
    with pytest.raises(ValueError, match="precision"):
        run(model, train, None, optimizer, 1, precision="fp8")


def test_empty_training_loader_raises(train_set, val_set):
    model, _, _, optimizer = setup(train_set, val_set)
    with pytest.raises(ValueError, match="no batches"):
        run(model, [], None, optimizer, 1)


def test_grad_clip_clips_every_step(monkeypatch, train_set, val_set):
    model, train, _, optimizer = setup(train_set, val_set)
    calls = []
    real = nn.utils.clip_grad_norm_
    monkeypatch.setattr(nn.utils, "clip_grad_norm_", lambda params, max_norm: calls.append(max_norm) or
                        real(params, max_norm))
    run(model, train, None, optimizer, 1, grad_clip=1.0)
    assert calls == [1.0] * len(train)


# --------------------------------------------------------------------------- evaluate

def test_evaluate_runs_in_eval_mode_and_restores_training_mode(train_set, val_set):
    model, _, val, _ = setup(train_set, val_set)
    modes = []
    model.classifier.register_forward_hook(lambda m, i, o: modes.append(m.training))
    model.train()
    au.evaluate(model, val)
    assert model.training
    model.eval()
    au.evaluate(model, val)
    assert not model.training
    assert modes and not any(modes)


def test_evaluate_returns_mean_loss_and_accuracy(train_set, val_set):
    model, _, val, _ = setup(train_set, val_set)
    result = au.evaluate(model, val)
    assert set(result) == {"loss", "acc"}
    assert 0 <= result["acc"] <= 1
    model.eval()
    with torch.no_grad():
        x = torch.cat([b for b, _ in val])
        y = torch.cat([labels for _, labels in val])
        out = model(x)
    assert result["loss"] == pytest.approx(nn.functional.cross_entropy(out, y).item(), rel=1e-4)
    assert result["acc"] == pytest.approx((out.argmax(1) == y).float().mean().item())


def test_evaluate_empty_loader_raises(train_set, val_set):
    model, _, _, _ = setup(train_set, val_set)
    with pytest.raises(ValueError, match="empty"):
        au.evaluate(model, [])


# --------------------------------------------------------------------------- divergence

def test_huge_learning_rate_raises_floating_point_error_naming_epoch_and_lr(train_set, val_set):
    model, train, val, _ = setup(train_set, val_set)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e6)
    with pytest.raises(FloatingPointError) as err:
        run(model, train, val, optimizer, 2)
    message = str(err.value)
    assert "epoch 1" in message and "learning rate" in message and "1e+06" in message


# --------------------------------------------------------------------------- checkpoints

def stopped_after(epochs, path, train_set, val_set, monkeypatch):
    """A run whose checkpoint is left as a kernel killed after ``epochs`` epochs leaves it (resumable)."""
    real_save = checkpoints.save
    monkeypatch.setattr(checkpoints, "save", lambda p, **kw: real_save(p, **{**kw, "finished": False}))
    history = run(*setup(train_set, val_set), epochs, checkpoint=path)
    monkeypatch.setattr(checkpoints, "save", real_save)
    return history


@pytest.fixture
def resumed_runs(tmp_path, train_set, val_set, capsys, monkeypatch):
    """An uninterrupted 3-epoch run, and a run stopped after epoch 2 resumed to 3 epochs from its checkpoint."""
    path = tmp_path / "ckpt" / "run.pt"
    first = stopped_after(2, path, train_set, val_set, monkeypatch)
    capsys.readouterr()
    model, train, val, optimizer = setup(train_set, val_set)
    resumed = run(model, train, val, optimizer, 3, checkpoint=path)
    printed = capsys.readouterr().out
    straight_model, *rest = setup(train_set, val_set)
    straight = run(straight_model, *rest, 3)
    return dict(path=path, first=first, resumed=resumed, printed=printed, model=model,
                straight=straight, straight_model=straight_model)


def test_resume_continues_from_the_checkpoint(resumed_runs):
    r = resumed_runs
    assert "resumed" in r["printed"] and "after epoch 2" in r["printed"]
    assert len(r["resumed"]) == 3 and r["resumed"]["epoch"] == [1, 2, 3]
    assert r["resumed"].epochs[:2] == r["first"].epochs
    assert r["resumed"].steps[:len(r["first"].steps)] == r["first"].steps
    assert len(r["resumed"].steps) == 3 * 4


def test_resumed_run_matches_an_uninterrupted_run(resumed_runs):
    r = resumed_runs
    for (name, a), b in zip(r["straight_model"].state_dict().items(), r["model"].state_dict().values(),
                            strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=f"{name} differs after resuming")
    assert r["resumed"]["train_loss"] == r["straight"]["train_loss"]
    assert r["resumed"]["val_acc"] == r["straight"]["val_acc"]


def test_checkpoint_leaves_no_temporary_files(resumed_runs):
    assert [p.name for p in resumed_runs["path"].parent.iterdir()] == ["run.pt"]


@pytest.mark.parametrize("every,saved_after", [(0, [1, 2, 3]), (3600, [3])])
def test_checkpoints_are_written_at_the_end_and_then_at_most_every_so_many_seconds(
        every, saved_after, tmp_path, train_set, val_set, monkeypatch):
    saves = []
    real_save = checkpoints.save
    monkeypatch.setattr(checkpoints, "save",
                        lambda path, **kw: saves.append(len(kw["history"])) or real_save(path, **kw))
    model, train, val, optimizer = setup(train_set, val_set)
    au.fit(model, train, val, optimizer=optimizer, epochs=3, device="cpu", precision="fp32", progress=False,
           checkpoint=tmp_path / "run.pt", checkpoint_every=every)
    assert saves == saved_after, f"checkpoint_every={every}: saved after epochs {saves}"


def test_finished_checkpoint_returns_without_training(resumed_runs, train_set, val_set):
    model, train, val, optimizer = setup(train_set, val_set)

    def must_not_train(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    optimizer.step = must_not_train
    history = run(model, train, val, optimizer, 3, checkpoint=resumed_runs["path"])
    assert history.epochs == resumed_runs["resumed"].epochs
    for a, b in zip(model.state_dict().values(), resumed_runs["model"].state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_finished_checkpoint_keeps_weights_and_curves_not_the_optimiser(tmp_path, train_set, val_set,
                                                                        monkeypatch):
    stopped, finished = tmp_path / "stopped.pt", tmp_path / "finished.pt"
    stopped_after(2, stopped, train_set, val_set, monkeypatch)
    history = run(*setup(train_set, val_set), 2, checkpoint=finished)
    state = torch.load(finished, weights_only=False)
    assert state["finished"] and "optimizer" not in state and "rng" not in state
    assert len(state["history"]["epochs"]) == len(history) == 2
    # SGD with momentum: one buffer per weight, so the finished file is about half the stopped one
    assert finished.stat().st_size < 0.6 * stopped.stat().st_size


def test_finished_run_asked_for_more_epochs_trains_afresh_and_says_why(tmp_path, train_set, val_set, capsys):
    path = tmp_path / "run.pt"
    run(*setup(train_set, val_set), 2, checkpoint=path)
    capsys.readouterr()
    longer = run(*setup(train_set, val_set), 3, checkpoint=path)
    printed = capsys.readouterr().out
    assert "training all 3 epochs afresh" in printed and "optimiser state" in printed, printed
    assert (tmp_path / "run.previous.pt").exists(), "the finished 2-epoch run is kept aside, not deleted"
    straight = run(*setup(train_set, val_set), 3)
    assert longer["train_loss"] == straight["train_loss"], "afresh means from the first epoch"


def test_junk_checkpoint_raises_runtime_error_saying_to_delete_it(tmp_path, train_set, val_set):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(RuntimeError, match="delete it"):
        run(*setup(train_set, val_set), 1, checkpoint=path)


def test_checkpoint_of_another_model_trains_afresh_and_keeps_the_old_one(tmp_path, train_set, val_set, capsys):
    path = tmp_path / "other.pt"
    model, train, val, optimizer = setup(train_set, val_set)
    run(model, train, val, optimizer, 1, checkpoint=path)
    torch.manual_seed(0)
    wider = au.mini_alexnet(width=0.5)
    capsys.readouterr()
    history = run(wider, train, val, torch.optim.SGD(wider.parameters(), lr=0.01), 2, checkpoint=path)
    assert len(history) == 2 and "the model's layers" in capsys.readouterr().out
    assert (tmp_path / "other.previous.pt").exists() and path.exists()


# --------------------------------------------------------------------------- precision

def test_bf16_runs_convolutions_in_bfloat16(train_set, val_set):
    model, train, _, optimizer = setup(train_set, val_set)
    dtypes = []
    model.features[0].register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    run(model, train, None, optimizer, 1, precision="bf16")
    assert dtypes and set(dtypes) == {torch.bfloat16}


def test_bf16_first_epoch_loss_is_close_to_fp32(train_set, val_set):
    fp32 = run(*setup(train_set, val_set), 1, precision="fp32")
    bf16 = run(*setup(train_set, val_set), 1, precision="bf16")
    assert math.isfinite(bf16["train_loss"][0])
    assert bf16["train_loss"][0] == pytest.approx(fp32["train_loss"][0], rel=0.05)
    assert bf16["val_loss"][0] == pytest.approx(fp32["val_loss"][0], rel=0.05)


def test_fp32_precision_does_not_autocast(train_set, val_set):
    model, train, _, optimizer = setup(train_set, val_set)
    dtypes = []
    model.features[0].register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    run(model, train, None, optimizer, 1, precision="fp32")
    assert set(dtypes) == {torch.float32}


def test_fast_defaults_follow_the_fp32_loss_curve():
    """fit's fast path (auto precision, channels-last batches) learns like plain fp32 NCHW."""
    images = data.shapes(512, seed=3)
    curves = {}
    for label, kwargs, channels_last in [("fast", {}, True), ("fp32", dict(precision="fp32",
                                                                           channels_last=False), False)]:
        torch.manual_seed(0)
        model = au.mini_alexnet(norm="bn", width=0.5, dropout=0.0)
        loader = au.DeviceLoader(images, 64, augment="flip", device="cpu", seed=0, channels_last=channels_last)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        curves[label] = au.fit(model, loader, epochs=4, optimizer=optimizer, device="cpu", progress=False,
                               **kwargs)["train_loss"]
    fast, fp32 = curves["fast"], curves["fp32"]
    assert fp32[-1] < 0.8 * fp32[0], f"the reference run should learn: {fp32}"
    for epoch, (a, b) in enumerate(zip(fast, fp32, strict=True), start=1):
        assert a == pytest.approx(b, rel=0.15, abs=0.05), f"epoch {epoch}: fast {a:.3f} vs fp32 {b:.3f}"


# --------------------------------------------------------------------------- TrainConfig

def test_fit_has_no_optimizer_of_its_own():
    model = au.mini_alexnet(width=0.125)
    loader = data.DeviceLoader(data.shapes(64), 32, device="cpu")
    with pytest.raises(TypeError, match="optimizer"):
        au.fit(model, loader, epochs=1, progress=False)
    with pytest.raises(ValueError, match="not both"):
        au.fit(model, loader, config=au.TrainConfig(), optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
               progress=False)


def test_train_config_builds_the_optimizer_over_trainable_parameters_with_lr_groups():
    model = au.mini_alexnet(width=0.125)
    for p in model.features[0].parameters():
        p.requires_grad = False
    config = au.TrainConfig(optimizer="adamw", lr=1e-3, weight_decay=0.05, lr_scale=(("features", 0.1),))
    opt = config.make_optimizer(model)
    assert isinstance(opt, torch.optim.AdamW)
    lrs = sorted(g["lr"] for g in opt.param_groups)
    assert lrs == pytest.approx([1e-4, 1e-3])
    held = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not any(id(p) in held for p in model.features[0].parameters()), "frozen parameters stay out"
    assert len(held) == sum(p.requires_grad for p in model.parameters())
    assert all(g["weight_decay"] == 0.05 for g in opt.param_groups)
    assert isinstance(au.TrainConfig().make_optimizer(model), torch.optim.SGD)


def test_train_config_rejects_unknown_names_and_bad_numbers():
    for bad in (dict(optimizer="lamb"), dict(schedule="triangle"), dict(augment="mixup"), dict(lr=0),
                dict(epochs=0), dict(precision="int8")):
        with pytest.raises(ValueError):
            au.TrainConfig(**bad)


def test_fit_with_a_config_steps_its_schedule_every_step():
    model = au.mini_alexnet(width=0.125)
    loader = data.DeviceLoader(data.shapes(128), 32, device="cpu")
    config = au.TrainConfig(lr=0.05, schedule="cosine", warmup_epochs=1, epochs=3, precision="fp32")
    history = au.fit(model, loader, config=config, device="cpu", progress=False)
    assert history["lr"][0] == pytest.approx(0.05 / 4)  # warm-up: the first of 4 steps
    assert history["lr"][1] == pytest.approx(0.05)       # warmed up after one epoch
    assert history["lr"][2] < 0.05                       # then the cosine decays


def test_sized_fills_budget_from_the_profile():
    sized = au.TrainConfig().sized()
    assert (sized.epochs, sized.batch_size) == (au.run_profile().epochs, au.run_profile().batch_size)
    assert au.TrainConfig(epochs=7).sized().epochs == 7


def test_step_schedule_divides_twice_after_each_third():
    rates = au.train.lr_curve("step", 1.0, 128)
    drops = [i for i in range(1, 128) if rates[i] < rates[i - 1]]
    assert drops == [43, 86], f"two drops, after a third and two thirds of 128 steps; got {drops}"


def test_plateau_scheduler_reads_the_validation_loss_each_epoch(train_set, val_set):
    model, train, val, optimizer = setup(train_set, val_set, lr=0.05)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=0, threshold=10.0)
    history = run(model, train, val, optimizer, 3, scheduler=plateau)
    assert history["lr"] == pytest.approx([0.05, 0.005, 0.0005]), \
        "a loss that never improves by the (huge) threshold divides the rate after every epoch"

"""Timing, throughput and FLOP counting."""

import itertools

import pytest
import torch
from torch import nn

import alexnet_utils as au
from alexnet_utils import measure

PAPER_FORWARD_FLOPS = 1_448_813_632  # alexnet_2012() on one 224x224 image, multiply and add counted


def test_time_it_returns_one_positive_time_per_step_after_warmup():
    calls = []
    times = measure.time_it(lambda: calls.append(1), steps=5, warmup=3)
    assert len(times) == 5 and all(isinstance(t, float) and t > 0 for t in times)
    assert len(calls) == 3 + 5


def test_time_it_measures_the_call():
    import time

    times = measure.time_it(lambda: time.sleep(0.01), steps=2, warmup=0)
    assert all(0.009 < t < 0.5 for t in times)


def test_time_it_without_warmup_calls_exactly_steps_times():
    calls = []
    measure.time_it(lambda: calls.append(1), steps=4, warmup=0)
    assert len(calls) == 4


@pytest.mark.parametrize("steps, warmup", [(0, 2), (-1, 0), (3, -1)])
def test_time_it_rejects_bad_step_counts(steps, warmup):
    with pytest.raises(ValueError, match="steps"):
        measure.time_it(lambda: None, steps=steps, warmup=warmup)


def test_synchronize_on_cpu_is_a_no_op():
    assert measure.synchronize("cpu") is None


def test_peak_memory_on_cpu_is_positive():
    assert measure.peak_memory_mb("cpu") > 0


def test_training_throughput_reports_images_per_second():
    torch.manual_seed(0)
    model = au.mini_alexnet(width=0.25)
    result = measure.training_throughput(model, 8, device="cpu", steps=2, warmup=1)
    assert {"batch_size", "precision", "channels_last", "step_ms", "img_per_s", "peak_mem_mb",
            "device"} <= set(result)
    assert result["batch_size"] == 8 and result["device"] == "cpu" and result["precision"] == "fp32"
    assert result["img_per_s"] > 0 and result["step_ms"] > 0
    assert result["img_per_s"] == pytest.approx(8 / (result["step_ms"] / 1e3))


def test_training_throughput_really_trains_the_model():
    torch.manual_seed(0)
    model = au.mini_alexnet(width=0.25)
    before = model.classifier[-1].weight.detach().clone()
    measure.training_throughput(model, 4, device="cpu", steps=1, warmup=0)
    assert not torch.equal(before, model.classifier[-1].weight)


def test_training_throughput_needs_num_classes_without_a_linear_head():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ValueError, match="num_classes"):
        measure.training_throughput(model, 2, device="cpu", steps=1, warmup=0)
    result = measure.training_throughput(model, 2, device="cpu", steps=1, warmup=0, num_classes=4)
    assert result["img_per_s"] > 0


def test_forward_flops_of_paper_alexnet_are_about_1_45_billion(paper_alexnet):
    flops = measure.count_flops(paper_alexnet, (1, 3, 224, 224))
    assert 1.4e9 < flops < 1.5e9
    assert flops == PAPER_FORWARD_FLOPS


def test_flops_scale_with_batch_size():
    model = au.mini_alexnet(width=0.25)
    assert measure.count_flops(model, (4, 3, 32, 32)) == 4 * measure.count_flops(model, (1, 3, 32, 32))


def test_backward_adds_about_twice_the_forward_flops(one_tower_alexnet):
    forward = measure.count_flops(one_tower_alexnet, (1, 3, 224, 224))
    both = measure.count_flops(one_tower_alexnet, (1, 3, 224, 224), backward=True)
    assert 1.7 < (both - forward) / forward < 2.1  # conv1 needs no input gradient: a little under 2
    assert all(p.grad is None for p in one_tower_alexnet.parameters())


def test_backward_flops_of_two_tower_alexnet_are_about_twice_the_forward(paper_alexnet):
    forward = measure.count_flops(paper_alexnet, (1, 3, 224, 224))
    both = measure.count_flops(paper_alexnet, (1, 3, 224, 224), backward=True)
    assert 1.7 < (both - forward) / forward < 2.1


def test_grouped_conv_costs_half_of_the_ungrouped_conv_forward_and_backward():
    shape = (2, 8, 16, 16)
    plain = nn.Conv2d(8, 8, 3, padding=1, bias=False)
    grouped = nn.Conv2d(8, 8, 3, padding=1, groups=2, bias=False)
    assert measure.count_flops(grouped, shape) * 2 == measure.count_flops(plain, shape)
    assert measure.count_flops(grouped, shape, backward=True) * 2 == measure.count_flops(plain, shape, backward=True)


def test_flops_by_layer_names_each_arithmetic_layer(paper_alexnet):
    by_layer = measure.flops_by_layer(paper_alexnet, (1, 3, 224, 224))
    assert set(by_layer) == {"features.0", "features.4", "features.8", "features.10", "features.12",
                             "classifier.1", "classifier.4", "classifier.6"}
    assert by_layer["classifier.1"] == 2 * 9216 * 4096
    assert sum(by_layer.values()) == PAPER_FORWARD_FLOPS


def test_convolutions_do_over_90_percent_of_the_work(paper_alexnet):
    by_layer = measure.flops_by_layer(paper_alexnet, (1, 3, 224, 224))
    conv = sum(v for k, v in by_layer.items() if k.startswith("features."))
    assert conv / sum(by_layer.values()) > 0.9


def test_matmul_peak_flops_is_positive():
    peak = measure.matmul_peak_flops("cpu", n=256, steps=2)
    assert peak > 1e7  # any CPU does more than 10 MFLOP/s on a 256x256 matmul


def test_loader_throughput_counts_every_image_delivered(monkeypatch):
    loader = au.DeviceLoader(au.data.shapes(100, seed=0), 32, augment="crop_flip", device="cpu")
    clock = itertools.chain([10.0], itertools.repeat(12.0))  # every later reading is 2 s on
    monkeypatch.setattr(measure.time, "perf_counter", lambda: next(clock))
    assert measure.loader_throughput(loader, epochs=2) == pytest.approx(200 / 2.0)



def test_layer_table_lists_every_conv_and_fc_layer_by_its_paper_name(paper_alexnet):
    table = measure.layer_table(paper_alexnet, (1, 3, 224, 224))
    assert list(table.index) == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    assert table["params"].sum() == 60_965_224
    assert table.loc["conv1", "output shape"] == (1, 96, 55, 55)
    assert table.loc["conv2", "params"] == 256 * 48 * 25 + 256  # grouped: half the inputs per filter
    assert table.loc["fc6", "flops"] == 2 * 9216 * 4096
    assert table["flops"].sum() == measure.count_flops(paper_alexnet, (1, 3, 224, 224))


# --------------------------------------------------------------------------- timing on a shared machine

class FakeClock:
    """A clock whose seconds the test decides: each call of a timed function advances it."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_interleaved_alternates_and_takes_the_median_ratio_so_a_burst_of_load_does_not_decide():
    clock, calls, load = FakeClock(), [], iter([1.0] * 6 + [20.0] * 2 + [1.0] * 20)

    def work(name, seconds):
        def run():
            calls.append(name)
            clock.now += seconds * next(load)
        return run

    timed = measure.interleaved(work("a", 1.0), work("b", 2.0), rounds=7, warmup=0, clock=clock)
    assert calls[:4] == ["a", "b", "b", "a"], "rounds alternate AB, BA so neither side always goes first"
    assert timed.ratio == pytest.approx(2.0), "the median ignores the round that load hit"
    assert min(timed.ratios) == pytest.approx(2.0) and not timed.busy


def test_interleaved_says_when_the_rounds_disagree_too_much():
    clock = FakeClock()
    noise = iter([1, 1, 1, 3, 1, 1, 3, 1, 1, 1, 1, 2, 2, 1])

    def run():
        clock.now += next(noise)

    timed = measure.interleaved(run, run, rounds=7, warmup=0, clock=clock)
    assert timed.busy and "too busy" in timed.describe()


def test_utilisation_never_reports_more_than_the_yardstick():
    clock = FakeClock()

    def step():  # 1e9 FLOPs in 1 s: 1 GFLOP/s
        clock.now += 1.0

    def slow_matmul():  # the yardstick slowed by load: 2*64^3 FLOPs in 1 s
        clock.now += 1.0

    busy = measure.utilisation(step, 1e9, n=64, rounds=3, clock=clock, matmul=slow_matmul)
    assert busy["mfu"] is None and "impossible" in busy["mfu_note"]

    def fast_matmul():  # 2*64^3 FLOPs in 1e-4 s: 5.2 GFLOP/s
        clock.now += 1e-4

    quiet = measure.utilisation(step, 1e9, n=64, rounds=3, clock=clock, matmul=fast_matmul)
    assert quiet["mfu"] == pytest.approx(1e9 / (2 * 64**3 / 1e-4)) and quiet["mfu_note"] == ""


def test_time_call_synchronises_and_averages_over_calls():
    calls = []
    assert measure.time_call(lambda: calls.append(1), number=5) > 0 and len(calls) == 5

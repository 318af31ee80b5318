"""Networks: the paper's AlexNet, torchvision's AlexNet and the 32x32 mini AlexNet."""

import pytest
import torch
import torchvision
from torch import nn

import alexnet_utils as au
from alexnet_utils.models import AlexNetConfig


def convs(model):
    return [m for m in model.features if isinstance(m, nn.Conv2d)]


def linears(model):
    return [m for m in model.classifier if isinstance(m, nn.Linear)]


@pytest.fixture(scope="module")
def torchvision_pair():
    """(ours, torchvision's) AlexNet with torchvision's random weights loaded into ours."""
    torch.manual_seed(0)
    reference = torchvision.models.alexnet(weights=None).eval()
    ours = au.alexnet_torchvision().eval()
    result = ours.load_state_dict(reference.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    return ours, reference


@pytest.fixture
def mini():
    torch.manual_seed(0)
    return au.mini_alexnet()


# --------------------------------------------------------------------------- parameter counts

def test_paper_alexnet_two_towers_has_60_965_224_parameters(paper_alexnet):
    assert au.count_parameters(paper_alexnet) == 60_965_224


def test_paper_alexnet_one_tower_has_62_378_344_parameters(one_tower_alexnet):
    assert au.count_parameters(one_tower_alexnet) == 62_378_344


def test_torchvision_layout_has_61_100_840_parameters(torchvision_pair):
    ours, reference = torchvision_pair
    assert au.count_parameters(ours) == 61_100_840 == au.count_parameters(reference)


def test_torchvision_layout_gives_identical_outputs_in_eval_mode(torchvision_pair):
    ours, reference = torchvision_pair
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-6, atol=1e-7)


def test_count_parameters_trainable_only_skips_frozen_layers(mini):
    total = au.count_parameters(mini)
    for p in mini.features.parameters():
        p.requires_grad_(False)
    assert au.count_parameters(mini) == total
    assert au.count_parameters(mini, trainable_only=True) == sum(p.numel() for p in mini.classifier.parameters())
    assert au.count_parameters(mini, trainable_only=True) < total


# --------------------------------------------------------------------------- the paper's architecture

def test_feature_sizes_for_224_input_follow_the_paper(paper_alexnet):
    x = torch.zeros(1, 3, 224, 224)
    sizes = []
    with torch.no_grad():
        for layer in paper_alexnet.features:
            x = layer(x)
            if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
                assert x.shape[-1] == x.shape[-2]
                sizes.append(x.shape[-1])
    # conv1 pool1 conv2 pool2 conv3 conv4 conv5 pool5
    assert sizes == [55, 27, 27, 13, 13, 13, 13, 6]
    assert paper_alexnet.config.feature_sizes(224) == sizes


def test_conv_channels_are_96_256_384_384_256(paper_alexnet):
    assert [c.out_channels for c in convs(paper_alexnet)] == [96, 256, 384, 384, 256]


def test_conv1_has_96_filters_11x11_stride_4(paper_alexnet):
    conv1 = paper_alexnet.features[0]
    assert isinstance(conv1, nn.Conv2d)
    assert conv1.weight.shape == (96, 3, 11, 11)
    assert conv1.stride == (4, 4)


def _after_conv(features, kind):
    """(number of convs seen so far, layer) for every layer of type ``kind``."""
    seen_convs, found = 0, []
    for layer in features:
        seen_convs += isinstance(layer, nn.Conv2d)
        if isinstance(layer, kind):
            found.append((seen_convs, layer))
    return found


def test_lrn_uses_paper_constants_after_conv1_and_conv2_only(paper_alexnet):
    lrns = _after_conv(paper_alexnet.features, nn.LocalResponseNorm)
    assert [after for after, _ in lrns] == [1, 2]
    for _, layer in lrns:
        assert (layer.size, layer.alpha, layer.beta, layer.k) == (5, 5e-4, 0.75, 2.0)


def test_lrn_sits_after_the_relu_and_before_the_pool(paper_alexnet):
    names = [type(m).__name__ for m in paper_alexnet.features]
    assert names[:4] == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]
    assert names[4:8] == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]


def test_pools_overlap_3x3_stride_2_after_conv1_conv2_conv5(paper_alexnet):
    pools = _after_conv(paper_alexnet.features, nn.MaxPool2d)
    assert [after for after, _ in pools] == [1, 2, 5]
    for _, layer in pools:
        assert layer.kernel_size == 3 and layer.stride == 2


def test_two_towers_group_conv2_conv4_conv5_only(paper_alexnet):
    assert [c.groups for c in convs(paper_alexnet)] == [1, 2, 1, 2, 2]


def test_one_tower_has_no_grouped_convs(one_tower_alexnet):
    assert [c.groups for c in convs(one_tower_alexnet)] == [1, 1, 1, 1, 1]


def test_dropout_half_sits_right_before_the_two_hidden_linear_layers(paper_alexnet):
    layers = list(paper_alexnet.classifier)
    linear_at = [i for i, m in enumerate(layers) if isinstance(m, nn.Linear)]
    assert len(linear_at) == 3
    for i in linear_at[:2]:
        assert isinstance(layers[i - 1], nn.Dropout) and layers[i - 1].p == 0.5
    assert not isinstance(layers[linear_at[2] - 1], nn.Dropout)
    assert sum(isinstance(m, nn.Dropout) for m in layers) == 2


def test_classifier_is_9216_4096_4096_1000(paper_alexnet):
    assert [(m.in_features, m.out_features) for m in linears(paper_alexnet)] == [
        (256 * 6 * 6, 4096), (4096, 4096), (4096, 1000)]


def test_paper_init_biases_one_in_conv2_conv4_conv5_and_hidden_fcs(paper_alexnet):
    layers = convs(paper_alexnet) + linears(paper_alexnet)
    expected = [0, 1, 0, 1, 1, 1, 1, 0]  # conv1..conv5, fc6, fc7, fc8
    for layer, value in zip(layers, expected, strict=True):
        assert torch.all(layer.bias == value), layer


def test_paper_init_weights_are_zero_mean_with_std_0_01(paper_alexnet):
    for layer in convs(paper_alexnet) + linears(paper_alexnet):
        w = layer.weight.detach()
        assert abs(w.mean().item()) < 1e-3, layer
        assert w.std().item() == pytest.approx(0.01, rel=0.05), layer


def test_kaiming_init_scales_conv_weights_by_fan_out(mini):
    conv1 = convs(mini)[0]
    fan_out = conv1.out_channels * conv1.kernel_size[0] * conv1.kernel_size[1]
    assert conv1.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.05)
    assert torch.all(conv1.bias == 0)


def test_output_is_batch_by_1000_for_224_input(paper_alexnet):
    with torch.no_grad():
        assert paper_alexnet(torch.randn(2, 3, 224, 224)).shape == (2, 1000)


def test_num_classes_sets_the_last_layer():
    model = au.alexnet_2012(num_classes=10, width=0.25)
    assert linears(model)[-1].out_features == 10


# --------------------------------------------------------------------------- input checks

def test_minimum_input_size_is_63(paper_alexnet):
    assert paper_alexnet.min_input_size == 63
    with torch.no_grad():
        assert paper_alexnet(torch.randn(1, 3, 63, 63)).shape == (1, 1000)


def test_too_small_input_raises_value_error_naming_the_minimum(paper_alexnet):
    with pytest.raises(ValueError, match="63x63"):
        paper_alexnet(torch.randn(1, 3, 62, 62))
    with pytest.raises(ValueError, match="63"):
        paper_alexnet(torch.randn(1, 3, 32, 32))


def test_unbatched_image_raises_value_error_suggesting_unsqueeze(paper_alexnet):
    with pytest.raises(ValueError, match="unsqueeze"):
        paper_alexnet(torch.randn(3, 224, 224))


def test_wrong_channel_count_raises_value_error(paper_alexnet):
    with pytest.raises(ValueError, match="3-channel"):
        paper_alexnet(torch.randn(1, 1, 224, 224))


def test_integer_images_raise_value_error(paper_alexnet):
    with pytest.raises(ValueError, match="float"):
        paper_alexnet(torch.zeros(1, 3, 224, 224, dtype=torch.uint8))


@pytest.mark.parametrize("field, bad, valid", [
    ("activation", "swish", ("relu", "sigmoid", "tanh", "leaky_relu", "gelu")),
    ("norm", "layer", ("lrn", "bn", "none")),
    ("init", "xavier", ("paper", "kaiming", "torch")),
])
def test_unknown_choice_raises_value_error_listing_the_choices(field, bad, valid):
    with pytest.raises(ValueError) as err:
        au.mini_alexnet(**{field: bad})
    message = str(err.value)
    assert bad in message
    for name in valid:
        assert name in message


@pytest.mark.parametrize("overrides", [{"dropout": 1.0}, {"dropout": -0.1}, {"width": 0}])
def test_out_of_range_dropout_or_width_raises_value_error(overrides):
    with pytest.raises(ValueError):
        AlexNetConfig(**overrides)


# --------------------------------------------------------------------------- mini AlexNet and variants

def test_mini_alexnet_maps_32x32_rgb_to_10_classes(mini):
    assert mini(torch.randn(4, 3, 32, 32)).shape == (4, 10)


def test_mini_alexnet_has_five_convs_three_pools_three_linears(mini):
    assert len(convs(mini)) == 5
    assert sum(isinstance(m, nn.MaxPool2d) for m in mini.features) == 3
    assert len(linears(mini)) == 3


def test_mini_alexnet_accepts_grayscale_28x28():
    model = au.mini_alexnet(in_channels=1)
    assert convs(model)[0].in_channels == 1
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_batchnorm_variant_has_bn_after_every_conv_and_no_conv_bias():
    model = au.mini_alexnet(norm="bn")
    layers = list(model.features)
    conv_at = [i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)]
    assert len(conv_at) == 5
    for i in conv_at:
        assert layers[i].bias is None
        assert isinstance(layers[i + 1], nn.BatchNorm2d)
        assert layers[i + 1].num_features == layers[i].out_channels
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in layers)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_paper_alexnet_with_bn_replaces_lrn():
    model = au.alexnet_2012(norm="bn", width=0.25)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.features) == 5
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in model.features)


def test_norm_none_has_neither_lrn_nor_bn():
    model = au.alexnet_2012(norm="none", width=0.25)
    assert not any(isinstance(m, (nn.LocalResponseNorm, nn.BatchNorm2d)) for m in model.features)
    assert all(c.bias is not None for c in convs(model))


def test_width_half_halves_every_conv_and_hidden_layer():
    full, half = au.mini_alexnet(), au.mini_alexnet(width=0.5)
    assert [c.out_channels for c in convs(half)] == [c.out_channels // 2 for c in convs(full)]
    assert linears(half)[0].out_features == linears(full)[0].out_features // 2 == 256
    assert half(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_width_scaling_keeps_channels_divisible_by_groups():
    assert AlexNetConfig(width=0.5).conv_channels() == (48, 128, 192, 192, 128)
    cfg = AlexNetConfig(width=0.3)
    for c, g in zip(cfg.conv_channels(), cfg.groups, strict=True):
        assert c % g == 0


@pytest.mark.parametrize("name, module", [("sigmoid", nn.Sigmoid), ("tanh", nn.Tanh), ("gelu", nn.GELU)])
def test_activation_choice_replaces_every_relu(name, module):
    model = au.mini_alexnet(activation=name)
    assert sum(isinstance(m, module) for m in model.modules()) == 7  # five convs, two hidden FCs
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())


def test_pretrained_alexnet_in_smoke_profile_says_weights_are_random(capsys):
    model = au.pretrained_alexnet(num_classes=5)
    assert "random weights stand in" in capsys.readouterr().out
    assert linears(model)[-1].out_features == 5
    assert linears(model)[-1].in_features == 4096


def test_pretrained_alexnet_outside_smoke_loads_the_cached_weights(monkeypatch, capsys, torchvision_pair):
    _, reference = torchvision_pair
    monkeypatch.setenv("ALEXNET_PROFILE", "quick")
    monkeypatch.setattr(au.data, "load_weights", lambda name="alexnet": reference.state_dict())
    model = au.pretrained_alexnet()
    assert "random weights" not in capsys.readouterr().out
    assert torch.equal(model.features[0].weight, reference.features[0].weight)
    assert torch.equal(model.classifier[6].bias, reference.classifier[6].bias)


def test_pretrained_alexnet_rejects_unknown_stand_ins():
    with pytest.raises(ValueError, match="random, mini"):
        au.pretrained_alexnet(offline_stand_in="imagenet")


@pytest.mark.slow
def test_mini_stand_in_is_trained_cached_announced_and_leaves_the_threads_alone(capsys):
    threads = torch.get_num_threads()
    model = au.pretrained_alexnet(offline_stand_in="mini")
    first = capsys.readouterr().out
    assert "stands in for torchvision's ImageNet AlexNet" in first and "validation accuracy" in first
    assert torch.get_num_threads() == threads, "the stand-in trains on one thread, then gives the others back"
    assert not model.training and model.min_input_size <= 32 and linears(model)[-1].out_features == 10
    val = au.data.shapes(512, seed=1)
    metrics = au.evaluate(model, au.DeviceLoader(val, 128, shuffle=False), device="cpu")
    assert metrics["acc"] > 0.5, "trained: far above the 10% of chance on shapes"
    again = au.pretrained_alexnet(num_classes=4, offline_stand_in="mini")
    assert "finished run loaded" in capsys.readouterr().out, "a second call reloads the cached run"
    assert torch.equal(again.features[0].weight, model.features[0].weight)
    assert linears(again)[-1].out_features == 4


def test_paper_names_map_module_names_to_the_papers_layer_names(paper_alexnet):
    names = au.models.paper_names(paper_alexnet)
    assert names == {"features.0": "conv1", "features.4": "conv2", "features.8": "conv3",
                     "features.10": "conv4", "features.12": "conv5",
                     "classifier.1": "fc6", "classifier.4": "fc7", "classifier.6": "fc8"}

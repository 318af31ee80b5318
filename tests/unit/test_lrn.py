"""The course's LocalResponseNorm computes exactly what torch's does, only faster to train."""

import pytest
import torch
from torch import nn

import alexnet_utils as au
from alexnet_utils.models import PAPER_LRN, LocalResponseNorm


@pytest.mark.parametrize("size,alpha,beta,k", [(5, 5e-4, 0.75, 2.0), (4, 1e-3, 0.6, 1.0), (2, 0.1, 0.5, 1.0),
                                               (1, 1e-2, 0.75, 2.0), (7, 1e-4, 1.0, 0.5)])
def test_same_output_and_gradient_as_torch(size, alpha, beta, k):
    torch.manual_seed(0)
    x = (torch.randn(3, 9, 5, 4, dtype=torch.float64) * 10).requires_grad_()
    ours, theirs = LocalResponseNorm(size, alpha, beta, k), nn.LocalResponseNorm(size, alpha, beta, k)
    assert torch.allclose(ours(x), theirs(x), rtol=1e-12, atol=1e-12)
    g_ours, = torch.autograd.grad(ours(x).square().sum(), x)
    g_theirs, = torch.autograd.grad(theirs(x).square().sum(), x)
    assert torch.allclose(g_ours, g_theirs, rtol=1e-10, atol=1e-12)


def test_channels_last_fewer_channels_than_the_window_and_other_ranks():
    lrn, ref = LocalResponseNorm(**PAPER_LRN), nn.LocalResponseNorm(**PAPER_LRN)
    x = torch.randn(2, 3, 6, 6).contiguous(memory_format=torch.channels_last) * 30
    assert torch.allclose(lrn(x), ref(x), rtol=1e-5, atol=1e-6)
    x3 = torch.randn(2, 8, 10)  # not 4-d: torch's own implementation
    assert torch.equal(lrn(x3), ref(x3))


def test_under_bf16_autocast_it_stays_close_and_keeps_the_dtype():
    lrn, ref = LocalResponseNorm(**PAPER_LRN), nn.LocalResponseNorm(**PAPER_LRN)
    x = torch.randn(2, 16, 8, 8).bfloat16() * 50
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = lrn(x)
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out.float(), ref(x.float()), rtol=2e-2, atol=2e-2)


def test_networks_use_it_and_it_still_is_a_local_response_norm():
    layers = [m for m in au.mini_alexnet(norm="lrn").features if isinstance(m, nn.LocalResponseNorm)]
    assert len(layers) == 2 and all(type(m) is LocalResponseNorm for m in layers)
    assert type(layers[0]).__name__ == "LocalResponseNorm"  # printouts and layer names stay torch's
    assert (layers[0].size, layers[0].alpha, layers[0].beta, layers[0].k) == (5, 5e-4, 0.75, 2.0)

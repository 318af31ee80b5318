"""The DDP worker: two CPU processes (gloo) train in lockstep on disjoint halves of the data."""

import json
import os
import subprocess
import sys

import pytest
import torch

from alexnet_utils import ddp_worker
from alexnet_utils.models import mini_alexnet


def test_rank_loader_splits_and_reshuffles_per_epoch():
    data = ddp_worker.synthetic_data(64, image_size=8)
    seen = {(r, e): [i for _, _, idx in ddp_worker.rank_loader(data, 4, r, 2, e) for i in idx.tolist()]
            for r in (0, 1) for e in (0, 1)}
    for e in (0, 1):
        assert not set(seen[0, e]) & set(seen[1, e]), "the two ranks share samples within an epoch"
        assert sorted(seen[0, e] + seen[1, e]) == list(range(64)), "the ranks together see every sample once"
    assert seen[0, 0] != seen[0, 1], "set_epoch must change the shuffle from one epoch to the next"


def test_weights_digest_sees_one_changed_value():
    model = torch.nn.Linear(3, 2)
    before = ddp_worker.weights_digest(model)
    with torch.no_grad():
        model.bias[0] += 1e-6
    assert ddp_worker.weights_digest(model) != before


@pytest.mark.slow
def test_two_gloo_ranks_end_identical_on_disjoint_halves(tmp_path):
    # 256 samples, 2 ranks, 32 per step: one epoch is 4 steps per rank (1 warm-up + 3 timed)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "alexnet_utils.ddp_worker", "--cpu", "--samples", "256", "--batch-size", "32",
           "--warmup", "1", "--steps", "3", "--image-size", "32", "--width", "0.125", "--comm-rounds", "1",
           "--out", str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world_size"] == 2 and r["backend"] == "gloo" for r in ranks)
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"], "the ranks' weights differ after training"
    a, b = (set(r["indices"]) for r in ranks)
    assert len(ranks[0]["indices"]) == len(a) == 128 and len(b) == 128, "each rank sees its half, once"
    assert not a & b, "the ranks trained on overlapping samples"
    assert a | b == set(range(256)), "together the ranks cover the dataset"
    torch.manual_seed(0)  # the worker's initial weights: training must have moved them
    fresh = mini_alexnet(num_classes=10, width=0.125, dropout=0.0)
    assert ddp_worker.weights_digest(fresh) != ranks[0]["weights_sha256"], "the weights never changed"

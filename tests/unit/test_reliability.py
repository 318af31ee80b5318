"""Nothing is lost when a kernel dies, and nothing damaged is ever loaded."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from alexnet_utils import data, train
from alexnet_utils.data import DatasetCorruptError, DatasetMissingError

DATASETS = [name for name in data.SOURCES if name != "alexnet_weights"]
# one file per dataset that its checksum verification reads
CHECKED_FILE = {
    "cifar10": "cifar-10-batches-py/data_batch_1",
    "mnist": "MNIST/raw/train-images-idx3-ubyte.gz",
    "flowers102": "flowers-102/102flowers.tgz",
    "oxford_pets": "oxford-iiit-pet/images.tar.gz",
}


@pytest.fixture
def quick_offline(monkeypatch, tmp_path):
    """The quick profile (real data) on a machine whose downloads fail half-way."""
    monkeypatch.setenv("ALEXNET_PROFILE", "quick")
    monkeypatch.setenv("ALEXNET_DATA", str(tmp_path))

    def half_a_download(name, root, split, download):
        if download:
            (root / "half-written.part").write_bytes(b"\0" * 1000)
            raise OSError("network unreachable")
        raise AssertionError(f"{name} was read although it is not verified")

    monkeypatch.setattr(data, "_torchvision_dataset", half_a_download)
    return tmp_path


@pytest.mark.parametrize("name", DATASETS)
def test_missing_dataset_offline_names_it_and_the_command_that_fetches_it(quick_offline, name):
    with pytest.raises(DatasetMissingError) as err:
        data.load(name)
    assert data.SOURCES[name].title in str(err.value)
    assert f"python -m alexnet_utils download {name}" in str(err.value)


@pytest.mark.parametrize("name", DATASETS)
def test_interrupted_download_leaves_nothing_under_the_final_name(quick_offline, name):
    with pytest.raises(DatasetMissingError):
        data.download(name)
    assert not (quick_offline / name).exists()
    assert not list(quick_offline.glob(".partial-*")), "the half-written temporary folder was left behind"


@pytest.mark.parametrize("name", DATASETS)
def test_damaged_cache_file_is_detected_by_checksum_and_never_loaded(quick_offline, name):
    damaged = quick_offline / name / CHECKED_FILE[name]
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"truncated")
    with pytest.raises(DatasetCorruptError) as err:
        data.load(name)
    assert f"python -m alexnet_utils download {name} --force" in str(err.value)
    assert not data.is_cached(name)


def test_run_path_is_per_profile_in_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("ALEXNET_DATA", str(tmp_path))
    monkeypatch.setenv("ALEXNET_PROFILE", "smoke")
    assert train.run_path("02_baseline") == tmp_path / "runs" / "smoke" / "02_baseline.pt"


TRAIN_SCRIPT = textwrap.dedent("""
    import sys, torch, alexnet_utils as au
    torch.manual_seed(0)
    images = au.data.shapes(256)
    loader = au.DeviceLoader(images, 64, augment="crop_flip", seed=1, device="cpu")
    model = au.mini_alexnet(width=0.5)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, 2, 0.5)
    history = au.fit(model, loader, None, epochs=int(sys.argv[2]), optimizer=opt, scheduler=sched,
                     device="cpu", precision="fp32", checkpoint=sys.argv[1], checkpoint_every=0,
                     progress=False)
    torch.save({"model": model.state_dict(), "epochs": history.epochs, "steps": history.steps}, sys.argv[3])
""")
EPOCHS = 6


def _run(script, checkpoint, result, env):
    return subprocess.Popen([sys.executable, str(script), str(checkpoint), str(EPOCHS), str(result)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _epochs_in(checkpoint):
    try:
        return len(torch.load(checkpoint, weights_only=False)["history"]["epochs"])
    except (FileNotFoundError, EOFError, RuntimeError):
        return 0


@pytest.mark.slow
def test_training_killed_with_sigkill_resumes_to_the_same_weights_and_history(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same kernels in every run: bitwise reproducible

    straight = _run(script, tmp_path / "straight.pt", tmp_path / "straight-result.pt", env)
    assert straight.wait(timeout=300) == 0, straight.stderr.read().decode()

    victim = _run(script, tmp_path / "killed.pt", tmp_path / "killed-result.pt", env)
    deadline = time.time() + 300
    while _epochs_in(tmp_path / "killed.pt") < 2 and victim.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=60) == -signal.SIGKILL, "the run finished before it could be killed"
    done_when_killed = _epochs_in(tmp_path / "killed.pt")
    assert 2 <= done_when_killed < EPOCHS

    resumed = _run(script, tmp_path / "killed.pt", tmp_path / "killed-result.pt", env)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()

    a = torch.load(tmp_path / "straight-result.pt", weights_only=False)
    b = torch.load(tmp_path / "killed-result.pt", weights_only=False)
    drop_time = [{k: v for k, v in row.items() if k != "time_s"} for row in a["epochs"]]
    assert [{k: v for k, v in row.items() if k != "time_s"} for row in b["epochs"]] == drop_time
    assert b["steps"] == a["steps"]
    for key, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][key]), f"{key} differs after resuming"
    assert not list(tmp_path.glob(".killed.pt.tmp-*")), "a half-written checkpoint was left behind"

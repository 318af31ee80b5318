"""Data-parallel training with DistributedDataParallel: the script every rank runs.

One process per rank (per GPU, or per group of CPU cores). Launch it with torchrun::

    torchrun --standalone --nproc_per_node=2 -m alexnet_utils.ddp_worker --steps 20 --out runs/ddp
    python -m alexnet_utils.ddp_worker --steps 20            # one process, world size 1

and across machines with torchrun's multi-node arguments (the same script)::

    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=4 --rdzv_backend=c10d \\
             --rdzv_endpoint=HOST:29500 -m alexnet_utils.ddp_worker ...

Each rank builds the same mini AlexNet (same seed; DDP also broadcasts rank 0's weights),
reads its own share of the data through a ``DistributedSampler`` (``set_epoch`` every
epoch, so the shuffle changes per epoch and stays identical across ranks), and after
every backward pass DDP averages the gradients over the ranks (an all-reduce: gloo on the
CPU, NCCL on GPUs), so every rank takes the same optimizer step. The script lives in the
package, not in a notebook: ``mp.spawn`` of a function defined in a notebook fails,
because the worker processes cannot import ``__main__``.

Each rank writes ``<out>/rank<r>.json``: the dataset indices it trained on, a digest of
its final weights, and its timings; rank 0 adds the run's throughput and the share of a
forward+backward pass spent communicating (timed against the same pass under
``no_sync()``, in alternating rounds).
"""

from __future__ import annotations

__all__ = ["IndexedImages", "synthetic_data", "rank_loader", "weights_digest", "parse_args", "main"]

import argparse
import hashlib
import json
import os
import socket
import statistics
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler


class IndexedImages(Dataset):
    """uint8 images and labels that also return each sample's index (to check who saw what)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i].float() / 255, self.labels[i], i


def synthetic_data(n: int = 512, image_size: int = 32, num_classes: int = 10, seed: int = 0) -> IndexedImages:
    """Random uint8 images with random labels: timing needs shapes, not meaning."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, image_size, image_size), dtype=torch.uint8, generator=g)
    return IndexedImages(images, torch.randint(0, num_classes, (n,), generator=g))


def rank_loader(dataset, batch_size: int, rank: int, world_size: int, epoch: int, seed: int = 0) -> DataLoader:
    """This rank's batches for ``epoch``: a shuffled ``DistributedSampler`` share, ``set_epoch`` called."""
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                                 drop_last=True)
    sampler.set_epoch(epoch)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True)


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of every parameter's bytes, in order: equal digests mean bit-identical weights."""
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def parse_args(argv=None) -> argparse.Namespace:
    """The worker's command line (see the module docstring for how to launch it)."""
    parser = argparse.ArgumentParser(prog="python -m alexnet_utils.ddp_worker", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per rank")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=32, help="images per rank per step")
    parser.add_argument("--samples", type=int, default=1024, help="synthetic dataset size (without --data)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--width", type=float, default=0.25, help="mini AlexNet width")
    parser.add_argument("--data", type=Path, default=None,
                        help="a torch.save'd dict with uint8 'images' (N, 3, H, W) and 'labels'")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--comm-rounds", type=int, default=5, help="rounds timing the all-reduce share")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu", action="store_true", help="gloo on the CPU even when CUDA is there")
    parser.add_argument("--out", type=Path, default=Path("ddp_out"))
    return parser.parse_args(argv)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> dict:
    """Join the process group torchrun describes (or a world of one), train, write ``rank<r>.json``."""
    args = parse_args(argv)
    # torchrun sets these; a plain `python -m` run is a world of one
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(_free_port()))
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    cuda = torch.cuda.is_available() and not args.cpu
    backend = "nccl" if cuda else "gloo"
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    torch.set_num_threads(max(1, args.threads))
    dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        return _train(args, rank, world, device, backend)
    finally:
        dist.destroy_process_group()


def _train(args, rank: int, world: int, device: torch.device, backend: str) -> dict:
    from torch.nn.parallel import DistributedDataParallel as DDP

    from .models import mini_alexnet

    if args.data is not None:
        blob = torch.load(args.data, weights_only=True)
        dataset = IndexedImages(blob["images"], blob["labels"])
    else:
        dataset = synthetic_data(args.samples, args.image_size, seed=args.seed)
    num_classes = int(dataset.labels.max()) + 1
    torch.manual_seed(args.seed)  # the same initial weights on every rank (DDP broadcasts rank 0's anyway)
    model = mini_alexnet(num_classes=max(num_classes, 2), width=args.width, dropout=0.0).to(device)
    ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    seen: list[int] = []
    times: list[float] = []
    total = args.warmup + args.steps
    step, epoch = 0, 0
    while step < total:
        loader = rank_loader(dataset, args.batch_size, rank, world, epoch, args.seed)
        if len(loader) == 0:
            raise ValueError(f"{len(dataset)} samples give no batch of {args.batch_size} on each of {world} ranks")
        for x, y, idx in loader:
            if step >= total:
                break
            x, y = x.to(device), y.to(device)
            _sync(device)
            t0 = time.perf_counter()
            loss = loss_fn(ddp(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # DDP all-reduces the gradients here, bucket by bucket
            optimizer.step()
            _sync(device)
            if step >= args.warmup:
                times.append(time.perf_counter() - t0)
            seen.extend(idx.tolist())
            step += 1
        epoch += 1

    # the share of a forward+backward pass spent communicating: with the all-reduce vs without
    # it (no_sync), alternating rounds; no optimizer step, so the weights stay as trained
    x, y, _ = next(iter(rank_loader(dataset, args.batch_size, rank, world, 0, args.seed)))
    x, y = x.to(device), y.to(device)

    def pass_(sync: bool) -> float:
        optimizer.zero_grad(set_to_none=True)
        _sync(device)
        t0 = time.perf_counter()
        if sync:
            loss_fn(ddp(x), y).backward()
        else:
            with ddp.no_sync():
                loss_fn(ddp(x), y).backward()
        _sync(device)
        return time.perf_counter() - t0

    with_comm, without = [], []
    for r in range(args.comm_rounds):
        for sync in ((True, False) if r % 2 == 0 else (False, True)):
            (with_comm if sync else without).append(pass_(sync))
    optimizer.zero_grad(set_to_none=True)
    shares = [max(0.0, 1 - b / a) for a, b in zip(with_comm, without, strict=True)]

    step_s = statistics.median(times) if times else float("nan")
    result = {
        "rank": rank, "world_size": world, "backend": backend, "device": str(device),
        "threads": torch.get_num_threads(), "batch_per_rank": args.batch_size, "steps": args.steps,
        "warmup": args.warmup, "epochs_started": epoch, "indices": seen,
        "weights_sha256": weights_digest(model), "step_ms": step_s * 1e3,
        "step_ms_all": [t * 1e3 for t in times],
        "img_per_s": world * args.batch_size / step_s if times else float("nan"),
        "comm_share": statistics.median(shares) if shares else float("nan"),
        "comm_share_rounds": shares,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"rank{rank}.json").write_text(json.dumps(result) + "\n")
    return result


if __name__ == "__main__":
    main()

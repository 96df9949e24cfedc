"""DistributedDataParallel on CPU (gloo): two processes take one step and end with identical weights."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    """One rank: join via dfig.stages.train.init_distributed, one DDP step through train_one_epoch, report."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from dfig.core.models import build_detector
    from dfig.stages.train import TrainOptions, data_loader, init_distributed, train_one_epoch

    info = init_distributed(torch.device("cpu"))
    assert info.enabled and info.rank == rank and dist.get_backend() == "gloo"
    torch.manual_seed(100 + rank)  # different initial weights per rank: DDP must broadcast rank 0's
    model = build_detector("mobilev2", 0)
    init = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    net = DDP(model)
    start = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 32, 32, generator=g)
    y = (torch.arange(8) % 2).float()
    ds = torch.utils.data.TensorDataset(x, y, torch.arange(8))
    opts = TrainOptions(dataroot="x", batch_size=4, seed=0)
    loader = data_loader(ds, opts, shuffle=True, seed=0, dist_info=info, epoch=0)
    seen = [int(i) for b in loader for i in b[2]]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    _, steps = train_one_epoch(net, loader, opt, torch.device("cpu"))
    params = torch.cat([p.detach().flatten() for p in model.parameters()])
    grads = torch.cat([p.grad.detach().flatten() for p in model.parameters()])
    torch.save(
        {"init": init, "start": start, "params": params, "grads": grads, "seen": seen, "steps": steps},
        Path(out_dir) / f"rank{rank}.pt",
    )
    dist.barrier()
    dist.destroy_process_group()


def test_two_process_gloo_step_gives_identical_weights(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert not torch.equal(r0["init"], r1["init"])  # the ranks started from different weights
    torch.testing.assert_close(r0["start"], r1["start"])  # DDP broadcast rank 0's at wrapping
    torch.testing.assert_close(r0["start"], r0["init"])
    assert r0["steps"] == r1["steps"] == 1
    assert sorted(r0["seen"] + r1["seen"]) == list(range(8))  # DistributedSampler: disjoint halves
    assert set(r0["seen"]).isdisjoint(r1["seen"])
    torch.testing.assert_close(r0["grads"], r1["grads"])  # gradients all-reduced
    torch.testing.assert_close(r0["params"], r1["params"])  # identical after the step
    assert not torch.equal(r0["params"], r0["start"])  # and the step did something


@pytest.mark.slow
def test_torchrun_two_processes_train_cli(tmp_path: Path) -> None:
    """``torchrun --nproc_per_node 2 -m dfig.train``: one run, written once by rank 0."""
    from test_train import make_lnp_tree

    tree = make_lnp_tree(tmp_path / "tree", n_train=8, n_eval=4, size=36)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
        "-m",
        "dfig.stages.train",
        "--name",
        "ddp",
        "--dataroot",
        str(tree),
        "--classes",
        "face",
        "--arch",
        "mobilev2",
        "--train_mode",
        "0",
        "--batch_size",
        "4",
        "--loadSize",
        "36",
        "--cropSize",
        "32",
        "--niter",
        "2",
        "--checkpoints_dir",
        str(tmp_path / "ck"),
        "--num_threads",
        "1",
        "--no-progress",
    ]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    run = tmp_path / "ck" / "ddp"
    ck = torch.load(run / "model_epoch_latest.pth", weights_only=True)
    assert ck["world_size"] == 2 and ck["epoch"] == 2 and ck["step"] == 4  # 16 images / (2 ranks x 4)
    rows = json.loads((run / "log.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2]
    assert res.stdout.count('"stopped_by"') == 1  # only rank 0 reports

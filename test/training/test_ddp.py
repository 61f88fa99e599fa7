"""Two-process data-parallel training on CPU (Gloo), set up the way torchrun sets it up."""

from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp
from conftest import tiny_config
from safetensors.torch import load_file, save_file

from training.trainer import Trainer

WORLD = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment(rank: int, port: int) -> dict:
    """What torchrun sets for each process."""
    return {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(WORLD),
    }


def _train(rank: int, folder: str) -> None:
    import pathlib

    from training import distributed

    info = distributed.init_from_env("gloo")
    assert (info.rank, info.world) == (rank, WORLD)
    try:
        config = tiny_config(pathlib.Path(folder), "mixformerv2", training={"batch_size": 2})
        trainer = Trainer(config, info=info)
        trainer.fit()
        state = {k: v.contiguous() for k, v in trainer.network.state_dict().items()}
        save_file(state, os.path.join(folder, f"rank{rank}.safetensors"))
    finally:
        torch.distributed.destroy_process_group()


def _child(rank: int, port: int, folder: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(_environment(rank, port))
    _train(rank, folder)


def test_two_processes_stay_in_sync_and_match_one_process_on_the_whole_batch(tmp_path, monkeypatch):
    # Rank 1 in a spawned process, rank 0 in this one.
    port = _free_port()
    folder = str(tmp_path / "ddp")
    child = mp.get_context("spawn").Process(target=_child, args=(1, port, folder))
    child.start()
    for key, value in _environment(0, port).items():
        monkeypatch.setenv(key, value)
    try:
        _train(0, folder)
    finally:
        child.join(timeout=120)
    assert child.exitcode == 0
    rank0 = load_file(str(tmp_path / "ddp" / "rank0.safetensors"))
    rank1 = load_file(str(tmp_path / "ddp" / "rank1.safetensors"))
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key

    # One process, batch 4 = the two processes' batches of 2 together: the same mean gradient
    # (MixFormerV2 has no batch statistics), so the same weights up to rounding.
    for key in _environment(0, port):
        monkeypatch.delenv(key)
    single = Trainer(tiny_config(tmp_path / "single", "mixformerv2", training={"batch_size": 4}))
    initial = {k: v.clone() for k, v in single.network.state_dict().items()}
    single.fit()
    moved = 0
    for key, value in single.network.state_dict().items():
        assert torch.allclose(value, rank0[key], atol=1e-5, rtol=1e-4), key
        moved += int(not torch.equal(value, initial[key]))
    assert moved > 0
    assert os.path.isfile(tmp_path / "ddp" / "tiny_mixformerv2" / "final.safetensors")

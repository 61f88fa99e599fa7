"""The training dataset and its loader: reproducible pairs, sharded across processes.

Sample ``i`` of epoch ``e`` is drawn with a generator seeded by ``(seed, e * per_epoch + i)``,
so a batch does not depend on how many loader workers made it, on which process it was made
in, or on whether the run was interrupted and resumed: the sampler only has to hand out the
same global indices. Each process takes every ``world``-th index of the epoch.
"""

from __future__ import annotations

import random
from typing import Any, Dict, Iterator, List, Optional, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from training.data.labels import LabelMaker
from training.data.processing import PairProcessor
from training.data.sampling import PairSampler
from training.data.sequences import DataError, SourceDataset


class PairDataset(Dataset):
    """Map-style dataset over global sample indices (see module docstring)."""

    def __init__(
        self,
        sources: Sequence[SourceDataset],
        processor: PairProcessor,
        labels: LabelMaker,
        seed: int,
        samples_per_epoch: int,
        max_gap: int = 100,
        num_templates: int = 1,
        negative_prob: float = 0.0,
        max_attempts: int = 100,
    ) -> None:
        self.sampler = PairSampler(sources, max_gap, num_templates)
        self.processor = processor
        self.labels = labels
        self.seed = int(seed)
        self.samples_per_epoch = int(samples_per_epoch)
        self.negative_prob = float(negative_prob)
        self.max_attempts = int(max_attempts)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def generator(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(index)])

    def __getitem__(self, index: int) -> Dict[str, Any]:
        rng = self.generator(index)
        for _ in range(self.max_attempts):
            negative = self.negative_prob > 0 and rng.random() < self.negative_prob
            try:
                draw = self.sampler.draw(rng, negative=negative)
            except LookupError:
                continue
            images: Dict[Any, np.ndarray] = {}  # a frame drawn twice is read once

            def image(ref, images=images):
                key = (id(ref.item), ref.index)
                if key not in images:
                    images[key] = ref.image()
                return images[key]

            templates = [(image(ref), ref.box) for ref in draw.templates]
            processed = self.processor(
                rng, templates, (image(draw.search), draw.search.box), draw.positive
            )
            if processed is None:
                continue
            sample: Dict[str, Any] = {
                key: torch.from_numpy(np.asarray(value)) for key, value in processed.items()
            }
            targets = self.labels(processed["search_box"], draw.positive)
            sample.update({k: torch.from_numpy(np.asarray(v)) for k, v in targets.items()})
            return sample
        raise DataError(
            f"no valid training pair after {self.max_attempts} draws for sample {index}: "
            "check that the datasets have visible targets larger than data.min_box_pixels"
        )


class EpochSampler(Sampler):
    """Global indices of one epoch for one process, optionally from a given position.

    The loader iterates its sampler in the main process, so ``set_position`` between epochs
    moves a loader with persistent workers on without restarting them.
    """

    def __init__(
        self, samples_per_epoch: int, epoch: int, rank: int = 0, world: int = 1, start: int = 0
    ) -> None:
        self.samples_per_epoch = samples_per_epoch
        self.per_process = samples_per_epoch // world
        self.rank = rank
        self.world = world
        self.set_position(epoch, start)

    def set_position(self, epoch: int, start: int = 0) -> None:
        self.epoch = epoch
        self.base = epoch * self.samples_per_epoch
        self.start = start

    def __iter__(self) -> Iterator[int]:
        for k in range(self.start, self.per_process):
            yield self.base + self.rank + k * self.world

    def __len__(self) -> int:
        return max(self.per_process - self.start, 0)


def _worker_init(worker_id: int) -> None:
    # Sampling uses per-index generators; global generators are seeded only so that any other
    # use of randomness in a worker is reproducible too. One thread each: workers are many.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def make_loader(
    dataset: PairDataset,
    epoch: int,
    batch_size: int,
    rank: int = 0,
    world: int = 1,
    start_batch: int = 0,
    num_workers: int = 0,
    prefetch_factor: int = 2,
    pin_memory: bool = False,
    seed: int = 0,
) -> DataLoader:
    """Loader of one epoch's batches for this process, skipping ``start_batch`` batches.

    Workers are spawned, not forked: a fork copies locks held by other threads of the
    training process (TensorBoard's writer, the progress bar, torch's pools) and can leave a
    worker waiting forever. They persist across epochs (``loader.sampler.set_position``).
    """
    sampler = EpochSampler(
        dataset.samples_per_epoch, epoch, rank, world, start=start_batch * batch_size
    )
    generator = torch.Generator()
    generator.manual_seed(seed * 1000003 + epoch * 101 + rank)
    extra: Dict[str, Any] = {}
    if num_workers > 0:
        extra = {
            "prefetch_factor": prefetch_factor,
            "worker_init_fn": _worker_init,
            "multiprocessing_context": "spawn",
            "persistent_workers": True,
        }
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=True,
        pin_memory=pin_memory,
        generator=generator,
        **extra,
    )


def steps_per_epoch(samples_per_epoch: int, batch_size: int, world: int = 1) -> int:
    return (samples_per_epoch // world) // batch_size


def collate_fixed(samples: List[Dict[str, Any]], device: Optional[torch.device] = None):
    """Stack samples into a batch (the loader's default collation), optionally on a device."""
    batch = torch.utils.data.default_collate(samples)
    if device is not None:
        batch = {k: v.to(device) for k, v in batch.items()}
    return batch

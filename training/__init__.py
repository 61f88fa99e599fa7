"""Training of the ros_tracker zoo networks (HiT, HCAT, MixFormerV2, ABTrack).

Lives outside the ``ros_tracker`` package: it imports ros_tracker, never the reverse, and is
used from a source checkout (``ros-tracker train --config FILE`` or ``python -m training``).

Modules: ``config`` (YAML configs with validated overrides), ``data`` (sequence readers, pair
sampling, crops and augmentation, per-family labels, loaders), ``losses``, ``objectives`` (one
per family and stage, including MixFormerV2's distillation and ABTrack's pruning),
``trainer`` (optimisation loop, DDP, AMP, checkpoints, resume), ``checkpoints``, ``scalars``
(TensorBoard / JSONL logging, loss curve) and ``validation``.
"""

__all__ = ["__doc__"]

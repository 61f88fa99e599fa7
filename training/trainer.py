"""The training loop: AdamW with a lower backbone rate, step decay, clipping, AMP, DDP.

One ``Trainer`` per process. It builds the network of the config (zoo entry, pretrained
backbone, earlier-stage weights), lets the family objective adapt it (student copies, frozen
parts), and runs the epochs:

* optimizer: AdamW, two learning rates (backbone = lr x backbone_lr_scale, the papers' lower
  backbone rate), weight decay on everything but ABTrack's dimension-reduction vectors (they
  carry their own L1 penalty);
* schedule: step decay, lr x lr_drop_factor at each epoch of lr_drop_epochs;
* each step: forward inside the (DDP-wrapped) module, loss, backward, gradient-norm clipping,
  optimizer step; AMP (float16 with a gradient scaler, or bfloat16) on CUDA only;
* data: ``training.data`` pairs, sample i of epoch e seeded by (seed, e x per_epoch + i), each
  process taking every world-th sample (see ``training.data.dataset``);
* checkpoints (``training.checkpoints``) every ``checkpoint_interval`` epochs and every
  ``checkpoint_steps`` steps; ``run.resume`` continues exactly where one left off (weights,
  optimizer state, random generators, counters, data position);
* scalars every ``log_interval`` steps (TensorBoard and ``scalars.jsonl``), a tqdm bar, and
  ``loss_curve.png`` after every epoch;
* validation every ``validation.interval`` epochs on the main process; the best network so
  far is kept as ``best.safetensors``;
* at the end the objective's final network (layers or dimensions pruned where the stage
  prunes) is written as ``final.safetensors`` with ``final.json`` saying how to rebuild it.

Run directory: ``<run.output_dir>/<run.name>/`` with ``config.yaml`` (the resolved config).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import sys
from contextlib import nullcontext
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from ros_tracker.zoo.checkpoints import card_metadata, load_state_dict_strict, save_weights
from training import distributed
from training.checkpoints import (
    join_optimizer_state,
    latest_checkpoint,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
    write_json_atomic,
)
from training.config import save_config
from training.data import build_pair_dataset, make_loader, steps_per_epoch
from training.models import BACKBONE_PREFIXES, build_network
from training.objectives import make_objective
from training.scalars import ScalarLogger, plot_loss_curve

LOGGER = logging.getLogger("training")

# Objective stats that are not loss terms (logged as train/<name>, not train/loss_<name>).
METRIC_STATS = ("iou", "bypass_prob", "bypassed", "score_acc", "gamma", "dr_l1", "grad_norm")


class TrainingForward(nn.Module):
    """The module DDP wraps: the network, run through the objective's forward."""

    def __init__(self, network: nn.Module, objective) -> None:
        super().__init__()
        self.network = network
        object.__setattr__(self, "objective", objective)  # teachers stay outside DDP

    def forward(self, batch: Dict[str, torch.Tensor]) -> Dict[str, Any]:
        return self.objective.forward(self.network, batch)


def resolve_device(name: str, info: distributed.DistInfo) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("run.device=cuda but CUDA is not available")
        torch.cuda.set_device(info.local_rank)
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def lr_factor(epoch: int, drops: List[int], factor: float) -> float:
    return float(factor) ** sum(1 for d in drops if epoch >= int(d))


def config_digest(config: Dict[str, Any]) -> str:
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_optimizer(
    network: nn.Module, training: Dict[str, Any], family: str
) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters in up to four groups (backbone/rest x decay)."""
    prefixes = tuple(training["backbone_prefixes"]) or BACKBONE_PREFIXES[family]
    lr = training["lr"]
    groups: Dict[str, Dict[str, Any]] = {}
    for name, parameter in network.named_parameters():
        if not parameter.requires_grad:
            continue
        backbone = name.startswith(prefixes)
        decay = not (name.endswith(".d1") or name.endswith(".d2"))
        key = ("backbone" if backbone else "head") + ("" if decay else "_no_decay")
        group = groups.setdefault(
            key,
            {
                "params": [],
                "group": key,
                "base_lr": lr * (training["backbone_lr_scale"] if backbone else 1.0),
                "weight_decay": training["weight_decay"] if decay else 0.0,
            },
        )
        group["params"].append(parameter)
    if not groups:
        raise ValueError("no trainable parameter")
    ordered = [
        groups[k] for k in ("backbone", "backbone_no_decay", "head", "head_no_decay") if k in groups
    ]
    for group in ordered:
        group["lr"] = group["base_lr"]
    return torch.optim.AdamW(ordered, lr=lr, weight_decay=training["weight_decay"])


class Trainer:
    def __init__(
        self,
        config: Dict[str, Any],
        run_dir: Optional[str] = None,
        info: Optional[distributed.DistInfo] = None,
    ) -> None:
        self.config = config
        self.info = info or distributed.current()
        run = config["run"]
        if run["threads"]:
            torch.set_num_threads(int(run["threads"]))
        self.device = resolve_device(run["device"], self.info)
        torch.manual_seed(run["seed"])  # the same initial weights on every process
        network, self.family = build_network(config)
        self.objective = make_objective(self.family, config, self.device)
        network = self.objective.build(network)
        self._frozen = tuple(config["training"]["frozen_prefixes"])
        for name, parameter in network.named_parameters():
            frozen = bool(self._frozen) and name.startswith(self._frozen)
            parameter.requires_grad_(self.objective.trainable(name) and not frozen)
        self.network = network.to(self.device).train()
        self._keep_frozen_statistics()
        for teacher in self.objective.teachers():
            teacher.to(self.device).eval()
        self.module: nn.Module = TrainingForward(self.network, self.objective)
        if self.info.enabled:
            self.module = nn.parallel.DistributedDataParallel(
                self.module,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=self.objective.ddp_find_unused_parameters,
            )
        self.optimizer = build_optimizer(self.network, config["training"], self.family)
        use_amp = bool(run["amp"]) and self.device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if run["amp_dtype"] == "bfloat16" else torch.float16
        self.use_amp = use_amp
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=use_amp and self.amp_dtype == torch.float16
        )
        self.run_dir = run_dir or os.path.join(run["output_dir"], run["name"])
        self.checkpoint_dir = os.path.join(self.run_dir, "checkpoints")
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.best: Optional[Dict[str, Any]] = None
        self._dataset = None
        self._loader = None
        self._validation_sets = None
        self.logger: Optional[ScalarLogger] = None
        self.steps_per_epoch = steps_per_epoch(
            config["data"]["samples_per_epoch"], config["training"]["batch_size"], self.info.world
        )
        if self.steps_per_epoch < 1:
            raise ValueError(
                "data.samples_per_epoch is smaller than one batch per process "
                f"({config['data']['samples_per_epoch']} samples, batch "
                f"{config['training']['batch_size']} x {self.info.world} processes)"
            )
        resume = run["resume"]
        if resume:
            path = latest_checkpoint(self.checkpoint_dir) if resume == "auto" else resume
            if path:
                self.resume(path)
            else:
                LOGGER.info("no checkpoint in %s: starting a fresh run", self.checkpoint_dir)

    # -- data ---------------------------------------------------------------------------------

    @property
    def dataset(self):
        if self._dataset is None:
            self._dataset = build_pair_dataset(self.config, self.network.card, self.family)
        return self._dataset

    def loader(self, epoch: int, start_batch: int = 0):
        """This process's batches of ``epoch`` from ``start_batch`` on (one loader per run)."""
        if self._loader is not None:
            self._loader.sampler.set_position(
                epoch, start_batch * self.config["training"]["batch_size"]
            )
            return self._loader
        data = self.config["data"]
        self._loader = make_loader(
            self.dataset,
            epoch,
            self.config["training"]["batch_size"],
            rank=self.info.rank,
            world=self.info.world,
            start_batch=start_batch,
            num_workers=data["num_workers"],
            prefetch_factor=data["prefetch_factor"],
            pin_memory=self.device.type == "cuda",
            seed=self.config["run"]["seed"],
        )
        return self._loader

    # -- one step -----------------------------------------------------------------------------

    def _autocast(self):
        if not self.use_amp:
            return nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def set_learning_rate(self) -> float:
        training = self.config["training"]
        factor = lr_factor(self.epoch, training["lr_drop_epochs"], training["lr_drop_factor"])
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        return factor

    def _keep_frozen_statistics(self) -> None:
        """Frozen modules stay in eval mode: their batch norms keep the loaded statistics."""
        if self._frozen:
            for name, module in self.network.named_modules():
                if (name + ".").startswith(self._frozen):
                    module.eval()

    def train_step(self, batch: Dict[str, torch.Tensor]) -> Dict[str, float]:
        """One optimisation step on ``batch``; returns the step's scalars."""
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        progress = self.epoch + self.step_in_epoch / self.steps_per_epoch
        extra = self.objective.on_progress(self.network, progress)
        self.module.train()
        self._keep_frozen_statistics()
        with self._autocast():
            outputs = self.module(batch)
            loss, stats = self.objective.loss(outputs, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite loss {loss.item()} at epoch {self.epoch}, step {self.global_step}"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        clip = self.config["training"]["grad_clip"]
        result = {"loss": float(loss.detach())}
        if clip > 0:
            self.scaler.unscale_(self.optimizer)
            parameters = [p for g in self.optimizer.param_groups for p in g["params"]]
            norm = torch.nn.utils.clip_grad_norm_(parameters, clip)
            result["grad_norm"] = float(norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step_in_epoch += 1
        self.global_step += 1
        result.update({k: float(v.detach()) for k, v in stats.items()})
        result.update(extra)
        return result

    # -- loop ---------------------------------------------------------------------------------

    def _log(self, values: Dict[str, float]) -> None:
        values = distributed.average_scalars(values, self.device)
        if self.logger is None:
            return
        tagged = {}
        for key, value in values.items():
            if key == "loss":
                tagged["train/loss"] = value
            elif key in METRIC_STATS:
                tagged[f"train/{key}"] = value
            else:
                tagged[f"train/loss_{key}"] = value
        tagged["train/lr"] = self.optimizer.param_groups[-1]["lr"]
        tagged["train/epoch"] = self.epoch + self.step_in_epoch / self.steps_per_epoch
        self.logger.log(self.global_step, tagged)

    def _open_logger(self) -> None:
        if self.info.main and self.logger is None:
            resumed = self.global_step if self.global_step > 0 else None
            self.logger = ScalarLogger(
                self.run_dir, self.config["run"]["tensorboard"], resume_step=resumed
            )

    def fit(self) -> Optional[nn.Module]:
        """Train to the configured end; returns the final network (main process) or None."""
        training = self.config["training"]
        run = self.config["run"]
        if self.info.main:
            save_config(self.config, os.path.join(self.run_dir, "config.yaml"))
        self._open_logger()
        epochs = training["epochs"]
        stopped = bool(run["max_steps"]) and self.global_step >= run["max_steps"]
        while self.epoch < epochs and not stopped:
            self.set_learning_rate()
            bar = None
            if self.info.main and run["progress"]:
                from tqdm import tqdm

                bar = tqdm(
                    total=self.steps_per_epoch,
                    initial=self.step_in_epoch,
                    desc=f"epoch {self.epoch + 1}/{epochs}",
                    file=sys.stderr,
                    dynamic_ncols=True,
                )
            for batch in self.loader(self.epoch, self.step_in_epoch):
                values = self.train_step(batch)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{values['loss']:.4f}", refresh=False)
                if self.global_step % max(training["log_interval"], 1) == 0:
                    self._log(values)
                if run["max_steps"] and self.global_step >= run["max_steps"]:
                    stopped = True
                    break
                every = training["checkpoint_steps"]
                if (
                    every
                    and self.global_step % every == 0
                    and self.step_in_epoch < self.steps_per_epoch
                ):
                    self.save_checkpoint()
            if bar is not None:
                bar.close()
            if self.step_in_epoch >= self.steps_per_epoch:
                self._end_epoch()
            elif stopped:
                self.save_checkpoint()
        return self.finish()

    def _end_epoch(self) -> None:
        self.epoch += 1
        self.step_in_epoch = 0
        epochs = self.config["training"]["epochs"]
        interval = self.config["validation"]["interval"]
        if (
            self.config["validation"]["datasets"]
            and interval
            and (self.epoch % interval == 0 or self.epoch == epochs)
        ):
            self.run_validation()
        every = max(self.config["training"]["checkpoint_interval"], 1)
        if self.epoch % every == 0 or self.epoch == epochs:
            self.save_checkpoint()
        if self.info.main and self.config["run"]["plot"] and self.epoch < epochs:
            plot_loss_curve(self.logger.path, os.path.join(self.run_dir, "loss_curve.png"))

    # -- validation ---------------------------------------------------------------------------

    def run_validation(self) -> Optional[Dict[str, float]]:
        metrics = None
        if self.info.main:
            from training.validation import load_validation_sets, validate

            settings = self.config["validation"]
            if self._validation_sets is None:
                self._validation_sets = load_validation_sets(
                    settings["datasets"],
                    os.path.join(self.run_dir, "validation_data"),
                    settings["max_sequences"],
                    settings["max_frames"],
                )
            candidate = self.objective.finalize(copy.deepcopy(self.network), final=False)
            device = settings["device"] or self.device.type
            metrics = validate(candidate, self._validation_sets, device)
            self.network.train()
            self._keep_frozen_statistics()
            if self.logger is not None:
                self.logger.log(self.global_step, {f"val/{k}": v for k, v in metrics.items()})
            key = settings["metric"]
            value = metrics[key]
            LOGGER.info("validation after epoch %d: %s", self.epoch, metrics)
            if value == value and (self.best is None or value > self.best["value"]):
                self.best = {
                    "metric": key,
                    "value": value,
                    "epoch": self.epoch,
                    "step": self.global_step,
                }
                self._write_network(candidate, "best")
        distributed.barrier()
        return metrics

    # -- checkpoints and results ----------------------------------------------------------------

    def trainer_state(self) -> Dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "world": self.info.world,
            "best": self.best,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "config_digest": config_digest(self.config),
            "model": self.config["model"]["name"],
        }

    def save_checkpoint(self) -> Optional[str]:
        path = None
        if self.info.main:
            path = save_checkpoint(
                self.checkpoint_dir,
                self.network,
                self.optimizer,
                self.trainer_state(),
                keep=self.config["training"]["keep_checkpoints"],
            )
            LOGGER.info("checkpoint %s", path)
        distributed.barrier()
        return path

    def resume(self, path: str) -> None:
        weights, tensors, state = load_checkpoint(path)
        load_state_dict_strict(self.network, {k: v.to(self.device) for k, v in weights.items()})
        self.optimizer.load_state_dict(join_optimizer_state(tensors, state["optimizer"]))
        restore_rng(tensors)
        if state.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        if state.get("world", 1) != self.info.world:
            LOGGER.warning(
                "checkpoint written with %s processes, resuming with %s: the data order differs",
                state.get("world"),
                self.info.world,
            )
        if state.get("config_digest") != config_digest(self.config):
            LOGGER.warning("resuming %s with a config that differs from the checkpoint's", path)
        self.epoch = int(state["epoch"])
        self.step_in_epoch = int(state["step_in_epoch"])
        self.global_step = int(state["global_step"])
        self.best = state.get("best")
        LOGGER.info("resumed from %s (epoch %d, step %d)", path, self.epoch, self.global_step)

    def _write_network(self, network: nn.Module, stem: str) -> str:
        path = os.path.join(self.run_dir, stem + ".safetensors")
        overrides = rebuild_overrides(network, self.config["model"]["overrides"])
        # With its builder overrides the file runs as it is: `ros-tracker eval run/best.safetensors`
        metadata = dict(
            card_metadata(network.card), overrides=json.dumps(overrides, sort_keys=True)
        )
        save_weights(network, path, metadata)
        rebuild = {"model": self.config["model"]["name"], "overrides": overrides}
        write_json_atomic(
            os.path.join(self.run_dir, stem + ".json"),
            dict(rebuild, epoch=self.epoch, global_step=self.global_step, best=self.best),
        )
        return path

    def finish(self) -> Optional[nn.Module]:
        """Final network: written by the main process, returned there."""
        self._loader = None  # lets its persistent workers exit
        final = None
        if self.info.main:
            final = self.objective.finalize(copy.deepcopy(self.network)).eval()
            path = self._write_network(final, "final")
            LOGGER.info("final weights %s", path)
            if self.logger is not None:
                if self.config["run"]["plot"]:
                    plot_loss_curve(self.logger.path, os.path.join(self.run_dir, "loss_curve.png"))
                self.logger.close()
                self.logger = None
        distributed.barrier()
        return final


def rebuild_overrides(network: nn.Module, overrides: Dict[str, Any]) -> Dict[str, Any]:
    """Builder keywords that recreate ``network``'s layout from its zoo entry.

    The configured model overrides, plus ``pruned_dims`` for an ABTrack network after VTP
    (``create_model(name, pruned_dims=d)``: the physically pruned layout).
    """
    result = dict(overrides)
    pruned = getattr(getattr(network, "config", None), "pruned_dims", None)
    if pruned is not None:
        result.pop("pruned", None)
        result.pop("pruning_ratio", None)
        result["pruned_dims"] = int(pruned)
    return result

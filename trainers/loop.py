"""The one training loop every model family uses.

A ``Task`` (see ``trainers.task``) supplies networks, data, named optimizers and a
training step written as a generator of ``(optimizer_name, loss)`` pairs; this loop owns
everything else: device and DDP, seeds, AMP, progress bar, validation, checkpoints,
``--resume``, metrics.jsonl, plots and TensorBoard.

Exact resume: data order and every random draw of an epoch depend only on
``(training.seed, epoch, rank)``, and ``last.pt`` (written at the end of every epoch)
holds model, optimizer, scheduler, AMP scaler and RNG states, so a run killed anywhere in
epoch ``e`` and resumed replays epoch ``e`` exactly and ends with the same metrics as an
uninterrupted run.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset

from proc_ml.config import dump_yaml, same_value
from proc_ml.errors import ConfigError, ModelError, TrainingError
from proc_ml.fileio import FolderLock, check_output_folder, remove_stale_temps, write_text
from proc_ml.registry import task_class
from proc_ml.runinfo import info_from_dict
from proc_ml.validation import json_safe, library_message

from . import checkpoint, distributed, plots
from .config import stored_config
from .runs import CHECKPOINT_DIR, CONFIG_FILE, METRICS_FILE
from .task import Task, parameters_of


#: Seconds between two drawings of a run's plots (and at the end of the run).
PLOT_INTERVAL_S = 30.0
#: Training keys a checkpoint's optimizer state holds: ``--resume`` restores that state, so a
#: changed value would be silently ignored (or, for the optimizer, not load); it is refused.
RESUME_FIXED = ("optimizer", "lr", "weight_decay", "betas")


class Callback:
    """Hooks into a running fit (progress reporting, benchmarks, tests).

    ``on_epoch_end`` may set ``trainer.should_stop = True`` to end the fit after that
    epoch (its checkpoint and metrics are written first).
    """

    def on_step_end(self, trainer: "Trainer", epoch: int, step: int) -> None:
        pass

    def on_epoch_end(self, trainer: "Trainer", record: dict) -> None:
        pass


def make_task(config: dict, data_dir) -> Task:
    """The registered task of ``config["task"]`` (``proc_ml.registry``) on ``data_dir``."""
    return task_class(config["task"])(config, data_dir)


def seed_all(*key: int) -> None:
    """Seed torch, numpy and python from a tuple of integers."""
    seed = int(np.random.SeedSequence([int(k) for k in key]).generate_state(1)[0])
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def make_optimizer(params, training: dict) -> torch.optim.Optimizer:
    lr, decay = training["lr"], training["weight_decay"]
    betas = tuple(training.get("betas", (0.9, 0.999)))
    if training["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=decay)
    if training["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=decay)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=decay)


def make_scheduler(optimizer, training: dict, total_steps: int, steps_per_epoch: int = 1):
    if training["scheduler"] == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=training["lr"],
                                                   total_steps=max(total_steps, 1))
    if training["scheduler"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    if training["scheduler"] == "linear":
        if training.get("linear_decay", "step") == "epoch":
            return torch.optim.lr_scheduler.LambdaLR(optimizer, per_epoch_linear(
                training["epochs"], training.get("decay_fraction", 0.5), steps_per_epoch))
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, constant_then_linear(total_steps, training.get("decay_fraction", 0.5)))
    return None


def constant_then_linear(total_steps: int, decay_fraction: float):
    """pix2pix's schedule (per step here): the initial lr, then a linear decay towards 0
    over the last ``decay_fraction`` of the steps (the reference's n_epochs + n_epochs_decay)."""
    decay_steps = max(int(round(total_steps * decay_fraction)), 1)
    constant_steps = max(total_steps - decay_steps, 0)

    def factor(step: int) -> float:
        return 1.0 - max(0, step - constant_steps) / float(decay_steps + 1)
    return factor


def per_epoch_linear(epochs: int, decay_fraction: float, steps_per_epoch: int):
    """The reference's ``lr_policy linear`` (``training.linear_decay: epoch``): the lr
    changes once per epoch; epoch ``k`` (from 1) trains at
    ``1 - max(0, k + 1 - n_epochs) / (n_epochs_decay + 1)`` of the initial lr, with
    ``n_epochs_decay = round(epochs * decay_fraction)`` and ``n_epochs = epochs -
    n_epochs_decay``, so the last epoch runs at lr 0 (the reference steps its scheduler at
    the start of every epoch)."""
    decay = max(int(round(epochs * decay_fraction)), 1)
    constant = epochs - decay
    per_epoch = max(int(steps_per_epoch), 1)

    def factor(step: int) -> float:
        epoch = step // per_epoch + 1
        return max(0.0, 1.0 - max(0, epoch + 1 - constant) / float(decay + 1))
    return factor


def _scalars(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class Trainer:
    def __init__(self, config: dict, data_dir, out_dir, ctx: distributed.Context, *,
                 resume: bool = False, callbacks=(), progress: bool | None = None):
        self.config, self.ctx = config, ctx
        self.training = config["training"]
        self.out = Path(out_dir)
        self.callbacks = list(callbacks)
        self.progress = self.training["progress"] if progress is None else progress
        self.device = ctx.device
        last = self.out / CHECKPOINT_DIR / "last.pt"
        if not resume and last.exists():
            raise ConfigError(f"{self.out}: already holds a training run ({last}); "
                              f"pass --resume to continue it or choose another --out")
        if not resume:
            task_class(config["task"]).prepare_config(config)
        self.task = make_task(config, data_dir)
        self.task.use_run_dir(self.out)
        self.task.progress = bool(self.progress and ctx.is_main)   # the task's own bars (data caches)
        if self.training["best_metric"] not in self.task.metric_names:
            raise ConfigError(f"config key 'training.best_metric' must be one of "
                              f"{', '.join(self.task.metric_names)}, got {self.training['best_metric']!r}")
        self.seed = int(self.training["seed"])
        seed_all(self.seed)
        models = self.task.build_models()
        if not resume:
            self.task.init_weights(models)
        self.models = {name: m.to(self.device) for name, m in models.items()}
        self.optimizers = {name: make_optimizer(parameters_of(self.models, members), self.training)
                           for name, members in self.task.optimizer_groups().items()}
        self._build_loaders()
        total = self.training["epochs"] * len(self.train_loader)
        self.schedulers = {name: s for name, opt in self.optimizers.items()
                           if (s := make_scheduler(opt, self.training, total,
                                                   len(self.train_loader))) is not None}
        self.amp = bool(self.training["amp"]) and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.wrapped = self._wrap_for_ddp()
        self.epoch, self.global_step = 0, 0
        self.history: list[dict] = []
        self.best: dict | None = None
        self.tensorboard = None
        self.should_stop = False
        self._plotted = (-1, -math.inf)      # (epoch, monotonic time) the plots were drawn
        if resume:
            self._restore(last)

    # -- setup ----------------------------------------------------------------------
    def _build_loaders(self) -> None:
        dataset_cfg, training = self.config["dataset"], self.training
        limit = dataset_cfg.get("max_buildings", 0)
        train_set = self.task.dataset(dataset_cfg["train_split"], limit)
        val_set = self.task.dataset(dataset_cfg["val_split"], limit)
        # DistributedSampler orders by (seed, epoch) alone, with or without DDP
        self.sampler = DistributedSampler(train_set, num_replicas=self.ctx.world_size,
                                          rank=self.ctx.rank, shuffle=True, seed=self.seed)
        workers = int(dataset_cfg.get("workers", 0))   # DataLoader worker processes
        self.train_loader = DataLoader(train_set, batch_size=training["batch_size"],
                                       sampler=self.sampler, collate_fn=self.task.collate,
                                       num_workers=workers)
        shard = Subset(val_set, range(self.ctx.rank, len(val_set), self.ctx.world_size))
        self.val_loader = DataLoader(shard, batch_size=training["eval_batch_size"],
                                     shuffle=False, collate_fn=self.task.collate,
                                     num_workers=workers)

    def _wrap_for_ddp(self) -> dict:
        if not self.ctx.distributed:
            return dict(self.models)
        from torch.nn.parallel import DistributedDataParallel as DDP
        ids = [self.device.index] if self.device.type == "cuda" else None
        return {name: DDP(m, device_ids=ids) if any(p.requires_grad for p in m.parameters()) else m
                for name, m in self.models.items()}

    def _autocast(self):
        if self.amp:
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    # -- checkpoints ----------------------------------------------------------------
    def _payload(self) -> dict:
        return {
            "epoch": self.epoch, "global_step": self.global_step,
            "task": self.task.name, "family": self.config["model"]["family"],
            "model_kwargs": self.task.model_kwargs(), "info": self.task.info().to_dict(),
            "config": self.config,
            "models": {n: m.state_dict() for n, m in self.models.items()},
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
            "scaler": self.scaler.state_dict(),
            "rng": checkpoint.rng_state(),
            "history": self.history, "best": self.best,
        }

    def _restore(self, path: Path) -> None:
        if not path.is_file():
            raise ModelError(f"{path}: nothing to resume (no checkpoint in {self.out})")
        saved = checkpoint.load(path)
        self.task.check_compatible(info_from_dict(saved.get("info"), str(path)), f"the run in {self.out}")
        stored = stored_config(saved["config"], str(path))
        if saved["model_kwargs"] != self.task.model_kwargs() or saved["family"] != self.config["model"]["family"]:
            raise ModelError(f"{path}: model {saved['family']} {saved['model_kwargs']} does not match "
                             f"the config's {self.config['model']['family']} {self.task.model_kwargs()}")
        if self.schedulers and stored["training"]["epochs"] != self.training["epochs"]:
            raise ConfigError(f"{self.out}: training.epochs cannot change on --resume while a "
                              f"learning-rate schedule is used (the run has "
                              f"{stored['training']['epochs']})")
        for key in RESUME_FIXED:
            new = self.training.get(key)
            old = stored["training"].get(key, new)
            if not same_value(old, new):
                raise ConfigError(f"{self.out}: training.{key} cannot change on --resume (the "
                                  f"checkpoint's optimizer state holds {old!r}); train a new "
                                  f"run for {new!r}")
        try:
            for name, model in self.models.items():
                model.load_state_dict(saved["models"][name])
            for name, opt in self.optimizers.items():
                opt.load_state_dict(saved["optimizers"][name])
            for name, sched in self.schedulers.items():
                sched.load_state_dict(saved["schedulers"][name])
            self.scaler.load_state_dict(saved["scaler"])
            checkpoint.set_rng_state(saved["rng"])
        except (KeyError, RuntimeError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise ModelError(f"{path}: cannot restore the run from this checkpoint "
                             f"({library_message(exc)})") from None
        self.epoch, self.global_step = int(saved["epoch"]), int(saved["global_step"])
        self.history, self.best = list(saved["history"]), saved["best"]
        self.should_stop = self._patience_spent()

    # -- training -------------------------------------------------------------------
    def fit(self) -> dict:
        if self.ctx.is_main:
            write_text(self.out / CONFIG_FILE, dump_yaml(self.config, sort_keys=False))
            if self.training["tensorboard"]:
                from torch.utils.tensorboard import SummaryWriter
                self.tensorboard = SummaryWriter(str(self.out / "tensorboard"))
        try:
            while self.epoch < self.training["epochs"] and not self.should_stop:
                self._run_epoch()
            if self.ctx.is_main and self.history:
                self._plot(force=True)          # the run's last epoch, however fast it came
        finally:
            if self.tensorboard is not None:
                self.tensorboard.close()
        distributed.barrier(self.ctx)
        return {"out": str(self.out), "epochs": self.epoch, "best": self.best, "history": self.history}

    def _run_epoch(self) -> None:
        epoch, start = self.epoch, time.perf_counter()
        seed_all(self.seed, epoch, self.ctx.rank)
        self.sampler.set_epoch(epoch)
        # datasets with per-sample augmentation seed it by (seed, epoch, index)
        getattr(self.train_loader.dataset, "set_epoch", lambda _epoch: None)(epoch)
        train_logs = self._train_epoch(epoch)
        val = self._validate()
        self.epoch += 1
        record = {"epoch": self.epoch, "step": self.global_step,
                  "lr": next(iter(self.optimizers.values())).param_groups[0]["lr"],
                  **{f"train_{k}": v for k, v in train_logs.items()},
                  **{f"val_{k}": v for k, v in _scalars(val).items()},
                  "time_s": round(time.perf_counter() - start, 3)}
        bad = next((k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)), None)
        if bad is not None:
            raise TrainingError(f"epoch {self.epoch}: {bad} is {record[bad]} (not a finite number), "
                                f"so training stopped; the checkpoints of epoch {self.epoch - 1} "
                                f"are kept. Lower training.lr, or look for NaN or infinite values "
                                f"in the data")
        improved = self._update_best(record, val)
        record["best"] = improved
        self.history.append(record)
        if self.ctx.is_main:
            self._write_outputs(record, improved)
        for callback in self.callbacks:
            callback.on_epoch_end(self, record)
        self.should_stop = self.should_stop or self._patience_spent()
        self.should_stop = distributed.broadcast_flag(self.should_stop, self.ctx)

    def _patience_spent(self) -> bool:
        """``training.patience`` epochs since the best one (0: never stop early)."""
        patience = int(self.training.get("patience", 0))
        return bool(patience and self.best and self.epoch - int(self.best["epoch"]) >= patience)

    def _train_epoch(self, epoch: int) -> dict:
        for model in self.models.values():
            model.train()
        from tqdm import tqdm
        bar = tqdm(self.train_loader, desc=f"epoch {epoch + 1}/{self.training['epochs']}",
                   disable=not (self.progress and self.ctx.is_main), leave=False, unit="batch")
        sums, batches = defaultdict(float), 0
        for step, batch in enumerate(bar):
            logs = self._step(self.task.to_device(batch, self.device), epoch, step)
            batches += 1
            for key, value in logs.items():
                sums[key] += value
            self.global_step += 1
            bar.set_postfix({k: f"{v / batches:.4f}" for k, v in sums.items()})
            for callback in self.callbacks:
                callback.on_step_end(self, epoch, step)
        bar.close()
        keys = sorted(sums)
        totals = torch.tensor([sums[k] for k in keys] + [batches], dtype=torch.float64, device=self.device)
        distributed.all_reduce_sum([totals], self.ctx)
        return {k: float(v) / max(float(totals[-1]), 1.0) for k, v in zip(keys, totals[:-1])}

    def _step(self, batch, epoch: int = 0, step: int = 0) -> dict:
        """Run the task's step generator: backward + optimizer step for every yielded loss.
        A loss that is not a finite number stops the run (``TrainingError``) before it
        reaches the weights: the checkpoints on disk stay the last good ones."""
        steps = self.task.training_step(self.wrapped, batch)
        losses = {}
        try:
            with self._autocast():
                name, loss = next(steps)
            while True:
                self._check_finite(name, loss, epoch, step)
                optimizer = self.optimizers[name]
                optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                self.scaler.step(optimizer)
                self.scaler.update()
                losses[name] = float(loss.detach())
                with self._autocast():
                    name, loss = steps.send(None)
        except StopIteration as stop:
            extra = stop.value or {}
        for scheduler in self.schedulers.values():
            scheduler.step()
        single = len(self.optimizers) == 1
        logs = {("loss" if single else f"loss_{n}"): v for n, v in losses.items()}
        logs.update({k: float(v) for k, v in extra.items()})
        return logs

    def _check_finite(self, name: str, loss, epoch: int, step: int) -> None:
        if bool(torch.isfinite(loss.detach()).all()):
            return
        kept = (f"the checkpoints of epoch {self.epoch} are kept" if self.epoch
                else "no checkpoint was written")
        label = "loss" if len(self.optimizers) == 1 else f"{name} loss"
        raise TrainingError(f"epoch {epoch + 1}, step {step + 1}: the {label} is "
                            f"{float(loss.detach().float().mean())} (not a finite number), so "
                            f"training stopped; {kept}. Lower training.lr, or look for NaN or "
                            f"infinite values in the data")

    @torch.no_grad()
    def _validate(self) -> dict:
        model = self.models[self.task.primary_model]
        model.eval()
        evaluation = self.task.new_evaluation(self.device)
        with self._autocast():
            for batch in self.val_loader:
                evaluation.update(model, self.task.to_device(batch, self.device))
        evaluation.load_state(distributed.all_reduce_sum(evaluation.state(), self.ctx))
        return evaluation.metrics()

    def _update_best(self, record: dict, val: dict) -> bool:
        name = self.training["best_metric"]
        value = record[f"val_{name}"]
        lower_is_better = name.endswith("loss") or name in self.task.lower_is_better
        if self.best is not None:
            previous = self.best["value"]
            if (value >= previous) if lower_is_better else (value <= previous):
                return False
        self.best = {"metric": name, "value": value, "epoch": self.epoch, "metrics": val}
        return True

    def _plot(self, force: bool = False) -> None:
        """``plots/curves.png`` and ``plots/confusion.png``: after an epoch when
        ``PLOT_INTERVAL_S`` have passed since they were last drawn, and at the end of the run
        (drawing takes about 0.5 s: every epoch, it was most of a few-shot run's time)."""
        now = time.monotonic()
        if self._plotted[0] == self.epoch or (not force and now - self._plotted[1] < PLOT_INTERVAL_S):
            return
        plots.plot_curves(self.history, self.out / "plots" / "curves.png", self.task.metric_names)
        best = self.best["metrics"]
        if "confusion" in best:
            plots.plot_confusion(best["confusion"], self.task.label_names(),
                                 self.out / "plots" / "confusion.png",
                                 f"validation, epoch {self.best['epoch']}")
        self._plotted = (self.epoch, time.monotonic())

    def _write_outputs(self, record: dict, improved: bool) -> None:
        payload = self._payload()
        ckpt_dir = self.out / CHECKPOINT_DIR
        checkpoint.save(ckpt_dir / "last.pt", payload, also=(ckpt_dir / "best.pt",) if improved else ())
        write_text(self.out / METRICS_FILE, "".join(
            json.dumps(json_safe(h), allow_nan=False) + "\n" for h in self.history))
        self._plot()
        self.task.on_epoch_end(self.models, self.out, self.epoch)
        if self.tensorboard is not None:
            for key, value in record.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    self.tensorboard.add_scalar(key, value, self.epoch)
            self.tensorboard.flush()
        if self.progress:
            from tqdm import tqdm
            keys = ("train_loss", "val_loss", *(f"val_{m}" for m in self.task.metric_names[:2]),
                    *self.task.progress_keys)
            shown = ", ".join(f"{k}={record[k]:.4f}" for k in dict.fromkeys(keys) if k in record)
            tqdm.write(f"epoch {record['epoch']}/{self.training['epochs']}: {shown}"
                       f"{' (best)' if improved else ''} [{record['time_s']:.1f}s]")


def fit(config: dict, data_dir, out_dir, *, resume: bool = False, callbacks=(),
        progress: bool | None = None) -> dict:
    """Train ``config`` on the dataset in ``data_dir`` into the run folder ``out_dir``."""
    training = config["training"]
    ctx = distributed.setup(training["device"], training["threads"])
    try:
        with _run_folder(out_dir, ctx):
            return Trainer(config, data_dir, out_dir, ctx, resume=resume, callbacks=callbacks,
                           progress=progress).fit()
    finally:
        distributed.teardown(ctx)


LOCK_NAME = ".proc-ml-train.lock"


@contextlib.contextmanager
def _run_folder(out_dir, ctx: distributed.Context):
    """The run folder for this process: writable (one line otherwise), locked against a
    second ``train`` into it, and without the temp files a killed run left (checkpoints,
    metrics and plots are written through temp files and renames)."""
    if not ctx.is_main:
        yield
        return
    created = not Path(out_dir).exists()
    out = check_output_folder(out_dir)
    try:
        with FolderLock(out, LOCK_NAME, "train", remove=True):
            remove_stale_temps(out)
            yield
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()                  # a run that never started leaves no empty folder
        raise

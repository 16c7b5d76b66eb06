"""pix2pix task (Isola et al. 2017): label map -> texture with a U-Net generator and a
PatchGAN discriminator, trained by the one loop (``trainers.loop``).

One training step, as the reference ``Pix2PixModel.optimize_parameters``: the generator
makes ``fake = G(A)``; the discriminator is updated on ``(A, B)`` as real and
``(A, fake)`` as fake (loss halved); then, with the discriminator frozen, the generator
is updated on ``GAN(D(A, fake), real) + lambda * L1(fake, B)``. The loop steps the two
optimizers by name; the constant-then-linear schedule (``training.scheduler: linear``)
and Adam betas (0.5, 0.999) come from the config.

Data (``proc_ml.datasets.pix2pix``): every pair is decoded once and brought to its working
size (``load_size`` for resize-jitter training, ``size`` otherwise) as ``uint8`` — label
maps nearest-neighbour, photos with ``dataset.photo_filter`` (bicubic, as the reference),
non-square images by ``dataset.aspect`` (squash, pad or crop) — and kept in a cache
(``dataset.cache``: a file per split in ``RUN/cache/`` read one pair at a time, an
in-memory array, or none: decoded on every access), built through a DataLoader with
``dataset.workers`` processes. Memory does not grow with the number of pairs. Training
crops ``size`` at a random place and mirrors at random (the reference's
"resize_and_crop" + flip), drawn from ``(training.seed, epoch, index)``;
``dataset.jitter: pad`` centres the pair on a ``load_size`` canvas of background instead
of resizing (shift only): textures painted pixel-exactly on a module grid must be learnt
at the scale they are used at (docs/pix2pix.md). Images are scaled to [-1, 1].

Inference mode is ``model.eval()``: dropout off, BatchNorm with its running statistics,
so outputs are deterministic, independent of the batch and identical in ONNX (see
docs/pix2pix.md for why this differs from the reference's test mode).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from proc_ml.datasets.pix2pix import (ASPECTS, DIRECTIONS, PHOTO_FILTERS, PreparedPairs, check_fractions,
                                      open_pairs, write_cache_header)
from proc_ml.errors import ConfigError, DatasetError, ProcMLError
from proc_ml.fileio import atomic_path
from proc_ml.runinfo import ImageInfo
from proc_ml.textures.images import from_signed, to_signed

from .models import build_model
from .task import Task

GAN_MODES = ("vanilla", "lsgan")
JITTERS = ("resize", "pad")
CACHE_MODES = ("auto", "disk", "memory", "none")
LINEAR_DECAYS = ("step", "epoch")
CACHE_DIR = "cache"          # RUN/cache: decoded pairs at the working size (dataset.cache)
INPUT_NAMES = ("label_r", "label_g", "label_b")


# -- image tensors --------------------------------------------------------------------
def to_unit(image: np.ndarray) -> torch.Tensor:
    """``uint8[H, W, 3]`` -> ``float32[3, H, W]`` in [-1, 1] (``textures.images.to_signed``)."""
    return torch.from_numpy(to_signed(image))


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """``float[3, H, W]`` in [-1, 1] -> ``uint8[H, W, 3]`` (``textures.images.from_signed``)."""
    return from_signed(tensor.detach().float().cpu().numpy())


def resize(image: torch.Tensor, size: int, nearest: bool) -> torch.Tensor:
    """Square resize of ``[3, H, W]`` in [-1, 1] (nearest keeps label colours exact)."""
    if tuple(image.shape[1:]) == (size, size):
        return image
    if nearest:
        return F.interpolate(image[None], size=(size, size), mode="nearest-exact")[0]
    out = F.interpolate(image[None], size=(size, size), mode="bicubic", align_corners=False,
                        antialias=True)[0]
    return out.clamp(-1.0, 1.0)


def pad_item(item: np.ndarray, size: int, fill) -> np.ndarray:
    """A prepared ``uint8[S, S, 7]`` pair centred on a ``size`` x ``size`` canvas: input
    ``fill`` (the background colour), target black, mask 0 (the shift-only jitter, which
    keeps pixel-exact label maps at scale)."""
    s = item.shape[0]
    canvas = np.zeros((size, size, item.shape[2]), dtype=np.uint8)
    canvas[..., 0:3] = np.asarray(fill, dtype=np.uint8)
    top = left = (size - s) // 2
    canvas[top:top + s, left:left + s] = item
    return canvas


def item_tensors(item: np.ndarray):
    """``uint8[S, S, 7]`` -> input ``[3, S, S]``, target ``[3, S, S]`` in [-1, 1] and
    mask ``[1, S, S]`` (float 0/1)."""
    return (torch.from_numpy(to_signed(item[..., 0:3])), torch.from_numpy(to_signed(item[..., 3:6])),
            torch.from_numpy(np.ascontiguousarray(item[..., 6], dtype=np.float32))[None])


def _as_is(item):
    return item


class Failed(str):
    """A pair that could not be read, carried as data out of a DataLoader worker (an
    exception raised there reaches the main process as a multi-line traceback); the main
    process raises it as the one-line ``DatasetError`` it was."""


class _Guarded:
    """``dataset[i]``, with a ``ProcMLError`` returned as ``Failed(message)``."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        try:
            return self.dataset[index]
        except ProcMLError as exc:
            return Failed(str(exc))


def raise_failed(item):
    """Raise the ``DatasetError`` a ``Failed`` item carries; anything else passes."""
    if isinstance(item, Failed):
        raise DatasetError(str(item))
    return item


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(text))


class PairSet(Dataset):
    """Prepared pairs (``PreparedPairs``: memory, cache file or decoded on access) as
    tensors. With ``jitter``, a ``size`` crop at a random place and a random mirror, drawn
    from ``(seed, epoch, index)`` (``set_epoch``), so a run replays exactly whatever the
    number of DataLoader workers; ``pad_to`` first centres the pair on a larger canvas."""

    def __init__(self, pairs: PreparedPairs, size: int, jitter: bool, flip: bool,
                 pad_to: int = 0, fill=(0, 0, 0), seed: int = 0):
        self.pairs, self.size, self.jitter, self.flip = pairs, int(size), jitter, flip
        self.pad_to, self.fill, self.seed, self.epoch = int(pad_to), tuple(fill), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, index):
        try:
            item = self.pairs[index]
        except ProcMLError as exc:           # see Failed
            return Failed(str(exc))
        if self.pad_to:
            item = pad_item(item, self.pad_to, self.fill)
        if self.jitter:
            rng = np.random.default_rng([self.seed, self.epoch, int(index)])
            load = item.shape[0]
            top, left = (int(v) for v in rng.integers(0, load - self.size + 1, size=2))
            item = item[top:top + self.size, left:left + self.size]
            if self.flip and rng.random() < 0.5:
                item = item[:, ::-1]
        return item_tensors(item)


# -- metrics ------------------------------------------------------------------------------
def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-x * x / (2 * sigma * sigma))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).float()


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of ``[B, C, H, W]`` images in [0, 1] (Wang et al. 2004: 11x11
    Gaussian window, sigma 1.5, K1 0.01, K2 0.03, valid region, mean over channels)."""
    c = x.shape[1]
    window = _gaussian_window().to(x.device)[None, None].repeat(c, 1, 1, 1)
    blur = lambda t: F.conv2d(t, window, groups=c)  # noqa: E731
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    value = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return value.flatten(1).mean(dim=1)


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of images in [0, 1]; identical images count as 100 dB."""
    mse = ((x - y) ** 2).flatten(1).mean(dim=1)
    return torch.where(mse > 0, -10.0 * torch.log10(mse.clamp(min=1e-10)), torch.full_like(mse, 100.0))


class ImageEvaluation:
    """Mean per-image L1 (0..1 scale), PSNR and SSIM, plus L1 over facade pixels only
    (label not background) when the dataset has a palette."""

    def __init__(self, device=None):
        self.sums = torch.zeros(6, dtype=torch.float64, device=device)  # n, l1, psnr, ssim, masked |d|, masked px

    @torch.no_grad()
    def update(self, model, batch) -> None:
        output = model(batch["inputs"]).float()
        self.add(output, batch["targets"], batch["masks"])

    def add(self, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> None:
        x, y = (output.clamp(-1, 1) + 1) / 2, (target.float() + 1) / 2
        diff = (x - y).abs()
        masked = diff * mask
        self.sums += torch.stack([
            torch.tensor(float(x.shape[0]), dtype=torch.float64, device=self.sums.device),
            diff.flatten(1).mean(dim=1).sum().double(), psnr(x, y).sum().double(),
            ssim(x, y).sum().double(), masked.sum().double(),
            (mask.expand_as(diff)).sum().double()])

    def state(self) -> list[torch.Tensor]:
        return [self.sums]

    def load_state(self, tensors) -> None:
        (self.sums,) = tensors

    def metrics(self) -> dict:
        n, l1, p, s, masked, pixels = (float(v) for v in self.sums.cpu())
        n = max(n, 1.0)
        return {"l1": l1 / n, "psnr": p / n, "ssim": s / n,
                "l1_facade": masked / pixels if pixels else l1 / n, "images": int(n)}


# -- the task -------------------------------------------------------------------------------
def gan_loss(logits: torch.Tensor, real: bool, mode: str) -> torch.Tensor:
    target = torch.full_like(logits, 1.0 if real else 0.0)
    if mode == "lsgan":
        return F.mse_loss(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target)


def set_requires_grad(model: torch.nn.Module, flag: bool) -> None:
    for p in model.parameters():
        p.requires_grad_(flag)


class Pix2PixTask(Task):
    name = "pix2pix"
    families = ("pix2pix-unet",)
    default_config = "pix2pix_cpu.yaml"
    info_type = ImageInfo
    primary_model = "model"        # the generator: what load_run returns and ONNX exports
    metric_names = ("psnr", "ssim", "l1", "l1_facade")
    lower_is_better = ("l1", "l1_facade")
    progress_keys = ("train_loss_discriminator", "train_loss_generator", "train_l1",
                     "val_l1", "val_psnr", "val_ssim")

    @classmethod
    def defaults(cls) -> dict:
        return {
            "dataset": {
                "train_split": "train",
                "val_split": "val",
                "direction": "AtoB",       # side-by-side datasets: AtoB learns left -> right
                "size": 256,               # training crop (and evaluation size)
                "load_size": 286,          # jitter: bring to this size, then crop ``size`` at random
                "jitter": "resize",        # resize (the reference: scale + shift) | pad (shift only)
                "flip": True,              # random horizontal mirroring
                "aspect": "squash",        # non-square images: squash (the reference) | pad | crop
                "photo_filter": "bicubic",  # photos: bicubic (the reference) | area | bilinear |
                                           # lanczos | nearest; label maps are always nearest
                "palette": None,           # label folders: a palette file (.json or text) to use
                "palette_tolerance": 0,    # > 0: label colours within this RGB distance of a
                                           # palette colour are read as it (JPEG label maps)
                "split": None,             # label folders: [train, val, test] fractions (exact counts)
                "val_fraction": 0.1,       # no validation split in the data: hold out this share of train
                "cache": "auto",           # decoded pairs at the working size: auto (disk in a run,
                                           # else memory) | disk (RUN/cache) | memory | none
                "workers": 0,              # DataLoader worker processes (decoding and batches)
                "max_pairs": 0,            # > 0: use only the first N pairs of each split
                "preview_count": 4,        # validation pairs in each epoch's PNG grid
            },
            "gan": {
                "mode": "vanilla",         # vanilla (BCE with logits) or lsgan (least squares)
                "lambda_l1": 100.0,
                "disc_width": 64,
                "disc_layers": 3,          # 3 = the 70x70 PatchGAN
            },
            "training": {"optimizer": "adam", "lr": 0.0002, "betas": [0.5, 0.999],
                         "scheduler": "linear", "decay_fraction": 0.5, "batch_size": 1,
                         "linear_decay": "step",   # step (every batch) | epoch (the reference)
                         "eval_batch_size": 8, "best_metric": "psnr", "amp": False},
        }

    @classmethod
    def validate_config(cls, config: dict, source: str) -> None:
        """Value checks of pix2pix's own keys; each message names the file or ``--set``
        that gave the key (``proc_ml.config.source_of``)."""
        from proc_ml.config import key_error

        def fail(key, why):
            return key_error(source, key, why)

        # keys of the shared training section that an image model has no use for
        if config["training"].get("class_weighting", "none") != "none":
            raise fail("training.class_weighting", "must be none for pix2pix (its loss has no classes)")
        if config["training"].get("fit_decision"):
            raise fail("training.fit_decision", "is for building-parts models (pix2pix has no "
                                                "decision rule)")

        data = {**cls.defaults()["dataset"], **config["dataset"]}
        training = {"linear_decay": "step", **config["training"]}
        for key, choices in (("jitter", JITTERS), ("aspect", ASPECTS), ("photo_filter", PHOTO_FILTERS),
                             ("cache", CACHE_MODES), ("direction", DIRECTIONS)):
            if data[key] not in choices:
                raise fail(f"dataset.{key}", f"must be one of {', '.join(choices)}, got {data[key]!r}")
        if data["workers"] < 0:
            raise fail("dataset.workers", f"must be >= 0, got {data['workers']}")
        if not 0 <= data["palette_tolerance"] <= 442:
            raise fail("dataset.palette_tolerance", f"must be between 0 and 442 (an RGB distance), "
                                                    f"got {data['palette_tolerance']!r}")
        if training["linear_decay"] not in LINEAR_DECAYS:
            raise fail("training.linear_decay",
                       f"must be one of {', '.join(LINEAR_DECAYS)}, got {training['linear_decay']!r}")
        stride = 2 ** int(config["model"].get("num_downs", 0))
        size, load = data["size"], data["load_size"]
        if size < 1 or size % stride:
            raise fail("dataset.size", f"must be a multiple of the generator's stride "
                                       f"2**model.num_downs = {stride}, got {size}")
        if load < size:
            raise fail("dataset.load_size", f"must be >= dataset.size ({size}), got {load}")
        gan = config.get("gan") or {}
        if "mode" in gan and gan["mode"] not in GAN_MODES:
            raise fail("gan.mode", f"must be one of {', '.join(GAN_MODES)}, got {gan['mode']!r}")
        if "lambda_l1" in gan and not 0 <= gan["lambda_l1"] <= 1e6:
            raise fail("gan.lambda_l1", f"must be between 0 and 1e6, got {gan['lambda_l1']!r}")
        for key, top in (("disc_width", 1024), ("disc_layers", 8)):
            if key in gan and not 1 <= gan[key] <= top:
                raise fail(f"gan.{key}", f"must be between 1 and {top}, got {gan[key]!r}")
        try:
            check_fractions(data["split"], data["val_fraction"])
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    def __init__(self, config: dict, data_dir):
        super().__init__(config, data_dir)
        # runs trained before a key existed carry configs without it: the defaults fill in
        defaults = self.defaults()
        self.data_cfg = {**defaults["dataset"], **config["dataset"]}
        self.gan = config["gan"]
        self.hyper = {k: v for k, v in config["model"].items() if k != "family"}
        self.family = config["model"]["family"]
        self.stride = 2 ** int(self.hyper["num_downs"])
        self.seed = int(config["training"].get("seed", 0))
        self._check_config()
        self.data = open_pairs(data_dir, self.data_cfg["direction"], palette=self.data_cfg["palette"],
                               split=self.data_cfg["split"], val_fraction=self.data_cfg["val_fraction"],
                               palette_tolerance=float(self.data_cfg["palette_tolerance"]))
        self.palette = self.data.palette
        self._preview = None
        self._prepared: dict[tuple[str, int], PreparedPairs] = {}

    def _check_config(self) -> None:
        """A run's stored config (e.g. from a checkpoint) gets the same checks."""
        self.validate_config({**self.config, "dataset": self.data_cfg}, "config")

    # -- networks -------------------------------------------------------------------
    def model_kwargs(self) -> dict:
        return {"in_channels": 3, "out_channels": 3, **self.hyper}

    def build_models(self):
        return {
            self.primary_model: build_model(self.family, **self.model_kwargs()),
            "discriminator": build_model("patchgan", in_channels=6, width=self.gan["disc_width"],
                                         n_layers=self.gan["disc_layers"], norm=self.hyper["norm"]),
        }

    def optimizer_groups(self):
        return {"discriminator": ("discriminator",), "generator": (self.primary_model,)}

    def training_step(self, models, batch):
        generator, discriminator = models[self.primary_model], models["discriminator"]
        real_a, real_b = batch["inputs"], batch["targets"]
        mode, weight = self.gan["mode"], self.gan["lambda_l1"]
        fake_b = generator(real_a)
        set_requires_grad(discriminator, True)
        loss_fake = gan_loss(discriminator(torch.cat([real_a, fake_b.detach()], 1)), False, mode)
        loss_real = gan_loss(discriminator(torch.cat([real_a, real_b], 1)), True, mode)
        yield "discriminator", 0.5 * (loss_fake + loss_real)
        set_requires_grad(discriminator, False)
        loss_gan = gan_loss(discriminator(torch.cat([real_a, fake_b], 1)), True, mode)
        loss_l1 = F.l1_loss(fake_b, real_b)
        try:
            yield "generator", loss_gan + weight * loss_l1
        finally:
            set_requires_grad(discriminator, True)
        return {"g_gan": loss_gan.detach(), "l1": loss_l1.detach() / 2}   # l1 on the 0..1 scale

    # -- data -----------------------------------------------------------------------
    def split_names(self, split: str) -> list[str]:
        names = self.data.names(split)
        limit = self.data_cfg["max_pairs"]
        return names[:limit] if limit else names

    def _names_of(self, split: str) -> list[str]:
        names = self.split_names(split)
        if not names:
            hint = ("; the data has no test pairs: score another split (proc-ml evaluate --split "
                    "val) or give it a test/ folder" if split == "test" else "")
            raise DatasetError(f"{self.data.root}: split '{split}' holds no pairs "
                               f"(splits from {self.data.split_source}: "
                               f"{', '.join(f'{k} {v}' for k, v in self.data.counts().items())}){hint}")
        return names

    def prepared(self, split: str, size: int) -> PreparedPairs:
        """The split's pairs decoded once at ``size`` (``uint8[size, size, 7]`` each), from
        the cache ``dataset.cache`` names: a file in ``RUN/cache/`` (reused while the
        files, names and settings are unchanged), an in-memory array, or none."""
        key = (split, int(size))
        if key not in self._prepared:
            self._prepared[key] = self._build_prepared(split, self._names_of(split), int(size))
        return self._prepared[key]

    def _build_prepared(self, split: str, names: list[str], size: int) -> PreparedPairs:
        cfg = self.data_cfg
        decode = PreparedPairs(self.data, names, size, cfg["aspect"], cfg["photo_filter"])
        mode = cfg["cache"]
        if mode == "none":
            return decode
        if mode in ("auto", "disk") and self.run_dir is not None:
            return self._disk_cache(split, decode)
        array = np.empty(decode.shape, dtype=np.uint8)
        for i, item in enumerate(self._decode_all(decode, split)):
            array[i] = item
        return PreparedPairs(self.data, names, size, cfg["aspect"], cfg["photo_filter"], array=array)

    def _decode_all(self, decode: PreparedPairs, split: str):
        """Every prepared pair in order, decoded by ``dataset.workers`` DataLoader workers."""
        from tqdm import tqdm

        loader = torch.utils.data.DataLoader(_Guarded(decode), batch_size=None, shuffle=False,
                                             collate_fn=_as_is, num_workers=int(self.data_cfg["workers"]))
        show = bool(self.progress) and len(decode) >= 50
        for item in tqdm(loader, total=len(decode), disable=not show, leave=False, unit="pair",
                         desc=f"decoding {split} pairs at {decode.size} px"):
            yield raise_failed(item)

    def _disk_cache(self, split: str, decode: PreparedPairs) -> PreparedPairs:
        """``RUN/cache/pairs_<split>_<size>px_<key>.npy``: ``uint8[N, S, S, 7]``, written
        once (atomically, one pair at a time) and read one pair at a time; an older file
        of the same split and size is replaced."""
        cfg = self.data_cfg
        digest = self.data.cache_key(decode.names, decode.size, cfg["aspect"], cfg["photo_filter"])
        stem = f"pairs_{_safe(split)}_{decode.size}px"
        folder = Path(self.run_dir) / CACHE_DIR
        path = folder / f"{stem}_{digest[:16]}.npy"
        if path.is_file():
            try:
                return PreparedPairs(self.data, decode.names, decode.size, cfg["aspect"],
                                     cfg["photo_filter"], path=path)
            except DatasetError:
                pass   # a damaged cache is rebuilt
        for stale in folder.glob(f"{stem}_*.npy"):
            if stale != path:          # (another process may be writing this very key)
                stale.unlink(missing_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            write_cache_header(fh, decode.shape)
            for item in self._decode_all(decode, split):
                fh.write(np.ascontiguousarray(item).tobytes())
        return PreparedPairs(self.data, decode.names, decode.size, cfg["aspect"], cfg["photo_filter"],
                             path=path)

    def load_split(self, split: str, size: int, limit: int = 0):
        """Inputs, targets ([3, size, size] in [-1, 1]) and masks ([1, size, size]) of a
        split (its first ``limit`` pairs when > 0) as lists of tensors, decoded now (for
        small splits, tests and pictures; training streams through ``dataset``)."""
        names = self._names_of(split)
        names = names[:limit] if limit else names
        cfg = self.data_cfg
        items = [item_tensors(self.data.prepare(n, size, cfg["aspect"], cfg["photo_filter"]))
                 for n in names]
        return [a for a, _, _ in items], [b for _, b, _ in items], [m for _, _, m in items]

    def dataset(self, split: str, limit: int = 0):
        train = split == self.data_cfg["train_split"]
        size, load = self.data_cfg["size"], self.data_cfg["load_size"]
        by_padding = self.data_cfg["jitter"] == "pad"
        pairs = self.prepared(split, load if train and not by_padding else size)
        fill = self.data.background() or (0, 0, 0)
        return PairSet(pairs, size, jitter=train, flip=bool(self.data_cfg["flip"]),
                       pad_to=load if train and by_padding and load > size else 0, fill=fill,
                       seed=self.seed)

    def collate(self, examples):
        failed = [e for e in examples if isinstance(e, Failed)]
        if failed:                           # raised by to_device, in the main process
            return {"failed": failed[0]}
        a, b, m = zip(*examples)
        return {"inputs": torch.stack(a), "targets": torch.stack(b), "masks": torch.stack(m)}

    def to_device(self, batch, device):
        if "failed" in batch:
            raise_failed(batch["failed"])
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}

    def new_evaluation(self, device=None):
        return ImageEvaluation(device)

    # -- per-epoch picture ------------------------------------------------------------
    @torch.no_grad()
    def on_epoch_end(self, models, out_dir, epoch: int) -> None:
        count = int(self.data_cfg["preview_count"])
        if count < 1:
            return
        if self._preview is None:
            pairs = self.prepared(self.data_cfg["val_split"], self.data_cfg["size"])
            items = [item_tensors(pairs[i]) for i in range(min(count, len(pairs)))]
            self._preview = (torch.stack([a for a, _, _ in items]), torch.stack([b for _, b, _ in items]))
        generator = models[self.primary_model]
        was_training = generator.training
        generator.eval()
        device = next(generator.parameters()).device
        outputs = generator(self._preview[0].to(device)).cpu()
        generator.train(was_training)
        write_grid(Path(out_dir) / "images" / f"epoch_{epoch:03d}.png",
                   self._preview[0], outputs, self._preview[1])

    def label_names(self) -> list[str]:
        return list(self.palette.names) if self.palette is not None else []

    # -- run description ------------------------------------------------------------
    def info(self) -> ImageInfo:
        manifest = self.data.manifest
        return ImageInfo(task=self.name, family=self.family, input_kind="image",
                         input_names=list(INPUT_NAMES),
                         palette=self.palette.to_json() if self.palette is not None else None,
                         module_px=self.data.module_px, size=int(self.data_cfg["size"]),
                         stride=self.stride, direction=self.data_cfg["direction"],
                         layout=self.data.layout, dataset_count=len(self.data.names()),
                         dataset_seed=int(manifest.get("seed", 0)),
                         dataset_format_version=int(manifest.get("format_version", 1)),
                         palette_tolerance=float(self.data_cfg["palette_tolerance"]))

    def check_compatible(self, info: ImageInfo, what: str) -> None:
        mine = self.palette.to_json() if self.palette is not None else None
        if info.palette != mine:
            raise DatasetError(f"{self.data.root}: the dataset's palette differs from the palette "
                               f"of {what}; use label maps drawn in the same palette")

    # -- finished runs ----------------------------------------------------------------
    @classmethod
    def evaluate(cls, model, run, data_dir, split: str = "test", batch_size: int | None = None) -> dict:
        return {"task": cls.name, **evaluate_pix2pix(run, data_dir, split, model=model)}

    @staticmethod
    def format_table(result: dict) -> str:
        return format_pix2pix_table(result)

    @classmethod
    def parity_inputs(cls, run, data_dir=None, n: int = 3) -> list[tuple[str, np.ndarray]]:
        from proc_ml.textures.parity import parity_images

        return parity_images(run.info, n)


# -- the reference's test mode, for export ----------------------------------------------------
class BatchStatsNorm(torch.nn.Module):
    """A BatchNorm2d as it computes in training mode: normalised with the mean and (biased)
    variance of the batch itself, then its affine map (the running statistics unused). Plain
    reductions, so it exports to ONNX as such."""

    def __init__(self, norm: torch.nn.BatchNorm2d):
        super().__init__()
        self.eps = float(norm.eps)
        self.weight = torch.nn.Parameter(norm.weight.detach().clone(), requires_grad=False)
        self.bias = torch.nn.Parameter(norm.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = ((x - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
        scale = self.weight[None, :, None, None] * torch.rsqrt(var + self.eps)
        return (x - mean) * scale + self.bias[None, :, None, None]


class SampledDropout(torch.nn.Module):
    """Dropout that stays on: ``x * (u >= p) / (1 - p)`` with ``u`` uniform per element
    (ONNX ``RandomUniformLike``, a new draw on every run). ``keep_all`` replaces the draw
    by ones (the parity check compares everything but the random draw)."""

    def __init__(self, p: float):
        super().__init__()
        self.p, self.keep_all = float(p), False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p <= 0.0:
            return x
        keep = torch.ones_like(x) if self.keep_all else torch.rand_like(x)
        return x * (keep >= self.p).to(x.dtype) / (1.0 - self.p)


def train_mode_generator(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of a generator that computes as the reference's default test does (the model
    left in training mode): BatchNorm with the statistics of the batch it is given, dropout
    on. Exported, it gives random outputs that depend on what shares a batch (docs/pix2pix.md,
    "Inference mode")."""
    import copy

    out = copy.deepcopy(model).eval()
    for parent in list(out.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.BatchNorm2d):
                setattr(parent, name, BatchStatsNorm(child))
            elif isinstance(child, torch.nn.Dropout):
                setattr(parent, name, SampledDropout(child.p))
    return out


def write_grid(path: Path, inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> None:
    """A PNG with one row per example: input | output | target (2 px gaps)."""
    _write_rows(path, [inputs, outputs, targets])


# -- held-out evaluation and the mean-colour baseline ------------------------------------
def _codes(x: torch.Tensor) -> torch.Tensor:
    """``[B, 3, H, W]`` in [-1, 1] -> ``int64[B, H, W]`` RGB codes of the 0..255 colours."""
    rgb = ((x + 1.0) * 127.5).round().long().clamp(0, 255)
    return (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]


class MeanColourBaseline(torch.nn.Module):
    """Predicts, for every pixel, the mean target colour of its label class over the
    training pairs: the best a per-label constant can do (in the L2 sense). Without a
    palette (photo pairs) there is one class: the mean colour of the training targets."""

    def __init__(self, palette, means: torch.Tensor):
        super().__init__()
        colours = torch.tensor(palette.colours if palette is not None else [], dtype=torch.int64).reshape(-1, 3)
        self.register_buffer("codes", (colours[:, 0] << 16) | (colours[:, 1] << 8) | colours[:, 2])
        self.register_buffer("means", means.float().reshape(-1, 3))    # [K, 3] in [-1, 1]

    @property
    def kind(self) -> str:
        return "mean colour per label" if len(self.codes) else "mean colour of the training set"

    def classes(self, x: torch.Tensor) -> torch.Tensor:
        if not len(self.codes):
            return torch.zeros((x.shape[0], *x.shape[2:]), dtype=torch.int64, device=x.device)
        return (_codes(x)[..., None] == self.codes).float().argmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.means[self.classes(x)].permute(0, 3, 1, 2)

    @classmethod
    def fit(cls, palette, inputs, targets, masks=None) -> "MeanColourBaseline":
        """Means over pairs of ``[3, H, W]`` inputs and targets (``masks``: ``[1, H, W]``)."""
        masks = masks if masks is not None else itertools.repeat(None)
        return cls.fit_pairs(palette, zip(inputs, targets, masks))

    @classmethod
    def fit_pairs(cls, palette, pairs) -> "MeanColourBaseline":
        """Means over ``(input, target, mask)`` triples, read once (a generator streams).
        Without a palette the mask (when given) leaves padding out of the mean colour."""
        k = len(palette) if palette is not None else 1
        sums = torch.zeros(k, 3, dtype=torch.float64)
        counts = torch.zeros(k, dtype=torch.float64)
        probe = cls(palette, torch.zeros(k, 3))
        for a, b, mask in pairs:
            ids = probe.classes(a[None])[0].reshape(-1)
            if palette is None and mask is not None:
                weight = mask.reshape(-1).double()
            else:
                weight = torch.ones(len(ids), dtype=torch.float64)
            sums.index_add_(0, ids, b.reshape(3, -1).T.double() * weight[:, None])
            counts.index_add_(0, ids, weight)
        means = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], torch.zeros_like(sums))
        return cls(palette, means)


def fit_baseline(task: "Pix2PixTask", size: int) -> MeanColourBaseline:
    """The mean-colour baseline fitted on the task's training split at ``size``, streamed
    pair by pair (per label class with a palette, one colour without)."""
    pairs = task.prepared(task.data_cfg["train_split"], size)
    return MeanColourBaseline.fit_pairs(task.palette, (item_tensors(pairs[i]) for i in range(len(pairs))))


@torch.no_grad()
def evaluate_pix2pix(run, data_dir, split: str = "test", checkpoint: str = "best",
                     grid_path=None, grid_count: int = 4, model=None, batch_size: int = 16) -> dict:
    """The generator (eval mode) and the mean-colour baseline (fitted on the train split:
    per label class with a palette, one colour for photo pairs) on ``split``: L1 (0..1),
    PSNR, SSIM, facade-only L1, and their ratios. Pairs stream from the run's cache
    (``dataset.cache``), so memory does not grow with the split. ``run`` is a run folder
    (its ``checkpoint`` is loaded) or a loaded ``Run`` with its ``model``. ``grid_path``:
    also write a PNG, one row per pair: input | baseline | output | target."""
    from .runs import Run, load_run

    if not isinstance(run, Run):
        model, run = load_run(run, checkpoint)
    task = Pix2PixTask(run.config, data_dir)
    task.use_run_dir(run.path)
    task.check_compatible(run.info, f"the run in {run.path}")
    size = task.data_cfg["size"]
    held_out = task.prepared(split, size)          # fails early (one line) on an empty split
    baseline = fit_baseline(task, size)
    pairs = PairSet(held_out, size, jitter=False, flip=False)
    loader = torch.utils.data.DataLoader(pairs, batch_size=batch_size, shuffle=False, collate_fn=task.collate,
                                         num_workers=int(task.data_cfg["workers"]))
    evaluations = {"model": ImageEvaluation(), "baseline": ImageEvaluation()}
    for batch in loader:
        batch = task.to_device(batch, "cpu")
        for name, net in (("model", model), ("baseline", baseline)):
            evaluations[name].update(net, batch)
    results = {name: e.metrics() for name, e in evaluations.items()}
    if grid_path is not None:   # pairs spread evenly over the split
        picks = np.unique(np.linspace(0, len(pairs) - 1, grid_count).round().astype(int))
        chosen = [raise_failed(pairs[int(i)]) for i in picks]
        a = torch.stack([x for x, _, _ in chosen])
        _write_rows(Path(grid_path), [a, baseline(a), model(a), torch.stack([y for _, y, _ in chosen])])
    m, b = results["model"], results["baseline"]
    return {"run": str(run.path), "data": str(data_dir), "split": split, "pairs": len(pairs),
            "epoch": run.epoch, "layout": task.data.layout, "baseline_kind": baseline.kind, **results,
            "l1_ratio": b["l1"] / m["l1"] if m["l1"] else float("inf"),
            "l1_facade_ratio": b["l1_facade"] / m["l1_facade"] if m["l1_facade"] else float("inf")}


def _write_rows(path: Path, columns: list[torch.Tensor]) -> None:
    from proc_ml.textures.images import write_png

    rows = []
    for items in zip(*columns):
        gap = np.full((items[0].shape[1], 2, 3), 255, dtype=np.uint8)
        parts = []
        for item in items:
            parts += [to_uint8(item), gap]
        rows.append(np.concatenate(parts[:-1], axis=1))
    spacer = np.full((2, rows[0].shape[1], 3), 255, dtype=np.uint8)
    out = [rows[0]]
    for row in rows[1:]:
        out += [spacer, row]
    write_png(path, np.concatenate(out, axis=0))


def format_pix2pix_table(result: dict) -> str:
    """``evaluate_pix2pix``'s figures as a fixed-width text table."""
    lines = [f"pix2pix on {result['data']} [{result['split']}]: {result['pairs']} pairs, epoch {result['epoch']}",
             f"{'':<10}{'L1':>9}{'PSNR dB':>9}{'SSIM':>8}{'L1 facade':>11}"]
    for name in ("model", "baseline"):
        r = result[name]
        lines.append(f"{name:<10}{r['l1']:>9.4f}{r['psnr']:>9.2f}{r['ssim']:>8.3f}{r['l1_facade']:>11.4f}")
    kind = result.get("baseline_kind", "mean colour per label")
    lines.append(f"baseline ({kind}) / model L1: {result['l1_ratio']:.2f}x "
                 f"({'facade' if kind.endswith('label') else 'scored'} pixels: "
                 f"{result['l1_facade_ratio']:.2f}x)")
    return "\n".join(lines)

"""CLIPRanker: the scikit-learn estimator. It validates and orchestrates; the
tensors live in adapter.py, training.py, cache.py and backbone.py."""

from __future__ import annotations

import copy
import math
import numbers
import os
import time
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from skrank.adapter import AdapterConfig, RankingAdapter
from skrank.backbone import load_backbone, resolve_device
from skrank.cache import DiskStore, cached_encode_images, encode_images, token_source
from skrank.images import ImageLoadError, as_image_list
from skrank.metrics import spearman_score
from skrank.training import TextBank, TrainConfig, predict_tokens, resolve_lr, train

__all__ = ["CLIPRanker"]

DEFAULT_CACHE_DIR = os.environ.get("SKRANK_CACHE_DIR", os.path.join("~", ".cache", "skrank"))


def _check(name, value, ok, allowed):
    if not ok:
        raise ValueError(f"{name}={value!r} is not valid; {allowed}")


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


class CLIPRanker(RegressorMixin, BaseEstimator):
    """Rank images by a plain-language instruction with a ranking-aware CLIP adapter.

    A frozen open_clip model encodes the images and the instruction; a small
    transformer (the adapter of Yu et al., ICLR 2025) fuses them, learns a
    score per image (regression on standardised targets) and, during
    training, an auxiliary pairwise ranking objective from the differences
    between images.

    Parameters
    ----------
    instruction : str, default=None
        What to rank by, in plain words ("Sort the images by sharpness.").
        May be None when ``X`` is a DataFrame with an ``instruction_column``.
    backbone : str, default="ViT-B-16"
        An open_clip model name, an ``"hf-hub:org/repo"`` id, or
        ``"skrank-tiny"`` (built-in, random, tiny: for tests and offline use).
    pretrained : str, path or None, default="openai"
        An open_clip tag, a local checkpoint file, or None (seeded random
        weights, with a warning). Ignored by ``"skrank-tiny"`` unless a file.
    d_model : int, default=None
        Adapter width; None uses the backbone's CLIP embedding width (512 for
        ViT-B, 768 for ConvNeXt-L).
    n_fusion_layers, n_post_layers : int, default=2
        Cross-modal fusion blocks and post-fusion encoder layers.
    n_heads : int, default=8
        Attention heads; must divide ``d_model``.
    n_prompt_tokens : int, default=32
        Learnable prompt vectors appended to the instruction tokens (0 disables).
    n_relation_tokens : int, default=16
        Learned queries of the ranking-aware pair attention.
    reg_weight, rank_weight : float, default=1.0, 1.0
        Weights of the regression and pairwise ranking losses (0 disables
        one). The paper uses 0.2 and 1.0; equal weights train the score head,
        the only source of predictions, markedly better on small data (see
        the model documentation).
    lr : float or "auto", default="auto"
        Peak AdamW learning rate. "auto" is 1e-4 · sqrt(512 / d_model): 1e-4
        for ViT-B backbones, 2.8e-4 for skrank-tiny (the paper's 5e-5 learns
        too little in a few hundred steps). The value used is ``lr_``.
    weight_decay : float, default=0.01
        Decoupled weight decay (not on norms, biases or learned tokens).
    batch_size : int, default=64
        Images per optimiser step (and per encoding batch); at least 2.
    max_epochs : int, default=None
        Training epochs. None: 30, raised on small data so that training
        takes at least 300 optimiser steps.
    warmup_fraction : float, default=0.05
        Share of the steps spent in linear learning-rate warm-up.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows (whole groups when groups
        are known), keep the epoch with the best validation Spearman and stop
        after ``n_iter_no_change`` epochs without improvement.
    validation_fraction : float, default=0.1
    n_iter_no_change : int, default=10
    sampling : {"balanced", "uniform"}, default="balanced"
        "balanced" sees every distinct target value equally often.
    augment : bool, default=True
        Random horizontal flips during training.
    cache : {"memory", "disk", None}, default="memory"
        Encode each image once and train from its cached fp16 tokens, held in
        memory or (``"disk"``) memory-mapped from files under ``cache_dir``
        and shared by clones, folds, later fits and predictions; or (None)
        re-encode every step as the reference code does.
    cache_dir : str or path, default=None
        Folder of the disk cache; None uses ``$SKRANK_CACHE_DIR`` or
        ``~/.cache/skrank``. Safe to share between processes.
    device : str, default="auto"
        "auto" (CUDA, else MPS, else CPU), "cpu", "cuda", "cuda:N" or "mps".
    precision : {"auto", "fp32", "bf16"}, default="auto"
        "auto" uses bf16 autocast on CUDA and fp32 elsewhere.
    num_workers : int, default=0
        Threads decoding images in parallel.
    random_state : int, RandomState or None, default=None
        Seeds the adapter's initialisation, batches and flips.
    verbose : int, default=0
        0 is silent; 1 shows progress bars and a summary line.
    warm_start : bool, default=False
        Continue training the fitted adapter on the next ``fit``.
    image_column, instruction_column : str, default="image", "instruction"
        Columns read when ``X`` is a DataFrame.
    group_column : str, default=None
        DataFrame column with query groups (see ``pair_scope``).
    pair_scope : {"all", "group"}, default="all"
        Which pairs the ranking loss compares: all pairs sharing an
        instruction, or only pairs inside a group.

    Attributes
    ----------
    adapter_ : torch.nn.Module
        The trained adapter (on the CPU between calls).
    y_mean_, y_scale_ : ndarray of shape (n_instructions,)
        Target standardisation per instruction.
    instructions_ : list of str
    history_ : list of dict
        Per epoch: loss, reg_loss, rank_loss, lr, val_score, seconds.
    n_iter_ : int
        Epochs run.
    lr_ : float
        The peak learning rate used (``lr`` resolved).
    backbone_info_ : dict
        The backbone's name, weights identity and preprocessing.
    cache_info_ : dict
        What the token cache did during ``fit``: hits, misses, images encoded
        (views included) and bytes of tokens held.

    Examples
    --------
    >>> import numpy as np
    >>> from skrank import CLIPRanker
    >>> rng = np.random.default_rng(0)
    >>> images = [np.full((32, 32, 3), v, np.uint8) for v in range(0, 250, 10)]
    >>> y = np.arange(len(images), dtype=float)
    >>> ranker = CLIPRanker("Sort by brightness.", backbone="skrank-tiny",
    ...                     lr=1e-3, max_epochs=5, random_state=0).fit(images, y)
    >>> ranker.predict(images[:3]).shape
    (3,)
    """

    def __init__(
        self,
        instruction=None,
        backbone="ViT-B-16",
        pretrained="openai",
        *,
        d_model=None,
        n_fusion_layers=2,
        n_post_layers=2,
        n_heads=8,
        n_prompt_tokens=32,
        n_relation_tokens=16,
        reg_weight=1.0,
        rank_weight=1.0,
        lr="auto",
        weight_decay=0.01,
        batch_size=64,
        max_epochs=None,
        warmup_fraction=0.05,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        sampling="balanced",
        augment=True,
        cache="memory",
        cache_dir=None,
        device="auto",
        precision="auto",
        num_workers=0,
        random_state=None,
        verbose=0,
        warm_start=False,
        image_column="image",
        instruction_column="instruction",
        group_column=None,
        pair_scope="all",
    ):
        self.instruction = instruction
        self.backbone = backbone
        self.pretrained = pretrained
        self.d_model = d_model
        self.n_fusion_layers = n_fusion_layers
        self.n_post_layers = n_post_layers
        self.n_heads = n_heads
        self.n_prompt_tokens = n_prompt_tokens
        self.n_relation_tokens = n_relation_tokens
        self.reg_weight = reg_weight
        self.rank_weight = rank_weight
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.warmup_fraction = warmup_fraction
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.sampling = sampling
        self.augment = augment
        self.cache = cache
        self.cache_dir = cache_dir
        self.device = device
        self.precision = precision
        self.num_workers = num_workers
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.image_column = image_column
        self.instruction_column = instruction_column
        self.group_column = group_column
        self.pair_scope = pair_scope

    # ------------------------------------------------------------------ validation

    def _validate_params(self):
        """Check every parameter; raise naming the parameter, value and what is allowed."""
        for name in ("n_fusion_layers", "n_post_layers", "n_prompt_tokens", "num_workers"):
            v = getattr(self, name)
            _check(name, v, _is_int(v) and v >= 0, "expected an integer >= 0")
        for name in ("n_heads", "n_relation_tokens", "n_iter_no_change"):
            v = getattr(self, name)
            _check(name, v, _is_int(v) and v >= 1, "expected an integer >= 1")
        _check(
            "batch_size",
            self.batch_size,
            _is_int(self.batch_size) and self.batch_size >= 2,
            "expected an integer >= 2 (ranking needs pairs)",
        )
        _check(
            "d_model",
            self.d_model,
            self.d_model is None or (_is_int(self.d_model) and self.d_model >= 1),
            "expected None or an integer >= 1",
        )
        _check(
            "max_epochs",
            self.max_epochs,
            self.max_epochs is None or (_is_int(self.max_epochs) and self.max_epochs >= 1),
            "expected None or an integer >= 1",
        )
        _check(
            "lr",
            self.lr,
            self.lr == "auto" if isinstance(self.lr, str) else _is_real(self.lr) and self.lr > 0,
            'expected "auto" or a float > 0',
        )
        for name in ("weight_decay", "reg_weight", "rank_weight"):
            v = getattr(self, name)
            _check(name, v, _is_real(v) and v >= 0, "expected a float >= 0")
        _check(
            "reg_weight",
            self.reg_weight,
            self.reg_weight > 0 or self.rank_weight > 0,
            "reg_weight and rank_weight cannot both be 0",
        )
        _check(
            "warmup_fraction",
            self.warmup_fraction,
            _is_real(self.warmup_fraction) and 0 <= self.warmup_fraction < 1,
            "expected a float in [0, 1)",
        )
        _check(
            "validation_fraction",
            self.validation_fraction,
            _is_real(self.validation_fraction) and 0 < self.validation_fraction < 1,
            "expected a float in (0, 1)",
        )
        for name, options in (
            ("sampling", ("balanced", "uniform")),
            ("pair_scope", ("all", "group")),
            ("precision", ("auto", "fp32", "bf16")),
        ):
            v = getattr(self, name)
            _check(name, v, isinstance(v, str) and v in options, f"expected one of {options}")
        _check(
            "cache",
            self.cache,
            self.cache in ("memory", "disk", None),
            "expected 'memory', 'disk' or None",
        )
        if self.cache_dir is not None and not isinstance(self.cache_dir, (str, os.PathLike)):
            raise TypeError(f"cache_dir must be a path or None; got {self.cache_dir!r}")
        _check(
            "verbose",
            self.verbose,
            _is_int(self.verbose) and self.verbose >= 0,
            "expected an integer >= 0",
        )
        for name in ("early_stopping", "augment", "warm_start"):
            v = getattr(self, name)
            if not isinstance(v, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False; got {v!r}")
        if self.instruction is not None:
            if not isinstance(self.instruction, str):
                raise TypeError(
                    f"instruction must be a string; got {type(self.instruction).__name__}"
                )
            if not self.instruction.strip():
                raise ValueError(
                    "instruction='' is empty; say what to rank by, e.g. "
                    "'Sort the images by sharpness.'"
                )
        device = resolve_device(self.device)
        if self.precision == "bf16" and device.type != "cuda":
            raise ValueError(
                f"precision='bf16' needs a CUDA device; device={self.device!r} "
                f"resolved to {device.type!r}"
            )
        return device

    def _inputs(self, X, groups=None, need_instruction_text=True):
        """Split ``X`` into (images, per-row instruction strings, groups or None)."""
        import pandas as pd

        if isinstance(X, pd.DataFrame):
            if self.image_column not in X.columns:
                raise ValueError(
                    f"image_column={self.image_column!r} is not a column of X; "
                    f"columns are {list(X.columns)}"
                )
            items = X[self.image_column].tolist()
            if self.instruction_column in X.columns:
                instr = X[self.instruction_column].to_numpy(dtype=object)
                bad = [i for i, s in enumerate(instr) if not isinstance(s, str) or not s.strip()]
                if bad:
                    raise ValueError(
                        f"instruction_column={self.instruction_column!r} has missing "
                        f"or empty instructions at rows {bad[:10]}"
                    )
            else:
                instr = None
            if self.group_column is not None:
                if self.group_column not in X.columns:
                    raise ValueError(f"group_column={self.group_column!r} is not a column of X")
                if groups is None:
                    groups = X[self.group_column].to_numpy()
        else:
            items, instr = as_image_list(X), None
        if instr is None:
            if self.instruction is None and need_instruction_text:
                raise ValueError(
                    "instruction=None: give an instruction, or a DataFrame with an "
                    f"{self.instruction_column!r} column"
                )
            instr = np.full(len(items), self.instruction, dtype=object)
        if len(items) == 0:
            raise ValueError("X holds no images")
        if groups is not None:
            groups = np.asarray(groups)
            if groups.shape != (len(items),):
                raise ValueError(f"groups has shape {groups.shape}; expected ({len(items)},)")
        return items, instr, groups

    @staticmethod
    def _targets(y, n):
        if y is None:
            raise ValueError("y is required: one numeric target per image")
        try:
            if np.iscomplexobj(y):
                raise TypeError(
                    f"y must be real numbers; got complex values ({np.asarray(y).dtype})"
                )
            y = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"y must be numeric; {exc}") from None
        if y.ndim != 1:
            if y.ndim == 2 and y.shape[1] == 1:
                y = y[:, 0]
            else:
                raise ValueError(f"y must be 1-D; got shape {y.shape}")
        if len(y) != n:
            raise ValueError(f"X has {n} images but y has {len(y)} targets")
        bad = np.flatnonzero(~np.isfinite(y))
        if len(bad):
            raise ValueError(f"y has {len(bad)} NaN/inf value(s), e.g. at rows {bad[:10].tolist()}")
        return y

    # ------------------------------------------------------------------ fit

    def fit(self, X, y, groups=None):
        """Train the adapter on images ``X`` and targets ``y``.

        Parameters
        ----------
        X : sequence of images, pandas Series or DataFrame
            Paths, PIL images or arrays (see the user guide); a DataFrame
            gives ``image_column`` and, optionally, ``instruction_column`` and
            ``group_column``.
        y : array-like of shape (n_samples,)
            Numeric targets; larger means more of what the instruction asks.
        groups : array-like of shape (n_samples,), default=None
            Query groups for ``pair_scope="group"`` and grouped validation.

        Returns
        -------
        self : CLIPRanker
            Fitted. If ``fit`` raises or is interrupted, the estimator keeps
            the state it had before the call.
        """
        t_start = time.perf_counter()
        device = self._validate_params()
        items, instr_text, groups = self._inputs(X, groups)
        y = self._targets(y, len(items))
        if self.pair_scope == "group" and groups is None:
            raise ValueError(
                "pair_scope='group' needs groups: pass groups= to fit or set "
                "group_column to a DataFrame column"
            )
        if groups is not None:
            # Any hashable labels (strings, ids) become integer codes for the tensors.
            groups = np.unique(groups.astype(str), return_inverse=True)[1]
        instructions, instr = np.unique(instr_text.astype(str), return_inverse=True)
        instructions = instructions.tolist()
        means, scales = np.zeros(len(instructions)), np.ones(len(instructions))
        for k, text in enumerate(instructions):
            yk = y[instr == k]
            if len(yk) < 2 or np.ptp(yk) == 0:
                raise ValueError(
                    f"instruction {text!r} has {len(yk)} sample(s) and "
                    f"{len(np.unique(yk))} distinct target value(s); at least 2 "
                    "of each are needed to learn a ranking"
                )
            means[k], scales[k] = yk.mean(), yk.std()
            if not (np.isfinite(means[k]) and np.isfinite(scales[k])):
                raise ValueError(
                    f"y for instruction {text!r} spans too wide a range to standardise "
                    f"(mean {means[k]}, std {scales[k]}); rescale y"
                )
        y_std = (y - means[instr]) / scales[instr]

        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        backbone = load_backbone(self.backbone, self.pretrained, device)
        text_bank = self._text_bank(backbone, instructions)
        progress = self._progress(len(items), "encoding")
        try:
            source = token_source(
                self.cache,
                backbone,
                items,
                augment=self.augment,
                batch_size=self.batch_size,
                num_workers=self.num_workers,
                cache_dir=self._cache_dir(),
                progress=progress,
            )
        finally:
            if progress is not None:
                progress.close()

        train_idx, val_idx = self._split(instr, groups, seed)
        adapter = self._initial_adapter(backbone, instructions, seed)
        cfg = TrainConfig(
            lr=resolve_lr(self.lr, adapter.cfg.d_model),
            weight_decay=float(self.weight_decay),
            batch_size=int(self.batch_size),
            max_epochs=self.max_epochs,
            warmup_fraction=float(self.warmup_fraction),
            reg_weight=float(self.reg_weight),
            rank_weight=float(self.rank_weight),
            sampling=self.sampling,
            pair_scope=self.pair_scope,
            augment=bool(self.augment),
            n_iter_no_change=int(self.n_iter_no_change),
            device=device,
            bf16=self._bf16(device),
            seed=seed,
            verbose=int(self.verbose),
        )
        try:
            history, n_iter = train(
                adapter, source, text_bank, y_std, instr, groups, cfg, train_idx, val_idx
            )
        finally:
            adapter.cpu()

        # Everything succeeded: only now does the estimator change (atomic fit).
        self.adapter_ = adapter
        self.instructions_ = instructions
        self.y_mean_, self.y_scale_ = means, scales
        self.history_ = history
        self.n_iter_ = n_iter
        self.lr_ = cfg.lr
        self.backbone_info_ = backbone.info
        self.cache_info_ = dict(source.info)
        if self.verbose:
            scores = [h["val_score"] for h in history if h["val_score"] is not None]
            best = f", best validation Spearman {max(scores):.4f}" if scores else ""
            print(f"CLIPRanker: {n_iter} epoch(s){best}, {time.perf_counter() - t_start:.1f} s")
        return self

    def _initial_adapter(self, backbone, instructions, seed):
        if self.warm_start and hasattr(self, "adapter_"):
            if self.backbone_info_["weights_identity"] != backbone.info["weights_identity"]:
                raise ValueError("warm_start=True but the backbone changed since the last fit")
            return copy.deepcopy(self.adapter_)
        cfg = AdapterConfig(
            image_dim=backbone.image_dim,
            text_dim=backbone.text_dim,
            d_model=self.d_model or backbone.embed_dim,
            n_fusion_layers=self.n_fusion_layers,
            n_post_layers=self.n_post_layers,
            n_heads=self.n_heads,
            n_prompt_tokens=self.n_prompt_tokens,
            n_relation_tokens=self.n_relation_tokens,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return RankingAdapter(cfg)

    def _split(self, instr, groups, seed):
        idx = np.arange(len(instr))
        if not self.early_stopping:
            return idx, None
        from sklearn.model_selection import GroupShuffleSplit, StratifiedShuffleSplit

        if groups is not None:
            splitter = GroupShuffleSplit(1, test_size=self.validation_fraction, random_state=seed)
            train_idx, val_idx = next(splitter.split(idx, groups=groups))
        elif len(np.unique(instr)) > 1:
            splitter = StratifiedShuffleSplit(
                1, test_size=self.validation_fraction, random_state=seed
            )
            train_idx, val_idx = next(splitter.split(idx, instr))
        else:
            perm = np.random.default_rng(seed).permutation(len(idx))
            n_val = max(2, int(round(self.validation_fraction * len(idx))))
            train_idx, val_idx = np.sort(perm[n_val:]), np.sort(perm[:n_val])
        if len(val_idx) < 2 or len(train_idx) < 2:
            raise ValueError(
                f"early_stopping=True with validation_fraction="
                f"{self.validation_fraction} leaves too few rows to train or validate"
            )
        return np.sort(train_idx), np.sort(val_idx)

    def _text_bank(self, backbone, instructions):
        for text in instructions:
            n = backbone.n_text_tokens(text)
            if n > backbone.context_length:
                warnings.warn(
                    f"instruction {text[:60]!r}... needs {n} tokens but backbone "
                    f"{backbone.name!r} reads at most {backbone.context_length}: it was truncated",
                    UserWarning,
                    stacklevel=3,
                )
        tokens, valid = backbone.text_tokens(instructions)
        return TextBank(tokens, valid)

    def _progress(self, total, desc):
        if not self.verbose:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="img", leave=False)

    # ------------------------------------------------------------------ inference

    def _inference_setup(self):
        check_is_fitted(self, "adapter_")
        device = resolve_device(self.device)
        backbone = load_backbone(self.backbone, self.pretrained, device)
        if backbone.info["weights_identity"] != self.backbone_info_["weights_identity"]:
            raise ValueError(
                f"the backbone weights differ from those the ranker was fitted with "
                f"({backbone.info['weights_identity']} != "
                f"{self.backbone_info_['weights_identity']}); restore the original checkpoint"
            )
        text_bank = self._text_bank(backbone, self.instructions_)
        return device, backbone, text_bank, self._bf16(device)

    def _bf16(self, device):
        """bf16 autocast runs on CUDA only, unless precision="fp32"."""
        return device.type == "cuda" and self.precision in ("auto", "bf16")

    def _instruction_ids(self, instr_text):
        lookup = {t: k for k, t in enumerate(self.instructions_)}
        unknown = sorted({t for t in instr_text if t not in lookup})
        if unknown:
            raise ValueError(
                f"instruction(s) {unknown[:5]} were not seen in fit; this ranker "
                f"knows {self.instructions_}"
            )
        return np.array([lookup[t] for t in instr_text], dtype=np.int64)

    def _cache_dir(self):
        return self.cache_dir if self.cache_dir is not None else DEFAULT_CACHE_DIR

    def _fused(self, items, rows, ctx, failures):
        """Stream (ok rows, fused tokens, scores) for ``rows`` of one instruction."""
        device, backbone, text, valid, bf16 = ctx
        if self.cache == "disk":
            store = DiskStore(backbone, self._cache_dir())
            stream = cached_encode_images(
                store, backbone, items, self.batch_size, self.num_workers, indices=rows
            )
        else:
            stream = encode_images(backbone, items, self.batch_size, self.num_workers, indices=rows)
        for ok, tokens, _, bad in stream:
            failures += bad
            if len(ok):
                scores, fused = predict_tokens(self.adapter_, tokens, text, valid, bf16)
                yield ok, fused, scores

    def _fused_one(self, items, chunk, ctx, failures):
        for ok, fused, _ in self._fused(items, chunk, ctx, failures):
            return ok, fused
        return np.empty(0, dtype=np.int64), None

    def _per_instruction(self, instr):
        """(rows, context) for each instruction present; moves the adapter to its device."""
        device, backbone, text_bank, bf16 = self._inference_setup()
        self.adapter_.to(device).eval()
        for k in np.unique(instr):
            text, valid = text_bank.get(int(k))
            ctx = (device, backbone, text.to(device), valid.to(device), bf16)
            yield np.flatnonzero(instr == k), ctx

    def predict(self, X, on_error="raise"):
        """Predict targets, in the units of ``y``, for images ``X``.

        Parameters
        ----------
        X : images or DataFrame, as in ``fit``
        on_error : {"raise", "nan"}, default="raise"
            "raise": unreadable images raise one :class:`~skrank.ImageLoadError`
            naming them all. "nan": they get NaN, with one warning listing
            them; every other prediction is returned.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        if on_error not in ("raise", "nan"):
            raise ValueError(f"on_error={on_error!r} is not valid; expected 'raise' or 'nan'")
        check_is_fitted(self, "adapter_")
        items, instr_text, _ = self._inputs(X)
        instr = self._instruction_ids(instr_text)
        out = np.full(len(items), np.nan)
        failures: list = []
        try:
            for rows, ctx in self._per_instruction(instr):
                for ok, _, scores in self._fused(items, rows, ctx, failures):
                    out[ok] = scores.cpu().numpy()
        finally:
            self.adapter_.cpu()
        if failures:
            if on_error == "raise":
                raise ImageLoadError(failures)
            warnings.warn(
                str(ImageLoadError(failures)) + "\n(their predictions are NaN)",
                UserWarning,
                stacklevel=2,
            )
        return out * self.y_scale_[instr] + self.y_mean_[instr]

    def score(self, X, y, groups=None):
        """Spearman rank correlation between ``predict(X)`` and ``y``.

        With several instructions, or with ``groups``, the correlation is
        computed within each instruction (and group) and averaged.
        """
        items, instr_text, groups = self._inputs(X, groups)
        y = self._targets(y, len(items))
        pred = self.predict(X)
        keys = instr_text.astype(str)
        if groups is not None:
            keys = np.char.add(np.char.add(keys, "\x00"), groups.astype(str))
        one_key = len(np.unique(keys)) == 1
        return float(spearman_score(y, pred, groups=None if one_key else keys))

    def compare(self, images_a, images_b):
        """Probability that each ``images_a[n]`` ranks above ``images_b[n]``.

        Uses the pair branch (ranking-aware attention and pair head).

        Returns
        -------
        ndarray of shape (n_pairs,)
        """
        check_is_fitted(self, "adapter_")
        items_a, instr_a, _ = self._inputs(images_a)
        items_b, instr_b, _ = self._inputs(images_b)
        if len(items_a) != len(items_b):
            raise ValueError(f"images_a has {len(items_a)} images but images_b has {len(items_b)}")
        ka, kb = self._instruction_ids(instr_a), self._instruction_ids(instr_b)
        if (ka != kb).any():
            raise ValueError("compared images must share an instruction, pair by pair")
        out = np.full(len(items_a), np.nan)
        failures: list = []
        try:
            for rows, ctx in self._per_instruction(ka):
                for start in range(0, len(rows), self.batch_size):
                    chunk = rows[start : start + self.batch_size]
                    # A chunk is one encoding batch, so each side yields at most once.
                    ok_a, fused_a = self._fused_one(items_a, chunk, ctx, failures)
                    ok_b, fused_b = self._fused_one(items_b, chunk, ctx, failures)
                    both = np.intersect1d(ok_a, ok_b)
                    if len(both):
                        with torch.no_grad():
                            logits = self.adapter_.compare_logits(
                                fused_a[np.searchsorted(ok_a, both)],
                                fused_b[np.searchsorted(ok_b, both)],
                            )
                        out[both] = torch.sigmoid(logits.float()).cpu().numpy()
        finally:
            self.adapter_.cpu()
        if failures:
            raise ImageLoadError(failures)
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.non_deterministic = self.random_state is None
        tags.regressor_tags.poor_score = True
        return tags

    def __getstate__(self):
        # The frozen backbone is never pickled (it is rebuilt from its spec), and
        # tensors are stored on the CPU so a CUDA-fitted ranker loads anywhere.
        from skrank import __version__

        state = super().__getstate__()
        if "adapter_" in state:
            state["adapter_"] = copy.deepcopy(state["adapter_"]).cpu()
        state["_skrank_version"] = __version__
        return state

    def __setstate__(self, state):
        from skrank import __version__

        saved = state.pop("_skrank_version", None)
        if saved is not None and saved != __version__:
            warnings.warn(
                f"this CLIPRanker was pickled by skrank {saved} and is loaded by skrank "
                f"{__version__}: it may not behave identically",
                UserWarning,
                stacklevel=2,
            )
        super().__setstate__(state)

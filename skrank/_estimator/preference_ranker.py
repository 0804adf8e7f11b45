"""CLIPPreferenceRanker, whose rows are comparisons (docs: "Training from preferences")."""

from __future__ import annotations

import time

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from skrank import _progress as progress
from skrank._encoding.backbone import load_backbone
from skrank._encoding.cache import token_source
from skrank._encoding.images import ImageLoadError, check_on_error, report_failures
from skrank._estimator import inputs, presets
from skrank._estimator.comparisons import check_labels, failed_rows, parse_comparisons
from skrank._estimator.fitting import adapter_config, initial_adapter
from skrank._estimator.inference import (
    Predictor,
    encoder_for,
    fitted_predictor,
    text_bank,
)
from skrank._estimator.params import PREFERENCE_PARAMETERS, validate_params
from skrank._model.preferences import Comparisons, PreferenceConfig, train_preferences
from skrank._model.training import resolve_lr
from skrank.metrics._inputs import check_sample_weight
from skrank.persistence._metadata import check_storable
from skrank.persistence._pickling import PickleRules

__all__ = ["CLIPPreferenceRanker"]

# Its parameter table lives with CLIPRanker's (the model-file schema reads it).
TABLE = PREFERENCE_PARAMETERS
# What inference reads (checked again at every prediction: set_params may change them).
_AFTER_FIT = ("backbone", "pretrained", "device", "precision", "batch_size", "cache",
              "cache_dir", "num_workers", "instruction", "image_columns",
              "instruction_column")  # fmt: skip


class CLIPPreferenceRanker(PickleRules, BaseEstimator):
    """Learn to rank images from comparisons: "this image ranks above that one".

    Each row of ``X`` is a comparison of two images and ``y`` says which one
    ranks above under the instruction: 1 (the first), 0 (the second), 0.5
    (a tie), or any probability in between (the share of annotators who chose
    the first). The ranking-aware adapter of :class:`~skrank.CLIPRanker` is
    trained on them twice over: a Bradley–Terry (RankNet) loss on the
    difference of the two images' scores trains the score head, whose score
    ranks a whole collection (:meth:`score_images`); the pair branch learns
    the same comparisons. Every image is encoded once, however many
    comparisons it is in.

    Rows are comparisons, so scikit-learn's splitters, searches and scorers
    work on comparisons. Split them with
    :class:`skrank.model_selection.ComparisonKFold`, which keeps the images
    of the test comparisons out of the training ones; a plain ``KFold``
    tests on images the model has been trained on.

    Parameters
    ----------
    instruction : str or None, default=None
        What to rank by, as for :class:`~skrank.CLIPRanker` (None: a neutral
        default instruction). A DataFrame's ``instruction_column`` overrides it
        per comparison.

    backbone : str, default="ViT-B-16"
        The frozen open_clip model (as :class:`~skrank.CLIPRanker`'s).

    pretrained : str, path or None, default="openai"
        Its weights (as :class:`~skrank.CLIPRanker`'s).

    preset : {"auto", "paper", "small-data"}, default="auto"
        The settings the parameters left at None or "auto" take, chosen as
        :class:`~skrank.CLIPRanker` chooses them (the paper's model with
        pretrained weights, the small-data settings with random towers).

    d_model : int or None, default=None
        The adapter's width (None: the backbone's embedding width).

    n_fusion_layers : int or None, default=None
        Cross-modal fusion layers (None: the preset's).

    n_post_layers : int or None, default=None
        Post-fusion encoder layers (None: the preset's).

    n_heads : int, default=8
        Attention heads; must divide ``d_model``.

    n_prompt_tokens : int, default=32
        Learnable prompt vectors appended to the instruction's tokens.

    n_relation_tokens : int, default=16
        Learned queries of the pair branch's ranking-aware attention.

    score_pooling : {"mean_std", "mean"} or None, default=None
        How the score head pools the fused tokens (None: the preset's).

    image_positions : {"none", "sincos"} or None, default=None
        A fixed position code on the image tokens (None: the preset's).

    score_weight : float, default=1.0
        Weight of the Bradley–Terry loss on the scores (trains the score head,
        which every output but the pair branch's reads).

    rank_weight : float, default=1.0
        Weight of the pair branch's loss on the same comparisons (0 disables
        it). ``score_weight`` and ``rank_weight`` cannot both be 0.

    lr : float or "auto", default="auto"
        Peak AdamW learning rate ("auto": the preset's, as for
        :class:`~skrank.CLIPRanker`).

    weight_decay : float, default=0.01
        Decoupled weight decay (not on norms, biases or learned tokens).

    batch_size : int, default=64
        Distinct images per optimiser step (and per encoding batch); a step
        holds the comparisons among them, each image in at most 4.

    max_epochs : int or None, default=None
        Passes over the comparisons. None: 30, raised on small data to the
        preset's floor of optimiser steps.

    warmup_fraction : float, default=0.05
        Share of the steps in linear warm-up; a cosine decay follows.

    augment : bool, default=True
        Random horizontal flips of the images while training.

    cache : {"memory", "disk"} or None, default="memory"
        Where the images' frozen tokens are kept (as for
        :class:`~skrank.CLIPRanker`).

    cache_dir : str, path or None, default=None
        The disk cache's folder.

    device : str, default="auto"
        "auto", "cpu", "cuda", "cuda:N" or "mps".

    precision : {"auto", "fp32", "bf16"}, default="auto"
        As for :class:`~skrank.CLIPRanker`.

    num_workers : int, default=0
        Threads decoding images.

    random_state : int, RandomState instance or None, default=None
        Seeds the adapter, the batches, the flips and dropout.

    verbose : int or "auto", default="auto"
        As for :class:`~skrank.CLIPRanker` (2: one line per epoch).

    image_columns : tuple of two str, default=("image_a", "image_b")
        The columns of the first and second image when ``X`` is a DataFrame.

    instruction_column : str, default="instruction"
        The column of per-comparison instructions, when a DataFrame has it.

    Attributes
    ----------
    adapter_ : torch.nn.Module
        The trained adapter.

    instructions_ : list of str
        The fitted instructions.

    history_ : list of dict
        Per epoch: epoch, loss, score_loss, rank_loss, lr, seconds.

    n_iter_ : int
        Epochs run.

    lr_ : float
        The peak learning rate used.

    preset_ : str
        The preset the fit resolved ``preset`` to.

    backbone_info_ : dict
        The backbone's name, weights identity and preprocessing.

    cache_info_ : dict
        What the token cache did during ``fit``.

    See Also
    --------
    skrank.CLIPRanker : The same model trained on a target per image.
    skrank.model_selection.ComparisonKFold : Folds that keep test images out of training.

    Examples
    --------
    >>> import numpy as np
    >>> from skrank import CLIPPreferenceRanker
    >>> rng = np.random.default_rng(0)
    >>> images = [np.full((32, 32, 3), v, np.uint8) for v in range(0, 256, 16)]
    >>> pairs = [(i, j) for i in range(16) for j in range(16) if i < j]
    >>> X = [(images[i], images[j]) for i, j in pairs]
    >>> y = [float(i > j) for i, j in pairs]  # the brighter image ranks above
    >>> model = CLIPPreferenceRanker(backbone="skrank-tiny", max_epochs=3,
    ...                              random_state=0, verbose=0).fit(X, y)
    >>> model.predict_proba(X[:2]).shape
    (2, 2)
    """

    def __init__(
        self,
        instruction=None,
        backbone="ViT-B-16",
        pretrained="openai",
        *,
        preset="auto",
        d_model=None,
        n_fusion_layers=None,
        n_post_layers=None,
        n_heads=8,
        n_prompt_tokens=32,
        n_relation_tokens=16,
        score_pooling=None,
        image_positions=None,
        score_weight=1.0,
        rank_weight=1.0,
        lr="auto",
        weight_decay=0.01,
        batch_size=64,
        max_epochs=None,
        warmup_fraction=0.05,
        augment=True,
        cache="memory",
        cache_dir=None,
        device="auto",
        precision="auto",
        num_workers=0,
        random_state=None,
        verbose="auto",
        image_columns=("image_a", "image_b"),
        instruction_column="instruction",
    ):
        self.instruction = instruction
        self.backbone = backbone
        self.pretrained = pretrained
        self.preset = preset
        self.d_model = d_model
        self.n_fusion_layers = n_fusion_layers
        self.n_post_layers = n_post_layers
        self.n_heads = n_heads
        self.n_prompt_tokens = n_prompt_tokens
        self.n_relation_tokens = n_relation_tokens
        self.score_pooling = score_pooling
        self.image_positions = image_positions
        self.score_weight = score_weight
        self.rank_weight = rank_weight
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.warmup_fraction = warmup_fraction
        self.augment = augment
        self.cache = cache
        self.cache_dir = cache_dir
        self.device = device
        self.precision = precision
        self.num_workers = num_workers
        self.random_state = random_state
        self.verbose = verbose
        self.image_columns = image_columns
        self.instruction_column = instruction_column

    def _comparisons(self, X, fitted=True, argument="X"):
        """``X`` parsed; comparisons without an instruction get ``instruction``, else
        the default (``fit``) or the fitted one (after ``fit``, when there is one)."""
        default = inputs.DEFAULT_INSTRUCTION
        if fitted:
            default = self.instructions_[0] if len(self.instructions_) == 1 else None
        columns = (*self.image_columns, self.instruction_column)
        return parse_comparisons(X, columns, self.instruction, default, argument)

    def fit(self, X, y, sample_weight=None):
        """Train on comparisons ``X`` and their labels ``y``.

        Parameters
        ----------
        X : DataFrame or sequence of pairs
            A DataFrame with the columns of ``image_columns`` (and optionally
            ``instruction_column``), or a sequence of ``(image_a, image_b)``
            pairs; images as for :class:`~skrank.CLIPRanker`. The same path (or
            the same object) in several comparisons is one image.
        y : array-like of shape (n_comparisons,)
            P(the first image ranks above the second): 1, 0, 0.5 for a tie, or
            the share of annotators who chose the first.
        sample_weight : array-like of shape (n_comparisons,), default=None
            Non-negative weight of each comparison in both losses.

        Returns
        -------
        self : CLIPPreferenceRanker
            Fitted; a fit that raises leaves the estimator as it was.
        """
        t_start = time.perf_counter()
        params = validate_params(self.get_params(deep=False), TABLE)
        parsed = self._comparisons(X, fitted=False)
        y = check_labels(y, len(parsed.a))
        weight = None if sample_weight is None else check_sample_weight(sample_weight, len(y))
        instructions, codes = np.unique(parsed.instructions.astype(str), return_inverse=True)
        instructions = instructions.tolist()
        backbone = load_backbone(self.backbone, self.pretrained, params["device_"])
        # The preset fills what it fills for CLIPRanker; comparisons have no targets to
        # weigh a regression by, nor a validation split to stop on.
        params = presets.resolve(
            {**params, "reg_weight": 1.0, "early_stopping": False},
            backbone.weights_identity,
            codes,
            None,
        )
        seed = int(check_random_state(params["random_state"]).randint(np.iinfo(np.int32).max))
        config = adapter_config(params, backbone, len(instructions))
        lr = resolve_lr(params["lr"], config.d_model, config.n_fusion_layers, config.n_post_layers)
        # Before any image is encoded: what save could not write is refused now.
        fixed = {
            "instructions_": instructions,
            "lr_": lr,
            "preset_": params["preset_"].name,
            "backbone_info_": backbone.info,
        }
        check_storable(self, config, fixed)
        encoder = encoder_for(backbone, params)
        text = text_bank(backbone, instructions, encoder.precision)
        try:
            source = token_source(
                encoder,
                parsed.items,
                cache=params["cache"],
                augment=params["augment"],
                cache_dir=params["cache_dir"],
                verbose=params["verbose"],
            )
        except ImageLoadError as exc:  # named by the comparisons that hold them
            raise ImageLoadError(failed_rows(exc.failures, parsed)) from None
        adapter = initial_adapter(config, backbone, seed)
        comps = Comparisons(parsed.a, parsed.b, y, codes, weight)
        cfg = PreferenceConfig(
            lr=lr,
            weight_decay=params["weight_decay"],
            batch_size=params["batch_size"],
            max_epochs=params["max_epochs"],
            warmup_fraction=params["warmup_fraction"],
            score_weight=params["score_weight"],
            rank_weight=params["rank_weight"],
            augment=params["augment"],
            precision=params["precision"],
            device=params["device_"],
            seed=seed,
            min_steps=params["preset_"].min_steps,
        )
        on_epoch, close = progress.epoch_hook(params["verbose"], (), "", 0, None)
        try:
            trained = train_preferences(adapter, source, text, comps, cfg, on_epoch)
        finally:
            close()
            adapter.cpu()
        self.adapter_ = adapter
        self.instructions_ = instructions
        self.history_ = trained.history
        self.n_iter_ = trained.n_iter
        self.lr_ = lr
        self.preset_ = params["preset_"].name
        self.backbone_info_ = backbone.info
        self.cache_info_ = dict(source.info)
        if params["verbose"] not in (0, "auto"):
            seconds = time.perf_counter() - t_start
            print(f"CLIPPreferenceRanker: {trained.n_iter} epoch(s), {seconds:.1f} s", flush=True)
        return self

    def _predictor(self) -> Predictor:
        check_is_fitted(self, "adapter_")
        params = self.get_params(deep=False)
        params = validate_params({name: params[name] for name in _AFTER_FIT}, TABLE)
        return fitted_predictor(self, params, "this CLIPPreferenceRanker")

    def _item_scores(self, items, item_instructions, on_error, parsed=None):
        """Each item's score; failures reported as their comparisons of ``parsed``."""
        codes = inputs.instruction_codes(item_instructions.astype(str), self.instructions_)
        scores, failures = self._predictor().scores(items, codes)
        if parsed is not None:
            failures = failed_rows(failures, parsed)
        report_failures(failures, on_error, stacklevel=4)
        return scores

    def predict_proba(self, X, on_error="raise"):
        """P(the second image ranks above the first), P(the first ranks above the second).

        From the scores, as the Bradley–Terry model they were trained as:
        ``sigmoid(score(a) - score(b))``.

        Parameters
        ----------
        X : DataFrame or sequence of pairs
            Comparisons, as in ``fit``.
        on_error : {"raise", "nan"}, default="raise"
            As for :meth:`skrank.CLIPRanker.predict`: "nan" gives NaN rows
            for comparisons with an unreadable image.

        Returns
        -------
        proba : ndarray of shape (n_comparisons, 2)
            Columns in the order of ``classes_`` (0: the second image ranks
            above, 1: the first).
        """
        check_on_error(on_error)
        check_is_fitted(self, "adapter_")
        parsed = self._comparisons(X)
        scores = self._item_scores(parsed.items, parsed.item_instructions, on_error, parsed)
        p = 1.0 / (1.0 + np.exp(-(scores[parsed.a] - scores[parsed.b])))
        return np.stack([1.0 - p, p], axis=1)

    @property
    def classes_(self) -> np.ndarray:
        """The two outcomes of a comparison, as ``predict_proba``'s columns: [0.0, 1.0]."""
        return np.array([0.0, 1.0])

    def predict(self, X, on_error="raise"):
        """1.0 where the first image ranks above the second, 0.0 where below (0.5 on a tie).

        Parameters
        ----------
        X : DataFrame or sequence of pairs
            Comparisons, as in ``fit``.
        on_error : {"raise", "nan"}, default="raise"
            As for :meth:`predict_proba`.

        Returns
        -------
        y_pred : ndarray of shape (n_comparisons,)
        """
        p = self.predict_proba(X, on_error)[:, 1]
        return 0.5 + 0.5 * np.sign(p - 0.5)  # 1, 0 or 0.5; NaN stays NaN

    def score(self, X, y, sample_weight=None):
        """Pairwise accuracy: the share of comparisons ordered as ``y`` says, ties as half.

        A comparison labelled ``y`` counts ``y`` when predicted "first above",
        ``1 - y`` when predicted "second above" and one half when the
        prediction is a tie: a tie in ``y`` (0.5) counts one half whatever is
        predicted, and an annotators' share counts what a random annotator
        would agree with.

        Parameters
        ----------
        X : DataFrame or sequence of pairs
            Comparisons, as in ``fit``.
        y : array-like of shape (n_comparisons,)
            Their labels, as in ``fit``.
        sample_weight : array-like of shape (n_comparisons,), default=None
            Weights of the comparisons.

        Returns
        -------
        score : float
            In [0, 1]; 0.5 is chance.
        """
        pred = self.predict(X)
        y = check_labels(y, len(pred))
        agree = y * (pred == 1.0) + (1 - y) * (pred == 0.0) + 0.5 * (pred == 0.5)
        weight = None if sample_weight is None else check_sample_weight(sample_weight, len(y))
        return float(np.average(agree, weights=weight))

    def score_images(self, images, on_error="raise"):
        """Each image's score: larger ranks higher; differences are log-odds.

        ``score_images(a) - score_images(b)`` is the logit of
        ``predict_proba`` for the comparison (a, b), so the scores rank a
        whole collection (compare them with true targets by
        :func:`skrank.metrics.spearman_score`).

        Parameters
        ----------
        images : sequence of images, pandas Series or DataFrame
            As :meth:`skrank.CLIPRanker.predict` takes them (a DataFrame's
            ``"image"`` column, and ``instruction_column`` if it has one).
        on_error : {"raise", "nan"}, default="raise"
            "nan": unreadable images get NaN, with one warning.

        Returns
        -------
        scores : ndarray of shape (n_images,)
        """
        check_on_error(on_error)
        check_is_fitted(self, "adapter_")
        default = self.instructions_[0] if len(self.instructions_) == 1 else None
        columns = inputs.Columns("image", self.instruction_column, None)
        parsed = inputs.parse_inputs(
            images, None, instruction=self.instruction, columns=columns, default=default,
            argument="images",
        )  # fmt: skip
        return self._item_scores(parsed.items, parsed.instructions, on_error)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.non_deterministic = self.random_state is None
        return tags

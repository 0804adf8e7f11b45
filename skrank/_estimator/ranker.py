"""CLIPRanker, the scikit-learn estimator: it validates and orchestrates (docs/architecture.md)."""

from __future__ import annotations

import time

from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    RegressorMixin,
    TransformerMixin,
)
from sklearn.utils.validation import check_is_fitted

from skrank._encoding.backbone import load_backbone
from skrank._encoding.images import check_on_error, report_failures
from skrank._estimator import fitting, inputs, presets
from skrank._estimator.fitting import FitHistory
from skrank._estimator.inference import PARAMS as PREDICTOR_PARAMS
from skrank._estimator.inference import Predictor, fitted_predictor
from skrank._estimator.params import validate_params
from skrank._estimator.validation import validation_set, validation_sets
from skrank._model import training
from skrank._model.training import train
from skrank._version import API_PAGE
from skrank.metrics import spearman_score
from skrank.metrics._inputs import check_sample_weight
from skrank.persistence._metadata import check_storable
from skrank.persistence._pickling import PickleRules

__all__ = ["CLIPRanker"]

# What predict, transform, score and compare read: the Predictor's parameters and
# those that parse X (the instruction and the DataFrame columns).
_AFTER_FIT = (
    *PREDICTOR_PARAMS,
    "instruction",
    "image_column",
    "instruction_column",
    "group_column",
)


class CLIPRanker(
    PickleRules,
    FitHistory,
    ClassNamePrefixFeaturesOutMixin,
    RegressorMixin,
    TransformerMixin,
    BaseEstimator,
):
    """Rank images by a plain-language instruction with a ranking-aware CLIP adapter.

    A frozen open_clip model encodes the images and the instruction; a small
    transformer (the adapter of Yu et al., ICLR 2025 [1]_) fuses them, learns a
    score per image (regression on standardised targets) and, during
    training, an auxiliary pairwise ranking objective from the differences
    between images.

    Read more in ``docs/model.md`` (the model, and where it departs from the
    reference code) and ``docs/sklearn.md`` (its use in scikit-learn).

    Parameters
    ----------
    instruction : str or None, default=None
        What to rank by, in plain words ("Sort the images by sharpness.").
        Rows of a DataFrame with an ``instruction_column`` take theirs from
        it, with a ``UserWarning`` when this is set too. None: ``fit`` uses
        the neutral ``"Rank the images."``
        (``skrank._estimator.inputs.DEFAULT_INSTRUCTION``), so the targets alone say
        what to rank by; after ``fit``, rows without one take the fitted
        instruction when there is only one.

    backbone : str, default="ViT-B-16"
        An open_clip model name, an ``"hf-hub:org/repo"`` id, or
        ``"skrank-tiny"`` (built-in and tiny: for tests and offline use).

    pretrained : str, path or None, default="openai"
        An open_clip tag, a local checkpoint file, or None (seeded random
        weights, with a warning). For ``"skrank-tiny"``: None or "openai" are
        its seeded random weights, ``"synthetic"`` its pretrained ones
        (contrastive pretraining on captioned synthetic scenes, shipped with
        skrank), or a checkpoint file.

    preset : {"auto", "paper", "small-data"}, default="auto"
        The settings of the parameters left at None (or ``"auto"``): the
        depths (``n_fusion_layers``, ``n_post_layers``), ``score_pooling``,
        ``image_positions``, ``reg_weight``, ``lr``, the step floor of
        ``max_epochs=None`` and ``early_stopping``. Parameters you set
        override it; the choice is ``preset_``.

        - ``"paper"``: the paper's model and training (2 fusion and 2
          post-fusion layers, mean-pooled head, ``reg_weight=0.2``,
          ``lr=5e-5``, 30 epochs or at least 1,000 steps at that rate, early
          stopping on held-out groups when ``groups`` name at least 30). Where
          the rate and epochs are read: ``docs/model.md``, "Where the paper's
          settings come from".
        - ``"small-data"``: the shallow adapter measured better on random
          towers (1 fusion layer, no post-fusion layers, mean-and-spread
          head, ``reg_weight=1``, ``lr`` by width, at least 300 steps).
        - ``"auto"``: ``"paper"`` with pretrained weights, ``"small-data"``
          with random ones (``skrank-tiny``, ``pretrained=None``).

    d_model : int or None, default=None
        Adapter width; None uses the backbone's CLIP embedding width (512 for
        ViT-B, 768 for ConvNeXt-L).

    n_fusion_layers : int or None, default=None
        Cross-modal fusion layers, each two pre-LN blocks with their own MLP
        as in the reference code: self-attention over the image's tokens,
        then cross-attention to the instruction and prompt. None: the
        preset's, 2 (``"paper"``) or 1 (``"small-data"``).

    n_post_layers : int or None, default=None
        Post-fusion encoder layers over each image's fused tokens: post-LN
        layers as the reference code's, with a ReLU feed-forward of width
        ``d_model`` and dropout 0.1 while training. None: the preset's, 2
        (``"paper"``) or 0 (``"small-data"``).

    n_heads : int, default=8
        Attention heads; must divide ``d_model``.

    n_prompt_tokens : int, default=32
        Learnable prompt vectors appended to the instruction tokens (0
        disables them).

    n_relation_tokens : int, default=16
        Learned queries of the ranking-aware pair attention.

    score_pooling : {"mean_std", "mean"} or None, default=None
        "mean": the paper's head pools each fused feature's mean over the
        image's tokens; "mean_std" pools its mean and spread. None: the
        preset's ("mean" for ``"paper"``, "mean_std" for ``"small-data"``).

    image_positions : {"none", "sincos"} or None, default=None
        "sincos" adds a fixed 2-D sine-cosine code of each image token's
        place in its grid to the projected tokens, so that the adapter, whose
        head pools over tokens, can tell where in the image something is (a
        vignette, a ramp; on a blur task with few steps it cost much: the
        model docs, "Where in the image"); "none" is the paper's. None: the
        preset's ("none" for both).

    probe : {"none", "ridge"}, default="none"
        "ridge": also fit a linear probe (ridge on the mean and spread of the
        frozen tokens, closed form) and after training blend it into the
        score, ``(1 - m) * adapter + m * probe``, with the ``m`` in {0, 0.25,
        0.5, 0.75, 1} that ranks held-out images best (``probe_weight_``):
        ``X_val``, else the early-stopping split, else
        ``validation_fraction`` of the ``groups`` (at least 2 groups and 8
        images, at most a fifth; the probe is then refitted on all); without
        them ``m`` is 0. It pays where a linear probe beats the adapter and
        costs where the adapter is better (the model docs, "The linear
        probe"). "none": the paper's head.

    reg_weight : float or None, default=None
        Weight of the regression loss, which trains the score head (the only
        source of predictions). None: the preset's, 0.2 (the paper's) or 1.0
        (``"small-data"``: equal weights trained the head markedly better on
        small data).

    rank_weight : float, default=1.0
        Weight of the pairwise ranking loss of the pair branch (0 disables
        it). ``reg_weight`` and ``rank_weight`` cannot both be 0.

    lr : float or "auto", default="auto"
        Peak AdamW learning rate. "auto": the preset's. ``"paper"``: 5e-5 (the
        rate the reference's README passes; its code's own default is 5e-4:
        ``docs/model.md``, "Where the paper's settings come from").
        ``"small-data"``: measured best by width and depth on random towers,
        3e-4 for ViT-B and 1e-3 for skrank-tiny with the shallow adapter
        (log-linear in the width), 1e-4 · sqrt(512 / d_model) with more than
        one fusion layer or any post-fusion layer. The value used is ``lr_``.

    weight_decay : float, default=0.01
        Decoupled weight decay (not on norms, biases or learned tokens).

    batch_size : int, default=64
        Images per optimiser step (and per encoding batch); at least 2.

    max_epochs : int or None, default=None
        Training epochs. None: 30, raised on small data so that training
        takes at least the preset's floor of optimiser steps (1,000 for
        ``"paper"``, 300 for ``"small-data"``), at the same learning rate.

    warmup_fraction : float, default=0.05
        Share of the steps spent in linear learning-rate warm-up, in [0, 1);
        a cosine decay to 0 follows.

    early_stopping : bool or "auto", default="auto"
        True: hold out ``validation_fraction`` of the rows (whole groups when
        groups are known), or validate on ``X_val`` when ``fit`` is given
        one, keep the epoch with the best validation Spearman and stop after
        ``n_iter_no_change`` epochs without improvement. False: train every
        epoch. "auto": on with the ``"paper"`` preset when ``groups`` name at
        least 30 groups, else off.

    validation_fraction : float, default=0.1
        Share of the training rows held out for validation when early
        stopping is on and ``fit`` has no ``X_val``, in (0, 1): whole groups
        when groups are known, else rows (stratified by instruction when
        there are several). With ``probe="ridge"``, and neither ``X_val`` nor
        early stopping, the share of the ``groups`` held out to weigh the
        probe (see ``probe``). Unused otherwise.

    n_iter_no_change : int, default=10
        With early stopping, the epochs without an improvement of the
        validation score (by more than ``tol``) after which training stops;
        the best epoch's adapter is kept (``best_epoch_``). At least 1.

    tol : float, default=0.0001
        With early stopping, the least rise of the validation score that
        counts as an improvement. At least 0.

    scoring : str, default="spearman"
        The validation score after each epoch (``val_score`` and
        ``validation`` of ``history_``), which early stopping maximises: a
        name of :func:`skrank.metrics.get_scorer`'s own (``"spearman"``,
        ``"kendall"``, ``"plcc"``, ``"pairwise_accuracy"``, ``"ndcg"``,
        ``"ndcg@K"`` such as ``"ndcg@10"``, ``"neg_mean_absolute_error"``,
        ``"ordinal_accuracy"``, ``"ordinal_mae"``; errors are negated, so
        greater is better). Computed in the units of ``y`` within each
        instruction (and, for the ranking metrics, within each group of a
        named validation set). Validation rows with unequal weights need a
        metric that takes them (``"spearman"``, ``"neg_mean_absolute_error"``
        and the ordinal ones).

    sampling : {"balanced", "uniform"}, default="balanced"
        Which distinct rows a batch draws: "balanced" sees every target value
        (or each of 20 quantile bins) about equally often; "uniform" shuffles.

    augment : bool, default=True
        Random horizontal flips during training. Set False when the target
        depends on orientation (reading text or numbers, clocks, left/right
        position): a flip there is label noise.

    cache : {"memory", "disk"} or None, default="memory"
        Encode each image once and train from its cached fp16 tokens, held in
        memory or (``"disk"``) in checksummed files under ``cache_dir`` and
        shared by clones, folds, later fits and predictions; or (None)
        re-encode every step as the reference code does.

    cache_dir : str, path or None, default=None
        Folder of the disk cache; None uses ``$SKRANK_CACHE_DIR`` or
        ``~/.cache/skrank``. Safe to share between processes.

    device : str, default="auto"
        "auto" (CUDA, else MPS, else CPU), "cpu", "cuda", "cuda:N" or "mps".

    precision : {"auto", "fp32", "bf16"}, default="auto"
        "auto" uses bf16 autocast on CUDA and fp32 elsewhere. "bf16" uses it on
        CUDA and, for the adapter only, on a CPU that computes bf16 natively
        (AVX512-BF16 or AMX): there the frozen towers stay fp32, and is refused
        on other CPUs. On such a CPU a training step of the paper's model runs
        1.5-1.7 times as fast; a model trained in fp32 predicts in bf16 what
        it predicts in fp32 (Spearman 0.999), but fits trained in bf16 do not
        quite rank as fp32 fits do (Spearman with them on held-out images 0.985
        on average over seven fits, 0.948 at worst; two fp32 fits that differ
        only in rounding agree at 0.998): the model docs, "Speed of a training
        step".

    num_workers : int, default=0
        Threads decoding images in parallel.

    random_state : int, RandomState instance or None, default=None
        Seeds the adapter's initialisation, batches, flips and dropout.

    verbose : int or "auto", default="auto"
        What a fit shows. 0: nothing. "auto": progress bars for encoding and
        training that appear only once a step has run for 10 s, and only on a
        terminal or in a notebook (short fits, searches and logs stay silent).
        1: the bars from the start and a summary line. 2: one line per epoch
        (epoch, losses, validation scores, learning rate, seconds), as
        ``MLPRegressor`` prints, and the summary. Whatever the value, each
        epoch's line is also logged to the ``skrank`` logger at level INFO.

    callbacks : list of callable or None, default=None
        Called after every epoch with an :class:`skrank.callbacks.EpochState`
        (the epoch's ``history_`` record, the validation predictions, and a
        checkpoint of the ranker on request); one that returns True stops
        training after that epoch, and one that raises ends ``fit`` with the
        estimator unchanged (Optuna's pruning). Not saved by
        :func:`skrank.save`; ``clone`` deep-copies them.

    warm_start : bool, default=False
        Continue training the fitted adapter on the next ``fit``: its
        weights, its linear probe and ``history_`` carry on. The optimiser
        (AdamW's moments) and the learning-rate schedule (warm-up, then
        cosine decay over the new fit's epochs) start again. The targets'
        standardisation (``y_mean_``, ``y_scale_``) of every instruction
        fitted before is kept, so the adapter's scores keep their units
        (an instruction new to this fit is standardised on its own
        targets). The parameters that shape the adapter, and the backbone,
        must be those it was built with.

    image_column : str, default="image"
        Column of images read when ``X`` is a DataFrame.

    instruction_column : str, default="instruction"
        Column of instructions read when ``X`` is a DataFrame that has it;
        its rows then take their instruction from it rather than from
        ``instruction`` (a call warns when ``instruction`` is set too).

    group_column : str or None, default=None
        DataFrame column with query groups (see ``pair_scope``); ``groups``
        passed to ``fit`` take precedence.

    pair_scope : {"all", "group"}, default="all"
        Which pairs the ranking loss compares: all pairs sharing an
        instruction, or only pairs inside a group.

    negative_fraction : float, default=0.0
        In [0, 1). With several instructions, this share of each batch are
        images of the other instructions with the target 0 (the paper's
        counting setup: 0.2). No effect with a single instruction.

    Attributes
    ----------
    adapter_ : torch.nn.Module
        The trained adapter (on the CPU between calls).

    y_mean_ : ndarray of shape (n_instructions,)
        Mean of the targets of each instruction: the target standardisation's
        offset, which ``predict`` adds back.

    y_scale_ : ndarray of shape (n_instructions,)
        Spread of the targets of each instruction: the target
        standardisation's scale, which ``predict`` multiplies back.

    instructions_ : list of str
        The fitted instructions, in the order of ``y_mean_`` and
        ``y_scale_``.

    history_ : list of dict
        Per epoch: epoch, loss, reg_loss, rank_loss, lr, val_score (the
        monitored validation rows' score by ``scoring``, or None), seconds,
        and with ``validation_data`` a ``validation`` dict of each named
        set's score. A ``warm_start`` fit appends to it (epochs numbered on).

    loss_curve_ : list of float
        Mean training loss per epoch of ``history_``.

    validation_scores_ : list or None
        The monitored validation score (``scoring``) per epoch of the adapter
        alone (``early_stopping``, ``X_val``), else None.

    best_validation_score_ : float or None
        The best of ``validation_scores_``.

    n_iter_ : int
        Epochs run, counted on across ``warm_start`` fits.

    best_epoch_ : int
        The epoch whose adapter the ranker has, numbered as ``history_``:
        with early stopping the best one, else the last one run.

    lr_ : float
        The peak learning rate used (``lr`` resolved).

    preset_ : str
        The preset the fit resolved ``preset`` to: "paper" or "small-data".

    probe_weight_ : float or None
        The linear probe's weight ``m`` in the score (``probe="ridge"``),
        None without a probe.

    backbone_info_ : dict
        The backbone's name, weights identity and preprocessing.

    cache_info_ : dict
        What the token cache did during ``fit``: hits, misses, images encoded
        (views included) and bytes of tokens held.

    See Also
    --------
    skrank.CLIPEmbedder : Frozen CLIP image embeddings of the same backbone, as
        a transformer: the linear-probe baseline,
        ``make_pipeline(CLIPEmbedder(), RidgeCV())``.
    skrank.parallel.encode : Fill the disk cache from the workers of a Dask
        cluster.
    skrank.parallel.predict : Score a pandas or Dask collection of images with
        a fitted ranker on a Dask cluster.
    skrank.metrics.get_scorer : The ranking metrics' scorers (``"spearman"``,
        ``"kendall"``, ``"ordinal_accuracy"``, ...) for scikit-learn searches.
    skrank.metrics.make_grouped_scorer : A scorer that ranks within the
        ``groups`` a search routes to it.

    Notes
    -----
    Both open_clip towers stay frozen: the image tower gives each image's
    tokens (a ViT's patch tokens, a ConvNeXt's feature map positions) and the
    text tower the instruction's tokens, each projected to ``d_model`` by a
    trained linear layer; ``n_prompt_tokens`` learned vectors are appended to
    the instruction. ``n_fusion_layers`` fusion layers (self-attention over one
    image's tokens, then cross-attention to the instruction and prompt, each
    with its MLP) and ``n_post_layers`` post-LN encoder layers give fused
    tokens per image. The score head pools them (their mean, or mean and
    spread: ``score_pooling``) into one score per image, which ``predict``
    returns in the units of ``y``. During training a pair branch compares
    images: ``n_relation_tokens`` learned queries attend to two images' tokens
    under one softmax (the ranking-aware attention, computed exactly in a
    factorised form so that a batch's pairs cost little) and a pair head gives
    the logit that one ranks above the other, odd in the pair so that
    ``compare(a, b) + compare(b, a) == 1`` and ``compare(a, a) == 0.5``. The
    loss is ``reg_weight`` times a smooth-L1 regression loss (``log(1 +
    SmoothL1)``) on the standardised targets plus ``rank_weight`` times the
    binary cross-entropy of the pair logits over the ordered pairs of a batch
    that share an instruction (and a group, with ``pair_scope="group"``).
    ``preset`` chooses the depths, the pooling, the loss weights, the learning
    rate and the training budget: the paper's with pretrained towers, the
    small-data settings measured on random ones.

    References
    ----------
    .. [1] W.-H. Yu, Y.-Y. Lin, M.-H. Yang and Y.-H. Tsai, "Ranking-aware
       adapter for text-driven image ordering with CLIP", International
       Conference on Learning Representations (ICLR), 2025.
       https://arxiv.org/abs/2412.06760; reference code:
       https://github.com/uynaes/RankingAwareCLIP

    Examples
    --------
    >>> import numpy as np
    >>> from skrank import CLIPRanker
    >>> images = [np.full((32, 32, 3), v, np.uint8) for v in range(0, 250, 10)]
    >>> y = np.arange(len(images), dtype=float)
    >>> ranker = CLIPRanker("Sort by brightness.", backbone="skrank-tiny",
    ...                     lr=1e-3, max_epochs=5, random_state=0).fit(images, y)
    >>> ranker.predict(images[:3]).shape
    (3,)
    """

    # The "?" link of the notebook repr: this class's page in skrank's API reference.
    _doc_link_module = "skrank"
    _doc_link_template = API_PAGE
    # Pipeline.predict(X, on_error="nan") reaches the ranker with metadata routing on.
    __metadata_request__predict = {"on_error": True}
    __metadata_request__transform = {"on_error": True}

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
        probe="none",
        reg_weight=None,
        rank_weight=1.0,
        lr="auto",
        weight_decay=0.01,
        batch_size=64,
        max_epochs=None,
        warmup_fraction=0.05,
        early_stopping="auto",
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        scoring="spearman",
        sampling="balanced",
        augment=True,
        cache="memory",
        cache_dir=None,
        device="auto",
        precision="auto",
        num_workers=0,
        random_state=None,
        verbose="auto",
        callbacks=None,
        warm_start=False,
        image_column="image",
        instruction_column="instruction",
        group_column=None,
        pair_scope="all",
        negative_fraction=0.0,
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
        self.probe = probe
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
        self.tol = tol
        self.scoring = scoring
        self.sampling = sampling
        self.augment = augment
        self.cache = cache
        self.cache_dir = cache_dir
        self.device = device
        self.precision = precision
        self.num_workers = num_workers
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.image_column = image_column
        self.instruction_column = instruction_column
        self.group_column = group_column
        self.pair_scope = pair_scope
        self.negative_fraction = negative_fraction

    def _inputs(self, X, groups=None, argument="X", fitted=True):
        """``X`` parsed; rows without an instruction get the default (``fit``) or
        the fitted one (after ``fit``, when there is only one)."""
        default = inputs.DEFAULT_INSTRUCTION
        if fitted:
            known = self.instructions_
            default = known[0] if len(known) == 1 else None
        columns = inputs.Columns(self.image_column, self.instruction_column, self.group_column)
        return inputs.parse_inputs(
            X,
            groups,
            instruction=self.instruction,
            columns=columns,
            argument=argument,
            default=default,
        )

    def _warn_column_overrides(self, stacklevel=2, **parsed):
        """One warning per call when an instruction column overrides ``instruction``
        (``parsed``: the call's inputs by name; ``stacklevel`` counts from the caller)."""
        column = self.instruction_column
        inputs.warn_column_overrides(self.instruction, column, parsed, stacklevel + 1)

    def fit(
        self, X, y, groups=None, sample_weight=None, X_val=None, y_val=None, validation_data=None
    ):
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
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights: the regression loss weighs row i by w_i,
            the ranking loss pair (i, j) by w_i * w_j, validation is weighted.
        X_val : sequence of images, pandas Series or DataFrame, default=None
            A validation set of your own, as in ``HistGradientBoostingRegressor``
            (images as in ``X``; give ``y_val`` with it): scored (``scoring``,
            within each instruction) after every epoch into
            ``validation_scores_``; with ``early_stopping=True`` it replaces the
            ``validation_fraction`` split. Its instructions must be among
            ``X``'s; it is never trained on. In a scikit-learn search
            (``GridSearchCV``, ``cross_validate``) a validation set of exactly
            ``len(X)`` rows is cut, like ``sample_weight``, to each fold's
            training rows; give it another length, or pass it in
            ``validation_data``, to have every fold validate on all of it.
        y_val : array-like of shape (n_val_samples,), default=None
            The targets of ``X_val``, in the units of ``y``.
        validation_data : dict or list of tuples, default=None
            Named validation sets, each scored by ``scoring`` after every
            epoch into the ``validation`` entry of ``history_``:
            ``{"faces": (X_faces, y_faces)}`` or ``[("faces", X_faces,
            y_faces)]``, each optionally ending with a dict of its own
            ``"groups"`` and ``"sample_weight"``. Images and instructions as
            for ``X_val``; never trained on. scikit-learn's searches pass
            them to every fit whole, which they do not for ``X_val`` of
            ``len(X)`` rows (as many sets as ``X`` has rows are refused for
            that reason). With ``early_stopping=True`` and no ``X_val`` the
            first set is the one early stopping reads.

        Returns
        -------
        self : CLIPRanker
            Fitted. If ``fit`` raises or is interrupted, the estimator keeps
            the state it had before the call.
        """
        t_start = time.perf_counter()
        params = validate_params(self.get_params(deep=False))
        parsed = self._inputs(X, groups, fitted=False)
        y = inputs.check_targets(y, len(parsed.items))
        weight = None if sample_weight is None else check_sample_weight(sample_weight, len(y))
        groups = inputs.encode_groups(parsed.groups, self.pair_scope)
        scaling = inputs.TargetScaling.fit(y, parsed.instructions)
        if fitting.continues(self):  # the units the adapter's scores were trained in
            scaling = scaling.keeping(self.instructions_, self.y_mean_, self.y_scale_)
        parsed_val = None if X_val is None else self._inputs(X_val, argument="X_val", fitted=False)
        val = validation_set(parsed_val, y_val, scaling)
        self._warn_column_overrides(X=parsed, X_val=parsed_val)
        named = validation_sets(validation_data, self._validation_inputs, scaling, len(y))
        rows = fitting.FitRows(parsed.items, y, scaling, groups, weight, val, tuple(named))
        backbone = load_backbone(self.backbone, self.pretrained, params["device_"])
        params = presets.resolve(params, backbone.weights_identity, scaling.codes, groups)
        auto_stopping = self.early_stopping == "auto"
        fit = fitting.settings(params, backbone, len(scaling.instructions), auto_stopping)
        # Before any image is encoded: what save could not write is refused now.
        fixed = {
            "instructions_": list(scaling.instructions),
            "y_mean_": scaling.means,
            "y_scale_": scaling.scales,
            "preset_": fit.preset.name,
            "backbone_info_": backbone.info,
        }
        check_storable(self, fit.adapter, fixed)
        adapter, data = fitting.prepare(self, fit, rows)
        # The tokens are cached: large towers make room for training (predict reloads them).
        fit = fitting.release_towers(fit)
        del backbone
        on_epoch, close_progress = fitting.epoch_hook(self, fit, data, rows)
        try:
            trained = train(adapter, data, fit.train, on_epoch=on_epoch)
            fitting.weigh_probe(adapter, data, fit.train)
        finally:
            close_progress()
            adapter.cpu()
        # Everything succeeded: only now does the estimator change (atomic fit).
        for name, value in fitting.fitted_state(self, adapter, data, fit, rows, trained).items():
            setattr(self, name, value)
        if self.verbose not in (0, "auto"):
            seconds = time.perf_counter() - t_start
            print(training.summary_line(trained, seconds, fit.train.scoring), flush=True)
        return self

    def _validation_inputs(self, X, groups, argument):
        """A named validation set's images parsed as ``fit`` parses ``X``."""
        return self._inputs(X, groups, argument=argument, fitted=False)

    def predict(self, X, on_error="raise"):
        """Predict targets, in the units of ``y``, for images ``X``.

        Parameters
        ----------
        X : sequence of images, pandas Series or DataFrame
            Images as in ``fit``; rows without an instruction take the fitted
            one when there is only one (a ranker fitted on several needs each
            row's, from ``instruction`` or ``instruction_column``).
        on_error : {"raise", "nan"}, default="raise"
            "raise": unreadable images raise one :class:`~skrank.ImageLoadError`
            naming them all. "nan": they get NaN, with one warning listing
            them; every other prediction is returned.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            The predicted targets, in the units of ``y`` of the row's
            instruction.
        """
        scores, codes = self._per_image(X, on_error, Predictor.scores)
        return inputs.to_target_units(scores, codes, self.y_mean_, self.y_scale_)

    def _params_after_fit(self) -> dict:
        """The parameters predict, transform, score and compare read, checked as ``fit``
        checks them (``set_params`` may have changed them since), plus ``device_``."""
        check_is_fitted(self, "adapter_")
        params = self.get_params(deep=False)
        return validate_params({name: params[name] for name in _AFTER_FIT})

    def _predictor(self, params: dict) -> Predictor:
        """Inference with the fitted adapter, as the parameters ``params`` now ask."""
        return fitted_predictor(self, params)

    def _per_image(self, X, on_error, method):
        """``method`` of a Predictor over ``X``'s images (one result row each), and the codes."""
        check_on_error(on_error)
        params = self._params_after_fit()
        parsed = self._inputs(X)
        self._warn_column_overrides(3, X=parsed)  # the caller of predict or transform
        return self._per_parsed(params, parsed, on_error, method)

    def _per_parsed(self, params, parsed, on_error, method):
        """``_per_image`` on ``X`` parsed already (``score`` parses it for ``y``'s check)."""
        codes = inputs.instruction_codes(parsed.instructions, self.instructions_)
        out, failures = method(self._predictor(params), parsed.items, codes)
        report_failures(failures, on_error)
        return out, codes

    def transform(self, X, on_error="raise"):
        """Each image's adapter features: what its score is computed from.

        The mean and spread over the image's fused tokens (after the score
        head's LayerNorm) for the row's instruction, which the score head's MLP
        reads; with ``probe="ridge"`` the last column is the linear probe's
        score, which the MLP's output is added to. Features a fitted ranker can
        feed to another model (``get_feature_names_out`` names them).

        Parameters
        ----------
        X : sequence of images, pandas Series or DataFrame
            Images as in ``predict``.
        on_error : {"raise", "nan"}, default="raise"
            As in ``predict``: "raise" raises one
            :class:`~skrank.ImageLoadError` naming every unreadable image;
            "nan" gives them NaN rows, with one warning.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features), float32
            NaN rows for unreadable images under ``on_error="nan"``.
        """
        return self._per_image(X, on_error, Predictor.features)[0]

    @property
    def probe_weight_(self) -> float | None:
        """The linear probe's weight in the score (``probe``), or None without one.

        Returns
        -------
        weight : float or None
            The ``m`` of ``(1 - m) * adapter + m * probe`` (of the first
            fitted instruction), or None when ``probe="none"``.
        """
        check_is_fitted(self, "adapter_")
        probe = self.adapter_.probe
        return None if probe is None else float(probe.gate[0])

    @property
    def _n_features_out(self) -> int:  # for get_feature_names_out
        check_is_fitted(self, "adapter_")
        return self.adapter_.n_features

    def score(self, X, y, groups=None, sample_weight=None):
        """Spearman rank correlation between ``predict(X)`` and ``y``.

        With several instructions, or with ``groups``, the correlation is
        computed within each instruction (and group) and averaged. With
        ``sample_weight``, it is the weighted correlation of
        :func:`skrank.metrics.spearman_score` (integer weights: rows repeated).

        Parameters
        ----------
        X : sequence of images, pandas Series or DataFrame
            At least 2 images, as in ``predict``.
        y : array-like of shape (n_samples,)
            Their true targets.
        groups : array-like of shape (n_samples,), default=None
            Query groups: the correlation is computed within each and
            averaged (``group_column`` of a DataFrame ``X`` when None).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights.

        Returns
        -------
        score : float
            Spearman's rank correlation (its mean over the instructions and
            groups, as above).
        """
        params = self._params_after_fit()  # before X is parsed with them
        parsed = self._inputs(X, groups)
        self._warn_column_overrides(X=parsed)
        y = inputs.check_targets(y, len(parsed.items))
        if len(y) < 2:
            raise ValueError(f"score needs at least 2 images to rank; X has {len(y)}")
        # X parsed once (predict(X) would parse it, and warn, again).
        scores, codes = self._per_parsed(params, parsed, "raise", Predictor.scores)
        pred = inputs.to_target_units(scores, codes, self.y_mean_, self.y_scale_)
        groups = inputs.ranking_groups(parsed.instructions, parsed.groups)
        return float(spearman_score(y, pred, groups=groups, sample_weight=sample_weight))

    def compare(self, images_a, images_b):
        """Probability that each ``images_a[n]`` ranks above ``images_b[n]``.

        Uses the pair branch (ranking-aware attention and pair head), whose
        probability is coherent: ``compare(a, b) + compare(b, a) == 1`` and
        ``compare(a, a) == 0.5``.

        Parameters
        ----------
        images_a : sequence of images, pandas Series or DataFrame
            The first image of each pair, as in ``predict``.
        images_b : sequence of images, pandas Series or DataFrame
            The second image of each pair: as many as ``images_a``, each pair
            under one instruction.

        Returns
        -------
        proba : ndarray of shape (n_pairs,)
            P(``images_a[n]`` ranks above ``images_b[n]``). Unreadable images
            raise one :class:`~skrank.ImageLoadError` naming them all.
        """
        params = self._params_after_fit()
        a = self._inputs(images_a, argument="images_a")
        b = self._inputs(images_b, argument="images_b")
        self._warn_column_overrides(images_a=a, images_b=b)
        codes = inputs.paired_codes(a, b, self.instructions_)
        out, failures = self._predictor(params).compare(a.items, b.items, codes)
        report_failures(failures)
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.non_deterministic = self.random_state is None
        tags.regressor_tags.poor_score = True
        # transform gives float32 whatever X holds: float32 images keep their dtype,
        # and float32 is what every other input becomes (the list's first entry).
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

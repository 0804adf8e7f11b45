"""What models written by earlier skrank code mean, and which of them are refused.

The one place that keeps compatibility with older models: the modules that build
and run the adapter (:mod:`skrank._model.adapter`) know only the current one. Part of
the schema of :mod:`skrank.persistence._schema`; pickles go through the same rules
(:func:`check_pickled_state`, from :class:`skrank.persistence._pickling.PickleRules`).

- **Options a file predates.** An adapter config of format 1 may lack an
  option that came after it was written; that file's adapter was built with
  the value of :data:`BEFORE_OPTIONS` (the paper's mean head, no linear probe,
  one probe row, no position code).
- **skrank 0.1's architecture variants, removed.** Format 1 files store
  ``fusion``, ``post_layers``, ``relation_norm`` and ``pair_logit`` in their
  adapter config and parameters; the adapter is now always the reference's
  (``docs/model.md``, "The fidelity ablation"). A key holding the reference's
  value is dropped and the file loads; skrank 0.1's value, or an adapter config
  without the key (written before the options existed, when skrank 0.1's
  layers were the only ones), is refused by :class:`RemovedVariantError`,
  which asks for a refit. Files of format 2 hold none of these keys.
"""

from __future__ import annotations

import dataclasses

from skrank.persistence._schema_json import SchemaError, _shown

__all__ = [
    "BEFORE_OPTIONS",
    "REMOVED_OPTIONS",
    "RemovedVariantError",
    "check_pickled_state",
    "drop_removed_options",
]

# What a format 1 file without one of these adapter config keys was built with.
BEFORE_OPTIONS = {
    "score_pooling": "mean",
    "probe": "none",
    "n_instructions": 1,
    "image_positions": "none",
}
# The architecture options that were removed: (the reference's value, the only one
# built now; skrank 0.1's value, also what an adapter config without the key means).
REMOVED_OPTIONS = {
    "fusion": ("two_mlps", "one_mlp"),
    "post_layers": ("post_ln", "pre_ln"),
    "relation_norm": ("layernorm", "none"),
    "pair_logit": ("odd", "raw"),
}


class RemovedVariantError(SchemaError):
    """A model built with one of skrank 0.1's architecture variants, no longer supported.

    ``detail`` completes a sentence whose subject is the model's file or pickle
    (``"'m.skrank' was " + detail``).
    """

    def __init__(self, field: str, name: str, stored: bool):
        reference, variant = REMOVED_OPTIONS[name]
        parent = field.rsplit(".", 1)[0]
        where = field if stored else f"{parent} has no {name!r}: it predates the option"
        self.detail = (
            "made with a skrank 0.1 architecture variant that is no longer supported: "
            f"{name}={variant!r} ({where}). skrank now always builds the reference "
            f"architecture ({name}={reference!r}): refit the model with this version of "
            "skrank and save it again"
        )
        super().__init__(field, f"the model was {self.detail}")


def drop_removed_options(values, field: str, *, absent_is_old: bool):
    """``values``, a format 1 adapter config or parameters, without the removed options.

    Parameters
    ----------
    values : dict
        As the file holds it (anything else is returned as is: the schema
        refuses it, naming ``field``).
    field : str
        Where ``values`` is, for messages (``"adapter_config"``, ``"params"``).
    absent_is_old : bool
        Whether a missing key means skrank 0.1's value (an adapter config), or
        nothing (parameters: the config says what the adapter is).

    Returns
    -------
    dict
        A copy of ``values`` without the keys of :data:`REMOVED_OPTIONS`.

    Raises
    ------
    RemovedVariantError
        For the first removed option holding skrank 0.1's value (or missing,
        with ``absent_is_old``).
    SchemaError
        For a removed option holding any other value.
    """
    if not isinstance(values, dict):
        return values
    out = dict(values)
    for name, (reference, variant) in REMOVED_OPTIONS.items():
        key = f"{field}.{name}"
        if name not in out:
            if absent_is_old:
                raise RemovedVariantError(key, name, stored=False)
            continue
        value = out.pop(name)
        if isinstance(value, str) and value == variant:
            raise RemovedVariantError(key, name, stored=True)
        if not (isinstance(value, str) and value == reference):
            raise SchemaError(key, f"{_shown(value)} is not {reference!r}")
    return out


def check_pickled_state(state: dict) -> None:
    """Refuse a pickled CLIPRanker whose adapter this skrank does not build; drop, in
    place, the removed options (reference values) a pickle from before their removal holds.

    A fitted ranker pickled by older code is read only when its adapter config
    holds every current field: the module classes have no defaults for
    attributes older code did not set, so anything older is refused, naming the
    way through a model file (save it with the skrank that pickled it).

    Raises
    ------
    ValueError
        For an adapter or parameter of skrank 0.1's architecture, or an adapter
        pickled before a current option existed.
    """
    from skrank._model.adapter import AdapterConfig

    adapter = state.get("adapter_")
    try:
        drop_removed_options(state, "CLIPRanker", absent_is_old=False)  # checks the parameters
        if adapter is not None:
            config = vars(adapter.cfg)
            current = drop_removed_options(config, "adapter_.cfg", absent_is_old=False)
            missing = [f.name for f in dataclasses.fields(AdapterConfig) if f.name not in current]
            if missing:
                raise ValueError(
                    "this CLIPRanker was pickled by an older skrank, before its adapter had "
                    f"{missing[0]!r}, and cannot be read from a pickle: refit it, or save it "
                    "with skrank.save under the skrank that pickled it and skrank.load the file"
                )
            config.clear()
            config.update(current)
    except RemovedVariantError as exc:
        raise ValueError(f"this CLIPRanker pickle was {exc.detail}") from None
    for name in REMOVED_OPTIONS:
        state.pop(name, None)

"""The bounds shared by the parameter table (:mod:`skrank._estimator.params`) and the
model-file schema (:mod:`skrank.persistence._schema`): one constant each, so ``fit`` refuses
up front what ``save`` could not write and ``load`` would refuse.

Each is far above anything a fit needs, and low enough that a file within them
cannot make ``load`` (or a later ``predict``) allocate, loop or overflow.
"""

from __future__ import annotations

MAX_STRING = 4096  # characters of any text: an instruction (CLIP reads ~300), a path, a name
MAX_INSTRUCTIONS = 1024  # predict encodes every instruction: (K, T, C) text tokens
MAX_HISTORY = 10_000  # epochs recorded, and max_epochs; a fit runs 30 by default
MAX_EPOCH = 2**31  # the number of an epoch, and n_iter_, across warm starts
MAX_VALIDATION_SETS = 16  # named validation sets of a fit, each scored every epoch
MAX_TARGET = 1e250  # |y_mean_| and y_scale_: scores * scale + mean stays finite
MAX_INT = 2**63 - 1  # every integer of a file (JSON numbers are read as 64-bit)
# Upper bounds of the adapter config. Widths: open_clip's widest embedding is 1536
# and its widest token 3072 (timm trunks); layers, heads and tokens: the defaults
# are 2, 8, 32 and 16. The layers also bound the time to build the config's adapter
# on the meta device to check the tensor table (~4 ms of CPU a block, 0.3 s at most).
# The fields that are parameters (d_model, the layers, heads and tokens) have these
# as their parameters' upper bounds in params.PARAMETERS.
CONFIG_LIMITS = {
    "image_dim": 16384,
    "text_dim": 16384,
    "d_model": 4096,
    "n_fusion_layers": 32,
    "n_post_layers": 32,
    "n_heads": 256,
    "n_prompt_tokens": 1024,
    "n_relation_tokens": 1024,
    "mlp_ratio": 16,
    "n_instructions": 2**16,
}


def text_problem(value: str, limit: int = MAX_STRING) -> str | None:
    """Why ``value`` cannot be stored as text in a model file, or None: longer than
    ``limit`` characters, or not valid Unicode (a lone surrogate, as a JSON escape or a
    path's undecodable byte makes, which UTF-8 cannot encode)."""
    if len(value) > limit:
        return f"is a string of {len(value)} characters (> {limit})"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"is not valid Unicode text (a lone surrogate at character {exc.start})"
    return None

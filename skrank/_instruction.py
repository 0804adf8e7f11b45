"""The instruction rows rank by when neither ``instruction`` nor an instruction column says.

A neutral request that names no property, so the targets alone define the
order. Its own module, importing nothing, because the command line's ``--help``
quotes it and must not import torch to do so.
"""

DEFAULT_INSTRUCTION = "Rank the images."

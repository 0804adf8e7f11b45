"""skrank: rank images by a plain-language instruction."""

__version__ = "0.1.0"


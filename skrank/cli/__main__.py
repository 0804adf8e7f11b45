"""``python -m skrank.cli``: the same as the ``skrank`` command."""

import sys

from skrank.cli import main

if __name__ == "__main__":
    sys.exit(main())

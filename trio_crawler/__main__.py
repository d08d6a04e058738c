"""``python -m trio_crawler``: the same as the ``trio-crawler`` command."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())

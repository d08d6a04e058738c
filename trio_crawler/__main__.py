"""``python -m trio_crawler``: the same as the ``trio-crawler`` command."""

from ._cli import cli

if __name__ == "__main__":
    cli()

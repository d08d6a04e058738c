"""The command line: arguments -> Settings -> trio.run. No crawl logic of its own.

``parser``    the flags; the setting flags are built from the fields of ``Settings``
``checks``    what is checked before anything is opened (start URLs, outputs)
``running``   one crawl under signals, progress and summary; exit codes
``commands``  ``crawl``, ``run``, ``demo``, ``worker``, ``status``, ``export``, ``spiders``

Exit codes: 0 the crawl ran to its end, to a limit it was given, or until the reader of its
standard output left (``| head``); 1 the crawl failed (``--fail-fast`` tripped, the store
failed, every start URL failed); 2 bad input (a flag, a URL or a start URL the rules refuse,
a spider, an output, a state file that is not a crawl or holds another one, a stored crawl
that ``status`` or ``export`` cannot read); 130 interrupted with Ctrl-C, 143 terminated with
SIGTERM (output flushed, statistics printed).
"""

from .commands import cli, main
from .parser import build_parser

__all__ = ["build_parser", "cli", "main"]

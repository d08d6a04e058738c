"""Built-in spiders. Importing this package registers them (each module's ``@register``).

To add one, write ``spiders/NAME.py`` with a ``@register``-ed :class:`~trio_crawler.Spider`
subclass and add it to the import below. What the spiders share (the ``ParseError`` item, the
checks of ``--arg`` values, the warning for a page that could not be fetched) lives in
``_shared.py``: no spider imports another.
"""

from . import cvedetails, generic, github, quotes

__all__ = ["cvedetails", "generic", "github", "quotes"]

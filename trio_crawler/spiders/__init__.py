"""Built-in spiders. Importing this package registers them (each module's ``@register``).

To add one, write ``spiders/NAME.py`` with a ``@register``-ed :class:`~trio_crawler.Spider`
subclass and add it to the import below.
"""

from . import cvedetails, generic, github, quotes

__all__ = ["cvedetails", "generic", "github", "quotes"]

"""Finding a spider: by name (the built-in spiders of :mod:`trio_crawler.spiders` and any
``@register``-ed class) or by reference (``path/to/file.py:Class``, ``package.module:Class``).

Above :mod:`trio_crawler.spiders` in the import graph: the built-in spiders import
:mod:`trio_crawler._spider` (for :func:`~trio_crawler._spider.register`), never this module.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from ._exceptions import SpiderNotFound
from ._spider import Spider, registry

__all__ = ["load_spider", "spider_names"]


def _load_builtins() -> None:
    from . import spiders  # noqa: F401  (importing registers them)


def spider_names() -> dict[str, type[Spider]]:
    _load_builtins()
    return dict(sorted(registry.items()))


def load_spider(ref: str) -> type[Spider]:
    """Resolve ``NAME``, ``path/to/file.py:Class`` or ``package.module:Class`` to a spider class."""
    _load_builtins()
    if ":" not in ref:
        try:
            return registry[ref]
        except KeyError:
            names = ", ".join(sorted(registry)) or "none"
            raise SpiderNotFound(f"unknown spider {ref!r} (known: {names})") from None
    target, _, attr = ref.rpartition(":")
    try:
        if target.endswith(".py") or "/" in target:
            path = Path(target)
            if not path.is_file():
                raise SpiderNotFound(f"no such spider file: {target}")
            mod_name = f"_trio_crawler_user_{path.stem}"
            spec = importlib.util.spec_from_file_location(mod_name, path)
            if spec is None or spec.loader is None:
                raise SpiderNotFound(f"cannot load {target}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except SpiderNotFound:
        raise
    except Exception as exc:  # user code failing at import: one line, not a traceback
        raise SpiderNotFound(f"cannot import {target}: {type(exc).__name__}: {exc}") from exc
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Spider)):
        raise SpiderNotFound(f"{ref}: {attr!r} is not a Spider subclass in {target}")
    return cls

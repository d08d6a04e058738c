"""The command line's flags, and the :class:`~trio_crawler.Settings` they make.

The setting flags are not written here: they are built from the fields of ``Settings``
(:func:`~trio_crawler._settings.setting_options`), each with its flags, metavar, choices,
range and help text, so the flags, the settings and ``help(Settings)`` cannot drift apart.
A number out of its range is refused while parsing, as one line naming the flag. The flags
written here are the command's own: outputs, state, display.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from .._exceptions import SettingsError
from .._options import Meaning, SettingOption, shown_default, value_problem
from .._settings import GROUPS, Settings, __version__, setting_options
from .._spider import Spider
from .._store.split import SPLITS
from .running import EXIT_USAGE

#: Bounds of the command's own numbers (not settings).
MAX_PROGRESS_INTERVAL = 3600.0
MAX_LEASE = 86_400.0
MAX_DEMO_PAGES = 1_000_000
MAX_TOP = 10_000


class Parser(argparse.ArgumentParser):
    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        words = sys.argv[1:] if args is None else args
        return super().parse_known_args(spell_bare_flags(words), namespace)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"trio-crawler: error: {message}\n")


def number(kind: type, low: float, high: float, *, above: bool = False) -> Callable[[str], Any]:
    """An argparse ``type`` for a number in a range (finite), with a one-line error."""
    meaning = Meaning("", low=low, high=high, above=above)
    option = SettingOption("", None, kind.__name__, False, (), meaning)
    return _converter(option)


def _converter(option: SettingOption) -> Callable[[str], Any]:
    whole = option.kind == "int"

    def convert(text: str) -> Any:
        try:
            value: Any = int(text) if whole else float(text)
        except ValueError:
            value = text
        problem = value_problem(option, value)
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return value

    return convert


def _help(option: SettingOption) -> str:
    text = option.meaning.help
    if option.kind in ("tuple", "pairs", "mapping"):
        text += "; repeatable"
    shown = shown_default(option)
    if shown is not None and option.kind not in ("bool", "tuple", "pairs", "mapping"):
        text += f" ({shown})"
    return text.replace("%", "%%")


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One group per :data:`~trio_crawler._settings.GROUPS` entry; one flag (or two, for a
    boolean that can be turned on and off) per field that has flags."""
    groups = {name: parser.add_argument_group(name) for name in GROUPS}
    for option in setting_options():
        m = option.meaning
        if not (m.flags or m.off_flags):
            continue
        group = groups[m.group]
        if option.kind == "bool":
            if m.flags:
                group.add_argument(
                    *m.flags,
                    action="store_true",
                    dest=option.name,
                    default=None,
                    help=_help(option),
                )
            if m.off_flags:
                group.add_argument(
                    *m.off_flags,
                    action="store_false",
                    dest=option.name,
                    default=None,
                    help=m.off_help.replace("%", "%%"),
                )
        elif option.kind in ("tuple", "pairs", "mapping"):
            group.add_argument(
                *m.flags, action="append", dest=option.name, metavar=m.metavar, help=_help(option)
            )
        else:
            extra: dict[str, Any] = {}
            if option.choices:
                extra["choices"] = option.choices
                if m.const is not None:
                    extra.update(nargs="?", const=m.const)
            elif option.kind in ("int", "float"):
                extra["type"] = _converter(option)
            group.add_argument(
                *m.flags, dest=option.name, metavar=m.metavar, help=_help(option), **extra
            )


def spell_bare_flags(argv: Sequence[str]) -> list[str]:
    """``argv`` with each flag whose value is optional (``--render [on|off|auto]``) spelled
    ``--render=on`` when the word after it is not one of its values: ``crawl --render URL``
    renders URL instead of reading URL as the flag's value (argparse would)."""
    optional = {
        flag: (option.choices, option.meaning.const)
        for option in setting_options()
        if option.choices and option.meaning.const is not None
        for flag in option.meaning.flags
    }
    out: list[str] = []
    for i, word in enumerate(argv):
        found = optional.get(word)
        following = argv[i + 1] if i + 1 < len(argv) else None
        if found is not None and (following is None or following not in found[0]):
            out.append(f"{word}={found[1]}")
        else:
            out.append(word)
    return out


def settings_from(
    args: argparse.Namespace, spider: Spider, stored: Mapping[str, Any] | None = None
) -> Settings:
    """The crawl's settings: the spider's ``custom_settings``, then ``stored`` values (a
    Redis crawl's, for ``worker``), then the flags given. A pair flag (``--auth``,
    ``--proxy-rule``) adds to the spider's pairs; any other flag replaces the value."""
    values: dict[str, Any] = dict(spider.custom_settings)
    by_name = {option.name: option for option in setting_options()}
    for name, value in (stored or {}).items():
        values[name] = from_json(by_name[name], value)
    for option in setting_options():
        raw = getattr(args, option.name, None)
        if raw is None:
            continue
        if option.kind == "mapping":
            values[option.name] = dict(_entries(option, raw, strip=True))
        elif option.kind == "pairs":
            values[option.name] = (*values.get(option.name, ()), *_entries(option, raw))
        elif option.kind == "tuple":
            values[option.name] = tuple(raw)
        else:
            values[option.name] = raw
    if getattr(args, "report", None):
        values["link_graph"] = True  # the report lists every page that links to a broken URL
    try:
        return Settings(**values)
    except TypeError as exc:
        raise SettingsError(str(exc)) from None


def from_json(option: SettingOption, value: Any) -> Any:
    """A setting's value as JSON gave it back (lists) in the field's own type (tuples)."""
    if option.kind == "tuple" and isinstance(value, list):
        return tuple(value)
    if option.kind == "pairs" and isinstance(value, list):
        return tuple(tuple(pair) for pair in value)
    return value


def _entries(option: SettingOption, raw: Sequence[str], *, strip: bool = False) -> list[Any]:
    """``NAME: VALUE`` / ``HOST=URL`` entries of a repeatable pair flag, split."""
    syntax = option.meaning.syntax or "NAME=VALUE"
    separator = next(c for c in syntax if c in "=:")
    flag = "/".join(option.meaning.flags)
    out = []
    for entry in raw:
        name, sep, value = entry.partition(separator)
        if not sep or not name.strip():
            raise SettingsError(f"{flag} takes {syntax}, not {entry!r}")
        out.append((name.strip(), value.strip()) if strip else (name, value))
    return out


# ------------------------------------------------------------------------------ the parser
def add_crawl_flags(p: argparse.ArgumentParser) -> None:
    """Every flag of a command that crawls: outputs and state, the settings, display."""
    out = p.add_argument_group("output")
    out.add_argument(
        "-o",
        "--output",
        action="append",
        metavar="FILE",
        help="write items to FILE (.jsonl, .csv, .db; '-' for stdout); repeatable",
    )
    out.add_argument(
        "--format",
        choices=["jsonl", "csv", "sqlite"],
        help="output format when the extension does not say",
    )
    out.add_argument("--stats-json", metavar="FILE", help="write the final statistics as JSON")
    out.add_argument(
        "--report",
        metavar="FILE",
        help="write the crawl's HTML report to FILE when it ends (also after Ctrl-C)",
    )
    out.add_argument(
        "--state",
        metavar="FILE",
        help="keep the crawl's state in this SQLite file; the same command resumes it",
    )
    out.add_argument(
        "--store",
        metavar="URL",
        help="keep the crawl in Redis (redis://[:PASSWORD@]HOST:PORT/DB), shared by workers",
    )
    out.add_argument("--crawl-id", metavar="NAME", help="the crawl's name in --store")
    out.add_argument(
        "--lease",
        type=number(float, 0, MAX_LEASE, above=True),
        metavar="SECONDS",
        help="a claimed URL returns to the frontier when its worker is silent this long (30)",
    )
    out.add_argument(
        "--processes",
        type=_process_count,
        default=1,
        metavar="N",
        help="fetch processes sharing the crawl (1): each worker has -c requests in flight, "
        "the first process (which also keeps the crawl's state) an eighth of that (all of "
        "it with --split hosts)",
    )
    out.add_argument(
        "--split",
        choices=SPLITS,
        default="shared",
        help="how --processes share the crawl: one frontier in the first process (shared), "
        "or each process its own hosts, found by a hash of the host (hosts: for broad "
        "crawls, every process fetches with all of -c; in memory only, no --max-pages)",
    )
    add_setting_flags(p)
    g = p.add_argument_group("display")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress, no summary")
    g.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more log output: -v adds what the crawl decides (INFO), -vv every request (DEBUG)",
    )
    g.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level, instead of -q/-v: DEBUG logs every request (WARNING)",
    )
    g.add_argument(
        "--log-json",
        action="store_true",
        help="standard error as JSON objects, one per line: log records, progress, summary",
    )
    g.add_argument(
        "--progress-interval",
        type=number(float, 0, MAX_PROGRESS_INTERVAL, above=True),
        default=10.0,
        metavar="SECONDS",
        help="seconds between progress lines when stderr is not a terminal (10)",
    )


def _process_count(text: str) -> int:
    from .._crawl.processes import MAX_PROCESSES

    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_PROCESSES:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_PROCESSES}")
    return value


def build_parser(spider: type[Spider] | None = None) -> argparse.ArgumentParser:
    """The whole command line. ``spider``: the class ``run SPIDER --help`` describes (its
    arguments and item fields)."""
    from .._report import add_report_parser
    from ..spiders.generic import GenericSpider

    parser = Parser(
        prog="trio-crawler",
        description="A polite, safe, fast web crawler built on Trio.",
        epilog="exit codes: 0 done, 1 crawl failed, 2 bad input, 130 interrupted (Ctrl-C), "
        "143 terminated (SIGTERM)",
    )
    parser.add_argument("--version", action="version", version=f"trio-crawler {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    p = sub.add_parser(
        "crawl",
        help="crawl from URLs, one record per page",
        description="Crawl from the given URLs with the generic spider: one record per page.",
        epilog=describe_spider(GenericSpider, "records"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("urls", nargs="+", metavar="URL")
    add_crawl_flags(p)
    p = sub.add_parser(
        "run",
        help="run a spider by name or path/to/file.py:Class",
        description="Run a registered spider, or one from your own module. "
        "`run SPIDER --help` lists the spider's arguments and items.",
        epilog=describe_spider(spider, "items") if spider is not None else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("spider", metavar="SPIDER", help="NAME, path/to/file.py:Class or module:Class")
    p.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="spider argument; repeatable",
    )
    p.add_argument(
        "--start-url",
        action="append",
        dest="start_urls",
        metavar="URL",
        help="override the spider's start URLs",
    )
    add_crawl_flags(p)
    sub.add_parser("spiders", help="list the built-in spiders")
    p = sub.add_parser(
        "demo",
        help="serve a demo site on loopback and crawl it",
        description="Serve the package's demo site on 127.0.0.1 and crawl it "
        "with politeness lifted for this local server.",
    )
    p.add_argument(
        "--pages",
        type=number(int, 1, MAX_DEMO_PAGES),
        default=2000,
        help="pages in the demo site (2000)",
    )
    add_crawl_flags(p)
    p = sub.add_parser(
        "worker",
        help="join a crawl kept in Redis (--store, --crawl-id) and work on it to its end",
        description="Join a crawl started with `crawl URL --store redis://... --crawl-id "
        "NAME`: its seeds, scope and spider come from the store.",
    )
    p.add_argument(
        "--spider",
        metavar="REF",
        help="where to load the crawl's spider from when it came from a file (path.py:Class)",
    )
    add_crawl_flags(p)
    _add_state_commands(sub)
    add_report_parser(sub)
    return parser


def _add_state_commands(sub: Any) -> None:
    """``status`` and ``export``: read a crawl kept with ``--state`` (or in Redis)."""
    p = sub.add_parser(
        "status",
        help="show where a crawl stored with --state stands",
        description="Print a stored crawl's pages done and queued, its items and top hosts, "
        "and whether it finished.",
    )
    p.add_argument("state", metavar="STATE_FILE")
    p.add_argument("--top", type=number(int, 0, MAX_TOP), default=10, help="hosts to list (10)")
    p.add_argument("--crawl-id", metavar="NAME", help="the crawl's name when STATE is redis://")
    p = sub.add_parser(
        "export",
        help="write the items of a crawl stored with --state",
        description="Write the items stored in a state file to JSON Lines, CSV or SQLite.",
    )
    p.add_argument("state", metavar="STATE_FILE")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="'-' for stdout")
    p.add_argument("--format", choices=["jsonl", "csv", "sqlite"])
    p.add_argument("--crawl-id", metavar="NAME", help="the crawl's name when STATE is redis://")


def describe_spider(cls: type[Spider], what: str) -> str:
    """The ``--help`` epilog of a spider: its ``--arg`` names and the fields of its items."""
    lines = []
    name = cls.name or cls.__name__
    if cls.args:
        lines.append(f"arguments of {name} (--arg NAME=VALUE):")
        width = max(len(arg) for arg in cls.args)
        lines += [f"  {arg:<{width}}  {text}" for arg, text in cls.args.items()]
    elif cls.name != "generic":
        lines.append(f"{name} takes no --arg.")
    if not cls.item_types:
        lines.append(f"{what}: not declared ({name} sets no item_types)")
        return "\n".join(lines)
    lines.append(f"{what} (the fields of each kind):")
    width = max(len(t.__name__) for t in cls.item_types)
    for item_type in cls.item_types:
        fields = ", ".join(item_fields(item_type)) or "(no declared fields)"
        lines += textwrap.wrap(
            fields,
            80,
            initial_indent=f"  {item_type.__name__:<{width}}  ",
            subsequent_indent=" " * (width + 4),
        )
    return "\n".join(lines)


def item_fields(cls: type) -> list[str]:
    """The field names of an item class: a dataclass's fields, else its annotations."""
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls)]
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        for name in getattr(klass, "__annotations__", {}):
            if not name.startswith("_") and name not in names:
                names.append(name)
    return names

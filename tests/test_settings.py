"""Settings as one source (issue 17): each field's meaning, range and flags live in its metadata;
``validate`` enforces the ranges, the CLI's setting flags are built from them. Pure: no sockets."""

from __future__ import annotations

import argparse
import dataclasses
import math
from typing import Any

import pytest

from trio_crawler import Settings, SettingsError
from trio_crawler._cli import build_parser
from trio_crawler._cli.parser import settings_from
from trio_crawler._options import SettingOption
from trio_crawler._settings import setting_options
from trio_crawler.spiders.generic import GenericSpider

BOUNDED = [o for o in setting_options() if o.meaning.low is not None or o.meaning.high is not None]
FLAGGED = [o for o in setting_options() if o.meaning.flags or o.meaning.off_flags]


def test_every_field_has_a_meaning() -> None:
    assert {o.name for o in setting_options()} == Settings.field_names()
    for option in setting_options():
        assert option.meaning.help, option.name
        assert option.meaning.group or not (option.meaning.flags or option.meaning.off_flags)


def test_every_number_is_bounded() -> None:
    numbers = [o.name for o in setting_options() if o.kind in ("int", "float")]
    assert numbers and sorted(o.name for o in BOUNDED) == sorted(numbers)
    assert all(o.meaning.high is not None for o in BOUNDED)


@pytest.mark.parametrize("option", BOUNDED, ids=[o.name for o in BOUNDED])
def test_ranges_are_enforced(option: SettingOption) -> None:
    m = option.meaning
    assert m.low is not None and m.high is not None
    whole = option.kind == "int"
    top: Any = int(m.high) if whole else m.high
    Settings(**{option.name: top})
    if not m.above:
        Settings(**{option.name: int(m.low) if whole else m.low})
    bad: list[Any] = [top + 1, m.low - 1, True, "1"]
    if m.above:
        bad.append(int(m.low) if whole else m.low)
    if not whole:
        bad += [math.inf, -math.inf, math.nan]
    else:
        bad.append(1.5)
    for value in bad:
        with pytest.raises(SettingsError) as caught:
            Settings(**{option.name: value})
        message = str(caught.value)
        assert message.startswith(f"{option.name} must be ") and "\n" not in message


def test_choices_come_from_the_annotation() -> None:
    choices = {o.name: o.choices for o in setting_options() if o.choices}
    assert choices == {
        "politeness_key": ("origin", "ip"),
        "scope": ("host", "domain", "any"),
        "order": ("breadth", "depth"),
        "render": ("on", "off", "auto"),
        "render_scope": ("site", "any"),
    }
    with pytest.raises(SettingsError, match="scope must be host, domain or any"):
        Settings(scope="everything")  # type: ignore[arg-type]


def _crawl_args(*flags: str) -> argparse.Namespace:
    return build_parser().parse_args(["crawl", "http://example.com/", *flags])


def _sample(option: SettingOption) -> tuple[list[str], Any]:
    """Flags that set ``option`` to something other than its default, and that value."""
    m = option.meaning
    if option.kind == "bool":
        if option.default is False or not m.off_flags:
            return [m.flags[0]], True
        return [m.off_flags[0]], False
    if option.choices:
        value = option.choices[-1]
        return [m.flags[-1], value], value
    if option.kind == "int":
        assert m.high is not None
        value = int(m.high)
        return [m.flags[-1], str(value)], value
    if option.kind == "float":
        assert m.high is not None
        return [m.flags[-1], "1.5"], 1.5
    if option.kind == "tuple":
        values = ("127.0.0.1:8080", "10.0.0.1:80")
        return [m.flags[-1], values[0], m.flags[-1], values[1]], values
    if option.kind == "pairs":
        return [m.flags[-1], "example.com=http://proxy:3128"], (
            ("example.com", "http://proxy:3128"),
        )
    if option.kind == "mapping":
        return [m.flags[-1], "X-Test: yes"], {"X-Test": "yes"}
    return [m.flags[-1], "value"], "value"


@pytest.mark.parametrize("option", FLAGGED, ids=[o.name for o in FLAGGED])
def test_each_setting_flag_sets_its_field(option: SettingOption) -> None:
    flags, value = _sample(option)
    if option.name == "credentials":
        flags, value = ["--auth", "example.com=user:pw"], (("example.com", "user:pw"),)
    if option.name in ("proxy",):
        flags, value = ["--proxy", "http://proxy:3128"], "http://proxy:3128"
    if option.name == "client_key":
        flags += ["--client-cert", "cert.pem"]
    settings = settings_from(_crawl_args(*flags), GenericSpider())
    assert getattr(settings, option.name) == value


def test_the_parser_has_a_flag_for_every_flagged_field_and_no_other_setting_flag() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    crawl = sub.choices["crawl"]  # type: ignore[index]
    dests = {a.dest for a in crawl._actions}
    flagged = {o.name for o in FLAGGED}
    assert flagged <= dests
    unflagged = Settings.field_names() - flagged
    assert not unflagged & dests


def test_a_flag_out_of_range_is_refused_while_parsing(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        _crawl_args("-c", "1000000000")
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        "trio-crawler: error: argument -c/--concurrency: must be a whole number from 1 to "
        "10,000, not 1000000000\n"
    )


def test_flags_win_over_the_spiders_and_stored_settings() -> None:
    class Slow(GenericSpider):
        custom_settings = {"per_host_delay": 3.0, "credentials": (("a.example", "u:p"),)}

    spider = Slow(start_urls=("http://example.com/",))
    stored = {"include_patterns": ["/docs/"], "per_host_delay": 2.0}
    settings = settings_from(_crawl_args("--auth", "b.example=v:q"), spider, stored)
    assert settings.per_host_delay == 2.0  # stored (a Redis crawl's) over the spider's
    assert settings.include_patterns == ("/docs/",)  # JSON lists back to tuples
    assert settings.credentials == (("a.example", "u:p"), ("b.example", "v:q"))  # pairs add
    settings = settings_from(_crawl_args("--delay", "0"), spider, stored)
    assert settings.per_host_delay == 0.0


def test_replace_and_unknown_fields() -> None:
    s = Settings().replace(concurrency=4)
    assert s.concurrency == 4
    with pytest.raises(SettingsError, match="unknown setting 'nope'"):
        s.replace(nope=1)
    assert dataclasses.fields(s)  # still a dataclass, frozen

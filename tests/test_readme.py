"""Every example in the README runs: Python blocks are executed, commands are parsed, and the
``crawl`` commands are run against a loopback site standing in for example.com."""

from __future__ import annotations

import dataclasses
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from trio_crawler import Settings
from trio_crawler._cli import build_parser
from trio_crawler.testing import open_site_server, site_from_links

README = Path(__file__).resolve().parent.parent / "README.md"
TEXT = README.read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, re.DOTALL)
COMMANDS = [
    line[2:].strip()
    for block in re.findall(r"```console\n(.*?)```", TEXT, re.DOTALL)
    for line in block.splitlines()
    if line.startswith("$ trio-crawler")
]


def test_readme_starts_with_the_two_commands() -> None:
    first_block = re.search(r"```console\n(.*?)```", TEXT, re.DOTALL)
    assert first_block is not None
    lines = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert lines == ["scripts/demo", "scripts/test"]
    assert TEXT.index(first_block.group(0)) < TEXT.index("## ")


@pytest.mark.parametrize(
    "block", PYTHON_BLOCKS, ids=[f"python-{i}" for i in range(len(PYTHON_BLOCKS))]
)
def test_python_examples_run(block: str, tmp_path: Path) -> None:
    # the example modules call trio.run themselves; a block without it only defines things
    script = tmp_path / "example.py"
    script.write_text(block)
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_commands_parse(command: str) -> None:
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert args.command


# the Redis commands need a redis-server: tests/test_redis.py runs that flow end to end
CRAWLS = [c for c in COMMANDS if c.startswith("trio-crawler crawl ") and "--store" not in c]


@pytest.mark.parametrize("command", CRAWLS)
async def test_crawl_commands_run(command: str, tmp_path: Path) -> None:
    site = site_from_links({"/": ["/a", "/logout"], "/a": ["/"], "/logout": []})
    async with open_site_server(site) as server:
        argv = shlex.split(command.replace("https://example.com", server.origin))[1:]
        # a proxy in an example stands for a local intercepting proxy we do not have here
        while "--proxy" in argv:
            i = argv.index("--proxy")
            del argv[i : i + 2]
        with trio.fail_after(60):
            result = await trio.run_process(
                [sys.executable, "-m", "trio_crawler", *argv, "--delay", "0", "-q"],
                cwd=tmp_path,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    assert result.returncode == 0, result.stderr.decode()


def test_every_setting_is_documented() -> None:
    missing = [f.name for f in dataclasses.fields(Settings) if f"`{f.name}`" not in TEXT]
    assert not missing, f"settings missing from the README: {missing}"


def _section(title: str) -> str:
    start = TEXT.index(f"## {title}\n")
    end = TEXT.find("\n## ", start + 1)
    return TEXT[start : end if end > 0 else None]


def test_every_flag_in_the_flags_table_exists() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    known = {
        flag
        for name in ("crawl", "run")
        for action in sub.choices[name]._actions  # type: ignore[index]
        for flag in action.option_strings
    }
    table = _section("The command line").split("| flag |", 1)[1].split("\n\n", 1)[0]
    flags = set(re.findall(r"`(--?[a-zA-Z][\w-]*)", table)) - {"-vv"}  # -v twice
    assert len(flags) > 30
    assert flags <= known, f"README flags the CLI does not have: {sorted(flags - known)}"


def test_exit_codes_match_the_cli() -> None:
    from trio_crawler._cli import running

    text = _section("The command line")
    for code in (
        running.EXIT_OK,
        running.EXIT_FAILED,
        running.EXIT_USAGE,
        running.EXIT_INTERRUPTED,
        running.EXIT_TERMINATED,
    ):
        assert f"`{code}`" in text


def test_testing_section_says_trio_mode_is_needed() -> None:
    section = _section("Testing your spider")
    assert "trio_mode = true" in section and "pytest-trio" in section

"""Tests for the output writers (``trio_crawler._export``): pure and synchronous, no sockets."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import decimal
import enum
import io
import json
import math
import os
import pathlib
import sqlite3
from typing import Any, NamedTuple, cast

import pytest

from trio_crawler._exceptions import FailureKind, SettingsError
from trio_crawler._export import WRITE_THRESHOLD, Exporter, check_target, open_exporter
from trio_crawler._export import sqlite as export_sqlite
from trio_crawler._records import item_type_name, quick_pickle, to_record

# --- item kinds ------------------------------------------------------------------------------


class Colour(enum.Enum):
    RED = "red"
    BLUE = 2


@dataclasses.dataclass
class Author:
    name: str
    born: datetime.date


@dataclasses.dataclass
class PageRecord:
    url: str
    author: Author
    tags: set[str]
    price: decimal.Decimal
    raw: bytes
    when: datetime.datetime
    colour: Colour
    pair: tuple[int, int]


class _FakeAttribute:
    def __init__(self, name: str) -> None:
        self.name = name


class AttrsLike:
    """Looks like an attrs class: the attribute list lives in ``__attrs_attrs__``."""

    __attrs_attrs__ = (_FakeAttribute("title"), _FakeAttribute("score"))

    def __init__(self, title: str, score: float) -> None:
        self.title = title
        self.score = score
        self.cache = "not an attribute"


class PydanticV2Like:
    def __init__(self, **data: Any) -> None:
        self._data = data
        self.calls: list[str] = []

    def model_dump(self, *, mode: str = "python") -> dict[str, Any]:
        self.calls.append(mode)
        return dict(self._data)


class PydanticV1Like:
    __fields__ = {"sku": None, "stock": None}

    def __init__(self, sku: str, stock: int) -> None:
        self.sku = sku
        self.stock = stock

    def dict(self) -> dict[str, Any]:
        return {"sku": self.sku, "stock": self.stock}


class Point(NamedTuple):
    x: int
    y: int


class PlainItem:
    def __init__(self) -> None:
        self.name = "plain"
        self.size = 3
        self._private = "hidden"


class SlotsItem:
    __slots__ = ("_secret", "label")

    def __init__(self) -> None:
        self.label = "slotted"
        self._secret = 1


class Opaque:
    """A nested object with its own str(): written as that string."""

    def __str__(self) -> str:
        return "opaque!"


class Bare:
    """A nested object with the default repr: written as its public attributes."""

    def __init__(self) -> None:
        self.a = 1


# --- to_record ---------------------------------------------------------------------------


def test_to_record_dict_converts_keys_and_values() -> None:
    when = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC)
    record = to_record(
        {
            1: "one",
            Colour.RED: "enum key",
            "when": when,
            "day": datetime.date(2024, 5, 1),
            "kind": FailureKind.TIMEOUT,
            "colour": Colour.BLUE,
            "price": decimal.Decimal("1.10"),
            "raw": b"caf\xc3\xa9 \xff",
            "tags": {"b", "a"},
            "pair": (1, 2),
            "nested": {"deep": [Point(1, 2), {3: None}]},
            "nan": math.nan,
            "inf": -math.inf,
            "ok": True,
        }
    )
    assert record == {
        "1": "one",
        "red": "enum key",
        "when": "2024-05-01T12:30:00+00:00",
        "day": "2024-05-01",
        "kind": "timeout",
        "colour": 2,
        "price": "1.10",
        "raw": "café \ufffd",
        "tags": ["a", "b"],
        "pair": [1, 2],
        "nested": {"deep": [{"x": 1, "y": 2}, {"3": None}]},
        "nan": None,
        "inf": None,
        "ok": True,
    }
    assert type(record["kind"]) is str
    json.dumps(record, allow_nan=False)  # plain JSON, nothing left for default=


def test_to_record_dataclass_is_shallow_safe_and_recursive() -> None:
    item = PageRecord(
        url="https://example.com/",
        author=Author("Ada", datetime.date(1815, 12, 10)),
        tags={"x"},
        price=decimal.Decimal("9.99"),
        raw=b"ok",
        when=datetime.datetime(2024, 1, 2, 3, 4, 5),
        colour=Colour.RED,
        pair=(3, 4),
    )
    assert to_record(item) == {
        "url": "https://example.com/",
        "author": {"name": "Ada", "born": "1815-12-10"},
        "tags": ["x"],
        "price": "9.99",
        "raw": "ok",
        "when": "2024-01-02T03:04:05",
        "colour": "red",
        "pair": [3, 4],
    }


def test_to_record_dataclass_with_uncopyable_value() -> None:
    # dataclasses.asdict would deep-copy the generator and fail; we only read the field.
    @dataclasses.dataclass
    class Holder:
        gen: Any

    record = to_record(Holder(gen=(i for i in range(3))))
    assert isinstance(record["gen"], str)


def test_to_record_attrs_like_uses_attribute_names() -> None:
    assert to_record(AttrsLike("t", 1.5)) == {"title": "t", "score": 1.5}


def test_to_record_real_attrs_class() -> None:
    attr = pytest.importorskip("attr")

    Quote = attr.make_class("Quote", ["text", "author"])
    assert to_record(Quote("hi", "me")) == {"text": "hi", "author": "me"}


def test_to_record_pydantic_v2_like_uses_json_mode() -> None:
    model = PydanticV2Like(name="widget", when=datetime.date(2020, 1, 1))
    assert to_record(model) == {"name": "widget", "when": "2020-01-01"}
    assert model.calls == ["json"]


def test_to_record_pydantic_v1_like() -> None:
    assert to_record(PydanticV1Like("A-1", 4)) == {"sku": "A-1", "stock": 4}


def test_to_record_named_tuple() -> None:
    assert to_record(Point(1, 2)) == {"x": 1, "y": 2}


def test_to_record_plain_objects_public_attributes_only() -> None:
    assert to_record(PlainItem()) == {"name": "plain", "size": 3}
    assert to_record(SlotsItem()) == {"label": "slotted"}


def test_to_record_scalars_are_wrapped() -> None:
    assert to_record("just text") == {"value": "just text"}
    assert to_record(42) == {"value": 42}
    assert to_record([1, (2, 3)]) == {"value": [1, [2, 3]]}
    assert to_record(Colour.RED) == {"value": "red"}
    assert to_record(pathlib.PurePosixPath("/a/b")) == {"value": "/a/b"}
    assert to_record(None) == {"value": None}


def test_to_record_nested_plain_objects() -> None:
    record = to_record({"opaque": Opaque(), "bare": Bare(), "cls": int})
    assert record == {"opaque": "opaque!", "bare": {"a": 1}, "cls": "<class 'int'>"}


def test_to_record_survives_cycles() -> None:
    loop: list[Any] = []
    loop.append(loop)
    record = to_record({"loop": loop})
    json.dumps(record)  # finite, serialisable


# --- item_type_name -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"a": 1}, "items"),
        ({"_type": "page", "url": "u"}, "page"),
        ({"_type": "Weird Name!; DROP TABLE x"}, "weird_name_drop_table_x"),
        ({"_type": 3}, "items"),
        ({"_type": "9lives"}, "t_9lives"),
        ({"_type": "!!!"}, "items"),
        (Author("a", datetime.date(2000, 1, 1)), "author"),
        (
            PageRecord(
                "u",
                Author("a", datetime.date(2000, 1, 1)),
                set(),
                decimal.Decimal(0),
                b"",
                datetime.datetime(2000, 1, 1),
                Colour.RED,
                (1, 2),
            ),
            "page_record",
        ),
        (AttrsLike("t", 1.0), "attrs_like"),
        (PydanticV2Like(), "pydantic_v2_like"),
        (Point(1, 2), "point"),
        (PlainItem(), "plain_item"),
        ("text", "items"),
        (12, "items"),
        ([1, 2], "items"),
    ],
)
def test_item_type_name(item: object, expected: str) -> None:
    assert item_type_name(item) == expected


def test_item_type_name_snake_cases_acronyms() -> None:
    class HTTPResponseItem:
        pass

    assert item_type_name(HTTPResponseItem()) == "http_response_item"


def test_item_type_name_is_kept_per_class_but_a_mapping_is_named_by_each_instance() -> None:
    """Class names are remembered (items are named on every page); a mapping class is not,
    since each of its instances names itself with its ``_type``."""

    class Row(dict[str, object]):
        pass

    author = Author("a", datetime.date(2000, 1, 1))
    assert [item_type_name(author) for _ in range(2)] == ["author", "author"]
    named = [Row(_type="first"), Row(_type="second"), Row()]
    assert [item_type_name(row) for row in named] == ["first", "second", "items"]


# --- helpers ----------------------------------------------------------------------------------


def _read_jsonl(path: pathlib.Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def _read_csv(path: pathlib.Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def _one_line_settings_error(excinfo: pytest.ExceptionInfo[SettingsError]) -> str:
    message = str(excinfo.value)
    assert message
    assert "\n" not in message
    return message


MIXED_ITEMS: list[object] = [
    {"url": "https://a/", "title": "Ünïcode ✓"},
    Author("Ada", datetime.date(1815, 12, 10)),
    AttrsLike("t", 2.5),
    PydanticV2Like(sku="x"),
    Point(1, 2),
    PlainItem(),
    "bare",
]


# --- JSON Lines -------------------------------------------------------------------------------


def test_jsonl_roundtrip(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "out.jsonl"
    exporter = open_exporter(str(path))
    assert (exporter.path, exporter.format) == (str(path), "jsonl")
    exporter.write_many(MIXED_ITEMS)
    exporter.close()
    assert _read_jsonl(path) == [to_record(item) for item in MIXED_ITEMS]
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    assert first_line == '{"url":"https://a/","title":"Ünïcode ✓"}'  # compact, not escaped


def test_jsonl_is_buffered_until_flush_and_offset_is_file_size(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "out.jsonl"
    exporter = open_exporter(path)
    exporter.write_many([{"n": i} for i in range(10)])
    assert path.stat().st_size == 0
    assert exporter.offset() == 0  # only records handed to the OS count
    exporter.flush()
    assert exporter.offset() == path.stat().st_size > 0
    exporter.write_many([{"n": "é"}])
    exporter.flush()
    assert exporter.offset() == path.stat().st_size  # bytes, not characters
    exporter.close()
    assert len(_read_jsonl(path)) == 11


def test_jsonl_large_batches_reach_disk_as_whole_lines(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "big.jsonl"
    exporter = open_exporter(path)
    blob = "x" * 1000
    count = 0
    while path.stat().st_size == 0:
        exporter.write_many([{"n": count, "blob": blob}])
        count += 1
        assert count * 1000 < WRITE_THRESHOLD * 2
    # Written without flush(): only complete lines are on disk.
    assert exporter.offset() == path.stat().st_size
    assert path.read_bytes().endswith(b"\n")
    assert len(_read_jsonl(path)) == count
    exporter.close()


def test_jsonl_json_extension_writes_json_lines(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "out.json"
    with open_exporter(path) as exporter:
        exporter.write_many([{"a": 1}, {"a": 2}])
    assert path.read_text() == '{"a":1}\n{"a":2}\n'


def test_jsonl_resume_truncates_half_written_line(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "out.jsonl"
    exporter = open_exporter(path)
    exporter.write_many([{"n": 1}, {"n": 2}])
    exporter.flush()
    checkpoint = exporter.offset()
    exporter.close()
    with path.open("ab") as f:  # a crash mid-write: records after the checkpoint, half a line
        f.write(b'{"n":3}\n{"n":4,"tru')

    exporter = open_exporter(path, resume_offset=checkpoint)
    assert exporter.offset() == checkpoint
    assert path.stat().st_size == checkpoint
    exporter.write_many([{"n": 3}])
    exporter.close()
    assert _read_jsonl(path) == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert exporter.offset() == path.stat().st_size


def test_resume_offset_zero_creates_or_empties(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "new.jsonl"
    with open_exporter(path, resume_offset=0) as exporter:
        exporter.write_many([{"a": 1}])
    assert _read_jsonl(path) == [{"a": 1}]
    open_exporter(path, resume_offset=0).close()
    assert path.read_bytes() == b""


def test_resume_offset_must_match_the_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"a":1}\n{"a":2}\n')
    with pytest.raises(SettingsError) as excinfo:
        open_exporter(path, resume_offset=100)
    assert "only 16 bytes" in _one_line_settings_error(excinfo)
    with pytest.raises(SettingsError) as excinfo:
        open_exporter(path, resume_offset=5)  # inside the first record
    assert "not the end of a record" in _one_line_settings_error(excinfo)
    with pytest.raises(SettingsError):
        open_exporter(tmp_path / "missing.jsonl", resume_offset=8)
    with pytest.raises(SettingsError):
        open_exporter(path, resume_offset=-1)
    assert path.read_bytes() == b'{"a":1}\n{"a":2}\n'  # untouched by the refusals


def test_none_resume_offset_overwrites(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text("old\n")
    open_exporter(path).close()
    assert path.read_bytes() == b""


def test_failed_write_leaves_no_partial_record(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "out.jsonl"
    exporter = open_exporter(path)
    exporter.write_many([{"n": 1}])
    exporter.flush()
    good = exporter.offset()

    sink = cast(Any, exporter)._sink
    real_file = sink._file

    class HalfThenFail:
        """A disk that takes half the data and then fills up."""

        def __init__(self) -> None:
            self.calls = 0

        def write(self, data: memoryview) -> int:
            self.calls += 1
            if self.calls == 1:
                return real_file.write(data[: len(data) // 2])  # type: ignore[no-any-return]
            raise OSError(28, "No space left on device")

        def __getattr__(self, name: str) -> Any:
            return getattr(real_file, name)

    sink._file = HalfThenFail()
    exporter.write_many([{"n": 2, "pad": "p" * 50}])
    with pytest.raises(OSError, match="No space"):
        exporter.flush()
    assert path.stat().st_size == good == exporter.offset()  # the half record was cut off
    sink._file = real_file
    exporter.write_many([{"n": 3}])
    exporter.close()  # the failed batch was kept and goes out now
    assert _read_jsonl(path) == [{"n": 1}, {"n": 2, "pad": "p" * 50}, {"n": 3}]
    assert exporter.offset() == path.stat().st_size


# --- CSV ----------------------------------------------------------------------------------------


def test_csv_roundtrip_nested_json_extra_and_missing(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "out.csv"
    exporter = open_exporter(path)
    assert exporter.format == "csv"
    exporter.write_many(
        [
            {"url": "u1", "meta": {"a": [1, 2]}, "tags": ["x", "y"], "ok": True, "n": 1.5},
            {"url": "u2", "ok": False, "new": "surprise", "more": {"k": None}},
        ]
    )
    exporter.write_many([Point(7, 8)])
    exporter.flush()
    assert exporter.offset() == path.stat().st_size
    exporter.close()
    rows = _read_csv(path)
    assert rows[0] == ["url", "meta", "tags", "ok", "n", "_extra"]
    assert rows[1] == ["u1", '{"a":[1,2]}', '["x","y"]', "true", "1.5", ""]
    assert rows[2][:5] == ["u2", "", "", "false", ""]
    assert json.loads(rows[2][5]) == {"new": "surprise", "more": {"k": None}}
    assert rows[3][:5] == ["", "", "", "", ""]
    assert json.loads(rows[3][5]) == {"x": 7, "y": 8}
    assert len(rows) == 4


def test_csv_mixed_item_kinds_and_newlines_in_values(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "out.csv"
    with open_exporter(path) as exporter:
        exporter.write_many([{"text": 'multi\nline, "quoted"'}, *MIXED_ITEMS])
    rows = _read_csv(path)
    assert rows[1] == ['multi\nline, "quoted"', ""]
    assert len(rows) == 2 + len(MIXED_ITEMS)
    assert json.loads(rows[2][1]) == {"url": "https://a/", "title": "Ünïcode ✓"}


def test_csv_user_extra_key_does_not_clash(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "out.csv"
    with open_exporter(path) as exporter:
        exporter.write_many([{"_extra": "mine"}, {"_extra": "again", "other": 1}])
    rows = _read_csv(path)
    assert rows == [["_extra", "_extra_"], ["mine", ""], ["again", '{"other":1}']]


def test_csv_resume_keeps_header_and_truncates(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "out.csv"
    exporter = open_exporter(path)
    exporter.write_many([{"a": 1, "b": 2}])
    exporter.flush()
    checkpoint = exporter.offset()
    exporter.close()
    with path.open("ab") as f:
        f.write(b'9,9,\n10,"half')

    exporter = open_exporter(path, resume_offset=checkpoint)
    exporter.write_many([{"b": 4, "a": 3, "c": 5}])  # column order comes from the file
    exporter.close()
    assert _read_csv(path) == [["a", "b", "_extra"], ["1", "2", ""], ["3", "4", '{"c":5}']]


def test_csv_explicit_format_on_any_name(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "data.txt"
    with open_exporter(path, format="CSV") as exporter:
        assert exporter.format == "csv"
        exporter.write_many([{"a": 1}])
    assert _read_csv(path) == [["a", "_extra"], ["1", ""]]


# --- SQLite -----------------------------------------------------------------------------------


def _rows(path: pathlib.Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _columns(path: pathlib.Path, table: str) -> list[str]:
    return [row[1] for row in _rows(path, f'PRAGMA table_info("{table}")')]


def test_sqlite_table_per_type_and_alter_table(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "out.db"
    exporter = open_exporter(path)
    assert exporter.format == "sqlite"
    exporter.write_many(
        [
            {"_type": "page", "url": "u1", "status": 200},
            Author("Ada", datetime.date(1815, 12, 10)),
            {"plain": 1},
        ]
    )
    exporter.flush()
    assert exporter.offset() == 3
    exporter.write_many(
        [
            {"_type": "page", "url": "u2", "status": 404, "error": "gone", "ok": False},
            {"_type": "page", "url": "u3", "meta": {"a": [1]}, "big": 2**70, "f": 0.5},
        ]
    )
    exporter.close()
    assert exporter.offset() == 5

    tables = {row[0] for row in _rows(path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"page", "author", "items"} <= tables
    assert _columns(path, "page") == [
        "_rowid",
        "_type",
        "url",
        "status",
        "error",
        "ok",
        "meta",
        "big",
        "f",
    ]
    page = _rows(path, "SELECT url, status, error, ok, meta, big, f FROM page ORDER BY _rowid")
    assert page == [
        ("u1", 200, None, None, None, None, None),
        ("u2", 404, "gone", 0, None, None, None),
        ("u3", None, None, None, '{"a":[1]}', str(2**70), 0.5),
    ]
    assert _rows(path, "SELECT _rowid, name, born FROM author") == [(2, "Ada", "1815-12-10")]
    assert _rows(path, "SELECT _rowid, plain FROM items") == [(3, 1)]


def test_sqlite_hostile_names_are_quoted(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "out.sqlite"
    nasty = 'x"); DROP TABLE page; --'
    with open_exporter(path) as exporter:
        exporter.write_many(
            [
                {"_type": "sqlite_master", nasty: 1, "Name": "a", "name": "b", "_rowid": 7, "": 0},
                {"_type": "page", "select": "kw", "a\x00b": "nul"},
            ]
        )
    columns = _columns(path, "item_sqlite_master")
    assert nasty in columns
    assert {"Name", "name_2", "_rowid_2", "_"} <= set(columns)
    row = _rows(
        path,
        f'SELECT "{nasty.replace(chr(34), chr(34) * 2)}", name_2, _rowid_2 FROM item_sqlite_master',
    )
    assert row == [(1, "b", 7)]
    assert _rows(path, 'SELECT "select", ab FROM page') == [("kw", "nul")]


def test_sqlite_uncommitted_rows_are_not_counted(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "out.db"
    exporter = open_exporter(path)
    exporter.write_many([{"a": 1}])
    assert exporter.offset() == 0
    assert _rows(path, "SELECT name FROM sqlite_master") == []  # nothing visible yet
    exporter.flush()
    assert exporter.offset() == 1
    assert _rows(path, "SELECT a FROM items") == [(1,)]
    exporter.close()


def test_sqlite_failed_batch_leaves_nothing(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.db"
    exporter = open_exporter(path)
    exporter.write_many([{"a": 1}])
    real = export_sqlite._sqlite_value

    def fussy(value: Any) -> Any:
        if value == "boom":
            raise RuntimeError("boom")
        return real(value)

    monkeypatch.setattr(export_sqlite, "_sqlite_value", fussy)
    with pytest.raises(RuntimeError):
        exporter.write_many([{"a": 2, "new_column": 1}, {"a": "boom"}])
    exporter.write_many([{"a": 3, "later": 1}])
    exporter.close()
    assert exporter.offset() == 2
    assert _columns(path, "items") == ["_rowid", "a", "later"]
    assert _rows(path, "SELECT _rowid, a, later FROM items") == [(1, 1, None), (2, 3, 1)]


def test_sqlite_resume_drops_rows_past_checkpoint(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "out.db"
    exporter = open_exporter(path)
    exporter.write_many([{"_type": "page", "n": 1}, {"_type": "quote", "n": 2}])
    exporter.flush()
    checkpoint = exporter.offset()
    # Committed after the engine's checkpoint: the crash came before the engine saved it.
    exporter.write_many([{"_type": "page", "n": 3}, {"_type": "quote", "n": 4}])
    exporter.close()

    exporter = open_exporter(path, resume_offset=checkpoint)
    assert exporter.offset() == checkpoint
    exporter.write_many([{"_type": "quote", "n": 3, "extra": "x"}])
    exporter.close()
    assert exporter.offset() == 3
    assert _rows(path, "SELECT _rowid, n FROM page") == [(1, 1)]
    assert _rows(path, "SELECT _rowid, n, extra FROM quote") == [(2, 2, None), (3, 3, "x")]


def test_sqlite_resume_leaves_foreign_tables_alone(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "out.db"
    conn = sqlite3.connect(path)
    conn.execute('CREATE TABLE "Page" (id INTEGER, note TEXT)')
    conn.execute("INSERT INTO Page VALUES (1, 'mine')")
    conn.commit()
    conn.close()
    with open_exporter(path, resume_offset=0) as exporter:
        exporter.write_many([{"_type": "page", "url": "u"}])
    assert _rows(path, "SELECT * FROM Page") == [(1, "mine")]
    assert _rows(path, "SELECT _rowid, _type, url FROM page_") == [(1, "page", "u")]


def test_sqlite_none_resume_offset_overwrites(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "out.db"
    with open_exporter(path) as exporter:
        exporter.write_many([{"a": 1}])
    with open_exporter(path) as exporter:
        exporter.write_many([{"b": 2}])
    assert _rows(path, "SELECT * FROM items") == [(1, 2)]


def test_sqlite_refuses_a_file_that_is_not_a_database(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("this is not a database, it is a text file of some length" * 20)
    with pytest.raises(SettingsError) as excinfo:
        open_exporter(path, resume_offset=0)
    assert "notes.db" in _one_line_settings_error(excinfo)


# --- stdout ---------------------------------------------------------------------------------


def test_stdout_target(capsys: pytest.CaptureFixture[str]) -> None:
    exporter = open_exporter("-")
    assert (exporter.path, exporter.format) == ("-", "jsonl")
    print("before")
    exporter.write_many([{"a": 1}, {"b": "é"}])
    assert capsys.readouterr().out == 'before\n{"a":1}\n{"b":"é"}\n'  # no flush() needed
    assert exporter.offset() == len('{"a":1}\n{"b":"é"}\n'.encode())
    exporter.close()
    exporter.close()
    print("stdout still open")
    assert capsys.readouterr().out == "stdout still open\n"


def test_stdout_csv_and_sqlite(capsys: pytest.CaptureFixture[str]) -> None:
    with open_exporter("-", format="csv") as exporter:
        exporter.write_many([{"a": 1}])
    assert capsys.readouterr().out == "a,_extra\n1,\n"
    with pytest.raises(SettingsError):
        open_exporter("-", format="sqlite")


def test_stdout_ignores_resume_offset(capsys: pytest.CaptureFixture[str]) -> None:
    exporter = open_exporter("-", resume_offset=1234)
    exporter.write_many(["x"])
    exporter.close()
    assert capsys.readouterr().out == '{"value":"x"}\n'


# --- formats and errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.jsonl", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("a.json", "jsonl"),
        ("A.JSONL", "jsonl"),
        ("a.csv", "csv"),
        ("a.db", "sqlite"),
        ("a.sqlite", "sqlite"),
        ("a.sqlite3", "sqlite"),
    ],
)
def test_format_from_extension(tmp_path: pathlib.Path, name: str, fmt: str) -> None:
    exporter = open_exporter(tmp_path / name)
    assert exporter.format == fmt
    exporter.close()


@pytest.mark.parametrize(
    ("given", "fmt"),
    [
        ("jsonl", "jsonl"),
        ("json", "jsonl"),
        ("ndjson", "jsonl"),
        ("csv", "csv"),
        ("sqlite", "sqlite"),
        ("sqlite3", "sqlite"),
    ],
)
def test_explicit_format_beats_extension(tmp_path: pathlib.Path, given: str, fmt: str) -> None:
    exporter = open_exporter(tmp_path / "out.csv", format=given)
    assert exporter.format == fmt
    exporter.close()


@pytest.mark.parametrize("name", ["out.txt", "out", "out.jsonl.gz", "archive.json.bak"])
def test_unknown_extension(tmp_path: pathlib.Path, name: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        open_exporter(tmp_path / name)
    assert name in _one_line_settings_error(excinfo)
    assert not (tmp_path / name).exists()


def test_unknown_format_name(tmp_path: pathlib.Path) -> None:
    with pytest.raises(SettingsError) as excinfo:
        open_exporter(tmp_path / "out.jsonl", format="xml")
    assert "xml" in _one_line_settings_error(excinfo)


@pytest.mark.parametrize("ext", ["jsonl", "csv", "db"])
def test_missing_directory(tmp_path: pathlib.Path, ext: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        open_exporter(tmp_path / "no" / "such" / f"out.{ext}")
    assert "out." + ext in _one_line_settings_error(excinfo)


@pytest.mark.parametrize("ext", ["jsonl", "csv", "db"])
@pytest.mark.parametrize("resume_offset", [None, 0])
def test_path_is_a_directory(tmp_path: pathlib.Path, ext: str, resume_offset: int | None) -> None:
    target = tmp_path / f"dir.{ext}"
    target.mkdir()
    with pytest.raises(SettingsError) as excinfo:
        open_exporter(target, resume_offset=resume_offset)
    _one_line_settings_error(excinfo)
    assert target.is_dir()


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere"
)
@pytest.mark.parametrize("ext", ["jsonl", "csv", "db"])
def test_permission_denied(tmp_path: pathlib.Path, ext: str) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(SettingsError) as excinfo:
            open_exporter(locked / f"out.{ext}")
        _one_line_settings_error(excinfo)
    finally:
        locked.chmod(0o700)


# --- lifecycle --------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["jsonl", "csv", "db"])
def test_close_is_idempotent_and_final(tmp_path: pathlib.Path, ext: str) -> None:
    exporter = open_exporter(tmp_path / f"out.{ext}")
    exporter.write_many([{"a": 1}])
    exporter.write_many([])
    exporter.close()
    offset = exporter.offset()
    exporter.close()
    exporter.flush()
    assert exporter.offset() == offset > 0
    with pytest.raises(ValueError, match="closed"):
        exporter.write_many([{"a": 2}])


def test_several_exporters_at_once(tmp_path: pathlib.Path) -> None:
    exporters: list[Exporter] = [
        open_exporter(tmp_path / "a.jsonl"),
        open_exporter(tmp_path / "b.jsonl"),
        open_exporter(tmp_path / "c.csv"),
        open_exporter(tmp_path / "d.db"),
        open_exporter(tmp_path / "e.db"),
    ]
    for i in range(3):
        for n, exporter in enumerate(exporters):
            exporter.write_many([{"i": i, "n": n}])
            exporter.flush()
    for exporter in exporters:
        exporter.close()
    assert _read_jsonl(tmp_path / "a.jsonl") == [{"i": i, "n": 0} for i in range(3)]
    assert _read_jsonl(tmp_path / "b.jsonl") == [{"i": i, "n": 1} for i in range(3)]
    assert len(_read_csv(tmp_path / "c.csv")) == 4
    assert _rows(tmp_path / "e.db", "SELECT i, n FROM items") == [(0, 4), (1, 4), (2, 4)]


def test_many_records_roundtrip(tmp_path: pathlib.Path) -> None:
    records = [{"n": i, "s": f"row {i}", "f": i / 3} for i in range(5000)]
    for ext in ("jsonl", "csv", "db"):
        path = tmp_path / f"many.{ext}"
        with open_exporter(path) as exporter:
            for start in range(0, len(records), 97):
                exporter.write_many(records[start : start + 97])
        if ext == "jsonl":
            assert _read_jsonl(path) == records
        elif ext == "csv":
            assert len(_read_csv(path)) == 5001
        else:
            assert _rows(path, "SELECT count(*), max(_rowid) FROM items") == [(5000, 5000)]


def test_text_buffer_helper_is_not_needed_for_stdout_without_buffer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain = io.StringIO()  # a stdout replacement with no .buffer
    monkeypatch.setattr("sys.stdout", plain)
    exporter = open_exporter("-")
    exporter.write_many([{"a": "é"}])
    exporter.close()
    assert plain.getvalue() == '{"a":"é"}\n'


# --- checking before opening; a reader that goes away ---------------------------------------


def test_check_target_never_touches_the_file(tmp_path: pathlib.Path) -> None:
    keep = tmp_path / "keep.jsonl"
    keep.write_text("kept\n")
    assert check_target(keep) == "jsonl"
    assert check_target(tmp_path / "new.csv") == "csv"
    assert check_target("-") == "jsonl"
    assert keep.read_text() == "kept\n"
    assert not (tmp_path / "new.csv").exists()
    (tmp_path / "dir.db").mkdir()
    for bad, fmt in [
        (tmp_path / "missing" / "x.jsonl", None),
        (tmp_path / "dir.db", None),
        (tmp_path / "x.weird", None),
        ("-", "sqlite"),
        (keep, "nonsense"),
    ]:
        with pytest.raises(SettingsError) as excinfo:
            check_target(bad, format=fmt)
        _one_line_settings_error(excinfo)
    assert keep.read_text() == "kept\n"


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere"
)
def test_check_target_read_only(tmp_path: pathlib.Path) -> None:
    keep = tmp_path / "keep.jsonl"
    keep.write_text("kept\n")
    keep.chmod(0o400)
    with pytest.raises(SettingsError, match=r"keep\.jsonl"):
        check_target(keep)


def _stdout_on_a_pipe_without_reader(monkeypatch: pytest.MonkeyPatch) -> int:
    """sys.stdout on a real pipe whose reader has gone (as after ``| head -1``)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    stream = io.TextIOWrapper(io.FileIO(write_end, "w"), encoding="utf-8")
    monkeypatch.setattr("sys.stdout", stream)
    return write_end


def test_stdout_reader_gone_calls_on_closed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fd = _stdout_on_a_pipe_without_reader(monkeypatch)
    calls: list[None] = []
    exporter = open_exporter("-", on_closed=lambda: calls.append(None))
    exporter.write_many([{"a": 1}])  # EPIPE: no exception, the callback instead
    exporter.write_many([{"a": 2}])
    exporter.close()
    assert calls == [None]
    assert os.path.samefile(f"/proc/self/fd/{fd}", os.devnull)  # later writes go nowhere
    print("after the reader left")  # and plain prints do not fail either


def test_stdout_reader_gone_without_callback_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    _stdout_on_a_pipe_without_reader(monkeypatch)
    exporter = open_exporter("-")
    with pytest.raises(BrokenPipeError):
        exporter.write_many([{"a": 1}])
    with pytest.raises(BrokenPipeError):
        exporter.write_many([{"a": 2}])


# --------------------------------------------------------------------------- quick_pickle
@quick_pickle
@dataclasses.dataclass(frozen=True, slots=True)
class _One:
    only: int


@quick_pickle
@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Many:
    a: int
    b: tuple[str, ...] = ()
    c: _One | None = None


def test_quick_pickle_round_trips_and_reads_the_dataclass_modules_own_state() -> None:
    import pickle

    from trio_crawler._spider import Request
    from trio_crawler._store.base import NewRequest

    values: list[object] = [
        _One(7),
        _Many(a=1, b=("x", "y"), c=_One(2)),
        NewRequest(Request(url="http://a.test/", depth=2, redirects=("http://b.test/",)), 5, "k"),
    ]
    for value in values:
        assert pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL)) == value
    # the dataclass module's own __getstate__ gives a list of the fields' values
    fresh = object.__new__(_Many)
    fresh.__setstate__([3, ("z",), None])  # type: ignore[attr-defined]
    assert fresh == _Many(a=3, b=("z",))

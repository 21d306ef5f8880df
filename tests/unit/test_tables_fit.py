"""render.Fitted: a table whose cells wrap only between words, or blocks of "COLUMN: value"
lines when the width can't hold each column's longest word; never a value cut with "…"."""

from __future__ import annotations

import io

import pytest

from qgactl.render import Terminal, fields_table, rows_table

VOLUME = "\\\\?\\Volume{4c1b1b4a-5f2e-4a3b-9d8c-7e6f5a4b3c2e}\\"
ERROR = "agent unavailable: QEMU guest agent is not connected (hint: wait for the guest to boot)"
ROWS = [("web-01", "ok", None), ("db-primary-frankfurt", "failed", ERROR), ("vol", "ok", VOLUME)]


def render(table: object, width: int) -> str:
    out = io.StringIO()
    console = Terminal("table", stdout=out)._console(out)
    console.width = width
    console.print(table)
    return out.getvalue()


def words_whole(text: str) -> bool:
    lines = text.splitlines()
    return all(
        any(word in line for line in lines)
        for row in ROWS
        for value in row
        if value
        for word in value.split()
    )


@pytest.mark.parametrize("width", [200, 120])
def test_a_table_that_fits_in_full_or_between_words_stays_a_table(width: int) -> None:
    text = render(rows_table(["TARGET", "STATUS", "ERROR"], ROWS), width)
    assert "TARGET" in text and "TARGET:" not in text
    assert words_whole(text) and "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    if width == 120:  # the error wraps between its words, in its column
        assert ERROR not in text and "connected" in text


def test_a_table_too_narrow_for_its_longest_words_becomes_blocks() -> None:
    text = render(rows_table(["TARGET", "STATUS", "ERROR"], ROWS), 60)
    assert "TARGET: db-primary-frankfurt\nSTATUS: failed\n" in text
    assert f"ERROR: {VOLUME}\n" in text
    assert words_whole(text) and "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 60


def test_a_value_wider_than_the_terminal_folds_and_loses_nothing() -> None:
    long = "x" * 50 + "y" * 50
    text = render(fields_table([("Serial", long)]), 40)
    assert "".join(text.split()).endswith("Serial:" + long)
    text = render(rows_table(["TARGET", "STATUS", "ERROR"], ROWS), 40)
    assert "".join(text.split()).endswith("ERROR:" + VOLUME) and "…" not in text


def test_a_multi_line_value_stays_in_line_in_a_block() -> None:
    text = render(rows_table(["NAME", "ADDRESSES"], [("eth0", ("10.0.0.1/8", VOLUME))]), 30)
    assert "ADDRESSES: 10.0.0.1/8\n" in text

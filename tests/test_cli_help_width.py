"""Help text at 80 columns (issue 23 item 10): every flag name of every command is in `--help`
whole, and every word of generate's, grid's and prompt's option help — rich may wrap or fold a
long word but never cut it with '…'."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from kekong.cli import app


def _commands(command, path: tuple[str, ...] = ()) -> list:
    found = [(path, command)] if path else []
    if hasattr(command, "commands"):  # a group (typer's own click)
        for name, sub in command.commands.items():
            found += _commands(sub, (*path, name))
    return found


COMMANDS = _commands(typer.main.get_command(app))
WORDS_CHECKED = {"generate", "grid", "prompt"}  # the others' help words are their owners' to shorten


def _flat(text: str) -> str:
    return re.sub(r"[\s│╭╮╰╯─]+", "", text)


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_at_80_columns_cuts_nothing(path, command):
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    shown = _flat(result.output)
    for param in command.params:
        for name in param.opts:
            assert _flat(name) in shown, f"{' '.join(path)}: flag {name} is cut"
        for word in (getattr(param, "help", None) or "").split() if path[0] in WORDS_CHECKED else ():
            assert _flat(word) in shown, f"{' '.join(path)} {param.opts[0] if param.opts else param.name}: {word!r}"


def test_there_are_commands_to_check():
    assert {"generate", "detect", "serve"} <= {p[0] for p, _ in COMMANDS}

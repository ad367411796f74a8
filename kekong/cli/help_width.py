"""Help that cuts nothing at 80 columns. typer's rich help tables shrink every column of a wide
option list, and rich cuts what cannot wrap — flag names (`--checkpoint-ev…`) and long words
(`face,denoising_strengt…`) — with '…'. Here the flag columns keep their
width (no_wrap), the type and help columns wrap, and
every column folds what is too long instead of cutting it."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from typer import rich_utils


class _Table(rich_utils.Table):
    def add_row(self, *cells: Any, **options: Any) -> None:
        for cell in cells:
            if isinstance(cell, Text):
                cell.overflow = "fold"
        super().add_row(*cells, **options)
        for index, column in enumerate(self.columns):
            column.overflow = "fold"
            column.no_wrap = index < len(self.columns) - 2  # the flag columns; types and help may wrap


def keep_help_whole() -> None:
    """Make typer's help tables fold rather than cut (idempotent)."""
    rich_utils.Table = _Table  # type: ignore[misc]

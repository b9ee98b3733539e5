"""Terminal tables that never cut what a user has to type.

rich ends a cell that does not fit with "…" by default; here keys and names stay whole (on
a narrow terminal the arguments become one paragraph each) and other cells wrap.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Column, Table
from rich.text import Text

ARGUMENT_HEADERS = ("Argument", "Type", "Default", "Description")
# Types and defaults wider than this wrap at their spaces ("tuple[float, float, float]").
VALUE_COLUMN_WIDTH = 16
MIN_DESCRIPTION_WIDTH = 28
DESCRIPTION_INDENT = 4


def listing_table(*headers: str, title: str | None = None) -> Table:
    """A table whose first column holds names (never wrapped); the other cells wrap, and a
    word too long for its column is folded onto the next line, not cut."""
    columns = [Column(h, no_wrap=i == 0, overflow="fold") for i, h in enumerate(headers)]
    return Table(*columns, title=title, title_justify="left")


class ArgumentTable:
    """Rows of (key, type, default, description): a table where the terminal has room for
    every key on one line and a readable description, else one paragraph per argument
    (``key: type = default`` over the indented description)."""

    def __init__(self, title: str, rows: list[tuple[str, ...]]) -> None:
        self.title = title  # rich markup, as a Table title is
        self.rows = rows

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        key_width = widest(ARGUMENT_HEADERS[0], [row[0] for row in self.rows])
        type_width, default_width = (
            value_column_width(ARGUMENT_HEADERS[i], [row[i] for row in self.rows]) for i in (1, 2)
        )
        # Four columns take 13 cells of borders and padding: "┃ a ┃ b ┃ c ┃ d ┃".
        room = options.max_width - 13 - key_width - type_width - default_width
        if room >= MIN_DESCRIPTION_WIDTH:
            yield self.table(type_width, default_width)
        else:
            yield from self.paragraphs(console, options.max_width)

    def table(self, type_width: int, default_width: int) -> Table:
        # Only the description column may shrink: the key keeps its width and the fixed-width
        # type and default columns wrap inside it.
        table = Table(
            Column(ARGUMENT_HEADERS[0], no_wrap=True),
            Column(ARGUMENT_HEADERS[1], width=type_width, overflow="fold"),
            Column(ARGUMENT_HEADERS[2], width=default_width, overflow="fold"),
            Column(ARGUMENT_HEADERS[3], overflow="fold"),
            title=self.title,
            title_justify="left",
        )
        for row in self.rows:
            table.add_row(*(Text(cell) for cell in row))
        return table

    def paragraphs(self, console: Console, width: int) -> RenderResult:
        yield Text.from_markup(self.title, style="table.title")
        indent = " " * DESCRIPTION_INDENT
        for key, type_name, default, description in self.rows:
            yield Text.assemble((key, "bold"), f": {type_name} = {default}")
            # Indented by hand: rich's Padding would pad every line with trailing spaces.
            for line in Text(description).wrap(console, max(width - len(indent), 1)):
                line.rstrip()
                yield Text(indent) + line


def widest(header: str, cells: list[str]) -> int:
    return max(cell_len(text) for text in [header, *cells])


def value_column_width(header: str, cells: list[str]) -> int:
    """Up to VALUE_COLUMN_WIDTH, but never narrower than the header or a cell's longest word
    (so nothing has to be folded mid-word)."""
    longest_word = max((cell_len(word) for cell in cells for word in cell.split()), default=0)
    return max(min(widest(header, cells), VALUE_COLUMN_WIDTH), longest_word, cell_len(header))

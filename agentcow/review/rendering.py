"""A ChangeSet for people: a Rich dashboard on a terminal, plain text anywhere else.

Rows are written one line each as they come (no table is measured as a whole), so a diff of
tens of thousands of rows streams; a ``limit`` shortens inserts and updates, never deletes:
a reviewer must see every row the commit removes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import IO, TYPE_CHECKING, Any, Protocol

from rich.console import COLOR_SYSTEMS, Console
from rich.style import Style
from rich.text import Text

from agentcow.review.encoding import value_text

if TYPE_CHECKING:
    from agentcow.review.diff import ChangeSet, RowDiff


class Judgement(Protocol):
    """What validation or a policy found: per row, and reasons that block the whole set."""

    def row_findings(self, row: RowDiff) -> Sequence[str] | None:
        """The row's failures: empty when it passes, None when nothing judged it (then no
        PASS/FAIL badge is shown)."""
        ...

    @property
    def blocking_reasons(self) -> Sequence[str]:
        """Reasons that block the commit beyond the rows' own (checks, limits)."""
        ...


#: A piece of a line and its Rich style ('' for none).
Segment = tuple[str, str]

_STYLE = {"INSERT": "green", "UPDATE": "yellow", "DELETE": "red"}
_SIGN = {"INSERT": "+", "UPDATE": "~", "DELETE": "-"}


def render(
    changes: ChangeSet,
    console: Console,
    *,
    judgement: Judgement | None = None,
    limit: int | None = None,
) -> None:
    """Writes the header, the counts per table, every row (inserts and updates beyond
    ``limit`` per table summarised, deletes always listed), then the SAFE or BLOCKED
    banner: BLOCKED when the judgement fails a row or gives blocking reasons."""
    console.print(
        Text.assemble(
            ("Session ", "bold"),
            (str(changes.session_id), "bold cyan"),
            f"  schema {changes.schema}",
            f"  table {changes.table}" if changes.table else "",
            "  operations " + (", ".join(map(str, changes.operation_ids)))
            if changes.operation_ids is not None
            else "  all operations",
        )
    )
    console.print(Text(f"fingerprint {changes.fingerprint}", style="dim"))
    totals = changes.summary
    console.print(
        Text.assemble(
            (f"{totals['INSERT']} insert(s)", _STYLE["INSERT"]),
            ", ",
            (f"{totals['UPDATE']} update(s)", _STYLE["UPDATE"]),
            ", ",
            (f"{totals['DELETE']} delete(s)", _STYLE["DELETE"]),
        )
    )
    failures: list[str] = list(judgement.blocking_reasons) if judgement else []
    lines = _Lines(console)
    for table, rows in changes.by_table().items():
        counts = {kind: sum(1 for r in rows if r.diff_type == kind) for kind in _SIGN}
        console.print()
        console.print(
            Text.assemble(
                (table, "bold"),
                "  ",
                *_joined((f"{_SIGN[kind]}{n}", _STYLE[kind]) for kind, n in counts.items() if n),
            )
        )
        shown = {kind: 0 for kind in _SIGN}
        for row in rows:
            kind = row.diff_type.value
            if limit is not None and kind != "DELETE" and shown[kind] >= limit:
                continue
            shown[kind] += 1
            findings = judgement.row_findings(row) if judgement else None
            if findings:
                failures.extend(f"{table} {_key(row)}: {f}" for f in findings)
            lines.write(_line(row, findings))
        for kind, n in counts.items():
            if shown[kind] < n:
                console.print(
                    Text(f"  … {n - shown[kind]} more {kind.lower()}(s) of {table}", "dim")
                )
    console.print()
    if failures:
        console.print(
            Text(" BLOCKED ", style="bold white on red"), Text(f" {len(failures)} finding(s)")
        )
        for reason in failures:
            console.print(Text(f"  {reason}", style="red"))
    else:
        console.print(Text(" SAFE ", style="bold black on green"), Text(" nothing blocks a commit"))


def _joined(parts: Iterable[tuple[str, str]]) -> list[Any]:
    out: list[Any] = []
    for part in parts:
        if out:
            out.append(" ")
        out.append(part)
    return out


def _key(row: RowDiff) -> str:
    return ", ".join(f"{c}={_shown(v)}" for c, v in row.pk.items()) or "(no key)"


def _shown(value: Any) -> str:
    return "NULL" if value is None else value_text(value)


def _line(row: RowDiff, findings: Sequence[str] | None) -> list[Segment]:
    kind = row.diff_type.value
    colour = _STYLE[kind]
    parts: list[Segment] = [(f"  {_SIGN[kind]} ", colour)]
    if findings is not None:
        parts.append(("FAIL " if findings else "PASS ", "bold red" if findings else "bold green"))
    parts.append((_key(row), colour))
    if kind == "UPDATE":
        old = row.old or {}
        new = row.new or {}
        for column in row.changed_columns():
            parts += [
                (f"  {column}: ", ""),
                (_shown(old.get(column)), "red"),
                (" → ", ""),
                (_shown(new.get(column)), "green"),
            ]
    else:
        values = (row.new if kind == "INSERT" else row.old) or {}
        rest = ", ".join(f"{c}={_shown(v)}" for c, v in values.items() if c not in row.pk)
        if rest:
            parts.append((f"  {rest}", "dim" if kind == "DELETE" else ""))
    parts += [(f"\n      {finding}", "red") for finding in findings or ()]
    return parts


class _Lines:
    """Writes row lines straight to the console's file: a Rich ``print`` per line costs
    about a millisecond, too slow for the tens of thousands of rows a session can hold.
    Styles are rendered once each, as the console would (none when it has no colours)."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._styled = console.is_terminal and not console.no_color
        self._styles: dict[str, Style] = {}
        self._colours = COLOR_SYSTEMS.get(console.color_system or "")

    def write(self, parts: Sequence[Segment]) -> None:
        if not self._styled:
            self._console.file.write("".join(text for text, _ in parts) + "\n")
            return
        out = []
        for text, name in parts:
            if not name:
                out.append(text)
                continue
            style = self._styles.get(name)
            if style is None:
                style = self._styles[name] = Style.parse(name)
            out.append(style.render(text, color_system=self._colours))
        self._console.file.write("".join(out) + "\n")


def terminal_console(file: IO[str] | None = None) -> Console:
    """Colours on a terminal, plain text elsewhere (Rich's detection)."""
    return Console(file=file, highlight=False, soft_wrap=True)

"""Printing the results: a rich table when ``rich`` is installed, plain text otherwise."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.explain import IndexCheck, Plan
from benchmarks.operations import OPS_LEGEND
from benchmarks.regimes import REGIMES_LEGEND
from benchmarks.setup import BATCH, COW
from benchmarks.timing import Result

try:
    from rich.console import Console
    from rich.table import Table
except ImportError:  # pragma: no cover - rich is a dev dependency
    Console = None  # type: ignore[assignment,misc]
    Table = None  # type: ignore[assignment,misc]

HEADERS = (
    "case",
    "unit",
    "plain median",
    "plain min",
    "COW median",
    "COW min",
    "ratio",
    "target",
    "verdict",
)
MIN_WIDTH = 150
LEGEND = f"""\
ratio = COW median / plain median (times per unit); every case alternates plain and COW rounds.
1    SELECT * FROM t WHERE id = $1, one round trip per read, keys alternating between rows the
     session updated and rows it did not touch.
2    In a session holding {BATCH} updated + {BATCH} inserted rows: a = SELECT * FROM t fetched to
     the client (COW returns {BATCH} more rows), b = SELECT count(*), sum(amount) FROM t,
     analyzed after the session was made; c = b in a fresh session of the same size made after
     the last ANALYZE and planned in it (the statistics do not know it: a session that just
     began); d = b in the analyzed session, the statement first prepared and run outside any
     session on the same connection (PostgreSQL keeps that plan). a, b: planned in the session.
3    The same without a session.
4, 5 One UPDATE ... WHERE id BETWEEN x AND x+{BATCH - 1} / INSERT ... SELECT generate_series /
     (5b) DELETE ... WHERE id BETWEEN x AND x+{BATCH - 1}, timed inside a transaction that is
     rolled back; fresh key ranges every round.
6    COW: commit_cow_session of a fresh session holding {BATCH} updated + {BATCH} inserted rows;
     plain: the same UPDATE + INSERT made directly, in one transaction.
7    As 4, 5, 5b without a session: writes through the view's INSTEAD OF trigger (informational).
{OPS_LEGEND}
{REGIMES_LEGEND}"""

_STYLE = {"PASS": "green", "MISS": "bold red", "info": "dim"}


@dataclass(frozen=True)
class Report:
    server: str
    settings: str
    results: Sequence[Result]
    plans: Sequence[Plan]
    index_check: IndexCheck
    elapsed: float


def fmt_seconds(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.1f}x"


def _row(result: Result) -> tuple[str, ...]:
    plain = result.plain
    return (
        result.name,
        result.unit,
        "-" if plain is None else fmt_seconds(plain.median),
        "-" if plain is None else fmt_seconds(plain.min),
        fmt_seconds(result.cow.median),
        fmt_seconds(result.cow.min),
        fmt_ratio(result.ratio),
        "-" if result.target is None else f"<= {result.target:g}",
        result.verdict,
    )


def _plain_table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(HEADERS, *rows, strict=True)]
    lines = []
    for i, row in enumerate([HEADERS, *rows]):
        cells = [
            cell.ljust(width) if col == 0 else cell.rjust(width)
            for col, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells))
        if i == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _summary(report: Report) -> list[str]:
    judged = [r for r in report.results if r.target is not None]
    missed = [r.name.split(".")[0] for r in judged if r.verdict == "MISS"]
    check = report.index_check
    return [
        f"EXPLAIN point read uses indexes: {'yes' if check.ok else 'no'} "
        f"({check.base_index} on {COW}_base: {'yes' if check.base_used else 'no'}, "
        f"{check.changes_index} on {COW}_changes: {'yes' if check.changes_used else 'no'})",
        f"targets met: {len(judged) - len(missed)}/{len(judged)}"
        + (f" (MISS: {', '.join(missed)})" if missed else ""),
        f"total time: {report.elapsed:.1f} s",
    ]


def print_report(report: Report) -> None:
    rows = [_row(result) for result in report.results]
    if Console is None or Table is None:
        print(report.server)
        print(report.settings)
        for plan in report.plans:
            print(f"\nEXPLAIN (ANALYZE, BUFFERS) {plan.sql}   -- {plan.title}\n{plan.text}")
        print()
        print(_plain_table(rows))
        print(LEGEND)
        for line in _summary(report):
            print(line)
        return
    # Wide enough for the table even when the output is a pipe (rich assumes 80 columns).
    console = Console(highlight=False, width=max(Console().width, MIN_WIDTH))
    console.print(report.server, style="bold")
    console.print(report.settings)
    for plan in report.plans:
        console.print(f"\nEXPLAIN (ANALYZE, BUFFERS) {plan.sql}   -- {plan.title}", style="bold")
        console.print(plan.text, markup=False)
    table = Table(title="COW vs plain")
    for i, header in enumerate(HEADERS):
        table.add_column(header, justify="left" if i == 0 else "right", no_wrap=True)
    for result, row in zip(report.results, rows, strict=True):
        table.add_row(*row[:-1], f"[{_STYLE[result.verdict]}]{row[-1]}[/]")
    console.print()
    console.print(table)
    console.print(LEGEND, markup=False)
    for line in _summary(report):
        console.print(line, markup=False)

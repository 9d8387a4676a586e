"""Where the SQL templates and migrations are: inside the wheel, or beside the package in a
source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _find(folder: str) -> Path:
    for candidate in (_PACKAGE / folder, _PACKAGE.parent / folder):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"agentcow: cannot find its {folder}/ folder near {_PACKAGE}")


def templates_dir() -> Path:
    return _find("sql")


def migrations_dir() -> Path:
    return _find("migrations")

"""Installs or upgrades the kit schema from the versioned scripts in ``migrations/``.

Like a PostgreSQL extension: ``agentcow--X.sql`` installs version X, ``agentcow--X--Y.sql``
upgrades X to Y. Deploying runs whatever steps lead from the installed version to
:data:`KIT_VERSION`, in one transaction, under an advisory lock.
"""

from __future__ import annotations

import re
from pathlib import Path

from agentcow.catalog import kit_version
from agentcow.errors import KitVersionError
from agentcow.executor import Executor
from agentcow.resources import migrations_dir
from agentcow.script import run_atomically
from agentcow.templates import render
from agentcow.versions import KIT_VERSION

_INSTALL = re.compile(r"^agentcow--(\d+\.\d+\.\d+)\.sql$")
_UPGRADE = re.compile(r"^agentcow--(\d+\.\d+\.\d+)--(\d+\.\d+\.\d+)\.sql$")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def migration_plan(installed: str | None, target: str = KIT_VERSION) -> list[Path]:
    """The scripts to run, in order; empty when ``installed`` is already ``target``."""
    folder = migrations_dir()
    installs = {m[1]: folder / m[0] for p in folder.iterdir() if (m := _INSTALL.match(p.name))}
    upgrades = {
        m[1]: (m[2], folder / m[0]) for p in folder.iterdir() if (m := _UPGRADE.match(p.name))
    }
    if installed is not None and _version(installed) > _version(target):
        raise KitVersionError(
            f"the database has agentcow kit {installed}, newer than this package's {target}; "
            "upgrade the agentcow package"
        )
    steps: list[Path] = []
    current = installed
    if current is None:
        candidates = [v for v in installs if _version(v) <= _version(target)]
        if not candidates:
            raise KitVersionError(f"no install script for kit {target} in {folder}")
        current = max(candidates, key=_version)
        steps.append(installs[current])
    while current != target:
        if current not in upgrades:
            raise KitVersionError(f"no upgrade path from kit {current} to {target} in {folder}")
        current, script = upgrades[current]
        steps.append(script)
    return steps


async def deploy_cow_functions(executor: Executor) -> None:
    """Install the kit (schema ``agentcow``) or upgrade it in place; safe to call every start.

    Needs no superuser: the role needs CREATE on the database. Tables enabled under an older
    kit are then brought up to date by their owner with :func:`upgrade_cow_tables`.
    """
    installed = await kit_version(executor)
    steps = migration_plan(installed)
    if not steps:
        return
    statements = [
        render("deploy_guard.sql", installed=installed),
        *(step.read_text() for step in steps),
    ]
    await run_atomically(executor, statements)

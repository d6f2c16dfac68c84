"""The command line stays thin: it reaches the store only through jobd's operator functions.

The CLI imports nothing from ``jobd.store`` or SQLAlchemy (so it handles no
SQLAlchemy error and builds no SQL), and starting it loads no database
code at all: ``jobd --help`` must not pay for SQLAlchemy.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CLI = Path(__file__).resolve().parent.parent / "cli"
FORBIDDEN = ("sqlalchemy", "jobd.store")


def imported_modules(source: str) -> list[str]:
    """Every module a Python file imports, at any depth (function bodies and TYPE_CHECKING blocks too)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return found


def is_forbidden(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in FORBIDDEN)


def test_the_scan_sees_imports_anywhere_in_a_file() -> None:
    source = "import os\ndef f():\n    from jobd.store import open_store\n    import sqlalchemy as sa\nfrom jobd import store\n"
    assert sorted(module for module in imported_modules(source) if is_forbidden(module)) == [
        "jobd.store", "jobd.store", "jobd.store.open_store", "sqlalchemy",
    ]


def test_no_cli_module_imports_the_store_or_sqlalchemy() -> None:
    offenders = {
        path.name: [module for module in imported_modules(path.read_text(encoding="utf-8")) if is_forbidden(module)]
        for path in sorted(CLI.glob("*.py"))
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_starting_the_cli_loads_no_database_code() -> None:
    probe = (
        "import sys\n"
        "from jobd.cli.app import app\n"
        "try:\n"
        "    app(['--help'])\n"
        "except SystemExit as done:\n"
        "    assert done.code == 0, done.code\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'sqlalchemy' or name.startswith('jobd.store')))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "jobd —" in result.stdout  # the help was printed
    assert result.stdout.strip().splitlines()[-1] == "[]"

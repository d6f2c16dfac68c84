"""Every TOML example in README.md and docs/*.md is one `jobd check` accepts.

The docs once told operators to write keys the validator rejects. Each
```toml block is loaded by the same code `jobd check` and `jobd start` run:
a config fragment as a jobd.toml, a block of `[entries.*]` as a schedule
file (with the daemons it names defined). Task imports are not part of the
check: the examples name an application's own modules.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from jobd.config import load_config, load_schedule

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
TOML_BLOCK = re.compile(r"^```toml\n(.*?)^```", re.S | re.M)


def _examples() -> list[tuple[str, str]]:
    found = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for match in TOML_BLOCK.finditer(text):
            line = text[: match.start()].count("\n") + 1
            found.append((f"{document.relative_to(REPO)}:{line}", match.group(1)))
    return found


EXAMPLES = _examples()


def test_the_docs_have_toml_examples_to_check() -> None:
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize("example", [text for _where, text in EXAMPLES], ids=[where for where, _text in EXAMPLES])
def test_every_toml_example_in_the_docs_is_accepted(example: str, tmp_path: Path) -> None:
    document = tomllib.loads(example)  # valid TOML first of all
    if "entries" in document:
        daemons = sorted({entry["daemon"] for entry in document["entries"].values()})
        config = tmp_path / "jobd.toml"
        config.write_text("".join(f"[daemons.{name}]\n" for name in daemons))
        (tmp_path / "schedules").mkdir()
        (tmp_path / "schedules" / "example.toml").write_text(example)
        assert set(load_schedule(load_config(config))) == set(document["entries"])
        return
    config = tmp_path / "jobd.toml"
    config.write_text(example)
    (tmp_path / "tenants" / "migrations").mkdir(parents=True)
    load_config(config)

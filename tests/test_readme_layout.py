"""The README's layout table matches the tree (issue #15): every top-level directory of the project has its
row, every row names a directory that exists, and every path or module a row mentions is there."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CELL_PATH = re.compile(r"`([^`\s]+)`")


def _layout_rows() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            rows.append((cells[0].strip("`"), cells[1]))
    return rows


def _top_level_directories() -> set[str]:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return {path.split("/", 1)[0] + "/" for path in tracked.splitlines() if "/" in path and not path.startswith(".")}


def test_every_top_level_directory_has_its_row_and_every_row_exists() -> None:
    rows = _layout_rows()
    named = {path for path, _ in rows}
    assert len(rows) > 10
    mentioned = {token for _, job in rows for token in CELL_PATH.findall(job)}
    assert sorted(_top_level_directories() - named - mentioned) == []
    assert sorted(path for path in named if not (ROOT / path).exists()) == []


def test_every_path_a_row_mentions_is_in_the_tree() -> None:
    missing = []
    checked = 0
    for path, job in _layout_rows():
        for token in CELL_PATH.findall(job):
            token = token.rstrip(",.;:")
            if token.endswith(".py") or "/" in token:
                checked += 1
                candidates = [ROOT / token, ROOT / path / token]
                if not any(candidate.exists() for candidate in candidates):
                    missing.append(f"{path}: {token}")
    assert checked > 8
    assert missing == []

"""The self-study edition: one notebook per topic for Colab and lone learners.

Built from an instructor notebook and its nbgrader release: the release's
stubs stay, each solution follows folded under "Show solution", hidden tests
become checks the learner can run, and sentences about hidden tests go (there
are none here). The test cells keep their nbgrader metadata, so that nbgrader's
Validate button runs them and tells the truth: it fails while a stub is unsolved.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import tomllib

from . import markers


def course_settings(course: Path) -> dict:
    """``[tool.alexnet_course]`` from pyproject.toml: the repository address lives only there."""
    with open(course / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["alexnet_course"]


def colab_url(settings: dict, notebook_name: str) -> str:
    repo = settings["repository"].removeprefix("https://github.com/").rstrip("/")
    return f"https://colab.research.google.com/github/{repo}/blob/{settings['branch']}/notebooks/{notebook_name}"


def setup_cell_source(settings: dict) -> str:
    url = f"git+{settings['repository']}@{settings['branch']}"
    return f'''# Self-study set-up. On Colab, install the course package when it is missing;
# torch and numpy are never reinstalled (the package asks only for lower bounds).
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("alexnet_utils") is None:
    if os.path.exists("/content"):  # Colab
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "{url}"], check=True)
    else:
        raise ModuleNotFoundError("alexnet_utils is not installed: run `pip install -e .` in the course folder")

import torch

if not torch.cuda.is_available():
    print("No GPU found: experiments run on the CPU, sized by the run profile (ALEXNET_PROFILE). "
          "On Colab, Runtime > Change runtime type > T4 GPU gives the full-size runs.")'''


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _flags(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


HEADER_NOTE = ("*Self-study edition: try each exercise, run the checks below it, and open "
               "\"Show solution\" only when you are stuck. Every check is visible here, the graded "
               "edition's hidden tests included; in JupyterLab with nbgrader, the Validate button runs them all.*")
HIDDEN_TESTS = re.compile(r"\bhidden[ -]tests?\b", re.IGNORECASE)
SENTENCE_END = re.compile(r"(?<=[.!?])(\s+)")


def without_hidden_test_sentences(text: str) -> str:
    """``text`` without the sentences that speak of hidden tests (true of the graded edition only)."""
    if not HIDDEN_TESTS.search(text):
        return text
    paragraphs = re.split(r"(\n\s*\n)", text)
    kept = []
    for i, para in enumerate(paragraphs):
        if i % 2 or not HIDDEN_TESTS.search(para):
            kept.append(para)
            continue
        parts = SENTENCE_END.split(para)  # sentence, gap, sentence, gap, ...
        pieces = [(parts[j], parts[j + 1] if j + 1 < len(parts) else "") for j in range(0, len(parts), 2)]
        kept.append("".join(s + gap for s, gap in pieces if not HIDDEN_TESTS.search(s)).rstrip())
    return re.sub(r"\n{3,}", "\n\n", "".join(kept)).strip("\n")


def _clean(cell, grading: dict | None = None):
    """A copy without outputs; nbgrader metadata as in the source (``grading``), without checksums."""
    cell = nbformat.from_dict(dict(cell))
    meta = dict(grading if grading is not None else cell.metadata.get("nbgrader", {}))
    cell.metadata.pop("nbgrader", None)
    if meta:
        meta.pop("checksum", None)
        cell.metadata["nbgrader"] = meta
    if cell.cell_type == "code":
        cell.outputs, cell.execution_count = [], None
    return cell


def _folded(source: str, language: str) -> nbformat.NotebookNode:
    body = markers.strip(source, markers.SOLUTION).strip("\n")
    fence = f"```{language}\n{body}\n```" if language else body
    return nbformat.v4.new_markdown_cell(
        f"<details><summary><b>Show solution</b></summary>\n\n{fence}\n\n</details>")


def build(source_nb: Path, release_nb: Path, course: Path) -> nbformat.NotebookNode:
    """The self-study notebook for one source notebook and its release."""
    settings = course_settings(course)
    src = nbformat.read(source_nb, as_version=4)
    rel = nbformat.read(release_nb, as_version=4)
    stubs = {_grade_id(c): c for c in rel.cells if _grade_id(c)}
    cells = [
        nbformat.v4.new_markdown_cell(
            f'<a href="{colab_url(settings, source_nb.name)}" target="_parent">'
            f'<img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>\n\n'
            + HEADER_NOTE),
        nbformat.v4.new_code_cell(setup_cell_source(settings)),
    ]
    for cell in src.cells:
        flags = _flags(cell)
        if flags.get("solution"):
            stub = stubs.get(_grade_id(cell))
            if stub is None:
                raise ValueError(f"{release_nb} has no cell {_grade_id(cell)!r}: regenerate the release first")
            cells.append(_clean(stub, grading=flags))
            cells.append(_folded(cell.source, "python" if cell.cell_type == "code" else ""))
        elif flags.get("grade") and cell.cell_type == "code":
            checks = _clean(cell)
            checks.source = markers.strip(cell.source, markers.HIDDEN)
            cells.append(checks)
        else:
            cell = _clean(cell)
            if cell.cell_type == "markdown":
                cell.source = without_hidden_test_sentences(cell.source)
            cells.append(cell)
    nb = nbformat.v4.new_notebook(cells=cells, metadata=dict(src.metadata))
    nb.metadata["colab"] = {"provenance": []}
    nb.metadata["accelerator"] = "GPU"
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
    return nb


def write(source_nb: Path, release_nb: Path, course: Path) -> Path:
    out = course / "notebooks" / source_nb.name
    out.parent.mkdir(exist_ok=True)
    nbformat.write(build(source_nb, release_nb, course), out)
    return out

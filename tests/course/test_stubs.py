"""Code stubs say which task to complete: nbgrader_config.py's TaskStubs, in the release as committed."""

import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from alexnet_utils.course import markers, stubs

from .conftest import ROOT, source_notebooks

SOURCES = source_notebooks()
MESSAGE = re.compile(re.escape(stubs.STUB_CALL) + r'"([^"]+)"\)')


def _solution(source, grade_id):
    return new_code_cell(source, metadata={"nbgrader": {
        "grade": False, "grade_id": grade_id, "locked": False, "schema_version": 3, "solution": True,
        "task": False}})


def _generate(*cells):
    nb = new_notebook(cells=list(cells), metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                  "display_name": "Python 3"}})
    out, _ = stubs.TaskStubs().preprocess(nb, {})
    return [c.source for c in out.cells]


def test_a_stub_names_the_task_above_and_the_function_it_sits_in():
    sources = _generate(
        new_markdown_cell("**Task 1.** Write `area`."),
        _solution('def area(w, h):\n    """w times h."""\n    ### BEGIN SOLUTION\n    return w * h\n'
                  '    ### END SOLUTION', "area"),
        new_markdown_cell("Some words, then **Task 2b.** Build the model."),
        _solution("class Net:\n    def __init__(self):\n        ### BEGIN SOLUTION\n        self.x = 1\n"
                  "        ### END SOLUTION\n\n    def forward(self, x):\n        ### BEGIN SOLUTION\n"
                  "        return x\n        ### END SOLUTION", "net"),
        _solution("### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION\nprint(answer)", "answer"),
        _solution("answer = 42", "whole"),
    )
    assert sources[1] == ('def area(w, h):\n    """w times h."""\n    # YOUR CODE HERE\n'
                          '    raise NotImplementedError("Task 1: complete area (replace this line with your code)")')
    assert MESSAGE.findall(sources[3]) == ["Task 2b: complete Net.__init__ (replace this line with your code)",
                                           "Task 2b: complete Net.forward (replace this line with your code)"]
    assert MESSAGE.findall(sources[4]) == ["Task 2b: replace this line with your code"]
    assert sources[4].endswith("\nprint(answer)") and "42" not in sources[4]
    assert MESSAGE.findall(sources[5]) == ["Task 2b: replace this line with your code"]


def test_without_a_task_heading_the_stub_names_the_function_or_says_where_to_look():
    sources = _generate(_solution("def f():\n    ### BEGIN SOLUTION\n    pass\n    ### END SOLUTION", "f"),
                        _solution("### BEGIN SOLUTION\nx = 1\n### END SOLUTION", "x"))
    assert MESSAGE.findall(sources[0]) == ["complete f (replace this line with your code)"]
    assert MESSAGE.findall(sources[1]) == ["replace this line with your solution to the task above"]


def test_a_stub_raises_its_message():
    (source,) = _generate(_solution("def f():\n    ### BEGIN SOLUTION\n    pass\n    ### END SOLUTION", "f"))
    namespace = {}
    exec(source, namespace)
    with pytest.raises(NotImplementedError, match=r"^complete f \(replace this line with your code\)$"):
        namespace["f"]()


@pytest.mark.parametrize("nb_path", SOURCES, ids=lambda p: p.parent.name)
def test_every_stub_of_the_release_names_its_function(nb_path):
    """The committed release was generated with TaskStubs: each stub names the function it sits in."""
    source = {c.metadata["nbgrader"]["grade_id"]: c for c in nbformat.read(nb_path, as_version=4).cells
              if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"}
    release = nbformat.read(ROOT / "release" / nb_path.parent.name / nb_path.name, as_version=4)
    seen = 0
    for cell in release.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid not in source:
            continue
        messages = MESSAGE.findall(cell.source)
        regions = [r for r in markers.regions(source[gid].source) if r[0] == markers.SOLUTION]
        assert len(messages) == max(1, len(regions)), f"{gid}: stubs {messages} for {len(regions)} solution regions"
        lines = source[gid].source.splitlines()
        for message, (_, first, _) in zip(messages, regions, strict=False):
            indent = len(lines[first]) - len(lines[first].lstrip())
            name = stubs.enclosing_name(lines[:first - 1], indent)
            if name:
                assert f"complete {name} " in message, f"{gid}: the stub says {message!r}, not which function"
        seen += len(messages)
    assert seen, f"{nb_path.name}: no stub in the release"
    assert "raise NotImplementedError()" not in (ROOT / "release" / nb_path.parent.name / nb_path.name).read_text(), \
        "a bare stub is left: regenerate the release (make release)"

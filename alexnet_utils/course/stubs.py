"""Code stubs that say which task to complete.

nbgrader replaces every ``### BEGIN SOLUTION`` region with one fixed stub,
``raise NotImplementedError()``, so a student who runs a cell too early reads a
bare ``NotImplementedError:``. ``TaskStubs`` (nbgrader_config.py puts it in
``generate_assignment`` in place of nbgrader's ``ClearSolutions``) writes instead

    # YOUR CODE HERE
    raise NotImplementedError("Task 1: complete conv_output_size (replace this line with your code)")

naming the task from the last ``**Task N.**`` in the markdown above the cell and
the function (``Class.method``) the region sits in, whichever of the two exists.
"""

from __future__ import annotations

import json
import re

from nbgrader.preprocessors import ClearSolutions

STUB_CALL = "raise NotImplementedError("  # how every Python stub starts, whatever it names
TASK = re.compile(r"\*\*(Task\s+[^*]*?)\.?\*\*")
DEF = re.compile(r"^(\s*)(?:async\s+)?def\s+(\w+)")
CLASS = re.compile(r"^(\s*)class\s+(\w+)")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def enclosing_name(lines: list[str], indent: int) -> str | None:
    """``func`` or ``Class.method`` that a region indented by ``indent`` after ``lines`` belongs to."""
    for i in range(len(lines) - 1, -1, -1):
        found = DEF.match(lines[i])
        if found and len(found.group(1)) < indent:
            name, level = found.group(2), len(found.group(1))
            for line in reversed(lines[:i]):
                owner = CLASS.match(line)
                if owner and len(owner.group(1)) < level:
                    return f"{owner.group(2)}.{name}"
                if line.strip() and _indent(line) < level and not owner:
                    break
            return name
        if lines[i].strip() and _indent(lines[i]) < indent and not lines[i].lstrip().startswith(("#", "@")):
            break  # left the block the region is in without meeting a def
    return None


def stub_message(task: str | None, function: str | None) -> str:
    """What the stub's NotImplementedError says."""
    if task and function:
        return f"{task}: complete {function} (replace this line with your code)"
    if function:
        return f"complete {function} (replace this line with your code)"
    if task:
        return f"{task}: replace this line with your code"
    return "replace this line with your solution to the task above"


def python_stub(task: str | None, function: str | None) -> str:
    return f"# YOUR CODE HERE\n{STUB_CALL}{json.dumps(stub_message(task, function), ensure_ascii=False)})"


class TaskStubs(ClearSolutions):
    """nbgrader's ClearSolutions, with Python stubs that name the task and the function to complete."""

    def preprocess(self, nb, resources):
        self._task = None
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type == "markdown":
            tasks = TASK.findall(cell.source)
            if tasks:
                self._task = " ".join(tasks[-1].split())
        whole = (cell.cell_type == "code" and resources.get("language") == "python"
                 and cell.get("metadata", {}).get("nbgrader", {}).get("solution")
                 and self.begin_solution_delimeter not in cell.source)
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        if whole:  # a solution cell without a region: the whole cell is the stub
            cell.source = python_stub(self._task, None)
        return cell, resources

    def _replace_solution_region(self, cell, language: str) -> bool:
        if cell.cell_type != "code" or language != "python":
            return super()._replace_solution_region(cell, language)
        lines = cell.source.split("\n")
        new_lines, in_solution, replaced = [], False, False
        for line in lines:
            if self.begin_solution_delimeter in line:
                if in_solution:
                    raise RuntimeError("encountered nested begin solution statements")
                in_solution = replaced = True
                indent = re.match(r"\s*", line).group(0)
                stub = python_stub(self._task, enclosing_name(new_lines, len(indent)))
                new_lines += [indent + stub_line for stub_line in stub.split("\n")]
            elif self.end_solution_delimeter in line:
                in_solution = False
            elif not in_solution:
                new_lines.append(line)
        if in_solution:
            raise RuntimeError("no end solution statement found")
        cell.source = "\n".join(new_lines)
        return replaced

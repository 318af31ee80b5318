"""The public API rule: notebooks use only what au.__all__ (or a listed module's __all__) names."""

import inspect
import re
import sys

import nbformat
import pytest

import alexnet_utils as au
from alexnet_utils.course import release

ROOT = release.repo_root()
NOTEBOOKS = sorted((ROOT / "source").glob("*/*.ipynb"))
USE = re.compile(r"\bau\.([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?")


def public_names():
    for name in au.__all__:
        obj = getattr(au, name)
        yield name, obj
        if inspect.ismodule(obj):
            for sub in obj.__all__:
                yield f"{name}.{sub}", getattr(obj, sub)


def test_every_public_callable_says_why_in_a_docstring():
    missing = [n for n, obj in public_names() if callable(obj) and not (obj.__doc__ or "").strip()]
    assert not missing, f"public names without a docstring: {missing}"


def test_every_listed_module_declares_its_public_names():
    for name in au.__all__:
        obj = getattr(au, name)
        if inspect.ismodule(obj):
            assert hasattr(obj, "__all__"), f"au.{name} has no __all__"
            assert all(hasattr(obj, n) for n in obj.__all__), f"au.{name}.__all__ names something missing"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.parent.name)
def test_notebooks_use_only_public_names(nb_path):
    code = "\n".join(c.source for c in nbformat.read(nb_path, as_version=4).cells if c.cell_type == "code")
    private = []
    for name, attr in USE.findall(code):
        if name not in au.__all__:
            private.append(f"au.{name}")
        elif attr and inspect.ismodule(getattr(au, name)) and attr not in getattr(au, name).__all__:
            private.append(f"au.{name}.{attr}")
    assert not private, f"{nb_path.name} uses names outside the public API: {sorted(set(private))}"


def test_the_student_package_never_imports_the_instructor_tools():
    import subprocess

    code = "import alexnet_utils, sys; print([m for m in sys.modules if m.startswith('alexnet_utils.course')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"importing alexnet_utils pulled in {out.strip()}"

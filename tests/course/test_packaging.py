"""The files around the package agree with each other."""

import os
import re
import subprocess
import sys
from pathlib import Path

import tomllib
import yaml

from ..repo import scratch_course
from .conftest import ROOT


def _pyproject():
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = _pyproject()["project"]
    wanted = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted |= set(extra)
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {r for r in pip if not r.startswith("-")}
    assert listed == wanted, \
        f"only in pyproject: {sorted(wanted - listed)}; only in environment.yml: {sorted(listed - wanted)}"


def test_dependencies_carry_lower_bounds_only():
    for req in _pyproject()["project"]["dependencies"]:
        assert "<" not in req and "==" not in req, f"{req}: an upper pin breaks Colab installs"


def test_torch_ranges_admit_the_course_build():
    deps = {_name(r): r for r in _pyproject()["project"]["dependencies"]}
    from packaging.specifiers import SpecifierSet
    assert "2.14.1" in SpecifierSet(deps["torch"].removeprefix("torch"))
    assert "0.29.1" in SpecifierSet(deps["torchvision"].removeprefix("torchvision"))


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make lab" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_ci_runs_each_notebooks_tests_on_one_worker():
    """What `make test` hands each xdist worker: a notebook's tests, the instructor's day, or a module."""
    from xdist.scheduler import LoadScopeScheduling

    from ..conftest import xdist_group as scope

    assert callable(LoadScopeScheduling._split_scope), "xdist's scheduler no longer asks for a test's scope"
    same = ["tests/browser/test_jupyterlab.py::test_release_notebook_runs_in_jupyterlab[05_modern]",
            "tests/course/test_grading.py::test_reference_solution_earns_every_automatic_point[05_modern]",
            "tests/course/test_wrong_answers.py::test_each_mistake_loses_points_exactly_where_its_skill_is_tested"
            "[05_modern]",
            "tests/course/test_selfstudy_runs.py::test_folded_solutions_pass_every_check[05_modern]"]
    assert {scope(n) for n in same} == {"05_modern"}
    assert scope("tests/course/test_wrong_answers.py::test_nbgrader_grades_the_mistakes_as_the_replay_does"
                 "[01_build_alexnet]") == "01_build_alexnet"
    assert scope("tests/browser/test_instructor_day.py::test_the_instructors_day_in_the_formgrader") == \
        scope("tests/course/test_instructor_day.py::test_export_writes_one_row_per_student_and_assignment")
    assert scope("tests/unit/test_train.py::test_fit[a]") == scope("tests/unit/test_train.py::test_other")
    assert scope("tests/unit/test_train.py::test_fit") != scope("tests/unit/test_data.py::test_fit")


def test_cli_doctor_reports_profile_and_cache():
    out = subprocess.run([sys.executable, "-m", "alexnet_utils", "doctor"], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout
    assert "profile" in out and "cache" in out and "torch" in out


def test_doctor_says_how_much_disk_the_cached_runs_take_and_what_was_set_aside(tmp_path):
    from alexnet_utils.course.cli import runs_usage

    runs = tmp_path / "runs"
    assert "none cached yet" in runs_usage(runs)[0]
    (runs / "quick" / "04_transfer_learning" / "shots_5").mkdir(parents=True)
    (runs / "quick" / "04_transfer_learning" / "shots_5" / "a.pt").write_bytes(b"x" * 3_000_000)
    (runs / "quick" / "04_transfer_learning" / "shots_5" / "a.previous.pt").write_bytes(b"x" * 2_000_000)
    (runs / "smoke" / "01_build_alexnet").mkdir(parents=True)
    (runs / "smoke" / "01_build_alexnet" / "b.pt").write_bytes(b"x" * 5_000)
    head, quick, smoke = runs_usage(runs)
    assert head.startswith("runs") and "5 MB" in head and "delete a notebook's folder" in head
    assert "quick/04_transfer_learning" in quick and "5 MB" in quick and "2 MB of it earlier runs" in quick
    assert "smoke/01_build_alexnet" in smoke and "5 kB" in smoke and "earlier" not in smoke


def test_cli_refuses_to_grade_students_without_a_sandbox(tmp_path):
    course = scratch_course(tmp_path / "course", "source")
    (course / "submitted" / "ada" / "01_build_alexnet").mkdir(parents=True)
    no_bwrap = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # bwrap lives in /usr/bin
    proc = subprocess.run([sys.executable, "-m", "alexnet_utils", "grade", "--course", str(course)],
                          capture_output=True, text=True, cwd=ROOT, env=no_bwrap)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "bubblewrap" in proc.stderr and "--unsafe" in proc.stderr
    assert not (course / "gradebook.db").exists(), "nothing may run before the refusal"


def test_cli_names_an_unknown_assignment():
    proc = subprocess.run([sys.executable, "-m", "alexnet_utils", "release", "99_nothing"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "no assignment '99_nothing'" in proc.stderr

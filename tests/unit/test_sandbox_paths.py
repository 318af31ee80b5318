"""The grading sandbox blanks /tmp and the home folder; what the kernel imports must stay visible."""

from pathlib import Path

import alexnet_utils
from alexnet_utils.course import sandbox


def _visible(path: Path, needed: list[Path]) -> bool:
    blanked = (Path("/tmp").resolve(), Path.home().resolve())
    hidden = any(b == path or b in path.parents for b in blanked)
    return not hidden or any(p == path or p in path.parents for p in needed)


def test_the_package_stays_importable_wherever_the_course_is_cloned(tmp_path):
    """An editable install imports through a finder, not sys.path: a clone under /tmp broke grading."""
    needed = sandbox._needed_paths(tmp_path)
    package = Path(alexnet_utils.__file__).resolve().parent
    assert _visible(package, needed), f"{package} is blanked in the sandbox; bound: {needed}"
    assert _visible(tmp_path.resolve(), needed), "the course itself is blanked"
    assert not any(p in (Path("/tmp").resolve(), Path.home().resolve()) for p in needed), \
        "never bind all of /tmp or home back: that undoes the sandbox"

"""nbgrader settings for the AlexNet course; this folder is the course directory.

Run nbgrader from this folder (the Makefile does), e.g.
    nbgrader generate_assignment 01_build_alexnet
"""

import os
import sys

c = get_config()  # noqa: F821  (provided by nbgrader's config loader)

c.CourseDirectory.course_id = "alexnet"

# Notebooks build 60M-parameter networks; the default 30 s per cell is too
# tight for a slow grading server. Test cells themselves never train.
c.Execute.timeout = 180

# Grading runs every notebook in the offline, seconds-long smoke profile.
# Only nbgrader's own commands are affected, never a JupyterLab server that
# happens to read this file. ALEXNET_GRADING_PROFILE overrides the choice.
_EXECUTING = {"autograde", "validate", "generate_feedback"}
if len(sys.argv) > 1 and sys.argv[1] in _EXECUTING and "nbgrader" in sys.argv[0]:
    os.environ["ALEXNET_PROFILE"] = os.environ.get("ALEXNET_GRADING_PROFILE", "smoke")

# Feedback goes to students: nbgrader 0.9 puts hidden tests back in at
# autograde and its feedback shows them (jupyter/nbgrader#917). Clear them,
# and keep tracebacks to one line so a failing hidden assert is not quoted.
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.converters import GenerateAssignment  # noqa: E402
from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions, GetGrades  # noqa: E402

c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, CSSHTMLHeaderPreprocessor]
c.Execute.extra_arguments = ["--HistoryManager.hist_file=:memory:", "--InteractiveShell.xmode=Minimal"]

# A stub names the task it stands for: `NotImplementedError: Task 1: complete
# conv_output_size (replace this line with your code)`, not a bare NotImplementedError.
c.GenerateAssignment.preprocessors = [
    "alexnet_utils.course.stubs.TaskStubs" if pp is ClearSolutions else pp
    for pp in GenerateAssignment.class_traits()["preprocessors"].default()
]

# autograded/reference and autograded/blank are the course's own reference grading
# (`make grade`), committed with the course; they are not students. Without this,
# `nbgrader generate_feedback` and the formgrader's "Generate Feedback" fail on them.
# `python -m alexnet_utils grade --references` lifts it in its scratch course.
c.CourseDirectory.student_id_exclude = "reference,blank"

"""The instructor's and CI's tools: never imported by the package a notebook uses.

``release`` (nbgrader round trip), ``selfstudy`` (the Colab edition), ``grading`` and
``sandbox`` (safe autograding), ``report`` (``make bench``), ``markers`` (nbgrader's
solution and hidden-test markers), ``stubs`` (code stubs that name their task, used by
nbgrader_config.py) and ``cli`` (``python -m alexnet_utils``).
"""

"""The stand-ins of the course's own helpers (course/), importable beside the project's.

``course/hw3_utils.py`` has the course's ``binary_mask``, ``point_cloud`` and
``get_tensor_names`` as the course has them; loaded here under a private module name, so
that the project's ``hw3_utils`` stays the one that ``import hw3_utils`` finds.
"""
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COURSE_DIR = os.path.join(ROOT, "course")


def load_course_utils():
    """The stand-in ``course/hw3_utils.py`` as a module named ``course_hw3_utils``."""
    spec = importlib.util.spec_from_file_location(
        "course_hw3_utils", os.path.join(COURSE_DIR, "hw3_utils.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

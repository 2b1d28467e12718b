"""The lessons in lessons/: committed clean, listed in lessons/README.md, and each one runs top to bottom.

Checks, for every ``lessons/*.ipynb``:

* it is a valid nbformat 4 notebook with the kernel spec ``python3``, committed without outputs or execution
  counts, and ends with exercises whose solutions sit in collapsed cells;
* ``lessons/README.md`` names it;
* it executes top to bottom in a fresh kernel (nbclient), from the ``lessons/`` directory, as a learner would
  run it in Jupyter. This runs in the default test run (CI executes every lesson); it is marked ``slow`` so that
  ``-m "not slow"`` leaves it out while editing. The kernel is the interpreter running the tests.

The execution tests skip, with the reason, when nbclient, nbformat or ipykernel is not installed
(``pip install -e ".[dev]"`` installs them).
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

LESSONS_DIR = Path(__file__).resolve().parent.parent / "lessons"
LESSONS = sorted(LESSONS_DIR.glob("*.ipynb"))
#: Seconds one lesson may take, start of the kernel included. The lessons are sized to run together in well
#: under the issue's 6 minutes on the project's 2-core machine; this is a guard against a lesson that hangs or
#: grows, not a speed claim.
NOTEBOOK_TIMEOUT = 240


def _lesson_params():
    return [pytest.param(path, id=path.name) for path in LESSONS]


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return source if isinstance(source, str) else "".join(source)


def test_there_are_lessons():
    assert LESSONS, f"no notebooks in {LESSONS_DIR}"


@pytest.mark.parametrize("path", _lesson_params())
def test_lesson_is_committed_clean(path):
    notebook = _load(path)
    assert notebook.get("nbformat") == 4, f"{path.name}: nbformat {notebook.get('nbformat')}, expected 4"
    kernelspec = notebook.get("metadata", {}).get("kernelspec", {})
    assert kernelspec.get("name") == "python3", f"{path.name}: kernel spec {kernelspec!r}, expected name 'python3'"
    for number, cell in enumerate(notebook["cells"], start=1):
        if cell["cell_type"] != "code":
            continue
        assert cell.get("outputs") == [], f"{path.name}: cell {number} has outputs (clear them before committing)"
        assert cell.get("execution_count") is None, f"{path.name}: cell {number} has an execution count"


@pytest.mark.parametrize("path", _lesson_params())
def test_lesson_is_valid_nbformat(path):
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install -e '.[dev]')")
    nbformat.validate(nbformat.read(str(path), as_version=nbformat.NO_CONVERT))


@pytest.mark.parametrize("path", _lesson_params())
def test_lesson_opens_with_a_title_and_ends_with_exercises_and_hidden_solutions(path):
    cells = _load(path)["cells"]
    assert cells[0]["cell_type"] == "markdown" and _source(cells[0]).startswith("# "), \
        f"{path.name}: the first cell should be a Markdown title"
    headings = [i for i, cell in enumerate(cells)
                if cell["cell_type"] == "markdown" and re.search(r"^#+ Exercises", _source(cell), re.MULTILINE)]
    assert headings, f"{path.name}: no 'Exercises' heading"
    after = cells[headings[-1]:]
    hidden = [cell for cell in after if cell.get("metadata", {}).get("jupyter", {}).get("source_hidden") is True]
    # or the solutions live in a separate file of lessons/, linked from the exercises
    linked = [target for cell in after if cell["cell_type"] == "markdown"
              for target in re.findall(r"\]\(([^)#\s]+)", _source(cell))
              if "solution" in target.lower() and (LESSONS_DIR / target).is_file()]
    assert hidden or linked, (f"{path.name}: after the exercises, the solutions should sit in collapsed cells "
                              "(cell metadata jupyter.source_hidden) or in a linked solutions file in lessons/")


def test_readme_lists_every_lesson():
    readme = (LESSONS_DIR / "README.md").read_text(encoding="utf-8")
    missing = [path.name for path in LESSONS if path.name not in readme]
    assert not missing, f"lessons/README.md does not list {missing}"


@pytest.fixture(scope="module")
def python3_kernel_dir(tmp_path_factory):
    """A Jupyter data directory whose kernel spec ``python3`` runs the interpreter running these tests.

    A ``python3`` spec elsewhere on the machine (a user's, a system one) may start another Python; putting this
    one first on ``JUPYTER_PATH`` makes ``kernel_name="python3"`` mean this environment.
    """
    pytest.importorskip("nbclient", reason="nbclient is not installed (pip install -e '.[dev]')")
    pytest.importorskip("nbformat", reason="nbformat is not installed (pip install -e '.[dev]')")
    if importlib.util.find_spec("ipykernel") is None:
        pytest.skip("ipykernel is not installed in the environment running the tests (pip install -e '.[dev]')")
    root = tmp_path_factory.mktemp("jupyter")
    spec_dir = root / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (tinyid tests)", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("path", _lesson_params())
def test_lesson_runs_top_to_bottom(path, python3_kernel_dir, monkeypatch):
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from nbclient import NotebookClient

    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(filter(None, [str(python3_kernel_dir),
                                                                      os.environ.get("JUPYTER_PATH")])))
    assert KernelSpecManager().get_kernel_spec("python3").argv[0] == sys.executable

    notebook = nbformat.read(str(path), as_version=4)
    client = NotebookClient(notebook, timeout=NOTEBOOK_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(LESSONS_DIR)}})
    started = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if a cell fails
    seconds = time.perf_counter() - started
    assert seconds < NOTEBOOK_TIMEOUT, f"{path.name} took {seconds:.0f} s, more than {NOTEBOOK_TIMEOUT} s"

    # RuntimeWarning is an error in the tests (setup.cfg); a lesson must not print one either.
    for number, cell in enumerate(notebook.cells, start=1):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                assert "RuntimeWarning" not in output.get("text", ""), \
                    f"{path.name}: cell {number} printed a RuntimeWarning:\n{output['text']}"

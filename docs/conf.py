"""Sphinx configuration of the lstm_core docs.

Build:  sphinx-build -W --keep-going -b html docs docs/_build/html
It documents the *installed* lstm_core (the source folder has no compiled module), and writes
three kinds of generated pages into docs/_generated/ before reading the sources:

- the benchmark chart and tables, from the newest run in benchmarks/results (benchmarks/chart.py);
- the long-lag experiment table, from examples/results/long_lag/table.md;
- the API reference's list of names, from lstm_core.__all__ (a new public name shows up by itself).
"""

import importlib.util
import inspect
import io
import re
from pathlib import Path

import docutils.core
import docutils.utils

import lstm_core

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
GENERATED = DOCS / "_generated"

project = "lstm_core"
author = "the lstm_core authors"
copyright = "the lstm_core authors, BSD-3-Clause"
release = version = lstm_core.__version__

extensions = [
    "sphinx.ext.autodoc",
    "numpydoc",
]
exclude_patterns = ["_build", "_generated"]
templates_path = []
html_static_path = ["_static"]
html_theme = "pydata_sphinx_theme"
html_title = f"lstm_core {release}"
html_theme_options = {
    "navigation_depth": 2,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_sidebars = {"index": []}

# Docstrings are plain prose in places while they move to numpydoc sections: render what is
# there and validate nothing here (the docstrings' own checks belong to their authors).
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()
numpydoc_xref_param_type = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_inherit_docstrings = False

# The module each public name comes from -> its section in the API reference.
API_SECTIONS = (
    ("Functional API: LSTM, GRU and RNN", ("lstm_core._lstm",)),
    ("Gradients (named tuples)", ("lstm_core.reference",)),
    ("Threads and memory", ("lstm_core._threads", "lstm_core._boundary")),
    ("Layers", ("lstm_core.layers", "lstm_core.heads")),
    ("Losses", ("lstm_core.losses",)),
    ("Optimizers and schedules", ("lstm_core.optim",)),
    ("Training", ("lstm_core.train",)),
    ("Saving, loading, Keras weights", ("lstm_core.io",)),
    ("Looking inside", ("lstm_core.gates",)),
)


def _load_chart_module():
    spec = importlib.util.spec_from_file_location("chart", ROOT / "benchmarks" / "chart.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_if_changed(path, text):
    # Unchanged files keep their time stamps, so Sphinx does not re-read every page.
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _api_names_rst():
    """autofunction / autoclass directives for every name in lstm_core.__all__, by section."""
    names = [n for n in lstm_core.__all__ if n != "reference"]
    by_section = {title: [] for title, _ in API_SECTIONS}
    other = []
    for name in names:
        obj = getattr(lstm_core, name)
        module = getattr(obj, "__module__", "") or ""
        for title, modules in API_SECTIONS:
            if module in modules:
                by_section[title].append((name, obj))
                break
        else:
            other.append((name, obj))
    if other:
        by_section["Other names"] = other
    lines = []
    for title, entries in by_section.items():
        if not entries:
            continue
        lines += [title, "-" * len(title), ""]
        for name, obj in entries:
            if isinstance(obj, type):
                lines += [f".. autoclass:: lstm_core.{name}", "   :members:", ""]
            else:
                lines += [f".. autofunction:: lstm_core.{name}", ""]
    return "\n".join(lines)


def _markdown_table_rst(markdown):
    """A pipe table (header, separator, rows) as an rst list-table."""
    rows = [line.strip().strip("|").split("|") for line in markdown.strip().splitlines()]
    rows = [[cell.strip() for cell in row] for row in rows if not set("".join(row)) <= set("-: ")]
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in rows:
        lines.append("   * - " + "\n     - ".join(cell or "--" for cell in row))
    return "\n".join(lines) + "\n"


def generate(app=None):
    GENERATED.mkdir(exist_ok=True)
    chart = _load_chart_module()
    run = chart.load(chart.newest())
    chart.draw_chart(run, GENERATED / "bench_chart.svg")
    _write_if_changed(GENERATED / "bench_table.rst", chart.table_rst(run))
    _write_if_changed(GENERATED / "bench_summary.rst", chart.summary_rst(run))
    _write_if_changed(GENERATED / "bench_runs.rst", chart.runs_rst())
    _write_if_changed(GENERATED / "api_names.rst", _api_names_rst())
    table = ROOT / "examples" / "results" / "long_lag" / "table.md"
    _write_if_changed(GENERATED / "long_lag_table.rst", _markdown_table_rst(table.read_text()))


NUMPYDOC_SECTION = re.compile(r"^\s*(Parameters|Returns|Yields|Raises|Attributes|Examples|"
                              r"See Also|Notes)\n\s*-{3,}\s*$", re.M)
PROCESSED = ".. !! processed by numpydoc !!"


def _parses_cleanly(text):
    """True when docutils reads text as reStructuredText without a warning or an error."""
    stream = io.StringIO()
    settings = {"report_level": docutils.utils.Reporter.WARNING_LEVEL, "halt_level": 5,
                "warning_stream": stream}
    try:
        docutils.core.publish_doctree(text, settings_overrides=settings)
    except Exception:  # noqa: BLE001 (any failure to parse counts as not clean)
        return False
    return not stream.getvalue()


def tolerate_prose_docstrings(app, what, name, obj, options, lines):
    """Show a plain-prose docstring that is not valid reStructuredText as preformatted text.

    Docstrings are moving to numpydoc's sections; until one has them, prose such as
    ``weight_ih_`` or ``*args`` would read as rst markup and fail the -W build. Docstrings with
    numpydoc sections are left alone, so their mistakes still fail the build.
    """
    original = inspect.getdoc(obj) or ""
    if NUMPYDOC_SECTION.search(original):
        return
    body = [line for line in lines if line.strip() != PROCESSED]
    if _parses_cleanly("\n".join(body)):
        return
    lines[:] = ["::", ""] + ["   " + line if line.strip() else "" for line in body] + ["", PROCESSED]


def setup(app):
    app.connect("builder-inited", generate)
    # After numpydoc's own handler (priority 500), on the lines it produced.
    app.connect("autodoc-process-docstring", tolerate_prose_docstrings, priority=600)
    app.add_css_file("lstm_core.css")

"""Every release notebook, opened and run by a student's browser.

A real JupyterLab 4 (nbgrader's extensions on) serves a scratch copy of the
course; headless Chromium opens each student notebook, runs all cells, saves it,
and the test checks what the student would see:

* the kernel finished and every code cell ran;
* the only errors are the students' stubs: ``NotImplementedError``, and
  ``NameError`` once a stub has already raised (a name the stub never defined);
* every figure and widget the kernel sent rendered in the page; a cell that calls
  ``fit(`` and ran shows a progress-bar widget; and at least one image and one
  progress bar rendered (a probe cell the test appends draws both the way the
  course does, with matplotlib inline and ``tqdm.auto``, so that a notebook whose
  own figures all wait on student code still proves that they render);
* a student's first stub error says which task to complete;
* the claims table renders as a table a person reads: one header row, text
  left-aligned, every cell in full, each verdict in its colour (the probe shows one);
* nbgrader's Validate button is in the notebook toolbar and validates.

A full-page screenshot per notebook lands in ``test-artifacts/browser/``.

Run All stops at the first error in JupyterLab, as it would for a student; the
scratch copy's code cells carry JupyterLab's ``raises-exception`` tag so that it
goes on past the stubs, as nbgrader's own runs do.
"""

import re
import time
from pathlib import Path

import nbformat
import pytest

from ..repo import source_notebooks
from .conftest import ROOT

RELEASE = [ROOT / "release" / nb.parent.name / nb.name for nb in source_notebooks()]
OPEN_TIMEOUT = 90  # s: JupyterLab loaded, kernel started and idle
RUN_TIMEOUT = 240  # s: Run All finished (the smoke profile takes seconds per notebook)
SAVE_TIMEOUT = 30  # s
VALIDATE_TIMEOUT = 180  # s: nbgrader validate re-runs the notebook on the server
MAX_SCREENSHOT_HEIGHT = 16_000  # px: Chromium's limit for one capture is 16,384

PROBE_TAG = "browser-test-probe"
PROBE = """\
# Added by tests/browser to its scratch copy only: a progress bar, a figure and a claims
# table, drawn the way the course draws them (tqdm.auto, matplotlib inline, au.claims_table).
import matplotlib.pyplot as plt
from tqdm.auto import tqdm

import alexnet_utils as au

for _ in tqdm(range(3), desc="browser test"):
    pass
plt.figure(figsize=(3, 2))
plt.bar(["rendered"], [1.0])
plt.title("browser test probe")
plt.show()
display(au.claims_table([
    au.Claim("torchvision's AlexNet costs 0.71 GFLOPS", "torchvision docs: 0.71 'GFLOPS' are multiply-adds",
             0.71e9, 0.714e9, tolerance=0.02, unit="multiply-adds",
             note="torch.utils.flop_counter counts a multiply and an add as two FLOPs, hence 1.43 GFLOPs there"),
    au.Claim("about 60 million parameters", "paper, Section 1", 60e6, 75e6, tolerance=0.05),
    au.Claim("training takes six days", "paper, Section 1", 6.0, None),
], save=False))
"""
CLAIM_COLUMNS = ["claim", "source", "expected", "measured here", "verdict", "note"]
VERDICT_COLOURS = ["rgb(26, 127, 55)", "rgb(207, 34, 46)", "rgb(110, 119, 129)"]  # agrees, disagrees, n/a
CLAIMS_JS = """() => {
  const t = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) table.alexnet-claims');
  if (!t) return null;
  const cells = Array.from(t.querySelectorAll('th, td'));
  return {
    headerRows: t.querySelectorAll('thead tr').length,
    headers: Array.from(t.querySelectorAll('thead th')).map(c => c.textContent),
    rows: Array.from(t.querySelectorAll('tbody tr')).map(r => Array.from(r.children).map(c => c.textContent)),
    aligned: Array.from(new Set(cells.map(c => getComputedStyle(c).textAlign))),
    clipped: cells.filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.textContent),
    colours: Array.from(t.querySelectorAll('tbody b')).map(b => getComputedStyle(b).color),
  };
}"""
IMAGE_MIMES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
FIT_CALL = re.compile(r"\bfit\(")


def trains_when_run(source: str) -> bool:
    """Whether running the cell calls ``fit`` (or ``au.fit``) itself, not only defines a function that does."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython syntax: fall back to the text
        return bool(FIT_CALL.search(source))
    pending = [node for node in tree.body if not isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name == "fit":
                return True
        pending.extend(ast.iter_child_nodes(node))
    return False
ALLOWED_FIRST = "NotImplementedError"
ALLOWED_AFTER_STUB = "NameError"

# Per cell of the open notebook: prompt, rendered images, widgets, progress bars, widget errors.
DOM_CELLS_JS = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (!panel) return null;
  return Array.from(panel.querySelectorAll('.jp-Notebook .jp-Cell')).map(cell => {
    const prompt = cell.querySelector('.jp-InputArea-prompt');
    const out = Array.from(cell.querySelectorAll('.jp-OutputArea-output'));
    const all = sel => out.flatMap(o => Array.from(o.querySelectorAll(sel)));
    return {
      code: cell.classList.contains('jp-CodeCell'),
      prompt: prompt ? prompt.textContent.trim() : '',
      images: all('img').filter(i => i.complete && i.naturalWidth > 0).length,
      widgets: all('.jupyter-widgets').filter(w => !w.parentElement.closest('.jupyter-widgets')).length,
      progress: all('.widget-hprogress, .widget-vprogress').length,
      widgetErrors: out.map(o => o.textContent).filter(t => /Error displaying widget|Loading widget\\.\\.\\./.test(t)),
    };
  });
}"""


def _prepare(notebook: Path) -> int:
    """Tag the scratch copy's code cells raises-exception and append the probe; its cell index."""
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            tags = cell.metadata.setdefault("tags", [])
            if "raises-exception" not in tags:
                tags.append("raises-exception")
    probe = nbformat.v4.new_code_cell(PROBE, metadata={"tags": [PROBE_TAG]})
    nb.cells.append(probe)
    nbformat.write(nb, notebook)
    return len(nb.cells) - 1


def _kernel_status(page) -> str:
    """The status bar's kernel item, e.g. "Python 3 (ipykernel) | Idle" ("No Kernel | Initializing" at first)."""
    item = page.locator('#jp-main-statusbar .jp-StatusBar-TextItem[title^="Change kernel"]')
    return item.first.inner_text().strip() if item.count() else ""


def _kernel_idle(page) -> bool:
    # The toolbar's execution indicator says idle even before there is a kernel: ask the status bar too.
    return (_kernel_status(page).endswith("| Idle") and not _kernel_status(page).startswith("No Kernel")
            and page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) '
                             '.jp-Notebook-ExecutionIndicator[data-status="idle"]').count() > 0)


def _toasts(page) -> list[str]:
    return page.locator(".Toastify__toast").all_inner_texts()


def _open(page, lab, rel: str, n_cells: int) -> None:
    """Open the notebook; wait until all its cells are in the page and its kernel is idle.

    A "Select Kernel" dialog, if JupyterLab shows one, is accepted (the notebook's own kernel).
    """
    page.goto(lab.open_url(rel), timeout=OPEN_TIMEOUT * 1000)
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=OPEN_TIMEOUT * 1000)
    deadline = time.monotonic() + OPEN_TIMEOUT
    while True:
        dialog = page.locator(".jp-Dialog")
        if dialog.count() and "select kernel" in dialog.first.inner_text().lower():
            dialog.locator(".jp-mod-accept").first.click()
        cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").count()
        if cells == n_cells and _kernel_idle(page):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{rel}: not ready {OPEN_TIMEOUT} s after opening it: {cells} of {n_cells} cells shown, "
                        f"kernel status {_kernel_status(page)!r}, notifications {_toasts(page)}\n{lab.tail()}")
        page.wait_for_timeout(250)


def _run_all(page, rel: str) -> None:
    """Run > Run All Cells, and see it start (one more click if the first was lost)."""
    for _ in range(2):
        _menu(page, "Run", "Run All Cells")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            prompts = [c["prompt"] for c in page.evaluate(DOM_CELLS_JS) or [] if c["code"]]
            if any(p != "[ ]:" for p in prompts):
                return
            page.wait_for_timeout(250)
    pytest.fail(f"{rel}: Run All Cells ran nothing: kernel status {_kernel_status(page)!r}, "
                f"notifications {_toasts(page)}")


def _menu(page, menu: str, item: str) -> None:
    page.locator(".lm-MenuBar-item", has_text=re.compile(rf"^{menu}$")).first.click()
    page.locator(".lm-Menu-item:not(.lm-mod-disabled)", has_text=re.compile(rf"^{item}")).first.click()


def _wait_for_run_all(page, probe: int, rel: str) -> list[dict]:
    """Until the probe (the last cell) has run, no cell shows [*] and the kernel is idle."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        cells = page.evaluate(DOM_CELLS_JS) or []
        prompts = [c["prompt"] for c in cells if c["code"]]
        done = (len(cells) > probe and re.fullmatch(r"\[\d+\]:", cells[probe]["prompt"])
                and "[*]:" not in prompts and _kernel_idle(page))
        if done:
            return cells
        if time.monotonic() > deadline:
            pytest.fail(f"{rel}: Run All had not finished after {RUN_TIMEOUT} s; kernel status "
                        f"{_kernel_status(page)!r}; prompts: {prompts}")
        page.wait_for_timeout(500)


def _save(page, notebook: Path, probe: int, rel: str):
    """Save through the File menu; the saved copy once the probe's outputs are in it."""
    _menu(page, "File", "Save Notebook")
    deadline = time.monotonic() + SAVE_TIMEOUT
    while True:
        try:
            nb = nbformat.read(notebook, as_version=4)
            if len(nb.cells) > probe and nb.cells[probe].get("execution_count"):
                return nb
        except Exception:  # half-written file: read again
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{rel}: the saved notebook has no outputs {SAVE_TIMEOUT} s after File > Save Notebook")
        page.wait_for_timeout(250)


def _screenshot(page, path: Path) -> None:
    """The whole notebook: JupyterLab scrolls inside its own panel, so make the window as tall as it.

    Off-screen cells only get their real height once laid out, so grow the window until the last cell fits.
    """
    height = 0
    for _ in range(5):
        needed = page.evaluate("""() => {
          const s = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer');
          const cells = s ? s.querySelectorAll('.jp-Cell') : [];
          if (!cells.length) return document.body.scrollHeight;
          s.scrollTop = 0;  // Run All leaves it at the last cell
          const box = s.getBoundingClientRect();
          const chrome = box.top + (window.innerHeight - box.bottom);  // menus, toolbar, status bar
          const last = cells[cells.length - 1].getBoundingClientRect();
          return Math.ceil(last.bottom - box.top + chrome + 40);  // the last cell, not the scroll-past-end space
        }""")
        needed = max(1000, min(needed, MAX_SCREENSHOT_HEIGHT))
        if needed <= height:
            break
        height = needed
        page.set_viewport_size({"width": 1400, "height": height})
        page.wait_for_timeout(750)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 1000})


def _saved_outputs(nb, probe: int) -> list[dict]:
    rows = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        outs = cell.get("outputs", [])
        rich = [o.get("data", {}) for o in outs if o.get("output_type") in ("display_data", "execute_result")]
        rows.append({
            "index": i,
            "id": cell.metadata.get("nbgrader", {}).get("grade_id") or ("probe" if i == probe else f"cell {i}"),
            "count": cell.get("execution_count"),
            "errors": [o.get("ename") for o in outs if o.get("output_type") == "error"],
            "images": sum(1 for d in rich if any(m in d for m in IMAGE_MIMES)),
            "widgets": sum(1 for d in rich if WIDGET_MIME in d),
        })
    return rows


def _unexpected_errors(rows: list[dict]) -> list[str]:
    bad, stub_raised = [], False
    for row in rows:
        for ename in row["errors"]:
            if row["id"] != "probe" and (ename == ALLOWED_FIRST or (ename == ALLOWED_AFTER_STUB and stub_raised)):
                continue
            bad.append(f"cell {row['index']} ({row['id']}): {ename}")
        stub_raised = stub_raised or ALLOWED_FIRST in row["errors"]
    return bad


def _table(rows: list[dict]) -> str:
    return "\n".join(f"  cell {r['index']:>3} {r['id']:<28} [{r['count']}] errors={r['errors']} "
                     f"images={r['images']} widgets={r['widgets']}" for r in rows)


def _validate(page, rel: str) -> tuple[str, str]:
    """Click nbgrader's Validate button; the verdict's class (validation-failed, ...) and text."""
    page.locator(".jp-NotebookPanel-toolbar .validate-button").first.click()
    message = page.locator(".jp-Dialog #validation-message")
    try:
        message.wait_for(timeout=VALIDATE_TIMEOUT * 1000)
    except Exception:
        pytest.fail(f"{rel}: nbgrader's Validate gave no verdict within {VALIDATE_TIMEOUT} s; "
                    f"dialogs {page.locator('.jp-Dialog').all_inner_texts()}, notifications {_toasts(page)}")
    classes = (message.get_attribute("class") or "").split()
    verdict = next((c for c in classes if c.startswith("validation-")), "no verdict")
    text = message.inner_text()
    page.locator(".jp-Dialog .jp-mod-accept").first.click()
    return verdict, text


@pytest.mark.browser
@pytest.mark.parametrize("release", RELEASE, ids=lambda p: p.stem)
def test_release_notebook_runs_in_jupyterlab(release, lab, browser, artifacts):
    rel = release.relative_to(ROOT).as_posix()
    notebook = lab.root / rel
    probe = _prepare(notebook)
    shot = artifacts / f"{release.stem}.png"
    shot.unlink(missing_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    console_errors = []
    page.on("console", lambda m: console_errors.append(m.text[:300]) if m.type == "error" else None)
    try:
        _open(page, lab, rel, probe + 1)

        # nbgrader's lab extension puts its Validate button in the notebook's toolbar.
        validate = page.locator(".jp-NotebookPanel-toolbar .validate-button")
        assert validate.count() == 1 and validate.is_visible(), \
            f"{rel}: no Validate button in the notebook toolbar; toolbar: " \
            f"{page.locator('.jp-NotebookPanel-toolbar').first.inner_text()!r}"
        assert validate.inner_text().strip() == "Validate" and validate.get_attribute("aria-disabled") != "true"

        started = time.monotonic()
        _run_all(page, rel)
        _wait_for_run_all(page, probe, rel)
        run_all_s = time.monotonic() - started
        nb = _save(page, notebook, probe, rel)
        _screenshot(page, shot)
        cells = page.evaluate(DOM_CELLS_JS)  # again, after every cell was laid out for the screenshot
        rows = _saved_outputs(nb, probe)
        table = _table(rows)

        sessions = [s for s in lab.api("sessions") if s["path"] == rel]
        assert sessions and sessions[0]["kernel"]["execution_state"] == "idle", \
            f"{rel}: the kernel did not finish: {sessions}"
        not_run = [f"cell {r['index']} ({r['id']})" for r in rows if not r["count"]]
        assert not not_run, f"{rel}: cells Run All never executed: {not_run}\n{table}"
        bad = _unexpected_errors(rows)
        assert not bad, (f"{rel}: errors other than the students' stubs ({ALLOWED_FIRST}, or {ALLOWED_AFTER_STUB} "
                         f"after one): {bad}\n{table}")
        first_stub = next((o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                           if o.get("output_type") == "error" and o.get("ename") == ALLOWED_FIRST), None)
        assert first_stub is None or re.search(r"complete \w+|task above", first_stub["evalue"]), \
            f"{rel}: the first stub says {ALLOWED_FIRST}: {first_stub['evalue']!r}, not which task to complete"

        # What the kernel sent is what the student sees.
        assert len(cells) == len(nb.cells), f"{rel}: {len(cells)} cells in the page, {len(nb.cells)} saved"
        missing = []
        for row in rows:
            dom = cells[row["index"]]
            if dom["images"] < row["images"]:
                missing.append(f"cell {row['index']} ({row['id']}): {row['images']} image(s) sent, "
                               f"{dom['images']} rendered")
            if dom["widgets"] < row["widgets"]:
                missing.append(f"cell {row['index']} ({row['id']}): {row['widgets']} widget(s) sent, "
                               f"{dom['widgets']} rendered")
            if dom["widgetErrors"]:
                missing.append(f"cell {row['index']} ({row['id']}): {dom['widgetErrors']}")
        for row in rows:  # a cell that trains and ran shows its progress bar (tqdm.auto), not text on stderr
            source = nb.cells[row["index"]].source
            if trains_when_run(source) and not row["errors"] and not cells[row["index"]]["progress"]:
                missing.append(f"cell {row['index']} ({row['id']}) calls fit() but shows no progress-bar widget")
        assert not missing, (f"{rel}: outputs that did not render: {missing}\n{table}\n"
                             f"browser console errors: {console_errors[-10:]}")
        images = sum(c["images"] for c in cells)
        bars = sum(c["progress"] for c in cells)
        assert images >= 1, f"{rel}: no image rendered in the page\n{table}"
        assert bars >= 1, f"{rel}: no progress-bar widget rendered in the page\n{table}"
        claims = page.evaluate(CLAIMS_JS)
        assert claims, f"{rel}: the probe's claims table did not render as a table"
        assert claims["headerRows"] == 1 and claims["headers"] == CLAIM_COLUMNS, claims
        assert claims["aligned"] in (["left"], ["start"]), f"{rel}: claims table cells are aligned {claims['aligned']}"
        assert claims["rows"][0][1] == "torchvision docs: 0.71 'GFLOPS' are multiply-adds" and \
            claims["rows"][0][5].endswith("hence 1.43 GFLOPs there"), f"{rel}: claims cells cut short: {claims['rows']}"
        assert not claims["clipped"], f"{rel}: claims cells clipped: {claims['clipped']}"
        assert claims["colours"] == VERDICT_COLOURS, f"{rel}: verdict colours {claims['colours']}"
        own_images = sum(c["images"] for i, c in enumerate(cells) if i != probe)
        own_bars = sum(c["progress"] for i, c in enumerate(cells) if i != probe)
        print(f"{rel}: Run All took {run_all_s:.0f} s; {own_images} image(s) and {own_bars} progress bar(s) "
              f"of its own rendered; screenshot {shot}")

        # Validate really validates: the untouched release must fail its tests (`nbgrader validate --invert`).
        verdict, text = _validate(page, rel)
        assert verdict == "validation-failed", \
            f"{rel}: nbgrader's Validate should report the blank release's failing tests, got {verdict}: {text[:2000]}"
    finally:
        if not shot.exists():
            try:
                page.screenshot(path=str(shot), full_page=True)
            except Exception:  # the page is gone: the assertion above says why
                pass
        context.close()
        try:  # free the kernel (and the 2 cores) for the next notebook
            for session in lab.api("sessions"):
                if session["path"] == rel:
                    lab.api(f"sessions/{session['id']}", method="DELETE")
        except OSError:
            pass

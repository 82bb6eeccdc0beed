"""The comfyui backend's "Custom workflow…" row: a user's own API-format workflow and its bindings.

:class:`CustomWorkflowRow` sits under the comfyui options form. Its button fetches the chosen
server's ``/object_info`` on a worker thread (the window stays live; the line says so), then opens
the :class:`~difflora_gui.qt.comfy.binding_editor.BindingEditorDialog` with the workflow and
bindings already chosen. OK saves the bindings next to the workflow as
``<workflow stem>.bindings.json`` and sets the options ``workflow_file`` and ``bindings_file``;
"Use the template" blanks both, back to the shipped template.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMessageBox, QPushButton, QVBoxLayout, QWidget

from difflora_gui.errors import UserError

WORKFLOW_KEY = "workflow_file"
BINDINGS_KEY = "bindings_file"
#: how long the fetch waits for a server before the editor opens without its nodes
FETCH_TIMEOUT_S = 10.0


def server_for(options: Mapping[str, Any]) -> tuple[str, str]:
    """``(name, url)`` of the server whose nodes the editor checks against: the options' server
    (by name or URL), else the first enabled one of Settings; ``("", "")`` when there is none."""
    from difflora_gui.comfy.preview_backend import ComfyOptions

    wanted = str(options.get("server") or "").strip()
    try:
        records = ComfyOptions.from_json(options).servers
    except UserError:
        records = ()
    for record in records:
        url = str(record.get("url") or "")
        if wanted and (wanted == record.get("name") or wanted.rstrip("/") == url.rstrip("/")):
            return str(record.get("name") or url), url
    if wanted.startswith(("http://", "https://")):
        return wanted, wanted
    for record in records:
        if record.get("enabled", True) and record.get("url"):
            return str(record.get("name") or record["url"]), str(record["url"])
    return "", ""


def bindings_path(workflow: Path) -> Path:
    return workflow.with_name(f"{workflow.stem}.bindings.json")


class _Fetched(QObject):
    #: object_info (empty on failure), the error's text ('' on success)
    done = Signal(object, str)


class _FetchObjectInfo(QRunnable):
    def __init__(self, url: str, signals: _Fetched):
        super().__init__()
        self.url, self.signals = url, signals

    def run(self) -> None:
        from difflora_gui.comfy.client import ComfyClient

        try:
            with ComfyClient(self.url, timeout_s=FETCH_TIMEOUT_S) as client:
                info = client.object_info()
            answer: tuple[dict, str] = (dict(info), "")
        except Exception as error:  # noqa: BLE001 - any failure opens the editor with the reason
            answer = ({}, str(error) or type(error).__name__)
        try:
            self.signals.done.emit(*answer)
        except RuntimeError:
            pass  # the row (the signals' parent) closed while the server answered: nobody to tell


class CustomWorkflowRow(QWidget):
    """``options()`` gives the backend's current options; ``apply(updates, title)`` sets some
    (one undo step)."""

    def __init__(
        self,
        options: Callable[[], Mapping[str, Any]],
        apply: Callable[[dict[str, Any], str], None],
        parent: QWidget | None = None,
        *,
        thread_pool: QThreadPool | None = None,
    ):
        super().__init__(parent)
        self.setObjectName("previewCustomWorkflow")
        self._options, self._apply = options, apply
        self._pool = thread_pool or QThreadPool.globalInstance()
        self._pending: set[_Fetched] = set()
        self.dialog = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.custom_button = QPushButton("Custom workflow…")
        self.custom_button.setToolTip(
            "Render with your own API-format workflow: bind its inputs to the preview's parameters,"
            " checked against the server's nodes"
        )
        self.custom_button.clicked.connect(self.open_editor)
        self.template_button = QPushButton("Use the template")
        self.template_button.setToolTip("Back to the shipped workflow template of the options above")
        self.template_button.clicked.connect(self.use_template)
        row.addWidget(self.label, 1)
        row.addWidget(self.custom_button)
        row.addWidget(self.template_button)
        layout.addLayout(row)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setVisible(False)
        layout.addWidget(self.status)
        self.show_values({})

    def show_values(self, options: Mapping[str, Any]) -> None:
        workflow = str(options.get(WORKFLOW_KEY) or "")
        bindings = str(options.get(BINDINGS_KEY) or "")
        if workflow:
            self.label.setText(f"Workflow: {Path(workflow).name} (bindings {Path(bindings).name or 'none'})")
            self.label.setToolTip(f"{workflow}\n{bindings}")
        else:
            self.label.setText("Workflow: the template above")
            self.label.setToolTip("")
        self.template_button.setEnabled(bool(workflow or bindings))

    def _say(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))

    # --- the editor ----------------------------------------------------------------------------------

    def open_editor(self) -> None:
        name, url = server_for(self._options())
        if not url:
            self._open({}, "no ComfyUI server is set: add one in Settings ▸ ComfyUI servers", "")
            return
        self.custom_button.setEnabled(False)
        self._say(f"Fetching the server's nodes from {name}…")
        signals = _Fetched(self)  # lives on the UI thread, so its answer is queued there
        self._pending.add(signals)
        signals.done.connect(lambda info, error: self._fetched(signals, name, info, error))
        self._pool.start(_FetchObjectInfo(url, signals))

    def _fetched(self, signals: _Fetched, name: str, info: dict, error: str) -> None:
        self._pending.discard(signals)
        signals.deleteLater()
        self.custom_button.setEnabled(True)
        self._say("")
        self._open(info, f"could not fetch the nodes of {name} ({error})" if error else "", name)

    def _open(self, info: dict, failure: str, source: str) -> None:
        from difflora_gui.qt.comfy.binding_editor import BindingEditorDialog, read_bindings

        options = self._options()
        workflow = str(options.get(WORKFLOW_KEY) or "")
        bindings_file = str(options.get(BINDINGS_KEY) or "")
        bindings, problem = [], ""
        if bindings_file:
            try:
                bindings = read_bindings(bindings_file)
            except UserError as error:
                problem = str(error)
        dialog = BindingEditorDialog(
            self.window(),
            object_info=info,
            object_info_source=f"server {source}",
            workflow_path=workflow if workflow and Path(workflow).is_file() else None,
            bindings=bindings,
        )
        if failure:
            dialog.object_info_label.setText(
                f"No object_info: {failure}. Load a saved object_info JSON file, or start the server and try again"
            )
        if problem:
            dialog._say(problem, "warning")
        dialog.accepted.connect(lambda: self._accepted(dialog))
        dialog.finished.connect(lambda _r: dialog.deleteLater())
        self.dialog = dialog
        dialog.open()  # window-modal without a nested event loop: the window keeps repainting

    def _accepted(self, dialog) -> None:
        from difflora_gui.comfy import binding as core
        from difflora_gui.fileio import atomic_write_json

        workflow = dialog.workflow_path()
        if workflow is None:
            return
        target = bindings_path(workflow)
        data = core.to_json(dialog.bindings())
        exists = target.exists()
        if exists and _read_json(target) != data:
            answer = QMessageBox.question(
                self.window(), "Replace file?", f"{target} exists already with other bindings.\n\nReplace it?"
            )
            if answer != QMessageBox.StandardButton.Yes:
                self._say(f"Custom workflow not set: {target.name} was kept as it was")
                return
        try:
            if not exists or _read_json(target) != data:
                atomic_write_json(target, data, overwrite=exists)
        except (UserError, OSError) as error:
            self._say(f"Custom workflow not set: the bindings could not be saved ({error})")
            return
        self._say("")
        self._apply({WORKFLOW_KEY: str(workflow), BINDINGS_KEY: str(target)}, "Custom workflow")

    def use_template(self) -> None:
        self._say("")
        self._apply({WORKFLOW_KEY: "", BINDINGS_KEY: ""}, "Use the template")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None

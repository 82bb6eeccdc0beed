"""The Preview render form's backend options: a generated form per backend that declares params.

:class:`BackendOptions` shows, under the model line, the chosen backend's options as
:class:`~difflora_gui.qt.param_form.ParamForm` builds them from the backend's ``params`` (the
``comfyui`` backend: workflow, server, the model files as the server lists them, blocks, timeout),
starting from the backend's defaults and the app's Settings (``settings_defaults``). What the
project keeps (:meth:`BackendOptions.stored`, in the ``preview`` section's form) is, per backend,
only the values that differ from those defaults, so a Settings change still reaches options the
user never touched; keys the form does not show (a custom workflow builder) are kept as they are.
Under the comfyui form, :class:`~difflora_gui.qt.preview.custom_workflow.CustomWorkflowRow` sets the
options ``workflow_file`` and ``bindings_file`` (a user's own workflow) or blanks them (the template).

:func:`request_problem` says up front why the chosen backend cannot render a request faithfully
(for ``comfyui``: :func:`~difflora_gui.comfy.workflows.request_problems` and the LoRA files' key
names), and :func:`render_lane` the job lane (``comfy:<server>`` for a named server). The diffusers backend renders in this app with the
models of Settings: it has no options form here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QPushButton, QVBoxLayout, QWidget

from difflora_gui.errors import UserError
from difflora_gui.qt.param_form import ParamForm

COMFY_BACKEND = "comfyui"
#: the in-process backend (difflora_gui.preview.backend.DEFAULT_BACKEND)
DIFFUSERS_BACKEND = "diffusers"
BLOCK_EDIT_TEMPLATE = "wanvideo_t2v"
IN_APP_LANE = "device"


class BackendOptions(QWidget):
    """The chosen backend's options form (hidden for a backend without form fields).

    ``changed(title)`` fires on every user edit of an option (not when values are set from outside)."""

    #: an option's title
    changed = Signal(str)

    def __init__(self, backends: Mapping[str, Any], parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("previewBackendOptions")
        self.backends = dict(backends)
        self.forms: dict[str, ParamForm] = {}
        self._defaults: dict[str, dict[str, Any]] = {}
        self._stored: dict[str, dict[str, Any]] = {}
        self._current = ""
        self._quiet = 0
        #: the comfyui backend's "Custom workflow…" row, shown with its form
        self.custom_workflow = None
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self.setVisible(False)

    def connect_form(self, form) -> None:
        """Follow ``form``'s backend chooser, and report option edits as its ``backend option …`` edits
        (one undo step per option, a typed value merged into one)."""
        for name in self.backends:  # built now, so the panel's tab order has their fields
            self._form(name)
        form.backend_combo.currentIndexChanged.connect(lambda _i: self.show_backend(form.backend_name()))
        self.changed.connect(lambda title: form._emit(f"backend option {title}"))
        self.show_backend(form.backend_name())

    # --- the forms ---------------------------------------------------------------------------

    def _form(self, name: str) -> ParamForm | None:
        spec = self.backends.get(name)
        # a backend rendering in this app takes its model and device from Settings (the model
        # line's Settings… button): only one rendering elsewhere has options of its own here
        if spec is None or not spec.params or spec.lane == IN_APP_LANE:
            return None
        form = self.forms.get(name)
        if form is None:
            form = ParamForm(spec.params, advanced_title=f"More {spec.title} options")
            form.setObjectName(f"previewOptions-{name}")
            if not form.editors:
                return None
            for option, editor in form.editors.items():
                editor.changed.connect(lambda n=name, o=option: self._on_edited(n, o))
            self.forms[name] = form
            self._layout.addWidget(form)
            if name == COMFY_BACKEND:
                from difflora_gui.qt.preview.custom_workflow import CustomWorkflowRow

                self.custom_workflow = CustomWorkflowRow(
                    lambda: self.current_options(COMFY_BACKEND),
                    lambda updates, title: self.set_options(COMFY_BACKEND, updates, title),
                )
                self._layout.addWidget(self.custom_workflow)
            self._show_values(name)
        return form

    def show_backend(self, name: str) -> None:
        self._current = name
        wanted = self._form(name)
        for form in self.forms.values():
            form.setVisible(form is wanted)
        if self.custom_workflow is not None:
            self.custom_workflow.setVisible(wanted is not None and wanted is self.forms.get(COMFY_BACKEND))
        self.setVisible(wanted is not None)

    def focus_chain(self) -> list[QWidget]:
        from difflora_gui.qt.merge.shortcuts import focus_chain

        return [widget for form in self.forms.values() for widget in focus_chain(form)]

    def _show_values(self, name: str) -> None:
        form = self.forms.get(name)
        if form is None:
            return
        values = self.current_options(name)
        if name == COMFY_BACKEND and self.custom_workflow is not None:
            self.custom_workflow.show_values(values)
        self._quiet += 1
        try:
            form.set_values({k: v for k, v in values.items() if k in form.editors})
        finally:
            self._quiet -= 1

    def _on_edited(self, name: str, option: str) -> None:
        if self._quiet:
            return
        form = self.forms[name]
        defaults = self._defaults.get(name, {})
        kept = {k: v for k, v in self._stored.get(name, {}).items() if k not in form.editors}
        shown = {k: v for k, v in form.values().items() if v != defaults.get(k, form.schema.get(k).default)}
        self._stored[name] = {**kept, **shown}
        if not self._stored[name]:
            del self._stored[name]
        self.changed.emit(form.schema.get(option).label)

    def set_options(self, name: str, updates: Mapping[str, Any], title: str) -> None:
        """Set some of ``name``'s options at once (one ``changed``: one undo step); a value equal
        to its default is dropped from what the project keeps."""
        defaults = self._defaults.get(name, {})
        spec = self.backends.get(name)
        declared = spec.params.defaults() if spec is not None and spec.params is not None else {}
        stored = dict(self._stored.get(name, {}))
        for key, value in updates.items():
            if value == defaults.get(key, declared.get(key, "")):
                stored.pop(key, None)
            else:
                stored[key] = value
        if stored:
            self._stored[name] = stored
        else:
            self._stored.pop(name, None)
        self._show_values(name)
        self.changed.emit(title)

    # --- values ------------------------------------------------------------------------------

    def current_options(self, name: str) -> dict[str, Any]:
        """The options shown: the last defaults :meth:`options_for` was given, then the user's."""
        return {**self._defaults.get(name, {}), **self._stored.get(name, {})}

    def stored(self) -> dict[str, dict[str, Any]]:
        """``{backend: {option: value}}``: the options set away from the defaults (JSON-able)."""
        return {name: dict(values) for name, values in self._stored.items()}

    def set_stored(self, data: Any) -> None:
        """Show the options kept in a project (``stored()``'s shape; anything else is ignored)."""
        data = data if isinstance(data, Mapping) else {}
        self._stored = {str(k): dict(v) for k, v in data.items() if isinstance(v, Mapping)}
        for name in self.forms:
            self._show_values(name)

    def take(self, values: Mapping[str, Any], *, whole: bool) -> None:
        """The render form's values shown: their ``options`` when they have them; ``whole`` (a
        project's or an undo step's form) without options: none set (a project from before them)."""
        if "options" in values or whole:
            self.set_stored(values.get("options"))

    def options_for(self, name: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """The backend's options: ``defaults`` (its declared ones and the Settings'), then the
        user's; the form shows the same values."""
        if self._defaults.get(name) != dict(defaults):
            self._defaults[name] = dict(defaults)
            self._show_values(name)
        return {**defaults, **self._stored.get(name, {})}


# --- checks before a render ---------------------------------------------------------------------------


def request_problem(spec, options: Mapping[str, Any], request) -> str:
    """Why ``spec``'s backend cannot render ``request`` as asked ('' when it can), in one line
    saying what to do instead."""
    if spec is None:
        return ""
    if spec.name == DIFFUSERS_BACKEND:
        return _size_problem(options, request)
    if spec.name != COMFY_BACKEND:
        return ""
    from difflora_gui.comfy.preview_backend import model_facts
    from difflora_gui.comfy.workflows import lora_format_problem, request_problems

    template = str(options.get("template") or "")
    custom = str(options.get("workflow_file") or "").strip()
    problems = []
    if custom:
        # the user's own workflow: what it can do is known from its bindings, which the job checks
        template = Path(custom).name
    else:
        try:
            blocks = model_facts(options).num_blocks
            problems = request_problems(template, request, num_blocks=blocks)
        except UserError:
            pass  # a template a custom builder knows: the job checks it
    block_edit = not custom and template == BLOCK_EDIT_TEMPLATE
    for entry in request.loras:
        if entry.strength or entry.strength_high or entry.strength_low:
            problem = lora_format_problem(entry.file, block_edit=block_edit)
            if problem and problem not in problems:
                problems.append(problem)
    if not problems:
        return ""
    more = f" (and {len(problems) - 2} more)" if len(problems) > 2 else ""
    return f"The {template} workflow cannot render this: " + "; ".join(problems[:2]) + more


def _size_problem(options: Mapping[str, Any], request) -> str:
    """The diffusers backend's one model-dependent rule: the size (TI2V-5B: multiples of 32)."""
    from difflora_gui.preview.model_files import size_problem

    try:
        return size_problem(request.width, request.height, options) or ""
    except (UserError, TypeError, ValueError):  # options the model check names on its own
        return ""


def render_lane(spec, options: Mapping[str, Any]) -> str:
    """The job lane: the named server's own lane (``comfy:<name>``, by name or by its URL), else
    the backend's (``comfy``: any healthy server)."""
    server = str(options.get("server") or "").strip()
    if spec.name != COMFY_BACKEND or not server:
        return spec.lane
    from difflora_gui.comfy.preview_backend import ComfyOptions

    try:
        records = ComfyOptions.from_json(options).servers
    except UserError:
        records = ()
    for record in records:
        if server == record.get("name") or server.rstrip("/") == str(record.get("url", "")).rstrip("/"):
            return f"comfy:{record.get('name')}"
    return spec.lane  # a URL of no configured server: the job talks to it from any comfy lane


def gate_render(button: QPushButton, problem: str, default_tip: str) -> None:
    """Render off, with ``problem`` as its tooltip; back on once the problem is gone (unless it
    was switched off for another reason, such as a missing model)."""
    tip = f"Render is disabled: {problem}"
    if problem:
        button.setEnabled(False)
        button.setToolTip(tip)
        button.setProperty("requestProblem", tip)
    elif button.property("requestProblem"):
        if button.toolTip() == button.property("requestProblem"):
            button.setEnabled(True)
            button.setToolTip(default_tip)
        button.setProperty("requestProblem", "")

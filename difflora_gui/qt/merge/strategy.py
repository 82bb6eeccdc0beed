"""The strategy chooser: every registered merge strategy, with a form generated from its schema.

Nothing strategy-specific lives here. A compressor shows its own parameters; a module filter also
says that it hands the modules it keeps to a compressor, and shows that compressor's parameters
(the compressor is the one the engine would pick: the filter's ``compressor`` parameter when it
declares one, else its ``default_compressor``); that parameter is always a choice of the registered
compressors, however the filter declares it. With :meth:`StrategyChooser.set_undo_stack`
choosing a strategy and every field of its forms are undoable steps.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QFrame, QLabel, QStackedWidget, QVBoxLayout, QWidget
from superqt.utils import signals_blocked

from difflora_gui.merge.strategies import compressor_name_for
from difflora_gui.params import Param
from difflora_gui.qt.param_form import ParamForm
from difflora_gui.specs import MergeStrategySpec


def strategy_kind(spec: MergeStrategySpec) -> str:
    if spec.is_filter and spec.is_compressor:
        return "module filter and compressor"
    if spec.is_filter:
        return "module filter"
    return "compressor"


class StrategyChooser(QWidget):
    """A combo box of strategies, the chosen one's description and parameter form(s)."""

    changed = Signal()

    def __init__(self, strategies: Mapping[str, MergeStrategySpec], parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("strategyChooser")
        self.strategies = dict(strategies)
        self.forms: dict[str, ParamForm] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        self.combo = QComboBox()
        self.combo.setObjectName("strategyCombo")
        for name, spec in self.strategies.items():
            self.combo.addItem(f"{spec.title}  ({name})", name)
            self.combo.setItemData(self.combo.count() - 1, spec.description, Qt.ItemDataRole.ToolTipRole)
        layout.addWidget(self.combo)
        self.description = QLabel()
        self.description.setObjectName("strategyDescription")
        self.description.setWordWrap(True)
        layout.addWidget(self.description)
        self.stack = QStackedWidget()
        layout.addWidget(self.stack)
        self.compressor_box = QFrame()
        self.compressor_box.setObjectName("compressorBox")
        box_layout = QVBoxLayout(self.compressor_box)
        box_layout.setContentsMargins(10, 4, 0, 0)
        self.compressor_label = QLabel()
        self.compressor_label.setObjectName("compressorLabel")
        self.compressor_label.setWordWrap(True)
        box_layout.addWidget(self.compressor_label)
        self.compressor_stack = QStackedWidget()
        box_layout.addWidget(self.compressor_stack)
        layout.addWidget(self.compressor_box)
        self.problem_label = QLabel()
        self.problem_label.setTextFormat(Qt.TextFormat.RichText)  # its text is html-escaped
        self.problem_label.setObjectName("validationErrors")
        self.problem_label.setWordWrap(True)
        layout.addWidget(self.problem_label)
        self._compressor_forms: dict[str, ParamForm] = {}
        self._undo = None
        self._shown_name = ""
        if not self.strategies:
            self.description.setText("No merge strategy is registered (are the built-in plugins disabled?).")
        self.combo.currentIndexChanged.connect(self._on_strategy_changed)
        self._on_strategy_changed()

    # --- undo --------------------------------------------------------------------------------

    def set_undo_stack(self, stack) -> None:
        """Record the user's choices (strategy, parameters) on ``stack`` (an ``UndoStack``)."""
        self._undo = stack
        self._shown_name = self.strategy_name()
        for form in (*self.forms.values(), *self._compressor_forms.values()):
            form.set_undo_stack(stack)

    def _choose(self, name: str) -> None:
        with signals_blocked(self.combo):
            self.combo.setCurrentIndex(max(self.combo.findData(name), 0))
        self._shown_name = self.strategy_name()
        self._show_current()
        self.changed.emit()

    # --- forms -------------------------------------------------------------------------------

    def form(self, name: str) -> ParamForm:
        """The parameter form of a strategy (built once, so values survive switching)."""
        if name not in self.forms:
            spec = self.strategies[name]
            form = ParamForm(self._form_params(spec), empty_text="This strategy has no parameters.")
            form.setObjectName(f"strategyForm-{name}")
            form.changed.connect(self._on_form_changed)
            if self._undo is not None:
                form.set_undo_stack(self._undo)
            self.forms[name] = form
            self.stack.addWidget(form)
        return self.forms[name]

    def compressor_names(self) -> list[str]:
        """The registered compressors (``full_svd`` first), what a filter's ``compressor`` offers."""
        names = [n for n, spec in self.strategies.items() if spec.is_compressor]
        return sorted(names, key=lambda n: (n != "full_svd", n))

    def _form_params(self, spec: MergeStrategySpec) -> tuple[Param, ...]:
        # a filter's "compressor" field, declared as text or as a choice, offers the compressors
        # registered here (a third-party filter's too), never free text
        if not spec.is_filter or "compressor" not in spec.params:
            return tuple(spec.params)
        return tuple(
            dataclasses.replace(p, type="choice", choices=self.compressor_names)
            if p.name == "compressor"
            else p
            for p in spec.params
        )

    def _compressor_form(self, name: str) -> ParamForm:
        # a second form per compressor: its values apply when it serves a filter
        if name not in self._compressor_forms:
            spec = self.strategies[name]
            form = ParamForm(spec.params)
            form.setObjectName(f"compressorForm-{name}")
            form.changed.connect(self._on_form_changed)
            if self._undo is not None:
                form.set_undo_stack(self._undo)
            self._compressor_forms[name] = form
            self.compressor_stack.addWidget(form)
        return self._compressor_forms[name]

    # --- state -------------------------------------------------------------------------------

    def strategy_name(self) -> str:
        return str(self.combo.currentData() or "")

    def spec(self) -> MergeStrategySpec | None:
        return self.strategies.get(self.strategy_name())

    def compressor_name(self) -> str | None:
        """The compressor the chosen strategy runs with (its own name for a compressor)."""
        spec = self.spec()
        if spec is None:
            return None
        return compressor_name_for(spec, self.form(spec.name).values())

    def strategy_params(self) -> dict[str, dict[str, Any]]:
        """``MergeParams.strategy_params``: values that differ from the defaults, for the strategies used."""
        spec = self.spec()
        if spec is None:
            return {}
        result = {}
        own = self.form(spec.name).changed_values()
        if own:
            result[spec.name] = own
        compressor = self.compressor_name()
        if compressor and compressor != spec.name and compressor in self.strategies:
            values = self._compressor_form(compressor).changed_values()
            if values:
                result[compressor] = values
        return result

    def problem(self) -> str:
        """Why this strategy cannot run as set ("" when it can)."""
        spec = self.spec()
        if spec is None:
            return "no merge strategy is registered"
        errors = self.form(spec.name).errors()
        if errors:
            return next(iter(errors.values()))
        compressor = self.compressor_name()
        if compressor != spec.name:
            other = self.strategies.get(compressor or "")
            if other is None:
                return f"the compressor {compressor!r} is not registered"
            if not other.is_compressor:
                return f"{compressor!r} is a module filter, not a compressor"
            errors = self._compressor_form(compressor).errors()
            if errors:
                return next(iter(errors.values()))
        return ""

    def set_state(
        self, name: str, strategy_params: Mapping[str, Mapping[str, Any]] | None = None
    ) -> list[str]:
        """Choose a strategy and show its parameters; returns problems (unknown strategy/parameters)."""
        problems = []
        index = self.combo.findData(name)
        if index < 0:
            problems.append(f"the recipe's strategy {name!r} is not registered (is its plugin enabled?)")
        else:
            self.combo.blockSignals(True)
            self.combo.setCurrentIndex(index)
            self.combo.blockSignals(False)
        params = {k: dict(v) for k, v in (strategy_params or {}).items()}
        if index >= 0:
            form = self.form(name)
            form.reset_defaults()
            unknown = form.set_values(params.pop(name, {}))
            problems += [f"strategy {name!r} has no parameter {u!r}" for u in unknown]
            compressor = self.compressor_name()
            if compressor and compressor != name and compressor in self.strategies:
                compressor_form = self._compressor_form(compressor)
                compressor_form.reset_defaults()
                unknown = compressor_form.set_values(params.pop(compressor, {}))
                problems += [f"compressor {compressor!r} has no parameter {u!r}" for u in unknown]
        problems += [f"parameters for unused strategy {other!r} were ignored" for other in params]
        self._shown_name = self.strategy_name()
        self._show_current()
        self.changed.emit()
        return problems

    # --- internals ---------------------------------------------------------------------------

    def _on_strategy_changed(self, *_args) -> None:
        before, after = self._shown_name, self.strategy_name()
        self._shown_name = after
        self._show_current()
        self.changed.emit()
        if self._undo is not None and before and before != after:
            self._undo.record(
                f"Strategy: {before} → {after}", lambda: self._choose(before), lambda: self._choose(after)
            )

    def _on_form_changed(self) -> None:
        self._show_compressor()
        self._show_problem()
        self.changed.emit()

    def _show_problem(self) -> None:
        problem = self.problem()
        self.problem_label.setText(html.escape(problem))
        self.problem_label.setVisible(bool(problem))

    def _show_current(self) -> None:
        spec = self.spec()
        if spec is None:
            self.compressor_box.hide()
            return
        self.stack.setCurrentWidget(self.form(spec.name))
        self.description.setText(
            f"<span style='color:#8b9098'>{html.escape(strategy_kind(spec).capitalize())}.</span> "
            f"{html.escape(spec.description)}"
        )
        self._show_compressor()
        self._show_problem()

    def _show_compressor(self) -> None:
        spec = self.spec()
        compressor = self.compressor_name()
        if spec is None or compressor == spec.name:
            self.compressor_box.hide()
            return
        self.compressor_box.show()
        other = self.strategies.get(compressor or "")
        if other is None or not other.is_compressor:
            self.compressor_label.setText(
                f"Hands the modules it keeps to the compressor <b>{html.escape(str(compressor))}</b>, "
                "which is not available."
            )
            self.compressor_stack.hide()
            return
        self.compressor_label.setText(
            f"Hands the modules it keeps to the compressor <b>{html.escape(other.title)}</b> "
            f"({html.escape(other.name)}):"
        )
        form = self._compressor_form(other.name)
        self.compressor_stack.setCurrentWidget(form)
        self.compressor_stack.setVisible(len(other.params) > 0)

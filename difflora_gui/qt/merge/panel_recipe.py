"""The workbench's recipe: the form as ``MergeParams``, stored in and restored from the project.

A mixin of :class:`~difflora_gui.qt.merge.panel.MergePanel`. The project's ``merge`` section holds
``settings`` (the form, written a moment after each edit; Overwrite never included) and ``recipe``
(what the last merge ran, ``created`` included, so Re-run recipe reproduces its file bit for bit).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Slot

from difflora_gui.errors import UserError
from difflora_gui.merge.config import MERGE_CONFIG, form_values, merge_fields
from difflora_gui.merge.params import DEFAULT_STRATEGY, MergeParams
from difflora_gui.params import NO_GUI_DEFAULT

SECTION = "merge"
#: the recipe keys of the inputs (the per-expert ones when the inputs box has them)
INPUT_KEYS = ("lora_a", "lora_b", "lora_a_high", "lora_a_low", "lora_b_high", "lora_b_low", "expert")


class PanelRecipe:
    """The form ⇄ recipe ⇄ project (mixed into the panel)."""

    # --- the recipe --------------------------------------------------------------------------

    def build_params(self, *, for_merge: bool = True) -> MergeParams:
        """The recipe the form describes, checked (``UserError`` says what is missing or wrong)."""
        inputs = self._input_fields()
        for role in ("a", "b"):
            if not (
                inputs.get(f"lora_{role}")
                or inputs.get(f"lora_{role}_high")
                or inputs.get(f"lora_{role}_low")
            ):
                raise UserError(f"choose LoRA {role.upper()}")
        selector = self.targets.selector()
        problem = self.targets.problem()
        if selector is None or problem:
            raise UserError(f"targets: {problem}")
        problem = self.strategy.problem()
        if problem:
            raise UserError(f"strategy: {problem}")
        for form in (self.rank_form, self.strength_form, self.output_form):
            errors = form.errors()
            if errors:
                raise UserError(next(iter(errors.values())))
        fields = merge_fields(self.rank_form.values(), self.strength_form.values(), self.output_form.values())
        output = self.output_box.text()
        if for_merge:
            if not output:
                raise UserError("choose the output file")
            if not output.lower().endswith(".safetensors"):
                raise UserError("the output must be a .safetensors file")
        else:
            fields["overwrite"] = False
            fields["analyze"] = False
        params = MergeParams(
            **inputs,
            output=output if for_merge else None,
            targets=selector.to_text(),
            strategy=self.strategy.strategy_name(),
            strategy_params=self.strategy.strategy_params(),
            device=self.device(),
            created=self._created,
            **fields,
        )
        return params.normalized()

    def settings_json(self) -> dict[str, Any]:
        """The form as a recipe dict for the project (whatever is set, even if incomplete).

        Overwrite is never stored: it is a choice for one merge, not a setting."""
        fields = merge_fields(self.rank_form.values(), self.strength_form.values(), self.output_form.values())
        data = MergeParams().to_json()
        data.update(fields)
        data.update(
            {
                key: value or "" if key in ("lora_a", "lora_b") else value
                for key, value in self._input_fields().items()
            }
        )
        data.update(
            output=self.output_box.text() or None,
            targets=self.targets.text(),
            strategy=self.strategy.strategy_name(),
            strategy_params=self.strategy.strategy_params(),
            device=str(self.device_combo.currentData() or "cpu"),
            created=self._created,
            overwrite=False,
        )
        return data

    @Slot()
    def save_settings(self) -> None:
        """Write the form into the project's ``merge`` section (the window saves the file)."""
        self._save_timer.stop()
        self.services.project.update_section(
            SECTION, settings=self.settings_json(), output_auto=self.output_box.auto
        )

    def apply_recipe(self, recipe: MergeParams | dict, *, output_auto: bool = False) -> list[str]:
        """Show a recipe in the form (and read its inputs); returns what could not be restored.

        Overwrite is left unticked whatever the recipe says."""
        data = recipe.to_json() if isinstance(recipe, MergeParams) else dict(recipe)
        problems: list[str] = []
        try:
            params = MergeParams.from_json({k: v for k, v in data.items() if k in MergeParams().to_json()})
        except (UserError, TypeError) as exc:
            return [f"the stored merge settings cannot be used: {exc}"]
        self._restoring = True
        try:
            self._apply_inputs(params)
            values = form_values(params.to_json())
            self.rank_form.set_values(values["rank"])
            self.strength_form.set_values(values["strength"])
            self.output_form.set_values(values["output"])
            self.output_box.clear_overwrite()
            problems += self.strategy.set_state(params.strategy, params.strategy_params)
            self.targets.set_text(params.targets or "all")
            index = self.device_combo.findData(params.device)
            if index >= 0:
                self.device_combo.setCurrentIndex(index)
            self._follow_inputs()
            self.output_box.set_output(params.output, auto=output_auto or not params.output)
        finally:
            self._restoring = False
        self._created = params.created
        self._update_run_state()
        return problems

    def _apply_inputs(self, params: MergeParams) -> None:
        data = params.to_json()
        per_expert = any(data.get(key) for key in INPUT_KEYS[2:6])
        apply_fields = getattr(self.inputs, "apply_fields", None)
        if apply_fields is not None and per_expert:
            apply_fields({key: data.get(key) for key in INPUT_KEYS if key in data})
            return
        for role, path in (("a", params.lora_a), ("b", params.lora_b)):
            if not path:
                self.clear_input(role)
            elif self.paths[role] != Path(path):
                self.set_input(role, path)

    def restore_from_project(self) -> None:
        """Show the open project's merge settings (nothing to do in a new project)."""
        data = self.services.project.section(SECTION)
        settings = data.get("settings") or data.get("recipe")
        if isinstance(settings, dict):
            problems = self.apply_recipe(settings, output_auto=bool(data.get("output_auto", False)))
            for problem in problems:
                self.services.log(f"Merge: {problem}", "warning")
        self._save_timer.stop()  # what was just shown came from the project: nothing to write back
        self._update_run_state()

    def reset(self) -> None:
        """Back to a fresh form: no inputs, default settings, the Settings device."""
        self._save_timer.stop()
        # a fresh form starts from the GUI's defaults (e.g. leave non-targets out), not the CLI's
        gui_defaults = {
            p.name: p.form_default for p in MERGE_CONFIG.params if p.gui_default is not NO_GUI_DEFAULT
        }
        self.apply_recipe(MergeParams(strategy=self._default_strategy(), **gui_defaults), output_auto=True)
        index = self.device_combo.findData(self.services.default_device())
        self._restoring = True
        self.device_combo.setCurrentIndex(max(index, 0))
        self._restoring = False
        self._created = None
        self.run_bar.clear_status()
        self.undo_stack.clear()
        clear = getattr(self.analysis_side, "clear", None)  # another project: its analysis is not this one's
        if clear is not None and self.analysis_side.result is not None:
            clear()

    def _default_strategy(self) -> str:
        names = list(self.strategy.strategies)
        return DEFAULT_STRATEGY if DEFAULT_STRATEGY in names else (names[0] if names else DEFAULT_STRATEGY)

    def _on_project_replaced(self, _project) -> None:
        self.reset()
        self.restore_from_project()

    def stored_recipe(self) -> MergeParams | None:
        recipe = self.services.project.section(SECTION).get("recipe")
        if not isinstance(recipe, dict):
            return None
        try:
            return MergeParams.from_json(recipe)
        except (UserError, TypeError):
            return None

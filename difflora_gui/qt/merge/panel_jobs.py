"""The workbench's jobs: Analyze, Merge, Re-run recipe, Cancel, and what the panel does with results.

A mixin of :class:`~difflora_gui.qt.merge.panel.MergePanel` (it uses the panel's widgets and form).
A merge never replaces a file without asking: when any file it would write exists, the user is asked
first, with what that file is; Overwrite is unticked after every merge. Every finished merge is a
record of the project's merge history, with the sha256 of each file it wrote.
"""

from __future__ import annotations

from pathlib import Path

from difflora_gui.errors import UserError
from difflora_gui.jobs.job import JobRequest
from difflora_gui.merge.history import record_merge, status_text, unwrap, written_files
from difflora_gui.merge.params import MergeParams
from difflora_gui.project import new_record_id
from difflora_gui.qt.merge.inputs import short_name
from difflora_gui.qt.merge.shortcuts import sync_shortcuts
from difflora_gui.qt.replace_question import ask_replace

SECTION = "merge"
TASKS = "difflora_gui.merge.workbench_jobs"


class PanelJobs:
    """Running the panel's jobs (mixed into the panel)."""

    def run_problem(self, *, for_merge: bool = True) -> str:
        """Why Merge (or Analyze) cannot run now ("" when it can)."""
        if self.job is not None:
            return f"{self.job_kind} is running"
        problem = self.inputs.problem()
        if problem:
            return problem
        try:
            params = self.build_params(for_merge=for_merge)
        except UserError as exc:
            return str(exc)
        if for_merge:
            output = Path(params.output or "")
            if not output.parent.is_dir() and not self._is_default_folder(output.parent):
                return f"the output folder does not exist: {output.parent}"
        return ""

    def _is_default_folder(self, folder: Path) -> bool:
        return Path(self.services.output_dir()) == folder

    def _update_run_state(self) -> None:
        running = self.job is not None
        self.run_bar.set_problems(
            merge=self.run_problem(for_merge=True), analyze=self.run_problem(for_merge=False), running=running
        )
        self.copy_button.setEnabled(self.paths["a"] is not None and self.paths["b"] is not None)
        self.rerun_button.setEnabled(not running and self.stored_recipe() is not None)
        self.preview_link.refresh()  # its file may have gone since
        sync_shortcuts(self, getattr(self, "shortcuts", []))

    def analyze(self) -> None:
        """Compute the analysis of the current inputs and targets (nothing is written)."""
        try:
            params = self.build_params(for_merge=False)
        except UserError as exc:
            self._set_status(str(exc), "error")
            return
        self._submit("analyze", params)

    def merge(self) -> None:
        """Merge with the form's settings and write the output (asking before replacing a file)."""
        problem = self.run_problem(for_merge=True)
        if problem:
            self._set_status(problem, "error")
            return
        if self.output_box.free_automatic_name():  # an automatic name never lands on an earlier merge
            self.services.log(f"Merge: {Path(self.output_box.text()).name} (the automatic name was taken)")
        params = self.build_params(for_merge=True)
        if self._agreed_to_replace(params):
            self._submit("merge", params)

    def rerun_recipe(self) -> None:
        """Run the last merge's recipe again, exactly (asking before its file is replaced)."""
        recipe = self.stored_recipe()
        if recipe is None:
            self._set_status("this project has no merge recipe yet", "error")
            return
        auto = self.output_box.auto  # a re-run does not freeze the name: it still follows the inputs
        for problem in self.apply_recipe(recipe, output_auto=False):
            self.services.log(f"Merge: {problem}", "warning")
        self.output_box.set_auto(auto)
        recipe.overwrite = False
        if recipe.device not in self.services.devices.ids():  # the device is part of the recipe (and bits)
            self.services.log(
                f"Merge: the recipe ran on {recipe.device}, which is not available; running on {self.device()} "
                "(the file may differ in its last bits)",
                "warning",
            )
            recipe.device = self.device()
        if self._agreed_to_replace(recipe):
            self._submit("merge", recipe.normalized())

    def _agreed_to_replace(self, params: MergeParams) -> bool:
        """No file of this merge exists, or the user agreed to replace them (``params.overwrite`` set)."""
        existing = self.output_box.existing_files(params.output or "", analysis=bool(params.analyze))
        self._replacing = [str(path) for path in existing]
        if not existing:
            return True
        what = f"a merge of {short_name(params.lora_a or params.lora_a_high or '?')} − "
        what += short_name(params.lora_b or params.lora_b_high or "?")
        if not ask_replace(self, existing, what):
            self._replacing = []
            self._set_status(f"Kept {existing[0].name}: nothing was written (choose another name)", "warning")
            return False
        params.overwrite = True
        return True

    def _submit(self, kind: str, params: MergeParams) -> None:
        if self.job is not None:
            return
        if kind == "merge" and params.output:
            folder = Path(params.output).parent
            if not folder.is_dir() and self._is_default_folder(folder):
                folder.mkdir(parents=True, exist_ok=True)
        self.analysis_side.prepare()
        a = short_name(params.lora_a or params.lora_a_high or "?")
        b = short_name(params.lora_b or params.lora_b_high or "?")
        title = f"Merge {a} − {b}" if kind == "merge" else f"Analyze {a} − {b}"
        function = f"{TASKS}:merge" if kind == "merge" else f"{TASKS}:analyze"
        project = self.services.project
        self._job_record_id = new_record_id()
        events = project.workspace.events_path("merges" if kind == "merge" else "jobs", self._job_record_id)
        request = JobRequest(title, function, params, lane="device", device=params.device, event_log=events)
        self.job_kind = kind
        self._job_project = project  # the recipe goes to this project, even if another opens
        self.job = handle = self.services.jobs.submit(request)
        handle.progressed.connect(self._on_progress)
        handle.succeeded.connect(self._on_succeeded)
        handle.failed.connect(self._on_failed)
        handle.finished.connect(self._on_finished)
        self.run_bar.show_queued()
        self._set_status(f"{'Merging' if kind == 'merge' else 'Analyzing'} on {params.device}…", "info")
        self._update_run_state()

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.run_bar.eta_label.setText("cancelling…")

    def _on_progress(self, progress) -> None:
        if self.job is None:
            return
        self.run_bar.show_progress(
            progress.fraction, self.job.eta_text or f"{progress.done:.0f}/{progress.total or 0:.0f}"
        )

    def _on_succeeded(self, outcome) -> None:
        if self.job_kind != "merge":
            if outcome.by_expert:  # a Wan2.2 pair: the rows are the experts'
                counts = ", ".join(f"{len(outcome.by_expert[e].rows)} {e}-noise" for e in outcome.experts)
                self._set_status(f"Analysis of {counts} modules (nothing written)", "ok")
            else:
                self._set_status(f"Analysis of {len(outcome.rows)} modules (nothing written)", "ok")
            self.show_analysis(outcome, "Analysis (nothing written)")
            return
        result, sha256 = unwrap(outcome)
        self.last_result = result
        record_merge(
            self._job_project, result, sha256, record_id=self._job_record_id, replaced=self._replacing
        )
        if self._job_project is self.services.project:
            self._created = result.recipe.get("created")
            self.save_settings()
        for line in result.summary().splitlines():
            self.services.log(f"Merge: {line}")
        for warning in result.warnings:
            self.services.log(f"Merge: {warning}", "warning")
        outputs = written_files(result)
        self._set_status(status_text(result, outputs), "ok")
        self.run_bar.set_output_folder(Path(outputs[0]).parent if outputs else None)
        self.preview_link.set_result(result)
        if result.analysis is not None:
            names = " + ".join(Path(path).name for path in outputs) or "?"
            self.show_analysis(result.analysis, f"Merge → {names}")

    def _on_failed(self, message: str, _trace: str) -> None:
        what = "Merge" if self.job_kind == "merge" else "Analyze"
        self._set_status(f"{what} failed: {message}", "error")

    def _on_finished(self, state: str) -> None:
        kind = self.job_kind
        self.job = None
        self.job_kind = ""
        self.run_bar.show_ended(state == "done")
        if state == "cancelled":
            self._set_status(
                f"{'Merge' if kind == 'merge' else 'Analyze'} cancelled; nothing was written.", "warning"
            )
        if kind == "merge":
            self._replacing = []
            self._restoring = True  # Overwrite was for this merge only (the form still shows its recipe)
            try:
                self.output_box.clear_overwrite()
            finally:
                self._restoring = False
        self._update_run_state()

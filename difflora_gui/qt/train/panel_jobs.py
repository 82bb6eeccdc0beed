"""The Train panel's actions: plan and check the runs, train them, follow them, resume, merge, export.

A mixin of :class:`~difflora_gui.qt.train.panel.TrainPanel`. Train plans the pair
(:func:`~difflora_gui.train.plan.plan_pair`; set B empty: :func:`~difflora_gui.train.plan.plan_single`)
from the one config form, checks every run and places them on the device lanes
(:class:`~difflora_gui.train.pair_job.PairJob`: A before B on one GPU, side by side on two),
records them in the project (:mod:`difflora_gui.train.run_records`: a RunRecord per run, the config
once in the ``train`` section) and submits them through ``services.submit``. The panel only
connects to the handles: the monitor draws their events, and each run's record follows its
events (artifacts at once, step counts at most once a second, so a fast run does not rewrite the
project per step) and its end (finished / stopped / failed, what the event log says it wrote).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtCore import QTimer

from difflora_gui.errors import UserError
from difflora_gui.jobs.events import Artifact
from difflora_gui.jobs.job import JobRequest
from difflora_gui.qt.jobs import CANCELLED, DONE, RUNNING
from difflora_gui.qt.train.checks_view import CheckOutcome, free_name_hint, merge_issues
from difflora_gui.train import run_records
from difflora_gui.train.backend import ERROR, TrainIssue, backend_spec, check_run
from difflora_gui.train.plan import plan_pair, plan_single

SECTION = run_records.TRAIN_SECTION
EXPORT_TASK = "difflora_gui.dataset.export_job:run_export"
#: the folder (in the dataset's workspace folder) the project's pairs are exported to for training
EXPORT_FOLDER = "train-folders"
#: at most this often a running run's step count is written into its record
RECORD_FLUSH_MS = 1000
MERGE_PANEL = "merge-workbench"
END_STATUS = {DONE: run_records.FINISHED, CANCELLED: run_records.STOPPED}


class PanelJobs:
    """Training, resuming and exporting (mixed into the panel)."""

    def _init_jobs(self) -> None:
        self.handles: dict = {}  # run id -> JobHandle of a queued or running run
        self.live_runs: dict = {}  # run id -> TrainRun
        self._live_records: dict = {}  # run id -> the record copy its events update
        self._dirty_records: set[str] = set()
        self.export_job = None
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(RECORD_FLUSH_MS)
        self._flush_timer.timeout.connect(self.flush_records)
        # the handles outlive a rebuilt panel: its connections to them go when it goes
        self._connections: list = []
        connections = self._connections  # not self: the slot runs while the panel is being destroyed
        self.destroyed.connect(lambda *_: disconnect_all(connections))

    # --- planning and checks -----------------------------------------------------------------

    def plan(self):
        """``(spec, runs)`` for the inputs shown; ``UserError`` when they cannot make runs yet."""
        spec = self.config_box.spec()
        if spec is None:
            raise UserError("no trainer backend is installed; see Tools ▸ Plugins")
        a_dir, b_dir = self.datasets.folders()
        if not a_dir:
            raise UserError("choose set A's folder (and set B's for a pair), or drop them on the panel")
        name = self.datasets.name() or Path(a_dir).name
        config = self.config_box.config()
        backend_config = self.config_box.backend_settings()
        output_dir = self.datasets.output_dir()
        common = dict(backend=spec.name, backend_config=backend_config)
        if b_dir:
            runs = plan_pair(config, a_dir, b_dir, output_dir, name, **common)
        elif config.get("pair_mode") == "slider":
            raise UserError("slider mode trains on both sets: choose set B, or choose another pair mode")
        else:
            runs = plan_single(config, a_dir, output_dir, name, **common)
        return spec, runs

    def prepare_check(self):
        """Plan the runs (GUI thread) and return the work of checking them (any thread), or the
        planning error at once."""
        try:
            spec, runs = self.plan()
        except UserError as exc:
            return CheckOutcome(planning_error=str(exc))
        busy = {str(run.output_path()) for run in self.live_runs.values()}
        base_name = self.datasets.name() or Path(self.datasets.folders()[0]).name
        dialog = self.config_box.dialog
        want_commands = dialog is not None and dialog.isVisible()

        def work() -> CheckOutcome:
            per_run = []
            for run in runs:
                issues = check_run(spec, run)
                if str(run.output_path()) in busy:
                    issues.append(
                        TrainIssue(
                            ERROR, f"{run.name} is training now; wait for it or choose another name", "name"
                        )
                    )
                per_run.append((run.name, issues))
            taken = any(i.level == ERROR and i.field == "name" for _n, found in per_run for i in found)
            hint = free_name_hint(base_name, runs, busy) if taken else ""
            commands = _commands_or_error(spec, runs) if want_commands else None
            return CheckOutcome(issues=merge_issues(per_run), runs=len(runs), hint=hint, commands=commands)

        return work

    def _devices(self) -> tuple[list, bool]:
        """The devices the window detected, and whether detection has finished."""
        registry = getattr(self.services, "devices", None)
        if registry is None or not registry.is_detected:
            return [], False
        return registry.devices(), True

    # --- train -------------------------------------------------------------------------------

    def start_training(self) -> bool:
        """Check, record and submit the planned runs; False (with the reason shown) when refused."""
        outcome = self.checks.check_blocking()  # the inputs as they are now, not as last checked
        if not outcome.ok:
            self.set_status(f"Cannot train: {outcome.reason()}", "error")
            return False
        try:
            spec, runs = self.plan()
            self._submit_runs(spec, runs)
        except UserError as exc:
            self.set_status(f"Cannot train: {exc}", "error")
            return False
        sides = ", ".join(f"{run.name} on {run.device}" for run in runs)
        self.set_status(f"Training {len(runs)} run{'s' if len(runs) > 1 else ''}: {sides}", "info")
        self.checks.schedule()
        return True

    def _submit_runs(self, spec, runs, *, fresh: bool = True) -> list:
        from difflora_gui.train.pair_job import PairJob

        devices, detected = self._devices()
        job = PairJob.prepare(spec, runs, devices=devices, device=self.services.default_device())
        if not detected and self.services.default_device() in ("", "auto"):
            for run in job.runs:  # the window places them once its devices are known
                run.device = "auto"
        for warning in job.warnings:
            self.services.log(f"Train: {warning.text}", "warning")
        # the records first: they point each run's event log into the project's workspace
        run_records.record_runs(self.services.project, job.runs)
        handles = job.submit(self.services.submit)
        if fresh and not self.handles:
            self.monitor.clear()  # a new pair: the monitor shows it alone (a resume continues its curves)
        self.show_monitor()
        for run, handle in zip(job.runs, handles, strict=True):
            self._follow(run, handle)
        self.refresh_runs()
        return handles

    def _follow(self, run, handle) -> None:
        run_id = run.run_id
        self.handles[run_id] = handle
        self.live_runs[run_id] = run
        project = self.services.project
        self._connections += [
            handle.state_changed.connect(lambda state, r=run_id, p=project: self._on_run_state(p, r, state)),
            handle.event_emitted.connect(lambda event, r=run_id, p=project: self._on_run_event(p, r, event)),
            handle.progressed.connect(
                lambda progress, r=run_id, p=project: self._on_run_progress(p, r, progress)
            ),
            handle.finished.connect(
                lambda state, r=run_id, h=handle, p=project: self._on_run_finished(p, r, h, state)
            ),
        ]
        self.monitor.watch(handle, run)
        self.update_tab_order()  # the monitor's new Stop buttons take their place in the chain

    def adopt_active_jobs(self) -> None:
        """Follow this project's training jobs that are queued or running already (the window
        rebuilt its panels while they ran: a plugin was switched on or off)."""
        from difflora_gui.project.records import RunRecord
        from difflora_gui.train.plan import TrainRun

        project = self.services.project
        known = {record.id for record in project.records(RunRecord)}
        for handle in self.services.jobs.active_jobs():
            run = handle.request.params
            if isinstance(run, TrainRun) and run.run_id in known and run.run_id not in self.handles:
                self._follow(run, handle)
                if handle.state == RUNNING:
                    self._on_run_state(project, run.run_id, RUNNING)

    def _on_run_state(self, project, run_id: str, state: str) -> None:
        if state != RUNNING or project is not self.services.project:
            return
        record = run_records.set_status(project, run_id, run_records.RUNNING)
        self._live_records[run_id] = dataclasses.replace(record, checkpoints=list(record.checkpoints))

    def _on_run_event(self, project, run_id: str, event) -> None:
        record = self._live_records.get(run_id)
        if record is None or project is not self.services.project:
            return
        if run_records.apply_event(record, event):
            self._dirty_records.add(run_id)
            if isinstance(event, Artifact):
                self.flush_records()  # a new file: listed at once
            elif not self._flush_timer.isActive():
                self._flush_timer.start()

    def _on_run_progress(self, project, run_id: str, progress) -> None:
        """Step counts (progress reports are not typed events): into the record at most once a second."""
        record = self._live_records.get(run_id)
        if record is None or project is not self.services.project or not progress.total:
            return
        if int(progress.total) == record.total_steps and int(progress.done) > record.steps_done:
            record.steps_done = int(progress.done)
            self._dirty_records.add(run_id)
            if not self._flush_timer.isActive():
                self._flush_timer.start()

    def flush_records(self) -> None:
        """Write the running runs' changed records into the project."""
        self._flush_timer.stop()
        project = self.services.project
        for run_id in sorted(self._dirty_records):
            record = self._live_records.get(run_id)
            if record is not None:
                project.add_record(dataclasses.replace(record, checkpoints=list(record.checkpoints)))
        self._dirty_records.clear()

    def _on_run_finished(self, project, run_id: str, handle, state: str) -> None:
        self.handles.pop(run_id, None)
        run = self.live_runs.pop(run_id, None)
        self._dirty_records.discard(run_id)
        self._live_records.pop(run_id, None)
        if project is not self.services.project:
            return  # another project opened meanwhile: the old one is not on show (nor saved)
        status = END_STATUS.get(state, run_records.FAILED)
        result = handle.result if state == DONE else None
        error = handle.error_text if status == run_records.FAILED else ""
        record = run_records.set_status(project, run_id, status, result=result, events_log=True, error=error)
        name = run.name if run is not None else record.name
        if status == run_records.FINISHED:
            self.set_status(f"{name} finished: {record.output}", "ok")
        elif status == run_records.STOPPED:
            kept = record.meta.get("kept") or (Path(record.state).name if record.state else "")
            what = f"; kept {kept}, Resume continues from it" if kept else "; nothing was kept"
            self.set_status(f"{name} stopped at step {record.steps_done}{what}", "warning")
        else:
            self.set_status(f"{name} failed: {error}. See the log for the last lines and a hint", "error")
        if not self.handles:
            self._offer_merge(record)
        self.refresh_runs()
        self.checks.schedule()

    def _offer_merge(self, record) -> None:
        from difflora_gui.qt.train.runs_list import merge_roles

        records = run_records.pair_records(self.services.project, record.pair_id) if record.pair_id else []
        if merge_roles(records) is not None:
            from difflora_gui.qt.train.runs_list import pair_title

            self.runs_list.select_run(record.id)
            where = "Merge these" if self._tall else "Runs ▸ Merge these"
            self.set_status(
                f"The pair '{pair_title(records)}' has finished: {where} fills the Merge section with A and B",
                "ok",
            )

    def cancel_all(self, *, keep: bool = False) -> None:
        for handle in list(self.handles.values()):
            handle.cancel(keep=keep)

    # --- resume, show, merge -----------------------------------------------------------------

    def resume(self, run_id: str) -> bool:
        """Continue a stopped run from its newest state (to its original step count)."""
        project = self.services.project
        try:
            record = run_records.run_record(project, run_id)
            if run_id in self.handles:
                raise UserError(f"{record.name} is already training")
            run = run_records.resume_run(record)
            spec = backend_spec(self.services.host, record.backend)
            self._submit_runs(spec, [run], fresh=False)
        except UserError as exc:
            self.set_status(f"Cannot resume: {exc}", "error")
            return False
        self.set_status(f"Resuming {run.name} at step {run.steps_done} of {run.total_steps}", "info")
        return True

    def show_run(self, run_id: str) -> None:
        """The monitor shows the run: live when it trains, else replayed from its event log."""
        if run_id in self.handles:
            return  # the monitor follows it already
        try:
            record = run_records.run_record(self.services.project, run_id)
        except UserError as exc:
            self.set_status(str(exc), "error")
            return
        self.monitor.show_record(record)

    def merge_pair(self, pair_id: str) -> bool:
        """Open the Merge section with the pair's finished files in A and B (per expert for Wan2.2)."""
        from difflora_gui.qt.train.runs_list import merge_roles

        roles = merge_roles(run_records.pair_records(self.services.project, pair_id))
        if roles is None:
            self.set_status("This pair has no finished A and B files to merge yet", "warning")
            return False
        window = self.services.window
        entry = getattr(window, "panels", {}).get(MERGE_PANEL) if window is not None else None
        if entry is None or not entry.ok or not hasattr(entry.widget, "set_input"):
            self.set_status("The Merge section's panel is not installed (Tools ▸ Plugins)", "error")
            return False
        window.show_section("merge")
        for role in sorted(roles, key=lambda r: (r[0], r)):
            entry.widget.set_input(role, roles[role])
        self.services.show_status("Merge: LoRA A and LoRA B filled in from the finished pair")
        return True

    # --- the project's dataset as folders ----------------------------------------------------

    def export_project_dataset(self) -> bool:
        """Export the Dataset section's pairs as A/ and B/ folders in the workspace, then use them."""
        from difflora_gui.dataset import store
        from difflora_gui.project.records import DatasetRecord

        project = self.services.project
        if self.export_job is not None:
            return False
        wanted = project.section("dataset").get("dataset_id")
        records = [r for r in project.records(DatasetRecord) if r.id == wanted] or project.records(
            DatasetRecord
        )
        if not records:
            self.set_status(
                "The project has no dataset yet: import pairs in the Dataset section first", "warning"
            )
            return False
        record = records[-1]
        out = project.workspace.dir_for("dataset", record.id) / EXPORT_FOLDER
        if any(str(out) in f"{run.dataset}|{run.pair_dataset}" for run in self.live_runs.values()):
            self.set_status(
                "A run trains on the exported folders now; export again when it has ended", "warning"
            )
            return False
        params = {
            "dataset_folder": str(store.dataset_folder(project, record.id)),
            "out": str(out),
            "format": "folders",
            "overwrite": True,  # only a previous export (with its manifest) is ever replaced
        }
        request = JobRequest(
            f"Export {record.name or 'the dataset'} as A/B folders", EXPORT_TASK, params, lane="light"
        )
        self.export_job = handle = self.services.submit(request)
        handle.succeeded.connect(lambda result, p=project: self._on_exported(p, result))
        handle.failed.connect(lambda message, _tb: self.set_status(f"Export failed: {message}", "error"))
        handle.finished.connect(self._on_export_finished)
        self.datasets.project_button.setEnabled(False)
        self.set_status(f"Exporting the dataset's pairs into {out}…", "info")
        return True

    def use_project_dataset(self) -> bool:
        """The Dataset section's "Train on these pairs…": export its pairs and fill in set A and set B.

        The rest of the form stays as the user left it (an empty Name is filled from the folder, as
        for any chosen folder); the window's status bar says what changed once the export has ended."""
        before = self.datasets.state()
        if not self.export_project_dataset():
            return False
        self.export_job.succeeded.connect(
            lambda result, p=self.services.project, b=before: self._announce_project_dataset(p, b, result)
        )
        return True

    def _announce_project_dataset(self, project, before: dict, result) -> None:
        after = self.datasets.state()
        if project is not self.services.project or not ((result or {}).get("folders") or {}).get("a"):
            return  # another project now, or an export without folders (its status line says so)
        pairs = (result or {}).get("pairs", 0)
        sides = ("a_dir", "b_dir")
        if all(after[key] == before[key] for key in sides):  # the same export folders, written again
            self.services.show_status(
                f"Train: set A and set B hold the dataset's {pairs} pairs (exported again)"
            )
            return
        was = " and ".join(Path(before[key]).name for key in sides if before[key]) or "empty"
        named = f"; Name: {after['name']}" if after["name"] != before["name"] else ""
        self.services.show_status(
            f"Train: set A and set B hold the dataset's {pairs} pairs now (were {was}){named}; "
            "nothing else changed",
            12_000,
        )

    def _on_exported(self, project, result) -> None:
        if project is not self.services.project:
            return
        folders = (result or {}).get("folders") or {}
        if not folders.get("a") or not folders.get("b"):
            self.set_status("The export wrote no A and B folders", "error")
            return
        self.datasets.set_folders(folders["a"], folders["b"])
        left_out = len((result or {}).get("left_out") or [])
        note = f" ({left_out} left out: see the Dataset section)" if left_out else ""
        self.set_status(
            f"Using the project's dataset: {result.get('pairs', 0)} pairs in {Path(folders['a']).parent}{note}",
            "ok",
        )

    def _on_export_finished(self, _state: str) -> None:
        self.export_job = None
        self.refresh_runs()


def disconnect_all(connections: list) -> None:
    from PySide6.QtCore import QObject

    for connection in connections:
        try:
            QObject.disconnect(connection)
        except (RuntimeError, TypeError):  # the handle is gone already
            pass
    connections.clear()


def _commands_or_error(spec, runs) -> str:
    """The commands dialog's text (worker thread: a backend's describe may probe the dataset)."""
    from difflora_gui.qt.train.config_box import commands_text

    try:
        return commands_text(spec, runs)
    except Exception as exc:  # shown in the dialog, never a crash of the check
        return f"# No commands for these inputs: {exc}"

"""The Dataset panel's jobs: import (pairing), check pairs, and the dataset tools.

A mixin of :class:`~difflora_gui.qt.dataset.panel.DatasetPanel`. Import and checks run on the
``light`` lane, a tool on its own lane (``DatasetToolSpec.lane``); the panel only connects to the
handles, so the window stays responsive. A finished import becomes the project's dataset (its
``pairs.json`` and :class:`~difflora_gui.project.records.DatasetRecord`, written here in the GUI
thread, which owns the project); a finished tool re-imports the folders it filled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from difflora_gui.jobs.job import JobRequest

SECTION = "dataset"  # the project section the Dataset panel keeps its state in
IMPORT_TASK = "difflora_gui.dataset.import_job:run_import"
COPY_TASK = "difflora_gui.dataset.import_job:run_copy_into_project"
CHECK_TASK = "difflora_gui.dataset.check_job:run_check"


def _short(path: str) -> str:
    return Path(path).name or str(path)


class PanelJobs:
    """Running the panel's jobs (mixed into the panel)."""

    # --- import ------------------------------------------------------------------------------

    def start_import(self, a_dir: str, b_dir: str = "", rule: str = "stem") -> bool:
        """Pair ``a_dir`` with ``b_dir`` (empty: ``a_dir`` alone as set A) in a job; False if busy."""
        if self.import_job is not None:
            self.set_status("An import is running; wait for it or cancel it", "warning")
            return False
        params = {
            "a_dir": str(a_dir),
            "b_dir": str(b_dir) if b_dir else None,
            "rule": rule or "stem",
            "name": Path(a_dir).name if not b_dir else f"{Path(a_dir).name} | {Path(b_dir).name}",
            "resolution": self.checks.resolution(),
        }
        what = f"{_short(a_dir)} + {_short(b_dir)}" if b_dir else f"{_short(a_dir)} (set A)"
        request = JobRequest(f"Import {what}", IMPORT_TASK, params, lane="light")
        self._submit_set_job(request, self._on_import_done, "Import failed", f"Importing {what}…")
        return True

    def _submit_set_job(self, request: JobRequest, on_done, failed_text: str, status: str) -> None:
        """Run a job that makes a new pair set (an import, a copy) on the import bar's progress."""
        self._import_project = self.services.project
        self.import_job = handle = self.services.submit(request)
        handle.progressed.connect(lambda p: self.import_bar.show_progress(p.fraction, p.text))
        handle.succeeded.connect(on_done)
        handle.failed.connect(lambda message, _tb: self.set_status(f"{failed_text}: {message}", "error"))
        handle.finished.connect(self._on_import_finished)
        self.import_bar.set_running(True)
        self.set_status(status, "info")

    def start_copy_into_project(self) -> bool:
        """Copy the set's files into the dataset's project folder in a job; the set then uses the copies."""
        if self.import_job is not None or self.pair_set is None or self.folder is None:
            return False
        params = {"pairs": self.pair_set, "folder": str(self.folder)}
        request = JobRequest(f"Copy {self.pair_set.name} into the project", COPY_TASK, params, lane="light")
        self._submit_set_job(
            request, self._on_copied, "Copy failed", f"Copying the files into {self.folder}…"
        )
        return True

    def _on_copied(self, pair_set) -> None:
        if self._import_project is not self.services.project:
            return
        self.adopt_set(pair_set, new=True)
        self.set_status(
            f"Copied {len(pair_set.pairs)} pairs into the project folder; the sources were only read", "ok"
        )

    def cancel_import(self) -> None:
        if self.import_job is not None:
            self.import_job.cancel()

    def _on_import_done(self, pair_set) -> None:
        if self._import_project is not self.services.project:
            return  # another project opened meanwhile: this import was for the old one
        self.adopt_set(pair_set, new=True)
        self.set_status(
            f"Imported {len(pair_set.pairs)} pairs ({len(pair_set.unpaired_a)} unpaired in A, "
            f"{len(pair_set.unpaired_b)} in B, {len(pair_set.skipped)} skipped)",
            "ok",
        )

    def _on_import_finished(self, state: str) -> None:
        self.import_job = None
        self.import_bar.set_running(False)
        if state == "cancelled":
            self.set_status("Import cancelled; the set is unchanged", "warning")

    # --- checks ------------------------------------------------------------------------------

    def check_params(self) -> dict[str, Any]:
        """What the check job gets: the dataset folder (its cache), its pair list, the resolution and
        every threshold (``CHECK_CONFIG`` values, flat)."""
        return {
            **self.checks.thresholds_values(),
            "folder": str(self.folder),
            "pairs": str(Path(self.folder) / "pairs.json"),
            "resolution": self.checks.resolution(),
        }

    def start_check(self) -> bool:
        if self.pair_set is None or self.folder is None:
            self.set_status("Import a pair set first", "warning")
            return False
        if self.check_job is not None:
            return False
        try:
            import difflora_gui.dataset.check_job  # noqa: F401 - is the check installed?
        except ImportError:
            self.set_status("The pair checks are not installed", "error")
            return False
        self.save_now()  # the job reads the set as it is now (includes and swaps too)
        resolution = self.checks.resolution()
        request = JobRequest(
            f"Check {len(self.pair_set.pairs)} pairs at {resolution}",
            CHECK_TASK,
            self.check_params(),
            lane="light",
        )
        self._check_folder = self.folder
        self.check_job = handle = self.services.submit(request)
        handle.progressed.connect(lambda p: self.checks.show_progress(p.fraction, p.text))
        handle.partial_ready.connect(self._on_partial_scores)
        handle.succeeded.connect(self._on_check_done)
        handle.failed.connect(lambda message, _tb: self.set_status(f"Check failed: {message}", "error"))
        handle.finished.connect(self._on_check_finished)
        self.checks.set_running(True)
        self.set_status(f"Checking at {resolution}…", "info")
        return True

    def cancel_check(self) -> None:
        if self.check_job is not None:
            self.check_job.cancel()

    def _on_partial_scores(self, partial) -> None:
        scores = _scores_of(partial)
        if scores and self._check_folder == self.folder:
            self.grid.set_scores(scores, merge=True)

    def _on_check_done(self, result) -> None:
        if self._check_folder != self.folder:
            return
        scores = _scores_of(result) or self.load_scores()
        self.scores = scores
        self.grid.set_scores(scores)
        summary = getattr(result, "summary", None) if not isinstance(result, dict) else result.get("summary")
        if summary is None:
            summary = self.make_summary(scores)
        self.checks.show_summary(summary)
        flagged = sum(1 for s in scores.values() if getattr(s, "flags", None))
        self.set_status(f"Checked {len(scores)} pairs: {flagged} flagged", "ok")
        self.refresh_pair_view()

    def _on_check_finished(self, state: str) -> None:
        self.check_job = None
        self.checks.set_running(False)
        if state == "cancelled":
            self.set_status("Check cancelled; the scores so far are cached", "warning")

    # --- tools -------------------------------------------------------------------------------

    def tool_context(self) -> dict[str, Any]:
        """What a tool's form is prefilled with (see ``tools_bar.PREFILL``)."""
        sources = self.pair_set.sources if self.pair_set is not None else {}
        project = self.services.project
        return {
            "a_dir": sources.get("a", ""),
            "b_dir": sources.get("b", ""),
            "dataset_dir": str(self.folder) if self.folder else "",
            "pairs_file": str(Path(self.folder) / "pairs.json") if self.folder else "",
            "resolution": self.checks.resolution(),
            "project_file": str(project.path) if project.path else "",
            "saved_tools": project.section(SECTION).get("tools", {}),
        }

    def _remember_tool_values(self, spec, values: dict[str, Any]) -> None:
        """Keep a tool's settings in the project (its next form starts from them)."""
        import json

        kept = {}
        for key, value in values.items():
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                continue
            kept[key] = value
        project = self.services.project
        tools = dict(project.section(SECTION).get("tools", {}))
        tools[spec.name] = kept
        project.update_section(SECTION, tools=tools)

    def run_tool(self, spec, values: dict[str, Any]) -> None:
        """Run a dataset tool as a job on its lane; the set is re-imported when it finishes."""
        if spec.name in self.tool_jobs:
            self.set_status(f"{spec.title} is running", "warning")
            return
        self._remember_tool_values(spec, values)
        device = self.services.default_device() if spec.lane == "device" else "cpu"
        request = JobRequest(spec.title, spec.run, dict(values), lane=spec.lane, device=device)
        handle = self.services.submit(request)
        self.tool_jobs[spec.name] = handle
        self.tools_bar.set_running(spec.name, True)
        handle.progressed.connect(
            lambda p, title=spec.title: self.set_status(
                f"{title}: {p.text or ''} {'' if p.fraction is None else f'{100 * p.fraction:.0f} %'}", "info"
            )
        )
        handle.succeeded.connect(lambda result, s=spec, v=dict(values): self._on_tool_done(s, v, result))
        handle.failed.connect(
            lambda message, _tb, s=spec: self.set_status(f"{s.title} failed: {message}", "error")
        )
        handle.finished.connect(lambda _state, s=spec: self._on_tool_finished(s))
        self.set_status(f"{spec.title} started", "info")

    def _on_tool_done(self, spec, values: dict[str, Any], result) -> None:
        from difflora_gui.qt.dataset.tools_bar import reload_sources

        self.services.log(f"Dataset: {spec.title} finished: {result!r}"[:500])
        sources = self.pair_set.sources if self.pair_set is not None else {}
        folders = reload_sources(result, values, sources, spec)
        if self.folder is not None and self.check_job is None:  # a tool may have checked the pairs
            fresh = self.load_scores()
            if fresh:
                self.scores = fresh
                self.grid.set_scores(fresh)
                self.checks.show_summary(self.make_summary(fresh))
        if folders:  # the tool filled (or changed) a side: import the set again
            rule = (self.pair_set.rule if self.pair_set is not None else "") or "stem"
            self.start_import(folders["a"], folders.get("b", ""), rule if folders.get("b") else "stem")
        else:
            self.set_status(f"{spec.title} finished", "ok")

    def _on_tool_finished(self, spec) -> None:
        self.tool_jobs.pop(spec.name, None)
        self.tools_bar.set_running(spec.name, False)


def _scores_of(value) -> dict[str, Any]:
    """``{pair id: PairScores}`` from a check job's result or partial report (several shapes)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        if "scores" in value:
            return _scores_of(value["scores"])
        if all(hasattr(v, "flags") for v in value.values()):
            return dict(value)
        return {}
    scores = getattr(value, "scores", None)
    if scores is not None:
        return _scores_of(scores)
    if hasattr(value, "flags") and getattr(value, "pair_id", ""):
        return {value.pair_id: value}
    if isinstance(value, (list, tuple)):
        found: dict[str, Any] = {}
        for item in value:
            found.update(_scores_of(item))
        return found
    return {}

"""The Compare panel in a main window built like ``python main.py`` builds it, with a tiny Wan model
(``tests/wan_tiny.py``) set in Settings and tiny LoRA files (``make_wan_lora("tiny")``)."""

from __future__ import annotations

from pathlib import Path

from difflora_gui.qt.testing import close_window, make_main_window

PANEL = "compare-grid"
JOB_TIMEOUT_MS = 180_000
#: the quickest cells the tiny model renders (32×32, 5 frames, 2 steps)
QUICK = {"prompt": "a red cube", "width": 32, "height": 32, "frames": 5, "steps": 2, "fps": 8}


def make_model_and_loras(folder: Path) -> tuple[Path, list[Path]]:
    from difflora_gui.lora.synthetic import make_wan_lora
    from tests.wan_tiny import save_tiny_wan

    model = save_tiny_wan(folder / "tiny wan")
    loras = [folder / "slider ü.safetensors", folder / "epoch 2.safetensors"]
    for seed, path in enumerate(loras, start=1):
        make_wan_lora("tiny", path=path, rank=4, seed=seed)
    return model, loras


class CompareWindow:
    """A main window on the Compare section; ``model``: the Wan folder set in Settings."""

    def __init__(self, qtbot, monkeypatch, model: Path | None, *, size: tuple[int, int] = (1280, 720)):
        self.qtbot = qtbot
        self.window, self.dialogs = make_main_window(qtbot, monkeypatch)
        self.window.devices.set_devices([])  # detection done: the CPU only (jobs wait for this)
        self.window.resize(*size)
        if model is not None:
            self.window.services.update_settings(wan_model_dir=str(model))
        self.window.show_section("compare")
        entry = self.window.panels[PANEL]
        assert entry.ok, entry.error
        self.panel = entry.widget

    def quick_form(self, **values) -> None:
        self.panel.render_form.set_values({**QUICK, **values}, quiet=False)

    def set_axis(self, number: int, kind: str, text: str = "") -> None:
        row = self.panel.axes_form.rows[number]
        row.kind_combo.setCurrentIndex(row.kind_combo.findData(kind))
        if text:
            row.values_edit.setText(text)

    def wait_grid(self) -> None:
        """Until the grid job has ended and the player has decoded what it shows."""
        panel = self.panel
        self.qtbot.waitUntil(lambda: panel.grid_handle is None, timeout=JOB_TIMEOUT_MS)
        self.qtbot.waitUntil(lambda: not panel.player.is_loading(), timeout=30_000)

    def wait_export(self) -> None:
        self.qtbot.waitUntil(lambda: self.panel.export_handle is None, timeout=JOB_TIMEOUT_MS)

    def close(self) -> None:
        close_window(self.window, self.dialogs)

"""The Preview panel in a main window built like ``python main.py`` builds it, with a tiny Wan model
(``tests/wan_tiny.py``) set in Settings and tiny LoRA files (``make_wan_lora("tiny")``)."""

from __future__ import annotations

from pathlib import Path

from difflora_gui.qt.testing import close_window, make_main_window

PANEL = "preview-player"
JOB_TIMEOUT_MS = 120_000
#: the quickest render the tiny model makes (64×64, 5 frames, 2 steps)
QUICK = {"prompt": "a red cube", "width": 64, "height": 64, "frames": 5, "steps": 2, "fps": 8}


def make_model_and_loras(folder: Path) -> tuple[Path, list[Path]]:
    from difflora_gui.lora.synthetic import make_wan_lora
    from tests.wan_tiny import save_tiny_wan

    model = save_tiny_wan(folder / "tiny wan")
    loras = [folder / "slider ü.safetensors", folder / "other.safetensors"]
    for seed, path in enumerate(loras, start=1):
        make_wan_lora("tiny", path=path, rank=4, seed=seed)
    return model, loras


class PreviewWindow:
    """A main window on the Preview section; ``model``: the Wan folder set in Settings."""

    def __init__(self, qtbot, monkeypatch, model: Path | None):
        self.qtbot = qtbot
        self.window, self.dialogs = make_main_window(qtbot, monkeypatch)
        self.window.devices.set_devices([])  # detection done: the CPU only (jobs wait for this)
        self.window.resize(1280, 720)
        if model is not None:
            self.window.services.update_settings(wan_model_dir=str(model))
        self.window.show_section("preview")
        entry = self.window.panels[PANEL]
        assert entry.ok, entry.error
        self.panel = entry.widget

    def quick_form(self, **values) -> None:
        self.panel.render_form.set_values({**QUICK, **values}, quiet=False)

    def wait_idle(self) -> None:
        """Until no render of the panel is queued or running and the player and A/B view have decoded."""
        panel = self.panel
        self.qtbot.waitUntil(
            lambda: not any(queue.running() for queue in panel.views.values()), timeout=JOB_TIMEOUT_MS
        )
        self.qtbot.waitUntil(
            lambda: not panel.player.is_loading() and not panel.ab_view.is_decoding(), timeout=20_000
        )

    def close(self) -> None:
        close_window(self.window, self.dialogs)

"""DiffLoRA Studio: build differential (slider) LoRAs for Wan video models.

This facade is what plugins import (``from difflora_gui import hookimpl``), so it must stay
light: pluggy only, never torch or Qt.
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

PROJECT_NAME = "difflora"
APP_NAME = "DiffLoRA Studio"

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["APP_NAME", "PROJECT_NAME", "__version__", "hookimpl"]

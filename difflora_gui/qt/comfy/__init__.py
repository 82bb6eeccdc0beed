"""The ComfyUI backend's widgets (Qt)."""

"""LoRA files: read every Wan format into one canonical form, identify, select, write."""

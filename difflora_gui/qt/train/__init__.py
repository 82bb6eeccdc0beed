"""The Train section's widgets (Qt)."""

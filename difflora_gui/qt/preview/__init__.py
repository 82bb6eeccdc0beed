"""The Preview section's widgets (Qt)."""

"""The Compare section's Qt package: the grid form, the synchronised grid player, export."""

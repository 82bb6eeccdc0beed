"""The Qt side of DiffLoRA Studio: the only package (with plugins' GUI modules) that imports
PySide6, superqt or pyqtgraph. Importing this package itself stays light; import the modules."""

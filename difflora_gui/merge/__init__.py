"""The differential merge engine: ΔW_out = alpha·(w_a·ΔW_a − w_b·ΔW_b), re-factored to low rank."""

"""The filter itself: plain Python over the exact statistics the merge engine computes."""


def select_disagreeing(stats, params, ctx):
    """Return the names of the modules whose A and B differ in direction.

    A module present in only one LoRA has no cosine (one side is zero): it is entirely distinct,
    so it is kept.
    """
    limit = params["max_cosine"]
    kept = {s.name for s in stats if s.cosine is None or s.cosine <= limit}
    ctx.log(f"cosine_filter: kept {len(kept)} of {len(stats)} modules (cosine <= {limit:g})")
    return kept

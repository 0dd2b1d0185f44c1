"""Experiments that reproduce the paper's tables end to end (``tinyact experiment …``)."""

"""``tinyact demo``: the whole TinyAct system on this machine, with embedded defaults and no server to install.

Steps (each reuses what an earlier run left in the data directory, keyed by its settings)::

    synthetic action videos ─► manifest ─► clip cache ─► encoder (pretrained, or a brief autoencoder) ─► latents
        ─► classifier (grid search) ─► cloud service (SQLite, in-process) + a registered device
        ─► 5 simulated CCTV cameras (looped playlists of held-out test clips, true labels known)
        ─► edge agent (round-robin capture, one encoder batch per round, durable outbox, HTTP)
        ─► live table per camera for ``duration_s`` ─► flush ─► summary.json (+ URLs of both web pages)

Modules: :mod:`~tinyact.demo.config` (settings), :mod:`~tinyact.demo.prepare` (dataset, encoder, classifier,
playlists), :mod:`~tinyact.demo.live` (what the edge database says, the live table),
:mod:`~tinyact.demo.summary` (summary.json) and :mod:`~tinyact.demo.run` (everything in one process: the cloud
is uvicorn in a thread on a free port, the edge page another).
"""

from tinyact.demo.config import DEMO_DEVICE, DemoConfig
from tinyact.demo.run import run_demo

__all__ = ["DEMO_DEVICE", "DemoConfig", "run_demo"]

"""Encoder mismatch: clips held in the outbox while the cloud's classifier expects another encoder's latents.

When the cloud's classifier was fitted on another encoder's latents (``GET /v1/model``, or the cloud's 409 /
MQTT ``encoder_mismatch`` refusal), the clips are *held* in the outbox, not rejected: new clips go in held,
nothing of this encoder is sent, ``GET /v1/model`` is read again every ``transport.model_check_s`` (60 s), and
the held clips of the encoder the cloud's classifier matches are sent as soon as it does. Without a readable
model (an MQTT device with no key for HTTP), the oldest held clip is sent as a probe. The status
(``encoder_mismatch``), the page and ``tinyact edge status`` show the hold; ``tinyact edge outbox drop --reason
encoder_mismatch`` gives up on the held clips.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from tinyact.edge.agent_base import AgentBase
from tinyact.wire import ENCODER_MISMATCH, ModelInfo

logger = logging.getLogger(__name__)

MISMATCH_FIX = ("activate a classifier fitted on this encoder's latents on the cloud (`tinyact cloud model DIR "
                "--allow-encoder-change`), or set encoder.checkpoint to the encoder the cloud's classifier was "
                "fitted on; held clips are sent once they match, or give up on them with `tinyact edge outbox drop "
                "--reason encoder_mismatch`")


def mismatch_problem(info: ModelInfo, edge_encoder_hash: str) -> str:
    """The sentence for an edge whose encoder is not the one the cloud's classifier was fitted on."""
    return (f"the cloud's classifier {info.version} was fitted on latents of encoder {info.encoder_hash}, but this "
            f"device runs encoder {edge_encoder_hash}: the cloud refuses its clips (encoder_mismatch), so they are "
            f"held in the outbox. Fix: {MISMATCH_FIX}")


class EncoderHold(AgentBase):
    """The agent's part that compares the cloud's classifier with this encoder and holds or releases clips."""

    def check_cloud_model(self) -> str | None:
        """Compare the cloud's classifier with this encoder (``GET /v1/model``): a different latent size means
        every clip would be refused, a different encoder hash that the cloud refuses them (409
        ``encoder_mismatch``: the predictions would be meaningless), and the clips are then held in the outbox.
        When the cloud's classifier matches the encoder of held clips, they are released (sent next). Returns
        the problem (also logged and shown in the status), or ``None``; when the model cannot be read now, the
        last known problem."""
        self._ensure_transport()
        poller = self._poller
        self._last_model_check = time.monotonic()
        info = poller.model_info() if poller is not None and hasattr(poller, "model_info") else None
        encoder = self._ensure_encoder()
        self._model_read_ok = info is not None
        if info is None:
            return self.model_problem
        self.cloud_model = info
        problem = None
        mismatch = bool(info.encoder_hash and encoder.encoder_hash and info.encoder_hash != encoder.encoder_hash)
        if info.latent_dim != encoder.latent_dim:
            problem = (f"the cloud's classifier {info.version} takes {info.latent_dim}-d latents but this encoder "
                       f"makes {encoder.latent_dim}-d ones: clips will be refused until they match")
        elif mismatch:
            problem = mismatch_problem(info, encoder.encoder_hash)
        if problem and problem != self.model_problem:
            logger.warning("%s", problem)
        self.model_problem = problem
        if mismatch:
            self._enter_hold(problem or "")
        else:
            if self.encoder_hold is not None:
                logger.info("the cloud's classifier %s matches this device's encoder %s again", info.version,
                            encoder.encoder_hash)
            self.encoder_hold = None
        # The cloud's classifier takes latents of info.encoder_hash (any encoder's, when it recorded none).
        released = self.store.release(info.encoder_hash or None)
        if released:
            logger.info("the cloud's classifier %s takes latents of encoder %s: sending %d held clip(s)",
                        info.version, info.encoder_hash or "(any)", released)
            self._wake.set()
        return problem

    def hold_clips(self, reasons: dict[str, str]) -> int:
        """The cloud refused these clips with ``encoder_mismatch``: keep them (and every outbox clip of the same
        encoder) held in the outbox and read the cloud's model at the next chance (then every
        ``transport.model_check_s``); when they are this device's encoder's clips, new clips go in held too.
        Called by the sender (HTTP 409) and by the MQTT transport's thread. Returns how many clips are held."""
        hashes = self.store.outbox_encoders(list(reasons))
        held = self.store.hold(reasons, ENCODER_MISMATCH)
        first = next(iter(reasons.values()), "")
        mine = self.encoder is not None and (self.encoder.encoder_hash in hashes or not any(hashes))
        if mine and self.encoder_hold is None:
            self._enter_hold(first)
            logger.warning("the cloud refused clips of this encoder (%s); %d clip(s) held in the outbox until a "
                           "matching classifier is active (checked every %g s)", first, held,
                           self.cfg.transport.model_check_s)
            self._last_model_check = 0.0  # read GET /v1/model at the next chance: say what the cloud expects
        return held

    def _enter_hold(self, detail: str) -> None:
        if self.encoder_hold is None:
            self.encoder_hold = {"since": datetime.now(UTC).isoformat(), "detail": detail}
        elif detail:
            self.encoder_hold["detail"] = detail

    def recheck_cloud_model(self, force: bool = False) -> bool:
        """While clips are held (or the hold is on), read ``GET /v1/model`` again once ``transport.model_check_s``
        has passed since the last read (``force``: now), releasing the held clips the cloud's classifier now
        takes. Without a readable model (an MQTT device with no key for HTTP, a cloud that does not answer), the
        oldest held clip is sent as a probe: once one is delivered, the held clips of its encoder follow.
        Returns whether a check was made."""
        if not force and time.monotonic() - self._last_model_check < self.cfg.transport.model_check_s:
            return False
        if self.encoder_hold is None and not self.store.held_count():
            return False
        self.check_cloud_model()
        self._last_model_check = time.monotonic()
        if self._model_read_ok:
            self._probe = None
            return True
        if self._probe is not None:  # the last probe: delivered means the cloud takes that encoder's clips now
            clip_id, encoder_hash = self._probe
            if self.store.capture_state(clip_id) == "delivered":
                released = self.store.release(encoder_hash)
                logger.info("the cloud took a held clip of encoder %s: sending its %d other held clip(s)",
                            encoder_hash, released)
                if self.encoder is not None and encoder_hash == self.encoder.encoder_hash:
                    self.encoder_hold = None
                    self.model_problem = None
        own = self.encoder.encoder_hash if self.encoder is not None and self.encoder_hold is not None else None
        self._probe = self.store.release_oldest(own) or self.store.release_oldest(None)
        if self._probe is not None:
            self._wake.set()
        return True

    def mismatch_status(self, held: int) -> dict[str, Any] | None:
        """The encoder-mismatch hold for the status: ``None`` when nothing is held and the cloud matches, else
        ``{held, since, edge_encoder_hash, cloud_encoder_hash, cloud_model_version, detail, next_check_in_s,
        fix}``."""
        if self.encoder_hold is None and not held:
            return None
        hold = self.encoder_hold or {}
        info = self.cloud_model
        wait = self.cfg.transport.model_check_s - (time.monotonic() - self._last_model_check)
        return {
            "held": held,
            "since": hold.get("since"),
            "edge_encoder_hash": self.encoder.encoder_hash if self.encoder else None,
            "cloud_encoder_hash": info.encoder_hash if info else None,
            "cloud_model_version": info.version if info else None,
            "detail": hold.get("detail") or self.model_problem or "clips of another encoder are held in the outbox",
            "next_check_in_s": round(max(0.0, wait), 1),
            "fix": MISMATCH_FIX,
        }

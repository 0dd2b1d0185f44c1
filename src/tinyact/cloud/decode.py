"""Checking a request's clips and decoding their latents into one batch for the classifier.

Everything a clip can be refused for is found here, before anything is classified or stored, so one bad clip
fails its request with an answer that names it (``clips[3].latent: …``) and nothing of the request is written::

    clip ids unique in the request                                           422 duplicate_clip_id
    encoder_hash = the active classifier's encoder (when both name one)      409 encoder_mismatch
    captured_at has a zone, is after 2000 and not ahead of the server        422 *_timestamp
    latent decodes (tinyact.wire.decode_latent) to the model's length         422 bad_latent / wrong_latent_size
    every value finite and within ±MAX_LATENT_ABS (checked for the batch)    422 bad_latent
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np

from tinyact.cloud.errors import APIError
from tinyact.cloud.registry import LoadedModel
from tinyact.wire import ENCODER_MISMATCH, ClipIn, EncodedLatent, WireFormatError, decode_latent

MAX_LATENT_ABS = 1e4
"""Largest magnitude a latent value may have. Encoder latents are O(1-10); values near float32's limit (3.4e38)
overflow inside classifiers (a StandardScaler squares them) and are refused with 422 before classifying."""
EARLIEST_CAPTURE = datetime(2000, 1, 1, tzinfo=UTC)
"""``captured_at`` before this is refused (422): a device clock at 0 (1970) or a bogus date, which would also
overflow time-zone conversion near year 1."""


def at(where: str, index: int) -> str:
    """How an answer names a clip: ``clips[3]`` in a request, ``clip`` for an MQTT message (``where=""``)."""
    return f"{where}[{index}]" if where else "clip"


def decode_clips(clips: list[ClipIn], model: LoadedModel, *, max_future_s: float,
                 where: str = "clips") -> tuple[np.ndarray, list[ClipIn]]:
    """Check every clip (see the module docstring) and decode the latents.

    Args:
        clips: the request's clips, in order.
        model: the classifier they are checked against (latent length, encoder hash).
        max_future_s: how far ahead of the server's clock ``captured_at`` may be.
        where: the clips' place in the request body, for the answer (``""``: one MQTT message).

    Returns:
        float32 ``[U, D]`` latents of the U clips with distinct ids, and those clips in the same order.

    Raises:
        APIError: 422 naming the first bad clip, or 409 ``encoder_mismatch``.
    """
    check_encoder(model, clips, where)
    latest = datetime.now(UTC) + timedelta(seconds=max_future_s)
    dim = model.latent_dim
    unique: dict[uuid.UUID, ClipIn] = {}
    for index, clip in enumerate(clips):
        if clip.clip_id in unique:
            raise APIError(422, "duplicate_clip_id",
                           f"{at(where, index)}.clip_id {clip.clip_id} appears twice in this request: "
                           "every clip needs its own id")
        unique[clip.clip_id] = clip
    rows = {clip_id: row for row, clip_id in enumerate(unique)}
    out = np.empty((len(unique), dim), np.float32)  # [U, D]
    for index, clip in enumerate(clips):
        _check_time(clip, at(where, index), latest, max_future_s)
        # NaN/Inf in the edge's float encodings are looked for once for the whole batch, below (one pass over
        # [U, D] instead of one per clip); a plain or int8 latent is checked here, where it is decoded.
        batch_checked = isinstance(clip.latent, EncodedLatent) and clip.latent.dtype != "int8"
        try:
            vector = decode_latent(clip.latent, check_finite=not batch_checked)
        except WireFormatError as error:
            raise APIError(422, "bad_latent", f"{at(where, index)}.latent: {error}") from None
        if vector.size != dim:
            raise APIError(
                422, "wrong_latent_size",
                f"{at(where, index)}.latent has {vector.size} values but the loaded model {model.version} "
                f"expects {dim}: the device's encoder does not match this classifier",
            )
        out[rows[clip.clip_id]] = vector
    nonfinite = set(np.flatnonzero(~np.isfinite(out).all(axis=1)).tolist())  # rows of [U, D]
    if nonfinite:
        bad = next(i for i, clip in enumerate(clips) if rows[clip.clip_id] in nonfinite)
        raise APIError(422, "bad_latent", f"{at(where, bad)}.latent: latent contains NaN or Inf")
    unbounded = set(np.flatnonzero((np.abs(out) > MAX_LATENT_ABS).any(axis=1)).tolist())
    if unbounded:
        bad = next(i for i, clip in enumerate(clips) if rows[clip.clip_id] in unbounded)
        raise APIError(422, "bad_latent",
                       f"{at(where, bad)}.latent: a value is beyond ±{MAX_LATENT_ABS:g}; encoder latents are "
                       "far smaller: check the device's encoder")
    return out, list(unique.values())


def _check_time(clip: ClipIn, name: str, latest: datetime, max_future_s: float) -> None:
    if clip.captured_at.tzinfo is None or clip.captured_at.utcoffset() is None:
        raise APIError(422, "naive_timestamp", f"{name}.captured_at has no time zone: send ISO 8601 with Z or ±HH:MM")
    if clip.captured_at < EARLIEST_CAPTURE:
        raise APIError(
            422, "past_timestamp",
            f"{name}.captured_at {clip.captured_at.isoformat()} is before {EARLIEST_CAPTURE:%Y-%m-%d}: "
            "check the device's clock (NTP)",
        )
    if clip.captured_at > latest:
        raise APIError(
            422, "future_timestamp",
            f"{name}.captured_at {clip.captured_at.isoformat()} is more than {max_future_s:g} s ahead of the "
            "server's clock: check the device's clock (NTP)",
        )


def check_encoder(model: LoadedModel, clips: list[ClipIn], where: str = "clips") -> None:
    """Refuse clips made by another encoder than the one ``model`` was fitted on.

    A classifier that recorded no encoder hash, and clips that name none, are not checked.

    Raises:
        APIError: 409 ``encoder_mismatch`` naming both hashes and the fix; ``errors`` lists every such clip.
    """
    expected = model.classifier.encoder_hash
    if not expected:
        return
    bad = [(i, clip) for i, clip in enumerate(clips) if clip.encoder_hash is not None and clip.encoder_hash != expected]
    if not bad:
        return
    index, first = bad[0]
    detail = (
        f"{at(where, index)} was encoded by encoder {first.encoder_hash}, but the active classifier "
        f"{model.version} was fitted on latents of encoder {expected}: its predictions would be meaningless, so "
        "the clip is refused (nothing stored). Fix one side: activate a classifier fitted on latents of encoder "
        f"{first.encoder_hash} (`tinyact cloud model DIR --allow-encoder-change`), or start the edge with "
        f"encoder {expected} (encoder.checkpoint in its edge.yaml). The edge keeps the clip and sends it once "
        "they match (`tinyact edge outbox drop --reason encoder_mismatch` discards it instead)"
    )
    errors = [{"loc": ["body", *(([where, i]) if where else []), "encoder_hash"], "type": ENCODER_MISMATCH,
               "msg": f"encoder {clip.encoder_hash}, expected {expected}"} for i, clip in bad[:20]]
    raise APIError(409, ENCODER_MISMATCH, detail, errors=errors)


def top_k(probabilities: np.ndarray, k: int = 5) -> tuple[list[list[int]], list[list[float]]]:
    """float ``[N, C]`` -> (label indices ``[N, min(k, C)]`` best first, their scores rounded to 6 digits)."""
    k = min(k, probabilities.shape[1])
    if probabilities.shape[1] > 4 * k:  # partial sort of the top k, then order those k
        part = np.argpartition(-probabilities, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(probabilities, part, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(part, order, axis=1)
    else:
        top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    scores = np.round(np.take_along_axis(probabilities, top, axis=1), 6)
    return top.tolist(), scores.tolist()

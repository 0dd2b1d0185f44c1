"""An articulated 2-D human figure: actors (body and clothes), poses, forward kinematics and drawing.

The figure faces the camera. A :class:`Pose` holds joint angles in radians, measured from "hanging straight
down", positive towards the image's +x; child segments (forearm, shin) add their angle to the parent's::

            O        head
            |        neck
       /----+----\\   shoulders: upper arm, then forearm
            |        torso (lean rotates it about the hips; bend_forward foreshortens it)
         /--+--\\     hips: thigh, then shin
        /       \\

Units are figure heights (1.0 = standing height), converted to pixels at draw time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import ImageDraw

SKIN_TONES = [(255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 56, 30)]


@dataclass(frozen=True)
class Actor:
    """Body proportions and clothes of one synthetic person (fixed across all of their clips)."""

    actor_id: int
    upper_arm: float
    forearm: float
    thigh: float
    shin: float
    torso: float
    shoulder_width: float
    hip_width: float
    head_radius: float
    limb_thickness: float
    skin: tuple[int, int, int]
    shirt: tuple[int, int, int]
    pants: tuple[int, int, int]
    shoes: tuple[int, int, int]
    long_sleeves: bool

    @classmethod
    def sample(cls, actor_id: int, seed: int) -> Actor:
        """A reproducible actor: the same ``(actor_id, seed)`` always gives the same person."""
        rng = np.random.default_rng([seed, 7919, actor_id])

        def vivid() -> tuple[int, int, int]:
            hue = rng.uniform(0, 1)
            sat = rng.uniform(0.35, 0.95)
            val = rng.uniform(0.25, 0.95)
            return _hsv_to_rgb(hue, sat, val)

        scale = rng.uniform(0.9, 1.1, size=6)
        skin = SKIN_TONES[rng.integers(len(SKIN_TONES))]
        return cls(
            actor_id=actor_id,
            upper_arm=0.16 * scale[0],
            forearm=0.15 * scale[1],
            thigh=0.23 * scale[2],
            shin=0.22 * scale[3],
            torso=0.30 * scale[4],
            shoulder_width=rng.uniform(0.16, 0.24),
            hip_width=rng.uniform(0.10, 0.16),
            head_radius=rng.uniform(0.055, 0.075),
            limb_thickness=rng.uniform(0.035, 0.065),
            skin=tuple(int(np.clip(c + rng.integers(-15, 16), 0, 255)) for c in skin),  # type: ignore[arg-type]
            shirt=vivid(),
            pants=vivid(),
            shoes=_hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0, 0.5), rng.uniform(0.05, 0.4)),
            long_sleeves=bool(rng.random() < 0.5),
        )


@dataclass
class Pose:
    """Joint angles (radians) and body offsets (figure heights) of one instant."""

    arm_upper: tuple[float, float] = (-0.15, 0.15)  # image-left arm, image-right arm
    arm_lower: tuple[float, float] = (0.0, 0.0)
    leg_upper: tuple[float, float] = (-0.06, 0.06)
    leg_lower: tuple[float, float] = (0.0, 0.0)
    lean: float = 0.0  # torso rotation about the hips (sideways bend)
    bend_forward: float = 0.0  # 0 = upright, 1 = torso folded towards the camera (foreshortened)
    arm_foreshorten: tuple[float, float] = (1.0, 1.0)  # < 1 when an arm points at the camera
    leg_foreshorten: tuple[float, float] = (1.0, 1.0)
    dx: float = 0.0  # body offset, figure heights
    dy: float = 0.0  # negative = up
    tilt: float = 0.0  # whole-body rotation about the feet (falling), positive towards +x
    extra: dict[str, float] = field(default_factory=dict)


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return int(r * 255), int(g * 255), int(b * 255)


def _end(start: tuple[float, float], angle: float, length: float) -> tuple[float, float]:
    """Segment end from its start, angle from straight down (+ towards +x) and length (y grows down)."""
    return start[0] + length * math.sin(angle), start[1] + length * math.cos(angle)


def skeleton(actor: Actor, pose: Pose) -> dict[str, tuple[float, float]]:
    """Joint positions in figure units, with the feet of a standing figure at y = 0 and x = 0 centred."""
    legs = actor.thigh + actor.shin
    hip_centre = (pose.dx, -legs + pose.dy)
    torso_len = actor.torso * (1.0 - 0.65 * pose.bend_forward)
    # The torso points up from the hips: angle pi is straight up.
    neck = _end(hip_centre, math.pi - pose.lean, torso_len)
    joints: dict[str, tuple[float, float]] = {"hip": hip_centre, "neck": neck}
    head_drop = actor.head_radius * (1.0 - 0.5 * pose.bend_forward)
    joints["head"] = _end(neck, math.pi - pose.lean, head_drop + actor.head_radius * 0.9)
    cos_l, sin_l = math.cos(pose.lean), math.sin(pose.lean)
    for side, sign in ((0, -1.0), (1, 1.0)):
        half = sign * actor.shoulder_width / 2
        shoulder = (neck[0] + half * cos_l, neck[1] + half * sin_l + 0.02)
        upper = pose.arm_upper[side] - pose.lean
        elbow = _end(shoulder, upper, actor.upper_arm * pose.arm_foreshorten[side])
        wrist = _end(elbow, upper + pose.arm_lower[side], actor.forearm * pose.arm_foreshorten[side])
        hip = (hip_centre[0] + sign * actor.hip_width / 2, hip_centre[1])
        knee = _end(hip, pose.leg_upper[side], actor.thigh * pose.leg_foreshorten[side])
        ankle = _end(knee, pose.leg_upper[side] + pose.leg_lower[side], actor.shin * pose.leg_foreshorten[side])
        joints.update(
            {f"shoulder{side}": shoulder, f"elbow{side}": elbow, f"wrist{side}": wrist,
             f"hip{side}": hip, f"knee{side}": knee, f"ankle{side}": ankle}
        )
    if pose.tilt:
        # Rotate the whole body about the point between the feet: y is down, so +tilt moves the head to +x.
        pivot_x, pivot_y = pose.dx, pose.dy
        cos_t, sin_t = math.cos(pose.tilt), math.sin(pose.tilt)
        joints = {
            name: (pivot_x + (x - pivot_x) * cos_t - (y - pivot_y) * sin_t,
                   pivot_y + (x - pivot_x) * sin_t + (y - pivot_y) * cos_t)
            for name, (x, y) in joints.items()
        }
    return joints


def draw_figure(
    draw: ImageDraw.ImageDraw,
    actor: Actor,
    pose: Pose,
    origin: tuple[float, float],
    height_px: float,
    shade: float = 1.0,
) -> None:
    """Draw the figure with its feet centred at pixel ``origin`` and standing height ``height_px``.

    ``shade`` scales every colour (scene lighting).
    """
    joints = skeleton(actor, pose)
    ox, oy = origin

    def px(point: tuple[float, float]) -> tuple[float, float]:
        return ox + point[0] * height_px, oy + point[1] * height_px

    def colour(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
        return tuple(int(min(255, c * shade)) for c in rgb)  # type: ignore[return-value]

    width = max(2, int(round(actor.limb_thickness * height_px)))
    torso_width = max(width + 2, int(round(actor.shoulder_width * height_px * 0.8)))

    def limb(a: str, b: str, rgb: tuple[int, int, int], w: int = width) -> None:
        pa, pb = px(joints[a]), px(joints[b])
        draw.line([pa, pb], fill=colour(rgb), width=w)
        r = w / 2
        for x, y in (pa, pb):  # round joints so limbs do not show gaps at the elbows and knees
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour(rgb))

    # Back to front: legs, torso, arms, head.
    for side in (0, 1):
        limb(f"hip{side}", f"knee{side}", actor.pants)
        limb(f"knee{side}", f"ankle{side}", actor.pants)
        ax, ay = px(joints[f"ankle{side}"])
        foot = width * 0.9
        draw.ellipse([ax - foot, ay - foot * 0.6, ax + foot, ay + foot * 0.6], fill=colour(actor.shoes))
    limb("hip", "neck", actor.shirt, torso_width)
    for side in (0, 1):
        limb(f"shoulder{side}", f"elbow{side}", actor.shirt)
        limb(f"elbow{side}", f"wrist{side}", actor.shirt if actor.long_sleeves else actor.skin)
        wx, wy = px(joints[f"wrist{side}"])
        hand = width * 0.7
        draw.ellipse([wx - hand, wy - hand, wx + hand, wy + hand], fill=colour(actor.skin))
    hx, hy = px(joints["head"])
    r = actor.head_radius * height_px
    draw.ellipse([hx - r, hy - r, hx + r, hy + r], fill=colour(actor.skin))

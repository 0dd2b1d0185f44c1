"""Everyday actions for the pretraining corpus: 25 classes, each a pose as a function of time.

Every motion is written for a figure seen from the side and facing (and travelling towards) image ``+x``;
the renderer turns it into other views with :func:`apply_view` and mirrors whole clips for the other
direction. A motion maps ``(phase, progress, style)`` to a :class:`~tinyact.data.synth.figure.Pose`:

* ``phase`` (radians) advances at the motion's cycle rate: periodic actions (walking, waving) use it;
* ``progress`` (0 … 1 over the clip) drives one-off actions (sitting down, falling, picking up).

Feet are put on the ground by the renderer (:func:`grounded`), so a motion only states joint angles and,
for jumps, how high the body flies (``dy < 0``). ``plane`` says in which body plane the limbs move:
``sagittal`` swings (legs in walking, a punch) are seen best from the side, ``frontal`` ones (jumping jacks,
waving) from the front; :func:`apply_view` foreshortens each according to the clip's view.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from tinyact.data.synth.actions import (
    Style,
    arm_circles,
    bending,
    clapping,
    jumping_in_place,
    jumping_jacks,
    kicking,
    punching,
    squatting,
    waving_one_hand,
    waving_two_hands,
)
from tinyact.data.synth.figure import Actor, Pose, skeleton

PI = math.pi
Plane = Literal["sagittal", "frontal"]
MotionFn = Callable[[float, float, Style], Pose]


def _smooth(u: float) -> float:
    """0 → 1 ease-in-out on ``u`` clipped to [0, 1]."""
    u = min(1.0, max(0.0, u))
    return u * u * (3 - 2 * u)


def _window(progress: float, start: float, end: float) -> float:
    """Eased progress of a sub-movement that runs from ``start`` to ``end`` of the clip."""
    return _smooth((progress - start) / max(1e-6, end - start))


# --- locomotion (the renderer moves the body along +x at the motion's speed) ---------------------------

def walk(p: float, _u: float, s: Style) -> Pose:
    swing = 0.42 * s.amplitude * math.sin(p)
    knee = 0.35 * max(0.0, math.sin(p + PI / 2))
    knee2 = 0.35 * max(0.0, math.sin(p + 3 * PI / 2))
    return Pose(leg_upper=(swing, -swing), leg_lower=(-knee, -knee2), arm_upper=(-0.3 * swing, 0.3 * swing),
                dy=-0.012 * abs(math.cos(p)))


def jog(p: float, _u: float, s: Style) -> Pose:
    swing = 0.5 * s.amplitude * math.sin(p)
    arm = 0.35 * math.sin(p)
    return Pose(leg_upper=(swing, -swing),
                leg_lower=(-0.9 * max(0.0, -math.sin(p)) - 0.2, -0.9 * max(0.0, math.sin(p)) - 0.2),
                arm_upper=(-arm, arm), arm_lower=(1.2, 1.2), lean=0.08, dy=-0.03 * abs(math.sin(p)))


def run(p: float, _u: float, s: Style) -> Pose:
    swing = 0.75 * s.amplitude * math.sin(p)
    arm = 0.6 * math.sin(p)
    return Pose(leg_upper=(swing, -swing),
                leg_lower=(-1.4 * max(0.0, -math.sin(p)) - 0.2, -1.4 * max(0.0, math.sin(p)) - 0.2),
                arm_upper=(-arm, arm), arm_lower=(1.5, 1.5), lean=0.22, dy=-0.06 * abs(math.sin(p)))


def skip(p: float, _u: float, s: Style) -> Pose:
    # Step-hop on alternating legs: the free knee rises high, two hops per cycle.
    lift = math.sin(p)
    left = 0.9 * max(0.0, lift) * s.amplitude - 0.2 * max(0.0, -lift)
    right = 0.9 * max(0.0, -lift) * s.amplitude - 0.2 * max(0.0, lift)
    return Pose(leg_upper=(left, right), leg_lower=(-1.3 * max(0.0, lift), -1.3 * max(0.0, -lift)),
                arm_upper=(-0.7 * lift, 0.7 * lift), arm_lower=(0.6, 0.6), dy=-0.09 * abs(math.sin(2 * p)))


def gallop_sideways(p: float, _u: float, s: Style) -> Pose:
    # Facing the camera, sliding sideways: the leading leg opens, the trailing one closes, with a small hop.
    open_ = 0.5 - 0.5 * math.cos(p)
    return Pose(leg_upper=(-0.08 - 0.1 * open_, 0.08 + 0.45 * open_ * s.amplitude), arm_upper=(-0.35, 0.35),
                dy=-0.07 * max(0.0, math.sin(p)))


def jump_forward(p: float, _u: float, s: Style) -> Pose:
    u = (p % (2 * PI)) / (2 * PI)
    if u < 0.35:  # crouch, arms swing back
        c = math.sin(PI * u / 0.35)
        return Pose(leg_upper=(0.7 * c, 0.7 * c), leg_lower=(-1.3 * c, -1.3 * c), lean=0.45 * c,
                    arm_upper=(-0.9 * c, -0.9 * c))
    fly = (u - 0.35) / 0.65
    return Pose(leg_upper=(0.35, 0.3), leg_lower=(-0.5, -0.5), arm_upper=(1.6 * (1 - fly), 1.5 * (1 - fly)),
                lean=0.15, dy=-4 * fly * (1 - fly) * 0.18 * s.amplitude)


# --- in place, periodic -----------------------------------------------------------------------------

def jump_in_place(p: float, _u: float, s: Style) -> Pose:
    u = (p % (2 * PI)) / (2 * PI)
    if u < 0.3:
        c = math.sin(PI * u / 0.3)
        return Pose(leg_upper=(0.45 * c, 0.45 * c), leg_lower=(-0.9 * c, -0.9 * c), lean=0.2 * c,
                    arm_upper=(-0.3 * c, -0.3 * c))
    fly = (u - 0.3) / 0.7
    return Pose(dy=-4 * fly * (1 - fly) * 0.2 * s.amplitude, arm_upper=(0.3, 0.3))


def _frontal(fn: Callable[[float, Style], Pose]) -> MotionFn:
    def motion(p: float, _u: float, s: Style) -> Pose:
        pose = fn(p, s)
        return replace(pose, dy=min(0.0, pose.dy))  # the renderer grounds the feet; keep only flight

    motion.__name__ = fn.__name__
    return motion


def bend(p: float, _u: float, s: Style) -> Pose:
    fold = (0.5 - 0.5 * math.cos(p)) * min(1.0, 0.9 * s.amplitude)
    return Pose(lean=1.35 * fold, arm_upper=(1.2 * fold, 1.1 * fold))


def squat(p: float, u: float, s: Style) -> Pose:
    down = (0.5 - 0.5 * math.cos(p)) * s.amplitude ** 0.5
    return Pose(leg_upper=(1.2 * down, 1.2 * down), leg_lower=(-2.0 * down, -2.0 * down), lean=0.45 * down,
                arm_upper=(1.3 * down, 1.3 * down))


def punch(p: float, _u: float, s: Style) -> Pose:
    a = max(0.0, math.sin(p)) * s.amplitude
    b = max(0.0, -math.sin(p)) * s.amplitude
    return Pose(arm_upper=(0.6 + 1.0 * a, 0.6 + 1.0 * b), arm_lower=(1.6 * (1 - a), 1.6 * (1 - b)),
                leg_upper=(0.2, -0.15), lean=0.1)


def kick(p: float, _u: float, s: Style) -> Pose:
    k = max(0.0, math.sin(p)) ** 1.5 * s.amplitude
    return Pose(leg_upper=(1.3 * k, -0.05), leg_lower=(-0.8 * (1 - k) * min(1.0, 3 * k), 0.0),
                arm_upper=(-0.5 * k, 0.4 * k), lean=-0.2 * k)


def throw(p: float, _u: float, s: Style) -> Pose:
    u = (p % (2 * PI)) / (2 * PI)
    if u < 0.55:  # wind up: the arm goes back and up
        w = _smooth(u / 0.55)
        arm, fore, lean = -0.3 - 2.2 * w, -0.8 * w, -0.15 * w
    else:  # release: over the top and down in front
        r = _smooth((u - 0.55) / 0.25)
        arm, fore, lean = -2.5 + 3.6 * r, -0.8 + 0.8 * r, -0.15 + 0.45 * r
    return Pose(arm_upper=(arm * s.amplitude ** 0.3, 0.4), arm_lower=(fore, 0.3), leg_upper=(0.3, -0.2), lean=lean)


def push(p: float, _u: float, s: Style) -> Pose:
    e = 0.5 - 0.5 * math.cos(p)
    return Pose(arm_upper=(0.9 + 0.65 * e, 0.85 + 0.65 * e), arm_lower=(1.4 * (1 - e), 1.4 * (1 - e)),
                leg_upper=(0.35, -0.3), lean=0.15 + 0.2 * e * s.amplitude)


def stretch(p: float, _u: float, s: Style) -> Pose:
    up = 0.5 - 0.5 * math.cos(p)
    side = math.sin(p / 2)
    return Pose(arm_upper=(-0.2 - 2.7 * up, 0.2 + 2.7 * up), arm_lower=(-0.2 * up, 0.2 * up), lean=0.25 * side * up)


def standing(p: float, _u: float, s: Style) -> Pose:
    sway = 0.03 * math.sin(p)
    return Pose(arm_upper=(-0.12 + sway, 0.12 + sway), lean=sway, arm_lower=(0.05, -0.05))


# --- one-off movements over the clip ------------------------------------------------------------------

def _seated(x: float) -> Pose:
    """``x`` = 0 standing … 1 seated (thighs forward and level, shins down, torso forward then upright)."""
    return Pose(leg_upper=(1.45 * x, 1.45 * x), leg_lower=(-1.45 * x, -1.45 * x), lean=0.5 * math.sin(PI * x) + 0.1 * x,
                arm_upper=(0.5 * x, 0.5 * x), arm_lower=(0.6 * x, 0.6 * x))


def sit_down(_p: float, u: float, s: Style) -> Pose:
    return _seated(_window(u, 0.15, 0.75))


def stand_up(_p: float, u: float, s: Style) -> Pose:
    return _seated(1.0 - _window(u, 0.15, 0.75))


def fall(_p: float, u: float, s: Style) -> Pose:
    f = _window(u, 0.2, 0.7) ** 1.6
    flail = math.sin(PI * min(1.0, f * 1.2))
    return Pose(tilt=(PI / 2 - 0.05) * f, leg_upper=(-0.3 * flail, 0.2 * flail), arm_upper=(1.2 * flail, 1.8 * flail),
                lean=0.2 * flail)


def crouch(_p: float, u: float, s: Style) -> Pose:
    d = _window(u, 0.1, 0.6)
    return Pose(leg_upper=(1.5 * d, 1.4 * d), leg_lower=(-2.4 * d, -2.3 * d), lean=0.7 * d,
                arm_upper=(0.8 * d, 0.9 * d), arm_lower=(0.5 * d, 0.4 * d))


def pick_up(_p: float, u: float, s: Style) -> Pose:
    down = math.sin(PI * _window(u, 0.1, 0.9))  # down and back up
    return Pose(lean=1.3 * down, leg_upper=(0.6 * down, 0.5 * down), leg_lower=(-0.8 * down, -0.7 * down),
                arm_upper=(1.3 * down, 0.9 * down), arm_lower=(0.2 * down, 0.0))


@dataclass(frozen=True)
class Motion:
    """One class of the pretraining corpus."""

    name: str
    fn: MotionFn
    rate: float  # cycles per second at speed 1 (periodic motions)
    plane: Plane
    travel: float = 0.0  # body heights per second along the facing direction (locomotion)
    frontal_travel: bool = False  # moves sideways while facing the camera (gallop sideways)
    variant: MotionFn | None = None  # another way people do it, in the other plane (a kick to the side)

    def as_variant(self) -> Motion:
        """The same class done the other way (:attr:`variant`, in the other body plane)."""
        if self.variant is None:
            return self
        plane: Plane = "frontal" if self.plane == "sagittal" else "sagittal"
        return replace(self, fn=self.variant, plane=plane, variant=None)


#: The classes of ``tinyact data synth --profile pretrain``, in label order.
MOTIONS: list[Motion] = [
    Motion("walk", walk, 0.95, "sagittal", travel=0.7),
    Motion("jog", jog, 1.25, "sagittal", travel=1.0),
    Motion("run", run, 1.5, "sagittal", travel=1.6),
    Motion("skip", skip, 1.2, "sagittal", travel=1.0),
    Motion("gallop sideways", gallop_sideways, 1.6, "frontal", travel=1.1, frontal_travel=True),
    Motion("jump forward", jump_forward, 1.2, "sagittal", travel=0.9),
    Motion("jump in place", jump_in_place, 1.3, "sagittal", variant=_frontal(jumping_in_place)),
    Motion("jumping jacks", _frontal(jumping_jacks), 1.1, "frontal"),
    Motion("bend", bend, 0.45, "sagittal", variant=_frontal(bending)),
    Motion("squat", squat, 0.6, "sagittal", variant=_frontal(squatting)),
    Motion("sit down", sit_down, 0.0, "sagittal"),
    Motion("stand up", stand_up, 0.0, "sagittal"),
    Motion("fall", fall, 0.0, "frontal"),
    Motion("crouch", crouch, 0.0, "sagittal"),
    Motion("wave one hand", _frontal(waving_one_hand), 1.6, "frontal"),
    Motion("wave two hands", _frontal(waving_two_hands), 1.6, "frontal"),
    Motion("clap", _frontal(clapping), 1.3, "frontal"),
    Motion("punch", punch, 1.2, "sagittal", variant=_frontal(punching)),
    Motion("kick", kick, 0.8, "sagittal", variant=_frontal(kicking)),
    Motion("arm circles", _frontal(arm_circles), 0.9, "frontal"),
    Motion("throw", throw, 0.6, "sagittal"),
    Motion("pick up", pick_up, 0.0, "sagittal"),
    Motion("push", push, 0.7, "sagittal"),
    Motion("stretch", stretch, 0.3, "frontal"),
    Motion("standing", standing, 0.4, "frontal"),
]

MOTION_NAMES = [m.name for m in MOTIONS]


def apply_view(pose: Pose, motion: Motion, sideness: float) -> Pose:
    """Turn a side-view pose into the clip's view: ``sideness`` 1 = side, 0 = front (3/4 in between).

    A limb swinging in the plane the camera looks along is foreshortened instead of turning in the image, so
    sagittal swings shrink towards the front view and frontal ones towards the side view.
    """
    seen = 0.2 + 0.8 * sideness if motion.plane == "sagittal" else 0.3 + 0.7 * (1.0 - sideness)
    hidden = 1.0 - seen

    def turn(angles: tuple[float, float]) -> tuple[float, float]:
        return angles[0] * seen, angles[1] * seen

    def shorten(angles: tuple[float, float], base: tuple[float, float]) -> tuple[float, float]:
        return tuple(b * (1.0 - 0.45 * hidden * min(1.0, abs(math.sin(a)))) for a, b in zip(angles, base, strict=True))  # type: ignore[return-value]

    lean_seen = 0.2 + 0.8 * sideness if motion.plane == "sagittal" else 1.0
    return replace(
        pose,
        arm_upper=turn(pose.arm_upper), arm_lower=turn(pose.arm_lower),
        leg_upper=turn(pose.leg_upper), leg_lower=turn(pose.leg_lower),
        arm_foreshorten=shorten(pose.arm_upper, pose.arm_foreshorten),
        leg_foreshorten=shorten(pose.leg_upper, pose.leg_foreshorten),
        lean=pose.lean * lean_seen,
        bend_forward=max(pose.bend_forward, (1.0 - sideness) * min(1.0, abs(pose.lean)) * 0.8
                         if motion.plane == "sagittal" else pose.bend_forward),
    )


def grounded(actor: Actor, pose: Pose) -> Pose:
    """``pose`` with its lowest joint just above the ground (y = 0, where the drawn foot ends) plus its flight."""
    flight = min(0.0, pose.dy)
    level = replace(pose, dy=0.0)
    lowest = max(y for _, y in skeleton(actor, level).values())
    return replace(pose, dy=flight - lowest - actor.limb_thickness * 0.3)  # joint centres a foot above y = 0


def pose_of(motion: Motion, t: float, duration: float, speed: float, phase0: float, style: Style) -> Pose:
    """The (side-view) pose of ``motion`` at ``t`` seconds of a ``duration``-second clip."""
    phase = phase0 + 2 * PI * t * motion.rate * speed
    return motion.fn(phase, t / max(duration, 1e-6), style)

"""Action classes as pose trajectories over time.

Each action maps a phase ``p`` (radians, advancing at the clip's cycle rate) and a per-clip ``style``
(amplitude, side, …) to a :class:`~tinyact.data.synth.figure.Pose`. Classes are designed so that *one
frame does not identify the class*: walking left and right share every pose and differ only in the direction
of motion; a raised arm appears in waving, jumping jacks and arm circles; a crouch appears in squats and
jumps; clapping and punching pass through the same arms-forward pose.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinyact.data.synth.figure import Pose

PI = math.pi


@dataclass(frozen=True)
class Style:
    """Per-clip variation of an action."""

    amplitude: float  # 0.8 … 1.2
    side: int  # 0 = image-left limb, 1 = image-right limb (one-sided actions)
    walk_speed: float  # figure heights per cycle (walking)

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Style:
        return cls(
            amplitude=float(rng.uniform(0.8, 1.2)),
            side=int(rng.integers(2)),
            walk_speed=float(rng.uniform(0.22, 0.35)),
        )


def _pair(side: int, active: float, rest: float) -> tuple[float, float]:
    """(left, right) with ``active`` on ``side`` and ``rest`` on the other, mirrored for the left side."""
    return (-active, rest) if side == 0 else (-rest, active)


def waving_one_hand(p: float, s: Style) -> Pose:
    raised = 2.5 + 0.1 * math.sin(p)
    forearm = 0.55 * s.amplitude * math.sin(p)
    left_upper, right_upper = _pair(s.side, raised, 0.15)
    lower = (-forearm, 0.0) if s.side == 0 else (0.0, forearm)
    return Pose(arm_upper=(left_upper, right_upper), arm_lower=lower)


def waving_two_hands(p: float, s: Style) -> Pose:
    forearm = 0.55 * s.amplitude * math.sin(p)
    return Pose(arm_upper=(-2.5, 2.5), arm_lower=(-forearm, -forearm))


def jumping_jacks(p: float, s: Style) -> Pose:
    open_ = 0.5 - 0.5 * math.cos(p)  # 0 closed … 1 open
    arm = 0.2 + 2.6 * open_ * s.amplitude ** 0.3
    leg = 0.05 + 0.35 * open_
    return Pose(arm_upper=(-arm, arm), leg_upper=(-leg, leg), dy=-0.05 * abs(math.sin(p)))


def bending(p: float, s: Style) -> Pose:
    fold = (0.5 - 0.5 * math.cos(p)) * min(1.0, 0.9 * s.amplitude)
    sway = 0.15 * fold
    return Pose(
        bend_forward=fold,
        arm_upper=(-0.1 - sway, 0.1 + sway),
        leg_lower=(0.0, 0.0),
        dy=0.0,
    )


def _walk(p: float, s: Style, direction: float, t_cycles: float) -> Pose:
    swing = 0.42 * s.amplitude * math.sin(p)
    knee = 0.35 * max(0.0, math.sin(p + PI / 2))
    knee2 = 0.35 * max(0.0, math.sin(p + 3 * PI / 2))
    return Pose(
        leg_upper=(swing, -swing),
        leg_lower=(-knee * 0.5, knee2 * 0.5),
        arm_upper=(-0.15 - 0.3 * swing, 0.15 - 0.3 * swing),
        dx=direction * s.walk_speed * t_cycles,
        dy=-0.012 * abs(math.cos(p)),
    )


def walking_left(p: float, s: Style, t_cycles: float = 0.0) -> Pose:
    return _walk(p, s, -1.0, t_cycles)


def walking_right(p: float, s: Style, t_cycles: float = 0.0) -> Pose:
    return _walk(p, s, 1.0, t_cycles)


def jumping_in_place(p: float, s: Style) -> Pose:
    # Crouch, take off, fly (parabola), land; the crouch pose is shared with squatting.
    u = (p % (2 * PI)) / (2 * PI)
    if u < 0.3:  # crouch and push
        crouch = math.sin(PI * u / 0.3)
        return Pose(leg_upper=(-0.35 * crouch, 0.35 * crouch), leg_lower=(0.6 * crouch, -0.6 * crouch),
                    leg_foreshorten=(1 - 0.25 * crouch, 1 - 0.25 * crouch), dy=0.12 * crouch,
                    arm_upper=(-0.2 - 0.5 * crouch, 0.2 + 0.5 * crouch))
    fly = (u - 0.3) / 0.7
    height = 4 * fly * (1 - fly) * 0.22 * s.amplitude
    return Pose(dy=-height, arm_upper=(-0.2 - 1.6 * height * 4, 0.2 + 1.6 * height * 4), leg_upper=(-0.05, 0.05))


def squatting(p: float, s: Style) -> Pose:
    down = (0.5 - 0.5 * math.cos(p)) * s.amplitude ** 0.5
    return Pose(
        leg_upper=(-0.55 * down, 0.55 * down),
        leg_lower=(0.95 * down, -0.95 * down),
        leg_foreshorten=(1 - 0.3 * down, 1 - 0.3 * down),
        arm_upper=(-0.15 - 1.2 * down, 0.15 + 1.2 * down),
        arm_foreshorten=(1 - 0.4 * down, 1 - 0.4 * down),
        dy=0.2 * down,
    )


def clapping(p: float, s: Style) -> Pose:
    # Hands meet in front of the chest twice per cycle; forearms point up and inwards.
    apart = abs(math.sin(p)) * s.amplitude
    upper = 0.15 + 0.6 * apart  # upper arm, from straight down
    forearm = -1.9 + 0.9 * apart  # forearm's absolute angle (negative: towards the body's centre)
    return Pose(arm_upper=(-upper, upper), arm_lower=(-(forearm - upper), forearm - upper))


def kicking(p: float, s: Style) -> Pose:
    kick = max(0.0, math.sin(p)) ** 1.5 * s.amplitude
    leg = 0.06 + 1.1 * kick
    left, right = _pair(s.side, leg, 0.06)
    balance = 0.3 + 0.6 * kick
    return Pose(leg_upper=(left, right), arm_upper=(-balance, balance), lean=(0.12 if s.side == 0 else -0.12) * kick)


def punching(p: float, s: Style) -> Pose:
    # Alternating straight punches towards the camera: the punching arm is foreshortened and raised.
    a = max(0.0, math.sin(p)) * s.amplitude
    b = max(0.0, -math.sin(p)) * s.amplitude
    guard = 1.1
    return Pose(
        arm_upper=(-(guard + 0.5 * a), guard + 0.5 * b),
        arm_lower=(1.9 - 1.7 * a, -(1.9 - 1.7 * b)),
        arm_foreshorten=(1 - 0.45 * a, 1 - 0.45 * b),
    )


def arm_circles(p: float, s: Style) -> Pose:
    angle = 1.6 + 0.9 * s.amplitude * math.sin(p)
    lower = 0.3 * math.cos(p)
    return Pose(arm_upper=(-angle, angle), arm_lower=(-lower, lower))


ActionFn = Callable[..., Pose]

#: Action classes in index order: (label, pose function, cycles per second at speed 1.0).
ACTIONS: list[tuple[str, ActionFn, float]] = [
    ("waving one hand", waving_one_hand, 1.6),
    ("waving two hands", waving_two_hands, 1.6),
    ("jumping jacks", jumping_jacks, 1.0),
    ("bending", bending, 0.5),
    ("walking left", walking_left, 1.0),
    ("walking right", walking_right, 1.0),
    ("jumping in place", jumping_in_place, 0.9),
    ("squatting", squatting, 0.6),
    ("clapping", clapping, 1.2),
    ("kicking", kicking, 0.8),
    ("punching", punching, 1.2),
    ("arm circles", arm_circles, 0.9),
]

ACTION_NAMES = [name for name, _, _ in ACTIONS]


def pose_at(action_index: int, t: float, speed: float, phase0: float, style: Style) -> Pose:
    """The pose of ``ACTIONS[action_index]`` at time ``t`` seconds for a clip's speed, phase and style."""
    name, fn, rate = ACTIONS[action_index]
    cycles = t * rate * speed
    phase = phase0 + 2 * PI * cycles
    if name.startswith("walking"):
        return fn(phase, style, t_cycles=cycles)
    return fn(phase, style)

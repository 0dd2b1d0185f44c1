"""``load_teacher(spec)``: build a :class:`~tinyact.teachers.base.Teacher` from a one-line spec.

Specs (options after ``?`` as ``key=value`` pairs joined by ``&``; write ``%26`` for a ``&`` and ``%3D`` for a
``=`` inside a value)::

    hf:PATH                         a Hugging Face video classifier saved in a local folder
                                    (VideoMAE, TimeSformer, ViViT, …: AutoModelForVideoClassification);
                                    frames, resolution, mean/std and label names come from its config.json and
                                    preprocessor_config.json; nothing is downloaded.
    torchscript:FILE                a TorchScript module (torch.jit.save) taking a float clip batch.
    python:MODULE:FACTORY           MODULE (dotted import path, or a .py file) and a factory function in it;
                                    the factory returns an nn.Module or a ready Teacher.
    <scheme>:…                      any scheme added with register_teacher_scheme (e.g. ``inproject:``).

Options understood by ``torchscript:`` and ``python:`` (a module attribute of the same meaning is the fallback,
then the default)::

    frames=16          frames per clip                     (attribute num_frames)
    size=224           square input resolution             (attribute size)
    mean=imagenet      imagenet | clip | half | none | R,G,B      (attribute mean)
    std=imagenet       as mean                                    (attribute std)
    scale=1            value range the mean/std apply to: 1 = [0, 1], 255 = [0, 255]  (attribute input_scale)
    layout=BTCHW       BTCHW or BCTHW                      (attribute layout)
    labels=FILE        class names: .txt (one a line), .json (list) or .csv (column name/label)
                                                           (attribute label_names)
    embedding=LAYER    sub-module whose input is the embedding (attribute embedding_layer)
    device=auto        auto | cpu | cuda | cuda:1
    dtype=float32      float32 | float16 | bfloat16 (compute dtype; outputs are float32)

``hf:`` takes ``device`` and ``dtype``, and for an X-CLIP folder (zero-shot) ``labels=FILE`` and
``prompt=TEMPLATE`` (default ``{}``, the bare class name). Every other option of a ``python:`` spec is passed to the factory
as a keyword argument (a string), and so is any option above that the factory names as a parameter, e.g.
``python:my_ila.py:build?checkpoint=/w/k400_16_16.pth&arch=ViT-B/16&frames=16``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import torch
from torch import nn

from tinyact.teachers.base import (
    ModuleTeacher,
    Preprocess,
    Teacher,
    TeacherError,
)
from tinyact.teachers.hf import load_hf_teacher
from tinyact.teachers.options import parse_dtype, parse_stats, read_label_file

logger = logging.getLogger(__name__)

#: Options the wrapper consumes; everything else in a ``python:`` spec goes to the factory.
WRAPPER_OPTIONS = ("frames", "size", "mean", "std", "scale", "layout", "labels", "embedding", "device", "dtype")


_SCHEMES: dict[str, Callable[..., Teacher]] = {}


def register_teacher_scheme(scheme: str, loader: Callable[..., Teacher]) -> None:
    """Make ``load_teacher("<scheme>:REST")`` call ``loader("REST")`` (overrides an earlier registration).

    ``load_teacher(spec, device=D)`` calls ``loader("REST", device=D)`` when the loader takes a ``device``
    argument (or ``**kwargs``); a loader without one gets ``loader("REST")`` and its teacher is moved with
    ``teacher.to(D)`` when it has a ``to`` method.
    """
    if not scheme.isidentifier():
        raise ValueError(f"teacher scheme must be a simple name, got {scheme!r}")
    _SCHEMES[scheme] = loader


def teacher_schemes() -> list[str]:
    return sorted({"hf", "torchscript", "python", *_SCHEMES})


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """``"scheme:target?k=v&k2=v2"`` -> ``(scheme, target, {k: v, k2: v2})``."""
    scheme, sep, rest = spec.partition(":")
    if not sep or not scheme:
        raise TeacherError(f"teacher spec {spec!r} needs a scheme, one of {', '.join(s + ':' for s in teacher_schemes())}")
    target, _, query = rest.partition("?")
    options: dict[str, str] = {}
    for pair in filter(None, query.split("&")):
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise TeacherError(f"teacher spec option {pair!r} must be key=value (in {spec!r})")
        # unquote, not parse_qsl: a '+' in a path stays a '+'; %26 and %3D escape '&' and '='.
        options[unquote(key)] = unquote(value)
    return scheme, target, options


def load_teacher(spec: str, device: str | None = None) -> Teacher:
    """Build the teacher a spec names (see the module docstring). ``device`` overrides the spec's ``device``.

    Raises :class:`TeacherError` (a user error) for an unknown scheme, a missing file or a bad option.
    """
    scheme, target, options = parse_spec(spec)
    if device is not None:
        options["device"] = device
    if scheme in _SCHEMES:
        return _load_registered(_SCHEMES[scheme], spec.partition(":")[2], device)
    if scheme == "hf":
        unknown = sorted(set(options) - {"device", "dtype", "labels", "prompt"})
        if unknown:
            raise TeacherError(f"hf: teachers take device, dtype (and labels, prompt for X-CLIP); not {unknown}")
        return load_hf_teacher(
            target,
            device=options.get("device", "auto"),
            dtype=options.get("dtype", "float32"),
            labels=options.get("labels"),
            prompt=options.get("prompt", "{}"),
        )
    if scheme == "torchscript":
        return _load_torchscript(target, options)
    if scheme == "python":
        return _load_python(target, options)
    raise TeacherError(f"unknown teacher scheme {scheme!r}; known: {', '.join(teacher_schemes())}")


def _takes_device(loader: Callable[..., Teacher]) -> bool:
    try:
        parameters = inspect.signature(loader).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: no signature to read
        return False
    return any(p.name == "device" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _load_registered(loader: Callable[..., Teacher], rest: str, device: str | None) -> Teacher:
    """A registered scheme's teacher, on ``device`` when one is given (passed to the loader, else ``to``)."""
    if device is None:
        return loader(rest)
    if _takes_device(loader):
        return loader(rest, device=device)
    teacher = loader(rest)
    move = getattr(teacher, "to", None)
    if callable(move):
        moved = move(device)
        return teacher if moved is None else moved
    logger.warning("teacher scheme loader %r takes no device and its teacher has no to(): device %s not applied",
                   loader, device)
    return teacher


def _wrap(module: nn.Module, options: dict[str, str], call: Callable[[nn.Module, torch.Tensor], Any] | None = None) -> ModuleTeacher:
    """A :class:`ModuleTeacher` from spec options, falling back to the module's attributes, then defaults."""

    def pick(option: str, attribute: str, default: Any) -> Any:
        if option in options:
            return options[option]
        return getattr(module, attribute, default)

    try:
        preprocess = Preprocess(
            num_frames=int(pick("frames", "num_frames", 16)),
            size=int(pick("size", "size", 224)),
            mean=parse_stats(pick("mean", "mean", "imagenet"), 0, "mean"),
            std=parse_stats(pick("std", "std", "imagenet"), 1, "std"),
            input_scale=float(pick("scale", "input_scale", 1.0)),
            layout=str(pick("layout", "layout", "BTCHW")).upper(),  # type: ignore[arg-type]
        )
    except ValueError as error:
        raise TeacherError(f"bad teacher option: {error}") from None
    if "labels" in options:
        label_names = read_label_file(options["labels"])
    else:
        label_names = [str(n) for n in getattr(module, "label_names", [])]
    return ModuleTeacher(
        module,
        label_names=label_names,
        preprocess=preprocess,
        device=options.get("device", "auto"),
        dtype=parse_dtype(options.get("dtype", "float32")),
        embedding_layer=options.get("embedding") or getattr(module, "embedding_layer", None),
        call=call,
        embedding_dim=getattr(module, "embedding_dim", None),
    )


# --- torchscript: / python: -----------------------------------------------------------------------------------


def _load_torchscript(target: str, options: dict[str, str]) -> Teacher:
    path = Path(target).expanduser()
    if not path.is_file():
        raise TeacherError(f"TorchScript file not found: {path}")
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as error:  # torch raises RuntimeError or ValueError for a file that is not TorchScript
        raise TeacherError(f"{path} is not a TorchScript module ({type(error).__name__}: {error})") from None
    if "embedding" in options:
        raise TeacherError("embedding=LAYER needs a python: teacher; a TorchScript teacher returns (logits, embedding)")
    return _wrap(module, options)


def _import_factory(target: str) -> Callable[..., Any]:
    module_name, sep, factory_name = target.rpartition(":")
    if not sep or not module_name or not factory_name:
        raise TeacherError(f"python teacher spec must be python:MODULE:FACTORY, got python:{target}")
    if module_name.endswith(".py"):
        path = Path(module_name).expanduser()
        if not path.is_file():
            raise TeacherError(f"teacher module file not found: {path}")
        spec = importlib.util.spec_from_file_location(f"tinyact_teacher_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise TeacherError(f"cannot import teacher module {module_name!r}: {error}") from None
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise TeacherError(f"{module_name} has no callable {factory_name!r}")
    return factory


def _load_python(target: str, options: dict[str, str]) -> Teacher:
    factory = _import_factory(target)
    # Wrapper options go to the factory too when it names them as parameters (a factory that builds a
    # ready Teacher, like tinyact.teachers.ila:build, needs device/frames/labels itself).
    try:
        named = {
            p.name for p in inspect.signature(factory).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        named = set()
    kwargs = {k: v for k, v in options.items() if k not in WRAPPER_OPTIONS or k in named}
    try:
        built = factory(**kwargs)
    except TypeError as error:
        raise TeacherError(f"teacher factory {target} rejected its arguments {sorted(kwargs)}: {error}") from None
    if isinstance(built, nn.Module):
        return _wrap(built, options)
    if isinstance(built, Teacher):
        ignored = sorted(set(options) & set(WRAPPER_OPTIONS) - set(kwargs))
        if ignored:
            logger.warning("teacher %s is a ready Teacher; options %s are ignored", target, ignored)
        return built
    raise TeacherError(f"teacher factory {target} returned {type(built).__name__}, not an nn.Module or a Teacher")

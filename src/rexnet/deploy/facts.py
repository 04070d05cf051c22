"""What a model was trained on, carried by its exported file: the facts, where they come from, where they go.

The facts are the model name, the training data (the run's ``data`` string), the class count and
names, the input size and the evaluation preprocessing (mean, std, crop, interpolation).
:func:`trained_facts` takes them from what :func:`rexnet.zoo.load_model` read (a run's
checkpoint records its config); :func:`~rexnet.deploy.export_model` writes them into the
``.json`` sidecar and into the file itself: an ONNX file's ``metadata_props`` and an OpenVINO
IR's ``rt_info`` (section ``rexnet``), one JSON-encoded value per key, so that a file that travels
without its sidecar still says what it needs. :func:`read_embedded` reads them back.

A file rexnet wrote (it carries the key ``rexnet_metadata``) is read strictly, like a sidecar; in
a file from elsewhere the keys of the same names are taken when they are valid and skipped
otherwise (another tool may use ``model`` for its own purpose).

Example:
    >>> props = to_props({"image_size": 32, "data": "digits", "class_names": None})
    >>> sorted(props), from_props(props, "m.onnx")["image_size"]
    (['data', 'image_size', 'rexnet_metadata'], 32)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ExportError
from .sidecar import SIDECAR_FIELDS, check_sidecar

__all__ = [
    "FACT_FIELDS",
    "MARKER",
    "bench_defaults",
    "eval_data",
    "from_props",
    "portable_data",
    "read_embedded",
    "set_openvino_props",
    "to_props",
    "trained_facts",
]

_log = logging.getLogger(__name__)

#: The facts an exported file carries in itself (each also a sidecar field).
FACT_FIELDS = (
    "model",
    "data",
    "num_classes",
    "class_names",
    "image_size",
    "mean",
    "std",
    "crop_pct",
    "interpolation",
    "precision",
)
#: The key that marks metadata rexnet wrote; its value is the version of this layout.
MARKER = "rexnet_metadata"
METADATA_VERSION = "1"
#: The ``rt_info`` section of an OpenVINO model that holds the facts.
OV_SECTION = "rexnet"
_PREPROCESSING = ("mean", "std", "crop_pct", "interpolation")


def portable_data(data: Any) -> str | None:
    """A run's ``data`` string, with a relative folder made absolute when it exists here.

    A run records ``--data`` as typed, relative to wherever it was started; the absolute path lets
    ``rexnet eval -c FILE`` find the folder from any working directory. Names (``digits``) stay.
    """
    if not isinstance(data, str) or not data:
        return None
    name, sep, folder = data.partition(":")
    from ..data import DATASETS

    if sep and name in DATASETS and folder and Path(folder).is_dir():
        return f"{name}:{Path(folder).resolve()}"
    if data not in DATASETS and Path(data).exists():
        return str(Path(data).resolve())
    return data


def trained_facts(meta: Any, image_size: int | None = None) -> dict[str, Any]:
    """The facts of a :class:`~rexnet.zoo.ModelMeta`: data, size, preprocessing and classes its run records.

    Args:
        meta: What :func:`rexnet.zoo.load_model` returned with the model.
        image_size: The size the model is exported at (default: ``meta.image_size``, a run's training size).

    Returns:
        A dict of :data:`FACT_FIELDS` (less ``precision``); ``data`` is ``None`` when nothing records
        it (a registered name, a weights file).
    """
    from ..data import training_data_spec  # the one reading of what a run records

    spec = training_data_spec(meta)
    return dict(
        model=spec["model"],
        data=portable_data(spec["data"]),
        num_classes=spec["num_classes"],
        class_names=spec["class_names"],
        image_size=int(image_size or spec["image_size"]),
        **{k: list(v) if isinstance(v, tuple) else v for k, v in spec.items() if k in _PREPROCESSING},
    )


def bench_defaults(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """``BenchConfig`` fields that ``rexnet bench --checkpoint RUN`` takes from the run (flags override them).

    Returns:
        ``model`` (the registered architecture the file holds), and for a training run also
        ``image_size`` (its training size) and ``calib_data`` (its data), when recorded.
    """
    from ..zoo import list_models, load_model

    _, meta = load_model(checkpoint)
    out: dict[str, Any] = {}
    if meta.name in list_models():
        out["model"] = meta.name
    if meta.source == "training":
        facts = trained_facts(meta)
        out["image_size"] = facts["image_size"]
        if facts["data"]:
            out["calib_data"] = facts["data"]
    return out


def eval_data(path: str | os.PathLike, data: str | None, meta: Mapping[str, Any]) -> tuple[str, bool]:
    """The data to evaluate an exported model on, and whether it is the data the file records.

    ``data`` when given; else the training data ``meta`` (from :func:`~rexnet.deploy.runtime.load_exported`)
    records; else ``digits``, with a warning that says so.
    """
    if data is not None:
        return data, False
    if meta.get("data"):
        _log.info("%s: evaluating on %s, the data it records it was trained on", path, meta["data"])
        return str(meta["data"]), True
    _log.warning(
        "%s records no training data (no sidecar or embedded metadata naming it): evaluating on digits; pass --data",
        path,
    )
    return "digits", False


def to_props(facts: Mapping[str, Any]) -> dict[str, str]:
    """The facts as string key/values (JSON-encoded), ``None`` values left out, with the :data:`MARKER`."""
    props = {k: json.dumps(facts[k]) for k in FACT_FIELDS if facts.get(k) is not None}
    props[MARKER] = METADATA_VERSION
    return props


def from_props(props: Mapping[str, str], where: str) -> dict[str, Any]:
    """The facts in ``props`` (an ONNX file's ``metadata_props`` or an IR's ``rt_info``), checked.

    Raises:
        ExportError: A file rexnet wrote (it has the :data:`MARKER`) holding an invalid value.
    """
    ours = MARKER in props
    facts: dict[str, Any] = {}
    for key in FACT_FIELDS:
        if key not in props:
            continue
        raw = props[key]
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw  # a plain string another tool wrote
        try:
            SIDECAR_FIELDS[key](where, key, value)
        except ExportError:
            if ours:
                raise
            _log.debug("%s: ignoring its metadata key %r = %.40r", where, key, raw)
            continue
        facts[key] = value
    try:
        check_sidecar(facts, where)
    except ExportError as e:
        if ours:
            raise
        _log.warning("%s: ignoring its embedded metadata: %s", where, e)
        return {}
    if facts.get("num_classes") is None and facts.get("class_names") is not None:
        facts["num_classes"] = len(facts["class_names"])
    return facts


def set_openvino_props(ov_model: Any, props: Mapping[str, str]) -> None:
    """Set ``props`` in an ``openvino.Model``'s ``rt_info`` under section :data:`OV_SECTION`."""
    for key, value in props.items():
        ov_model.set_rt_info(value, [OV_SECTION, key])


def _onnx_props(path: Path, runner: Any) -> dict[str, str]:
    session = getattr(runner, "session", None)
    if session is not None:  # onnxruntime has parsed the file already
        return dict(session.get_modelmeta().custom_metadata_map)
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - the runtime read the file; an unreadable header only loses the facts
        _log.debug("%s: cannot read metadata_props: %s", path, e)
        return {}
    return {p.key: p.value for p in model.metadata_props}


def _openvino_props(runner: Any) -> dict[str, str]:
    model = getattr(runner, "model", None)
    if model is None or not model.has_rt_info([OV_SECTION]):
        return {}
    keys = [*FACT_FIELDS, MARKER]
    return {k: model.get_rt_info([OV_SECTION, k]).astype(str) for k in keys if model.has_rt_info([OV_SECTION, k])}


def read_embedded(path: str | os.PathLike, runner: Any) -> tuple[dict[str, Any], str | None]:
    """The facts an exported file carries in itself, and where: ``metadata_props``, ``rt_info`` or ``None``.

    Args:
        path: The exported file (``.onnx`` or OpenVINO ``.xml``).
        runner: The runtime's loaded runner for it (its parsed model is read, not the file again).

    Raises:
        ExportError: Invalid values in metadata rexnet wrote.
    """
    p = Path(path)
    if p.suffix.lower() == ".onnx":
        props, where = _onnx_props(p, runner), "metadata_props"
    else:
        props, where = _openvino_props(runner), "rt_info"
    facts = from_props(props, f"{p} ({where})")
    return facts, (where if facts else None)

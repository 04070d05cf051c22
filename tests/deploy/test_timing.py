"""rexnet.latency: real (small) measurements on onnxruntime/OpenVINO, the cache's hits and misses, errors."""

from __future__ import annotations

import json

import pytest

import rexnet
from rexnet.deploy import timing
from rexnet.errors import InputError
from rexnet.plan import ib_plan

TINY = ib_plan([8, 12, 16], (1, 2, 2))  # three small blocks: milliseconds per call at 32 px
SMALL = dict(image_size=32, batch=1, threads=1, num_classes=10)


def test_latency_is_exported_lazily_from_rexnet() -> None:
    assert rexnet.latency is timing.latency and "latency" in rexnet.__all__


@pytest.mark.serial  # a second test process on the other core would be load the spread does not promise to cover
def test_a_known_plan_measured_twice_agrees_within_its_spread() -> None:
    # at 128 px a call does about a millisecond of work; at 32 px (80 us) a call is mostly the runtime's overhead
    at = {**SMALL, "image_size": 128}
    a = rexnet.latency(TINY, "onnxruntime", "fp32", repeats=60, cache=False, **at)
    b = rexnet.latency(TINY, "onnxruntime", "fp32", repeats=60, cache=False, **at)
    for lat in (a, b):
        assert lat.n >= 60 and not lat.cached  # more calls when 60 take under min_seconds
        assert 0 < lat.min_ms <= lat.q25_ms <= lat.median_ms <= lat.q75_ms <= lat.max_ms
        assert lat.iqr_ms >= 0 and lat.mad_ms >= 0
    # the reported spreads (quartiles widened to the rounds' medians, over two sessions) overlap
    assert a.agrees(b), (a.to_dict(), b.to_dict())


def test_cache_miss_then_hit_and_a_new_key_misses(tmp_path, monkeypatch) -> None:
    first = timing.latency(TINY, "onnxruntime", "fp32", repeats=5, cache=tmp_path, **SMALL)
    files = list(tmp_path.glob("*.json"))
    assert not first.cached and len(files) == 1
    stored = json.loads(files[0].read_text())
    assert stored["key"] == first.key and stored["median_ms"] == first.median_ms
    assert {"fingerprint", "runtime", "precision", "image_size", "batch", "threads", "cpu", "versions"} <= set(
        first.key
    )

    def no_export(*a, **k):
        raise AssertionError("a cache hit must not export or time anything")

    monkeypatch.setattr(timing, "build_runner", no_export)
    hit = timing.latency(TINY, "onnxruntime", "fp32", repeats=5, cache=str(tmp_path), **SMALL)
    assert hit.cached and hit.median_ms == first.median_ms and hit.key == first.key
    monkeypatch.undo()
    other = timing.latency(TINY, "onnxruntime", "fp32", repeats=5, cache=tmp_path, **{**SMALL, "batch": 2})
    assert not other.cached and len(list(tmp_path.glob("*.json"))) == 2


def test_cache_off_writes_nothing_and_a_corrupt_entry_is_measured_again(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("REXNET_CACHE", str(tmp_path / "home"))
    assert timing.latency_cache_dir(None) == tmp_path / "home" / "latency"
    assert timing.latency_cache_dir("off") is None and timing.latency_cache_dir(False) is None
    timing.latency(TINY, "onnxruntime", "fp32", repeats=3, cache="off", **SMALL)
    assert not (tmp_path / "home").exists()
    first = timing.latency(TINY, "onnxruntime", "fp32", repeats=3, **SMALL)  # the default folder, from the env
    (entry,) = (tmp_path / "home" / "latency").glob("*.json")
    entry.write_text("{not json")
    again = timing.latency(TINY, "onnxruntime", "fp32", repeats=3, **SMALL)
    assert not again.cached and again.key == first.key and "unreadable" in caplog.text


def test_a_name_and_its_plan_share_the_fingerprint() -> None:
    assert timing.fingerprint("rexnet_100") == timing.fingerprint(rexnet.get_plan("rexnet_100"))
    assert timing.fingerprint("rexnet_100") != timing.fingerprint("rexnet_130")
    assert timing.fingerprint(rexnet.create_model("rexnet_060")) == timing.fingerprint("rexnet_060")


def test_openvino_int8_goes_through_nncf(tmp_path) -> None:
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    lat = timing.latency(TINY, "openvino", "int8", repeats=3, warmup=1, cache=tmp_path, calib_images=8, **SMALL)
    assert lat.n >= 3 and lat.key["precision"] == "int8" and lat.key["versions"]["openvino"]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(runtime="tensorrt"), "unknown latency runtime 'tensorrt'; expected one of: openvino, onnxruntime"),
        (dict(precision="bf16"), "unknown latency precision 'bf16'; expected one of: fp32, int8"),
        (dict(image_size=4), "image_size must be an integer >= 8, got 4"),
        (dict(batch=0), "batch must be an integer >= 1, got 0"),
        (dict(repeats=True), "repeats must be an integer >= 1"),
    ],
)
def test_bad_arguments_are_input_errors(kw, match) -> None:
    args = dict(runtime="onnxruntime", precision="fp32", image_size=32, cache=False) | kw
    with pytest.raises(InputError, match=match.replace("(", r"\(").replace(")", r"\)")):
        timing.latency(TINY, **args)


def test_not_a_model_is_an_input_error() -> None:
    with pytest.raises(InputError, match="needs a plan, a model or a model name"):
        timing.latency(42, "onnxruntime", cache=False)  # type: ignore[arg-type]

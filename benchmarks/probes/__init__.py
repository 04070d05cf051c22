"""Helpers of ``benchmarks/probe_hostile.py``: the runner (core), crafted inputs (craft) and the catalog."""

"""Experiments built on the library: the 2022 study (`study`: its grid, cells, scheduler and engines; `report`:
its Markdown / HTML report, sentences and plots), the per-stage render profile
(`profile`), the dense-vs-pruned comparison (`compare`) and the demo (`demo`).

They use nerfprune's public pieces and are never imported by the library itself
(`tests/test_architecture.py` checks that).
"""

"""Experiments built on the library: the 2022 study (`study`, `report`), the per-stage render profile
(`profile`), the dense-vs-pruned comparison (`compare`) and the demo (`demo`).

They use nerfprune's public pieces and are never imported by the library itself
(`tests/test_architecture.py` checks that).
"""

"""Taichi kernels for nerfprune's rendering math (placeholder until the kernels land)."""

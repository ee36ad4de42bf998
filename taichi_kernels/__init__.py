"""Taichi kernels for nerfprune's rendering math, each with a torch twin in `nerfprune._reference`.

Submodules: `rays` (generate_rays, view_rays), `sampling` (stratified, importance, sample_pdf),
`compositing` (composite). Importing them imports taichi but does not initialise it:
`runtime.ensure_initialized()` runs `ti.init` once, at the first kernel call.
"""

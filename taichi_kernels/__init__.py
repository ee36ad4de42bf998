"""Taichi kernels for nerfprune's rendering math, each with a torch twin in `taichi_kernels.reference`.

Submodules: `rays` (generate_rays, view_rays), `sampling` (stratified, importance, sample_pdf),
`compositing` (composite), `encoding` (positional_encoding); `reference` holds the torch twins,
`constants` what both share, and `backend` the `RenderMath` interface over either set.
Importing them imports taichi but does not initialise it: `runtime.ensure_initialized()` runs
`ti.init` once, at the first kernel call.
"""

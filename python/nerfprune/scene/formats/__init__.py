"""Readers of the dataset formats in the field. Each turns files into `Frames`
(paths + poses + intrinsics as written); `nerfprune.scene.loading` decodes and validates."""

"""Configs of the field: the size of one MLP (`FieldConfig`, `PRESETS`), the coarse + fine model
(`NerfModelConfig`), and how the MLP is run (`MLPConfig`: precision, training backward, inference path).

The layer layout itself is stated once, in `nerfprune.field.topology.nerf_topology`.
"""

from __future__ import annotations

from dataclasses import dataclass

from nerfprune.config import check_choice, check_fields, check_range
from nerfprune.errors import ConfigError

MAX_DEPTH = 64  # ReLU layers; the deepest preset has 8
MAX_WIDTH = 4096  # units per layer; the widest preset has 256
MAX_LAYER_WEIGHTS = 2**27  # depth x width^2 (512 MB of fp32 per network; the nerf preset has 2^19)


def encoded_width(n_frequencies: int, dims: int = 3) -> int:
    """Features of the positional encoding of `dims` inputs: the input and a sin and cos per frequency."""
    return dims * (1 + 2 * n_frequencies)


ENCODINGS = {  # implemented in nerfprune.field.feature_grid (grid) and taichi_kernels.encoding (frequency)
    "frequency": "NeRF's positional encoding: the point and a sin and cos per octave (the original, the 2022 study)",
    "grid": "a multiresolution dense feature grid over the scene's box (trilinear), the point first; the scene lives "
            "in the tables and the MLP only decodes (needs a bounded scene)",
}
MAX_GRID_RESOLUTION = 512  # cells per side of the finest level (512^3 x 2 features: 1 GB of fp32)
MAX_GRID_LEVELS = 16
MAX_GRID_ENTRIES = 2**28  # table entries of one grid, all levels
GRID_BASE_RESOLUTION = 16  # cells per side of the feature grid's coarsest level


def level_resolutions(levels: int, resolution: int) -> tuple[int, ...]:
    """Cells per side of each feature-grid level: geometric from GRID_BASE_RESOLUTION (or `resolution`, if
    smaller) to `resolution`."""
    base = min(GRID_BASE_RESOLUTION, resolution)
    if levels == 1:
        return (resolution,)
    growth = (resolution / base) ** (1.0 / (levels - 1))
    return tuple(int(round(base * growth**level)) for level in range(levels))


def grid_encoded_width(levels: int, features: int) -> int:
    """Features of the grid encoding: the 3 coordinates and `features` per level."""
    return 3 + levels * features

DENSITY_ACTIVATIONS = {  # implemented in nerfprune.field.density (kept here: reading configs loads no torch)
    "relu": "max(raw, 0), the original NeRF and the 2022 study (a head negative everywhere gets no gradient)",
    "softplus": "softplus(raw - 1), as mip-NeRF: positive, gradient everywhere",
    "trunc_exp": "exp(raw) with the gradient clamped to exp(+-15), as instant-ngp",
}


@dataclass
class FieldConfig:
    """Size of one NeRF MLP, and how its raw density output becomes a density (`nerfprune.field.density`)."""

    depth: int = 8  # number of ReLU layers on the encoded position
    width: int = 256  # units per layer
    skips: tuple[int, ...] = (4,)  # layer indices after which the encoded position is concatenated again
    pos_frequencies: int = 10  # positional-encoding frequencies for positions (input included)
    dir_frequencies: int = 4  # positional-encoding frequencies for view directions
    density_activation: str = "relu"  # raw density -> density: "relu", "softplus" or "trunc_exp" (DENSITY_ACTIVATIONS)
    encoding: str = "frequency"  # position encoding: "frequency" or "grid" (ENCODINGS)
    grid_levels: int = 6  # grid encoding: tables, resolutions geometric from 16 to grid_resolution
    grid_resolution: int = 96  # grid encoding: cells per side of the finest table
    grid_features: int = 2  # grid encoding: channels per table
    grid_scale: float = 10.0  # grid encoding: features = scale x table entries (Adam moves them scale x lr)

    @property
    def pos_features(self) -> int:
        if self.encoding == "grid":
            return grid_encoded_width(self.grid_levels, self.grid_features)
        return encoded_width(self.pos_frequencies)

    @property
    def dir_features(self) -> int:
        return encoded_width(self.dir_frequencies)


PRESETS: dict[str, FieldConfig] = {
    # The original NeRF network.
    "nerf": FieldConfig(depth=8, width=256, skips=(4,)),
    # The 2022 "Pruning NeRFs" study's small network: 2 layers x 128.
    "small": FieldConfig(depth=2, width=128, skips=()),
    # Tests only: seconds to train.
    "tiny": FieldConfig(depth=2, width=32, skips=(), pos_frequencies=6, dir_frequencies=2),
}
PRESET_HELP = {"nerf": "8x256, the original NeRF", "small": "2x128, the 2022 study's", "tiny": "2x32, for tests"}


@dataclass
class NerfModelConfig:
    """The coarse and fine networks of a NeRF model."""

    preset: str = "small"  # network preset: nerf (8x256), small (2x128, the 2022 study), tiny (tests); depth/width override it
    depth: int | None = None  # override the preset's depth
    width: int | None = None  # override the preset's width
    fine: bool = True  # train a separate fine network for the importance samples
    density_activation: str = "relu"  # how the density head's raw output becomes a density (nerfprune.field.density)
    encoding: str = "frequency"  # position encoding: "frequency" (NeRF's, the 2022 study) or "grid" (a multiresolution feature grid, ENCODINGS)
    grid_levels: int = 6  # grid encoding: number of tables, resolutions geometric from 16 to grid_resolution
    grid_resolution: int = 96  # grid encoding: cells per side of the finest table
    grid_features: int = 2  # grid encoding: channels per table
    grid_scale: float = 10.0  # grid encoding: features = scale x table entries, so Adam moves them scale x lr

    def validate(self) -> None:
        """Types, the preset, and sizes bounded (docs/validation.md) so no config asks for absurd memory."""
        check_fields(self)
        check_choice("preset", self.preset, PRESETS, "network preset")
        check_choice("density_activation", self.density_activation, DENSITY_ACTIVATIONS, "density activation")
        check_choice("encoding", self.encoding, ENCODINGS, "position encoding")
        check_range("grid_levels", self.grid_levels, 1, MAX_GRID_LEVELS)
        check_range("grid_resolution", self.grid_resolution, 2, MAX_GRID_RESOLUTION)
        check_range("grid_features", self.grid_features, 1, 64)
        check_range("grid_scale", self.grid_scale, 0.0, 1e6, low_open=True)
        if self.encoding == "grid":
            entries = self.grid_features * sum(r**3 for r in level_resolutions(self.grid_levels, self.grid_resolution))
            if entries > MAX_GRID_ENTRIES:
                raise ConfigError(f"grid_features x the cells of every level must be <= 2^28 (1 GB of fp32 per "
                                  f"grid), got {entries}")
        if self.depth is not None:
            check_range("depth", self.depth, 1, MAX_DEPTH)
        if self.width is not None:
            check_range("width", self.width, 2, MAX_WIDTH)
        cfg = self.field_config()
        if cfg.depth * cfg.width**2 > MAX_LAYER_WEIGHTS:
            raise ConfigError(f"depth x width^2 must be <= 2^27 (about 512 MB of weights per network), got "
                              f"depth={cfg.depth}, width={cfg.width}")

    def field_config(self) -> FieldConfig:
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown network preset '{self.preset}': choose one of {', '.join(PRESETS)}")
        base = PRESETS[self.preset]
        cfg = FieldConfig(**{**base.__dict__})
        if self.depth is not None:
            cfg.depth = self.depth
            cfg.skips = tuple(s for s in cfg.skips if s < self.depth - 1)
        if self.width is not None:
            cfg.width = self.width
        cfg.density_activation = self.density_activation
        cfg.encoding, cfg.grid_levels, cfg.grid_resolution = self.encoding, self.grid_levels, self.grid_resolution
        cfg.grid_features, cfg.grid_scale = self.grid_features, self.grid_scale
        if cfg.depth < 1 or cfg.width < 2:
            raise ConfigError(f"network depth must be >= 1 and width >= 2, got depth={cfg.depth}, width={cfg.width}")
        return cfg


PRECISIONS = {
    "fp32": "float32 everywhere (default)",
    "bf16": "the MLP's matrix products in bfloat16 (torch.autocast; fast on CPUs with AMX); weights stay fp32",
}
BACKWARDS = {
    "handwritten": "hand-written gradient of a dense fp32 MLP, direction term once per ray (default)",
    "autograd": "torch autograd through the module's forward, as the original code",
}

INFERENCES = {
    "fast": "direction term once per ray, only the encoding columns read, buffers reused, a narrow (pruned) network run whole as one Rust kernel, else the encoding fused into the first layer, where measured faster (default; nerfprune.field.inference)",
    "first-layer": "fast, but only the encoding + first layer fused, the other layers BLAS products (for comparison)",
    "unfused": "fast, but the encoding always stored apart and every layer a BLAS product (for comparison)",
    "reference": "the network's own forward on per-sample inputs, as the original code (for comparison)",
}


@dataclass
class MLPConfig:
    """How the MLP runs (not what it is): arithmetic precision and, when training, how its gradient is computed."""

    precision: str = "fp32"  # "fp32", or "bf16": the matrix products in bfloat16 (fast on CPUs with AMX); weights stay fp32
    backward: str = "handwritten"  # training gradient of a dense fp32 MLP: "handwritten" (direction term once per ray) or "autograd" (as the original code)
    inference: str = "fast"  # rendering without gradients: "fast" (direction term once per ray, only the encoding columns read, buffers reused, narrow networks one fused kernel), "first-layer" (only the encoding + first layer fused), "unfused" (no fusion) or "reference" (the network's own forward, as the original code)

    def validate(self) -> None:
        check_fields(self)
        check_choice("precision", self.precision, PRECISIONS, "MLP precision")
        check_choice("backward", self.backward, BACKWARDS, "MLP backward")
        check_choice("inference", self.inference, INFERENCES, "MLP inference path")

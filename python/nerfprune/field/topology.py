"""The layer graph of an MLP, described generically so masks can be analysed and compacted.

A layer computes `act(W @ x + b)` with `W` of shape `[out, in]`, where `x` is the
concatenation, in order, of its input *segments*: whole network inputs (e.g. the
encoded position) or whole outputs of earlier layers. Layers are listed in
topological order. Parameters of layer `name` are `<name>.weight` `[out, in]` and
`<name>.bias` `[out]` (prefixed by the net, e.g. `coarse.pts.0.weight`).

`nerf_topology` builds the NeRF MLP of Mildenhall et al. (2020): a trunk `pts.*`
with skip connections re-reading the encoded position, a density head `sigma`
(raw; the renderer applies the density activation, `field.density`), a `feature` layer, a view-dependent layer
`views.0` reading `[feature, encoded direction]`, and the colour head `rgb` (sigmoid).
It is the one statement of that layout: `NerfMLP` builds its layers from it, the
hand-written training backward and the profiler address layers by its names, and
pruning leaves its outputs (the heads) alone unless asked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

ACTIVATIONS = ("relu", "sigmoid", "none")


@dataclass(frozen=True)
class LayerSpec:
    """One Linear layer of a topology."""

    name: str  # layer name; its parameters are "<name>.weight" and "<name>.bias"
    out_features: int  # number of output neurons (rows of the weight)
    inputs: tuple[tuple[str, int], ...]  # (source, width) segments concatenated in order
    activation: str = "relu"  # "relu", "sigmoid" or "none", applied after the affine map
    is_output: bool = False  # a network output: its neurons are never compacted away

    @property
    def in_features(self) -> int:
        """Number of input columns of the weight (sum of the segment widths)."""
        return sum(width for _, width in self.inputs)


@dataclass(frozen=True)
class Topology:
    """Network inputs and layers (topological order) of one MLP."""

    inputs: tuple[tuple[str, int], ...]  # (name, width) of each network input, in forward() order
    layers: tuple[LayerSpec, ...]  # every layer, sources before readers

    def __post_init__(self) -> None:
        widths = dict(self.inputs)
        if len(widths) != len(self.inputs):
            raise ValueError(f"topology: duplicate network input name in {self.inputs}")
        for layer in self.layers:
            if layer.activation not in ACTIVATIONS:
                raise ValueError(
                    f"topology: layer {layer.name!r} has activation {layer.activation!r}; "
                    f"use one of {ACTIVATIONS}"
                )
            for source, width in layer.inputs:
                if source not in widths:
                    raise ValueError(
                        f"topology: layer {layer.name!r} reads {source!r}, which is neither a "
                        "network input nor an earlier layer"
                    )
                if widths[source] != width:
                    raise ValueError(
                        f"topology: layer {layer.name!r} reads {width} columns of {source!r}, "
                        f"which has width {widths[source]}"
                    )
            if layer.name in widths:
                raise ValueError(f"topology: duplicate name {layer.name!r}")
            widths[layer.name] = layer.out_features

    @property
    def outputs(self) -> tuple[str, ...]:
        """Names of the output layers, in layer order (what forward() returns)."""
        return tuple(layer.name for layer in self.layers if layer.is_output)

    @property
    def names(self) -> tuple[str, ...]:
        """Layer names in topological order."""
        return tuple(layer.name for layer in self.layers)

    def layer(self, name: str) -> LayerSpec:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"topology has no layer {name!r}; layers: {[l.name for l in self.layers]}")

    def parameter_count(self) -> int:
        """Weights plus biases of all layers."""
        return sum(l.out_features * (l.in_features + 1) for l in self.layers)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Topology":
        data = json.loads(text)
        layers = tuple(
            LayerSpec(
                name=l["name"],
                out_features=int(l["out_features"]),
                inputs=tuple((s, int(w)) for s, w in l["inputs"]),
                activation=l["activation"],
                is_output=bool(l["is_output"]),
            )
            for l in data["layers"]
        )
        return cls(inputs=tuple((n, int(w)) for n, w in data["inputs"]), layers=layers)


def nerf_topology(
    depth: int = 8,
    width: int = 256,
    skips: Iterable[int] = (4,),
    pos_features: int = 63,
    dir_features: int = 27,
) -> Topology:
    """The NeRF MLP: inputs ("pos", pos_features) and ("dir", dir_features); outputs sigma, rgb.

    Layer `pts.i` reads `[pos, pts.{i-1}]` when `i - 1` is in `skips`, else `pts.{i-1}`.
    Presets: default `depth=8, width=256, skips=(4,)`; the 2022 study's small net
    `depth=2, width=128, skips=()`.
    """
    skips = set(skips)
    if depth < 1 or width < 2:
        raise ValueError(f"nerf_topology: need depth >= 1 and width >= 2, got {depth=}, {width=}")
    bad = sorted(s for s in skips if not 0 <= s < depth - 1)
    if bad:
        raise ValueError(f"nerf_topology: skips {bad} must lie in [0, depth - 2] = [0, {depth - 2}]")
    layers = [LayerSpec("pts.0", width, (("pos", pos_features),))]
    for i in range(1, depth):
        prev = (f"pts.{i - 1}", width)
        segments = (("pos", pos_features), prev) if i - 1 in skips else (prev,)
        layers.append(LayerSpec(f"pts.{i}", width, segments))
    trunk = (f"pts.{depth - 1}", width)
    layers += [
        LayerSpec("sigma", 1, (trunk,), activation="none", is_output=True),
        LayerSpec("feature", width, (trunk,), activation="none"),
        LayerSpec("views.0", width // 2, (("feature", width), ("dir", dir_features))),
        LayerSpec("rgb", 3, (("views.0", width // 2),), activation="sigmoid", is_output=True),
    ]
    return Topology(inputs=(("pos", pos_features), ("dir", dir_features)), layers=tuple(layers))

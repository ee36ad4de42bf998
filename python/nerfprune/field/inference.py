"""The field's inference path: a cost that follows the FLOPs, for dense and pruned networks alike.

Why: rendering one 64x64 view of the built-in scene (2x128, 64 + 64 samples) through each network's own
forward spent 35 % of the dense model's time (0.91 of 2.58 s) and 27 % of a compacted 95 % structured model's
(0.14 of 0.53 s) inside the network but outside its matrix products: the direction encoding gathered for every
sample (`dir_enc[ray_index]`, [n, 27]) and concatenated to the features ([n, 155]), the encoding columns a
compacted network reads gathered (`index_select`), the bias broadcast, and fresh [chunk, width] tensors for
every layer of every chunk (at 65,536 points a 32 MB tensor is mmap'ed and its pages zeroed by the kernel
each time: 0.67 s of system time per dense render). Here:

- the view direction is constant along a ray, so the columns of a layer that read it (the colour layer's
  W_d of [feature, dir_enc]) are applied once per ray: term [B, out] = dir_enc W_d^T + b, gathered per sample
  by ray index (the idea of the training pass, `field/training_backward.py`); a layer that reads only per-ray
  values runs on the B rays;
- a layer reading several sources (a skip connection) accumulates one product per column block: no concatenation;
- only the encoding columns the network reads are computed (`positional_encoding_at(..., columns=)`), for a
  compacted network those its pruned weights still read (`GraphMLP.input_index`), one chunk at a time, and
  straight from the rays and depths (the sample points are never gathered and written);
- every per-chunk tensor lives in a `Workspace` reused across chunks and calls, with a column of ones that
  carries the next layer's bias through its matrix product; the output layers write into the result directly.

Measured on the same view: the dense model 2.58 -> 1.12 s, the structured one 0.59 -> 0.33 s
(`benchmarks/bench_inference.py`, docs/pruning.md).

`InferencePlan` is a network read as its topology's layers with plain weight blocks; `plan_for` builds it
for a dense or masked (`torch.nn.utils.prune`) `NerfMLP` (weights read at each call, so it follows training)
or a compacted `GraphMLP` (dense, CSR or int8 layers; built once and kept). The function is the network's
forward on per-sample inputs, to float rounding (tests/test_inference.py). Networks without
`inference_weights` run their own forward (`nerfprune.field.runners.infer_field` decides).

The network runs whole as one Rust kernel, the encoding included, that writes only the heads
(`fused_network`); where it cannot (a CSR or int8 layer, bf16), the positional encoding and a narrow first layer
run as one Rust kernel that never stores the encoding (`fused_first_layer`); both in `nerfprune.field.fused`,
`fuse="auto"` from `infer_field`.

Not here, measured: a fused per-sample Taichi kernel (encoding, every layer, the direction term, one sample per
thread, loops unrolled at compile time) for the 95 % structured network compacted to widths of 20 took 225 ms
for 131,072 points (weights read from ndarrays; 193 ms with the weights compiled in as constants, after 26-86 s
of compilation), against 37 ms for this plan with torch's GEMMs, encoding included (one thread each): Taichi
does not vectorise the per-sample arithmetic, BLAS does.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from nerfprune.field.fused import (FUSED_ACTIVATIONS, NETWORK_ACTIVATIONS, FusedFirstLayer, FusedLayer, FusedNetwork, native_kernel, rays_for_kernel)
from nerfprune.field.topology import Topology

PER_SAMPLE_INPUT = "pos"  # the network input encoded at every sample point (the positional encoding)
PER_RAY_INPUT = "dir"  # the network input constant along a ray (the view direction's encoding)
ENCODING_ROLE = "encoding"  # workspace role of the encoded chunk
FUSE_CHOICES = ("auto", "first-layer", "off")  # InferencePlan.run: what runs as fused Rust kernels
FUSED_NETWORK_LAYER = "network + encoding (fused)"  # the observer's name of a whole fused network call


class EncodeAt(Protocol):
    """`RenderMath.positional_encoding_at`: the encoding of the points origins[r] + t dirs[r] ([N, F'], the
    `columns` asked for), written into the first columns of `out`."""

    def __call__(self, origins: Tensor, dirs: Tensor, t: Tensor, ray_index: Tensor, n_frequencies: int, *,
                 columns: Tensor | None = None, out: Tensor | None = None) -> Tensor: ...


class Observer(Protocol):
    """Told the time of each part of an inference call (the profiler's way in, `experiments/profile.py`)."""

    def layer(self, name: str, seconds: float) -> None:
        """One layer over all chunks of a call (a per-ray part is named "<layer> (per ray)")."""

    def network(self, seconds: float) -> None:
        """The whole network call, the positional encoding excluded (a mask multiply included)."""

    def stage(self, name: str, seconds: float) -> None:
        """A named part of the network call outside its layers: "mask multiply" (torch.nn.utils.prune masks)."""


_observer: dict[str, Observer | None] = {"current": None}


@contextlib.contextmanager
def observing(observer: Observer) -> Iterator[None]:
    """Report the times of every inference call made inside the block to `observer`."""
    previous, _observer["current"] = _observer["current"], observer
    try:
        yield
    finally:
        _observer["current"] = previous


class Workspace:
    """Per-chunk tensors reused across chunks and calls: a freshly allocated big tensor is paid for again
    (page faults, zeroing) every time, a reused one is only rewritten.

    A buffer is `[capacity, width + 1]` per (role, width, dtype, device), its last column all ones (the bias
    column, see `InferencePlan`), and grows when more rows are asked for; `get` hands out its first `rows`
    rows. Buffers never leave an inference call (its results are tensors of their own), so one workspace per
    thread serves every network. `allocations` counts the buffers made, so tests can see that chunks reuse them.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple, Tensor] = {}
        self.allocations = 0

    def get(self, role: str, rows: int, width: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        """[rows, width + 1], the last column 1, the others stale (the caller overwrites them)."""
        key = (role, width, dtype, device)
        buf = self._buffers.get(key)
        if buf is None or buf.shape[0] < rows:
            buf = self._buffers[key] = torch.empty((rows, width + 1), dtype=dtype, device=device)
            buf[:, width] = 1.0
            self.allocations += 1
        return buf[:rows]

    def clear(self) -> None:
        """Drop every buffer (the memory goes back to the allocator)."""
        self._buffers.clear()


_local = threading.local()


def workspace() -> Workspace:
    """This thread's workspace."""
    if not hasattr(_local, "workspace"):
        _local.workspace = Workspace()
    return _local.workspace


@dataclass
class _Block:
    """The columns of a layer's weight that read one source: a dense block, or an operator (CSR, int8)."""

    source: str  # a network input or an earlier layer
    weight: Tensor  # [out, width] dense weight block, or [out, width + 1] with the bias as last column
    op: Callable[[Tensor], Tensor] | None = None  # x [rows, width] -> [rows, out] when not a dense product


@dataclass
class _Step:
    """One layer of the plan."""

    name: str
    out_features: int
    activation: str  # "relu", "sigmoid" or "none"
    is_output: bool
    per_ray: bool  # reads per-ray values only: computed once per ray
    bias: Tensor  # [out]
    sample_blocks: list[_Block] = field(default_factory=list)  # blocks reading per-sample values
    ray_blocks: list[_Block] = field(default_factory=list)  # blocks reading per-ray values (summed per ray)
    bias_folded: bool = False  # the first sample block carries the bias (no per-ray term, a dense product)
    slot: str = ""  # workspace role of its per-sample output (shared with layers whose outputs are dead by then)


_ACT_ = {"relu": torch.Tensor.relu_, "sigmoid": torch.Tensor.sigmoid_, "none": lambda x: x}
_ACT = {"relu": torch.relu, "sigmoid": torch.sigmoid, "none": lambda x: x}


class InferencePlan:
    """A network as plain layer steps: per-ray parts once per ray, chunks over reused buffers.

    `weights` maps a layer name to (weight [out, in], bias [out]); `columns` maps a network input to the
    features of the full input the network reads (missing: all); `modes` maps a layer to "dense", "csr" or
    "int8" (missing: dense); `dtype` is the arithmetic's (bfloat16 for precision "bf16"). A "csr" layer keeps
    its sparse product only where it beats the dense one on this path (`measure_csr`; the modes were chosen
    by `tune_modes` for `GraphMLP`'s own layout, which the per-chunk row-major buffers here do not share:
    a CSR product needs its input transposed).

    Layout: every per-sample value of a chunk (the encoding, each hidden layer's output) sits in a workspace
    buffer [rows, width + 1] whose last column is 1, and the first dense block of each layer carries the bias
    as an extra column ([W | b]): the bias costs no pass of its own over the [rows, out] output (that pass was
    up to 45 % of a 63 -> 128 product here, `torch.addmm` broadcasts the bias into the output first).
    """

    def __init__(self, topology: Topology, weights: Mapping[str, tuple[Tensor, Tensor]],
                 columns: Mapping[str, Tensor] | None = None, modes: Mapping[str, str] | None = None,
                 dtype: torch.dtype = torch.float32, measure_csr: bool = True) -> None:
        if tuple(name for name, _ in topology.inputs) != (PER_SAMPLE_INPUT, PER_RAY_INPUT):
            raise ValueError(f"InferencePlan: the network's inputs must be ({PER_SAMPLE_INPUT!r}, {PER_RAY_INPUT!r}) "
                             f"(nerf_topology), got {[name for name, _ in topology.inputs]}")
        if len(topology.outputs) != 2:
            raise ValueError(f"InferencePlan: the network must have two outputs (sigma, rgb), got {topology.outputs}")
        self.topology = topology
        self.dtype = dtype
        self.measure_csr = measure_csr
        # on the CPU: the encoding kernel's column table is built (and cached) from its values
        self.columns = {name: idx.to("cpu", torch.int64) for name, idx in (columns or {}).items()}
        self.widths = dict(topology.inputs) | {layer.name: layer.out_features for layer in topology.layers}
        read = {source for layer in topology.layers for source, _ in layer.inputs}
        self.direct = {l.name for l in topology.layers if l.is_output and l.name not in read}  # written into the result
        modes = modes or {}
        per_ray = {PER_RAY_INPUT}
        self.steps: list[_Step] = []
        with torch.no_grad():
            for layer in topology.layers:
                self.steps.append(self._step(layer, weights[layer.name], modes.get(layer.name, "dense"), per_ray))
        self._assign_slots()
        self._first = self._fusable_first_step()
        self._fused: dict[int, FusedFirstLayer | None] = {}  # octaves -> the kernel, or None
        self._networks: dict[int, FusedNetwork | None] = {}  # octaves -> the kernel, or None

    def _assign_slots(self) -> None:
        """Give each per-sample output a workspace slot, reusing the slot of a value no later layer reads
        (so an 8 x 256 network holds three [chunk, 257] buffers, not ten)."""
        last_read = {}
        for i, step in enumerate(self.steps):
            for block in step.sample_blocks:
                last_read[block.source] = i
        free: dict[int, list[str]] = {}  # width -> slots free for reuse
        holder: dict[str, str] = {}  # value -> its slot
        count = 0
        for i, step in enumerate(self.steps):
            if step.per_ray or step.name in self.direct:
                continue
            if free.get(step.out_features):
                step.slot = free[step.out_features].pop()
            else:
                step.slot, count = f"value.{count}", count + 1
            holder[step.name] = step.slot
            for source in {block.source for block in step.sample_blocks}:
                if last_read[source] == i and source in holder:
                    free.setdefault(self.widths[source], []).append(holder.pop(source))

    def _step(self, layer, weight_bias: tuple[Tensor, Tensor], mode: str, per_ray: set[str]) -> _Step:
        w, b = (t.detach().to(self.dtype) for t in weight_bias)
        step = _Step(layer.name, layer.out_features, layer.activation, layer.is_output, False, b.contiguous())
        col = 0
        for source, width in layer.inputs:
            block = w[:, col:col + width]
            col += width
            if width == 0 or layer.out_features == 0:
                continue  # an input or output compacted away: nothing to compute
            if source in per_ray:
                step.ray_blocks.append(_Block(source, block))
            else:
                op = _operator(block, mode)
                if op is not None and mode == "csr" and self.measure_csr and not _csr_wins(block, op):
                    op = None  # on this path (row-major chunks) the dense product of this block is faster
                step.sample_blocks.append(_Block(source, block, op))
        step.per_ray = not step.sample_blocks and bool(step.ray_blocks)
        if step.per_ray:
            per_ray.add(layer.name)
        lead = step.sample_blocks[0] if step.sample_blocks else None
        if not step.ray_blocks and lead is not None and lead.op is None:
            lead.weight = torch.cat([lead.weight, step.bias[:, None]], dim=1).contiguous()  # [out, width + 1]
            step.bias_folded = True
        return step

    def _fusable_first_step(self) -> _Step | None:
        """The one layer reading the positional encoding, if the fused kernel can run it: it reads nothing else,
        is not an output, its product is a dense block with the bias folded in, its activation ReLU or none."""
        readers = [step for step in self.steps if any(b.source == PER_SAMPLE_INPUT for b in step.sample_blocks)]
        if len(readers) != 1 or self.dtype != torch.float32:
            return None
        step = readers[0]
        if (step.is_output or step.ray_blocks or len(step.sample_blocks) != 1 or step.sample_blocks[0].op is not None
                or not step.bias_folded or step.activation not in FUSED_ACTIVATIONS):
            return None
        return step

    def fused_first_layer(self, pos_frequencies: int, device: torch.device, fuse: str = "auto") -> FusedFirstLayer | None:
        """The fused encoding + first layer this plan runs (None: the encoding is stored and the layer is a
        BLAS product). fuse "auto" and "first-layer": wherever it can run (it measured 0.20-0.52x the encoding
        kernel + BLAS at every width from 8 to 128, `nerfprune.field.fused`), "off": never."""
        if fuse not in FUSE_CHOICES:
            raise ValueError(f"InferencePlan: fuse must be one of {', '.join(FUSE_CHOICES)}, got {fuse!r}")
        step = self._first
        if fuse == "off" or step is None or device.type != "cpu" or native_kernel() is None:
            return None
        key = pos_frequencies
        if key not in self._fused:
            width, features = self.widths[PER_SAMPLE_INPUT], 3 * (1 + 2 * pos_frequencies)
            columns = self.pos_columns if self.pos_columns is not None else torch.arange(width)
            fits = width == features if self.pos_columns is None else (not width or int(columns.max()) < features)
            # an encoding that does not fit the network takes the unfused path, which names the problem
            self._fused[key] = None if not fits else FusedFirstLayer(
                step.sample_blocks[0].weight.contiguous(), columns.numpy().astype(np.int64), pos_frequencies,
                step.activation)
        return self._fused[key]

    def fused_network(self, pos_frequencies: int, device: torch.device, fuse: str = "auto") -> FusedNetwork | None:
        """The whole network as one kernel, encoding included (None: it runs layer by layer). fuse "auto":
        wherever it can run (it measured 0.17-0.57x the layer-by-layer time at every width from 8 to 256,
        `nerfprune.field.fused`), "first-layer" and "off": never."""
        if fuse not in FUSE_CHOICES:
            raise ValueError(f"InferencePlan: fuse must be one of {', '.join(FUSE_CHOICES)}, got {fuse!r}")
        if fuse in ("off", "first-layer") or device.type != "cpu" or native_kernel("run_network") is None:
            return None
        if pos_frequencies not in self._networks:
            self._networks[pos_frequencies] = self._network_program(pos_frequencies)
        return self._networks[pos_frequencies]

    def _network_program(self, pos_frequencies: int) -> FusedNetwork | None:
        """The plan's steps as table layers (`FusedNetwork`), or None where the kernel cannot run them: not float32,
        a CSR or int8 block, another activation, a per-ray head, an encoding that does not fit the network (the
        layer-by-layer path names that problem)."""
        if self.dtype != torch.float32:
            return None
        encoding = 3 * (1 + 2 * pos_frequencies)
        pos_width, columns = self.widths[PER_SAMPLE_INPUT], self.pos_columns
        if columns is None and pos_width != encoding or columns is not None and pos_width and int(columns.max()) >= encoding:
            return None
        rows = {PER_SAMPLE_INPUT: (columns if columns is not None else torch.arange(pos_width)).numpy().astype(np.int64)}
        heads = {name: k for k, name in enumerate(self.topology.outputs)}
        layers, next_row = [], encoding
        for step in self.steps:
            if step.per_ray and not step.is_output:
                continue  # read through the per-ray terms of the layers after it
            if step.per_ray or step.activation not in NETWORK_ACTIVATIONS or any(b.op is not None for b in step.sample_blocks):
                return None
            inputs = [rows[block.source] for block in step.sample_blocks]
            weight = torch.cat([block.weight[:, :self.widths[block.source]] for block in step.sample_blocks]
                               or [step.bias.new_zeros(step.out_features, 0)], dim=1)  # the folded bias dropped
            layers.append(FusedLayer(step.name, weight.float().contiguous().numpy(),
                                     np.concatenate(inputs) if inputs else np.zeros(0, np.int64),
                                     step.bias.float().contiguous().numpy(), bool(step.ray_blocks), step.activation,
                                     next_row, heads.get(step.name)))
            rows[step.name] = np.arange(next_row, next_row + step.out_features, dtype=np.int64)
            next_row += step.out_features
        return FusedNetwork(layers, pos_frequencies)

    @property
    def pos_columns(self) -> Tensor | None:
        """Features of the positional encoding the network reads [F'] (None: all of them)."""
        return self.columns.get(PER_SAMPLE_INPUT)

    @torch.no_grad()
    def run(self, origins: Tensor, dirs: Tensor, t: Tensor, ray_index: Tensor, dir_enc: Tensor, pos_frequencies: int,
            encode_at: EncodeAt, chunk: int, fuse: str = "off") -> tuple[Tensor, Tensor]:
        """Raw density [n] and colour [n, 3] (float32) at the n sample points origins[r] + t dirs[r] of rays
        r = ray_index [n] (int64; rays origins, dirs [B, 3], direction encodings dir_enc [B, D]); the encoding
        and the layers run `chunk` points at a time. `fuse` (FUSE_CHOICES) picks the Rust kernels: the whole
        network in one call (`fused_network`: "auto"; then there are no chunks), else the encoding fused into
        the first layer (`fused_first_layer`: "auto", "first-layer"); "off": neither, the encoding always
        `encode_at`'s and every layer a torch product."""
        observer = _observer["current"]
        clock = _Clock(observer)
        start_call = time.perf_counter()
        encoding_s = 0.0
        n, device = t.shape[0], t.device
        ws = workspace()
        ray_values, terms = self._per_ray(dir_enc, clock)
        sigma = torch.empty((n, 1), dtype=torch.float32, device=device)
        rgb = torch.empty((n, 3), dtype=torch.float32, device=device)
        results = dict(zip(self.topology.outputs, (sigma, rgb)))
        network = self.fused_network(pos_frequencies, device, fuse) if n else None
        if network is not None:  # one kernel for the whole network: no chunks, nothing per sample but the heads
            t0 = clock.start()
            network(*rays_for_kernel(origins, dirs), t.detach().to(torch.float32).contiguous(),
                    ray_index.to(torch.int64).contiguous(), terms, sigma, rgb)
            clock.stop(FUSED_NETWORK_LAYER, t0)
        cols, pos_width = self.pos_columns, self.widths[PER_SAMPLE_INPUT]
        fused = self.fused_first_layer(pos_frequencies, device, fuse) if n and network is None else None
        if fused is not None:
            rays_np = rays_for_kernel(origins, dirs)
            t, ray_index = t.detach().to(torch.float32).contiguous(), ray_index.to(torch.int64).contiguous()
        for start in range(0, n if network is None else 0, chunk):
            stop = min(start + chunk, n)
            rows, index = stop - start, ray_index[start:stop]
            values = {}  # name -> [rows, width + 1], last column 1
            if fused is None:
                t0 = time.perf_counter()
                enc = ws.get(ENCODING_ROLE, rows, pos_width, torch.float32, device)  # [rows, F' + 1]
                encode_at(origins, dirs, t[start:stop], index, pos_frequencies, columns=cols, out=enc)  # first F' columns
                encoding_s += time.perf_counter() - t0
                if self.dtype != torch.float32:
                    enc = ws.get("pos.lowp", rows, pos_width, self.dtype, device).copy_(enc)
                values[PER_SAMPLE_INPUT] = enc
            for step in self.steps:
                if step.per_ray and not step.is_output:
                    continue
                t0 = clock.start()
                if fused is not None and step is self._first:  # the encoding never stored: one kernel writes the layer
                    full = ws.get(step.slot, rows, step.out_features, torch.float32, device)
                    fused(*rays_np, t[start:stop], index, full)
                    values[step.name] = full
                    clock.stop(f"{step.name} + encoding", t0)
                    continue
                direct = step.name in self.direct and self.dtype == torch.float32
                if direct:
                    out = full = results[step.name][start:stop]  # [rows, out], contiguous
                else:
                    full = ws.get(step.slot, rows, step.out_features, self.dtype, device)
                    out = full[:, :step.out_features]
                if step.per_ray:  # a per-ray output (its per-sample inputs were compacted away)
                    torch.index_select(ray_values[step.name], 0, index, out=out)
                else:
                    self._sample_step(step, values, terms.get(step.name), index, out)
                    # ReLU over the whole buffer: contiguous (1.4 -> 0.9 ms at [65,536, 20]), and relu(1) keeps the ones
                    _ACT_[step.activation](full if step.activation == "relu" else out)
                if step.is_output and not direct:
                    results[step.name][start:stop].copy_(out)
                values[step.name] = full
                clock.stop(step.name, t0)
        clock.flush()
        if observer is not None:
            observer.network(time.perf_counter() - start_call - encoding_s)
        return sigma[:, 0], rgb

    def _per_ray(self, dir_enc: Tensor, clock: "_Clock") -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Values of the per-ray layers [B, out] and, for mixed layers, their per-ray term b + sum W_d v [B, out]."""
        if PER_RAY_INPUT in self.columns:
            dir_enc = dir_enc.index_select(1, self.columns[PER_RAY_INPUT].to(dir_enc.device))
        values = {PER_RAY_INPUT: dir_enc.to(self.dtype)}
        terms: dict[str, Tensor] = {}
        for step in self.steps:
            if not step.ray_blocks:
                continue
            t0 = clock.start()
            term = step.bias.expand(dir_enc.shape[0], -1)
            for block in step.ray_blocks:
                term = torch.addmm(term, values[block.source], block.weight.t())  # [B, out]
            if step.per_ray:
                values[step.name] = _ACT[step.activation](term)
            else:
                terms[step.name] = term
            clock.stop(f"{step.name} (per ray)", t0)
        return values, terms

    def _sample_step(self, step: _Step, values: dict[str, Tensor], term: Tensor | None, index: Tensor,
                     out: Tensor) -> None:
        """out [rows, out] = term[index] + the per-sample blocks' products (+ bias), before the activation."""
        fresh = True  # nothing in `out` yet
        if term is not None:
            torch.index_select(term, 0, index, out=out)
            fresh = False
        for k, block in enumerate(step.sample_blocks):
            full = values[block.source]  # [rows, width + 1], last column 1
            if k == 0 and step.bias_folded:
                torch.mm(full, block.weight.t(), out=out)  # [x | 1] [W | b]^T
            else:
                x = full[:, :self.widths[block.source]]
                if block.op is not None:
                    y = block.op(x)
                    if fresh:
                        torch.add(y, step.bias, out=out)
                    else:
                        out.add_(y)
                elif fresh:
                    torch.addmm(step.bias, x, block.weight.t(), out=out)
                else:
                    out.addmm_(x, block.weight.t())
            fresh = False
        if fresh:  # no input left: a constant layer
            out.copy_(step.bias.expand_as(out))


def _operator(block: Tensor, mode: str) -> Callable[[Tensor], Tensor] | None:
    """x -> x block^T for a CSR or int8 layer (None: a dense product, done in place by the plan)."""
    if mode == "dense":
        return None
    if mode == "csr":
        from nerfprune.pruning.masks import masked_csr

        csr = masked_csr(block.float(), block != 0).to(block.device)
        return lambda x: torch.sparse.mm(csr, x.float().t()).t()
    if mode == "int8":
        from nerfprune.field.graph import int8_linear

        linear = int8_linear(block.float(), torch.zeros(block.shape[0], device=block.device))
        return lambda x: linear(x.float())
    raise ValueError(f"InferencePlan: unknown layer mode {mode!r}; use dense, csr or int8")


def _csr_wins(block: Tensor, op: Callable[[Tensor], Tensor], rows: int = 4096, repeats: int = 3) -> bool:
    """Whether `op` (a CSR product) beats the dense product of `block` [out, width] on a [rows, width] chunk
    laid out as the plan's (a view of a [rows, width + 1] buffer); medians of `repeats` after a warm-up."""
    x = torch.randn(rows, block.shape[1] + 1, device=block.device, dtype=block.dtype)[:, :block.shape[1]]
    out = torch.empty(rows, block.shape[0], device=block.device, dtype=block.dtype)
    timings = []
    for run in (lambda: out.copy_(op(x)), lambda: torch.mm(x, block.t(), out=out)):
        samples = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            run()
            if block.device.type == "cuda":
                torch.cuda.synchronize()
            samples.append(time.perf_counter() - start)
        timings.append(sorted(samples[1:])[repeats // 2])
    return timings[0] < timings[1]


class _Clock:
    """Per-layer seconds of one call, summed over its chunks and reported once (nothing when unobserved)."""

    def __init__(self, observer: Observer | None) -> None:
        self.observer = observer
        self.seconds: dict[str, float] = {}

    def start(self) -> float:
        return time.perf_counter() if self.observer is not None else 0.0

    def stop(self, name: str, t0: float) -> None:
        if self.observer is not None:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    def flush(self) -> None:
        for name, seconds in self.seconds.items():
            self.observer.layer(name, seconds)


def plan_for(net: torch.nn.Module, dtype: torch.dtype = torch.float32) -> InferencePlan | None:
    """The plan of `net` (None for a network without `inference_weights`: it runs its own forward).

    A network with `inference_plan_cache` (the compacted `GraphMLP`, whose weights never change) keeps its plan;
    others (`NerfMLP`, which trains) are read afresh at every call.
    """
    if not hasattr(net, "inference_weights"):
        return None
    cache = getattr(net, "inference_plan_cache", None)
    key = (dtype, next(iter(net.buffers()), torch.empty(0)).device)  # a cached plan follows `net.to(device)`
    if cache is not None and key in cache:
        return cache[key]
    start = time.perf_counter()
    weights = net.inference_weights()
    observer = _observer["current"]
    if observer is not None and any(name.endswith("weight_mask") for name, _ in net.named_buffers()):
        seconds = time.perf_counter() - start  # torch.nn.utils.prune: the masks were multiplied in just now
        observer.stage("mask multiply", seconds)
        observer.network(seconds)
    plan = InferencePlan(net.topology, weights, getattr(net, "input_index", None), getattr(net, "modes", None), dtype)
    if cache is not None:
        cache[key] = plan
    return plan

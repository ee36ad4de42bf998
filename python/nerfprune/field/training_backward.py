"""The NeRF MLP's training pass with a hand-written backward: `NerfMLP.forward` is its reference.

(Not a fused kernel: plain torch products, with the gradient written out by hand.)

Why: on a CPU, autograd's version of the small (2 x 128) network spends about a
third of its time outside the matrix products, and some of its products are
wasted work. This version computes the same function and the same gradients
with three changes:

- The view direction is constant along a ray, so its share of the colour
  layer's input, W_dir . gamma(d), is computed once per ray and broadcast over
  the ray's S samples. The original code repeats gamma(d) for every sample and
  concatenates it to the 128 features: a [M, 155] input, whose gradient (a
  matrix of odd width that nothing needs) autograd computes in full.
- No concatenation at all: a layer whose input is [gamma(x), h] (a skip, or the
  colour layer) is split into two products on column blocks of its weight.
- ReLU and sigmoid work in place; their backward reads the saved outputs.

Shapes: M = B * S points in ray-major order (the S samples of ray 0 first), P
position features, D direction features, W width. The gradients agree with
autograd's to float rounding (`tests/test_fused_mlp.py` checks in float64).
"""

from __future__ import annotations

import torch

from nerfprune.field.mlp import NerfMLP


def _layer_params(net: NerfMLP) -> list[torch.Tensor]:
    """Weight and bias of every layer, in the topology's layer order (how `_HandwrittenNerfMLP` takes them)."""
    params: list[torch.Tensor] = []
    for name in net.topology.names:
        params += [net.layer(name).weight, net.layer(name).bias]
    return params


def _relu_backward_(grad: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """grad * (out > 0), written over `grad` (autograd's ReLU backward, without a new tensor)."""
    return torch.ops.aten.threshold_backward.grad_input(grad, out, 0, grad_input=grad)


def _split_input(weight: torch.Tensor, n_first: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Columns of a weight applied to the two parts of a concatenated input [first, second]."""
    return weight[:, :n_first], weight[:, n_first:]


def _by_name(names: tuple[str, ...], params) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """layer name -> (weight, bias) from the flat `_layer_params` order."""
    return {name: (params[2 * k], params[2 * k + 1]) for k, name in enumerate(names)}


class _HandwrittenNerfMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pos_enc, dir_enc, samples, skips, names, *params):
        # pos_enc [M, P]; dir_enc [B, D]; params as `_layer_params`, layers named by `names`
        layer = _by_name(names, params)
        n_pts = sum(name.startswith("pts.") for name in names)
        p, rays = pos_enc.shape[1], dir_enc.shape[0]
        acts = []  # output of each position layer (after ReLU): [M, W]
        h = pos_enc
        for i in range(n_pts):
            w, b = layer[f"pts.{i}"]
            if i > 0 and (i - 1) in skips:  # input [pos_enc, h]
                w_pos, w_h = _split_input(w, p)
                z = torch.addmm(b, h, w_h.t()).addmm_(pos_enc, w_pos.t())
            else:
                z = torch.addmm(b, h, w.t())
            h = z.relu_()
            acts.append(h)
        (w_sigma, b_sigma), (w_feat, b_feat), (w_view, b_view), (w_rgb, b_rgb) = (
            layer[name] for name in ("sigma", "feature", "views.0", "rgb"))
        sigma_raw = torch.addmm(b_sigma, h, w_sigma.t())  # [M, 1]
        feat = torch.addmm(b_feat, h, w_feat.t())  # [M, W]
        w_view_feat, w_view_dir = _split_input(w_view, feat.shape[1])
        per_ray = torch.addmm(b_view, dir_enc, w_view_dir.t())  # [B, W/2]: direction term, once per ray
        view = torch.mm(feat, w_view_feat.t())  # [M, W/2]
        if isinstance(samples, int):  # S samples per ray, ray-major
            view.view(rays, samples, -1).add_(per_ray[:, None, :])
        else:  # packed: samples is the ray index [M] of every point
            view.add_(per_ray.index_select(0, samples))
        view = view.relu_()
        rgb = torch.addmm(b_rgb, view, w_rgb.t()).sigmoid_()  # [M, 3]
        ctx.samples, ctx.skips, ctx.n_pts, ctx.names = samples, skips, n_pts, names
        ctx.save_for_backward(pos_enc, dir_enc, feat, view, rgb, *acts, *params)
        return sigma_raw, rgb

    @staticmethod
    def backward(ctx, g_sigma, g_rgb):
        pos_enc, dir_enc, feat, view, rgb, *rest = ctx.saved_tensors
        n_pts, skips, samples, names = ctx.n_pts, ctx.skips, ctx.samples, ctx.names
        acts, params = rest[:n_pts], rest[n_pts:]
        layer = _by_name(names, params)
        slot = {name: 2 * k for k, name in enumerate(names)}  # index of a layer's weight gradient
        grads: list[torch.Tensor | None] = [None] * len(params)

        def put(name: str, g_weight: torch.Tensor | None, g_bias: torch.Tensor | None) -> None:
            grads[slot[name]], grads[slot[name] + 1] = g_weight, g_bias

        w_sigma, w_feat, w_view, w_rgb = (layer[name][0] for name in ("sigma", "feature", "views.0", "rgb"))
        p, rays = pos_enc.shape[1], dir_enc.shape[0]
        need_pos, need_dir = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        g_pos = None
        h = acts[-1]

        # colour head: rgb = sigmoid(view W_rgb^T + b)
        g_z = g_rgb * rgb * (1.0 - rgb) if g_rgb is not None else torch.zeros_like(rgb)  # [M, 3]
        put("rgb", g_z.t().mm(view), g_z.sum(0))
        # colour layer: view = relu(feat W_vf^T + per-ray (dir W_vd^T + b))
        g_z = _relu_backward_(g_z.mm(w_rgb), view)  # [M, W/2]
        if isinstance(samples, int):
            g_ray = g_z.view(rays, samples, -1).sum(1)  # [B, W/2]
        else:
            g_ray = g_z.new_zeros(rays, g_z.shape[1]).index_add_(0, samples, g_z)
        w_view_feat, w_view_dir = _split_input(w_view, feat.shape[1])
        put("views.0", torch.cat([g_z.t().mm(feat), g_ray.t().mm(dir_enc)], dim=1), g_ray.sum(0))
        g_dir = g_ray.mm(w_view_dir) if need_dir else None
        # feature layer (no activation)
        g_feat = g_z.mm(w_view_feat)  # [M, W]
        put("feature", g_feat.t().mm(h), g_feat.sum(0))
        g_h = g_feat.mm(w_feat)  # [M, W]
        # density head
        if g_sigma is not None:
            put("sigma", g_sigma.t().mm(h), g_sigma.sum(0))
            g_h.addmm_(g_sigma, w_sigma)
        # position layers, last to first
        for i in reversed(range(n_pts)):
            w, _ = layer[f"pts.{i}"]
            g_z = _relu_backward_(g_h, acts[i])
            if i == 0:
                put("pts.0", g_z.t().mm(pos_enc), g_z.sum(0))
                if need_pos:
                    g_pos = g_z.mm(w) if g_pos is None else g_pos.addmm_(g_z, w)
                break
            prev = acts[i - 1]
            if (i - 1) in skips:
                w_pos, w_h = _split_input(w, p)
                put(f"pts.{i}", torch.cat([g_z.t().mm(pos_enc), g_z.t().mm(prev)], dim=1), g_z.sum(0))
                if need_pos:
                    g_pos = g_z.mm(w_pos) if g_pos is None else g_pos.addmm_(g_z, w_pos)
                g_h = g_z.mm(w_h)
            else:
                put(f"pts.{i}", g_z.t().mm(prev), g_z.sum(0))
                g_h = g_z.mm(w)
        return (g_pos, g_dir, None, None, None, *grads)


def forward_rays(
    net: NerfMLP, pos_enc: torch.Tensor, dir_enc: torch.Tensor, samples: int | torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluate `net` on the S = `samples` points of each of B rays, or on packed points of rays `samples` [M].

    pos_enc [B*S, P] ray-major (or [M, P] packed); dir_enc [B, D] (one per ray) -> sigma_raw [., 1], rgb [., 3].
    Same values as `net(pos_enc, dir_enc.repeat_interleave(S, 0))` (packed: `dir_enc[samples]`), gradients by hand.
    """
    rays = dir_enc.shape[0]
    if torch.is_tensor(samples):
        if samples.shape != (pos_enc.shape[0],):
            raise ValueError(f"forward_rays: ray index of shape {list(samples.shape)} for {pos_enc.shape[0]} points")
    elif pos_enc.shape[0] != rays * samples:
        raise ValueError(f"forward_rays: {pos_enc.shape[0]} points is not {rays} rays x {samples} samples")
    return _HandwrittenNerfMLP.apply(pos_enc, dir_enc, samples, tuple(net.cfg.skips), net.topology.names,
                                     *_layer_params(net))

# TEMPORARY (lead's dev stand-in, replaced by the kernels branch)
import torch
def generate_rays(c2w, intrinsics, view, row, col, distortion=None, pixel_offset=0.5):
    fx, fy, cx, cy = intrinsics[view].unbind(-1)
    u = col.to(c2w.dtype) + pixel_offset; v = row.to(c2w.dtype) + pixel_offset
    d_cam = torch.stack([(u - cx) / fx, -(v - cy) / fy, -torch.ones_like(u)], -1)
    R = c2w[view, :, :3]
    return c2w[view, :, 3].contiguous(), (R @ d_cam[..., None])[..., 0]
def view_rays(c2w, fx, fy, cx, cy, width, height, distortion=None, pixel_offset=0.5):
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    intr = torch.tensor([[fx, fy, cx, cy]], dtype=c2w.dtype)
    n = height * width
    return generate_rays(c2w[None], intr, torch.zeros(n, dtype=torch.long), rows.reshape(-1), cols.reshape(-1), None, pixel_offset)
def stratified(n_rays, n_samples, near, far, perturb, lindisp=False, generator=None):
    u = torch.linspace(0, 1, n_samples + 1)[None].expand(n_rays, -1)
    lo, hi = u[:, :-1], u[:, 1:]
    s = lo + (hi - lo) * (torch.rand(n_rays, n_samples, generator=generator) if perturb else 0.5)
    return near + (far - near) * s
def importance(t, weights, n_fine, perturb, generator=None):
    mids = 0.5 * (t[:, 1:] + t[:, :-1])
    w = weights[:, 1:-1].detach() + 1e-5
    pdf = w / w.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)
    u = torch.rand(t.shape[0], n_fine, generator=generator) if perturb else torch.linspace(0, 1, n_fine).expand(t.shape[0], n_fine).contiguous()
    inds = torch.searchsorted(cdf, u, right=True)
    below = (inds - 1).clamp(min=0); above = inds.clamp(max=cdf.shape[-1] - 1)
    cb, ca = cdf.gather(1, below), cdf.gather(1, above)
    bb, ba = mids.gather(1, below), mids.gather(1, above)
    denom = torch.where(ca - cb < 1e-5, torch.ones_like(ca), ca - cb)
    s = bb + (u - cb) / denom * (ba - bb)
    return torch.sort(torch.cat([t, s.detach()], -1), -1).values
def composite(sigma, rgb, t, ray_norm, background, last_delta=1e10, early_stop_eps=0.0):
    delta = torch.cat([t[:, 1:] - t[:, :-1], torch.full_like(t[:, :1], last_delta)], -1) * ray_norm[:, None]
    alpha = 1 - torch.exp(-sigma * delta)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha + 1e-10], -1), -1)[:, :-1]
    w = alpha * trans
    op = w.sum(-1)
    col = (w[..., None] * rgb).sum(1) + (1 - op)[:, None] * background
    return col, (w * t).sum(-1), op, w

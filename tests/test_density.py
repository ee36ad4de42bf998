"""The density activation (`nerfprune.field.density`): values, gradients, every renderer uses it, configs and
checkpoints carry it, and a density head negative everywhere still gets a gradient without ReLU."""

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nerfprune.errors import ConfigError
from nerfprune.field import PRESETS, MLPConfig, NerfModel, NerfModelConfig
from nerfprune.field.config import DENSITY_ACTIVATIONS, FieldConfig
from nerfprune.field.density import TRUNC_EXP_CLAMP, activate_density
from nerfprune.loss import loss_and_backward
from nerfprune.renderer import RenderConfig
from conftest import toward_the_origin

# the formulas, written out independently of the module under test (float64)
FORMULAS = {
    "relu": lambda x: max(x, 0.0),
    "softplus": lambda x: math.log1p(math.exp(x - 1.0)),  # mip-NeRF: softplus(raw - 1)
    "trunc_exp": math.exp,
}
DERIVATIVES = {
    "relu": lambda x: 1.0 if x > 0 else 0.0,
    "softplus": lambda x: 1.0 / (1.0 + math.exp(1.0 - x)),  # sigmoid(x - 1)
    "trunc_exp": lambda x: math.exp(min(max(x, -TRUNC_EXP_CLAMP), TRUNC_EXP_CLAMP)),
}
RAW = st.floats(-30.0, 30.0, allow_nan=False).filter(lambda x: abs(x) > 1e-6)  # relu's kink excluded


def test_every_registered_activation_is_implemented_and_the_formulas_cover_them():
    assert set(DENSITY_ACTIVATIONS) == set(FORMULAS) == {"relu", "softplus", "trunc_exp"}
    for name in DENSITY_ACTIVATIONS:
        activate_density(torch.zeros(3), name)
    with pytest.raises(ValueError, match="unknown density activation 'exp': choose one of relu, softplus, trunc_exp"):
        activate_density(torch.zeros(3), "exp")


@settings(max_examples=60, deadline=None)
@given(values=st.lists(RAW, min_size=1, max_size=16), name=st.sampled_from(sorted(FORMULAS)))
def test_values_and_gradients_follow_the_formulas(values, name):
    raw = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    sigma = activate_density(raw, name)
    (grad,) = torch.autograd.grad(sigma.sum(), raw)
    for x, s, g in zip(values, sigma.tolist(), grad.tolist()):
        # rel 1e-8: torch's softplus is linear above raw - 1 = 20, off by at most e^-20 = 2e-9 there
        # (raw = 21.5: gradient exactly 1 against 1 - 1.25e-9), far below float32's rounding
        assert s == pytest.approx(FORMULAS[name](x), rel=1e-8, abs=1e-300)
        assert g == pytest.approx(DERIVATIVES[name](x), rel=1e-8, abs=1e-300)
        assert s >= 0.0
        if name != "relu":  # the point of the option: positive, with a positive gradient everywhere
            assert s > 0.0 and g > 0.0


def test_relu_is_torch_relu_bit_for_bit():
    raw = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(activate_density(raw, "relu"), torch.relu(raw))


@pytest.mark.parametrize("name", ["softplus", "trunc_exp"])
def test_gradcheck_inside_the_clamp(name):
    raw = torch.linspace(-10.0, 10.0, 23, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: activate_density(x, name), (raw,))


def test_trunc_exp_gradient_stops_at_the_clamp_but_the_value_does_not():
    raw = torch.tensor([-40.0, -15.0, 0.0, 15.0, 20.0, 40.0], dtype=torch.float64, requires_grad=True)
    sigma = activate_density(raw, "trunc_exp")
    (grad,) = torch.autograd.grad(sigma.sum(), raw)
    torch.testing.assert_close(sigma, torch.exp(raw.detach()))
    want = torch.exp(raw.detach().clamp(-15.0, 15.0))
    torch.testing.assert_close(grad, want)
    assert grad[4] == grad[5] == grad[3] and grad[0] == grad[1]


# -- every place that turns raw density into density uses the model's activation ---------------------------------

def _model(name: str, fine: bool = True) -> NerfModel:
    torch.manual_seed(0)
    return NerfModel(FieldConfig(**{**PRESETS["tiny"].__dict__, "density_activation": name}), fine=fine)


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_the_renderers_and_the_occupancy_density_apply_the_models_activation(name):
    from nerfprune.packed_renderer import field_at
    from nerfprune.renderer import field_at_samples

    model = _model(name)
    cfg, math_ = RenderConfig(backend="torch"), RenderConfig(backend="torch").math()
    origins, dirs = toward_the_origin(3, seed=1)
    t = torch.linspace(2.0, 6.0, 5).expand(3, 5).contiguous()  # [B, S]
    dir_enc = math_.positional_encoding(dirs / dirs.norm(dim=-1, keepdim=True), model.field_cfg.dir_frequencies)
    points = origins[:, None] + t[..., None] * dirs[:, None]  # [B, S, 3]
    pos_enc = math_.positional_encoding(points.reshape(-1, 3), model.field_cfg.pos_frequencies)
    with torch.no_grad():  # raw density spread over both sides of 0 at these samples
        model.fine.sigma.weight.mul_(50.0)
        model.fine.sigma.bias.sub_(model.fine(pos_enc, dir_enc.repeat_interleave(5, 0))[0].median())
    raw = model.fine(pos_enc, dir_enc.repeat_interleave(5, 0))[0][:, 0]  # [B*S]
    want = torch.tensor([FORMULAS[name](x) for x in raw.tolist()])
    assert (raw > 0).any() and (raw < 0).any(), raw
    assert not torch.allclose(want, torch.relu(raw), rtol=1e-3) or name == "relu"  # the test tells them apart

    for grad in (False, True):  # rendering, and training (the hand-written backward's path)
        with torch.set_grad_enabled(grad):
            sigma, _ = field_at_samples(model, "fine", origins, dirs, t, dir_enc, cfg, math_, MLPConfig())
            torch.testing.assert_close(sigma.reshape(-1), want)
            ray_index = torch.arange(3).repeat_interleave(5)
            sigma, _ = field_at(model, "fine", origins, dirs, t.reshape(-1), ray_index, dir_enc, 64, math_, MLPConfig())
            torch.testing.assert_close(sigma, want)
    coarse_raw = model.coarse(pos_enc, torch.zeros_like(dir_enc).repeat_interleave(5, 0))[0][:, 0]
    fine_raw = model.fine(pos_enc, torch.zeros_like(dir_enc).repeat_interleave(5, 0))[0][:, 0]
    density = model.density(points.reshape(-1, 3), math_.positional_encoding)
    want = torch.tensor([max(FORMULAS[name](a), FORMULAS[name](b)) for a, b in zip(coarse_raw.tolist(), fine_raw.tolist())])
    torch.testing.assert_close(density, want)


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_hand_written_training_gradient_is_the_autograd_one_for_every_activation(name):
    """The whole loss (both networks, compositing): the hand-written MLP backward and autograd agree for each
    activation (the activation sits after the MLP, so its derivative reaches the hand-written backward as g_sigma)."""
    origins, dirs = toward_the_origin(40, seed=3)
    g = torch.Generator().manual_seed(3)
    target, background = torch.rand(40, 3, generator=g), torch.rand(40, 3, generator=g)
    model = _model(name)
    grads = {}
    for mode in ("handwritten", "autograd"):
        model.mlp = MLPConfig(backward=mode)
        model.zero_grad(set_to_none=True)
        result = loss_and_backward(model, origins, dirs, target, background, 2.0, 6.0,
                                   RenderConfig(n_coarse=8, n_fine=8, early_stop_eps=0.0), 7 * 16, training=False)
        grads[mode] = (result.loss, {n: p.grad.clone() for n, p in model.named_parameters()})
    assert grads["handwritten"][0] == pytest.approx(grads["autograd"][0], rel=1e-6)
    for pname, ref in grads["autograd"][1].items():
        assert ref.abs().max() > 0, pname
        torch.testing.assert_close(grads["handwritten"][1][pname], ref, rtol=1e-4, atol=1e-7, msg=pname)


@pytest.mark.parametrize("name, alive", [("relu", False), ("softplus", True), ("trunc_exp", True)])
def test_a_density_head_negative_everywhere_gets_a_gradient_only_without_relu(name, alive):
    """What structured pruning at 95 % does to the 2x128 net: raw density < 0 at every sample. With ReLU the
    density head, and the trunk through it, get no gradient from the density; softplus and trunc_exp keep one."""
    model = _model(name, fine=False)
    with torch.no_grad():
        model.coarse.sigma.bias.fill_(-50.0)
    origins, dirs = toward_the_origin(16, seed=2)
    target = torch.zeros(16, 3)
    model.zero_grad(set_to_none=True)
    loss_and_backward(model, origins, dirs, target, torch.ones(3), 2.0, 6.0,
                      RenderConfig(n_coarse=8, n_fine=0, early_stop_eps=0.0), 0, training=False)
    grad = model.coarse.sigma.weight.grad
    assert (grad is not None and bool(grad.abs().max() > 0)) == alive


# -- configs, CLI and checkpoints ---------------------------------------------------------------------------------

def test_the_model_config_carries_it_to_the_field_and_rejects_unknown_values():
    assert NerfModelConfig().density_activation == "relu" == NerfModelConfig().field_config().density_activation
    assert NerfModelConfig(preset="tiny", density_activation="softplus").field_config().density_activation == "softplus"
    with pytest.raises(ConfigError, match="density_activation: unknown density activation 'exp': "
                                          "choose one of relu, softplus, trunc_exp"):
        NerfModelConfig(density_activation="exp").validate()
    from nerfprune.training import TrainConfig

    with pytest.raises(ConfigError, match=r"^model\.density_activation: unknown density activation"):
        TrainConfig(model=NerfModelConfig(density_activation="ReLU")).validate()
    with pytest.raises(ConfigError, match="density_activation: expected str"):
        NerfModelConfig(density_activation=1).validate()


def test_cli_train_passes_the_flag_and_refuses_other_values(monkeypatch, tmp_path, capsys):
    import nerfprune.api as api
    from nerfprune.cli import main

    seen = {}
    monkeypatch.setattr(api, "train", lambda scene, cfg, **kw: seen.setdefault("cfg", cfg))
    assert main(["train", "--preset", "tiny", "--iterations", "1", "--density-activation", "trunc_exp",
                 "--out", str(tmp_path / "out")]) == 0
    assert seen["cfg"].model.density_activation == "trunc_exp"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--density-activation", "exp"])
    assert exit_info.value.code == 2 and "invalid choice: 'exp'" in capsys.readouterr().err


def test_checkpoint_round_trip_and_old_checkpoints_load_as_relu(tiny_scene, tmp_path):
    from nerfprune.checkpoint import load_checkpoint, save_checkpoint
    from nerfprune.errors import CheckpointError
    from nerfprune.training import TrainConfig, Trainer, load_model

    cfg = TrainConfig(iterations=2, batch_size=32, block_points=0, model=NerfModelConfig(preset="tiny", density_activation="softplus"),
                      render=RenderConfig(n_coarse=8, n_fine=8))
    trained = Trainer(tiny_scene, cfg, tmp_path / "run").run()
    model, saved, _ = load_model(tmp_path / "run")
    assert saved.model.density_activation == "softplus" == model.field_cfg.density_activation
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["density_activation"] == "softplus"
    for a, b in zip(trained.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a.cpu(), b)

    path = tmp_path / "run" / "checkpoint.safetensors"
    ckpt = load_checkpoint(path)
    del ckpt.config["model"]["density_activation"]  # written before the option existed
    save_checkpoint(tmp_path / "old.safetensors", ckpt)
    old, old_cfg, _ = load_model(tmp_path / "old.safetensors")
    assert old_cfg.model.density_activation == "relu" == old.field_cfg.density_activation

    ckpt.config["model"]["density_activation"] = "cubic"
    save_checkpoint(tmp_path / "bad.safetensors", ckpt)
    with pytest.raises(CheckpointError, match=r"bad\.safetensors: config\.model\.density_activation: unknown density"):
        load_model(tmp_path / "bad.safetensors")

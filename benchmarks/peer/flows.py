#!/usr/bin/python3
"""PyTorch peer of flowad's normalizing flows (issue 5: flowad against PyTorch, in one run).

The modules below compute exactly what flowad computes (see README.md next to this file and
../shared/docs/ALGORITHMS.md §2.1, §2.2, §3, §6.3):

  HierarchicalCoupling  include/flowad/layers/affine_coupling.hpp, src/layers/affine_coupling.cpp
  ActNorm, GlobalAffine include/flowad/layers/actnorm.hpp (actnorm, global_affine with SOFTPLUS)
  Permute               include/flowad/layers/permute.hpp (a different, but fixed, permutation)
  Flow                  include/flowad/layers/sequential_flow.hpp
  nll_loss, score       src/detectors/msflow.cpp (loss, anomaly map, top-k image score)
  make_optimizer, train_step
                        include/flowad/train/adam.hpp (torch.optim.Adam, clip_grad_norm_)

and the two benchmark flows, msflow_seed() and fastflow_256().

Every layer maps x (N x C x H x W) to (y, logdet) with logdet of shape (N,), and has inverse(y).
The layers work in any memory format; with torch.channels_last inputs and weights every activation
stays channels-last.

`/usr/bin/python3 benchmarks/peer/flows.py --selftest` checks, in float64 on tiny shapes, that
inverse(forward(x)) = x and that logdet equals log|det| of the Jacobian from
torch.autograd.functional.jacobian, for every layer and for both flows (plus the parameter and MAC
counts of the full-size flows against flowad's formulas, and channels-last against NCHW).
"""

import argparse
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

# The 2/π of CS-Flow's clamp, as the reference code writes it (flowad's atan_clamp_factor).
ATAN_CLAMP_FACTOR = 0.636


def group_sizes(channels, groups):
    """Sizes of `groups` channel groups: as equal as possible, the first channels % groups one larger."""
    if groups < 1 or channels < groups:
        raise ValueError(f"cannot split {channels} channels into {groups} non-empty groups")
    base, extra = divmod(channels, groups)
    return [base + 1 if g < extra else base for g in range(groups)]


def soft_clamp(s, kind, alpha):
    """φ(s) of the affine scale (ALGORITHMS.md §2.1, flowad's soft_clamp)."""
    if kind == "atan":
        return alpha * ATAN_CLAMP_FACTOR * torch.atan(s / alpha)
    if kind == "tanh":
        return alpha * torch.tanh(s / alpha)
    if kind == "none":
        return s
    raise ValueError(f"unknown clamp {kind!r}")


def _per_sample(x, value):
    """A per-sample log-determinant of `value` (a scalar tensor) for the batch of x."""
    return value.expand(x.shape[0])


class HierarchicalCoupling(nn.Module):
    """Affine coupling over g channel groups coupled hierarchically (MS-Flow; g = 2 is RealNVP/Glow).

        x = [x_1 | ... | x_g]             groups as equal as possible, the first ones larger
        y_1 = x_1
        r_i = γ_i·F_i(y_{i-1}),  s_i = r_i[:, :w_i],  t_i = r_i[:, w_i:]         (i = 2..g)
        y_i = x_i·exp(φ(s_i)) + t_i
        logdet = Σ_i Σ_{c,h,w} φ(s_i)

    F_i = Conv2d(w_{i-1} → hidden, k) → ReLU | LeakyReLU(slope) → Conv2d(hidden → 2·w_i, k), zero
    padding k//2, PyTorch's default initialisation (flowad uses the same distribution). γ is learned
    (CS-Flow's use_gamma; gain_init 0 makes the block the identity) or a fixed constant (0.1 is FrEIA
    AllInOneBlock's `0.1 * subnet(...)`).
    """

    def __init__(self, channels, groups=2, hidden=512, kernel=3, act="leaky_relu", slope=0.1, clamp="atan",
                 alpha=3.0, learn_gain=True, gain_init=0.0):
        super().__init__()
        if groups < 2:
            raise ValueError("HierarchicalCoupling needs at least 2 groups")
        if kernel <= 0 or kernel % 2 == 0:
            raise ValueError("kernel must be odd and positive")
        self.sizes = group_sizes(channels, groups)
        self.clamp, self.alpha = clamp, float(alpha)
        pad = kernel // 2
        subnets = []
        for i in range(1, groups):
            activation = nn.ReLU() if act == "relu" else nn.LeakyReLU(slope)
            subnets.append(nn.Sequential(
                nn.Conv2d(self.sizes[i - 1], hidden, kernel, padding=pad),
                activation,
                nn.Conv2d(hidden, 2 * self.sizes[i], kernel, padding=pad)))
        self.subnets = nn.ModuleList(subnets)
        gain = torch.full((groups - 1,), float(gain_init))
        if learn_gain:
            self.gain = nn.Parameter(gain)
        else:
            self.register_buffer("gain", gain)

    def _scale_shift(self, i, condition):
        """(φ(s), t) for group i + 2 (0-based conditioner i) from the already known y_{i+1}."""
        r = self.gain[i] * self.subnets[i](condition)
        w = self.sizes[i + 1]
        return soft_clamp(r[:, :w], self.clamp, self.alpha), r[:, w:]

    def forward(self, x):
        xs = torch.split(x, self.sizes, dim=1)
        ys = [xs[0]]
        logdet = None
        for i in range(len(self.subnets)):
            phi, t = self._scale_shift(i, ys[-1])
            ys.append(xs[i + 1] * torch.exp(phi) + t)
            term = phi.sum(dim=(1, 2, 3))
            logdet = term if logdet is None else logdet + term
        return torch.cat(ys, dim=1), logdet

    def inverse(self, y):
        # Every conditioner reads a known y_{i-1}, so the groups invert independently.
        ys = torch.split(y, self.sizes, dim=1)
        xs = [ys[0]]
        for i in range(len(self.subnets)):
            phi, t = self._scale_shift(i, ys[i])
            xs.append((ys[i + 1] - t) * torch.exp(-phi))
        return torch.cat(xs, dim=1)


class ActNorm(nn.Module):
    """Glow's ActNorm: y = (x + bias)·exp(log_scale), logdet = H·W·Σ log_scale.

    initialize(x) is Glow's data-dependent initialisation as flowad does it: statistics over (N, H, W)
    in double, bias = −mean, log_scale = log(1/(std + 1e-6)) with the population std.
    """

    def __init__(self, channels):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.zeros(channels))

    @torch.no_grad()
    def initialize(self, x):
        xd = x.double()
        mean = xd.mean(dim=(0, 2, 3))
        std = xd.var(dim=(0, 2, 3), unbiased=False).sqrt()
        self.bias.copy_(-mean)
        self.log_scale.copy_(torch.log(1.0 / (std + 1e-6)))

    def forward(self, x):
        b = self.bias.view(1, -1, 1, 1)
        s = self.log_scale.view(1, -1, 1, 1)
        y = (x + b) * torch.exp(s)
        return y, _per_sample(x, x.shape[2] * x.shape[3] * self.log_scale.sum())

    def inverse(self, y):
        return y * torch.exp(-self.log_scale.view(1, -1, 1, 1)) - self.bias.view(1, -1, 1, 1)


class GlobalAffine(nn.Module):
    """FrEIA AllInOneBlock's global affine with the SOFTPLUS activation (flowad's global_affine):

        Ψ = 0.1·softplus_{β=0.5}(g) = 0.2·log(1 + exp(0.5·g)),  y = x·Ψ + offset,  logdet = H·W·Σ log Ψ

    g starts at 2·log(exp(5·init) − 1), so Ψ = init (FrEIA global_affine_init, default 1); offset at 0.
    """

    def __init__(self, channels, initial_scale=1.0):
        super().__init__()
        g = 2.0 * math.log(math.expm1(5.0 * initial_scale))
        self.global_scale = nn.Parameter(torch.full((channels,), g))
        self.global_offset = nn.Parameter(torch.zeros(channels))

    def scale(self):
        return 0.1 * F.softplus(self.global_scale, beta=0.5)

    def forward(self, x):
        psi = self.scale()
        y = x * psi.view(1, -1, 1, 1) + self.global_offset.view(1, -1, 1, 1)
        return y, _per_sample(x, x.shape[2] * x.shape[3] * torch.log(psi).sum())

    def inverse(self, y):
        psi = self.scale().view(1, -1, 1, 1)
        return (y - self.global_offset.view(1, -1, 1, 1)) / psi


class Permute(nn.Module):
    """A fixed channel permutation y[:, c] = x[:, perm[c]], drawn from `seed`; logdet 0.

    Channels-last inputs are gathered along their innermost (channel) dimension so that the output
    stays channels-last (x[:, perm] would return NCHW and make the next convolution convert back).
    """

    def __init__(self, channels, seed):
        super().__init__()
        perm = torch.randperm(channels, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("perm", perm)
        self.register_buffer("inverse_perm", torch.argsort(perm))

    @staticmethod
    def _gather(x, index):
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            return x.permute(0, 2, 3, 1)[..., index].permute(0, 3, 1, 2)
        return x[:, index]

    def forward(self, x):
        return self._gather(x, self.perm), None

    def inverse(self, y):
        return self._gather(y, self.inverse_perm)


class Flow(nn.Module):
    """A sequence of flow layers (flowad's sequential_flow): z = f_n(...f_1(x)), logdet summed."""

    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        logdet = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for layer in self.layers:
            x, ld = layer(x)
            if ld is not None:
                logdet = logdet + ld
        return x, logdet

    def inverse(self, z):
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z

    def initialize(self, x):
        """Data-dependent initialisation of the ActNorm layers (flowad's fit() does it on the training set)."""
        with torch.no_grad():
            for layer in self.layers:
                if isinstance(layer, ActNorm):
                    layer.initialize(x)
                x, _ = layer(x)


# ------------------------------------------------------------------------------------------------
# The two benchmark flows

def msflow_seed(channels=304, hidden=512, blocks=8, seed=0):
    """The seed paper's MS-Flow (flowad's msflow_config::paper(), ALGORITHMS.md §6.3), on 304×24×24:
    ActNorm + 8 × [Permute, HierarchicalCoupling(304, 4 groups, hidden 512, kernels 3,1,3,..., LeakyReLU 0.1,
    atan α = 3, learned γ initialised 0)]."""
    torch.manual_seed(seed)
    layers = [ActNorm(channels)]
    for b in range(blocks):
        layers.append(Permute(channels, seed=1000 * seed + b))
        layers.append(HierarchicalCoupling(channels, groups=4, hidden=hidden, kernel=3 if b % 2 == 0 else 1,
                                           act="leaky_relu", slope=0.1, clamp="atan", alpha=3.0,
                                           learn_gain=True, gain_init=0.0))
    return Flow(layers)


def fastflow_256(channels=256, hidden=128, blocks=8, seed=0):
    """FastFlow-style FrEIA AllInOneBlock flow on 256×64×64: 8 × [HierarchicalCoupling(256, 2 groups, hidden 128,
    kernels 3,1,3,..., ReLU, tanh α = 2, fixed γ = 0.1), GlobalAffine(256), Permute]."""
    torch.manual_seed(seed)
    layers = []
    for b in range(blocks):
        layers.append(HierarchicalCoupling(channels, groups=2, hidden=hidden, kernel=3 if b % 2 == 0 else 1,
                                           act="relu", clamp="tanh", alpha=2.0, learn_gain=False, gain_init=0.1))
        layers.append(GlobalAffine(channels))
        layers.append(Permute(channels, seed=1000 * seed + b))
    return Flow(layers)


# name -> (builder, input shape C×H×W, builder kwargs of the reduced development shape behind --small)
CONFIGS = {
    "msflow_seed": (msflow_seed, (304, 24, 24), dict(channels=64, hidden=64, blocks=4), (64, 12, 12)),
    "fastflow_256": (fastflow_256, (256, 64, 64), dict(channels=64, hidden=32, blocks=4), (64, 16, 16)),
}


def build(name, small=False):
    """(model, (C, H, W)) of a benchmark flow; small=True gives a reduced shape for development."""
    builder, shape, small_kwargs, small_shape = CONFIGS[name]
    return (builder(**small_kwargs), small_shape) if small else (builder(), shape)


def conv_macs(model, height, width):
    """Multiply-accumulates of every Conv2d of `model` for one sample of height×width (biases excluded)."""
    macs = 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            oh = (height + 2 * m.padding[0] - m.dilation[0] * (kh - 1) - 1) // m.stride[0] + 1
            ow = (width + 2 * m.padding[1] - m.dilation[1] * (kw - 1) - 1) // m.stride[1] + 1
            macs += oh * ow * m.out_channels * (m.in_channels // m.groups) * kh * kw
    return macs


# ------------------------------------------------------------------------------------------------
# Loss, scoring, training step (src/detectors/msflow.cpp)

def nll_loss(z, logdet):
    """CS-Flow's loss: mean over the batch of (0.5·‖z‖² − logdet) / D, D = C·H·W."""
    dims = z.shape[1] * z.shape[2] * z.shape[3]
    return torch.mean(0.5 * z.pow(2).sum(dim=(1, 2, 3)) - logdet) / dims


def anomaly_scores(z, top_k_fraction=0.03):
    """(image scores (N,), maps (N×H×W)): map = mean_c(z²)/2 per position, image score = the mean of the
    k largest map values, k = max(1, int(H·W·fraction)) (MSFlow's top_k, flowad's default)."""
    maps = z.pow(2).mean(dim=1) / 2
    k = max(1, int(z.shape[2] * z.shape[3] * top_k_fraction))
    image = maps.flatten(1).topk(k, dim=1).values.mean(dim=1)
    return image, maps


def score(model, x, top_k_fraction=0.03):
    """Inference: forward without autograd, then the anomaly maps and image scores."""
    with torch.inference_mode():
        z, _ = model(x)
        return anomaly_scores(z, top_k_fraction)


def make_optimizer(model):
    """CS-Flow's optimizer (flowad's adam_options defaults)."""
    return torch.optim.Adam(model.parameters(), lr=2e-4, eps=1e-4, weight_decay=1e-5)


def train_step(model, optimizer, x, max_grad_norm=1.0):
    """One training step; returns the loss (a tensor, so that timing does not include a .item() sync)."""
    optimizer.zero_grad(set_to_none=False)
    z, logdet = model(x)
    loss = nll_loss(z, logdet)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return loss.detach()


# ------------------------------------------------------------------------------------------------
# Self-test

def _randomise(model, scale=1.0, generator=None):
    """Non-trivial parameters for the tests: γ, ActNorm and GlobalAffine away from their identity starts,
    subnet weights scaled so that the clamp works away from its linear region."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, HierarchicalCoupling):
                if isinstance(m.gain, nn.Parameter):
                    m.gain.copy_(torch.rand(m.gain.shape, generator=generator, dtype=m.gain.dtype) + 0.5)
                for sub in m.subnets:
                    for p in sub.parameters():
                        p.mul_(scale)
            elif isinstance(m, ActNorm):
                m.bias.copy_(torch.randn(m.bias.shape, generator=generator, dtype=m.bias.dtype))
                m.log_scale.copy_(0.3 * torch.randn(m.log_scale.shape, generator=generator, dtype=m.bias.dtype))
            elif isinstance(m, GlobalAffine):
                m.global_scale.add_(torch.randn(m.global_scale.shape, generator=generator, dtype=m.global_scale.dtype))
                m.global_offset.copy_(torch.randn(m.global_offset.shape, generator=generator,
                                                  dtype=m.global_offset.dtype))


def selftest():
    torch.set_default_dtype(torch.float64)
    g = torch.Generator().manual_seed(1234)
    tol = 1e-9
    failures = 0

    def report(name, inv_err, ld_err, ld_mag, largest_s):
        nonlocal failures
        ok = inv_err < tol and ld_err < tol * max(1.0, ld_mag)
        failures += 0 if ok else 1
        clamp = f", |s| up to {largest_s:.1f}" if largest_s > 0 else ""
        print(f"  {'ok  ' if ok else 'FAIL'} {name:<52} |inverse(forward(x)) - x| = {inv_err:.1e}, "
              f"|logdet - log|det J|| = {ld_err:.1e} (|logdet| up to {ld_mag:.1f}{clamp})")

    print("groups:", group_sizes(10, 4), group_sizes(304, 4), group_sizes(256, 2), group_sizes(7, 3))
    assert group_sizes(10, 4) == [3, 3, 2, 2] and group_sizes(7, 3) == [3, 2, 2]

    print("layers (float64, tiny shapes, 3 samples each):")
    cases = [
        ("coupling g=2 relu tanh(α=2) fixed γ=0.1", HierarchicalCoupling(
            8, 2, 6, 3, "relu", 0.0, "tanh", 2.0, learn_gain=False, gain_init=0.1), (8, 4, 4), 20.0),
        ("coupling g=3 leaky atan(α=3) learned γ, 7 channels", HierarchicalCoupling(
            7, 3, 5, 3, "leaky_relu", 0.1, "atan", 3.0, True, 0.0), (7, 3, 3), 4.0),
        ("coupling g=4 leaky atan(α=3) learned γ, k=1", HierarchicalCoupling(
            10, 4, 6, 1, "leaky_relu", 0.1, "atan", 3.0, True, 0.0), (10, 3, 3), 4.0),
        ("actnorm", ActNorm(6), (6, 3, 3), 1.0),
        ("global_affine (softplus)", GlobalAffine(6), (6, 3, 3), 1.0),
        ("permute", Permute(6, seed=3), (6, 3, 3), 1.0),
    ]
    for name, layer, shape, scale in cases:
        _randomise(layer, scale, g)
        report(name, *_check_layer_simple(layer, shape, g))

    print("flows (float64, tiny shapes, the same layer sequence as the benchmark flows):")
    tiny_ms = msflow_seed(channels=10, hidden=6, blocks=4)
    tiny_ms.double()
    _randomise(tiny_ms, 1.6, g)
    report("msflow_seed structure: 10x3x3, 4 blocks, hidden 6", *_check_layer_simple(tiny_ms, (10, 3, 3), g))
    tiny_ff = fastflow_256(channels=8, hidden=6, blocks=4)
    tiny_ff.double()
    _randomise(tiny_ff, 7.0, g)
    report("fastflow_256 structure: 8x4x4, 4 blocks, hidden 6", *_check_layer_simple(tiny_ff, (8, 4, 4), g))

    # Loss and gradient: autograd's gradient of the loss against central differences on a few parameters.
    x = torch.randn(2, 10, 3, 3, generator=g)
    params = [p for p in tiny_ms.parameters()]
    loss = nll_loss(*tiny_ms(x))
    grads = torch.autograd.grad(loss, params)
    worst = 0.0
    for p, gr in zip(params[:6] + params[-3:], grads[:6] + grads[-3:]):
        flat, gflat = p.data.view(-1), gr.reshape(-1)
        for j in (0, flat.numel() // 2, flat.numel() - 1):
            old = flat[j].item()
            flat[j] = old + 1e-6
            up = nll_loss(*tiny_ms(x)).item()
            flat[j] = old - 1e-6
            down = nll_loss(*tiny_ms(x)).item()
            flat[j] = old
            worst = max(worst, abs((up - down) / 2e-6 - gflat[j].item()) / max(1.0, abs(gflat[j].item())))
    ok = worst < 1e-6
    failures += 0 if ok else 1
    print(f"  {'ok  ' if ok else 'FAIL'} loss gradient vs central differences (msflow structure): max relative error {worst:.1e}")

    # Scores: the map and the top-k mean written out with plain loops.
    z = torch.randn(2, 5, 12, 14, generator=g)
    image, maps = anomaly_scores(z)
    k = max(1, int(12 * 14 * 0.03))
    err = 0.0
    for n in range(2):
        values = sorted((sum(z[n, c, i, j].item() ** 2 for c in range(5)) / 5 / 2
                         for i in range(12) for j in range(14)), reverse=True)
        err = max(err, abs(sum(values[:k]) / k - image[n].item()), abs(values[0] - maps[n].max().item()))
    ok = err < 1e-12
    failures += 0 if ok else 1
    print(f"  {'ok  ' if ok else 'FAIL'} anomaly_scores vs loops (k = {k}): max error {err:.1e}")

    # A few training steps on the tiny flow lower the loss.
    torch.set_default_dtype(torch.float32)
    small, shape = build("msflow_seed", small=True)
    data = torch.randn((16,) + shape, generator=torch.Generator().manual_seed(5)) * 0.5 + 0.2
    small.initialize(data)
    opt = make_optimizer(small)
    for group in opt.param_groups:
        group["lr"] = 1e-2  # the benchmark's 2e-4 moves a γ = 0 start too little to see in 5 steps
    losses = [train_step(small, opt, data).item() for _ in range(5)]
    ok = losses[-1] < losses[0] and all(math.isfinite(v) for v in losses)
    failures += 0 if ok else 1
    print(f"  {'ok  ' if ok else 'FAIL'} 5 training steps (float32, reduced msflow_seed, lr 1e-2): loss "
          + " -> ".join(f"{v:.6f}" for v in losses))

    # channels-last computes the same as NCHW and keeps every activation channels-last.
    for name in CONFIGS:
        model, shape = build(name, small=True)
        _randomise(model, 1.0, torch.Generator().manual_seed(6))
        x = torch.randn((2,) + shape, generator=torch.Generator().manual_seed(7))
        model.initialize(x)
        ref_image, ref_maps = score(model, x)
        ref_z, ref_ld = model(x)
        model_cl = model.to(memory_format=torch.channels_last)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        formats = []
        hooks = [m.register_forward_hook(lambda mod, inp, out: formats.append(
            (out[0] if isinstance(out, tuple) else out).is_contiguous(memory_format=torch.channels_last)))
            for m in model_cl.modules() if isinstance(m, (nn.Conv2d, HierarchicalCoupling, Permute, GlobalAffine, ActNorm))]
        z, ld = model_cl(x_cl)
        for h in hooks:
            h.remove()
        image, maps = score(model_cl, x_cl)
        diff = max((z - ref_z).abs().max().item() / ref_z.abs().max().item(),
                   (ld - ref_ld).abs().max().item() / ref_ld.abs().max().item(),
                   (image - ref_image).abs().max().item() / ref_image.abs().max().item())
        ok = diff < 1e-4 and all(formats)
        failures += 0 if ok else 1
        print(f"  {'ok  ' if ok else 'FAIL'} channels-last = NCHW ({name}, reduced, float32): max relative "
              f"difference {diff:.1e}; {sum(formats)}/{len(formats)} layer outputs channels-last")

    # Sizes of the full flows against flowad's own formulas (count() in src/detectors/msflow.cpp).
    ms, (c, h, w) = build("msflow_seed")
    params = sum(p.numel() for p in ms.parameters())
    sizes = group_sizes(304, 4)
    want_params, want_macs = 2 * 304, 0
    for b in range(8):
        kk = (3 if b % 2 == 0 else 1) ** 2
        for i in range(3):
            cin, cout = sizes[i], 2 * sizes[i + 1]
            want_params += 512 * cin * kk + 512 + cout * 512 * kk + cout
            want_macs += h * w * (512 * cin * kk + cout * 512 * kk)
        want_params += 3
    macs = conv_macs(ms, h, w)
    ok = params == want_params and macs == want_macs
    failures += 0 if ok else 1
    print(f"  {'ok  ' if ok else 'FAIL'} msflow_seed: {params / 1e6:.3f} M parameters, {macs / 1e9:.3f} GMAC per image "
          f"(flowad's count(): {want_params / 1e6:.3f} M, {want_macs / 1e9:.3f} GMAC)")
    ff, (c, h, w) = build("fastflow_256")
    params = sum(p.numel() for p in ff.parameters())
    want_params, want_macs = 0, 0
    for b in range(8):
        kk = (3 if b % 2 == 0 else 1) ** 2
        want_params += 128 * 128 * kk + 128 + 256 * 128 * kk + 256 + 2 * 256
        want_macs += h * w * (128 * 128 * kk + 256 * 128 * kk)
    macs = conv_macs(ff, h, w)
    ok = params == want_params and macs == want_macs
    failures += 0 if ok else 1
    print(f"  {'ok  ' if ok else 'FAIL'} fastflow_256: {params / 1e6:.3f} M parameters, {macs / 1e9:.3f} GMAC per image "
          f"(expected {want_params / 1e6:.3f} M, {want_macs / 1e9:.3f} GMAC)")

    print("selftest:", "all passed" if failures == 0 else f"{failures} FAILED")
    return 0 if failures == 0 else 1


def _check_layer_simple(layer, shape, generator, batch=3):
    """(max |inverse(forward(x)) − x|, max |logdet − log|det J||, max |logdet|, max |s|) over `batch` samples;
    max |s| is the largest clamp argument γ·F_s seen, to show the clamp's non-linear range is exercised."""
    x = torch.randn((batch,) + shape, generator=generator)
    largest_s = [0.0]
    hooks = []
    for m in layer.modules():
        if isinstance(m, HierarchicalCoupling):
            for i, sub in enumerate(m.subnets):
                def hook(_mod, _inp, out, m=m, i=i):
                    s = m.gain[i] * out[:, :m.sizes[i + 1]]
                    largest_s[0] = max(largest_s[0], s.abs().max().item())
                hooks.append(sub.register_forward_hook(hook))
    with torch.no_grad():
        y, logdet = layer(x)
        if logdet is None:
            logdet = torch.zeros(batch)
        x_back = layer.inverse(y)
    for h in hooks:
        h.remove()
    inv_err = (x_back - x).abs().max().item()
    ld_err = 0.0
    for n in range(batch):
        sample = x[n:n + 1]
        jac = torch.autograd.functional.jacobian(lambda v: layer(v)[0], sample)
        d = sample.numel()
        sign, logabs = torch.linalg.slogdet(jac.reshape(d, d))
        if sign.item() == 0:
            raise AssertionError("singular Jacobian")
        ld_err = max(ld_err, abs(logabs.item() - logdet[n].item()))
    return inv_err, ld_err, logdet.abs().max().item(), largest_s[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--selftest", action="store_true", help="run the float64 correctness checks")
    args = parser.parse_args()
    if args.selftest:
        return selftest()
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())

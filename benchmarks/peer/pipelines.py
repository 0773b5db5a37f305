#!/usr/bin/python3
"""The PyTorch peer of flowad's end-to-end scoring (bench_pipeline): decoded 8-bit RGB images in, anomaly maps
and image scores out, as one module that also exports to ONNX for ONNX Runtime.

  images (N x S x S x 3, uint8)  ->  /255, ImageNet mean and std  ->  ResNet18 conv1..layer3
  (BatchNorm folded into the convolutions, as ../shared/weights/resnet18 stores it)  ->  the detector head
  ->  maps (N x 1 x S x S) and image scores (N)

Heads (flowad's shipped defaults with ResNet18 at 256 x 256, pipeline_config::recommended):
  msflow   MS-Flow, msflow_config::recommended: layer2 (128 x 32 x 32) and layer3 (256 x 16 x 16), each scale
           standardised per position (position_norm) and by a fixed per-channel affine (the input actnorm),
           then 8 x [Permute, HierarchicalCoupling(4 groups, hidden 256, 1x1 conditioners, LeakyReLU 0.1,
           atan alpha 3, learned gain)]; map = mean_c(z^2)/2 per scale, upsampled bilinearly
           (align_corners=False) to S x S and averaged over the scales; image score = mean of the top 3 %.
  fastflow FastFlow, fastflow_config::recommended: layer1..layer3 (64 x 64 x 64, 128 x 32 x 32, 256 x 16 x 16), each
           LayerNorm([C, H, W]) then 8 x [HierarchicalCoupling(2 groups, hidden C/2, 3x3 conditioners, ReLU,
           tanh alpha 2, gain 0.1), GlobalAffine, Permute]; map = -exp(-mean_c(z^2)/2) per scale, upsampled and
           averaged; image score = the map's maximum.
  patchcore PatchCore, patchcore_config::recommended: layer2 and layer3 averaged over 3 x 3 neighbourhoods, layer3
           upsampled to layer2's grid and concatenated (384 values per cell), the Euclidean distance of each cell
           to its nearest row of a memory bank (10 % of the 209 x 1024 training patches: `bank` rows, from the
           flowad model when compare.sh passes it) by matrix products; image score = the largest distance
           re-weighted by eq. 7 over the 9 bank rows nearest its nearest; map = the distances upsampled and
           blurred by a Gaussian of sigma 4 px.
  fcl      FCL on the Reverse Distillation host, teacher_student_config::recommended("fcl"): the student is RD's
           one-class bottleneck and decoder for ResNet18 (with BatchNorm, as flowad runs it), SNC (3 x 3 per-channel convex combination) encodes every level of teacher and student,
           map = sum over levels of the upsampled 1 - cos_c(SNC(T), SNC(D)), blurred by a Gaussian of sigma 4 px;
           image score = the map's maximum.

The statistics and weights of the head are random (the cost of scoring does not depend on them); the
backbone reads the shared weights when given, else is random too.
"""

import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import flows

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Preprocess(nn.Module):
    """uint8 N x H x W x 3 -> normalised float N x 3 x H x W (flowad's to_float and normalisation)."""

    def __init__(self, channels_last=False):
        super().__init__()
        self.channels_last = channels_last
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("inv_std", 1.0 / (torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0))

    def forward(self, images):
        x = images.permute(0, 3, 1, 2).float()
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return (x - self.mean) * self.inv_std


def conv_bn(cin, cout, kernel, stride, batch_norm):
    """A convolution, followed by a BatchNorm when batch_norm (RD's student, as flowad runs it: batch statistics
    in training, the running ones as a separate affine at inference); else with the BatchNorm folded into its
    bias (the backbone, as the shared weights store it)."""
    conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=not batch_norm)
    return nn.Sequential(conv, nn.BatchNorm2d(cout)) if batch_norm else conv


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, batch_norm=False):
        super().__init__()
        self.conv1 = conv_bn(cin, cout, 3, stride, batch_norm)
        self.conv2 = conv_bn(cout, cout, 3, 1, batch_norm)
        needs_shortcut = stride != 1 or cin != cout
        self.downsample = conv_bn(cin, cout, 1, stride, batch_norm) if needs_shortcut else None

    def forward(self, x):
        y = self.conv2(F.relu(self.conv1(x)))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNet18Features(nn.Module):
    """torchvision's ResNet18 from conv1 to layer3 with every BatchNorm folded into its convolution (so each
    convolution has a bias); returns layer1, layer2 and layer3."""

    def __init__(self, weights=None):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3)
        self.layer1 = nn.Sequential(BasicBlock(64, 64, 1), BasicBlock(64, 64, 1))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128, 1))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256, 1))
        if weights:
            self.load_folder(weights)

    def load_folder(self, folder):
        state = {}
        for name, _ in self.named_parameters():
            file_name = name.replace("downsample.", "downsample.0.") + ".npy"
            state[name] = torch.from_numpy(np.load(os.path.join(folder, file_name)))
        self.load_state_dict(state)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 3, 2, 1)
        layer1 = self.layer1(x)
        layer2 = self.layer2(layer1)
        return layer1, layer2, self.layer3(layer2)


def top_k_mean(maps, fraction=0.03):
    k = max(1, int(maps.shape[-2] * maps.shape[-1] * fraction))
    return maps.flatten(1).topk(k, dim=1).values.mean(dim=1)


class MSFlowHead(nn.Module):
    """flowad's recommended MS-Flow on ResNet18's layer2 and layer3 (see the module's docstring)."""

    def __init__(self, size=256, scales=((128, 32, 32), (256, 16, 16)), groups=4, hidden=256, blocks=8, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.size = size
        self.flows = nn.ModuleList()
        for s, (c, h, w) in enumerate(scales):
            # position_norm and the input actnorm, both fixed at scoring: x -> (x - mean) * inv_std, then
            # per channel (x + b) * exp(log_s).
            self.register_buffer(f"position_mean{s}", 0.1 * torch.randn(1, c, h, w))
            self.register_buffer(f"position_inv_std{s}", 1.0 + 0.1 * torch.rand(1, c, h, w))
            layers = [flows.ActNorm(c)]
            for b in range(blocks):
                layers.append(flows.Permute(c, seed=1000 * s + b))
                layers.append(flows.HierarchicalCoupling(c, groups=groups, hidden=hidden, kernel=1, act="leaky_relu",
                                                         slope=0.1, clamp="atan", alpha=3.0, learn_gain=True,
                                                         gain_init=0.1))
            self.flows.append(flows.Flow(layers))

    # flowad's recipe (msflow_config::recommended): Adam(lr 1e-3, eps 1e-4, weight decay 1e-5), batch 16,
    # gradients clipped to norm 1.
    batch_size, learning_rate, adam_eps, weight_decay, max_grad_norm = 16, 1e-3, 1e-4, 1e-5, 1.0

    def fit_statistics(self, features):
        """The statistics flowad's fit sets from the training set before training: per position, then the
        input actnorm."""
        with torch.no_grad():
            for s, (x, flow) in enumerate(zip(features, self.flows)):
                mean, std = x.mean(dim=0, keepdim=True), x.std(dim=0, keepdim=True)
                getattr(self, f"position_mean{s}").copy_(mean)
                getattr(self, f"position_inv_std{s}").copy_(1.0 / (std + 1e-6))
                flow.layers[0].initialize((x - mean) / (std + 1e-6))

    def loss(self, features):
        """CS-Flow's loss over both scales: mean over the batch of (0.5·‖z‖² − logdet) / D, D = Σ C·H·W."""
        total, dims = 0.0, 0
        for s, (x, flow) in enumerate(zip(features, self.flows)):
            x = (x - getattr(self, f"position_mean{s}")) * getattr(self, f"position_inv_std{s}")
            z, logdet = flow(x)
            total = total + 0.5 * z.pow(2).sum(dim=(1, 2, 3)) - logdet
            dims += z.shape[1] * z.shape[2] * z.shape[3]
        return total.mean() / dims

    def forward(self, features):
        total = None
        for s, (x, flow) in enumerate(zip(features, self.flows)):
            x = (x - getattr(self, f"position_mean{s}")) * getattr(self, f"position_inv_std{s}")
            z, _ = flow(x)
            m = z.pow(2).mean(dim=1, keepdim=True) * 0.5
            m = F.interpolate(m, size=(self.size, self.size), mode="bilinear", align_corners=False)
            total = m if total is None else total + m
        maps = total / len(self.flows)
        return top_k_mean(maps), maps


def gaussian_blur(maps, sigma):
    """Separable Gaussian of `sigma` pixels (kernel 2·ceil(4σ)+1, reflect padding) on N x 1 x H x W maps."""
    radius = int(math.ceil(4.0 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    maps = F.conv2d(F.pad(maps, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(maps, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))


class FastFlowHead(nn.Module):
    """flowad's recommended FastFlow on ResNet18's layer1..layer3 (see the module's docstring)."""

    levels = 3

    def __init__(self, size=256, scales=((64, 64, 64), (128, 32, 32), (256, 16, 16)), blocks=8, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.size = size
        self.norms = nn.ModuleList(nn.LayerNorm([c, h, w]) for c, h, w in scales)
        self.flows = nn.ModuleList()
        for s, (c, h, w) in enumerate(scales):
            layers = []
            for b in range(blocks):
                layers.append(flows.HierarchicalCoupling(c, groups=2, hidden=c - c // 2, kernel=3, act="relu",
                                                         clamp="tanh", alpha=2.0, learn_gain=False, gain_init=0.1))
                layers.append(flows.GlobalAffine(c))
                layers.append(flows.Permute(c, seed=1000 * s + b))
            self.flows.append(flows.Flow(layers))

    # gathierry/FastFlow, as flowad: Adam(lr 1e-3, weight decay 1e-5), batch 32, no clipping.
    batch_size, learning_rate, adam_eps, weight_decay, max_grad_norm = 32, 1e-3, 1e-8, 1e-5, 0.0

    def fit_statistics(self, features):
        pass

    def loss(self, features):
        """Σ over the scales of the batch mean of 0.5·‖z‖² − logdet (fastflow.py)."""
        total = 0.0
        for x, norm, flow in zip(features, self.norms, self.flows):
            z, logdet = flow(norm(x))
            total = total + (0.5 * z.pow(2).sum(dim=(1, 2, 3)) - logdet).mean()
        return total

    def forward(self, features):
        total = None
        for x, norm, flow in zip(features, self.norms, self.flows):
            z, _ = flow(norm(x))
            m = -torch.exp(-0.5 * z.pow(2).mean(dim=1, keepdim=True))
            m = F.interpolate(m, size=(self.size, self.size), mode="bilinear", align_corners=False)
            total = m if total is None else total + m
        maps = total / len(self.flows)
        return maps.flatten(1).max(dim=1).values, maps


class PatchCoreHead(nn.Module):
    """flowad's recommended PatchCore on ResNet18's layer2 and layer3 (see the module's docstring)."""

    def __init__(self, size=256, bank=21401, dimension=384, neighbours=9, seed=0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.size, self.neighbours = size, neighbours
        self.register_buffer("bank", torch.randn(bank, dimension, generator=generator))
        self.register_buffer("bank_norms", self.bank.pow(2).sum(dim=1))

    def extra_macs(self, features_per_image):
        """The nearest-neighbour search's multiply-accumulates per image (matrix products, not convolutions)."""
        rows, dimension = self.bank.shape
        return features_per_image * rows * dimension + rows * dimension  # + eq. 7's one row against the bank

    def squared_distances(self, queries, rows):
        """‖q − b‖² for every query (Q x D) and bank row (R x D), by one matrix product."""
        return (queries.pow(2).sum(dim=1, keepdim=True) - 2.0 * queries @ rows.t() + rows.pow(2).sum(dim=1)).clamp_min(0)

    def forward(self, features):
        layer2, layer3 = (F.avg_pool2d(f, 3, 1, 1) for f in features)
        layer3 = F.interpolate(layer3, size=layer2.shape[-2:], mode="bilinear", align_corners=False)
        patches = torch.cat([layer2, layer3], dim=1)
        n, d, h, w = patches.shape
        queries = patches.permute(0, 2, 3, 1).reshape(n * h * w, d)
        nearest_sq, nearest = (queries.pow(2).sum(dim=1, keepdim=True) - 2.0 * queries @ self.bank.t()
                               + self.bank_norms).min(dim=1)
        distances = nearest_sq.clamp_min(0).sqrt().view(n, h * w)
        worst_distance, worst = distances.max(dim=1)
        # Eq. 7: the worst patch's distances to the bank rows nearest its nearest row.
        worst_queries = queries.view(n, h * w, d)[torch.arange(n), worst]
        worst_rows = self.bank[nearest.view(n, h * w)[torch.arange(n), worst]]
        support = self.squared_distances(worst_rows, self.bank).topk(self.neighbours, dim=1, largest=False).indices
        support_distances = (worst_queries.unsqueeze(1) - self.bank[support]).pow(2).sum(dim=2).sqrt()
        weights = 1.0 - torch.softmax(support_distances, dim=1)[:, 0]
        maps = F.interpolate(distances.view(n, 1, h, w), size=(self.size, self.size), mode="bilinear",
                             align_corners=False)
        return weights * worst_distance, gaussian_blur(maps, 4.0)


def deconv_bn(cin, cout):
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 2, 2, bias=False), nn.BatchNorm2d(cout))


class DecoderBlock(nn.Module):
    """RD4AD's de_resnet BasicBlock: 3x3 convolutions with BatchNorm, the first replaced by a 2x2 transposed
    convolution of stride 2 when the block upsamples (its shortcut too)."""

    def __init__(self, cin, cout, upsample):
        super().__init__()
        self.conv1 = deconv_bn(cin, cout) if upsample else conv_bn(cin, cout, 3, 1, True)
        self.conv2 = conv_bn(cout, cout, 3, 1, True)
        self.shortcut = deconv_bn(cin, cout) if upsample else None

    def forward(self, x):
        y = self.conv2(F.relu(self.conv1(x)))
        return F.relu(y + (self.shortcut(x) if self.shortcut is not None else x))


class SNC(nn.Module):
    """flowad's spatial neighbouring coding (nn/snc.hpp; a reconstruction): per channel a convex combination of
    each cell and its 3 x 3 neighbours, renormalised over the cells inside the map."""

    def __init__(self, channels, height, width, kernel=3):
        super().__init__()
        self.channels, self.kernel, self.padding = channels, kernel, kernel // 2  # plain ints for ONNX export
        self.logits = nn.Parameter(torch.randn(channels, kernel * kernel))
        self.register_buffer("ones", torch.ones(1, channels, height, width))
        self.refresh()

    def refresh(self):
        """The weights and border normalisers scoring uses, from the logits (after training changed them)."""
        with torch.no_grad():
            weights, inverse_norm = self.derived()
        self.register_buffer("weights", weights)
        self.register_buffer("inverse_norm", inverse_norm)

    def derived(self):
        weights = torch.softmax(self.logits, dim=1).view(self.channels, 1, self.kernel, self.kernel)
        return weights, 1.0 / F.conv2d(self.ones, weights, padding=self.padding, groups=self.channels)

    def forward(self, x):
        # Training derives the weights from the logits on every call (flowad does the same, per call).
        weights, inverse_norm = self.derived() if self.training else (self.weights, self.inverse_norm)
        return F.conv2d(x, weights, padding=self.padding, groups=self.channels) * inverse_norm


class FCLHead(nn.Module):
    """flowad's recommended FCL (RD host) on ResNet18's layer1..layer3 (see the module's docstring)."""

    levels = 3

    def __init__(self, size=256, scales=((64, 64, 64), (128, 32, 32), (256, 16, 16)), seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.size = size
        (c1, h1, w1), (c2, h2, w2), (c3, h3, w3) = scales
        # One-class bottleneck embedding.
        self.down1 = nn.Sequential(conv_bn(c1, c2, 3, 2, True), nn.ReLU(), conv_bn(c2, c3, 3, 2, True), nn.ReLU())
        self.down2 = nn.Sequential(conv_bn(c2, c3, 3, 2, True), nn.ReLU())
        self.bottleneck = nn.Sequential(BasicBlock(3 * c3, 2 * c3, 2, True), BasicBlock(2 * c3, 2 * c3, 1, True))
        # Decoder, deepest level first.
        self.decoder3 = nn.Sequential(DecoderBlock(2 * c3, c3, True), DecoderBlock(c3, c3, False))
        self.decoder2 = nn.Sequential(DecoderBlock(c3, c2, True), DecoderBlock(c2, c2, False))
        self.decoder1 = nn.Sequential(DecoderBlock(c2, c1, True), DecoderBlock(c1, c1, False))
        self.teacher_codes = nn.ModuleList(SNC(c, h, w) for c, h, w in scales)
        self.student_codes = nn.ModuleList(SNC(c, h, w) for c, h, w in scales)

    # RD4AD's recipe, as flowad: Adam(lr 0.005, betas (0.5, 0.999)), batch 16, no clipping.
    batch_size, learning_rate, adam_eps, weight_decay, max_grad_norm = 16, 5e-3, 1e-8, 0.0, 0.0
    betas = (0.5, 0.999)

    def fit_statistics(self, features):
        pass

    def student(self, features):
        f1, f2, f3 = features
        e = self.bottleneck(torch.cat([self.down1(f1), self.down2(f2), f3], dim=1))
        d3 = self.decoder3(e)
        d2 = self.decoder2(d3)
        return self.decoder1(d2), d2, d3

    def loss(self, features):
        """Σ over the levels of the batch mean of 1 − cos(flatten SNC(T), flatten SNC(D)) (RD's loss on the codes)."""
        total = 0.0
        for t, d, t_code, d_code in zip(features, self.student(features), self.teacher_codes, self.student_codes):
            total = total + (1.0 - F.cosine_similarity(t_code(t).flatten(1), d_code(d).flatten(1), dim=1)).mean()
        return total

    def forward(self, features):
        f1, f2, f3 = features
        d1, d2, d3 = self.student(features)
        total = None
        for t, d, t_code, d_code in zip((f1, f2, f3), (d1, d2, d3), self.teacher_codes, self.student_codes):
            m = 1.0 - F.cosine_similarity(t_code(t), d_code(d), dim=1).unsqueeze(1)
            m = F.interpolate(m, size=(self.size, self.size), mode="bilinear", align_corners=False)
            total = m if total is None else total + m
        maps = gaussian_blur(total, 4.0)
        return maps.flatten(1).max(dim=1).values, maps


HEADS = {"msflow": MSFlowHead, "fastflow": FastFlowHead, "patchcore": PatchCoreHead, "fcl": FCLHead}
# The feature maps each head reads (ResNet18 at 256 x 256), for training on features alone.
FEATURE_SHAPES = {"msflow": [(128, 32, 32), (256, 16, 16)], "fastflow": [(64, 64, 64), (128, 32, 32), (256, 16, 16)],
                  "patchcore": [(128, 32, 32), (256, 16, 16)], "fcl": [(64, 64, 64), (128, 32, 32), (256, 16, 16)]}


class Pipeline(nn.Module):
    """Images to (image scores, maps): preprocessing, backbone, head."""

    def __init__(self, head, size=256, weights=None, channels_last=False, **head_options):
        super().__init__()
        self.preprocess = Preprocess(channels_last)
        self.backbone = ResNet18Features(weights)
        self.head = HEADS[head](size=size, **head_options)
        self.levels = getattr(self.head, "levels", 2)  # the deepest levels the head reads

    def forward(self, images):
        return self.head(self.backbone(self.preprocess(images))[-self.levels:])


def build(head, size=256, weights=None, channels_last=False, **head_options):
    model = Pipeline(head, size, weights, channels_last, **head_options).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def fit_epoch(head, features, seed=0):
    """One epoch of flowad's shared trainer on `features` (one tensor per scale, N samples): the statistics the
    detector sets from the data, then shuffled batches of the head's batch size (the last one smaller), each a
    forward, the loss, backward, the gradient clipped when the recipe clips, and an Adam step."""
    head.train()
    head.fit_statistics(features)
    optimizer = torch.optim.Adam(head.parameters(), lr=head.learning_rate, eps=head.adam_eps,
                                 weight_decay=head.weight_decay, betas=getattr(head, "betas", (0.9, 0.999)))
    n = features[0].shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    for first in range(0, n, head.batch_size):
        index = order[first:first + head.batch_size]
        optimizer.zero_grad(set_to_none=False)
        loss = head.loss([f[index] for f in features])
        loss.backward()
        if head.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(head.parameters(), head.max_grad_norm)
        optimizer.step()
    head.eval()
    for m in head.modules():
        if isinstance(m, SNC):
            m.refresh()


def conv_macs(model, size):
    """Multiply-accumulates of one image of size x size: every dense convolution and transposed convolution
    (by running the model once with hooks; depthwise ones, SNC's, are left out as elementwise work) and
    PatchCore's nearest-neighbour products."""
    total = [0]

    def hook(m, inputs, output):
        kh, kw = m.kernel_size
        if isinstance(m, nn.ConvTranspose2d):
            total[0] += inputs[0].shape[2] * inputs[0].shape[3] * m.in_channels * m.out_channels * kh * kw
        else:
            total[0] += output.shape[2] * output.shape[3] * m.out_channels * (m.in_channels // m.groups) * kh * kw

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.groups == 1]
    with torch.inference_mode():
        model(torch.zeros(1, size, size, 3, dtype=torch.uint8))
    for h in handles:
        h.remove()
    if hasattr(model.head, "extra_macs"):
        total[0] += model.head.extra_macs((size // 8) ** 2)
    return total[0]

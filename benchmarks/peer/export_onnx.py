#!/usr/bin/python3
"""Exports the peer networks to ONNX for bench_ort.js (ONNX Runtime), each scoring module as PyTorch runs it:

  flows (flows.py)          msflow_seed, fastflow_256: float N x C x H x W features -> the flow, the maps
                            mean_c(z^2)/2 and the top-3 % image scores (bench_torch.py's score cases)
  pipelines (pipelines.py)  e2e_msflow, e2e_fastflow, e2e_patchcore, e2e_fcl: uint8 N x S x S x 3 images -> maps
                            and image scores (bench_pipeline_torch.py's msflow, fastflow, patchcore, fcl)

  /usr/bin/python3 benchmarks/peer/export_onnx.py DIR [--configs msflow_seed,fastflow_256,e2e_msflow,...]
        [--size 256] [--patchcore-bank ROWS]

Writes DIR/<config>.onnx (opset 14, the batch dimension dynamic, constants folded) and DIR/<config>.json, the
input's name, element type and per-sample shape, which bench_ort.js reads. The weights are random, as in the
PyTorch benchmarks (the work does not depend on them).
"""

import argparse
import json
import os
import sys
import warnings

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flows  # noqa: E402
import pipelines  # noqa: E402


class FlowScoring(nn.Module):
    """A benchmark flow's scoring: features -> (image scores, maps), as flows.score computes it."""

    def __init__(self, flow):
        super().__init__()
        self.flow = flow

    def forward(self, x):
        z, _ = self.flow(x)
        return flows.anomaly_scores(z)


def scoring_module(config, size, patchcore_bank):
    """(module, example input, element type name) of a config."""
    if config in flows.CONFIGS:
        flow, (c, h, w) = flows.build(config)
        flow.initialize(torch.randn(16, c, h, w, generator=torch.Generator().manual_seed(99)))
        return FlowScoring(flow).eval(), torch.randn(1, c, h, w), "float32"
    if config.startswith("e2e_") and config[4:] in pipelines.HEADS:
        options = {"bank": patchcore_bank} if config == "e2e_patchcore" else {}
        return pipelines.build(config[4:], size, **options), torch.zeros(1, size, size, 3, dtype=torch.uint8), "uint8"
    known = ", ".join(list(flows.CONFIGS) + ["e2e_" + h for h in pipelines.HEADS])
    raise SystemExit(f"export_onnx.py: unknown config '{config}' (known: {known})")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("directory")
    p.add_argument("--configs", default="msflow_seed,fastflow_256,e2e_msflow,e2e_fastflow,e2e_patchcore,e2e_fcl")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--patchcore-bank", type=int, default=21401, help="PatchCore's bank rows (flowad's model's)")
    args = p.parse_args()
    os.makedirs(args.directory, exist_ok=True)
    for config in [c for c in args.configs.split(",") if c]:
        module, example, dtype = scoring_module(config, args.size, args.patchcore_bank)
        path = os.path.join(args.directory, f"{config}.onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, example, path, input_names=["input"], output_names=["scores", "maps"],
                              dynamic_axes={"input": {0: "batch"}, "scores": {0: "batch"}, "maps": {0: "batch"}},
                              opset_version=14, do_constant_folding=True)
        manifest = {"config": config, "input": "input", "dtype": dtype, "sample_shape": list(example.shape[1:])}
        with open(os.path.join(args.directory, f"{config}.json"), "w") as f:
            json.dump(manifest, f)
        print(f"export_onnx.py: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()

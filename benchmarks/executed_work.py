#!/usr/bin/env python3
"""Counts the multiply-accumulates oneDNN executed, from its verbose log (ONEDNN_VERBOSE=1), per kind of
primitive and algorithm: the work actually done, where the direct method's count overstates what Winograd
convolutions compute.

  ONEDNN_VERBOSE=1 build/benchmarks/bench_pipeline --configs msflow --cases score_b1 --warmup 0 --repeats 1 \\
      --no-peak | python3 benchmarks/executed_work.py [--calls 1] [--json CONFIG CASE]

Counted, per executed primitive (every `onednn_verbose,exec` line; creation lines are ignored):
  convolution, direct or implicit GEMM   mb·oc·oh·ow·(ic/g)·kh·kw
  convolution, Winograd F(4x4, 3x3)      mb·⌈oh/4⌉·⌈ow/4⌉·36·ic·oc: the transformed tiles' products (the
                                         direct method's 144 per 4x4 tile and channel pair is 4x more); the
                                         input and output transforms, a few percent more, are not counted
  deconvolution                          mb·ic·ih·iw·oc·kh·kw (each input cell times the kernel)
  matmul, inner product                  m·k·n (mb·oc·ic)
Elementwise work (activations, couplings, reductions, reorders) is not counted, on any side.
Also sums the milliseconds oneDNN reports per primitive kind (every exec line, reorders included: a profile of
where the call's time went inside oneDNN; the rest is flowad's own kernels). Prints the totals divided by
--calls (the scoring calls the log holds), and with --json one JSON line for compare.sh.
"""

import argparse
import json
import math
import re
import sys


def dims(text):
    """The problem descriptor's numbers: 'mb1_ic64oc64_ih64oh64kh3sh1...' -> {'mb': 1, 'ic': 64, ...}."""
    return {k: int(v) for k, v in re.findall(r"([a-z]+)(\d+)", text)}


def exec_ms(line):
    """(primitive kind, milliseconds) of any exec line, else None: where oneDNN's time went."""
    fields = line.strip().split(",")
    if len(fields) < 6 or fields[0] != "onednn_verbose" or fields[1] != "exec":
        return None
    try:
        return fields[3], float(fields[-1])
    except ValueError:
        return None


def count(line):
    """(kind, multiply-accumulates) of one exec line, or None for primitives not counted."""
    fields = line.strip().split(",")
    if len(fields) < 6 or fields[0] != "onednn_verbose" or fields[1] != "exec":
        return None
    kind = fields[3]
    implementation = fields[4]
    descriptor = fields[-2]
    if kind in ("convolution", "deconvolution"):
        d = dims(descriptor.replace("_", " "))
        g = d.get("g", 1)
        mb, ic, oc = d.get("mb", 1), d["ic"], d["oc"]
        oh, ow, kh, kw = d.get("oh", 1), d.get("ow", 1), d.get("kh", 1), d.get("kw", 1)
        if kind == "deconvolution":
            return "deconvolution", mb * ic * d.get("ih", 1) * d.get("iw", 1) * (oc // g) * kh * kw
        if "wino" in implementation or "alg:convolution_winograd" in line:
            return "convolution (Winograd)", mb * math.ceil(oh / 4) * math.ceil(ow / 4) * 36 * ic * oc // g
        return "convolution (direct)", mb * oc * oh * ow * (ic // g) * kh * kw
    if kind == "matmul":
        # e.g. '1024x384:384x21401' or with a batch: '16x1024x384:16x384x21401'
        shapes = descriptor.split(":")
        a = [int(x) for x in shapes[0].split("x")]
        b = [int(x) for x in shapes[1].split("x")]
        batch = math.prod(a[:-2]) if len(a) > 2 else 1
        return "matmul", batch * a[-2] * a[-1] * b[-1]
    if kind == "inner_product":
        d = dims(descriptor)
        return "inner product", d.get("mb", 1) * d["oc"] * d["ic"] * d.get("ih", 1) * d.get("iw", 1)
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=1, help="scoring calls the log holds (the totals are divided by it)")
    p.add_argument("--json", nargs=2, metavar=("CONFIG", "CASE"), help="print one JSON line for compare.sh")
    args = p.parse_args()
    totals, times = {}, {}
    for line in sys.stdin:
        counted = count(line)
        if counted:
            kind, macs = counted
            totals[kind] = totals.get(kind, 0) + macs
        timed = exec_ms(line)
        if timed:
            times[timed[0]] = times.get(timed[0], 0.0) + timed[1]
    per_call = {k: v / args.calls for k, v in totals.items()}
    ms_per_call = {k: v / args.calls for k, v in times.items()}
    total = sum(per_call.values())
    if args.json:
        print(json.dumps({"side": "flowad", "config": args.json[0], "case": args.json[1], "executed_macs": total,
                          "executed_by_kind": per_call, "onednn_ms_by_kind": ms_per_call}))
    else:
        for kind, macs in sorted(per_call.items()):
            print(f"{kind:<24} {macs / 1e9:10.3f} GMAC")
        print(f"{'total':<24} {total / 1e9:10.3f} GMAC per call")
        for kind, ms in sorted(ms_per_call.items(), key=lambda kv: -kv[1]):
            print(f"{kind:<24} {ms:10.2f} ms in oneDNN (verbose timing)")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""The comparison table of compare.sh from its JSON lines (standard library only).

  /usr/bin/python3 benchmarks/peer/compare_table.py FILE.jsonl

One row per (config, case): flowad's median, each PyTorch variant's, ONNX Runtime's; the ratios peer / flowad
(above 1: flowad faster) against ONNX Runtime, the best PyTorch variant and stock PyTorch; flowad's rate in
GFLOP/s and as a share of the FP32 peak measured in the same run.

Two rates: "direct" counts 2 x the multiply-accumulates of the direct method (for a flow's training step x3),
the same count for every side, so it compares time for the same work; "executed" counts what oneDNN
executed for flowad in one call of the case (benchmarks/executed_work.py: Winograd convolutions at their own
multiplications, a quarter of the direct method's), and its share of the peak is flowad's efficiency.
"""

import json
import sys


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    meta = next((r for r in rows if r.get("side") == "meta"), {})
    peaks = [r["gflops"] for r in rows if r.get("side") == "flowad" and r.get("case") == "peak"]
    peak = max(peaks) if peaks else None
    executed = {(r["config"], r["case"]): r["executed_macs"] for r in rows if "executed_macs" in r}
    cases = [r for r in rows if r.get("side") in ("flowad", "pytorch", "onnxruntime") and r.get("case") != "peak"
             and "executed_macs" not in r]
    flowad = {(r["config"], r["case"]): r for r in cases if r["side"] == "flowad"}
    ort = {(r["config"], r["case"]): r for r in cases if r["side"] == "onnxruntime"}
    torch_rows = [r for r in cases if r["side"] == "pytorch"]
    variants = []
    for r in torch_rows:
        if r["variant"] not in variants:
            variants.append(r["variant"])
    torch_by = {(r["config"], r["case"], r["variant"]): r for r in torch_rows}
    config_order = ["msflow_seed", "fastflow_256", "e2e_msflow", "e2e_fastflow", "e2e_patchcore", "e2e_fcl",
                    "decode_resize"]
    case_order = ["score_b1", "score_b16", "train_b16", "fit_epoch", "prepare_png", "prepare_jpeg"]
    keys = sorted({(r["config"], r["case"]) for r in cases},
                  key=lambda k: (config_order.index(k[0]) if k[0] in config_order else len(config_order), k[0],
                                 case_order.index(k[1]) if k[1] in case_order else len(case_order), k[1]))

    print()
    print(f"threads {meta.get('threads')}, repeats {meta.get('repeats')}, load average before "
          f"{', '.join(f'{x:.1f}' for x in meta.get('loadavg_before', []))} / after "
          f"{', '.join(f'{x:.1f}' for x in meta.get('loadavg_after', []))} on {meta.get('cpus')} CPUs")
    versions = []
    if torch_rows:
        versions.append(f"PyTorch {torch_rows[0].get('torch')}")
    if ort:
        versions.append(f"ONNX Runtime {next(iter(ort.values())).get('onnxruntime')} (onnxruntime-node, CPU)")
    if versions:
        print(", ".join(versions))
    print(f"measured FP32 peak: {fmt(peak, '.1f')} GFLOP/s")
    print("ms = median wall time per batch (fit_epoch: per epoch); ratios = peer ms / flowad ms (above 1: flowad "
          "faster);\n% peak = the executed rate's share where known, else the direct one's")
    print()
    short = {v: v.replace("channels_last", "cl").replace("tcmalloc", "tcm") for v in variants}
    width = {v: max(9, len(short[v]) + 3) for v in variants}
    head = (f"{'config':<13} {'case':<10} {'flowad ms':>10} {'ORT ms':>9} "
            + " ".join(f"{short[v] + ' ms':>{width[v]}}" for v in variants)
            + f" {'ORT/fl':>7} {'best/fl':>8} {'stock/fl':>8} {'direct GF/s':>11} {'exec GF/s':>9} {'% peak':>7}"
            + "  best PyTorch")
    print(head)
    print("-" * len(head))
    for config, case in keys:
        f = flowad.get((config, case))
        f_ms = f["ms_median"] if f else None
        o = ort.get((config, case))
        o_ms = o["ms_median"] if o else None
        cells, best = [], None
        for v in variants:
            t = torch_by.get((config, case, v))
            ms = t["ms_median"] if t else None
            cells.append(f"{fmt(ms, '.2f'):>{width[v]}}")
            if ms is not None and (best is None or ms < best[0]):
                best = (ms, v)
        flops = None
        if f and "flops_per_batch" in f:
            flops = f["flops_per_batch"]
        else:
            # The pipelines: the PyTorch side counts its convolutions' multiply-accumulates per image.
            t = next((torch_by[k] for k in torch_by if k[0] == config and k[1] == case), None)
            if t and "conv_macs_per_image" in t and case.startswith("score_b"):
                flops = 2.0 * t["conv_macs_per_image"] * int(case[len("score_b"):])
        gflops = flops / (f_ms * 1e-3) * 1e-9 if flops and f_ms else None
        done = executed.get((config, case))
        executed_gflops = 2.0 * done / (f_ms * 1e-3) * 1e-9 if done and f_ms else None
        rate = executed_gflops if executed_gflops is not None else gflops
        pct = 100.0 * rate / peak if rate is not None and peak else None
        stock = torch_by.get((config, case, "stock"))
        ratio = lambda peer_ms: peer_ms / f_ms if peer_ms is not None and f_ms else None  # noqa: E731
        print(f"{config:<13} {case:<10} {fmt(f_ms, '.2f'):>10} {fmt(o_ms, '.2f'):>9} " + " ".join(cells)
              + f" {fmt(ratio(o_ms), '.2f'):>7} {fmt(ratio(best[0] if best else None), '.2f'):>8}"
              + f" {fmt(ratio(stock['ms_median'] if stock else None), '.2f'):>8}"
              + f" {fmt(gflops, '.1f'):>11} {fmt(executed_gflops, '.1f'):>9} {fmt(pct, '.1f'):>7}"
              + f"  {short[best[1]] if best else '-'}")

    # Peak RSS: compare.sh runs every side of every e2e config in its own process (scoring and training
    # apart), so each figure is that process's peak; the flows part runs all its cases in one process per side.
    print()
    sides = [("flowad", "flowad"), ("onnxruntime", "ORT")] + [(v, short[v]) for v in variants]

    def rss(config, side, fit):
        values = [r["peak_rss_mb"] for r in cases if r["config"] == config and "peak_rss_mb" in r
                  and (r["side"] if r["side"] != "pytorch" else r["variant"]) == side
                  and (r["case"] == "fit_epoch") == fit]
        return max(values) if values else None

    configs = [c for c in config_order if any(r["config"] == c for r in cases)]
    print("peak RSS per process (MB)  " + " ".join(f"{label:>9}" for _, label in sides))
    for config in configs:
        for fit in (False, True):
            cells = [rss(config, side, fit) for side, _ in sides]
            if any(v is not None for v in cells):
                label = config + (" fit_epoch" if fit else " scoring" if config.startswith("e2e_") else "")
                print(f"{label:<26} " + " ".join(f"{fmt(v, '.0f'):>9}" for v in cells))
    for (config, case), f in flowad.items():
        for v in variants:
            t = torch_by.get((config, case, v))
            if t and "flops_per_batch" in t and "flops_per_batch" in f and \
                    abs(t["flops_per_batch"] - f["flops_per_batch"]) > 1e-6 * f["flops_per_batch"]:
                print(f"WARNING: {config}/{case}: flops_per_batch differs (flowad {f['flops_per_batch']:.6e}, "
                      f"pytorch {t['flops_per_batch']:.6e}): the two sides do not run the same flow")
                break
    print(f"raw JSON lines: {sys.argv[1]}")


if __name__ == "__main__":
    main()

#!/usr/bin/env node
// Times the ONNX Runtime peer: the scoring modules export_onnx.py wrote (DIR/<config>.onnx and .json), run by
// onnxruntime-node's CPU build (MLAS kernels) with every graph optimisation, sequential execution and the
// given thread count.
//
//   node benchmarks/peer/bench_ort.js --models DIR [--threads 2] [--repeats 7] [--warmup 2]
//        [--configs msflow_seed,fastflow_256,e2e_msflow] [--cases score_b1,score_b16]
//
// Prints one JSON line per case (as the PyTorch benchmarks' --json): median (the upper one for an even
// count), min and max wall time per call, and the process's peak RSS. Inputs are random (uniform bytes for
// images, values in [-2, 2) for features: the work does not depend on them).
'use strict';
const fs = require('fs');
const path = require('path');

function die(message) {
  process.stderr.write(`bench_ort.js: ${message}\n`);
  process.exit(2);
}

function parse(argv) {
  const o = {models: null, threads: 2, repeats: 7, warmup: 2, configs: ['msflow_seed', 'fastflow_256', 'e2e_msflow'],
    cases: ['score_b1', 'score_b16']};
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    const value = () => (i + 1 < argv.length ? argv[++i] : die(`${a} needs a value`));
    if (a === '--models') o.models = value();
    else if (a === '--threads') o.threads = parseInt(value(), 10);
    else if (a === '--repeats') o.repeats = parseInt(value(), 10);
    else if (a === '--warmup') o.warmup = parseInt(value(), 10);
    else if (a === '--configs') o.configs = value().split(',').filter(Boolean);
    else if (a === '--cases') o.cases = value().split(',').filter(Boolean);
    else die(`unknown option '${a}'`);
  }
  if (!o.models) die('--models DIR is required (export_onnx.py DIR writes it)');
  return o;
}

function batchOf(name) {
  const m = /^score_b([1-9][0-9]*)$/.exec(name);
  if (!m) die(`unknown case '${name}' (score_b<N>, N > 0)`);
  return parseInt(m[1], 10);
}

async function main() {
  const o = parse(process.argv.slice(2));
  let ort;
  try {
    ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));
  } catch (e) {
    die(`onnxruntime-node is not installed (bash scripts/install-deps.sh --peer): ${e.message}`);
  }
  for (const config of o.configs) {
    const manifest = JSON.parse(fs.readFileSync(path.join(o.models, `${config}.json`), 'utf8'));
    const session = await ort.InferenceSession.create(path.join(o.models, `${config}.onnx`), {
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      intraOpNumThreads: o.threads,
      interOpNumThreads: 1,
    });
    for (const name of o.cases) {
      const batch = batchOf(name);
      const shape = [batch, ...manifest.sample_shape];
      const count = shape.reduce((a, b) => a * b, 1);
      const values = manifest.dtype === 'uint8' ? new Uint8Array(count) : new Float32Array(count);
      let state = 7;
      for (let i = 0; i < count; ++i) {
        state = (state * 1103515245 + 12345) >>> 0;
        values[i] = manifest.dtype === 'uint8' ? state >>> 24 : (state / 4294967296) * 4 - 2;
      }
      const feeds = {[manifest.input]: new ort.Tensor(manifest.dtype, values, shape)};
      for (let w = 0; w < o.warmup; ++w) await session.run(feeds);
      const times = [];
      for (let r = 0; r < o.repeats; ++r) {
        const t0 = process.hrtime.bigint();
        await session.run(feeds);
        times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      times.sort((a, b) => a - b);
      const median = times[Math.floor(times.length / 2)];
      console.log(JSON.stringify({
        side: 'onnxruntime', variant: 'onnxruntime', config, case: name, ms_median: median, ms_min: times[0],
        ms_max: times[times.length - 1], images_per_s: batch / (median * 1e-3),
        peak_rss_mb: process.resourceUsage().maxRSS / 1024, threads: o.threads, repeats: o.repeats,
        onnxruntime: require(path.join(__dirname, 'node_modules', 'onnxruntime-node', 'package.json')).version,
      }));
    }
    await session.release();
  }
}

main().catch((e) => die(e.stack || String(e)));

#!/usr/bin/env node
// ort_bench.js — the onnxruntime side of kiln's benchmarks: loads MODEL with onnxruntime-node, feeds random
// inputs of the declared shapes (symbolic dims from --shape NAME=N, else 1), and prints one JSON line in the
// same format as `kiln bench --json`.
//
// usage: node ort_bench.js MODEL [--threads N] [--seconds S] [--shape NAME=N ...] [--data FILE]
//
// --data FILE: raw little-endian float32 values for the (float32) input instead of random ones; successive runs
// take successive windows of the input's size from it (up to 1024, cycling), so a batch-1 run sees a new row
// each time.
//
// Times include the Node binding's fixed per-call overhead (tens of microseconds): fine for CNNs, but for
// tiny models compare against onnxruntime's C API as well (bench/ort_c_bench.c).
'use strict';
const ort = require('onnxruntime-node');

function parseArgs(argv) {
  const o = { threads: 1, seconds: 3, shapes: {} };
  o.model = argv[0];
  for (let i = 1; i < argv.length; i++) {
    if (argv[i] === '--threads') o.threads = Number(argv[++i]);
    else if (argv[i] === '--seconds') o.seconds = Number(argv[++i]);
    else if (argv[i] === '--shape') { const [k, v] = argv[++i].split('='); o.shapes[k] = v.split(',').map(Number); }
    else if (argv[i] === '--data') o.data = argv[++i];
    else throw new Error('unknown option ' + argv[i]);
  }
  if (!o.model) throw new Error('usage: node ort_bench.js MODEL [--threads N] [--seconds S] [--shape NAME=N]');
  return o;
}

function randomTensor(meta, shapes) {
  // onnxruntime-node >= 1.16 exposes input metadata with dims (strings for symbolic ones)
  const dims = meta.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : (shapes[d] ? shapes[d][0] : 1)));
  if (shapes[meta.name]) dims.splice(0, dims.length, ...shapes[meta.name]);
  const n = dims.reduce((a, b) => a * b, 1);
  let seed = 12345;
  const next = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
  switch (meta.type) {
    case 'float32': return new ort.Tensor('float32', Float32Array.from({ length: n }, next), dims);
    case 'int64': return new ort.Tensor('int64', BigInt64Array.from({ length: n }, () => BigInt(Math.floor(next() * 10))), dims);
    case 'int32': return new ort.Tensor('int32', Int32Array.from({ length: n }, () => Math.floor(next() * 10)), dims);
    default: throw new Error('unsupported input type ' + meta.type);
  }
}

// One feed per window of the data file (see --data).
function feedsFromData(session, file, shapes) {
  if (session.inputMetadata.length !== 1) throw new Error('--data needs a model with one input');
  const meta = session.inputMetadata[0];
  const dims = randomTensor(meta, shapes).dims;
  const n = dims.reduce((a, b) => a * b, 1);
  const buf = require('fs').readFileSync(file);
  const all = new Float32Array(buf.buffer, buf.byteOffset, Math.floor(buf.length / 4));
  const windows = Math.min(1024, Math.floor(all.length / n));
  if (windows < 1) throw new Error(file + ' holds fewer values than one input');
  return Array.from({ length: windows }, (_, w) => ({ [meta.name]: new ort.Tensor('float32', all.subarray(w * n, (w + 1) * n), dims) }));
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(o.model, { intraOpNumThreads: o.threads, interOpNumThreads: 1,
                                                               graphOptimizationLevel: 'all' });
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  let feedList = [{}];
  if (o.data) feedList = feedsFromData(session, o.data, o.shapes);
  else for (const meta of session.inputMetadata) feedList[0][meta.name] = randomTensor(meta, o.shapes);
  for (let i = 0; i < 3; i++) await session.run(feedList[i % feedList.length]);
  const times = [];
  const start = process.hrtime.bigint();
  while (Number(process.hrtime.bigint() - start) / 1e9 < o.seconds || times.length === 0) {
    const feeds = feedList[times.length % feedList.length];
    const s = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - s) / 1e3);
  }
  times.sort((a, b) => a - b);
  const pct = (p) => { const r = (p / 100) * (times.length - 1); const lo = Math.floor(r); const hi = Math.min(lo + 1, times.length - 1); return times[lo] + (times[hi] - times[lo]) * (r - lo); };
  console.log(JSON.stringify({ model: o.model, threads: o.threads, runs: times.length, load_ms: +loadMs.toFixed(3),
    p50_us: +pct(50).toFixed(1), p90_us: +pct(90).toFixed(1), p99_us: +pct(99).toFixed(1), min_us: +times[0].toFixed(1) }));
}

main().catch((e) => { console.error('ort_bench.js: ' + e.message); process.exit(1); });

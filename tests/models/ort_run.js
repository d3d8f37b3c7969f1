#!/usr/bin/env node
// ort_run.js — runs an ONNX model with onnxruntime (the reference peer) on .npy inputs and writes its outputs
// as .npy, so tests can compare kiln against onnxruntime on exactly the same files.
//
// usage: node ort_run.js MODEL OUTDIR INPUT.npy ...     writes OUTDIR/expected_K.npy for each model output K
//
// String tensors are read from and written to NumPy unicode arrays ('<U<width>', UTF-32 code points).
// onnxruntime-node returns tensors only (not sequences or maps).
//
// onnxruntime-node is found through NODE_PATH or a node_modules directory above this file; install it with
// `npm install --ignore-scripts onnxruntime-node` (the flag skips a GPU download).
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

const NPY_TYPES = {
  '<f4': ['float32', Float32Array], '<f8': ['float64', Float64Array], '<i8': ['int64', BigInt64Array],
  '<i4': ['int32', Int32Array], '|u1': ['uint8', Uint8Array], '|i1': ['int8', Int8Array], '|b1': ['bool', Uint8Array],
};

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(file + ': not a .npy file');
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)[1];
  const dims = shapeText.split(',').map((s) => s.trim()).filter((s) => s.length).map(Number);
  const offset = start + headerLen;
  const unicode = /^<U(\d+)$/.exec(descr);
  if (unicode) return new ort.Tensor('string', readUnicode(buf, offset, Number(unicode[1]), dims), dims);
  const [type, Array_] = NPY_TYPES[descr] || [];
  if (!type) throw new Error(file + ': unsupported dtype ' + descr);
  const bytes = buf.buffer.slice(buf.byteOffset + offset, buf.byteOffset + buf.length);
  let data = new Array_(bytes);
  if (type === 'bool') data = Uint8Array.from(data).map((v) => v !== 0);
  return new ort.Tensor(type, type === 'bool' ? Array.from(data) : data, dims);
}

// '<U<width>' elements: `width` UTF-32LE code points each, NUL-padded.
function readUnicode(buf, offset, width, dims) {
  const count = dims.reduce((a, b) => a * b, 1);
  const out = [];
  for (let i = 0; i < count; i++) {
    let s = '';
    for (let c = 0; c < width; c++) {
      const cp = buf.readUInt32LE(offset + (i * width + c) * 4);
      if (cp === 0) break;
      s += String.fromCodePoint(cp);
    }
    out.push(s);
  }
  return out;
}

function unicodeBytes(strings) {
  const width = Math.max(1, ...strings.map((s) => Array.from(s).length));
  const data = Buffer.alloc(strings.length * width * 4);
  strings.forEach((s, i) => Array.from(s).forEach((ch, c) => data.writeUInt32LE(ch.codePointAt(0), (i * width + c) * 4)));
  return [`<U${width}`, data];
}

function writeNpy(file, tensor) {
  const [unicodeDescr, unicodeData] = tensor.type === 'string' ? unicodeBytes(tensor.data) : [];
  const descr = unicodeDescr || Object.keys(NPY_TYPES).find((k) => NPY_TYPES[k][0] === tensor.type);
  if (!descr) throw new Error('cannot write dtype ' + tensor.type);
  const dims = tensor.dims;
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + dict.length + 1;
  dict += ' '.repeat(Math.ceil(total / 64) * 64 - total) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(dict.length, 8);
  const data = unicodeData || (tensor.type === 'bool' ? Uint8Array.from(tensor.data, (v) => (v ? 1 : 0)) : tensor.data);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(dict, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

async function main() {
  const [model, outDir, ...inputs] = process.argv.slice(2);
  if (!model || !outDir) {
    console.error('usage: node ort_run.js MODEL OUTDIR INPUT.npy ...');
    process.exit(2);
  }
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  if (inputs.length !== session.inputNames.length) throw new Error(`model has ${session.inputNames.length} inputs, got ${inputs.length}`);
  const feeds = {};
  session.inputNames.forEach((name, i) => { feeds[name] = readNpy(inputs[i]); });
  const results = await session.run(feeds);
  fs.mkdirSync(outDir, { recursive: true });
  session.outputNames.forEach((name, k) => writeNpy(path.join(outDir, `expected_${k}.npy`), results[name]));
}

main().catch((e) => { console.error('ort_run.js: ' + e.message); process.exit(1); });

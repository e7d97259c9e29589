// Runs an ONNX model with ONNX Runtime (onnxruntime-node, CPU) on every sample folder of a data
// set in one process: the reference side of bench/ocr/accuracy.py. The .npy reading and writing
// is that of tests/models/ort_run.js.
//
//   node ort_batch.js MODEL.onnx IN_ROOT OUT_ROOT [THREADS]
// IN_ROOT holds one folder per sample with NAME.npy per model input (NAME sanitized as in
// `kiln run`); outputs go to OUT_ROOT/<sample>/<sanitized output name>.npy. Prints the number of
// samples and the total run time (ms) on stdout.
'use strict';
const fs = require('fs');
const path = require('path');

const depsDir = process.env.KILN_NPM_DIR || path.join(__dirname, '..', '..', '.deps', 'npm');
const ort = require(path.join(depsDir, 'node_modules', 'onnxruntime-node'));

const DTYPES = {
  '<f4': ['float32', Float32Array], '<f8': ['float64', Float64Array],
  '|i1': ['int8', Int8Array], '|u1': ['uint8', Uint8Array], '<i2': ['int16', Int16Array],
  '<u2': ['uint16', Uint16Array], '<i4': ['int32', Int32Array], '<u4': ['uint32', Uint32Array],
  '<i8': ['int64', BigInt64Array], '<u8': ['uint64', BigUint64Array], '|b1': ['bool', Uint8Array],
  '<f2': ['float16', Uint16Array],
};

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', hstart, hstart + hlen);
  if (/'fortran_order':\s*True/.test(header)) {
    throw new Error(`${file}: Fortran order not supported`);
  }
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map(s => s.trim())
      .filter(s => s.length).map(Number);
  const [type, Ctor] = DTYPES[descr] || [];
  if (!type) throw new Error(`${file}: unsupported dtype ${descr}`);
  const start = hstart + hlen;
  const count = shape.reduce((a, b) => a * b, 1);
  if (buf.length < start + count * Ctor.BYTES_PER_ELEMENT) throw new Error(`${file}: truncated`);
  const bytes = buf.subarray(start, start + count * Ctor.BYTES_PER_ELEMENT);
  const data = new Ctor(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  return new ort.Tensor(type, type === 'bool' ? Uint8Array.from(data) : data, shape);
}

function writeNpy(file, tensor) {
  const descr = Object.keys(DTYPES).find(k => DTYPES[k][0] === tensor.type);
  if (!descr) throw new Error(`cannot write output of type ${tensor.type}`);
  const dims = tensor.dims;
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1; pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const data = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), data]));
}

const sanitize = s => s.replace(/[^A-Za-z0-9._-]/g, '_');

async function main() {
  const [model, inRoot, outRoot, threads] = process.argv.slice(2);
  if (!outRoot) {
    console.error('usage: node ort_batch.js MODEL.onnx IN_ROOT OUT_ROOT [THREADS]');
    process.exit(2);
  }
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'], intraOpNumThreads: Number(threads || 1), interOpNumThreads: 1,
  });
  const samples = fs.readdirSync(inRoot, { withFileTypes: true })
      .filter(d => d.isDirectory()).map(d => d.name).sort();
  if (samples.length === 0) throw new Error(`${inRoot}: no sample folders`);
  let ms = 0;
  for (const sample of samples) {
    const feeds = {};
    for (const name of session.inputNames) {
      const file = path.join(inRoot, sample, sanitize(name) + '.npy');
      if (!fs.existsSync(file)) throw new Error(`${file}: missing input '${name}'`);
      feeds[name] = readNpy(file);
    }
    const t0 = process.hrtime.bigint();
    const results = await session.run(feeds);
    ms += Number(process.hrtime.bigint() - t0) / 1e6;
    const outDir = path.join(outRoot, sample);
    fs.mkdirSync(outDir, { recursive: true });
    for (const name of session.outputNames) {
      writeNpy(path.join(outDir, sanitize(name) + '.npy'), results[name]);
    }
  }
  console.log(`${samples.length} samples, run ${ms.toFixed(1)} ms`);
}

main().catch(e => { console.error(`error: ${e.message}`); process.exit(1); });

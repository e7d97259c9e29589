// Shared by Kiln's ONNX Runtime scripts (tests/models/ort_run.js, bench/ort_bench.js,
// bench/ocr/ort_batch.js): loads onnxruntime-node from scripts/setup.sh's npm folder
// ($KILN_NPM_DIR or .deps/npm) and reads/writes .npy files as ONNX Runtime tensors.
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

// An ort.Tensor from a .npy file; throws an Error naming the file and what is wrong.
function readNpy(file) {
  let buf;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`cannot read ${file}: ${e.code || e.message}`);
  }
  if (buf.length < 10 || buf.toString('latin1', 1, 6) !== 'NUMPY') {
    throw new Error(`${file}: not a .npy file`);
  }
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', hstart, hstart + hlen);
  const descr = (/'descr':\s*'([^']+)'/.exec(header) || [])[1];
  const shapeText = (/'shape':\s*\(([^)]*)\)/.exec(header) || [])[1];
  if (/'fortran_order':\s*True/.test(header)) {
    throw new Error(`${file}: Fortran order is not supported`);
  }
  if (descr === undefined || shapeText === undefined) {
    throw new Error(`${file}: malformed .npy header`);
  }
  const shape = shapeText.split(',').map(s => s.trim()).filter(s => s.length).map(Number);
  const [type, Ctor] = DTYPES[descr] || [];
  if (!type) throw new Error(`${file}: unsupported dtype ${descr}`);
  const start = hstart + hlen;
  const count = shape.reduce((a, b) => a * b, 1);
  if (buf.length < start + count * Ctor.BYTES_PER_ELEMENT) {
    throw new Error(`${file}: data is truncated`);
  }
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

// Output/input names as file names: as `kiln run` writes them.
const sanitize = s => s.replace(/[^A-Za-z0-9._-]/g, '_');

module.exports = {ort, readNpy, writeNpy, sanitize};

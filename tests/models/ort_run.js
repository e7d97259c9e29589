// Runs an ONNX model with ONNX Runtime (onnxruntime-node, CPU) on .npy inputs and writes each
// output as .npy: the reference side of Kiln's side-by-side model tests.
//
//   node ort_run.js MODEL.onnx INPUT_DIR OUTPUT_DIR [THREADS]
// INPUT_DIR holds NAME.npy per model input (NAME sanitized as in `kiln run`); outputs are written
// as OUTPUT_DIR/<sanitized output name>.npy.
'use strict';
const fs = require('fs');
const path = require('path');

const {ort, readNpy, writeNpy, sanitize} = require('./ort_npy.js');

async function main() {
  const [model, inDir, outDir, threads] = process.argv.slice(2);
  if (!outDir) {
    console.error('usage: node ort_run.js MODEL.onnx INPUT_DIR OUTPUT_DIR [THREADS]');
    process.exit(2);
  }
  const n = Number(threads || 1);
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'], intraOpNumThreads: n, interOpNumThreads: 1,
  });
  const feeds = {};
  for (const name of session.inputNames) feeds[name] = readNpy(path.join(inDir, sanitize(name) + '.npy'));
  const results = await session.run(feeds);
  fs.mkdirSync(outDir, { recursive: true });
  for (const name of session.outputNames) writeNpy(path.join(outDir, sanitize(name) + '.npy'), results[name]);
}

main().catch(e => { console.error(`error: ${e.message}`); process.exit(1); });

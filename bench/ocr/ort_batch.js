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

const {ort, readNpy, writeNpy, sanitize} = require('../../tests/models/ort_npy.js');

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

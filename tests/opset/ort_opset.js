// ONNX Runtime's side of the opset cases (tests/opset/opset_test.sh): runs one case's model on
// CPU with graph optimizations off (each node runs its own kernel, nothing is folded away) and
// writes every output as OUTPUT_DIR/<sanitized name>.npy.
//
//   node ort_opset.js MODEL.onnx INPUT_DIR OUTPUT_DIR
// INPUT_DIR holds NAME.npy per model input. Exit 1 with "error: ..." on stderr when ONNX Runtime
// refuses the model or fails to run it (the runner records that verdict).
'use strict';
const fs = require('fs');
const path = require('path');

const {ort, readNpy, writeNpy, sanitize} = require('../models/ort_npy.js');

async function main() {
  const [model, inDir, outDir] = process.argv.slice(2);
  if (!outDir) {
    console.error('usage: node ort_opset.js MODEL.onnx INPUT_DIR OUTPUT_DIR');
    process.exit(2);
  }
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1,
    graphOptimizationLevel: 'disabled',
  });
  const feeds = {};
  for (const name of session.inputNames) {
    feeds[name] = readNpy(path.join(inDir, sanitize(name) + '.npy'));
  }
  const results = await session.run(feeds);
  fs.mkdirSync(outDir, {recursive: true});
  for (const name of session.outputNames) {
    writeNpy(path.join(outDir, sanitize(name) + '.npy'), results[name]);
  }
}

main().catch(e => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});

// ONNX Runtime side of Kiln's benchmarks: the same measurements as `kiln bench` (load, first run,
// steady-state median/p90/min/mean, resident set before/after load and peak) for
// onnxruntime-node on the CPU, on inputs read from .npy files. Prints the results as JSON.
//
//   node bench/ort_bench.js MODEL.onnx -i NAME=FILE.npy... [--threads N] [--warmup N]
//                           [--iters N] [--json FILE]
// Session options: intraOpNumThreads = --threads, interOpNumThreads = 1, sequential execution,
// graph optimisation level "all". Every model input must be given with -i.
'use strict';
const fs = require('fs');
const path = require('path');

const {ort, readNpy: readNpyOrThrow} = require('../tests/models/ort_npy.js');

function fail(message) {
  console.error(`error: ${message}`);
  process.exit(1);
}

function readNpy(file) {
  try {
    return readNpyOrThrow(file);
  } catch (e) {
    return fail(e.message);
  }
}

function parseArgs(argv) {
  const o = { model: null, inputs: [], threads: 1, warmup: 2, iters: 10, json: null };
  const intArg = (name, value, min) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) {
      fail(`${name}: expected an integer >= ${min}, got '${value}'`);
    }
    return n;
  };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) fail(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '-i' || a === '--input') o.inputs.push(next());
    else if (a === '--threads') o.threads = intArg(a, next(), 1);
    else if (a === '--warmup') o.warmup = intArg(a, next(), 0);
    else if (a === '--iters') o.iters = intArg(a, next(), 1);
    else if (a === '--json') o.json = next();
    else if (a.startsWith('-')) fail(`unknown option ${a}`);
    else if (o.model === null) o.model = a;
    else fail(`unexpected argument ${a}`);
  }
  if (o.model === null) {
    fail('usage: node ort_bench.js MODEL.onnx -i NAME=FILE.npy... [--threads N] [--warmup N] ' +
         '[--iters N] [--json FILE]');
  }
  return o;
}

// Same definitions as `kiln bench`: median is the mean of the middle two for an even count, p90
// is by nearest rank.
function summarise(times) {
  const v = [...times].sort((a, b) => a - b);
  const n = v.length;
  const median = n % 2 ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  const p90 = v[Math.max(Math.ceil(0.9 * n), 1) - 1];
  const mean = v.reduce((a, b) => a + b, 0) / n;
  return { median, p90, min: v[0], max: v[n - 1], mean };
}

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
const rssMb = () => process.memoryUsage().rss / 1048576;
// VmHWM (this address space only) rather than resourceUsage().maxRSS, which also counts the peak
// of the process that forked and exec'd us; maxRSS only where /proc is missing. As `kiln bench`.
function peakRssMb() {
  try {
    const m = /^VmHWM:\s*(\d+)\s*kB/m.exec(fs.readFileSync('/proc/self/status', 'latin1'));
    if (m) return Number(m[1]) / 1024;
  } catch (e) { /* no /proc */ }
  return process.resourceUsage().maxRSS / 1024;  // KiB
}
const round6 = x => Math.round(x * 1e6) / 1e6;  // nanoseconds, as `kiln bench`

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const given = {};
  for (const item of o.inputs) {
    const eq = item.indexOf('=');
    if (eq <= 0 || eq === item.length - 1) fail(`-i ${item}: expected NAME=FILE.npy`);
    given[item.slice(0, eq)] = readNpy(item.slice(eq + 1));
  }
  if (!fs.existsSync(o.model)) fail(`no such file: ${o.model}`);
  const rssBefore = rssMb();

  const t0 = nowMs();
  const session = await ort.InferenceSession.create(o.model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: o.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const loadMs = nowMs() - t0;
  const rssAfterLoad = rssMb();

  for (const name of Object.keys(given)) {
    if (!session.inputNames.includes(name)) {
      fail(`the model has no input named '${name}' (inputs: ${session.inputNames.join(', ')})`);
    }
  }
  const feeds = {};
  for (const name of session.inputNames) {
    if (!(name in given)) fail(`model input '${name}' not given (use -i ${name}=FILE.npy)`);
    feeds[name] = given[name];
  }

  let a = nowMs();
  await session.run(feeds);
  const first = nowMs() - a;
  for (let i = 0; i < o.warmup; ++i) await session.run(feeds);
  const times = [];
  for (let i = 0; i < o.iters; ++i) {
    a = nowMs();
    await session.run(feeds);
    times.push(nowMs() - a);
  }
  const s = summarise(times);
  const result = {
    tool: 'onnxruntime-node',
    version: ort.env.versions ? ort.env.versions.common : undefined,
    model: o.model,
    threads: o.threads,
    warmup: o.warmup,
    iters: o.iters,
    inputs: session.inputNames.map(n => ({ name: n, type: feeds[n].type, shape: feeds[n].dims })),
    load_ms: round6(loadMs),
    first_run_ms: round6(first),
    median_ms: round6(s.median),
    p90_ms: round6(s.p90),
    min_ms: round6(s.min),
    max_ms: round6(s.max),
    mean_ms: round6(s.mean),
    times_ms: times.map(round6),
    rss_before_load_mb: round6(rssBefore),
    rss_after_load_mb: round6(rssAfterLoad),
    peak_rss_mb: round6(peakRssMb()),
  };
  const text = JSON.stringify(result, null, 2) + '\n';
  process.stdout.write(text);
  if (o.json) fs.writeFileSync(o.json, text);
}

main().catch(e => fail(e.message.split('\n')[0]));

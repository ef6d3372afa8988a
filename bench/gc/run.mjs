// The node side of the GC benchmarks: `node run.mjs FILE.wasm N` compiles
// the module, calls its `run(N)` export once and prints the same result
// line as the runner's own children (src/child.rs):
//
//     result checksum=C compile_us=U run_us=R run_wall_us=W
//
// CPU times are this process's user+system time (process.cpuUsage), in
// microseconds. A module V8 rejects exits with status 2, its error on
// standard error.
import { readFileSync } from 'node:fs';

const [wasmPath, arg] = process.argv.slice(2);
if (wasmPath === undefined || arg === undefined) {
  console.error('usage: node run.mjs FILE.wasm N');
  process.exit(1);
}
const bytes = readFileSync(wasmPath);
const cpuUs = () => {
  const { user, system } = process.cpuUsage();
  return user + system;
};

const cpu0 = cpuUs();
let run;
try {
  const module = new WebAssembly.Module(bytes);
  run = new WebAssembly.Instance(module, {}).exports.run;
} catch (e) {
  console.error(String(e));
  process.exit(2);
}
const cpu1 = cpuUs();
const wall1 = process.hrtime.bigint();
const checksum = run(Number(arg));
const wall2 = process.hrtime.bigint();
const cpu2 = cpuUs();
console.log(
  `result checksum=${checksum} compile_us=${cpu1 - cpu0} run_us=${cpu2 - cpu1} run_wall_us=${(wall2 - wall1) / 1000n}`,
);

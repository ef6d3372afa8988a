// Runs a WASI preview 1 command module under node's built-in node:wasi,
// with node's default V8 settings (so its own lazy/tiered compilation):
//     node --no-warnings node-wasi.mjs FILE.wasm [ARGS...]
// Exit status: the program's proc_exit status, or 0 when _start returns.
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import process from 'node:process';

const [file, ...args] = process.argv.slice(2);
const wasi = new WASI({
  version: 'preview1',
  args: [file, ...args],
  env: {},
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);

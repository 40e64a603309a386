#!/usr/bin/env node
// The `ensemble` command. In the repository the TypeScript sources run directly on Node's type
// stripping (Node >= 22.18); an installed package (under node_modules, where Node does not strip
// types) runs the compiled dist/.
const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
  process.stderr.write(`ensemble needs Node.js 22.18 or newer (this is ${process.version}).\n`);
  process.exit(1);
}
// The long-running processes get a 16 MB young generation (V8 sizes it from the host's memory:
// 64 MB semi-spaces on a 24 GB machine): each scavenge pause is shorter (p99 latency under load)
// and the heap holds less when thousands of runs are in flight (bench/FIXES.md, "V8 young
// generation"). V8 takes the size only at startup, so `serve` and `worker` re-execute themselves
// once with it (same process id), unless a size was given (a node flag, NODE_OPTIONS) or
// ENSEMBLE_V8_SEMI_SPACE_MB says otherwise (0: V8's own size).
const semiSpaceMb = process.env.ENSEMBLE_V8_SEMI_SPACE_MB ?? '16';
const sizeGiven = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((flag) => /^--max[-_]semi[-_]space[-_]size/.test(flag));
if (['serve', 'worker'].includes(process.argv[2] ?? '') && /^[1-9]\d*$/.test(semiSpaceMb) && !sizeGiven && typeof process.execve === 'function') {
  try {
    process.execve(process.execPath, [process.execPath, `--max-semi-space-size=${semiSpaceMb}`, ...process.execArgv, ...process.argv.slice(1)], process.env);
  } catch (error) {
    // Not where it cannot be done (a sandbox refusing execve): the process goes on with V8's size.
    process.stderr.write(`ensemble: running with V8's own young generation size (${error instanceof Error ? error.message : String(error)})\n`);
  }
}
const installed = import.meta.url.includes('/node_modules/');
const { main } = await import(installed ? '../dist/cli/index.js' : '../src/cli/index.ts');
await main(process.argv);

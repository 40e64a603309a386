#!/usr/bin/env node
// The `ensemble` command. Sources are TypeScript run by Node's built-in type stripping (Node >= 22.18).
const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
  process.stderr.write(`ensemble needs Node.js 22.18 or newer (this is ${process.version}).\n`);
  process.exit(1);
}
const { main } = await import('../src/cli/index.ts');
await main(process.argv);

#!/usr/bin/env node
// The `ensemble` command. In the repository the TypeScript sources run directly on Node's type
// stripping (Node >= 22.18); an installed package (under node_modules, where Node does not strip
// types) runs the compiled dist/.
const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
  process.stderr.write(`ensemble needs Node.js 22.18 or newer (this is ${process.version}).\n`);
  process.exit(1);
}
const installed = import.meta.url.includes('/node_modules/');
const { main } = await import(installed ? '../dist/cli/index.js' : '../src/cli/index.ts');
await main(process.argv);

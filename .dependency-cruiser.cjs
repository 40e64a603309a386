/**
 * Architecture rules, checked by `npm run lint:arch` (part of `npm test`): imports between src/
 * folders point one way, there are no cycles, and only src/providers imports vendor SDKs.
 *
 * Layers, lowest first: core ← config ← security ← providers, storage ← registry ← governance,
 * workflow (core and config only) ← orchestrator ← http ← cli, app.
 */
const LAYERS = {
  core: [],
  config: ['core'],
  security: ['core', 'config'],
  providers: ['core', 'config', 'security'],
  storage: ['core', 'config', 'security'],
  registry: ['core', 'config', 'security', 'providers', 'storage'],
  governance: ['core', 'config', 'security', 'providers', 'storage', 'registry'],
  workflow: ['core', 'config'],
  orchestrator: ['core', 'config', 'security', 'providers', 'storage', 'registry', 'governance', 'workflow'],
  http: ['core', 'config', 'security', 'providers', 'storage', 'registry', 'governance', 'workflow', 'orchestrator'],
  app: ['core', 'config', 'security', 'providers', 'storage', 'registry', 'governance', 'workflow', 'orchestrator', 'http'],
  cli: ['core', 'config', 'security', 'providers', 'storage', 'registry', 'governance', 'workflow', 'orchestrator', 'http', 'app', 'client'],
};
const FOLDERS = Object.keys(LAYERS);

const layerRules = FOLDERS.map((folder) => {
  const forbidden = FOLDERS.filter((other) => other !== folder && !LAYERS[folder].includes(other));
  return {
    name: `layer-${folder}`,
    comment: `src/${folder} may import only: ${LAYERS[folder].join(', ') || 'nothing of ours'}`,
    severity: 'error',
    from: { path: `^src/${folder}/` },
    to: { path: `^src/(${forbidden.join('|')})/` },
  };
}).filter((rule) => !rule.to.path.endsWith('()/'));

module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: 'no-circular',
      comment: 'Modules must not depend on each other in a cycle',
      severity: 'error',
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
    {
      name: 'vendor-sdks-only-in-providers',
      comment: 'Vendor packages are the providers layer\'s business alone',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/providers/' },
      to: { path: 'node_modules/(ai|@ai-sdk/[^/]+|@openrouter/ai-sdk-provider|ollama-ai-provider-v2)/' },
    },
    {
      name: 'client-stands-alone',
      comment: 'ensemble/client is published on its own: it imports nothing of the server',
      severity: 'error',
      from: { path: '^src/client/' },
      to: { path: '^src/', pathNot: '^src/client/' },
    },
    {
      name: 'src-not-from-tests',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};

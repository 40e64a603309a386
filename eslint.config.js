// Lint rules, including the architecture: imports between src/ folders only point downwards.
import js from '@eslint/js';
import { importX } from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import tseslint from 'typescript-eslint';

/**
 * Which src/ folders each folder may import. Anything not listed is forbidden, which keeps the
 * arrows one way: core ← config ← security ← providers ← storage ← registry/governance ←
 * workflow ← orchestrator ← http ← cli/app.
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
  cli: ['core', 'config', 'security', 'providers', 'storage', 'registry', 'governance', 'workflow', 'orchestrator', 'http', 'app'],
  app: ['core', 'config', 'security', 'providers', 'storage', 'registry', 'governance', 'workflow', 'orchestrator', 'http'],
};
const FOLDERS = Object.keys(LAYERS);

/** Vendor SDKs: only src/providers may import them. */
const VENDOR_PACKAGES = ['@ai-sdk/*', 'ai', '@openrouter/ai-sdk-provider', 'ollama-ai-provider-v2'];

const layerZones = FOLDERS.map((folder) => ({
  target: `./src/${folder}`,
  from: FOLDERS.filter((other) => other !== folder && !LAYERS[folder].includes(other)).map((other) => `./src/${other}`),
  message: `src/${folder} may import only: ${LAYERS[folder].join(', ') || 'nothing of ours'}.`,
})).filter((zone) => zone.from.length > 0);

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'coverage/**', '.ensemble/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })],
    },
    rules: {
      'import-x/no-cycle': ['error', { maxDepth: 10 }],
      'import-x/no-restricted-paths': ['error', { zones: layerZones }],
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/providers/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: VENDOR_PACKAGES, message: 'Vendor packages are imported only inside src/providers.' }] },
      ],
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'error' },
  },
  {
    files: ['bin/**/*.js', 'eslint.config.js'],
    languageOptions: { globals: { process: 'readonly' } },
  },
);

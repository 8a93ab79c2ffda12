#!/usr/bin/env node
'use strict';
// Starts the demo app (dist/example, built by `npm run build`) in the
// foreground with egg-scripts, in production mode. SIGINT/SIGTERM stop the master, the agent and every worker.
// Environment: PORT (7001), EGG_WORKERS (2), SONOFS_ROOT (./data),
// SONOFS_GROUP (0), SONOFS_SERVER (0), SONOFS_LOG_DIR (./logs), EGG_TITLE
// (process title, egg-sonofs-demo-<port>); SONOFS_BUILD_DIR picks another build (tests).
// The demo's own (example/config/config.default.ts, README): SONOFS_DEMO_USERS,
// SONOFS_DEMO_TOKEN_TTL, SONOFS_DEMO_SECRET, SONOFS_FUPLOAD_TOKEN, SONOFS_FUPLOAD_NOTIFY_URL.
const { spawn } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..');
const port = process.env.PORT || '7001';
const workers = process.env.EGG_WORKERS || '2';
const title = process.env.EGG_TITLE || `egg-sonofs-demo-${port}`;
const build = path.resolve(process.env.SONOFS_BUILD_DIR || path.join(root, 'dist'));

const child = spawn(process.execPath, [
  require.resolve('egg-scripts/bin/egg-scripts.js'),
  'start',
  `--port=${port}`,
  `--workers=${workers}`,
  `--title=${title}`,
  `--framework=${path.join(root, 'node_modules', 'egg')}`,
  path.join(build, 'example'),
], {
  stdio: 'inherit',
  env: {
    ...process.env,
    // Relative paths are the caller's, not the build directory's (which a rebuild wipes).
    SONOFS_ROOT: path.resolve(process.env.SONOFS_ROOT || 'data'),
    SONOFS_LOG_DIR: path.resolve(process.env.SONOFS_LOG_DIR || 'logs'),
  },
});

for (const signal of [ 'SIGINT', 'SIGTERM', 'SIGQUIT' ]) {
  process.on(signal, () => child.kill(signal));
}
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));

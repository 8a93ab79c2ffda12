'use strict';
// Settings come from the environment so the benchmark can put data, logs and
// run files in its temp dir: PLAIN_EGG_DATA (data dir), PLAIN_EGG_LOG_DIR,
// PLAIN_EGG_DISCARD (1: parse uploads and store nothing, the egg-floor peer).
const path = require('node:path');

module.exports = appInfo => {
  const logDir = path.resolve(process.env.PLAIN_EGG_LOG_DIR || path.join(appInfo.baseDir, 'logs'));
  return {
    keys: process.env.EGG_KEYS || 'plain-egg-bench-change-me',
    plainEgg: {
      dataDir: path.resolve(process.env.PLAIN_EGG_DATA || path.join(appInfo.baseDir, 'data')),
      // PLAIN_EGG_DISCARD=1: the egg-floor peer (uploads parsed, not stored)
      discard: process.env.PLAIN_EGG_DISCARD === '1',
    },
    // egg-multipart's defaults refuse files over 10 MB and extensions not on its whitelist
    multipart: { mode: 'stream', fileSize: '10gb', whitelist: () => true },
    // an API called without a browser session: egg-security's CSRF check would answer 403
    security: { csrf: { ignore: [ '/file', '/files' ] } },
    // the tus bound's bodies are not parsed
    bodyParser: { ignore: [ '/files' ] },
    logger: { dir: logDir },
    rundir: path.join(logDir, 'run'),
  };
};

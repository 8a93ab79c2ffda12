import path from 'node:path';

export default {
  // An app that installed the package would write `package: 'egg-sonofs'`.
  sonofs: {
    enable: true,
    path: path.join(__dirname, '../..'),
  },
  // Cluster mode only: without SONOFS_REDIS_URL egg-redis is not loaded at all (no
  // network). egg-redis comes with egg-sonofs; egg-core finds it from the app's directory.
  ...(process.env.SONOFS_REDIS_URL ? { redis: { enable: true, package: 'egg-redis' } } : {}),
};

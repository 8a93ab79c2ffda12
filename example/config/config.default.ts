import path from 'node:path';
import type { EggAppInfo } from 'egg';

const int = (v: string | undefined, fallback: number) => (v === undefined || v === '' ? fallback : Number(v));

export default (appInfo: EggAppInfo) => ({
  keys: process.env.EGG_KEYS || 'sonofs-demo-change-me',
  middleware: [ 'servedBy' ],
  sonofs: {
    root: path.resolve(process.env.SONOFS_ROOT || 'data'),
    group: int(process.env.SONOFS_GROUP, 0),
    server: int(process.env.SONOFS_SERVER, 0),
    ...(process.env.SONOFS_EXTENT_MIB ? { extentSize: int(process.env.SONOFS_EXTENT_MIB, 64) * 1024 * 1024 } : {}),
    // SONOFS_FSYNC=0 answers before data reaches the disk (faster, not power-loss safe)
    fsync: process.env.SONOFS_FSYNC !== '0',
  },
  // The demo's own API; the plugin exempts exactly its own routes itself.
  security: {
    csrf: { ignore: [ '/demo' ] },
  },
  logger: {
    dir: process.env.SONOFS_LOG_DIR || path.join(appInfo.baseDir, 'logs'),
  },
  rundir: path.join(appInfo.baseDir, 'run'),
});

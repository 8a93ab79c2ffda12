import { CliConfig } from '../config';
import { CliError, EXIT } from '../errors';
import { bytes, printJson, table } from '../format';
import { httpError, send } from '../http';
import type { NodeStatus } from '../../lib/node-status';

/** GET <prefix>/status: the engine's NodeStatus plus the answering worker (a type only: the CLI loads no engine code). */
type StatusBody = NodeStatus & { version: string; worker: { pid: number; uptime: number } };

function uptime(s: number): string {
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} days`;
}

/** `sonofs status`: the node's health and space; exit 5 when the node reports a failed check. */
export async function status(cfg: CliConfig, opts: { json?: boolean }): Promise<void> {
  const res = await send(cfg, 'GET', `${cfg.prefix}/status`, 'status');
  // 503 still carries the report
  if (!res.ok && res.status !== 503) throw await httpError('status', res, cfg);
  let s: StatusBody;
  try {
    s = await res.json() as StatusBody;
    if (!Array.isArray(s.checks)) throw new Error('no checks');
  } catch (err) {
    throw new CliError(EXIT.UNAVAILABLE, `status: the answer is not a sonofs status report (HTTP ${res.status})`, err);
  }
  if (opts.json) {
    printJson(s);
  } else {
    const share = (n: number) => (s.disk.total ? ` (${(n / s.disk.total * 100).toFixed(1)}%)` : '');
    process.stdout.write(table([
      [ 'server', cfg.base.href ],
      [ 'status', s.status.toUpperCase() ],
      [ 'node', `group ${s.group}, server ${s.server}` ],
      [ 'version', `egg-sonofs ${s.version}` ],
      [ 'worker', `pid ${s.worker.pid}, up ${uptime(s.worker.uptime)}` ],
      [ 'root', s.root ],
      [ 'disk', `${bytes(s.disk.available)} available${share(s.disk.available)} of ${bytes(s.disk.total)}` ],
      [ 'bundles', `${s.bundles.count}, ${bytes(s.bundles.allocated)} on disk (${bytes(s.bundles.length)} reserved, sparse)` ],
      [ 'limits', `file ${bytes(s.limits.maxFileSize)}, extent ${bytes(s.limits.extentSize)}, bundle ${bytes(s.limits.bundleSize)}` ],
      [ 'fsync', s.fsync ? 'on' : 'off (not safe against power loss)' ],
    ]));
    process.stdout.write(`\n${table(s.checks.map(c => [ c.name, c.level.toUpperCase(), c.detail ]), [ 'CHECK', 'STATE', 'DETAIL' ])}`);
  }
  if (s.status === 'fail') {
    const failed = s.checks.filter(c => c.level === 'fail').map(c => `${c.name}: ${c.detail}`).join('; ');
    throw new CliError(EXIT.UNAVAILABLE, `status: the node cannot store files (${failed})`);
  }
}

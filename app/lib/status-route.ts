import type { Application } from 'egg';
import { nodeStatus } from '../../lib';
import { answeringErrorsWith, sendError } from './http-errors';

const { version } = require('../../package.json') as { version: string };

/**
 * GET <prefix>/status: the node's health and space as JSON (the `sonofs
 * status` command reads it). 503 when a check fails, so a load balancer can
 * use it too; the caller must pass `authenticate`, as on every route.
 */
export function registerStatusRoute(app: Application, prefix: string): void {
  const started = Date.now();
  app.router.get(`${prefix}/status`, answeringErrorsWith(sendError)(async ctx => {
    await ctx.sonofs.user();
    const status = await nodeStatus(app.sonofs, { bundleSize: app.config.sonofs.bundleSize });
    ctx.status = status.status === 'fail' ? 503 : 200;
    ctx.body = { ...status, version, worker: { pid: process.pid, uptime: Math.round((Date.now() - started) / 1000) } };
  }));
}

'use strict';
// Starts a server as a child process, waits for its ready line and stops it again.
const { spawn } = require('node:child_process');
const readline = require('node:readline');
const { onCleanup } = require('./cleanup');

const OUTPUT_LINES_KEPT = Number(process.env.BENCH_OUTPUT_LINES) || 40;
const live = new Set();

/**
 * Spawns `command args` and resolves once a line of its stdout/stderr matches `ready`
 * (a RegExp or a substring). Rejects, after killing it, on timeout or early exit.
 * Resolves to { name, pid, output, stop() }; stop() is also run on SIGINT/SIGTERM.
 */
async function startServer({ name, command = process.execPath, args = [], env = {}, cwd, ready, timeoutMs = 60_000, echo = false }) {
  // detached: the server leads its own process group, so stop() can reach its
  // grandchildren too (egg master, agent, workers)
  const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: [ 'ignore', 'pipe', 'pipe' ], detached: true });
  const server = { name, pid: child.pid, output: [], exited: false };
  const exited = new Promise(resolve => child.once('exit', (code, signal) => {
    server.exited = true;
    server.exitStatus = signal || code;
    resolve();
  }));
  server.stop = onCleanup(() => stopProcessGroup(server, exited));
  live.add(server);

  const isReady = typeof ready === 'string' ? line => line.includes(ready) : line => ready.test(line);
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} printed no ready line within ${timeoutMs} ms`)), timeoutMs);
    const settle = fn => arg => { clearTimeout(timer); fn(arg); };
    const onReady = settle(resolve);
    // every line is read even after ready, or a full pipe would block the server
    for (const stream of [ child.stdout, child.stderr ]) {
      readline.createInterface({ input: stream }).on('line', line => {
        server.output.push(line);
        if (server.output.length > OUTPUT_LINES_KEPT) server.output.shift();
        if (echo) console.log(`  [${name}] ${line}`);
        if (isReady(line)) onReady();
      });
    }
    child.once('error', settle(reject));
    exited.then(settle(() => reject(new Error(`${name} exited (${server.exitStatus}) before it was ready`))));
  }).catch(async err => {
    await server.stop();
    err.message += `\n--- last output of ${name} ---\n${server.output.join('\n')}`;
    throw err;
  });
  return server;
}

/** SIGTERM to the leader (it stops its own children), SIGKILL to the whole group after graceMs. */
async function stopProcessGroup(server, exited, graceMs = 30_000) {
  if (!server.exited) {
    signalPid(server.pid, 'SIGTERM');
    const timedOut = await Promise.race([ exited.then(() => false), delay(graceMs).then(() => true) ]);
    if (timedOut) console.error(`${server.name} did not stop within ${graceMs} ms; killing its process group`);
  }
  signalPid(-server.pid, 'SIGKILL'); // stragglers the leader left behind, if any
  await exited;
  live.delete(server);
}

function signalPid(pid, signal) {
  try {
    process.kill(pid, signal);
  } catch (err) {
    if (err.code !== 'ESRCH') throw err; // ESRCH: already gone
  }
}

const delay = ms => new Promise(resolve => setTimeout(resolve, ms).unref());

// last resort when we exit without cleaning up (uncaught error, process.exit)
process.on('exit', () => {
  for (const server of live) signalPid(-server.pid, 'SIGKILL');
});

module.exports = { startServer };

'use strict';
// The machine, free ports, temp dirs, random files and command-line flags.
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { onCleanup } = require('./cleanup');

function machineInfo() {
  const cpus = os.cpus();
  return {
    cores: cpus.length,
    cpu: cpus[0] ? cpus[0].model.trim() : 'unknown',
    memoryGiB: Math.round(os.totalmem() / 1024 ** 3),
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
  };
}

/** A TCP port that was free a moment ago (the OS picks it). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer().once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A new directory under os.tmpdir(), deleted by remove() or at cleanup. */
function tempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const remove = onCleanup(() => fs.promises.rm(dir, { recursive: true, force: true }));
  return { dir, remove };
}

/** Writes `size` random bytes to `file` in 1 MiB chunks; resolves to their sha1 (hex). */
async function writeRandomFile(file, size) {
  const chunk = Buffer.alloc(1024 * 1024);
  const sha1 = crypto.createHash('sha1');
  const fd = await fs.promises.open(file, 'w');
  try {
    for (let written = 0; written < size; written += chunk.length) {
      const part = chunk.subarray(0, Math.min(chunk.length, size - written));
      crypto.randomFillSync(part);
      sha1.update(part);
      await fd.write(part);
    }
  } finally {
    await fd.close();
  }
  return sha1.digest('hex');
}

const sha1Hex = data => crypto.createHash('sha1').update(data).digest('hex');

/**
 * Parses --name value and --name=value against `defaults` (numbers stay
 * numbers); unknown flags are an error so typos do not pass silently.
 */
function parseFlags(argv, defaults) {
  const flags = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const match = /^--([\w-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!match || !(match[1] in defaults)) throw new Error(`unknown argument ${argv[i]}; flags: ${Object.keys(defaults).map(k => `--${k}`).join(' ')}`);
    const raw = match[2] ?? argv[++i];
    if (raw === undefined) throw new Error(`--${match[1]} needs a value`);
    const value = typeof defaults[match[1]] === 'number' ? Number(raw) : raw;
    if (Number.isNaN(value)) throw new Error(`--${match[1]} wants a number, got ${raw}`);
    flags[match[1]] = value;
  }
  return flags;
}

module.exports = { machineInfo, freePort, tempDir, writeRandomFile, sha1Hex, parseFlags };

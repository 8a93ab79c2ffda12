'use strict';
// The clients of bench/faces.js, each uploading one file to the demo as its user
// would: tus-js-client in this process, the package's command line and curl as
// child processes. Each resolves to { transferS, prepS?, detail } once the store
// has answered for the whole file, after checking the answer's size and sha1.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { performance } = require('node:perf_hooks');
const tus = require('tus-js-client');
const { ROOT } = require('./peers');

/**
 * tus-js-client in Node with a file stream (it reads the file by ranges, never
 * whole). `pageChunkSize`: set as the page sets it (creation, then PATCHes of that
 * size; a file of one chunk rides on the creation); undefined: tus-js-client's
 * defaults (creation, then the whole file in one PATCH). Resolves once the last
 * request is answered.
 */
function tusJsClient(endpoint, input, pageChunkSize) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let requests = 0;
    const upload = new tus.Upload(fs.createReadStream(input.file), {
      endpoint,
      uploadSize: input.size,
      ...(pageChunkSize ? { chunkSize: pageChunkSize, uploadDataDuringCreation: input.size <= pageChunkSize } : {}),
      retryDelays: null, // a failed request fails the run
      metadata: { filename: path.basename(input.file), filetype: 'application/octet-stream' },
      storeFingerprintForResuming: false,
      onBeforeRequest: () => { requests++; },
      onError: reject,
      onSuccess: ({ lastResponse }) => {
        const transferS = (performance.now() - started) / 1000;
        const sha1 = lastResponse.getHeader('Sonofs-File-Hash');
        if (sha1 !== input.sha1) reject(new Error(`the store answered sha1 ${sha1}, the file's is ${input.sha1}`));
        else resolve({ transferS, detail: { requests, fileId: lastResponse.getHeader('Sonofs-File-Id') } });
      },
    });
    upload.start();
  });
}

/** Runs `command args` to its end; resolves to { code, signal, stdout, stderr, seconds } (spawn to exit). */
function runCommand(command, args, env) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { env, stdio: [ 'ignore', 'pipe', 'pipe' ] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', d => { stdout += d; });
    child.stderr.on('data', d => { stderr += d; });
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr, seconds: (performance.now() - started) / 1000 }));
  });
}

/**
 * The command line laid out as the package installs it (bin/sonofs beside the
 * build's cli/ and package.json) in `dir`, with an environment of its own: no
 * SONOFS_* of the caller's shell, its resume file under `dir`.
 */
function installCli(buildDir, dir) {
  fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'bin', 'sonofs'), path.join(dir, 'bin', 'sonofs'));
  fs.symlinkSync(path.join(buildDir, 'cli'), path.join(dir, 'cli'), 'dir');
  const env = { ...process.env, XDG_CONFIG_HOME: path.join(dir, 'config') };
  for (const key of Object.keys(env)) if (/^(NODE_OPTIONS|SONOFS_(URL|TOKEN|PREFIX|TUS_PATH))$/.test(key)) delete env[key];
  return { bin: path.join(dir, 'bin', 'sonofs'), env };
}

/**
 * `sonofs put FILE --url BASE --json`: it hashes the file (sha1, for 秒传), asks the
 * store, then sends it over tus. Its JSON line has `ms`, the time from the end of
 * that question to the stored answer: the rest of the wall time is node's start,
 * the sha1 pass, the question and the exit.
 */
async function cliPut(cli, baseUrl, input) {
  const run = await runCommand(process.execPath, [ cli.bin, 'put', input.file, '--url', baseUrl, '--json' ], cli.env);
  if (run.code !== 0) throw new Error(`sonofs put exited with ${run.code ?? run.signal}: ${run.stderr.trim() || run.stdout.trim()}`);
  const line = JSON.parse(run.stdout.trim().split('\n').pop());
  if (line.sha1 !== input.sha1 || line.size !== input.size || line.instant) throw new Error(`sonofs put answered ${run.stdout.trim()}`);
  return { wallS: run.seconds, transferS: line.ms / 1000, prepS: run.seconds - line.ms / 1000, detail: { fileId: line.fileId } };
}

/** `sonofs --version`: what starting the command costs, to read cliPut's split against. */
async function cliStartSeconds(cli) {
  const run = await runCommand(process.execPath, [ cli.bin, '--version' ], cli.env);
  if (run.code !== 0) throw new Error(`sonofs --version exited with ${run.code}: ${run.stderr}`);
  return run.seconds;
}

/** `curl -F file=@FILE BASE/file/upload`, asking for the JSON answer (a form gets a redirect). */
async function curlPost(baseUrl, prefix, input) {
  const run = await runCommand('curl', [ '-sS', '--fail-with-body', '-H', 'Accept: application/json', '-F', `file=@${input.file}`, `${baseUrl}${prefix}/upload` ], process.env);
  if (run.code !== 0) throw new Error(`curl exited with ${run.code ?? run.signal}: ${run.stderr.trim()} ${run.stdout.slice(0, 300)}`);
  const { data } = JSON.parse(run.stdout);
  if (data.FileSha1 !== input.sha1 || data.FileSize !== input.size) throw new Error(`the store answered ${run.stdout.slice(0, 300)}`);
  return { wallS: run.seconds, transferS: run.seconds, detail: { fileId: data.FileId } };
}

module.exports = { tusJsClient, installCli, cliPut, cliStartSeconds, curlPost };

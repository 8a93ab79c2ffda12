'use strict';
// A minimal promise-based HTTP client on node:http.
const crypto = require('node:crypto');
const http = require('node:http');
const { performance } = require('node:perf_hooks');
const { pipeline } = require('node:stream');

/** A keep-alive agent with one socket per request in flight. */
function keepAliveAgent(concurrency) {
  return new http.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
}

/**
 * Sends one request; `body` is a Buffer, a Readable or nothing.
 * Resolves to { status, headers, body: Buffer } whatever the status.
 */
function request({ agent, host = '127.0.0.1', port, method = 'GET', path, headers = {}, body }) {
  return new Promise((resolve, reject) => {
    const req = http.request({ agent, host, port, method, path, headers }, res => {
      const chunks = [];
      res.on('data', chunk => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body === undefined || Buffer.isBuffer(body)) {
      req.end(body);
    } else {
      // the request error above already rejects; an error of the body stream also destroys req
      pipeline(body, req, err => err && reject(err));
    }
  });
}

/**
 * A GET whose answer is streamed through sha1 and counted, never held in
 * memory (for big downloads). Resolves to { status, headers, bytes, sha1, seconds }
 * (seconds: request start to last byte).
 */
function download({ agent, host = '127.0.0.1', port, path, headers = {} }) {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const req = http.request({ agent, host, port, method: 'GET', path, headers }, res => {
      const hash = crypto.createHash('sha1');
      let bytes = 0;
      res.on('data', chunk => {
        hash.update(chunk);
        bytes += chunk.length;
      });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, bytes, sha1: hash.digest('hex'), seconds: (performance.now() - start) / 1000 }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Parses a JSON answer, or throws an error that shows status and body. */
function expectJson(res, expectedStatus = 200) {
  const text = res.body.toString();
  if (res.status !== expectedStatus) throw new Error(`HTTP ${res.status}: ${text.slice(0, 300)}`);
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`HTTP ${res.status} with a body that is not JSON: ${text.slice(0, 300)}`);
  }
}

module.exports = { keepAliveAgent, request, download, expectJson };

'use strict';
// A minimal promise-based HTTP client on node:http.
const http = require('node:http');
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

module.exports = { keepAliveAgent, request, expectJson };

#!/usr/bin/env node
'use strict';
// The ceiling: a raw node:http server that writes each request body, as it
// arrives (multipart framing included, nothing parsed), to a new file.
// usage: node bench/servers/raw.js [port] [dir]   or env PORT, RAW_DIR
// Prints "raw server started on http://127.0.0.1:<port>" when listening.
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { pipeline } = require('node:stream');

const port = Number(process.env.PORT || process.argv[2] || 7002);
const dir = path.resolve(process.env.RAW_DIR || process.argv[3] || 'raw-data');
fs.mkdirSync(dir, { recursive: true });

let fileCount = 0;

function sendJson(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

const server = http.createServer((req, res) => {
  const file = path.join(dir, String(++fileCount));
  const out = fs.createWriteStream(file);
  pipeline(req, out, err => {
    if (err) return sendJson(res, 500, { code: 'WRITE_FAILED', msg: err.message });
    sendJson(res, 200, { code: 0, msg: 'OK', data: { file: path.basename(file), size: out.bytesWritten } });
  });
});
server.requestTimeout = 0; // no limit: a 1 GiB upload may take a while
server.listen(port, '127.0.0.1', () => console.log(`raw server started on http://127.0.0.1:${port} writing to ${dir}`));

for (const signal of [ 'SIGINT', 'SIGTERM' ]) process.on(signal, () => server.close(() => process.exit(0)).closeAllConnections());

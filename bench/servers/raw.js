#!/usr/bin/env node
'use strict';
// The ceiling: a raw node:http server that writes each request body, as it
// arrives (multipart framing included, nothing parsed), to a new file, and
// serves a stored file back on GET /file/download?fileid=<name the upload answered>
// (the stored body as it came, framing included) with fs.createReadStream.
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
  if (req.method === 'GET') return download(req, res);
  const file = path.join(dir, String(++fileCount));
  const out = fs.createWriteStream(file);
  pipeline(req, out, err => {
    if (err) return sendJson(res, 500, { code: 'WRITE_FAILED', msg: err.message });
    sendJson(res, 200, { code: 0, msg: 'OK', data: { file: path.basename(file), size: out.bytesWritten } });
  });
});

/** Streams a stored body back; names are the counter values given out above. */
function download(req, res) {
  const name = new URL(req.url, 'http://raw').searchParams.get('fileid') || '';
  if (!/^[1-9]\d*$/.test(name)) return sendJson(res, 400, { code: 'INVALID_FILE_ID', msg: 'fileid must be a stored file\'s number' });
  const file = path.join(dir, name);
  fs.stat(file, (err, st) => {
    if (err) return sendJson(res, err.code === 'ENOENT' ? 404 : 500, { code: 'FILE_NOT_FOUND', msg: err.message });
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': st.size });
    // an error after the header went out can only cut the connection
    pipeline(fs.createReadStream(file), res, () => {});
  });
}

server.requestTimeout = 0; // no limit: a 1 GiB upload may take a while
server.listen(port, '127.0.0.1', () => console.log(`raw server started on http://127.0.0.1:${port} writing to ${dir}`));

for (const signal of [ 'SIGINT', 'SIGTERM' ]) process.on(signal, () => server.close(() => process.exit(0)).closeAllConnections());

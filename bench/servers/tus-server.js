#!/usr/bin/env node
'use strict';
// The tus peer: @tus/server with @tus/file-store (npm), as their README sets
// them up, on plain node:http at /files/. One process, like their examples.
// usage: PORT=7003 TUS_DIR=./tus-data node bench/servers/tus-server.js
// Prints "tus server started on http://127.0.0.1:<port>" when listening.
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { Server } = require('@tus/server');
const { FileStore } = require('@tus/file-store');

const port = Number(process.env.PORT || 7003);
const dir = path.resolve(process.env.TUS_DIR || 'tus-data');
fs.mkdirSync(dir, { recursive: true });

const tus = new Server({ path: '/files', datastore: new FileStore({ directory: dir }) });
http.createServer((req, res) => tus.handle(req, res)).listen(port, '127.0.0.1', () => {
  console.log(`tus server started on http://127.0.0.1:${port}`);
});

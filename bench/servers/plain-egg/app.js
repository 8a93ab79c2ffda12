'use strict';
// Creates the data dirs once at start: files/<id> holds the bytes, meta/<id>.json the answer.
const fs = require('node:fs');
const path = require('node:path');

module.exports = class {
  constructor(app) {
    this.app = app;
  }

  async didLoad() {
    const { dataDir } = this.app.config.plainEgg;
    for (const sub of [ 'files', 'meta' ]) await fs.promises.mkdir(path.join(dataDir, sub), { recursive: true });
  }
};

import path from 'node:path';

export default {
  // An app that installed the package would write `package: 'egg-sonofs'`.
  sonofs: {
    enable: true,
    path: path.join(__dirname, '../..'),
  },
};

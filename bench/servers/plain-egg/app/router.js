'use strict';

module.exports = app => {
  const { router, controller } = app;
  router.post('/file/upload', controller.file.upload);
  router.get('/file/download', controller.file.download);
  // the egg-floor bound of bench/tus.js (stores nothing)
  if (app.config.plainEgg.discard) {
    router.post('/files', controller.tus.create);
    router.patch('/files/:id', controller.tus.patch);
  }
};

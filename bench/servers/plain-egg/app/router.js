'use strict';

module.exports = app => {
  const { router, controller } = app;
  router.post('/file/upload', controller.file.upload);
  router.get('/file/download', controller.file.download);
};

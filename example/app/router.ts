import type { Application } from 'egg';

export default (app: Application) => {
  const { router, controller } = app;
  router.get('/', ctx => ctx.redirect('/file/upload'));
  // The API used from an app's own controller, as in sonofs's README.
  router.post('/demo/upload', controller.demo.upload);
  router.get('/demo/file', controller.demo.file);
};

import type { Application } from 'egg';

export default (app: Application) => {
  const { router, controller } = app;
  router.get('/', ctx => ctx.redirect('/file/upload'));
  // The API used from an app's own controller, as in sonofs's README.
  router.post('/demo/upload', controller.demo.upload);
  router.get('/demo/file', controller.demo.file);
  // The course's users; their token is what config.sonofs.authenticate reads.
  router.post('/user/signup', controller.user.signup);
  router.post('/user/signin', controller.user.signin);
  router.get('/user/signup', controller.user.postOnly);
  router.get('/user/signin', controller.user.postOnly);
  router.get('/user/info', controller.user.info);
  router.post('/user/info', controller.user.info);
};

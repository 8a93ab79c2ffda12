import { Controller } from 'egg';
import { MethodNotAllowedError, UnauthorizedError } from '../../../lib';
import { demoUsers, param, signedInUser } from '../lib/auth';
import { courseAnswer, courseTime } from '../lib/course-answer';

/**
 * The course's /user/signup, /user/signin and /user/info: its form fields
 * (query, urlencoded or JSON), its answers, with passwords hashed by scrypt
 * and tokens that expire (example/lib/users.ts).
 */
export default class UserController extends Controller {
  /** POST /user/signup: username, password → `{"code":0,"msg":"Signup succeeded","data":{Username, SignupAt}}`. */
  async signup() {
    const { ctx } = this;
    await courseAnswer(ctx, async () => {
      const user = await demoUsers(ctx.app).signup(param(ctx, 'username'), param(ctx, 'password'));
      return { msg: 'Signup succeeded', data: { Username: user.name, SignupAt: courseTime(user.signupAt) } };
    });
  }

  /** POST /user/signin: username, password → `{"code":0,"msg":"OK","data":{Location, Username, Token, …}}`. */
  async signin() {
    const { ctx } = this;
    await courseAnswer(ctx, async () => {
      const { user, token, expiresAt } = await demoUsers(ctx.app).signin(param(ctx, 'username'), param(ctx, 'password'));
      return {
        msg: 'OK',
        data: {
          // where the course's page goes next: here the demo's upload page
          Location: '/file/upload',
          Username: user.name,
          Token: token,
          ExpiresAt: courseTime(expiresAt),
          ExpiresIn: Math.floor((expiresAt - Date.now()) / 1000),
        },
      };
    });
  }

  /** GET or POST /user/info with the token → the course's user record. */
  async info() {
    const { ctx } = this;
    await courseAnswer(ctx, async () => {
      const user = signedInUser(ctx);
      if (!user) throw new UnauthorizedError('sign in first: send Authorization: Bearer <Token>, or username and token');
      return {
        msg: 'OK',
        data: {
          Username: user.name,
          Email: '',
          Phone: '',
          SignupAt: courseTime(user.signupAt),
          LastActiveAt: courseTime(user.lastActiveAt),
          Status: 0,
        },
      };
    });
  }

  /** GET /user/signup and /user/signin: the course served its HTML forms here; the demo has none. */
  async postOnly() {
    const { ctx } = this;
    ctx.set('Allow', 'POST');
    await courseAnswer(ctx, async () => {
      throw new MethodNotAllowedError(ctx.method, [ 'POST' ]);
    });
  }
}

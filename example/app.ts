import type { Application, IBoot } from 'egg';
import { DemoUsers } from './lib/users';
import { demoUsersConfig, setDemoUsers } from './app/lib/auth';

/** Opens the demo's user accounts in each worker (config.sonofs.authenticate reads them). */
export default class DemoAppBoot implements IBoot {
  private users: DemoUsers | undefined;

  constructor(private readonly app: Application) {}

  async didLoad(): Promise<void> {
    const cfg = demoUsersConfig(this.app);
    this.users = await DemoUsers.open(
      { dir: cfg.dir, tokenTtlMs: cfg.tokenTtl, secret: cfg.secret, passwordMinLength: cfg.passwordMinLength },
      err => this.app.logger.warn('[demo] could not record a user\'s last activity: %s', (err as Error)?.message ?? err),
    );
    setDemoUsers(this.app, this.users);
  }

  async beforeClose(): Promise<void> {
    await this.users?.close();
  }
}

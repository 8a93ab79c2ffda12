import type { Api } from './api';
import { auth } from './auth';
import { announce, byId, h } from './dom';

/**
 * The header's account corner. With `page.signinUrl` set: a small sign-in
 * form (username, password) while no token is stored, "Signed in as ..."
 * with Sign out after. Without it, only a stored token shows (from
 * `?token=`), with a way to forget it.
 */
export function setUpAccount(api: Api, signinUrl: string | null): void {
  const box = byId('account');

  const draw = () => {
    const token = auth.token();
    if (token) {
      const who = auth.username();
      box.replaceChildren(
        h('span', {}, who ? `Signed in as ${who}` : 'Using a saved token'),
        h('button', { type: 'button', onclick: () => { auth.clear(); announce('Signed out'); } }, who ? 'Sign out' : 'Forget token'));
      box.hidden = false;
      return;
    }
    if (!signinUrl) {
      box.replaceChildren();
      box.hidden = true;
      return;
    }
    const user = h('input', { id: 'signin-username', name: 'username', autocomplete: 'username', required: true });
    const pass = h('input', { id: 'signin-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
    const error = h('p', { className: 'row-error', role: 'alert' });
    const form = h('form', { className: 'signin', 'aria-label': 'Sign in' },
      h('span', { className: 'field' }, h('label', { for: 'signin-username' }, 'Username'), user),
      h('span', { className: 'field' }, h('label', { for: 'signin-password' }, 'Password'), pass),
      h('button', { type: 'submit' }, 'Sign in'),
      error);
    form.addEventListener('submit', async e => {
      e.preventDefault();
      error.textContent = '';
      try {
        const { token, username } = await api.signIn(user.value, pass.value);
        auth.set(token, username);
        announce(`Signed in as ${username}`);
      } catch (err) {
        error.textContent = `Sign-in failed: ${(err as Error).message}`;
      }
    });
    box.replaceChildren(form);
    box.hidden = false;
  };

  auth.onChange(draw);
  draw();
}

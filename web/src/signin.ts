// Sign in by pasting an API key; the key is checked with one request before it is kept.
import { listConcepts } from '@repic/client';

import { call, client, signIn, signOut } from './api';
import { h } from './dom';

export function renderSignIn(main: HTMLElement, notice: string | null, done: () => void): void {
  const key = h('input', {
    type: 'password',
    id: 'api-key',
    name: 'api-key',
    autocomplete: 'off',
    required: true,
    spellcheck: 'false',
    'aria-describedby': 'key-help',
  });
  const message = h('p', { class: 'error', role: 'alert', id: 'sign-in-error' }, notice ?? '');
  message.hidden = !notice;
  const form = h(
    'form',
    { class: 'panel narrow', 'aria-labelledby': 'sign-in-title' },
    h('h1', { id: 'sign-in-title' }, 'Sign in to RePIC'),
    h('p', { class: 'lead' }, 'Your personal concepts, and captions that call them by name.'),
    h('label', { for: 'api-key' }, 'API key'),
    key,
    h(
      'p',
      { id: 'key-help', class: 'hint' },
      'Paste the key that `repic users create` printed. It stays in this tab only.',
    ),
    message,
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    signIn(key.value.trim());
    try {
      await call(listConcepts({ client, query: { limit: 1 } }));
      done();
    } catch (error) {
      // A 401 already re-rendered this view with the refusal; anything else is shown here.
      if (!document.body.contains(form)) return;
      signOut();
      message.textContent = (error as Error).message;
      message.hidden = false;
    }
  });
  main.append(form);
  key.focus();
}

// The single-page app: a hash router over four views, behind a sign-in with an API key.
import { signedIn, signOut } from './api';
import { announce, h } from './dom';
import { renderConcept } from './concept';
import { renderGallery } from './gallery';
import { renderNewConcept } from './new-concept';
import { renderPlayground } from './playground';
import { renderSignIn } from './signin';

const main = document.getElementById('main') as HTMLElement;
const nav = document.getElementById('nav') as HTMLElement;
let notice: string | null = null;

function route(): void {
  const path = window.location.hash.replace(/^#/, '') || '/';
  nav.hidden = !signedIn();
  // Each route renders into its own view: a slower, older render then fills a detached node.
  const view = h('div', { class: 'view' });
  main.replaceChildren(view);
  if (!signedIn()) {
    renderSignIn(view, notice, () => {
      notice = null;
      route();
    });
    return;
  }
  for (const link of nav.querySelectorAll('a')) {
    const current = link.getAttribute('href') === `#${path}`;
    if (current) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const concept = /^\/concepts\/(\d+)$/.exec(path);
  if (concept) void renderConcept(view, Number(concept[1]));
  else if (path === '/new') renderNewConcept(view);
  else if (path === '/playground') void renderPlayground(view);
  else if (path === '/') void renderGallery(view);
  else view.append(h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '#/' }, 'Back to your concepts')));
}

function leave(message: string | null): void {
  signOut();
  notice = message;
  if (window.location.hash && window.location.hash !== '#/') window.location.hash = '#/';
  else route();
  announce(message ?? 'Signed out');
}

document.getElementById('sign-out')?.addEventListener('click', () => leave(null));
window.addEventListener('repic:unauthorized', (event) => {
  const detail = (event as CustomEvent<string>).detail;
  leave(`Your API key was refused: ${detail} Paste a valid key to continue.`);
});
window.addEventListener('hashchange', route);
route();

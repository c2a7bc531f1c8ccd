// Every concept of the user as a card, a page at a time, with a name filter.
import { listConcepts, type ConceptPublic } from '@repic/client';

import { ApiError, call, client } from './api';
import { announce, h, tag } from './dom';
import { photo } from './thumbs';

const PAGE = 24;

function card(concept: ConceptPublic): HTMLElement {
  const first = concept.images[0];
  const count = concept.images.length;
  return h(
    'li',
    { class: 'card' },
    h(
      'a',
      { href: `#/concepts/${concept.id}`, class: 'card-link' },
      h('div', { class: 'thumb' }, first ? photo(concept.id, first.id, `Photo of ${tag(concept.name)}`) : null),
      h(
        'div',
        { class: 'card-body' },
        h('span', { class: 'concept-name' }, tag(concept.name)),
        h(
          'span',
          { class: 'meta' },
          concept.category ? h('span', { class: 'chip' }, concept.category) : null,
          `${count} photo${count === 1 ? '' : 's'}`,
        ),
      ),
    ),
  );
}

export async function renderGallery(main: HTMLElement): Promise<void> {
  const search = h('input', { type: 'search', id: 'filter', placeholder: 'e.g. rex', autocomplete: 'off' });
  const form = h(
    'form',
    { class: 'filter', role: 'search' },
    h('label', { for: 'filter' }, 'Find a concept by name'),
    h('div', { class: 'row' }, search, h('button', { type: 'submit' }, 'Find')),
  );
  const grid = h('ul', { class: 'grid', id: 'gallery', 'aria-label': 'Your concepts' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  main.append(
    h(
      'div',
      { class: 'head' },
      h('h1', {}, 'Your concepts'),
      h('a', { href: '#/new', class: 'button primary' }, 'New concept'),
    ),
    form,
    grid,
    pager,
  );
  let offset = 0;

  async function load(): Promise<void> {
    const name = search.value.trim().replace(/^<|>$/g, '');
    grid.setAttribute('aria-busy', 'true');
    try {
      const page = await call(
        listConcepts({ client, query: { offset, limit: PAGE, name: name || undefined } }),
      );
      grid.replaceChildren(...page.data.map(card));
      if (!page.count) {
        grid.append(
          h(
            'li',
            { class: 'empty' },
            name ? `No concept is named ${tag(name)}.` : 'No concepts yet. ',
            name ? null : h('a', { href: '#/new' }, 'Register your first one'),
          ),
        );
      }
      const last = Math.min(offset + PAGE, page.count);
      const prev = h('button', { type: 'button', disabled: offset === 0 }, 'Previous');
      const next = h('button', { type: 'button', disabled: last >= page.count }, 'Next');
      prev.addEventListener('click', () => {
        offset = Math.max(0, offset - PAGE);
        void load();
      });
      next.addEventListener('click', () => {
        offset += PAGE;
        void load();
      });
      const range = page.count ? `${offset + 1}–${last} of ${page.count}` : '0 concepts';
      pager.replaceChildren(prev, h('span', { class: 'range' }, range), next);
      announce(`Showing ${range}`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return;
      grid.replaceChildren(h('li', { class: 'error', role: 'alert' }, (error as Error).message));
    } finally {
      grid.removeAttribute('aria-busy');
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    offset = 0;
    void load();
  });
  await load();
}

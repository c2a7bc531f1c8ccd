// Registering a concept: a name, its photos, and optionally a category and info.
import { createConcept } from '@repic/client';

import { ApiError, call, client } from './api';
import { dropZone, h } from './dom';

export function renderNewConcept(main: HTMLElement): void {
  let files: File[] = [];
  const name = h('input', { id: 'name', required: true, maxlength: 66, autocomplete: 'off', 'aria-describedby': 'name-help' });
  const category = h('input', { id: 'new-category', maxlength: 64 });
  const info = h('textarea', { id: 'new-info', rows: 3, maxlength: 1000 });
  const chosen = h('ul', { class: 'chosen', 'aria-label': 'Chosen photos' });
  const error = h('p', { class: 'error', role: 'alert' });
  error.hidden = true;
  const drop = dropZone('new-photos', 'Photos (1 to 10)', true, (picked) => {
    files = [...files, ...picked];
    chosen.replaceChildren(...files.map((f) => h('li', {}, f.name)));
  });
  const form = h(
    'form',
    { class: 'panel narrow', 'aria-labelledby': 'new-title' },
    h('h1', { id: 'new-title' }, 'New concept'),
    h('label', { for: 'name' }, 'Name'),
    name,
    h('p', { id: 'name-help', class: 'hint' }, 'How captions will call it: rex is written <rex>.'),
    h('label', { for: 'new-category' }, 'Category (optional)'),
    category,
    h('label', { for: 'new-info' }, 'Info (optional)'),
    info,
    drop,
    chosen,
    error,
    h('button', { type: 'submit', class: 'primary' }, 'Create concept'),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const created = await call(
        createConcept({
          client,
          body: {
            name: name.value.trim(),
            category: category.value.trim() || undefined,
            info: info.value || undefined,
            images: files,
          },
        }),
      );
      window.location.hash = `#/concepts/${created.id}`;
    } catch (failure) {
      if (failure instanceof ApiError && failure.status === 401) return;
      error.textContent = (failure as Error).message;
      error.hidden = false;
    }
  });
  main.append(form);
}

// One concept: its photos (add, delete), its info and category (edit), and deleting it.
import {
  addConceptImages,
  deleteConcept,
  deleteConceptImage,
  getConcept,
  updateConcept,
  type ConceptPublic,
} from '@repic/client';

import { ApiError, call, client } from './api';
import { announce, dropZone, h, tag } from './dom';
import { photo } from './thumbs';
import { uploads } from './upload';

export async function renderConcept(main: HTMLElement, id: number): Promise<void> {
  let concept: ConceptPublic;
  try {
    concept = await call(getConcept({ client, path: { concept_id: id } }));
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return;
    main.append(
      h('h1', {}, 'Concept not found'),
      h('p', { class: 'error', role: 'alert' }, (error as Error).message),
      h('p', {}, h('a', { href: '#/' }, 'Back to your concepts')),
    );
    return;
  }
  const photos = h('ul', { class: 'photos', id: 'photos', 'aria-label': 'Photos' });
  const heading = h('h1', { class: 'concept-name' }, tag(concept.name));
  const count = h('p', { class: 'meta' });
  const about = h('p', { class: 'info', id: 'concept-info' });

  function show(current: ConceptPublic): void {
    concept = current;
    count.textContent = `${current.images.length} of 10 photos · ${current.category ?? 'no category'}`;
    about.textContent = current.info || 'No info yet.';
    photos.replaceChildren(
      ...current.images.map((image, index) => {
        const remove = h(
          'button',
          {
            type: 'button',
            class: 'danger small',
            disabled: current.images.length === 1,
            title: current.images.length === 1 ? 'A concept keeps at least one photo' : undefined,
          },
          `Delete photo ${index + 1}`,
        );
        remove.addEventListener('click', async () => {
          try {
            await call(deleteConceptImage({ client, path: { concept_id: id, image_id: image.id } }));
            show(await call(getConcept({ client, path: { concept_id: id } })));
            announce(`Photo ${index + 1} deleted`);
          } catch (error) {
            announce((error as Error).message);
          }
        });
        return h(
          'li',
          { class: 'photo-card' },
          photo(id, image.id, `Photo ${index + 1} of ${tag(current.name)}`),
          h('span', { class: 'hint' }, `${image.width}×${image.height}`),
          remove,
        );
      }),
    );
  }

  const progress = uploads();
  const drop = dropZone('add-photos', 'Add photos', true, async (files) => {
    const added = await progress.run(files, (file) =>
      call(addConceptImages({ client, path: { concept_id: id }, body: { images: [file] } })),
    );
    if (added) show(await call(getConcept({ client, path: { concept_id: id } })));
  });

  const info = h('textarea', { id: 'info', rows: 4, maxlength: 1000 });
  info.value = concept.info;
  const category = h('input', { id: 'category', type: 'text', maxlength: 64 });
  category.value = concept.category ?? '';
  const saved = h('p', { class: 'hint', role: 'status' });
  const edit = h(
    'form',
    { class: 'panel', 'aria-labelledby': 'details-title' },
    h('h2', { id: 'details-title' }, 'Details'),
    h('label', { for: 'category' }, 'Category'),
    category,
    h('label', { for: 'info' }, 'Info'),
    info,
    h('p', { class: 'hint' }, 'What the model may say about this concept, e.g. "my beagle, loves socks".'),
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, 'Save'), saved),
  );
  edit.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      show(
        await call(
          updateConcept({
            client,
            path: { concept_id: id },
            body: { info: info.value, category: category.value.trim() || null },
          }),
        ),
      );
      saved.textContent = 'Saved';
    } catch (error) {
      saved.textContent = (error as Error).message;
    }
  });

  const confirmDialog = h(
    'dialog',
    { 'aria-labelledby': 'confirm-title' },
    h('h2', { id: 'confirm-title' }, `Delete ${tag(concept.name)}?`),
    h('p', {}, 'Its photos and its place in retrieval are removed. This cannot be undone.'),
  );
  const cancel = h('button', { type: 'button' }, 'Cancel');
  const confirm = h('button', { type: 'button', class: 'danger' }, 'Delete concept');
  confirmDialog.append(h('div', { class: 'row' }, cancel, confirm));
  cancel.addEventListener('click', () => confirmDialog.close());
  confirm.addEventListener('click', async () => {
    try {
      await call(deleteConcept({ client, path: { concept_id: id } }));
      confirmDialog.close();
      announce(`${tag(concept.name)} deleted`);
      window.location.hash = '#/';
    } catch (error) {
      confirmDialog.append(h('p', { class: 'error', role: 'alert' }, (error as Error).message));
    }
  });
  const del = h('button', { type: 'button', class: 'danger' }, 'Delete concept…');
  del.addEventListener('click', () => confirmDialog.showModal());

  main.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/' }, '← All concepts')),
    h('div', { class: 'head' }, h('div', {}, heading, count, about), del),
    h(
      'div',
      { class: 'columns' },
      h('section', { 'aria-labelledby': 'photos-title' }, h('h2', { id: 'photos-title' }, 'Photos'), photos, drop, progress.element),
      edit,
    ),
    confirmDialog,
  );
  show(concept);
}

// Corrections of a kept caption: "wrong name", "missing name", "add this photo to <concept>".
// Each click sends the whole correction so far (the service keeps the latest one).
import { giveCaptionFeedback, teachFromCaption, type ConceptRef } from '@repic/client';

import { ApiError, call, client } from './api';
import { h, tag } from './dom';

export function correctionsPanel(historyId: number, concepts: ConceptRef[], mentioned: ConceptRef[]): HTMLElement {
  const present = new Set<number>();
  const wrong = new Set<number>();
  const status = h('p', { class: 'hint', role: 'status', id: 'correction-status' });
  const choice = h(
    'select',
    { id: 'fix-concept' },
    ...concepts.map((c) => h('option', { value: c.id }, tag(c.name))),
  );
  const wrongButton = h('button', { type: 'button' }, 'Wrong name');
  const missingButton = h('button', { type: 'button' }, 'Missing name');
  const teachButton = h('button', { type: 'button' }, 'Add this photo');
  const selected = (): ConceptRef | undefined => concepts.find((c) => c.id === Number(choice.value));
  const relabel = (): void => {
    const concept = selected();
    teachButton.textContent = concept ? `Add this photo to ${tag(concept.name)}` : 'Add this photo';
  };
  // The first mentioned concept is the likeliest to be wrong: preselect it.
  if (mentioned.length) choice.value = String(mentioned[0].id);
  relabel();
  choice.addEventListener('change', relabel);

  async function report(action: () => Promise<string>): Promise<void> {
    for (const button of [wrongButton, missingButton, teachButton]) button.disabled = true;
    try {
      status.textContent = await action();
    } catch (error) {
      status.textContent = error instanceof ApiError ? error.message : String(error);
    } finally {
      for (const button of [wrongButton, missingButton, teachButton]) button.disabled = false;
    }
  }

  const send = async (): Promise<void> => {
    await call(
      giveCaptionFeedback({
        client,
        path: { caption_id: historyId },
        body: { present: [...present], wrong: [...wrong] },
      }),
    );
  };
  wrongButton.addEventListener('click', () => {
    const concept = selected();
    if (!concept) return;
    void report(async () => {
      present.delete(concept.id);
      wrong.add(concept.id);
      await send();
      return `Noted: ${tag(concept.name)} is not in this photo.`;
    });
  });
  missingButton.addEventListener('click', () => {
    const concept = selected();
    if (!concept) return;
    void report(async () => {
      wrong.delete(concept.id);
      present.add(concept.id);
      await send();
      return `Noted: ${tag(concept.name)} is in this photo.`;
    });
  });
  teachButton.addEventListener('click', () => {
    const concept = selected();
    if (!concept) return;
    void report(async () => {
      await call(teachFromCaption({ client, path: { caption_id: historyId }, body: { concept_id: concept.id } }));
      return `Added this photo to ${tag(concept.name)}: retrieval finds it from now on.`;
    });
  });
  return h(
    'section',
    { class: 'panel corrections', 'aria-labelledby': 'fix-title' },
    h('h2', { id: 'fix-title' }, 'Correct this caption'),
    h('label', { for: 'fix-concept' }, 'Concept'),
    choice,
    h('div', { class: 'row wrap' }, wrongButton, missingButton, teachButton),
    status,
  );
}

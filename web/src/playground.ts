// Caption playground: a photo in, the retrieved concepts' boxes drawn on it, the caption out.
import {
  caption,
  listConcepts,
  retrieve,
  type CaptionPublic,
  type ConceptRef,
  type RetrievalPublic,
} from '@repic/client';

import { ApiError, call, client } from './api';
import { correctionsPanel } from './corrections';
import { dropZone, h, svg, tag } from './dom';
import { photo } from './thumbs';

const COLOURS = ['#e4572e', '#17bebb', '#ffc914', '#76b041', '#8e44ad', '#2e86de', '#ff6f91', '#ff9f1c'];

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The caption as text, each mention of a concept (with or without brackets) a link to it. */
export function highlighted(text: string, mentioned: ConceptRef[]): Node[] {
  if (!mentioned.length) return [document.createTextNode(text)];
  const byName = new Map(mentioned.map((c) => [c.name.toLowerCase(), c]));
  const names = [...byName.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp);
  const pattern = new RegExp(`<?\\b(${names.join('|')})\\b>?`, 'gi');
  const nodes: Node[] = [];
  let at = 0;
  for (const match of text.matchAll(pattern)) {
    const concept = byName.get(match[1].toLowerCase());
    if (!concept || match.index === undefined) continue;
    nodes.push(document.createTextNode(text.slice(at, match.index)));
    nodes.push(h('a', { href: `#/concepts/${concept.id}`, class: 'mention' }, match[0]));
    at = match.index + match[0].length;
  }
  nodes.push(document.createTextNode(text.slice(at)));
  return nodes;
}

function overlay(img: HTMLImageElement, found: RetrievalPublic): SVGElement {
  const layer = svg('svg', { class: 'boxes', 'aria-hidden': 'true', preserveAspectRatio: 'none' });
  const draw = (): void => {
    layer.setAttribute('viewBox', `0 0 ${img.naturalWidth} ${img.naturalHeight}`);
    const stroke = Math.max(2, Math.round(Math.max(img.naturalWidth, img.naturalHeight) / 200));
    const font = Math.max(12, Math.round(Math.max(img.naturalWidth, img.naturalHeight) / 28));
    layer.replaceChildren();
    const labels = new Map<string, number>();
    found.data.forEach((match, index) => {
      // No box: the whole photo was the best match.
      const [x0, y0, x1, y1] = match.box ?? [0, 0, img.naturalWidth, img.naturalHeight];
      const colour = COLOURS[index % COLOURS.length];
      // Boxes sharing a corner (often the whole photo) stack their labels instead of hiding them.
      const corner = `${x0},${y0}`;
      const stacked = labels.get(corner) ?? 0;
      labels.set(corner, stacked + 1);
      const labelY = y0 + stacked * font * 1.5;
      const group = svg('g', { class: 'box' });
      group.append(
        svg('rect', { x: x0, y: y0, width: x1 - x0, height: y1 - y0, fill: 'none', stroke: colour, 'stroke-width': stroke }),
        svg('rect', { x: x0, y: labelY, width: Math.min(x1 - x0, font * 8), height: font * 1.4, fill: colour }),
        svg('text', { x: x0 + font * 0.3, y: labelY + font * 1.05, 'font-size': font, fill: '#111' }, `${tag(match.concept.name)} ${match.score.toFixed(2)}`),
      );
      layer.append(group);
    });
  };
  if (img.complete && img.naturalWidth) draw();
  else img.addEventListener('load', draw, { once: true });
  return layer;
}

function timingsTable(title: string, timings: Record<string, number>): HTMLElement {
  return h(
    'table',
    { class: 'timings' },
    h('caption', {}, title),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Stage'), h('th', { scope: 'col' }, 'ms'))),
    h(
      'tbody',
      {},
      ...Object.entries(timings).map(([stage, ms]) =>
        h('tr', {}, h('th', { scope: 'row' }, stage), h('td', {}, ms.toFixed(1))),
      ),
    ),
  );
}

function problemBox(error: unknown, retry: () => void): HTMLElement {
  const failure = error instanceof ApiError ? error : new ApiError(0, { detail: String(error) });
  const title = failure.problem.title ?? 'Captioning failed';
  const hint =
    failure.status === 503
      ? 'The model is not available right now.'
      : failure.status === 504
        ? 'The model took too long to answer.'
        : null;
  const again = h('button', { type: 'button' }, 'Try again');
  again.addEventListener('click', retry);
  return h(
    'div',
    { class: 'problem', role: 'alert' },
    h('strong', {}, failure.status ? `${failure.status} ${title}` : title),
    h('p', {}, failure.message),
    hint ? h('p', { class: 'hint' }, hint) : null,
    again,
  );
}

export async function renderPlayground(main: HTMLElement): Promise<void> {
  let file: File | null = null;
  const topK = h('input', { id: 'top-k', type: 'number', min: 1, max: 8, value: 2 });
  const maxTokens = h('input', { id: 'max-tokens', type: 'number', min: 1, max: 1024, placeholder: 'default' });
  const instruction = h('input', {
    id: 'instruction',
    type: 'text',
    maxlength: 1000,
    placeholder: 'Give a personalized caption of this image.',
  });
  const picker = h('select', { id: 'concepts', multiple: true, size: 5, 'aria-describedby': 'concepts-help' });
  const chosen = h('p', { class: 'hint', id: 'chosen-photo' }, 'No photo chosen yet.');
  const keep = h('input', { id: 'keep', type: 'checkbox' });
  let known: ConceptRef[] = [];
  const run = h('button', { type: 'submit', class: 'primary', disabled: true }, 'Caption');
  const drop = dropZone('query-photo', 'Photo to caption', false, (files) => {
    file = files[0];
    chosen.textContent = `Chosen: ${file.name}`;
    run.disabled = false;
  });
  const form = h(
    'form',
    { class: 'panel', 'aria-labelledby': 'play-title' },
    h('h1', { id: 'play-title' }, 'Caption playground'),
    drop,
    chosen,
    h(
      'details',
      {},
      h('summary', {}, 'Options'),
      h('label', { for: 'top-k' }, 'Concepts to retrieve (top_k)'),
      topK,
      h('label', { for: 'concepts' }, 'Or pick concepts by hand (skips retrieval)'),
      picker,
      h('p', { id: 'concepts-help', class: 'hint' }, 'Ctrl/Cmd-click to pick several; pick none to retrieve.'),
      h('label', { for: 'instruction' }, 'Instruction or question'),
      instruction,
      h('label', { for: 'max-tokens' }, 'Max tokens'),
      maxTokens,
    ),
    h('p', { class: 'row' }, keep, h('label', { for: 'keep' }, 'Keep this caption so I can correct it')),
    run,
  );
  const result = h('section', { class: 'result', id: 'result', 'aria-live': 'polite', 'aria-label': 'Result' });
  main.append(h('div', { class: 'columns play' }, form, result));

  try {
    const concepts = await call(listConcepts({ client, query: { limit: 100 } }));
    known = concepts.data.map((c) => ({ id: c.id, name: c.name }));
    picker.replaceChildren(
      ...concepts.data.map((c) => h('option', { value: c.id }, tag(c.name))),
    );
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return;
  }

  async function go(): Promise<void> {
    if (!file) return;
    const query = file;
    const picked = Array.from(picker.selectedOptions).map((o) => Number(o.value));
    const k = Number(topK.value) || undefined;
    run.disabled = true;
    result.setAttribute('aria-busy', 'true');
    result.replaceChildren(h('p', { class: 'hint' }, 'Captioning…'));
    try {
      const found = picked.length
        ? null
        : await call(retrieve({ client, body: { image: query, top_k: k } }));
      const answer: CaptionPublic = await call(
        caption({
          client,
          body: {
            image: query,
            top_k: picked.length ? undefined : k,
            concept_ids: picked.length ? picked : undefined,
            instruction: instruction.value.trim() || undefined,
            max_tokens: Number(maxTokens.value) || undefined,
            keep: keep.checked || undefined,
          },
        }),
      );
      showResult(query, found, answer);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return;
      result.replaceChildren(problemBox(error, () => void go()));
    } finally {
      run.disabled = false;
      result.removeAttribute('aria-busy');
    }
  }

  function showResult(query: File, found: RetrievalPublic | null, answer: CaptionPublic): void {
    const img = h('img', { src: URL.createObjectURL(query), alt: 'The photo being captioned', class: 'query' });
    const figure = h('figure', { class: 'stage' }, img);
    if (found) figure.append(overlay(img, found));
    const retrieved = found
      ? h(
          'ol',
          { class: 'retrieved', 'aria-label': 'Retrieved concepts' },
          ...found.data.map((m, i) =>
            h(
              'li',
              {},
              h('span', { class: `swatch c${i % COLOURS.length}` }),
              h('a', { href: `#/concepts/${m.concept.id}` }, tag(m.concept.name)),
              ` score ${m.score.toFixed(3)}`,
              m.box ? ` · box ${m.box.join(', ')}` : ' · whole photo',
            ),
          ),
        )
      : h('p', { class: 'hint' }, 'Concepts picked by hand: retrieval skipped.');
    const demoImage = new Map((found?.data ?? []).map((m) => [m.concept.id, m.image_id]));
    const demos = h(
      'ul',
      { class: 'demos', 'aria-label': 'Demonstrations used' },
      ...answer.concepts_used.map((c) => {
        const imageId = demoImage.get(c.id);
        return h(
          'li',
          {},
          imageId !== undefined ? photo(c.id, imageId, `Demonstration photo of ${tag(c.name)}`) : null,
          h('a', { href: `#/concepts/${c.id}` }, tag(c.name)),
          h('span', { class: 'hint' }, c.score === null ? 'picked by hand' : `score ${c.score.toFixed(3)}`),
        );
      }),
    );
    result.replaceChildren(
      h('h2', {}, 'Caption'),
      h('p', { class: 'caption', id: 'caption' }, ...highlighted(answer.caption, answer.concepts_mentioned)),
      ...(answer.caption.trim() ? [] : [h('p', { class: 'hint' }, 'The model wrote no visible text.')]),
      h('p', { class: 'hint' }, `Model: ${answer.model}`),
      ...(answer.history_id != null ? [correctionsPanel(answer.history_id, known, answer.concepts_mentioned)] : []),
      figure,
      h('h2', {}, 'Retrieved'),
      retrieved,
      h('h2', {}, 'Demonstrations used'),
      answer.concepts_used.length ? demos : h('p', { class: 'hint' }, 'None: no concept matched.'),
      h(
        'div',
        { class: 'row wrap' },
        found ? timingsTable('Retrieval timings', found.timings_ms) : null,
        timingsTable('Caption timings', answer.timings_ms),
      ),
    );
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void go();
  });
}

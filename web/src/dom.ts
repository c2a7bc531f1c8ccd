// Building DOM nodes. Text always goes in as text nodes: names and info a user typed are
// rendered, never parsed as HTML.

type Attrs = Record<string, string | number | boolean | undefined>;
type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    node.setAttribute(name, value === true ? '' : String(value));
  }
  append(node, ...children);
  return node;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
  }
}

/** A concept's name as the model writes it: rex is <rex>. */
export function tag(name: string): string {
  return `<${name}>`;
}

const SVG = 'http://www.w3.org/2000/svg';

export function svg(tag: string, attrs: Attrs = {}, text?: string): SVGElement {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== false) node.setAttribute(name, String(value));
  }
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Announce a short message to screen readers (and tests) through the live region. */
export function announce(message: string): void {
  const status = document.getElementById('status');
  if (status) status.textContent = message;
}

/** A drop zone around a file input: drag-and-drop or the picker, several files at once. */
export function dropZone(
  id: string,
  label: string,
  multiple: boolean,
  onFiles: (files: File[]) => void,
): HTMLElement {
  const input = h('input', { type: 'file', id, accept: 'image/*', multiple, class: 'file' });
  input.addEventListener('change', () => {
    if (input.files && input.files.length) onFiles(Array.from(input.files));
    input.value = '';
  });
  const zone = h(
    'div',
    { class: 'drop' },
    h('label', { for: id }, h('strong', {}, label), h('span', {}, 'Drop photos here or choose files')),
    input,
  );
  zone.addEventListener('dragover', (event) => {
    event.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('over');
    const files = Array.from(event.dataTransfer?.files ?? []);
    if (files.length) onFiles(files);
  });
  return zone;
}

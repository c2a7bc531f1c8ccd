// Uploading photos one request per file, so each gets a progress step and its own verdict.
import { ApiError } from './api';
import { h } from './dom';

export interface Uploads {
  element: HTMLElement;
  run(files: File[], send: (file: File) => Promise<unknown>): Promise<number>;
}

export function uploads(): Uploads {
  const bar = h('progress', { max: 1, value: 0, 'aria-label': 'Upload progress' });
  const label = h('span', { class: 'hint' });
  const rejected = h('ul', { class: 'rejected', 'aria-label': 'Rejected files' });
  const element = h('div', { class: 'uploads' }, h('div', { class: 'row' }, bar, label), rejected);
  element.hidden = true;
  return {
    element,
    async run(files, send) {
      element.hidden = false;
      rejected.replaceChildren();
      bar.max = files.length;
      let done = 0;
      let added = 0;
      for (const file of files) {
        label.textContent = `Uploading ${done + 1} of ${files.length}: ${file.name}`;
        try {
          await send(file);
          added += 1;
        } catch (error) {
          if (error instanceof ApiError && error.status === 401) throw error;
          rejected.append(h('li', { role: 'alert' }, h('strong', {}, file.name), `: ${(error as Error).message}`));
        }
        done += 1;
        bar.value = done;
      }
      label.textContent = `${added} of ${files.length} photo${files.length === 1 ? '' : 's'} added`;
      return added;
    },
  };
}

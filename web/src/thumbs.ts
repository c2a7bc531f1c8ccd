// Photos need the API key, so <img> cannot fetch them itself: the SDK fetches the bytes
// (the browser's HTTP cache revalidates with the thumbnail's ETag) and the image shows a blob URL.
import { getConceptImage, getConceptImageThumbnail } from '@repic/client';

import { call, client } from './api';
import { h } from './dom';

export function photo(conceptId: number, imageId: number, alt: string, full = false): HTMLImageElement {
  const img = h('img', { alt, class: 'photo', decoding: 'async' });
  const path = { concept_id: conceptId, image_id: imageId };
  const pending = full
    ? getConceptImage({ client, path, parseAs: 'blob' })
    : getConceptImageThumbnail({ client, path, parseAs: 'blob' });
  call(pending as Promise<{ data?: unknown; response?: Response }>)
    .then((blob) => {
      img.src = URL.createObjectURL(blob as Blob);
      img.addEventListener('load', () => img.classList.add('loaded'), { once: true });
    })
    .catch(() => img.classList.add('broken'));
  return img;
}

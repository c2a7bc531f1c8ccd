// Photos need the API key, so <img> cannot fetch them itself: the SDK fetches the bytes
// (the browser's HTTP cache revalidates with the thumbnail's ETag) and the image shows a blob URL.
import { getConceptImageThumbnail } from '@repic/client';

import { ApiError, call, client } from './api';
import { h } from './dom';

const RETRIES = 3;

async function fetchThumbnail(conceptId: number, imageId: number): Promise<Blob> {
  const path = { concept_id: conceptId, image_id: imageId };
  for (let attempt = 0; ; attempt += 1) {
    const pending = getConceptImageThumbnail({ client, path, parseAs: 'blob' });
    try {
      return (await call(pending as Promise<{ data?: unknown; response?: Response }>)) as Blob;
    } catch (error) {
      // A page of thumbnails can outrun the per-user request burst: wait and ask again.
      if (!(error instanceof ApiError && error.status === 429) || attempt >= RETRIES) throw error;
      await new Promise((resolve) => setTimeout(resolve, 1000 * (attempt + 1)));
    }
  }
}

/** An <img> of a photo's thumbnail, filled in when its bytes arrive. */
export function photo(conceptId: number, imageId: number, alt: string): HTMLImageElement {
  const img = h('img', { alt, class: 'photo', decoding: 'async' });
  fetchThumbnail(conceptId, imageId)
    .then((blob) => {
      img.src = URL.createObjectURL(blob);
      img.addEventListener('load', () => img.classList.add('loaded'), { once: true });
    })
    .catch(() => img.classList.add('broken'));
  return img;
}

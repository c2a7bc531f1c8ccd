// A new user's first session with the SDK, against a live server (started by
// tests/test_sdks.py, which passes REPIC_URL, REPIC_KEY and REPIC_IMAGES). Only the generated
// client is used, and problems are read through their generated type: no casts.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import {
  addConceptImages,
  caption,
  createConcept,
  deleteConcept,
  getConcept,
  getConceptImage,
  listConcepts,
  type Problem,
  retrieve,
  updateConcept,
} from '../src';
import { createClient } from '../src/client';

function setting(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through tests/test_sdks.py`);
  return value;
}

const baseUrl = setting('REPIC_URL');
const images = setting('REPIC_IMAGES');
const client = createClient({ baseUrl, auth: setting('REPIC_KEY') });
const stranger = createClient({ baseUrl, auth: 'rpk_not-a-real-key' });

function photo(name: string): Blob {
  return new Blob([readFileSync(join(images, name))], { type: 'image/jpeg' });
}

function assertProblem(error: Problem | undefined, status: number, kind: string): void {
  assert.ok(error, `expected a ${status} problem`);
  assert.equal(error.status, status);
  assert.equal(error.type, `urn:repic:problem:${kind}`);
  assert.ok(error.detail.length > 0);
}

test('a user manages concepts and captions photos with the TypeScript SDK', async () => {
  const created = await createConcept({
    client,
    body: { name: '<rex>', info: 'my beagle', category: 'dog', images: [photo('a.jpg'), photo('b.jpg')] },
  });
  assert.equal(created.response.status, 201);
  const concept = created.data;
  assert.ok(concept);
  assert.equal(concept.name, 'rex');
  assert.equal(concept.images.length, 2);
  await createConcept({ client, body: { name: 'mia', images: [photo('c.jpg')] } });

  const listed = await listConcepts({ client, query: { limit: 10 } });
  assert.equal(listed.data?.count, 2);
  const filtered = await listConcepts({ client, query: { name: 'REX' } });
  assert.deepEqual(filtered.data?.data.map((c) => c.id), [concept.id]);

  const patched = await updateConcept({
    client,
    path: { concept_id: concept.id },
    body: { info: 'my beagle, loves socks' },
  });
  assert.equal(patched.data?.info, 'my beagle, loves socks');

  const added = await addConceptImages({
    client,
    path: { concept_id: concept.id },
    body: { images: [photo('c.jpg')] },
  });
  assert.equal(added.response.status, 201);
  assert.equal(added.data?.images.length, 3);

  const imageId = concept.images[0].id;
  const download = await getConceptImage({ client, path: { concept_id: concept.id, image_id: imageId } });
  assert.equal(download.response.headers.get('content-type'), 'image/jpeg');
  assert.ok(download.data);
  const head = new Uint8Array(await download.data.arrayBuffer()).slice(0, 3);
  assert.deepEqual([...head], [0xff, 0xd8, 0xff]);

  const found = await retrieve({ client, body: { image: photo('a.jpg'), top_k: 2 } });
  assert.ok(found.data);
  assert.ok(found.data.data.length >= 1);
  assert.ok(found.data.data.every((hit) => typeof hit.score === 'number'));

  const byRetrieval = await caption({ client, body: { image: photo('a.jpg'), top_k: 1 } });
  assert.ok(byRetrieval.data);
  assert.equal(byRetrieval.data.concepts_used.length, 1);
  assert.equal(typeof byRetrieval.data.caption, 'string');

  const named = await caption({
    client,
    body: {
      image: photo('b.jpg'),
      concept_ids: [concept.id],
      instruction: 'What is <rex> doing?',
      max_tokens: 8,
    },
  });
  assert.ok(named.data);
  assert.deepEqual(named.data.concepts_used.map((c) => [c.id, c.score]), [[concept.id, null]]);

  assertProblem((await listConcepts({ client: stranger })).error, 401, 'unauthorized');
  assertProblem((await getConcept({ client, path: { concept_id: 999_999 } })).error, 404, 'not-found');
  const tooBig = await addConceptImages({
    client,
    path: { concept_id: concept.id },
    body: { images: [photo('too-big.jpg')] },
  });
  assertProblem(tooBig.error, 413, 'image-too-large');
  const notImage = await retrieve({
    client,
    body: { image: new Blob([readFileSync(join(images, 'notes.txt'))], { type: 'text/plain' }) },
  });
  assertProblem(notImage.error, 415, 'unsupported-image-type');
  const invalid = await caption({ client, body: { image: photo('a.jpg'), top_k: 99 } });
  assertProblem(invalid.error, 422, 'validation-error');
  assert.deepEqual(invalid.error?.errors?.[0]?.loc, ['body', 'top_k']);
  const huge = await getConcept({ client, path: { concept_id: 1e20 } });
  assertProblem(huge.error, 422, 'validation-error');

  const deleted = await deleteConcept({ client, path: { concept_id: concept.id } });
  assert.equal(deleted.response.status, 204);
  assertProblem((await getConcept({ client, path: { concept_id: concept.id } })).error, 404, 'not-found');
});

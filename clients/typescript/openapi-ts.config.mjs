// @hey-api/openapi-ts settings for src/ (`make clients`). REPIC_TS_INPUT and REPIC_TS_OUT let
// the staleness test (tests/test_sdks.py) generate from the app's spec into a scratch folder.
import { defineConfig } from '@hey-api/openapi-ts';

export default defineConfig({
  input: process.env.REPIC_TS_INPUT ?? '../openapi.json',
  output: { path: process.env.REPIC_TS_OUT ?? 'src' },
  plugins: [
    // Re-export the client (`client`, `createClient`) from the entry file, next to the calls.
    { name: '@hey-api/client-fetch', includeInEntry: true },
    '@hey-api/typescript',
    '@hey-api/sdk',
  ],
});

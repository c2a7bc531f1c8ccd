// Bundles src/ (and the generated SDK it imports) into app/ui_dist, which the app serves at /.
// `make serve`, `make demo` and `make test` run this only when a source changed.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';

const out = process.env.REPIC_UI_OUT ?? '../app/ui_dist';
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: 'src/main.ts' },
  bundle: true,
  minify: true,
  sourcemap: true,
  format: 'esm',
  target: 'es2022',
  outdir: out,
  tsconfig: 'tsconfig.json',
  logLevel: 'warning',
});
copyFileSync('src/index.html', `${out}/index.html`);
copyFileSync('src/app.css', `${out}/app.css`);

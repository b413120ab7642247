// The operator console's build: Preact with esbuild's automatic JSX runtime (no Babel plugin),
// served by the switchboard binary under /admin/ (see gateway/src/http/admin_ui.rs).
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/admin/',
  esbuild: {
    jsx: 'automatic',
    jsxImportSource: 'preact',
  },
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    // Every asset is a file of its own: the Content-Security-Policy allows no data: URLs.
    assetsInlineLimit: 0,
    // Browsers the console supports load modules natively; no inline preload polyfill.
    modulePreload: { polyfill: false },
    target: 'es2020',
    sourcemap: false,
    reportCompressedSize: true,
  },
  server: {
    // `npm run dev` next to `switchboard serve` on the default port (the live view's WebSocket too).
    proxy: { '/v1': { target: process.env.SWITCHBOARD_URL || 'http://127.0.0.1:8080', ws: true } },
  },
});

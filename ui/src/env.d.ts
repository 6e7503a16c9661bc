// esbuild bundles the stylesheet the page imports (ui/build.mjs).
declare module '*.css';

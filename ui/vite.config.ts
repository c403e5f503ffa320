import { defineConfig } from "vitest/config";

export default defineConfig({
  build: {
    target: "es2022",
    // The server's CSP allows scripts and media from 'self' only: never inline assets as data: URLs.
    assetsInlineLimit: 0,
    rollupOptions: {
      // Relative to the project root (this folder).
      input: {
        provider: "provider.html",
        patient: "patient.html",
      },
    },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});

import { fileURLToPath } from "node:url";

import js from "@eslint/js";
import { defineConfig, globalIgnores } from "eslint/config";
import globals from "globals";
import tseslint from "typescript-eslint";

// import.meta.dirname needs Node 20.11; Debian 12 ships Node 18.
const rootDir = fileURLToPath(new URL(".", import.meta.url));

export default defineConfig([
  // src/generated/ is written by `cargo run -p rounds-proto --bin gen-ts`; its layout is ts-rs's.
  globalIgnores(["dist/", "node_modules/", "src/generated/"]),
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      globals: globals.browser,
      parserOptions: { projectService: true, tsconfigRootDir: rootDir },
    },
  },
  {
    files: ["**/*.js"],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: globals.node },
  },
]);

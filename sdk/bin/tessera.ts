#!/usr/bin/env node
// The `tessera` command (package.json `bin`), run as compiled JavaScript: dist/sdk/bin/tessera.js.
// No TypeScript loader at run time; from source, tests and developers run sdk/main.ts through tsx.
import '../main.js';

import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Every node and coordinator a test starts (in process or as a child process, which inherits it)
    // checks each JSON response against its route's schema and answers 500 RESPONSE_SCHEMA_MISMATCH
    // when it does not match (runtime/response-check.ts).
    env: { TESSERA_CHECK_RESPONSES: '1' },
  },
});

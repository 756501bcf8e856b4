/** Entry for `npm start` / `tsx sdk/main.ts ARGS`: the tessera CLI. */
import { run } from './cli.js';

await run(process.argv.slice(2));

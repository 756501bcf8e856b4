/**
 * What the node's and the coordinator's Prometheus metrics share (node/metrics.ts,
 * coordinator/metrics.ts): the metrics-token check and the counter read from its owner at scrape time.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { Counter, type Registry } from 'prom-client';
import { equalBytes, utf8ToBytes } from '../core/bytes.js';

/**
 * Whether a presented bearer token is the configured metrics token: the SHA-256 of both compared in
 * constant time (core/bytes.ts equalBytes), so neither the length nor a prefix of the token leaks.
 * Without a configured token nothing matches.
 */
export function metricsTokenMatcher(token: string | undefined): (presented: string | undefined) => boolean {
  if (token === undefined) return () => false;
  const expected = sha256(utf8ToBytes(token));
  return (presented) => presented !== undefined && equalBytes(sha256(utf8ToBytes(presented)), expected);
}

/** A counter whose value its owner keeps (a running total since start), read when Prometheus scrapes. */
export function scrapedCounter(registers: Registry[], name: string, help: string, read: () => number): Counter {
  return new Counter({
    name,
    help,
    registers,
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/**
 * The cluster file (`cluster.json`, written by `tessera dev` and `tessera apikey create --out`): the
 * endpoints, API keys and identity keys an operator's SDK needs. One definition for the CLI (sdk/cli.ts),
 * the dev cluster (sdk/dev.ts) and applications, so neither of the first two imports the other.
 */
export interface ClusterFile {
  coordinator: string;
  threshold: number;
  /** identityPublicKey (hex ML-DSA-65): what the node's audit checkpoints are verified against. */
  nodes: { index: number; url: string; apiKey: string; ca?: string; identityPublicKey?: string }[];
}

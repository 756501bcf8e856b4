// An application that uses Tessera as a library: plain `node index.js`, no TypeScript, no build.
// It needs a running cluster and its cluster file: `npm start` in the repo (tessera dev), then
//   TESSERA_CLUSTER=../../.tessera/dev/cluster.json node index.js
// (the default is .tessera/dev/cluster.json under the current directory).
import { createPublicKey, randomBytes, verify } from 'node:crypto';
import { formatPublicKey, loadCluster, sealToPublicKey } from 'tessera-threshold';

const utf8 = new TextEncoder();
const hex = (bytes) => Buffer.from(bytes).toString('hex');
const same = (a, b) => Buffer.from(a).equals(Buffer.from(b));

async function main() {
  // 1. The cluster file that `tessera dev` (or `tessera apikey create --out`) wrote.
  const cluster = loadCluster(process.env.TESSERA_CLUSTER);
  console.log(`cluster: ${cluster.nodes.length} nodes`);

  // 2. Keys: an ed25519 signing key and an hpke-x25519 decryption key, made by distributed key
  //    generation (no node, and not this app, ever holds the whole private key).
  const run = hex(randomBytes(4));
  const signer = await cluster.keygen({ suite: 'ed25519', keyId: `example-signer-${run}` });
  const inbox = await cluster.keygen({ suite: 'hpke-x25519', keyId: `example-inbox-${run}` });
  console.log(`keys: ${signer.keyId} (ed25519), ${inbox.keyId} (hpke-x25519)`);

  // 3. Sign through the cluster; verify with node:crypto alone, from the key in PEM and in DER SPKI.
  const message = utf8.encode(`hello from the example app ${run}`);
  const { signature } = await cluster.sign({ keyId: signer.keyId, message });
  const fromPem = createPublicKey(formatPublicKey(signer.suite, signer.publicKey, 'pem'));
  const fromSpki = createPublicKey({ key: Buffer.from(formatPublicKey(signer.suite, signer.publicKey, 'spki'), 'hex'), format: 'der', type: 'spki' });
  for (const [name, key] of [['pem', fromPem], ['spki', fromSpki]]) {
    // RFC 8032 Ed25519: node:crypto takes no digest name (null) for it.
    if (!verify(null, message, key, Buffer.from(signature, 'hex'))) throw new Error(`node:crypto rejects the signature (key from ${name})`);
  }
  console.log('signature: verified by node:crypto (pem, spki)');

  // 4. Seal to the hpke-x25519 public key (RFC 9180 single-shot, a public-key operation: no node is
  //    asked), then open it through threshold decapsulation: t nodes each contribute a partial.
  const secret = utf8.encode(`a sealed note ${run}`);
  const aad = utf8.encode('example-app');
  const sealed = await sealToPublicKey(inbox.suite, inbox.publicKey, secret, { aad });
  const opened = await cluster.open(inbox.keyId, sealed.enc, sealed.ciphertext, aad);
  if (!same(opened, secret)) throw new Error('the opened message differs from the sealed one');
  console.log(`opened: ${Buffer.from(opened).toString('utf8')} (sealToPublicKey, then threshold decapsulation)`);

  // The same through the Cluster's own seal (it looks the public key up).
  const sealed2 = await cluster.seal(inbox.keyId, secret, aad);
  const opened2 = await cluster.open(inbox.keyId, sealed2.enc, sealed2.ciphertext, aad);
  if (!same(opened2, secret)) throw new Error('cluster.seal / cluster.open: the opened message differs');
  console.log('opened: cluster.seal, then cluster.open');
  console.log('example app: ok');
}

main().then(
  () => process.exit(0), // the SDK may keep presignature refills or idle connections alive: the demo is done
  (e) => {
    console.error(`example app: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);

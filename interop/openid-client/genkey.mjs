// Generates a client key pair with WebCrypto: writes the private JWK to argv[2] and the public
// JWK Set (for `backchannel admin client create --jwks-file`) to argv[3]. ES256 unless argv[4]
// names EdDSA or RS256.
import { writeFileSync } from 'node:fs';

const [privatePath, publicPath, alg = 'ES256'] = process.argv.slice(2);
if (!privatePath || !publicPath) {
  console.error('usage: node genkey.mjs PRIVATE_JWK_FILE PUBLIC_JWKS_FILE [ES256|EdDSA|RS256]');
  process.exit(2);
}

const params = {
  ES256: { name: 'ECDSA', namedCurve: 'P-256' },
  EdDSA: { name: 'Ed25519' },
  RS256: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
}[alg];
if (!params) {
  console.error(`unsupported alg ${alg}`);
  process.exit(2);
}

const { privateKey, publicKey } = await crypto.subtle.generateKey(params, true, ['sign', 'verify']);
const publicJwk = await crypto.subtle.exportKey('jwk', publicKey);
const privateJwk = await crypto.subtle.exportKey('jwk', privateKey);

// RFC 7638 thumbprint as the kid: the required members in lexicographic order.
const required = { EC: ['crv', 'kty', 'x', 'y'], OKP: ['crv', 'kty', 'x'], RSA: ['e', 'kty', 'n'] }[publicJwk.kty];
const canonical = JSON.stringify(Object.fromEntries(required.map((k) => [k, publicJwk[k]])));
const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(canonical));
const kid = Buffer.from(digest).toString('base64url');

const clean = (jwk) => {
  const { key_ops, ext, ...rest } = jwk;
  return { ...rest, kid, alg, use: 'sig' };
};
writeFileSync(privatePath, JSON.stringify(clean(privateJwk), null, 2) + '\n', { mode: 0o600 });
writeFileSync(publicPath, JSON.stringify({ keys: [clean(publicJwk)] }, null, 2) + '\n');

"""Decrypts one Web Push message (RFC 8291, aes128gcm) with the reference implementation of
RFC 8188, `http_ece` (pip install http_ece), so the Rust tests check our encryption against
code that is not ours.

stdin: {"body": base64url, "private_key": base64url P-256 scalar, "auth": base64url}
stdout: the plaintext.
"""

import base64
import json
import sys

import http_ece
from cryptography.hazmat.primitives.asymmetric import ec


def b64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def main():
    req = json.load(sys.stdin)
    scalar = int.from_bytes(b64(req["private_key"]), "big")
    private_key = ec.derive_private_key(scalar, ec.SECP256R1())
    plaintext = http_ece.decrypt(
        b64(req["body"]),
        private_key=private_key,
        auth_secret=b64(req["auth"]),
        version="aes128gcm",
    )
    sys.stdout.buffer.write(plaintext)


if __name__ == "__main__":
    main()

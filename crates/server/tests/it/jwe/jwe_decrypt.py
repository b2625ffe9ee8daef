"""Decrypts a compact JWE with Python's jwcrypto (an implementation not written here).

Reads {"jwk": <private JWK>, "token": <compact JWE>} on stdin; prints
{"header": <protected header>, "plaintext": <utf-8 plaintext>} on stdout.
"""
import json
import sys

from jwcrypto import jwe, jwk

request = json.load(sys.stdin)
key = jwk.JWK(**request["jwk"])
token = jwe.JWE()
token.deserialize(request["token"], key=key)
json.dump(
    {
        "header": json.loads(token.objects["protected"]),
        "plaintext": token.payload.decode("utf-8"),
    },
    sys.stdout,
)

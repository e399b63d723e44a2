"""Credentials: EdDSA-signed JWTs (RFC 7519) for one step's scope, and their verification.

Signing and verifying go through joserfc (the ``runtime`` extra). The signing key is an
Ed25519 key read from a file (PEM, or a JSON Web Key with its private part ``d``) or
generated for the process; its public half is published as a JWKS, under its RFC 7638
thumbprint as ``kid``.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from .errors import Invalid

ALGORITHM = "EdDSA"


def _joserfc():
    try:
        from joserfc import jwt
        from joserfc.errors import JoseError, UnsupportedAlgorithmError
        from joserfc.jwk import OKPKey
        from joserfc.jws import JWSRegistry
        from joserfc._rfc8037.jws_eddsa import EdDSA
    except ImportError:
        from ..errors import NhiplError

        raise NhiplError("credentials need joserfc: pip install 'nhipl[runtime]'") from None
    return jwt, JoseError, UnsupportedAlgorithmError, OKPKey, JWSRegistry, EdDSA


def _registry():
    """A JWS registry that knows exactly one algorithm, EdDSA. joserfc warns that RFC 9864
    prefers the curve-named ``Ed25519``; the tokens keep ``EdDSA``, which every verifier
    reads, so the warning is not raised on each token."""
    _, _, Unsupported, _, JWSRegistry, EdDSA = _joserfc()

    class EdDSAOnly(JWSRegistry):
        def get_alg(self, name: str):
            if name != ALGORITHM:
                raise Unsupported(f"Algorithm of '{name}' is not allowed")
            return EdDSA

    return EdDSAOnly(algorithms=[ALGORITHM])


class Signer:
    """An Ed25519 signing key: ``key`` is None (generate one), a path to a PEM or JWK file,
    or PEM / JWK text."""

    def __init__(self, key: str | os.PathLike | bytes | None = None):
        self._jwt, self._JoseError, _, OKPKey, _, _ = _joserfc()
        self._registry = _registry()
        if key is None:
            self.key = OKPKey.generate_key("Ed25519")
        else:
            self.key = _load_key(OKPKey, key)
        self.kid = self.key.thumbprint()
        public = dict(self.key.as_dict(private=False))
        self.public_jwk = {**public, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}
        self._header = {"alg": ALGORITHM, "kid": self.kid, "typ": "JWT"}

    def sign(self, claims: dict) -> str:
        return self._jwt.encode(self._header, claims, self.key, registry=self._registry)

    def decode(self, token: str, keys: dict) -> dict:
        """The claims of ``token`` when its signature verifies under one of ``keys``
        (``kid`` → public JWK dict); raises :class:`Invalid` otherwise."""
        if not isinstance(token, str) or token.count(".") != 2 or len(token) > 16384:
            raise Invalid("not a compact JWT")
        try:
            header = json.loads(_b64(token.split(".", 1)[0]))
        except ValueError:
            raise Invalid("the token's header is not JSON") from None
        if not isinstance(header, dict) or header.get("alg") != ALGORITHM:
            raise Invalid(f"the token is not signed with {ALGORITHM}")
        kid = header.get("kid")
        jwk = keys.get(kid) if isinstance(kid, str) else None
        if jwk is None:
            raise Invalid("the token was signed by a key this runtime does not know")
        key = self.key if kid == self.kid else _public_key(jwk)
        try:
            token_obj = self._jwt.decode(token, key, registry=self._registry)
        except self._JoseError as err:
            raise Invalid(f"the token does not verify: {err.error or 'bad signature'}") from None
        except ValueError as err:
            raise Invalid(f"the token does not verify: {err}") from None
        claims = token_obj.claims
        if not isinstance(claims, dict):
            raise Invalid("the token's claims are not an object")
        return claims


def _b64(part: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _public_key(jwk: dict):
    _, _, _, OKPKey, _, _ = _joserfc()
    try:
        return OKPKey.import_key({k: v for k, v in jwk.items() if k in ("kty", "crv", "x")})
    except (ValueError, TypeError) as err:
        raise Invalid(f"a published key cannot be read: {err}") from None


def _load_key(OKPKey, key) -> Any:
    from ..errors import NhiplError

    where = "the signing key"
    if isinstance(key, os.PathLike) or (isinstance(key, str) and not key.lstrip().startswith(("{", "-----"))):
        where = f"`{os.fspath(key)}`"
        try:
            with open(key, "rb") as fh:
                key = fh.read(1 << 16)
        except OSError as err:
            raise NhiplError(f"{where}: cannot read the signing key: {(err.strerror or str(err)).lower()}") from None
    data = key.encode("utf-8") if isinstance(key, str) else key
    try:
        if data.lstrip().startswith(b"{"):
            loaded = OKPKey.import_key(json.loads(data))
        else:
            loaded = OKPKey.import_key(data)
    except Exception as err:  # joserfc and cryptography raise many kinds; all mean "not a key"
        raise NhiplError(f"{where}: not an Ed25519 private key (PEM or JWK): {err}") from None
    if loaded.as_dict(private=False).get("crv") != "Ed25519" or not loaded.is_private:
        raise NhiplError(f"{where}: not an Ed25519 private key (PEM or JWK)")
    return loaded


def new_id() -> str:
    return uuid.uuid4().hex

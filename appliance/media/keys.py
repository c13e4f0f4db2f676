"""Which key opens or seals a set: the key file of its pool, checked against the fingerprint its media set recorded.

Keys live in files outside the catalog (docs/tape-format.md, "Encryption"); the catalog keeps only a pool's key
file path and each media set's key fingerprint. A set whose key file is gone or holds another key cannot be read:
the error says which fingerprint it needs.
"""

from __future__ import annotations

from pathlib import Path

from appliance.catalog import media as cat
from appliance.media.crypto import CryptoError, FrameCipher, key_fingerprint, load_key


def cipher_for_pool(pool, set_uuid: str) -> FrameCipher | None:
    """The cipher a new set of `pool` is sealed with (None: the pool does not encrypt)."""
    if not pool.encrypt_key:
        return None
    key = load_key(Path(pool.encrypt_key))
    if pool.key_fingerprint and key_fingerprint(key) != pool.key_fingerprint:
        raise CryptoError(f"key file {pool.encrypt_key} of pool '{pool.name}' holds another key than the pool was "
                          f"created with ({pool.key_fingerprint})", "put the pool's own key file back at that path")
    return FrameCipher(key, set_uuid)


def cipher_for_set(catalog, info) -> FrameCipher | None:
    """The cipher that opens tape set `info` (a tape_sets.SetInfo): its media set's fingerprint, its pool's key."""
    media_set = cat.media_set_by_uuid(catalog, info.media_set)
    if media_set is None or not media_set.key_fingerprint:
        return None
    pool = cat.pool_by_id(catalog, media_set.pool_id)
    if not pool.encrypt_key:
        raise CryptoError(f"tape set {info.id} is encrypted (key {media_set.key_fingerprint}) and pool '{pool.name}' "
                          "names no key file", "give the pool its key file again (the one with that fingerprint)")
    key = load_key(Path(pool.encrypt_key))
    if key_fingerprint(key) != media_set.key_fingerprint:
        raise CryptoError(f"tape set {info.id} was sealed with key {media_set.key_fingerprint}; {pool.encrypt_key} "
                          f"holds {key_fingerprint(key)}", "put the key file with that fingerprint at the pool's path")
    return FrameCipher(key, info.uuid)

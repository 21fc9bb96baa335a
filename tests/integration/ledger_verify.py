#!/usr/bin/env python3
"""Independent verifier for InferaDB Ledger commitments (docs/hashing.md).

Written from docs/hashing.md alone, with nothing but hashlib, so that an
auditor can re-check blocks, transactions and state proofs without trusting
the server's C code. Every layout referred to below is in that document.

Input shapes
------------
The canonical input is the API's protobuf JSON with **proto field names**, as
produced by grpcio + ``google.protobuf.json_format.MessageToDict(msg,
preserving_proto_field_name=True)`` (tests/integration/test_verify_chain.py
does exactly that): ``tx_merkle_root``, ``organization_slug``, uint64 as
decimal strings, ``bytes`` as standard base64, ``Timestamp`` as an RFC 3339
string, default values omitted (a missing field is 0 / empty). grpcurl's
lowerCamelCase JSON (``txMerkleRoot``) is accepted too: every dict is passed
through ``normalize``, which renames lowerCamelCase keys to snake_case, before
any field is read. Beyond that, values may be given loosely:

* integers: int, or a decimal string (protobuf JSON prints uint64 as a string).
  ``organization_slug`` may be ``{"id": "1"}``; the vault may be given as
  ``vault_slug`` or ``vault`` (``{"slug": "42"}``; ``{}`` or absent = 0, the
  organization chain).
* hashes (32 bytes): bytes, 64 hex digits, base64 (protobuf JSON ``bytes``),
  or ``{"value": ...}`` (the ``Hash`` message).
* other binary fields (``value``, ``value_equals``, ``tx_id``, ``leaf_key``):
  bytes, or a base64 string. ``tx_id`` may also be a UUID string or
  ``{"id": ...}``.
* text fields (``client_id``, ``actor``, ``key``, ``resource``, ``relation``,
  ``subject``): str (hashed as UTF-8) or bytes. ``client_id`` may be
  ``{"id": "..."}``.
* timestamps: ``timestamp_seconds`` + ``timestamp_nanos``, or ``timestamp``
  as ``{"seconds": .., "nanos": ..}`` or an RFC 3339 string.

Block header dict: height, organization_slug, vault_slug (or vault),
previous_hash, tx_merkle_root, state_root, timestamp, term, committed_index.

Transaction dict: tx_id, client_id, sequence, actor, operations (or ops),
timestamp.

Operation dict, either oneof style (protobuf JSON)::

    {"create_relationship": {"resource": r, "relation": n, "subject": s}}
    {"delete_relationship": {...same...}}
    {"set_entity": {"key": k, "value": v, "expires_at": t,
                    "condition": None | {"not_exists": True} |
                                 {"must_exist": True} | {"version": h} |
                                 {"value_equals": v}}}
    {"delete_entity": {"key": k}}
    {"expire_entity": {"key": k, "expired_at": t}}

or flat: ``{"type": "set_entity", "key": ..., ...}``.

Leaf dict (state): an entity ``{"key", "value" or "value_hash",
"expires_at", "version"}``, a relationship ``{"resource", "relation",
"subject", "version"}``, or a raw ``{"leaf_key", "value_hash",
"expires_at", "version"}``.

Whole-response checks (raise ``VerificationError``, a ValueError):
``verify_blocks`` (a run of GetBlockRange blocks: block hashes, links,
genesis, tx hashes and Merkle roots, timestamps), ``verify_tx_proof``
(WriteSuccess.tx_proof against its header), ``verify_verified_read_response``
(a whole VerifiedReadResponse, chain proof included) and ``state_root``
over ListEntities + ListRelationships items.

Replay (SPEC §5 "Determinism"): ``ChainState`` is a scratch state machine
written from SPEC §5 / docs/hashing.md / docs/api.md semantics (not from the
C code); ``replay_headers`` re-applies a chain's stored transactions from
genesis and rebuilds every header, so a caller can require the rebuilt
148-byte headers to equal the stored ones at every height.

Command line: ``ledger_verify.py blocks.json`` checks a GetBlockRange-style
JSON (``{"blocks": [{"header": {...}, "transactions": [...]}, ...]}`` or a
list of such blocks, grpcurl output included) with ``verify_blocks``; a run
not starting at genesis is checked from its first previous_hash on.
"""

import base64
import binascii
import calendar
import hashlib
import json
import re
import struct
import sys
import uuid

__all__ = [
    "H", "EMPTY", "ZERO", "EMPTY_SUBTREES", "EMPTY_STATE_ROOT",
    "block_header_bytes", "block_hash", "verify_chain",
    "op_bytes", "ops_bytes", "tx_bytes", "tx_hash", "payload_digest",
    "mth", "audit_path", "audit_path_root", "verify_audit_path",
    "tx_merkle_root",
    "entity_leaf_key", "relationship_leaf_key", "leaf_key_of", "locate",
    "leaf_bytes", "slot_hash", "bucket_root_from_slots", "bucket_roots",
    "bucket_root_from_path", "state_root_from_bucket_roots", "state_root",
    "verified_read_root", "verify_verified_read",
    "normalize", "VerificationError", "verify_blocks", "verify_tx_proof",
    "verify_verified_read_response", "ChainState", "replay_headers",
]


def H(data):
    """SHA-256."""
    return hashlib.sha256(data).digest()


EMPTY = H(b"")
ZERO = bytes(32)


def _empty_subtrees():
    d = [EMPTY]
    for _ in range(8):
        d.append(H(d[-1] + d[-1]))
    return d


#: D0..D8 (docs/hashing.md §6): D0 = EMPTY (empty slot), D8 = empty bucket.
EMPTY_SUBTREES = _empty_subtrees()
#: State root of an empty chain: H(D8 ‖ ... ‖ D8), 256 times.
EMPTY_STATE_ROOT = H(EMPTY_SUBTREES[8] * 256)


# ---------------------------------------------------------------- coercion

class VerificationError(ValueError):
    """A response does not verify (or is malformed)."""


_CAMEL = re.compile(r"[A-Z]")


def _snake(name):
    return _CAMEL.sub(lambda m: "_" + m.group(0).lower(), name)


def normalize(doc):
    """Copy of doc with lowerCamelCase dict keys renamed to proto snake_case.

    grpcurl prints JSON names (``txMerkleRoot``), json_format with
    preserving_proto_field_name prints proto names (``tx_merkle_root``); every
    field name of ledger.v1 is lower snake_case, so the mapping is exact.
    Values are not touched."""
    if isinstance(doc, dict):
        return {(_snake(k) if isinstance(k, str) else k): normalize(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [normalize(v) for v in doc]
    return doc


def _int(x):
    if isinstance(x, dict):
        for k in ("id", "slug", "value"):
            if k in x:
                return _int(x[k])
        if not x:
            return 0  # a message with every field at its default
        raise ValueError("no integer in %r" % (x,))
    if x is None:
        return 0
    if isinstance(x, bool):
        raise ValueError("boolean where an integer was expected")
    return int(x)


def _b64(s):
    s = s.strip()
    pad = "=" * (-len(s) % 4)
    if "-" in s or "_" in s:
        return base64.urlsafe_b64decode(s + pad)
    return base64.b64decode(s + pad, validate=True)


def _bin(x):
    """Binary field: bytes, base64 string, or a wrapper message."""
    if x is None:
        return b""
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x)
    if isinstance(x, dict):
        for k in ("value", "id", "bytes"):
            if k in x:
                return _bin(x[k])
        if not x:
            return b""
        raise ValueError("no bytes in %r" % (x,))
    if isinstance(x, str):
        return _b64(x)
    raise TypeError("cannot read bytes from %r" % (x,))


def _hash(x):
    """32-byte hash: bytes, 64 hex digits, base64, or {"value": ...}."""
    if isinstance(x, dict):
        return _hash(x.get("value"))
    if isinstance(x, str) and re.fullmatch(r"[0-9a-fA-F]{64}", x):
        b = binascii.unhexlify(x)
    else:
        b = _bin(x)
    if len(b) != 32:
        raise ValueError("hash must be 32 bytes, got %d" % len(b))
    return b


def _text(x):
    if x is None:
        return b""
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x)
    if isinstance(x, dict):
        for k in ("id", "value", "name"):
            if k in x:
                return _text(x[k])
        if not x:
            return b""
        raise ValueError("no text in %r" % (x,))
    return str(x).encode("utf-8")


def _tx_id(x):
    if isinstance(x, dict):
        x = x.get("id", x.get("value"))
    if isinstance(x, str) and re.fullmatch(r"[0-9a-fA-F-]{36}", x):
        b = uuid.UUID(x).bytes
    elif isinstance(x, str) and re.fullmatch(r"[0-9a-fA-F]{32}", x):
        b = binascii.unhexlify(x)
    else:
        b = _bin(x)
    if len(b) != 16:
        raise ValueError("tx_id must be 16 bytes, got %d" % len(b))
    return b


_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?"
    r"(Z|z|[+-]\d\d:\d\d)$")


def _timestamp(d):
    """(seconds, nanos) from a header or transaction dict."""
    if "timestamp_seconds" in d or "timestamp_nanos" in d:
        return _int(d.get("timestamp_seconds", 0)), _int(d.get("timestamp_nanos", 0))
    ts = d.get("timestamp")
    if ts is None:
        return 0, 0
    if isinstance(ts, dict):
        return _int(ts.get("seconds", 0)), _int(ts.get("nanos", 0))
    if isinstance(ts, str):
        m = _RFC3339.match(ts)
        if not m:
            raise ValueError("bad RFC 3339 timestamp %r" % ts)
        y, mo, da, hh, mi, ss, frac, tz = m.groups()
        secs = calendar.timegm((int(y), int(mo), int(da), int(hh), int(mi), int(ss)))
        if tz not in ("Z", "z"):
            sign = 1 if tz[0] == "+" else -1
            secs -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
        nanos = int((frac or "0").ljust(9, "0"))
        return secs, nanos
    raise ValueError("bad timestamp %r" % (ts,))


def _pack(fmt, n):
    try:
        return struct.pack(fmt, n)
    except struct.error as e:  # out of range for the field: malformed input
        raise ValueError("%d does not fit %s: %s" % (n, fmt, e))


def _u32le(n):
    return _pack("<I", n)


def _u32be(n):
    return _pack(">I", n)


def _u64be(n):
    return _pack(">Q", n)


def _i64be(n):
    return _pack(">q", n)


def _len(b):
    """len x: u32 little-endian byte length, then the bytes."""
    return _u32le(len(b)) + b


# ---------------------------------------------------------------- blocks

def block_header_bytes(h):
    """The 148-byte header encoding (docs/hashing.md §2)."""
    h = normalize(h)
    secs, nanos = _timestamp(h)
    vault = h["vault_slug"] if "vault_slug" in h else h.get("vault", 0)
    out = (_u64be(_int(h.get("height", 0)))
           + _u64be(_int(h["organization_slug"]))
           + _u64be(_int(vault))
           + _hash(h["previous_hash"])
           + _hash(h["tx_merkle_root"])
           + _hash(h["state_root"])
           + _i64be(secs)
           + _u32be(nanos)
           + _u64be(_int(h.get("term", 0)))
           + _u64be(_int(h.get("committed_index", 0))))
    assert len(out) == 148
    return out


def block_hash(h):
    return H(block_header_bytes(h))


def verify_chain(headers, trusted_hash=None):
    """Check consecutive headers link: heights +1, same chain, previous_hash.

    If trusted_hash is given it must equal the first header's previous_hash.
    A header's convenience ``block_hash`` field, when present, must be H(header).
    Returns the last header's block hash; raises ValueError on a bad link."""
    prev = None
    last = None
    for h in normalize(list(headers)):
        if prev is None:
            if trusted_hash is not None and _hash(h["previous_hash"]) != _hash(trusted_hash):
                raise ValueError("first header does not follow the trusted hash")
        else:
            if _int(h["height"]) != _int(prev["height"]) + 1:
                raise ValueError("height %s does not follow %s" % (h["height"], prev["height"]))
            if _hash(h["previous_hash"]) != last:
                raise ValueError("previous_hash mismatch at height %s" % h["height"])
        last = block_hash(h)
        if "block_hash" in h and _hash(h["block_hash"]) != last:
            raise ValueError("block_hash field at height %s is not H(header)" % h.get("height", 0))
        prev = h
    return last


# ---------------------------------------------------------------- transactions

_OP_TYPES = {
    "create_relationship": 0x01,
    "delete_relationship": 0x02,
    "set_entity": 0x03,
    "delete_entity": 0x04,
    "expire_entity": 0x05,
}


def _op_parts(op):
    op = normalize(op)
    if "type" in op:
        t = op["type"]
        name = t if isinstance(t, str) else {v: k for k, v in _OP_TYPES.items()}[t]
        return name.lower(), op
    names = [k for k in op if k in _OP_TYPES]
    if len(names) != 1:
        raise ValueError("operation must have exactly one of %s: %r" % (sorted(_OP_TYPES), op))
    return names[0], op[names[0]] or {}


def _condition_bytes(c):
    if c is None or c == {} or c == "none":
        return b"\x00"
    if isinstance(c, str):
        c = {c: True}
    if "type" in c:  # flat {"type": "version", "version": 7}
        c = {c["type"]: c.get(c["type"], c.get("value", True))}
    if c.get("not_exists"):
        return b"\x01"
    if c.get("must_exist"):
        return b"\x02"
    if "version" in c:
        return b"\x03" + _u64be(_int(c["version"]))
    if "value_equals" in c:
        return b"\x04" + _len(_bin(c["value_equals"]))
    raise ValueError("unknown condition %r" % (c,))


def op_bytes(op):
    """One operation's encoding (docs/hashing.md §3.1)."""
    name, f = _op_parts(op)
    t = bytes([_OP_TYPES[name]])
    if name in ("create_relationship", "delete_relationship"):
        return (t + _len(_text(f.get("resource"))) + _len(_text(f.get("relation")))
                + _len(_text(f.get("subject"))))
    if name == "set_entity":
        return (t + _len(_text(f.get("key"))) + _len(_bin(f.get("value")))
                + _condition_bytes(f.get("condition")) + _u64be(_int(f.get("expires_at", 0))))
    if name == "delete_entity":
        return t + _len(_text(f.get("key")))
    return t + _len(_text(f.get("key"))) + _u64be(_int(f.get("expired_at", 0)))


def ops_bytes(ops):
    return b"".join(op_bytes(o) for o in ops)


def _tx_ops(tx):
    return tx.get("operations", tx.get("ops", []))


def tx_bytes(tx):
    """The transaction encoding hashed by tx_hash (docs/hashing.md §3)."""
    tx = normalize(tx)
    ops = _tx_ops(tx)
    secs, nanos = _timestamp(tx)
    return (_tx_id(tx["tx_id"])
            + _len(_text(tx.get("client_id")))
            + _u64be(_int(tx.get("sequence", 0)))
            + _len(_text(tx.get("actor")))
            + _u32le(len(ops))
            + ops_bytes(ops)
            + _i64be(secs)
            + _u32be(nanos))


def tx_hash(tx):
    return H(tx_bytes(tx))


def payload_digest(organization_slug, vault_slug, ops):
    """Idempotency payload digest (docs/hashing.md §3.2)."""
    return H(_u64be(_int(organization_slug)) + _u64be(_int(vault_slug)) + ops_bytes(ops))


# ---------------------------------------------------------------- RFC 6962

def _leaf(d):
    return H(b"\x00" + d)


def _node(l, r):
    return H(b"\x01" + l + r)


def _split(n):
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(ds):
    """RFC 6962 Merkle Tree Hash over leaf inputs ds (32-byte tx hashes)."""
    ds = [_hash(d) for d in ds]
    if not ds:
        return EMPTY
    if len(ds) == 1:
        return _leaf(ds[0])
    k = _split(len(ds))
    return _node(mth(ds[:k]), mth(ds[k:]))


def tx_merkle_root(txs):
    """tx_merkle_root of a list of transaction dicts (or of raw 32-byte hashes)."""
    return mth([t if isinstance(t, (bytes, bytearray, str)) else tx_hash(t) for t in txs])


def audit_path(ds, m):
    """RFC 6962 PATH(m, ds), bottom-up."""
    ds = [_hash(d) for d in ds]
    if not 0 <= m < len(ds):
        raise ValueError("leaf index out of range")
    if len(ds) == 1:
        return []
    k = _split(len(ds))
    if m < k:
        return audit_path(ds[:k], m) + [mth(ds[k:])]
    return audit_path(ds[k:], m - k) + [mth(ds[:k])]


def audit_path_root(d, m, n, path):
    """Root implied by leaf input d at index m of n leaves (RFC 9162 2.1.3.2).

    Returns None when the path does not fit the tree shape."""
    if not 0 <= m < n:
        return None
    fn, sn, r = m, n - 1, _leaf(_hash(d))
    for p in path:
        p = _hash(p)
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return None
    return r


def verify_audit_path(d, m, n, path, root):
    r = audit_path_root(d, m, n, path)
    return r is not None and r == _hash(root)


# ---------------------------------------------------------------- state

def entity_leaf_key(key):
    return b"\x01" + _text(key)


def relationship_leaf_key(resource, relation, subject):
    return b"\x02" + _len(_text(resource)) + _len(_text(relation)) + _len(_text(subject))


def leaf_key_of(leaf):
    leaf = normalize(leaf)
    if "leaf_key" in leaf:
        return _bin(leaf["leaf_key"])
    if "resource" in leaf:
        return relationship_leaf_key(leaf["resource"], leaf["relation"], leaf["subject"])
    return entity_leaf_key(leaf["key"])


def _value_hash(leaf):
    leaf = normalize(leaf)
    if "value_hash" in leaf:
        return _hash(leaf["value_hash"])
    if "resource" in leaf:
        return EMPTY  # relationships have an empty value
    return H(_bin(leaf.get("value")))


def locate(leaf_key):
    """(bucket, slot) = (kh[0], kh[1]) with kh = H(leaf_key)."""
    kh = H(leaf_key)
    return kh[0], kh[1]


def leaf_bytes(leaf):
    """len leaf_key ‖ H(value) ‖ expires_at u64be ‖ version u64be."""
    leaf = normalize(leaf)
    expires = 0 if "resource" in leaf else _int(leaf.get("expires_at", 0))
    return (_len(leaf_key_of(leaf)) + _value_hash(leaf) + _u64be(expires)
            + _u64be(_int(leaf.get("version", 0))))


def slot_hash(leaves):
    """H over the slot's leaf encodings in ascending leaf_key order, or EMPTY."""
    if not leaves:
        return EMPTY
    ordered = sorted(leaves, key=leaf_key_of)  # bytes order: prefix first
    keys = [leaf_key_of(l) for l in ordered]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate leaf_key in slot")
    return H(b"".join(leaf_bytes(l) for l in ordered))


def bucket_root_from_slots(slots):
    """Depth-8 tree over 256 slot hashes, parent = H(left ‖ right)."""
    level = list(slots)
    assert len(level) == 256
    while len(level) > 1:
        level = [H(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def bucket_roots(leaves):
    """The 256 bucket roots of a state given as a list of leaf dicts."""
    grouped = {}
    for l in leaves:
        b, s = locate(leaf_key_of(l))
        grouped.setdefault(b, {}).setdefault(s, []).append(l)
    roots = []
    for b in range(256):
        if b not in grouped:
            roots.append(EMPTY_SUBTREES[8])
            continue
        roots.append(bucket_root_from_slots(
            [slot_hash(grouped[b].get(s, [])) for s in range(256)]))
    return roots


def bucket_root_from_path(slot_h, slot, siblings):
    """Fold 8 bottom-up siblings: right child at level i iff bit i of slot."""
    h = slot_h
    if len(siblings) != 8:
        raise ValueError("need 8 siblings")
    for i, s in enumerate(siblings):
        s = _hash(s)
        h = H(s + h) if (slot >> i) & 1 else H(h + s)
    return h


def state_root_from_bucket_roots(roots):
    roots = [_hash(r) for r in roots]
    if len(roots) != 256:
        raise ValueError("need 256 bucket roots")
    return H(b"".join(roots))


def state_root(leaves):
    return state_root_from_bucket_roots(bucket_roots(leaves))


def verified_read_root(leaf_key, leaf, others, siblings, other_bucket_roots, value=None):
    """State root implied by a VerifiedRead proof (docs/hashing.md §6.1).

    leaf_key: bytes of the key being proven (or an entity/relationship dict).
    leaf: its leaf dict, or None to prove absence. value: if given, must hash
    to the leaf's value hash. others: the slot's other leaves. siblings: 8
    hashes bottom-up. other_bucket_roots: 255 roots, ascending, skipping the
    key's bucket; or all 256 roots as VerifiedReadResponse.bucket_roots
    carries them, in which case the entry at the key's bucket must equal the
    recomputed bucket root. Raises ValueError for a malformed proof."""
    if isinstance(leaf_key, dict):
        leaf_key = leaf_key_of(leaf_key)
    leaf_key = _bin(leaf_key) if not isinstance(leaf_key, bytes) else leaf_key
    bucket, slot = locate(leaf_key)
    members = []
    if leaf is not None:
        if leaf_key_of(leaf) != leaf_key:
            raise ValueError("leaf does not carry the proven key")
        if value is not None and H(_bin(value)) != _value_hash(leaf):
            raise ValueError("value does not match the leaf's value hash")
        members.append(leaf)
    for o in others:
        k = leaf_key_of(o)
        if k == leaf_key:
            raise ValueError("other leaves contain the proven key")
        if locate(k) != (bucket, slot):
            raise ValueError("other leaf is not in the key's slot")
        members.append(o)
    broot = bucket_root_from_path(slot_hash(members), slot, siblings)
    others_r = [_hash(r) for r in other_bucket_roots]
    if len(others_r) == 256:
        if others_r[bucket] != broot:
            raise ValueError("bucket_roots[%d] is not the recomputed bucket root" % bucket)
        return state_root_from_bucket_roots(others_r)
    if len(others_r) != 255:
        raise ValueError("need 255 other bucket roots (or all 256)")
    return state_root_from_bucket_roots(others_r[:bucket] + [broot] + others_r[bucket:])


def verify_verified_read(leaf_key, leaf, others, siblings, other_bucket_roots, root,
                         value=None):
    """True iff the proof is well formed and yields root."""
    try:
        got = verified_read_root(leaf_key, leaf, others, siblings, other_bucket_roots, value)
    except ValueError:
        return False
    return got == _hash(root)


# ---------------------------------------------------------------- whole responses

def _fail(msg, *args):
    raise VerificationError(msg % args if args else msg)


def _vault_of(h):
    return _int(h["vault_slug"] if "vault_slug" in h else h.get("vault", 0))


def verify_blocks(blocks, organization_slug=None, vault_slug=None, previous=None):
    """Verify a run of consecutive blocks (GetBlockRange ``blocks``).

    For every block: the 148-byte header hash (and the header's convenience
    ``block_hash`` field when present), the chain identity (when
    organization_slug / vault_slug are given), consecutive heights, each
    previous_hash link, every tx hash and the RFC 6962 tx_merkle_root, that
    every transaction carries the block's timestamp (nanos a multiple of
    1000), that timestamps never go back, that a client transaction's actor is
    ``client:<client_id>`` and a TTL transaction is (``""``, 0, ``system:gc``)
    with only expire_entity ops; genesis (height 0) has previous_hash ZERO, no
    transactions, tx_merkle_root EMPTY and the empty state root; a later block
    holds at least one transaction.

    previous: (height, block_hash) of the block just before the first one,
    when the run does not start at genesis (paging). Returns the list of
    (height, block_hash, header) in order. Raises VerificationError."""
    out = []
    prev_h, prev_hash = (None, None) if previous is None else (previous[0], _hash(previous[1]))
    prev_ts = None
    for raw in blocks:
        blk = normalize(raw)
        h = blk.get("header")
        if h is None:
            _fail("block without a header")
        txs = blk.get("transactions", [])
        height = _int(h.get("height", 0))
        if organization_slug is not None and _int(h["organization_slug"]) != _int(organization_slug):
            _fail("height %d: organization_slug %s, expected %s", height,
                  _int(h["organization_slug"]), _int(organization_slug))
        if vault_slug is not None and _vault_of(h) != _int(vault_slug):
            _fail("height %d: vault %s, expected %s", height, _vault_of(h), _int(vault_slug))
        digest = block_hash(h)
        if "block_hash" in h and _hash(h["block_hash"]) != digest:
            _fail("height %d: block_hash field %s != H(header) %s", height,
                  _hash(h["block_hash"]).hex(), digest.hex())
        if prev_h is None:
            if height != 0:
                _fail("run starts at height %d without a trusted predecessor", height)
        else:
            if height != prev_h + 1:
                _fail("height %d does not follow %d", height, prev_h)
            if _hash(h["previous_hash"]) != prev_hash:
                _fail("height %d: previous_hash does not link to block %d", height, prev_h)
        secs, nanos = _timestamp(h)
        if nanos % 1000:
            _fail("height %d: timestamp nanos %d not a multiple of 1000", height, nanos)
        if prev_ts is not None and (secs, nanos) < prev_ts:
            _fail("height %d: timestamp goes back", height)
        prev_ts = (secs, nanos)
        if height == 0:
            if _hash(h["previous_hash"]) != ZERO:
                _fail("genesis previous_hash is not zero")
            if txs:
                _fail("genesis holds transactions")
            if _hash(h["tx_merkle_root"]) != EMPTY:
                _fail("genesis tx_merkle_root is not EMPTY")
            if _hash(h["state_root"]) != EMPTY_STATE_ROOT:
                _fail("genesis state_root is not the empty state root")
        elif not txs:
            _fail("height %d: block without transactions", height)
        for i, tx in enumerate(txs):
            if _timestamp(tx) != (secs, nanos):
                _fail("height %d tx %d: timestamp differs from the block's", height, i)
            actor = _text(tx.get("actor")).decode("utf-8", "replace")
            client = _text(tx.get("client_id"))
            ops = _tx_ops(tx)
            if not ops:
                _fail("height %d tx %d: no operations", height, i)
            if actor == "system:gc":
                if client or _int(tx.get("sequence", 0)) != 0:
                    _fail("height %d tx %d: system:gc tx with a client or sequence", height, i)
                if any(_op_parts(o)[0] != "expire_entity" for o in ops):
                    _fail("height %d tx %d: system:gc tx with a non-expire op", height, i)
            elif not client or actor != "client:" + client.decode("utf-8", "replace"):
                _fail("height %d tx %d: actor %r does not match client_id", height, i, actor)
        if tx_merkle_root(txs) != _hash(h["tx_merkle_root"]):
            _fail("height %d: tx_merkle_root mismatch", height)
        out.append((height, digest, h))
        prev_h, prev_hash = height, digest
    return out


def verify_tx_proof(tx, proof, header, tree_size=None):
    """Check a WriteSuccess.tx_proof: tx (a Transaction dict, or its 32-byte
    hash) at proof.leaf_index of proof.tree_size leaves, with the audit path
    proof.siblings, reaches header.tx_merkle_root. Raises VerificationError.

    An RFC 6962 path does not always pin the tree size (leaf 0 of 11 and of
    12 leaves have paths of the same shape), so pass tree_size, the block's
    transaction count, when it is known (GetBlock) to have it checked too."""
    proof, header = normalize(proof), normalize(header)
    if tree_size is not None and _int(proof.get("tree_size", 0)) != _int(tree_size):
        _fail("tx_proof.tree_size %s, the block holds %s transactions",
              _int(proof.get("tree_size", 0)), _int(tree_size))
    d = tx if isinstance(tx, (bytes, bytearray)) else tx_hash(tx)
    if _hash(proof["leaf_hash"]) != d:
        _fail("tx_proof.leaf_hash is not the transaction's hash")
    m, n = _int(proof.get("leaf_index", 0)), _int(proof.get("tree_size", 0))
    if not verify_audit_path(d, m, n, proof.get("siblings", []), header["tx_merkle_root"]):
        _fail("tx_proof audit path does not reach tx_merkle_root")


def verify_verified_read_response(key, resp, trusted=None):
    """Check a whole VerifiedReadResponse for entity ``key`` (docs/hashing.md §6.1).

    Checks: found agrees with the presence of leaf (and of value); the leaf
    carries 0x01 ‖ key; H(value) = leaf.value_hash; bucket_index / slot_index
    = H(leaf_key)[0], [1]; slot_leaves are other keys of that slot; the 8
    siblings fold the slot hash into bucket_roots[bucket_index]; H(256 roots)
    = block_header.state_root. trusted: (height, block_hash) of a trusted block
    (typically from verify_blocks); then the chain_proof headers must link it
    to block_header (or block_header must be that very block). Returns the
    block_hash of block_header. Raises VerificationError."""
    r = normalize(resp)
    leaf_key = entity_leaf_key(key)
    bucket, slot = locate(leaf_key)
    if _int(r.get("bucket_index", 0)) != bucket or _int(r.get("slot_index", 0)) != slot:
        _fail("bucket_index/slot_index are not H(leaf_key)[0], [1]")
    leaf = r.get("leaf")
    found = bool(r.get("found", False))
    if found != (leaf is not None):
        _fail("found=%s but leaf %s", found, "present" if leaf is not None else "absent")
    if found != ("value" in r):
        _fail("found=%s but value %s", found, "present" if "value" in r else "absent")
    header = r.get("block_header")
    if header is None:
        _fail("no block_header")
    try:
        got = verified_read_root(leaf_key, leaf, r.get("slot_leaves", []),
                                 r.get("bucket_siblings", []), r.get("bucket_roots", []),
                                 r.get("value") if found else None)
    except ValueError as e:
        _fail("malformed proof: %s", e)
    if got != _hash(header["state_root"]):
        _fail("proof gives state root %s, header has %s", got.hex(),
              _hash(header["state_root"]).hex())
    digest = block_hash(header)
    if "block_hash" in header and _hash(header["block_hash"]) != digest:
        _fail("block_header.block_hash is not H(header)")
    if trusted is not None:
        t_height, t_hash = _int(trusted[0]), _hash(trusted[1])
        headers = r.get("chain_proof", {}).get("headers", [])
        if not headers:
            if (_int(header.get("height", 0)), digest) != (t_height, t_hash):
                _fail("no chain proof and block_header is not the trusted block")
        else:
            try:
                last = verify_chain(headers, trusted_hash=t_hash)
            except ValueError as e:
                _fail("chain proof: %s", e)
            if _int(normalize(headers[0]).get("height", 0)) != t_height + 1:
                _fail("chain proof does not start right after the trusted height")
            if last != digest:
                _fail("chain proof does not end at block_header")
    return digest


# ---------------------------------------------------------------- replay

class ChainState:
    """Scratch state machine of one chain, from SPEC §5 semantics alone.

    Leaves: leaf_key -> (value_hash, expires_at, version). Operations at a
    block of height ``height`` whose entry timestamp has ``now`` seconds:

    * set_entity: the leaf becomes (H(value), expires_at, height), whatever
      was there (a set always updates the version). Its condition is checked
      against the state before the op (an entity with 0 < expires_at <= now
      counts as absent): a stored transaction succeeded, so a condition that
      does not hold here is reported as a VerificationError.
    * delete_entity: removes the entity's leaf if present (expired or not).
    * expire_entity{key, expired_at}: removes the leaf only if it exists with
      expires_at == expired_at <= now, expired_at > 0 (0 means "never
      expires", so it never matches); otherwise a no-op.
    * create_relationship: adds (EMPTY, 0, height) unless present (no-op,
      version kept); delete_relationship removes it if present.

    The state root is kept incrementally: only buckets touched since the last
    root are recomputed (docs/hashing.md §6)."""

    def __init__(self):
        self.leaves = {}
        self._by_bucket = {}
        self._roots = [EMPTY_SUBTREES[8]] * 256
        self._dirty = set()

    def _put(self, lk, leaf):
        b, s = locate(lk)
        self.leaves[lk] = leaf
        self._by_bucket.setdefault(b, {}).setdefault(s, {})[lk] = leaf
        self._dirty.add(b)

    def _remove(self, lk):
        if lk not in self.leaves:
            return False
        b, s = locate(lk)
        del self.leaves[lk]
        slot = self._by_bucket[b][s]
        del slot[lk]
        if not slot:
            del self._by_bucket[b][s]
        self._dirty.add(b)
        return True

    def _live(self, lk, now):
        leaf = self.leaves.get(lk)
        if leaf is None or 0 < leaf[1] <= now:
            return None
        return leaf

    def _check(self, key, lk, cond, now):
        if cond is None or cond == {}:
            return
        cur = self._live(lk, now)
        if cond.get("not_exists"):
            ok = cur is None
        elif cond.get("must_exist"):
            ok = cur is not None
        elif "version" in cond:
            ok = cur is not None and cur[2] == _int(cond["version"])
        elif "value_equals" in cond:
            ok = cur is not None and cur[0] == H(_bin(cond["value_equals"]))
        else:
            _fail("unknown condition %r", cond)
        if not ok:
            _fail("stored transaction's condition %r on %r does not hold at replay", cond, key)

    def apply_op(self, op, height, now):
        name, f = _op_parts(op)
        if name in ("create_relationship", "delete_relationship"):
            lk = relationship_leaf_key(f.get("resource"), f.get("relation"), f.get("subject"))
            if name == "create_relationship":
                if lk not in self.leaves:
                    self._put(lk, (EMPTY, 0, height))
            else:
                self._remove(lk)
            return
        key = _text(f.get("key"))
        lk = entity_leaf_key(key)
        if name == "set_entity":
            self._check(key, lk, f.get("condition"), now)
            self._put(lk, (H(_bin(f.get("value"))), _int(f.get("expires_at", 0)), height))
        elif name == "delete_entity":
            self._remove(lk)
        else:  # expire_entity
            at = _int(f.get("expired_at", 0))
            leaf = self.leaves.get(lk)
            if leaf is not None and leaf[1] == at and 0 < at <= now:
                self._remove(lk)

    def apply_tx(self, tx, height, now):
        for op in _tx_ops(normalize(tx)):
            self.apply_op(op, height, now)

    def state_root(self):
        for b in self._dirty:
            slots = self._by_bucket.get(b, {})
            if not any(slots.values()):
                self._roots[b] = EMPTY_SUBTREES[8]
                continue
            hashes = []
            for s in range(256):
                leaves = slots.get(s)
                if not leaves:
                    hashes.append(EMPTY)
                    continue
                hashes.append(H(b"".join(
                    _len(lk) + vh + _u64be(exp) + _u64be(ver)
                    for lk, (vh, exp, ver) in sorted(leaves.items()))))
            self._roots[b] = bucket_root_from_slots(hashes)
        self._dirty.clear()
        return H(b"".join(self._roots))

    def leaf_dicts(self):
        """The state as raw leaf dicts (for state_root / comparisons)."""
        return [{"leaf_key": lk, "value_hash": vh, "expires_at": exp, "version": ver}
                for lk, (vh, exp, ver) in sorted(self.leaves.items())]


def replay_headers(blocks, state=None):
    """Rebuild every header of a chain from genesis by replaying its stored
    transactions (SPEC §5 "Determinism").

    blocks: the chain's blocks from height 0, in order. Only the stored
    transactions and, per block, the inputs that come from the Raft entry
    (timestamp, term, committed_index) and the chain identity are taken from
    the stored header; previous_hash, tx_merkle_root and state_root are
    recomputed. Yields (height, rebuilt 148-byte header, stored header dict).
    state: a ChainState to replay into (fresh if None)."""
    state = state if state is not None else ChainState()
    prev = None
    for expect_height, raw in enumerate(blocks):
        blk = normalize(raw)
        h = blk["header"]
        secs, nanos = _timestamp(h)
        txs = blk.get("transactions", [])
        for tx in txs:
            state.apply_tx(tx, expect_height, secs)
        rebuilt = {
            "height": expect_height,
            "organization_slug": _int(h["organization_slug"]),
            "vault_slug": _vault_of(h),
            "previous_hash": ZERO if prev is None else prev,
            "tx_merkle_root": tx_merkle_root(txs),
            "state_root": state.state_root(),
            "timestamp_seconds": secs,
            "timestamp_nanos": nanos,
            "term": _int(h.get("term", 0)),
            "committed_index": _int(h.get("committed_index", 0)),
        }
        enc = block_header_bytes(rebuilt)
        prev = H(enc)
        yield expect_height, enc, h


# ---------------------------------------------------------------- CLI

def _main(argv):
    if len(argv) != 2:
        print("usage: ledger_verify.py BLOCKS.json", file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        doc = json.load(f)
    blocks = doc.get("blocks", doc) if isinstance(doc, dict) else doc
    if not blocks:
        print("no blocks")
        return 1
    first = normalize(blocks[0]).get("header", {})
    previous = None
    if _int(first.get("height", 0)) != 0:  # a later page: trust its first link
        previous = (_int(first["height"]) - 1, first["previous_hash"])
    try:
        verified = verify_blocks(blocks, previous=previous)
    except ValueError as e:
        print("chain: %s" % e)
        return 1
    print("ok: %d blocks, last block_hash %s" % (len(verified), verified[-1][1].hex()))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))

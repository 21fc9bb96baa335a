#!/usr/bin/env python3
"""Independent verifier for InferaDB Ledger commitments (docs/hashing.md).

Written from docs/hashing.md alone, with nothing but hashlib, so that an
auditor can re-check blocks, transactions and state proofs without trusting
the server's C code. Every layout referred to below is in that document.

Input shapes
------------
Functions take plain dicts shaped like the API's protobuf JSON (as printed by
grpcurl) or like the SPEC's field names; both are accepted:

* integers: int, or a decimal string (protobuf JSON prints uint64 as a string).
  ``organization_slug`` may be ``{"id": "1"}``; the vault may be given as
  ``vault_slug`` or ``vault`` (``{"slug": "42"}``).
* hashes (32 bytes): bytes, 64 hex digits, base64 (protobuf JSON ``bytes``),
  or ``{"value": ...}`` (the ``Hash`` message).
* other binary fields (``value``, ``value_equals``, ``tx_id``): bytes, or a
  base64 string. ``tx_id`` may also be a UUID string or ``{"id": ...}``.
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

Command line: ``ledger_verify.py blocks.json`` checks a GetBlockRange-style
JSON (``{"blocks": [{"header": {...}, "transactions": [...]}, ...]}`` or a
list of such blocks): each block's tx_merkle_root and the previous_hash links.
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

def _int(x):
    if isinstance(x, dict):
        for k in ("id", "slug", "value"):
            if k in x:
                return _int(x[k])
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


def _u32le(n):
    return struct.pack("<I", n)


def _u32be(n):
    return struct.pack(">I", n)


def _u64be(n):
    return struct.pack(">Q", n)


def _i64be(n):
    return struct.pack(">q", n)


def _len(b):
    """len x: u32 little-endian byte length, then the bytes."""
    return _u32le(len(b)) + b


# ---------------------------------------------------------------- blocks

def block_header_bytes(h):
    """The 148-byte header encoding (docs/hashing.md §2)."""
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
    Returns the last header's block hash; raises ValueError on a bad link."""
    prev = None
    last = None
    for h in headers:
        if prev is None:
            if trusted_hash is not None and _hash(h["previous_hash"]) != _hash(trusted_hash):
                raise ValueError("first header does not follow the trusted hash")
        else:
            if _int(h["height"]) != _int(prev["height"]) + 1:
                raise ValueError("height %s does not follow %s" % (h["height"], prev["height"]))
            if _hash(h["previous_hash"]) != last:
                raise ValueError("previous_hash mismatch at height %s" % h["height"])
        last = block_hash(h)
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
    if "leaf_key" in leaf:
        return _bin(leaf["leaf_key"])
    if "resource" in leaf:
        return relationship_leaf_key(leaf["resource"], leaf["relation"], leaf["subject"])
    return entity_leaf_key(leaf["key"])


def _value_hash(leaf):
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
    key's bucket. Raises ValueError for a malformed proof."""
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
    if len(others_r) != 255:
        raise ValueError("need 255 other bucket roots")
    return state_root_from_bucket_roots(others_r[:bucket] + [broot] + others_r[bucket:])


def verify_verified_read(leaf_key, leaf, others, siblings, other_bucket_roots, root,
                         value=None):
    """True iff the proof is well formed and yields root."""
    try:
        got = verified_read_root(leaf_key, leaf, others, siblings, other_bucket_roots, value)
    except ValueError:
        return False
    return got == _hash(root)


# ---------------------------------------------------------------- CLI

def _main(argv):
    if len(argv) != 2:
        print("usage: ledger_verify.py BLOCKS.json", file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        doc = json.load(f)
    blocks = doc.get("blocks", doc) if isinstance(doc, dict) else doc
    headers = []
    for b in blocks:
        h = b.get("header", b)
        txs = b.get("transactions", [])
        if tx_merkle_root(txs) != _hash(h["tx_merkle_root"]):
            print("height %s: tx_merkle_root mismatch" % h.get("height"))
            return 1
        headers.append(h)
    try:
        tip = verify_chain(headers)
    except ValueError as e:
        print("chain: %s" % e)
        return 1
    if tip is not None:
        print("ok: %d blocks, last block_hash %s" % (len(headers), tip.hex()))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))

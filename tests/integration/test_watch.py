"""WatchBlocks: history from start_height, then live blocks; cancel."""

import queue
import threading

import grpc

from ledger_api import messages, set_op, setup_vault, write


def _watch(node, org, vault, start):
    m = messages()
    chan = grpc.insecure_channel(node.addr)
    stub = chan.unary_stream("/ledger.v1.ReadService/WatchBlocks",
                             request_serializer=lambda r: r.SerializeToString(),
                             response_deserializer=m.BlockAnnouncement.FromString)
    req = m.WatchBlocksRequest()
    req.organization_slug.id = int(org)
    req.vault.slug = int(vault)
    req.start_height = start
    call = stub(req)
    got = queue.Queue()

    def reader():
        try:
            for a in call:
                got.put(a)
        except grpc.RpcError as e:
            got.put(e)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    return chan, call, got, t


def _next(got, timeout=10):
    item = got.get(timeout=timeout)
    assert not isinstance(item, grpc.RpcError), item
    return item


def test_history_then_live_then_cancel(ledger):
    org, vault = setup_vault(ledger)
    for i in range(3):
        write(ledger, org, vault, [set_op("k", str(i))])
    chan, call, got, t = _watch(ledger, org, vault, 2)
    history = [_next(got) for _ in range(2)]
    assert [a.height for a in history] == [2, 3]
    tip = ledger.call("ledger.v1.ReadService/GetTip",
                      {"organization_slug": {"id": org}, "vault": {"slug": vault}})
    assert history[-1].block_hash.value == __import__("base64").b64decode(tip["blockHash"]["value"])
    write(ledger, org, vault, [set_op("k", "live")])
    live = _next(got)
    assert live.height == 4 and live.vault.slug == int(vault)
    assert got.empty()
    call.cancel()
    t.join(10)
    assert not t.is_alive()
    err = got.get(timeout=5)
    assert isinstance(err, grpc.RpcError) and err.code() == grpc.StatusCode.CANCELLED
    chan.close()
    # the server is fine after the cancel: new writes and watches work
    write(ledger, org, vault, [set_op("k", "after")])
    chan, call, got, t = _watch(ledger, org, vault, 5)
    assert _next(got).height == 5
    call.cancel()
    chan.close()


def test_watch_unknown_chain_not_found(ledger):
    org, vault = setup_vault(ledger)
    chan, call, got, t = _watch(ledger, org, 999, 0)
    err = got.get(timeout=10)
    assert isinstance(err, grpc.RpcError) and err.code() == grpc.StatusCode.NOT_FOUND
    chan.close()


def test_shutdown_with_open_watch(ledger):
    org, vault = setup_vault(ledger)
    chan, call, got, t = _watch(ledger, org, vault, 0)
    assert _next(got).height == 0
    assert ledger.stop() == 0  # graceful stop ends the stream, no crash
    t.join(10)
    assert not t.is_alive()
    chan.close()

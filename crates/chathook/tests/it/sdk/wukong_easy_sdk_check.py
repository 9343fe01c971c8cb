"""Drives chathook with WuKongIM's official Python client (PyPI `wukong-easy-sdk`).

Usage: python3 wukong_easy_sdk_check.py WS_URL PING_INTERVAL_SECONDS HOLD_SECONDS
alice, bob and carol must hold the tokens t-alice, t-bob and t-carol (device flag 2, the SDK's default),
and group `sdk-group` must hold all three. Prints one JSON line of what was observed; exits non-zero on
any failure.
"""
import asyncio
import json
import sys

from wukong_easy_sdk import WKIM, AuthOptions, WKIMEvent, WKIMOptions


async def client(url, uid, ping_interval):
    options = WKIMOptions(ping_interval=ping_interval, pong_timeout=2, max_reconnect_attempts=0)
    im = WKIM.init(url, AuthOptions(uid=uid, token=f"t-{uid}"), options)
    inbox = asyncio.Queue()
    im.on(WKIMEvent.MESSAGE, inbox.put_nowait)
    errors = []
    im.on(WKIMEvent.ERROR, errors.append)
    disconnects = []
    im.on(WKIMEvent.DISCONNECT, disconnects.append)
    result = await im.connect()
    return im, inbox, result, errors, disconnects


async def main():
    url, ping_interval, hold = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    alice, alice_in, connected, alice_errors, alice_gone = await client(url, "alice", ping_interval)
    bob, bob_in, _, bob_errors, bob_gone = await client(url, "bob", ping_interval)
    carol, carol_in, _, _, _ = await client(url, "carol", ping_interval)
    assert connected["reasonCode"] == 1, connected

    sent = await alice.send("bob", 1, {"type": 1, "content": "hello bob"})
    assert sent["reasonCode"] == 1 and int(sent["messageId"]) > 0, sent
    got = await asyncio.wait_for(bob_in.get(), 5)
    assert got["payload"] == {"type": 1, "content": "hello bob"}, got
    assert got["fromUid"] == "alice" and got["channelId"] == "alice" and got["channelType"] == 1, got

    sent = await bob.send("sdk-group", 2, {"type": 1, "content": "hi all"})
    assert sent["reasonCode"] == 1, sent
    for inbox in (alice_in, carol_in):
        got = await asyncio.wait_for(inbox.get(), 5)
        assert got["channelId"] == "sdk-group" and got["channelType"] == 2, got
        assert got["payload"] == {"type": 1, "content": "hi all"}, got

    # The heartbeat: the SDK pings every `ping_interval`; the connections must outlive several.
    await asyncio.sleep(hold)
    assert alice.is_connected and bob.is_connected, (alice_errors, alice_gone, bob_errors, bob_gone)
    await alice.ping()
    sent = await alice.send("bob", 1, {"type": 1, "content": "still here"})
    got = await asyncio.wait_for(bob_in.get(), 5)
    assert got["payload"]["content"] == "still here", got
    assert not alice_gone and not bob_gone, (alice_gone, bob_gone)
    for im in (alice, bob, carol):
        await im.destroy()
    print(json.dumps({"connected": connected, "held_seconds": hold, "ok": True}))


asyncio.run(main())

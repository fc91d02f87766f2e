"""A control connection still open when the daemon stops: no traceback.

At the end of the run asyncio cancels the tasks that are left, a control
client's handler among them (a `hivrrp status` that arrived with SIGTERM).
On Python 3.11 a handler that ends cancelled makes asyncio's stream callback
log "Exception in callback ... CancelledError" with a traceback.
"""

import asyncio
import logging

from helpers.fakedaemon import started
from helpers.plans import ADDRESSES, LINKS, instance_text
from hivrrp.ops.control import ControlServer


def test_a_client_connected_at_shutdown_leaves_no_traceback(tmp_path, monkeypatch, caplog):
    path = str(tmp_path / "control.sock")
    clients = []        # kept open: a closed one would end the handler first

    async def scenario():
        d = await started(tmp_path, instance_text("VI_1", 51, ["192.0.2.51/24"]), LINKS,
                          ADDRESSES, monkeypatch)
        server = ControlServer(d, path)
        await server.start()
        _, writer = await asyncio.open_unix_connection(path)
        clients.append(writer)
        writer.write(b'{"command": "status"}\n')   # answered; then the handler waits
        await asyncio.sleep(0.1)
        await server.close()
        # Returning with the handler still waiting: asyncio.run cancels it.

    with caplog.at_level(logging.ERROR):
        asyncio.run(asyncio.wait_for(scenario(), 20))
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []

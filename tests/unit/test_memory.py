"""The heap trimmer: once the burst is over, once per burst, never after close()."""

import asyncio

from hivrrp.daemon import memory


def test_release_free_memory_finds_malloc_trim_here():
    assert memory.release_free_memory() is True     # glibc: CI and every supported system


def test_the_trimmer_waits_for_quiet_then_trims_once(monkeypatch):
    monkeypatch.setattr(memory, "CHECK_EVERY", 0.01)
    trims = []
    monkeypatch.setattr(memory, "release_free_memory", lambda: trims.append(1) or True)
    busy = [True]

    async def scenario():
        trimmer = memory.Trimmer(asyncio.get_running_loop(), lambda: not busy[0])
        trimmer.arm()
        await asyncio.sleep(0.05)
        assert trims == []                 # still busy: it keeps looking
        busy[0] = False
        await asyncio.sleep(0.03)
        assert trims == [1] and trimmer.handle is None
        await asyncio.sleep(0.03)
        assert trims == [1]                # once per arm()
        trimmer.arm()
        trimmer.arm()                      # re-armed before it looked: still one trim
        await asyncio.sleep(0.05)
        assert trims == [1, 1]
        busy[0] = True
        trimmer.arm()
        trimmer.close()                    # at shutdown: nothing fires afterwards
        busy[0] = False
        await asyncio.sleep(0.05)
        assert trims == [1, 1]

    asyncio.run(scenario())


def test_a_daemon_never_quiet_still_gets_its_trim(monkeypatch):
    monkeypatch.setattr(memory, "CHECK_EVERY", 0.001)
    monkeypatch.setattr(memory, "GIVE_UP_AFTER", 5)
    trims = []
    monkeypatch.setattr(memory, "release_free_memory", lambda: trims.append(1) or True)

    async def scenario():
        trimmer = memory.Trimmer(asyncio.get_running_loop(), lambda: False)
        trimmer.arm()
        await asyncio.sleep(0.1)
        assert trims == [1]

    asyncio.run(scenario())

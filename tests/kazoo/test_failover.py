"""kazoo when the server it talks to stops answering: it moves to another server of the
ensemble with the same session, its ephemerals stay, and a lock it holds stays held.

ZAB_PIDS (set by ci/clients.sh): the process ids of the servers, in ZAB_HOSTS order. The test
freezes one follower with SIGSTOP and always resumes it.
"""

import os
import signal
import socket
import threading
import time

import pytest
from kazoo.client import KazooClient, KazooState

WAIT = 60.0


def mode(host):
    h, p = host.rsplit(":", 1)
    try:
        with socket.create_connection((h, int(p)), timeout=2) as s:
            s.sendall(b"srvr")
            out = b""
            while chunk := s.recv(4096):
                out += chunk
    except OSError:
        return None
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("Mode: "):
            return line[len("Mode: ") :]
    return None


def wait_until(predicate, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def pids(hosts):
    value = os.environ.get("ZAB_PIDS")
    if not value:
        pytest.fail("ZAB_PIDS is not set: run the kazoo tests through ci/clients.sh")
    pids = [int(p) for p in value.split(",")]
    assert len(pids) == len(hosts)
    return pids


def test_client_moves_to_another_server_with_its_session(hosts, pids, connect, root):
    wait_until(lambda: all(mode(h) in ("leader", "follower") for h in hosts), "ensemble serving")
    frozen = next(i for i, h in enumerate(hosts) if mode(h) == "follower")
    others = [h for i, h in enumerate(hosts) if i != frozen]
    # Connect to the follower first; the other servers are the fallbacks.
    zk = KazooClient(hosts=",".join([hosts[frozen]] + others), randomize_hosts=False, timeout=12.0)
    states = []
    zk.add_listener(states.append)
    zk.start(timeout=30)
    try:
        assert zk._connection._socket.getpeername()[1] == int(hosts[frozen].rsplit(":", 1)[1])
        session = zk.client_id[0]
        zk.create(f"{root}/eph", b"mine", ephemeral=True, makepath=True)
        lock = zk.Lock(f"{root}/lock", "holder")
        assert lock.acquire(timeout=WAIT)
        changes = []
        zk.DataWatch(f"{root}/eph", lambda data, stat: changes.append(data))
        wait_until(lambda: changes == [b"mine"], "initial data watch call")

        observer = connect(frozen + 1)
        os.kill(pids[frozen], signal.SIGSTOP)
        try:
            wait_until(lambda: KazooState.SUSPENDED in states, "kazoo notices the frozen server")
            wait_until(lambda: states[-1] == KazooState.CONNECTED, "kazoo reconnects elsewhere")
            assert KazooState.LOST not in states, states
            assert zk.client_id[0] == session
            port = zk._connection._socket.getpeername()[1]
            assert port in [int(h.rsplit(":", 1)[1]) for h in others]
            # The session and what it owns survived; the client works on its new server.
            data, stat = zk.get(f"{root}/eph")
            assert (data, stat.ephemeralOwner) == (b"mine", session)
            assert zk.Lock(f"{root}/lock").contenders() == ["holder"]
            zk.set(f"{root}/eph", b"moved")
            wait_until(lambda: changes[-1:] == [b"moved"], "data watch re-set by kazoo fires")
            contender = observer.Lock(f"{root}/lock", "other")
            got = threading.Event()
            t = threading.Thread(
                target=lambda: contender.acquire(timeout=WAIT) and got.set(), daemon=True
            )
        finally:
            os.kill(pids[frozen], signal.SIGCONT)
        # The resumed server catches up; the other client's contender waits for the holder.
        wait_until(lambda: mode(hosts[frozen]) == "follower", "the frozen server serves again")
        t.start()
        time.sleep(0.3)
        assert not got.is_set(), "the lock is still held by the moved session"
        lock.release()
        assert got.wait(WAIT)
        contender.release()
    finally:
        zk.stop()
        zk.close()

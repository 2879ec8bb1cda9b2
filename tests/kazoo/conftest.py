"""Fixtures for running kazoo, unchanged, against zabd (ci/clients.sh starts the servers).

ZAB_HOSTS: the 3-server ensemble, "host:port,host:port,host:port".
ZAB_STANDALONE: a standalone zabd started with no arguments, "host:port".
ZAB_TLS: "ca,certfile,keyfile" (PEM files): every client connects over TLS with that client
certificate and verifies the server's (the TLS round of ci/clients.sh).
ZAB_TLS_OTHER: "certfile,keyfile" of a second client certificate (test_x509.py).
ZAB_X509_DN: the subject of ZAB_TLS's client certificate as Java's X500Principal.getName()
writes it (computed by ci/clients.sh with java), the id zabd must give that client.
"""

import os
import uuid

import pytest
from kazoo.client import KazooClient


def _env(name):
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the kazoo tests through ci/clients.sh")
    return value


@pytest.fixture(scope="session")
def hosts():
    """The ensemble's servers, one "host:port" each."""
    hosts = _env("ZAB_HOSTS").split(",")
    assert len(hosts) == 3, hosts
    return hosts


@pytest.fixture(scope="session")
def standalone():
    return _env("ZAB_STANDALONE")


@pytest.fixture
def connect(hosts):
    """connect(i) -> a started KazooClient on server i (mod 3); all stopped at teardown."""
    clients = []

    def make(i, **kwargs):
        kwargs.setdefault("timeout", 10.0)
        tls = os.environ.get("ZAB_TLS")
        if tls:
            ca, certfile, keyfile = tls.split(",")
            kwargs.setdefault("use_ssl", True)
            kwargs.setdefault("verify_certs", True)
            kwargs.setdefault("ca", ca)
            kwargs.setdefault("certfile", certfile)
            kwargs.setdefault("keyfile", keyfile)
        zk = KazooClient(hosts=hosts[i % len(hosts)], **kwargs)
        zk.start(timeout=30)
        clients.append(zk)
        return zk

    yield make
    for zk in clients:
        try:
            zk.stop()
            zk.close()
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass


@pytest.fixture
def root(connect, request):
    """A fresh path for the test, removed afterwards."""
    path = f"/kazoo-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"
    yield path
    # The digest the ACL tests use, so that their nodes can be removed too.
    zk = connect(0, auth_data=[("digest", "alice:secret")])
    zk.delete(path, recursive=True)

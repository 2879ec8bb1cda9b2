"""The README's quick-start example, exactly as README.md shows it, run with kazoo against a
standalone zabd started with no arguments (ci/clients.sh substitutes the host only when port
2181 is taken)."""

import os
import pathlib
import re

from kazoo.client import KazooClient

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def readme_example():
    """The first ```python block of README.md."""
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(), re.S | re.M)
    assert blocks, f"no python example in {README}"
    return blocks[0]


EXAMPLE = readme_example()


def test_readme_example_is_the_kazoo_quick_start():
    assert EXAMPLE == (
        "from kazoo.client import KazooClient\n"
        "zk = KazooClient('127.0.0.1:2181')\n"
        "zk.start()\n"
        "zk.create('/test', b'hello world', ephemeral=True)\n"
    )


def test_readme_example_on_standalone_zabd(standalone):
    text = EXAMPLE.replace("127.0.0.1:2181", standalone)
    assert (text == EXAMPLE) == (standalone == "127.0.0.1:2181")
    scope = {}
    exec(compile(text, "README example", "exec"), scope)  # noqa: S102 - the README's own text
    zk = scope["zk"]
    try:
        data, stat = zk.get("/test")
        assert data == b"hello world"
        assert stat.ephemeralOwner == zk.client_id[0]
        other = KazooClient(standalone)
        other.start(timeout=30)
        try:
            assert other.exists("/test") is not None
            zk.stop()
            zk.close()
            # The ephemeral goes with the session.
            assert other.exists("/test") is None
        finally:
            other.stop()
            other.close()
    finally:
        zk.stop()
        zk.close()


def test_standalone_reports_standalone_mode(standalone):
    import socket

    host, port = standalone.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"srvr")
        out = b""
        while chunk := s.recv(4096):
            out += chunk
    assert b"Mode: standalone" in out, out
    assert os.environ.get("ZAB_STANDALONE") == standalone

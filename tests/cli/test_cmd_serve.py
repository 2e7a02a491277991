"""``replaystore serve``: what it refuses before it binds (the running server is tested in tests/remote)."""

from __future__ import annotations

import pytest

from replaystore.cli import main
from replaystore.store import Run, Schema


@pytest.fixture
def run_path(tmp_path):
    return Run.create(tmp_path / "run", Schema.transition((2,)), actors=("expert", "dqn")).path


def test_binding_beyond_loopback_needs_a_token(run_path, capsys, monkeypatch):
    """Any address but loopback without a token exits 2 and says how to give one."""
    monkeypatch.delenv("REPLAYSTORE_TOKEN", raising=False)
    assert main(["serve", run_path, "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "host='0.0.0.0' is not a loopback address and no token was given" in err and "--token-file" in err


def test_half_a_tls_pair_and_unreadable_files_are_refused(run_path, tmp_path, capsys):
    """A certificate without its key exits 2; so does a token file that cannot be read, naming the flag."""
    cert = tmp_path / "cert.pem"
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    assert main(["serve", run_path, "--port", "0", "--tls-cert", str(cert)]) == 2
    assert "TLS needs both a certificate and its key" in capsys.readouterr().err
    assert main(["serve", run_path, "--port", "0", "--token-file", str(tmp_path / "missing")]) == 2
    assert "--token-file" in capsys.readouterr().err


def test_a_path_that_is_neither_a_run_nor_a_store_is_refused(tmp_path, capsys):
    """A missing path exits 2 with the store's message."""
    assert main(["serve", str(tmp_path / "nothing.h5"), "--port", "0"]) == 2
    assert "error:" in capsys.readouterr().err


def test_a_bad_rate_limiter_is_refused(run_path, capsys):
    """A samples-per-insert ratio that could block both sides is refused before binding."""
    assert main(["serve", run_path, "--port", "0", "--samples-per-insert", "4", "--error-buffer", "1"]) == 2
    assert "error_buffer=1.0" in capsys.readouterr().err


def test_a_port_in_use_is_refused_with_the_likely_causes(run_path, capsys):
    """A port another socket holds exits 2 and names the port and what to try."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", run_path, "--port", str(port)]) == 2
    assert f"could not serve on grpc+tcp://127.0.0.1:{port}" in capsys.readouterr().err

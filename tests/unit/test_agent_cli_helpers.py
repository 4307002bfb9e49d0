"""The helpers that run the agent CLIs: the off-loopback check reads strace's lines right."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.helpers.agent_clis import _outside_connects, _strace, run_cli

# Lines as strace 6 writes them (the DNS ones from a real codex run).
_V4 = '{sa_family=AF_INET, sin_port=htons(%d), sin_addr=inet_addr("%s")}'
_V6 = (
    "{sa_family=AF_INET6, sin6_port=htons(%d), sin6_flowinfo=htonl(0), "
    'inet_pton(AF_INET6, "%s", &sin6_addr), sin6_scope_id=0}'
)
TRACE = "\n".join(
    [
        f"1959  connect(27, {_V4 % (43685, '127.0.0.1')}, 16) = -1 EINPROGRESS",
        '1549  connect(24, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT',
        f"18106 connect(7, {_V4 % (53, '10.255.255.53')}, 16) = 0",
        f'18130 sendto(35, "\\v", 32, MSG_NOSIGNAL, {_V4 % (53, "10.255.255.53")}, 16) = 32',
        f"1960  connect(9, {_V6 % (443, '2001:db8::1')}, 28) = -1 ENETUNREACH",
        f"1961  connect(9, {_V6 % (80, '::1')}, 28) = 0",
    ]
)


def test_only_addresses_off_loopback_are_reported_once_each(tmp_path: Path) -> None:
    trace = tmp_path / "connects.log"
    trace.write_text(TRACE)
    found = _outside_connects(trace)
    assert len(found) == 2
    assert 'inet_addr("10.255.255.53")' in found[0] and "htons(53)" in found[0]
    assert '"2001:db8::1"' in found[1]


def test_a_run_that_talks_only_to_loopback_reports_nothing(tmp_path: Path) -> None:
    if _strace() is None:
        pytest.skip("strace is not available here")
    code = (
        "import socket\n"
        "s = socket.socket(); s.settimeout(5)\n"
        "try: s.connect(('127.0.0.1', 9))\n"
        "except OSError: pass\n"
        'print(\'{"type": "done"}\')\n'
    )
    run = run_cli([sys.executable, "-c", code], tmp_path, {"PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.describe()
    assert run.events == [{"type": "done"}]
    assert run.outside_connects == []

"""stores: moving a foreign history aside."""

from __future__ import annotations

import os

from litestream_guard.stores import Store


def test_the_sftp_move_pins_the_host_key_as_openssh_names_it(tmp_path, monkeypatch):
    fake = tmp_path / "sftp"
    fake.write_text(
        '#!/bin/sh\nhere=$(dirname "$0")\necho "$@" > "$here/args"\n'
        'while [ $# -gt 0 ]; do case $1 in -b) cp "$2" "$here/batch";; esac; shift; done\n'
        'for a in $(cat "$here/args"); do case $a in UserKnownHostsFile=*)\n'
        '  cat "${a#*=}" > "$here/known";; esac; done\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    replica = {
        "type": "sftp",
        "host": "store:22",
        "user": "replica-web1",
        "path": "upload/web1",
        "key-path": "/etc/litestream/sftp_ed25519",
        "host-key": "ecdsa-sha2-nistp256 AAAAE2Vj",
    }
    aside = Store.of(replica, {}, 5).move_aside("20261206T000000Z")
    assert aside == "upload/web1/aside-20261206T000000Z"
    assert (tmp_path / "known").read_text() == "store ecdsa-sha2-nistp256 AAAAE2Vj\n", (
        "port 22: no brackets"
    )
    args = (tmp_path / "args").read_text()
    assert "HostKeyAlgorithms=ecdsa-sha2-nistp256" in args and "StrictHostKeyChecking=yes" in args
    assert (tmp_path / "batch").read_text() == (
        "mkdir upload/web1/aside-20261206T000000Z\n"
        "rename upload/web1/ltx upload/web1/aside-20261206T000000Z/ltx\n"
    )
    replica["host"] = "store:2222"
    Store.of(replica, {}, 5).move_aside("x")
    assert (tmp_path / "known").read_text().startswith("[store]:2222 ")

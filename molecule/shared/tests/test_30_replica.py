"""The replica on the storage host holds the data."""

from __future__ import annotations

import pytest

from hosts import app_name, deployed_replica, replica_count, visit, wait_until
from stores import replica_objects, sftp_account, sftp_upload_path


def test_replica_holds_litestream_files(app, storage, replica_kind):
    visit(app)
    objects = wait_until(
        lambda: [o for o in replica_objects(app, storage) if o.endswith(".ltx")],
        timeout=30,
        what=f"LTX files of {app_name(app)} in the {replica_kind} store",
    )
    # Under this host's own path, which names the host.
    own = deployed_replica(app)["path"].strip("/")
    assert app_name(app) in own.split("/"), own
    assert all(o.startswith(own + "/") for o in objects), objects


@pytest.mark.sftp
def test_sftp_replica_files_belong_to_the_hosts_own_account(app, storage):
    path = f"{sftp_upload_path(app_name(app))}/{app_name(app)}"
    owners = storage.check_output("find %s -type f -name '*.ltx' -printf '%%u\\n'", path).split()
    assert owners
    assert set(owners) == {sftp_account(app_name(app))}


def test_replica_restores_to_the_latest_count(app):
    count = visit(app)
    # Commits reach the replica within a couple of seconds.
    wait_until(lambda: replica_count(app) == count, timeout=30, what=f"replica holds count {count}")

"""The replica on the storage host holds the data."""

from __future__ import annotations

import pytest

from conftest import (
    STORE,
    app_name,
    replica_count,
    replica_objects,
    sftp_upload_path,
    visit,
    wait_until,
)


def test_replica_holds_litestream_files(app, storage, replica_kind):
    visit(app)
    objects = wait_until(
        lambda: [o for o in replica_objects(app, storage, replica_kind) if o.endswith(".ltx")],
        timeout=30,
        what=f"LTX files of {app_name(app)} in the {replica_kind} store",
    )
    # Under this host's own prefix.
    assert all(o.startswith(app_name(app) + "/") for o in objects), objects


@pytest.mark.sftp
def test_sftp_replica_files_belong_to_the_sftp_account(app, storage):
    path = f"{sftp_upload_path()}/{app_name(app)}"
    files = storage.check_output("find %s -type f -name '*.ltx'", path).split()
    assert files
    assert storage.check_output("stat -c %%U %s", files[0]) == STORE["sftp_user"]


def test_replica_restores_to_the_latest_count(app):
    count = visit(app)
    # Commits reach the replica within a couple of seconds.
    wait_until(lambda: replica_count(app) == count, timeout=30, what=f"replica holds count {count}")

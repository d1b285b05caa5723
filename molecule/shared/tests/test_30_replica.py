"""The replica on the storage host holds the data."""

from __future__ import annotations

from conftest import app_name, replica_count, visit, wait_until


def test_replica_holds_litestream_files(app, storage):
    visit(app)
    path = f"/srv/sftp/litestream/upload/{app_name(app)}"
    files = wait_until(
        lambda: storage.check_output("find %s -type f -name '*.ltx'", path).split(),
        timeout=30,
        what=f"LTX files under {path}",
    )
    assert all(f.startswith(path + "/ltx/") for f in files)
    owner = storage.check_output("stat -c %%U %s", files[0])
    assert owner == "litestream"


def test_replica_restores_to_the_latest_count(app):
    count = visit(app)
    # Commits reach the replica within a couple of seconds.
    wait_until(lambda: replica_count(app) == count, timeout=30, what=f"replica holds count {count}")

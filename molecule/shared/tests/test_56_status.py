"""`make status` (playbooks/status.yml): one table, a row per app host, read
at a glance; it changes nothing."""

from __future__ import annotations

from hosts import app_name, recap_changed, run_site, status_table, visit


def test_status_shows_each_host_where_it_stands(apps):
    for host in apps:
        visit(host)
    result = run_site({}, playbook="playbooks/status.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    changed = recap_changed(result.stdout)
    assert changed, result.stdout[-3000:]
    assert set(changed.values()) == {0}, "it changes nothing"
    table = status_table(result.stdout)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["host", "litestream", "app"]
    for host in apps:
        (row,) = [line for line in lines if line.startswith(app_name(host) + " ")]
        cells = row.split()
        assert cells[1:3] == ["active", "active"], row
        count = int(cells[4])
        assert count >= 1
        local, replica, confirmed = (int(c) for c in cells[5:8])
        assert confirmed <= local and replica >= 1, row
        assert "yes" in row and "reachable" in row, row
    every = "every host and database: units active, ready, replica confirmed, store reachable"
    assert every in table

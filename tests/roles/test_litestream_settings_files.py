"""The litestream_settings_files module, run as Ansible runs it, on real files
(root's own owner and group: the tests run as root, like the module)."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_plugin import PLUGINS, load, run_module

MODULE = PLUGINS / "modules" / "litestream_settings_files.py"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="sets owners: run as root")


def files(tmp_path, config: str = "dbs: []\n", env: str | None = "KEY='x'\n") -> dict:
    return {
        "stage_dir": str(tmp_path / "staged"),
        "files": [
            {
                "name": "litestream.yml",
                "path": str(tmp_path / "litestream.yml"),
                "content": config,
                "owner": "root",
                "group": "root",
                "mode": "0640",
                "validate": ["/bin/true", "%s"],
            },
            {"name": "check.yml", "path": "", "content": "check\n"},
        ],
        "secret_files": [
            {
                "name": "litestream.env",
                "path": str(tmp_path / "litestream.env"),
                "owner": "root",
                "group": "root",
                "mode": "0600",
            }
        ],
        "secrets": {} if env is None else {"litestream.env": env},
    }


def staged(args: dict, check_mode: bool = False) -> dict:
    return run_module(MODULE, dict(args, state="staged"), check_mode=check_mode)


def placed(args: dict, names: list[str]) -> dict:
    return run_module(MODULE, dict(args, state="placed", names=names))


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_settings_are_staged_whole_then_put_in_place(tmp_path):
    args = files(tmp_path)
    result = staged(args)
    assert result["changed"] and sorted(result["content_changed"]) == [
        "litestream.env",
        "litestream.yml",
    ]
    stage = tmp_path / "staged"
    assert mode(stage) == 0o700
    assert {p.name: mode(p) for p in stage.iterdir()} == {
        "litestream.yml": 0o600,
        "check.yml": 0o600,
        "litestream.env": 0o600,
    }
    assert not (tmp_path / "litestream.yml").exists(), "nothing live before the check"
    assert placed(args, ["litestream.yml", "litestream.env"])["changed"]
    assert not stage.exists(), "no copy of a secret stays in the stage"
    assert (tmp_path / "litestream.yml").read_text() == "dbs: []\n"
    assert mode(tmp_path / "litestream.yml") == 0o640
    assert mode(tmp_path / "litestream.env") == 0o600
    again = staged(args)
    assert not again["changed"] and again["content_changed"] == []


def test_a_file_edited_or_loosened_by_hand_is_found(tmp_path):
    args = files(tmp_path)
    staged(args)
    placed(args, ["litestream.yml", "litestream.env"])
    (tmp_path / "litestream.env").chmod(0o644)
    result = staged(args)
    assert result["attributes_changed"] == ["litestream.env"] and not result["content_changed"]
    placed(args, ["litestream.env"])
    assert mode(tmp_path / "litestream.env") == 0o600
    (tmp_path / "litestream.yml").write_text("edited\n")
    result = staged(args, check_mode=True)
    assert result["content_changed"] == ["litestream.yml"]
    (diff,) = result["diff"]
    assert (diff["before"], diff["after"]) == ("edited\n", "dbs: []\n")
    assert (tmp_path / "litestream.yml").read_text() == "edited\n", "check mode writes nothing"


def test_secrets_are_never_shown(tmp_path):
    args = files(tmp_path, env="KEY='very-secret-value'\n")
    result = staged(args, check_mode=True)
    assert "litestream.env" in result["content_changed"]
    assert "very-secret-value" not in str(result)
    assert [d["after_header"] for d in result["diff"]] == [str(tmp_path / "litestream.yml")]


def test_a_secret_no_longer_given_is_removed(tmp_path):
    args = files(tmp_path)
    staged(args)
    placed(args, ["litestream.yml", "litestream.env"])
    (tmp_path / "staged").mkdir(mode=0o700)
    (tmp_path / "staged" / "sftp_ed25519").write_text("a key of an earlier set\n")
    args = files(tmp_path, env=None)
    assert staged(args)["content_changed"] == ["litestream.env"]
    assert sorted(p.name for p in (tmp_path / "staged").iterdir()) == [
        "check.yml",
        "litestream.yml",
    ], "the stage holds exactly the set"
    assert not (tmp_path / "staged" / "litestream.env").exists()
    placed(args, ["litestream.env"])
    assert not (tmp_path / "litestream.env").exists()


def test_a_configuration_its_validator_refuses_stops_the_deploy(tmp_path):
    args = files(tmp_path)
    args["files"][0]["validate"] = ["/bin/sh", "-c", "echo bad config >&2; exit 1", "%s"]
    result = staged(args)
    assert result.get("failed") and "bad config" in result["msg"]
    assert not (tmp_path / "litestream.yml").exists()


def test_secrets_never_reach_the_hosts_log(tmp_path, monkeypatch, capsys):
    """What AnsibleModule logs of its arguments (the host's journal) masks
    the secrets (the module run in this process, its log captured)."""
    import json

    from ansible.module_utils import basic

    module = load(MODULE)
    logged = []
    monkeypatch.setattr(basic.AnsibleModule, "log", lambda self, msg, **kw: logged.append(msg))
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH\n"
    args = files(tmp_path, env="LITESTREAM_SECRET_ACCESS_KEY='very-secret-value'\n")
    args["secret_files"].append(
        {
            "name": "sftp_ed25519",
            "path": str(tmp_path / "k"),
            "owner": "root",
            "group": "root",
            "mode": "0600",
        }
    )
    args["secrets"]["sftp_ed25519"] = key
    payload = {"ANSIBLE_MODULE_ARGS": dict(args, state="staged")}
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", json.dumps(payload).encode())
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")
    with pytest.raises(SystemExit):
        module.main()
    out = capsys.readouterr().out
    assert logged and "Invoked with" in logged[0]
    for text in (logged[0], out):
        assert "very-secret-value" not in text and "b3BlbnNzaC1rZXktdjEAAAAA" not in text
    assert json.loads(out)["content_changed"]

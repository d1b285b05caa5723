# Run on the host by `python3 -c` (one round trip), with one JSON argument:
#   {"mode": "check"|"record", "units": [UNIT, ...], "stamps": [{"name",
#    "stamp": FILE, "inputs": DIGEST, "paths", "trees", "users", "groups",
#    "group_members", "packages", "rules": [{"path", "owner", "group", "mode"}]}]}
# For each stamp it reads what it covers on this host and prints
# {"stamps": {NAME: {"state": DIGEST, "stamp": {...} | null}},
#  "units": {UNIT: {...}} (systemctl show, apart from the digests),
#  "installed": [PACKAGE, ...] (those of "packages" dpkg has installed)}.
# "record" also writes each stamp {"inputs": DIGEST, "state": DIGEST} (root
# only), after a complete run.
import grp
import hashlib
import json
import os
import pwd
import stat
import subprocess
import sys

spec = json.loads(sys.argv[1])


def entry(path, content):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    out = [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid]
    if stat.S_ISLNK(st.st_mode):
        out.append(os.readlink(path))
    elif stat.S_ISREG(st.st_mode):
        if content:
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            out.append(digest.hexdigest())
        else:
            out += [st.st_size, st.st_mtime_ns]
    return out


def tree(top):
    out = {}
    for root, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in [*dirs, *sorted(files)]:
            path = os.path.join(root, name)
            out[os.path.relpath(path, top)] = entry(path, False)
    return [entry(top, False), out]


def mode_after(mode, symbolic, is_dir):
    # chmod's symbolic modes as the file module takes them: u+rwX,g+rwX,o-rwx
    for clause in symbolic.split(","):
        who, op, perms = clause[0], clause[1], clause[2:]
        shift = {"u": 6, "g": 3, "o": 0}[who]
        bits = 0
        for p in perms:
            if p == "X":
                p = "x" if is_dir or mode & 0o111 else ""
            bits |= {"r": 4, "w": 2, "x": 1, "": 0}[p]
        bits <<= shift
        if op == "+":
            mode |= bits
        elif op == "-":
            mode &= ~bits
        else:
            mode = (mode & ~(7 << shift)) | bits
    return mode


def rule_holds(rule):
    try:
        uid = pwd.getpwnam(rule["owner"]).pw_uid if rule.get("owner") else None
        gid = grp.getgrnam(rule["group"]).gr_gid if rule.get("group") else None
    except KeyError:  # no such account (yet): the rule does not hold
        return False
    if not os.path.isdir(rule["path"]):
        return False
    for root, dirs, files in os.walk(rule["path"]):
        for path in [root, *(os.path.join(root, n) for n in dirs + files)]:
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                continue
            if (uid is not None and st.st_uid != uid) or (gid is not None and st.st_gid != gid):
                return False
            mode = stat.S_IMODE(st.st_mode)
            if (
                rule.get("mode")
                and mode_after(mode, rule["mode"], stat.S_ISDIR(st.st_mode)) != mode
            ):
                return False
    return True


def lines(path, names):
    try:
        with open(path) as f:
            return sorted(line for line in f if line.split(":", 1)[0] in names)
    except FileNotFoundError:
        return []


def members(names):
    gids = {g.gr_gid for g in grp.getgrall() if g.gr_name in names}
    return sorted(u.pw_name for u in pwd.getpwall() if u.pw_gid in gids)


def packages(names):
    if not names:
        return ""
    done = subprocess.run(
        ["/usr/bin/dpkg-query", "-W", "-f", "${Package} ${Status} ${Version}\n", *names],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout


def probe(part):
    """The digest of the state one stamp covers, its stamp file, the packages installed."""
    state = {
        "paths": {p: entry(p, True) for p in part.get("paths", [])},
        "trees": {t: tree(t) for t in part.get("trees", [])},
        "users": lines("/etc/passwd", part.get("users", []))
        + lines("/etc/shadow", part.get("users", [])),
        "groups": lines("/etc/group", part.get("groups", []))
        + lines("/etc/gshadow", part.get("groups", [])),
        "members": members(part.get("group_members", [])),
        "packages": packages(part.get("packages", [])),
        "rules": [rule_holds(r) for r in part.get("rules", [])],
    }
    digest = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()
    stamp = None
    try:
        with open(part["stamp"]) as f:
            stamp = json.load(f)
    except (FileNotFoundError, ValueError):
        pass
    if spec["mode"] == "record":
        stamp = {"inputs": part["inputs"], "state": digest}
        os.makedirs(os.path.dirname(part["stamp"]), mode=0o700, exist_ok=True)
        tmp = part["stamp"] + ".part"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump(stamp, f)
        os.replace(tmp, part["stamp"])
    installed = [
        line.split()[0]
        for line in state["packages"].splitlines()
        if " install ok installed " in line
    ]
    return {"state": digest, "stamp": stamp}, installed


# The units' live state, apart from the digests: the role starts or enables a
# unit only when it is not as wanted.
units = {}
if spec.get("units"):
    shown = subprocess.run(
        [
            "/usr/bin/systemctl",
            "show",
            "--property=Id,UnitFileState,ActiveState,NeedDaemonReload",
            *spec["units"],
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    for block in shown.strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if props.get("Id"):
            units[props["Id"]] = props
out = {"stamps": {}, "units": units, "installed": []}
for part in spec["stamps"]:
    out["stamps"][part["name"]], installed = probe(part)
    out["installed"] += installed
print(json.dumps(out))

"""The files ``provision`` writes: one serializer per format, each written atomically.

Mosquitto reads its password file and ACL line by line, without quoting or escapes: a user
name with a newline or a ``:`` splits a line, and a reload with a file it cannot read leaves
it running with no ACL at all (issue 12). So the serializers refuse what Mosquitto would
misread instead of writing it, and every file is read back from its temporary name and
checked before ``os.replace`` puts it in place: a run leaves a file as it was or correct.
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import tomli_w

from gateway.errors import ConfigError

#: Broker user names, stricter than Mosquitto needs: no ``:`` (the password file's
#: separator), no whitespace or control characters (line-based files), usable as a CN.
USER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: ``mosquitto_passwd``'s PBKDF2-SHA512 format.
HASH_RE = re.compile(r"\$7\$[0-9]{1,9}\$[A-Za-z0-9+/]+={0,2}\$[A-Za-z0-9+/]+={0,2}")
ACCESS = ("read", "write", "readwrite", "deny")
#: Mosquitto's ``.env``-style files and Docker's ``env_file``: one ``KEY=value`` per line.
_ENV_KEY = re.compile(r"[A-Z_][A-Z0-9_]*")
_ENV_VALUE = re.compile(r"[A-Za-z0-9._~+/=@:-]*")

Check = Callable[[bytes], None]


def write_atomic(path: Path, data: bytes, mode: int = 0o644, check: Check | None = None) -> None:
    """Write beside ``path``, read it back through ``check``, then replace ``path``.

    The temporary file is created with ``mode`` (secrets are never world-readable, not even
    for a moment) in the same folder, so ``os.replace`` is atomic.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if check is not None:
            check(tmp.read_bytes())
        tmp.replace(path)  # os.replace: atomic within one folder
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _refuse(problem: str) -> ConfigError:
    return ConfigError([problem])


def check_user(user: str) -> str:
    if not USER_RE.fullmatch(user):
        raise _refuse(
            f"broker user {user!r}: letters, digits, '.', '_' and '-' only "
            "(Mosquitto's password file and ACL have no escapes)"
        )
    return user


def check_topic(topic: str) -> str:
    """An MQTT topic filter as an ACL line can hold it: no whitespace, wildcards whole levels."""
    levels = topic.split("/")
    bad = (
        not topic
        or len(topic.encode()) > 65535
        or any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in topic)
        or any(("+" in lv and lv != "+") or ("#" in lv and lv != "#") for lv in levels)
        or "#" in levels[:-1]
    )
    if bad:
        raise _refuse(f"ACL topic {topic!r} is not a topic filter Mosquitto reads as written")
    return topic


def passwd_text(hashes: Mapping[str, str]) -> str:
    """Mosquitto's password file: ``user:hash`` per line, sorted."""
    for user, digest in hashes.items():
        check_user(user)
        if not HASH_RE.fullmatch(digest):
            raise _refuse(f"password hash of {user!r} is not in mosquitto_passwd's $7$ format")
    return "".join(f"{user}:{hashes[user]}\n" for user in sorted(hashes))


def read_passwd(text: str) -> dict[str, str]:
    """A password file as Mosquitto splits it (at the first ``:``), refusing what it refuses."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        user, sep, digest = line.partition(":")
        if not sep:
            raise _refuse(f"password file line without ':': {line[:40]!r}")
        out[check_user(user)] = digest
    return out


def acl_text(rules: Mapping[str, Sequence[tuple[str, str]]], header: Sequence[str] = ()) -> str:
    """Mosquitto's ACL file: a ``user`` line, then its ``topic <access> <filter>`` lines."""
    lines = [f"# {h}" if h else "#" for h in header]
    for line in lines:
        if "\n" in line or "\r" in line:
            raise _refuse("ACL comment with a line break")
    if lines:
        lines.append("")
    for user in sorted(rules):
        lines.append(f"user {check_user(user)}")
        for access, topic in rules[user]:
            if access not in ACCESS:
                raise _refuse(f"ACL access {access!r} for {user!r}")
            lines.append(f"topic {access} {check_topic(topic)}")
        lines.append("")
    return "\n".join(lines)


def read_acl(text: str) -> dict[str, list[tuple[str, str]]]:
    """An ACL file as Mosquitto reads it: what each user may do; comments and blanks skipped."""
    out: dict[str, list[tuple[str, str]]] = {}
    user: str | None = None
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word == "user":
            user = check_user(rest)
            out.setdefault(user, [])
        elif word == "topic" and user is not None:
            access, _, topic = rest.partition(" ")
            if access not in ACCESS:
                raise _refuse(f"ACL line {line[:60]!r}")
            out[user].append((access, check_topic(topic)))
        else:
            raise _refuse(f"ACL line Mosquitto would not accept here: {line[:60]!r}")
    return out


def toml_text(data: Mapping[str, Any], header: Sequence[str] = ()) -> str:
    """TOML from the TOML writer (every string escaped), after comment lines."""
    for h in header:
        if "\n" in h or "\r" in h:
            raise _refuse("TOML comment with a line break")
    return "".join(f"# {h}\n" if h else "#\n" for h in header) + "\n" + tomli_w.dumps(data)


def env_text(values: Mapping[str, str]) -> str:
    """``KEY=value`` lines as systemd's EnvironmentFile and Docker's env_file both read them."""
    for key, value in values.items():
        if not _ENV_KEY.fullmatch(key) or not _ENV_VALUE.fullmatch(value):
            raise _refuse(f"environment entry {key!r} cannot be written unquoted")
    return "".join(f"{k}={v}\n" for k, v in values.items())


def read_env(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def same_as(expected: str, reader: Callable[[str], object]) -> Check:
    """A check: the file reads back, through ``reader``, as ``expected`` does."""

    def check(data: bytes) -> None:
        if reader(data.decode()) != reader(expected):
            raise _refuse("a written file does not read back as it was meant")

    return check


def toml_check(data: Mapping[str, Any]) -> Check:
    def check(raw: bytes) -> None:
        if tomllib.loads(raw.decode()) != dict(data):
            raise _refuse("the room config does not read back as it was meant")

    return check

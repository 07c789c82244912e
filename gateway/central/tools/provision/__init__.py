"""``learnroom provision``: broker credentials, ACL, CRL and room configs for gateways.

Everything lives in one folder (``--out``, default ``./provision``) that the central
Mosquitto mounts:

- ``state.json``: who exists (gateways and central services) with their password hashes,
  certificate serials and revoked serials; never a clear-text password.
- ``mosquitto/passwd``: Mosquitto's password file (PBKDF2-SHA512, the ``$7$`` format of
  ``mosquitto_passwd``) and ``mosquitto/acl``: each gateway may write its own room's topics
  and nothing else (not another room, not ``alerts/``) and reads nothing; the central
  services get what their role needs. Rebuilt from the state on every run.
- ``rooms/<site>/<room>/``: the room's config with its broker settings and password (mode
  0600), written once (re-running never rotates a password by surprise; ``--rotate`` does).
  Gateways of the first release keep ``rooms/<site>-<room>/`` (see ``state``).
- ``central/<service>.env``: the central services' users, also written once.
- ``ca/``: with TLS, a site CA, the broker's certificate and the CRL (``crl.pem``); with
  ``--cert`` each gateway's client certificate (CN = its user, for
  ``use_identity_as_username``).
- ``audit.jsonl``: one line per provision, rotation and revocation (who, what, when).

``--revoke`` removes a gateway and lists its certificate in the CRL; ``--rotate`` gives it a
new password (and with ``--cert`` a new certificate). Reload Mosquitto (``SIGHUP``) to apply.
"""

from __future__ import annotations

from gateway.central.tools.provision.ca import CertificateAuthority
from gateway.central.tools.provision.command import (
    AUDIT_LOG,
    CENTRAL,
    GATEWAY_TOPICS,
    Provisioner,
    broker_files,
    mosquitto_conf,
    password_hash,
)
from gateway.central.tools.provision.files import acl_text, passwd_text, read_acl, read_passwd
from gateway.central.tools.provision.state import SLUG_RE, State, gateway_user

__all__ = [
    "AUDIT_LOG",
    "CENTRAL",
    "GATEWAY_TOPICS",
    "SLUG_RE",
    "CertificateAuthority",
    "Provisioner",
    "State",
    "acl_text",
    "broker_files",
    "gateway_user",
    "mosquitto_conf",
    "passwd_text",
    "password_hash",
    "read_acl",
    "read_passwd",
]

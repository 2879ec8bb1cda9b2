"""The x509 scheme through kazoo over TLS (ci/clients.sh's TLS round): the client certificate
authenticates the connection as x509:<subject>, with the subject written as Java's
X500Principal.getName() writes it (ZAB_X509_DN, computed with java by the script); an x509
ACL admits that certificate and refuses another one, and an `auth` ACL expands to
the certificate's id. Skipped outside the TLS round."""

import os

import pytest
from kazoo.exceptions import NoAuthError
from kazoo.security import ACL, Id, Permissions

pytestmark = pytest.mark.skipif(
    not os.environ.get("ZAB_TLS"), reason="needs ci/clients.sh's TLS round (ZAB_TLS)"
)


def test_certificate_subject_is_the_x509_id(connect, root):
    dn = os.environ["ZAB_X509_DN"]
    owner = connect(0)
    owner.create(root, b"")
    only_me = ACL(Permissions.ALL, Id("x509", dn))
    owner.create(f"{root}/private", b"hidden", acl=[only_me])
    acls, _ = owner.get_acls(f"{root}/private")
    assert [(a.perms, a.id.scheme, a.id.id) for a in acls] == [(31, "x509", dn)]
    # The same certificate on another server reads it.
    again = connect(1)
    again.sync(root)
    assert again.get(f"{root}/private")[0] == b"hidden"
    # `auth` (CREATOR_ALL_ACL) expands to the certificate's id.
    from kazoo.security import CREATOR_ALL_ACL

    owner.create(f"{root}/mine", b"", acl=CREATOR_ALL_ACL)
    acls, _ = owner.get_acls(f"{root}/mine")
    assert [(a.id.scheme, a.id.id) for a in acls] == [("x509", dn)]


def test_another_certificate_is_refused(connect, root):
    dn = os.environ["ZAB_X509_DN"]
    certfile, keyfile = os.environ["ZAB_TLS_OTHER"].split(",")
    owner = connect(0)
    owner.create(root, b"")
    owner.create(f"{root}/private", b"hidden", acl=[ACL(Permissions.ALL, Id("x509", dn))])
    other = connect(2, certfile=certfile, keyfile=keyfile)
    other.sync(root)
    with pytest.raises(NoAuthError):
        other.get(f"{root}/private")
    owner.delete(f"{root}/private")

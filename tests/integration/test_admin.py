"""Organizations and vaults through AdminService."""

from ledger_api import chain, err

A = "ledger.v1.AdminService/"


def test_organizations_and_vaults(ledger):
    slugs = [ledger.call(A + "CreateOrganization", {"name": "org%d" % i})["slug"]["id"]
             for i in range(3)]
    assert slugs == ["1", "2", "3"]
    code, msg = err(ledger, A + "CreateOrganization", {"name": "dup", "slug": {"id": "2"}})
    assert code == "AlreadyExists" and "never reused" in msg
    code, msg = err(ledger, A + "CreateOrganization", {"name": ""})
    assert code == "InvalidArgument" and "name" in msg
    info = ledger.call(A + "GetOrganization", {"organization_slug": {"id": "1"}})
    assert info["name"] == "org0" and info["status"] == "ORGANIZATION_STATUS_ACTIVE"

    page = ledger.call(A + "ListOrganizations", {"limit": 2})
    assert [o["slug"]["id"] for o in page["organizations"]] == ["1", "2"]
    rest = ledger.call(A + "ListOrganizations", {"limit": 2, "page_token": page["nextPageToken"]})
    assert [o["slug"]["id"] for o in rest["organizations"]] == ["3"]
    assert "nextPageToken" not in rest

    v1 = ledger.call(A + "CreateVault", {"organization_slug": {"id": "1"}, "name": "a"})
    assert v1["genesis"].get("height", "0") == "0"
    ledger.call(A + "CreateVault", {"organization_slug": {"id": "1"}, "name": "b"})
    ledger.call(A + "CreateVault", {"organization_slug": {"id": "2"}, "vault": {"slug": "500"}})
    code, _ = err(ledger, A + "CreateVault", {"organization_slug": {"id": "2"},
                                              "vault": {"slug": "500"}})
    assert code == "AlreadyExists"
    code, _ = err(ledger, A + "CreateVault", {"organization_slug": {"id": "99"}})
    assert code == "NotFound"

    allv = ledger.call(A + "ListVaults")
    pairs = [(v["organizationSlug"]["id"], v["vault"]["slug"]) for v in allv["vaults"]]
    assert len(pairs) == 3 and ("2", "500") in pairs  # organization chains never listed
    assert all(v["status"] == "VAULT_STATUS_ACTIVE" and v["height"] == "0"
               for v in allv["vaults"])
    only2 = ledger.call(A + "ListVaults", {"organization_slug": {"id": "2"}})
    assert [v["vault"]["slug"] for v in only2["vaults"]] == ["500"]
    paged = ledger.call(A + "ListVaults", {"limit": 2})
    assert len(paged["vaults"]) == 2 and paged["nextPageToken"]
    got = ledger.call(A + "GetVault", chain("2", "500"))
    assert got["vault"]["slug"] == "500" and got.get("name", "") == ""
    assert got["retentionPolicy"]["mode"] == "RETENTION_MODE_FULL"

    code, msg = err(ledger, A + "DeleteOrganization", {"organization_slug": {"id": "1"}})
    assert code == "FailedPrecondition" and "force" in msg
    out = ledger.call(A + "DeleteOrganization", {"organization_slug": {"id": "1"},
                                                 "force": True})
    assert out["status"] == "ORGANIZATION_STATUS_DELETED"
    assert [v["organizationSlug"]["id"] for v in ledger.call(A + "ListVaults")["vaults"]] == ["2"]
    ledger.call(A + "DeleteVault", chain("2", "500"))
    assert ledger.call(A + "GetVault", chain("2", "500"))["status"] == "VAULT_STATUS_DELETED"
    assert ledger.call(A + "ListVaults").get("vaults", []) == []

from __future__ import annotations
from typing import Any
import httpx
from factories import connected_page
from pagecast.db import Database
from pagecast.models import Role
from pagecast.security import Vault

async def test_probe(api: Any, db: Database, vault: Vault) -> None:
    c = await api(Role.MANAGER)
    page = (await connected_page(db, vault)).id
    other = (await connected_page(db, vault, fb_page_id="2002", name="Other")).id
    r = await c.post(f"/api/pages/{other}/segments", json={"name": "o", "filter": {"tags_any": ["x"]}})
    oseg = r.json()["id"]
    camp = {"name": "S", "page_id": page, "content": {"text": "Hi"}}
    tries = [
        ("POST", f"/api/pages/{page}/segments", {"name": "a", "filter": None}),
        ("POST", f"/api/pages/{page}/segments", {"name": "a", "filter": []}),
        ("POST", f"/api/pages/{page}/segments", {"name": "a", "filter": {"tags_any": "vip"}}),
        ("POST", f"/api/pages/{page}/segments", {"name": "a", "filter": {"inbound_from": "2020-99-01"}}),
        ("POST", f"/api/pages/{page}/segments", {"name": "a", "filter": {"timezone": "Mars/Base"}}),
        ("POST", f"/api/pages/{page}/segments", {"name": "a" * 300}),
        ("POST", f"/api/pages/{page}/segments", {"name": "a\x00b"}),
        ("POST", f"/api/pages/{page}/segments", {"name": "ok", "filter": {"q": "x" * 10000}}),
        ("POST", f"/api/pages/99999999999999/segments", {"name": "a"}),
        ("PATCH", f"/api/segments/{oseg}", {"filter": None}),
        ("PATCH", f"/api/segments/{oseg}", {}),
        ("PATCH", f"/api/segments/{oseg}", {"name": "o"}),
        ("GET", "/api/segments/abc", None),
        ("GET", "/api/segments/0", None),
        ("GET", "/api/segments/99999999999999999999", None),
        ("POST", "/api/campaigns", camp | {"audience": {"type": "segment", "segment_id": oseg}}),
        ("POST", "/api/campaigns", camp | {"audience": {"type": "segment", "segment_id": "x"}}),
        ("POST", "/api/campaigns", camp | {"audience": {"type": "segment"}}),
        ("POST", "/api/campaigns", camp | {"audience": {"type": "segment", "segment_id": 1, "as_of": "2020-01-01T00:00:00+00:00", "filter": {}}}),
        ("POST", "/api/campaigns", camp | {"audience": {"type": "filter", "filter": {"window": "x"}}}),
        ("POST", "/api/campaigns", camp | {"audience": {"type": "filter", "filter": {}, "as_of": "2020-01-01T00:00:00+00:00"}}),
        ("POST", "/api/campaigns", camp | {"audience": {"type": "filter"}}),
        ("POST", "/api/campaigns", camp | {"audience": {"type": "contacts", "psids": []}}),
        ("POST", "/api/campaigns", camp | {"audience": {"type": "contacts", "psids": [None]}}),
        ("POST", "/api/campaigns", camp | {"audience": {"type": "contacts", "psids": [12.5]}}),
        ("POST", "/api/campaigns", camp | {"audience": {"type": "contacts", "psids": ["1"], "ids": [1]}}),
        ("POST", "/api/campaigns", camp | {"audience": {"type": "contacts", "psids": " 1 "}}),
        ("POST", "/api/campaigns", camp | {"audience": {"type": "contacts", "psids": ["٣٣"]}}),
        ("POST", "/api/campaigns", camp | {"audience": {"type": "tags", "include": ["a"], "match": "none"}}),
        ("POST", "/api/campaigns", camp | {"audience": {"type": "contacts", "psids": [10**30]}}),
    ]
    for method, url, body in tries:
        r = await c.request(method, url, json=body)
        print(r.status_code, method, url, str(body)[:80], "->", r.text[:160])
    # dashboard composer query
    for q in ["audience=filter&window=bogus&page_id=1", "audience=segment&segment_id=abc", "psids=1,2,x", "audience=filter&inbound_from=zz"]:
        r = await c.get(f"/campaigns/new?{q}")
        print(r.status_code, "dash", q)

"""Idempotency-Key (IETF draft): the same key with the same request returns the first job; with
another request it is 422 naming the key; a key goes with its job."""

from __future__ import annotations

import sqlite3

import pytest

from kekong.errors import ParameterError
from kekong.server.store import JobStore
from tests.test_server_queue import TINY, Gated, serve, wait_status


def test_a_key_reused_with_another_body_is_422_naming_it(tmp_path):
    client = serve(tmp_path, Gated(open_=True))
    try:
        first = client.post("/v1/jobs", json=TINY, headers={"Idempotency-Key": "order-17"})
        same = client.post("/v1/jobs", json=dict(reversed(TINY.items())), headers={"Idempotency-Key": "order-17"})
        assert first.status_code == 202 and same.status_code == 200 and same.json()["id"] == first.json()["id"]
        for body, query in (({**TINY, "prompt": "a blue star"}, ""), ({**TINY, "steps": 3}, ""),
                            (TINY, "?watermark=false")):  # how to answer is part of the request too
            other = client.post(f"/v1/jobs{query}", json=body, headers={"Idempotency-Key": "order-17"})
            assert other.status_code == 422, other.json()
            assert "Idempotency-Key 'order-17'" in other.json()["detail"] and first.json()["id"] in other.json()[
                "detail"]
        assert len(client.get("/v1/jobs").json()) == 1
        fresh = client.post("/v1/jobs", json={**TINY, "prompt": "a blue star"}, headers={"Idempotency-Key": "o-18"})
        assert fresh.status_code == 202 and fresh.json()["id"] != first.json()["id"]
        wait_status(client, first.json()["id"], ("done",))
        assert client.delete(f"/v1/jobs/{first.json()['id']}").status_code == 204  # the key goes with its job
        reused = client.post("/v1/jobs", json={**TINY, "steps": 3}, headers={"Idempotency-Key": "order-17"})
        assert reused.status_code == 202 and reused.json()["id"] != first.json()["id"]
    finally:
        client.__exit__(None, None, None)


def test_a_store_from_before_request_hashes_gains_the_column_and_keeps_its_keys(tmp_path):
    store = JobStore(tmp_path)
    old, _ = store.submit("generate", {"request": {"prompt": "a"}, "answer": {}}, 2, "k")
    with sqlite3.connect(store.path) as db:
        db.execute("ALTER TABLE jobs DROP COLUMN request_hash")
    reopened = JobStore(tmp_path)
    again, created = reopened.submit("generate", {"request": {"prompt": "b"}, "answer": {}}, 2, "k")
    assert not created and again.id == old.id  # no hash was kept for it: the first job, as before
    new, created = reopened.submit("generate", {"request": {"prompt": "c"}, "answer": {}}, 2, "k2")
    assert created
    with pytest.raises(ParameterError, match=f"Idempotency-Key 'k2' was used for another request \\(job {new.id}\\)"):
        reopened.submit("generate", {"request": {"prompt": "d"}, "answer": {}}, 2, "k2")

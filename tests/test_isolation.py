"""No key can read, list, change or delete another user's concepts or images."""

from __future__ import annotations

from tests.helpers import images
from tests.helpers.api import UserClient, assert_problem, create, files


async def test_other_users_concepts_are_invisible(alice: UserClient, bob: UserClient) -> None:
    mine = (await create(alice, "bo", images.pattern(1), images.pattern(2))).json()
    cid, iid = mine["id"], mine["images"][0]["id"]
    assert (await bob.client.get("/concepts")).json() == {"data": [], "count": 0}
    assert (await bob.client.get("/concepts", params={"name": "bo"})).json()["count"] == 0
    assert_problem(await bob.client.get(f"/concepts/{cid}"), 404, "not-found")
    assert_problem(await bob.client.get(f"/concepts/{cid}/images/{iid}"), 404, "not-found")
    assert_problem(
        await bob.client.patch(f"/concepts/{cid}", json={"info": "pwned"}), 404, "not-found"
    )
    assert_problem(
        await bob.client.post(f"/concepts/{cid}/images", files=files(images.pattern(5))),
        404,
        "not-found",
    )
    assert_problem(await bob.client.delete(f"/concepts/{cid}/images/{iid}"), 404, "not-found")
    assert_problem(await bob.client.delete(f"/concepts/{cid}"), 404, "not-found")
    after = (await alice.client.get(f"/concepts/{cid}")).json()
    assert after == mine


async def test_same_name_for_two_users(alice: UserClient, bob: UserClient) -> None:
    assert (await create(alice, "bo")).status_code == 201
    assert (await create(bob, "bo")).status_code == 201
    assert (await alice.client.get("/concepts")).json()["count"] == 1
